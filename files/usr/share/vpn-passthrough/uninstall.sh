#!/bin/sh
# vpn-passthrough: run by the package's prerm (default_prerm sources the
# prerm-pkg that calls this) when the package is removed from a running
# router. Takes out the firewall includes /etc/uci-defaults/vpn-passthrough
# added, so fw4 does not keep pointing at files that are about to go.
uci -q delete firewall.vpn_passthrough
uci -q delete firewall.vpn_passthrough_forward
uci -q delete firewall.vpn_passthrough_offload
uci -q commit firewall

# fw4 copied our forward include (the mark accept) into its running forward
# chain; it stays there until fw4 renders again. The file is still installed
# while prerm runs and fw4 reads /usr/share/nftables.d/ itself, so take it
# away first (opkg then finds it gone), and re-render now if fw4 is running.
rm -f /usr/share/nftables.d/chain-pre/forward/10-vpn-passthrough.nft /usr/share/nftables.d/ruleset-post/10-vpn-passthrough.nft
if [ -x /sbin/fw4 ] && nft list table inet fw4 >/dev/null 2>&1; then
	fw4 -q reload
fi
true
