#!/bin/sh
# /vpt/repo/test/openwrt/fw4-render.sh in the architecture guests: a
# stand-in for the real script, which runs real fw4, an x86_64 build of
# OpenWrt's userland this guest cannot run. Before the boot the host
# rendered with real fw4 (test/qemu/main.go) the ruleset of the lab's
# routers with two and three LAN devices and the package's includes, into
# /vpt/fw4/LAN,LAN...@WAN.nft; this prints the one the lab asks for, with the
# same arguments, and fails, naming it, for anything else.
lan="" wan="" inc=-
while [ $# -gt 0 ]; do
	case $1 in
	--lan) lan="$lan${lan:+,}$2"; shift 2 ;;
	--wan) wan=$2; shift 2 ;;
	--includes) inc=$2; shift 2 ;;
	*) echo "fw4-render (guest stand-in): unknown argument $1" >&2; exit 2 ;;
	esac
done
if [ "$inc" != /vpt/repo/files/usr/share/nftables.d ]; then
	echo "fw4-render (guest stand-in): the host rendered fw4 with the package's includes only, not --includes $inc" >&2
	exit 1
fi
f=/vpt/fw4/$lan@$wan.nft
if [ ! -f "$f" ]; then
	echo "fw4-render (guest stand-in): the host rendered no ruleset for LAN $lan, WAN $wan ($f)" >&2
	exit 1
fi
cat "$f"
