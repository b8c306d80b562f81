#!/bin/sh
# vpn-passthrough: firewall script include (registered by
# /etc/uci-defaults/vpn-passthrough). fw4 sources this after every start and
# reload; `fw4 flush` (firewall stop) deletes every table, ours included, so
# ask the daemon to re-apply its state. UCI is unavailable here (fw4 forbids
# it in includes); procd is asked over ubus. Does nothing if the daemon is not
# running.
ubus call service signal '{"name":"vpn-passthrough","signal":1}' >/dev/null 2>&1
true
