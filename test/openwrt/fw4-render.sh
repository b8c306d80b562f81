#!/bin/bash
# Render OpenWrt's default firewall with the REAL fw4 (built by build.sh) for a router whose zone
# lan holds the given LAN devices and zone wan the WAN device, with the package's fw4 includes
# from INCLUDES (a folder laid out like /usr/share/nftables.d; "-" for none), and print the ruleset
# with every include path mapped to a host path, ready for `nft -f` in a lab router (root).
#   test/openwrt/fw4-render.sh --lan r-lan1 --lan r-lan2 --wan r-wan [--includes DIR|-]
# fw4 renders a ct helper only when the kernel has its module (/sys/module/nf_conntrack_*), so
# the output follows this kernel, as fw4 on a router follows its own (a PPTP helper built into
# the kernel counts as present). Cached under the userland's
# cache folder by every input.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lan=() wan="" inc="-"
while [ $# -gt 0 ]; do
	case $1 in
	--lan) lan+=("$2"); shift 2 ;;
	--wan) wan=$2; shift 2 ;;
	--includes) inc=$2; shift 2 ;;
	*) echo "fw4-render: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ ${#lan[@]} -gt 0 ] && [ -n "$wan" ] || { echo "fw4-render: need --lan and --wan" >&2; exit 2; }
[ "$inc" = - ] || inc=$(cd "$inc" && pwd)

root=$("$here/build.sh")
key=$({
	echo "$root" "${lan[*]}" "$wan" "$inc"
	[ "$inc" = - ] || "$here/build.sh" --treehash "$inc"
	ls -d /sys/module/nf_conntrack_* 2>/dev/null || true
	grep -c ' pptp_expectfn$' /proc/kallsyms 2>/dev/null || true
	sha256sum "${BASH_SOURCE[0]}" "$here/bed-setup.sh"
} | sha256sum | cut -c1-16)
cache="$(dirname "$root")/fw4-render"
out="$cache/$key.nft"
if [ -f "$out" ]; then cat "$out"; exit 0; fi
mkdir -p "$cache"
scratch=$(mktemp -d /var/tmp/vpt-fw4-render.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

builtin_pptp=0
if [ ! -d /sys/module/nf_conntrack_pptp ] && grep -q ' pptp_expectfn$' /proc/kallsyms 2>/dev/null; then
	builtin_pptp=1
fi

# Inside: point the zones at the devices, install the includes, render.
{
	echo 'set -e'
	echo 'uci -q delete firewall.@zone[0].network || true'
	echo 'uci -q delete firewall.@zone[1].network || true'
	for d in "${lan[@]}"; do echo "uci add_list firewall.@zone[0].device='$d'"; done
	echo "uci add_list firewall.@zone[1].device='$wan'"
	echo 'uci commit firewall'
	if [ "$builtin_pptp" = 1 ]; then
		# fw4 offers a helper only if /sys/module/<module> exists; a helper built into the
		# kernel has no such folder. Show it, as a router with the module loaded does.
		echo 'mods=$(ls /sys/module); mount -t tmpfs tmpfs /sys/module'
		echo 'for m in $mods nf_conntrack_pptp; do mkdir -p /sys/module/$m; done'
	fi
	echo 'fw4 print'
} >"$scratch/render.sh"
# The includes go into the /usr overlay's upper layer before it is mounted (host folders under
# /tmp and /var are not visible inside); the script goes in on stdin.
if [ "$inc" != - ]; then
	mkdir -p "$scratch/bed/usr.up/share/nftables.d"
	cp -a "$inc/." "$scratch/bed/usr.up/share/nftables.d/"
fi
unshare --mount --net --propagation private -- /bin/dash "$here/bed-setup.sh" "$root" "$scratch/bed" \
	/bin/sh -s <"$scratch/render.sh" >"$scratch/out.nft" 2>"$scratch/err" || {
	cat "$scratch/err" >&2
	echo "fw4-render: real fw4 failed" >&2
	exit 1
}
# Map the bed's include paths to host paths: our includes to INCLUDES, fw4's own to the root.
sed -e "s#include \"/usr/share/nftables.d/#include \"${inc}/#" \
	-e "s#include \"/etc/nftables.d/#include \"${root}/etc/nftables.d/#" "$scratch/out.nft" >"$scratch/mapped.nft"
if grep -n 'include "' "$scratch/mapped.nft" | grep -v -e "include \"$inc/" -e "include \"$root/" >&2; then
	echo "fw4-render: an include path the lab cannot map (above)" >&2
	exit 1
fi
mv "$scratch/mapped.nft" "$out"
cat "$out"
