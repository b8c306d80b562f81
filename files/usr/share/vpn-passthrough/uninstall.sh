#!/bin/sh
# vpn-passthrough: run by the package's prerm (default_prerm sources the
# prerm-pkg that calls this) when the package is removed from a running
# router. Takes out the firewall includes /etc/uci-defaults/vpn-passthrough
# added, so fw4 does not keep pointing at files that are about to go.
uci -q delete firewall.vpn_passthrough
uci -q delete firewall.vpn_passthrough_forward
uci -q commit firewall
true
