#!/bin/bash
# test/qemu/build.sh: the QEMU guest images, from Debian packages only.
#
#   test/qemu/build.sh ARCH...        ARCH: amd64 mipsel armhf arm64 s390x
#
# For every ARCH: the Debian kernel (apt-get download + dpkg-deb -x, depmod)
# and base-ARCH.cpio.gz, a busybox-static initramfs with nft, ip, conntrack
# and kmod from Debian's ARCH packages, the whole net/netfilter,
# net/ipv4/netfilter and net/ipv6/netfilter module trees (plus veth and what
# they need) and a /sbin/modprobe, so the kernel autoloads the rest.
# For amd64 also root-amd64/, the real-peer root: debootstrap --variant=minbase
# with the VPN daemons (pptpd, pptp-linux, xl2tpd, libreswan; strongSwan's
# charon and swanctl unpacked beside libreswan, which Debian declares in
# conflict with it), the whole kernel module tree, shared with the guest
# over 9p; and init9p-amd64.cpio.gz, the initramfs that mounts it.
#
# Everything lands in $QEMU_BUILD (default <repo>/build/qemu): debs/ARCH/*.deb,
# kernel/ARCH/, the cpio files and root-amd64/. Each step leaves a stamp; a
# repeat run downloads nothing. Delete the folder to start over. Nothing is
# installed on the host: the VPN daemons only exist inside root-amd64.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
B=${QEMU_BUILD:-/var/cache/vpn-passthrough/qemu}
MIRROR=${QEMU_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
mkdir -p "$B"
log() { echo "qemu-build: $*" >&2; }

# Packages in the real-peer root (debootstrap --include).
ROOT_PKGS=bind9-host,iproute2,nftables,conntrack,kmod,iputils-ping,procps,psmisc,ppp,pptpd,pptp-linux,xl2tpd,libreswan,libgmp10,libssl3,busybox-static,util-linux
# strongSwan, unpacked into the root with dpkg-deb -x (not dpkg: libreswan conflicts).
SWAN_DEBS="libstrongswan libstrongswan-standard-plugins strongswan-libcharon strongswan-charon strongswan-swanctl"
# Userland of the initramfs guests (closure of their Depends).
BASE_PKGS="nftables iproute2 conntrack kmod"
# Not needed to run those binaries (maintainer-script machinery, alternatives).
SKIP_RE='^(debconf|cdebconf|dpkg|tar|install-info|libdebian-installer4|libnewt0.52|libslang2|libtextwrap1|readline-common|libtirpc-common|libcap2-bin|perl-base|debianutils|init-system-helpers|usrmerge|libc-bin)$'

kmeta() {
	case $1 in
	amd64) echo linux-image-amd64 ;; mipsel) echo linux-image-4kc-malta ;;
	armhf) echo linux-image-armmp ;; arm64) echo linux-image-arm64 ;; s390x) echo linux-image-s390x ;;
	*) log "unknown arch $1"; exit 2 ;;
	esac
}

ensure_arch() {
	local a=$1 native
	native=$(dpkg --print-architecture)
	[ "$a" = "$native" ] && return 0
	if ! dpkg --print-foreign-architectures | grep -qx "$a"; then
		log "dpkg --add-architecture $a"
		dpkg --add-architecture "$a"
		apt-get -o DPkg::Lock::Timeout=900 update -qq
	elif ! apt-cache show "busybox-static:$a" >/dev/null 2>&1; then
		apt-get -o DPkg::Lock::Timeout=900 update -qq
	fi
}

# download ARCH PKG...: apt-get download what debs/ARCH does not hold yet.
download() {
	local a=$1; shift
	local d=$B/debs/$a missing=() p n
	mkdir -p "$d"
	for p in "$@"; do
		n=${p%%:*}
		compgen -G "$d/${n}_*.deb" >/dev/null || missing+=("$n:$a")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "apt-get download (${a}): ${missing[*]}"
	(cd "$d" && apt-get download -qq -o APT::Sandbox::User=root "${missing[@]}")
}

deb() { ls "$B/debs/$1/${2}_"*.deb | head -n1; }

kernel() {
	local a=$1 meta real
	[ -e "$B/kernel/$a/.done" ] && return 0
	ensure_arch "$a"
	meta=$(kmeta "$a")
	real=$(apt-cache depends "$meta:$a" | awk '/Depends: linux-image-/{sub(/:.*/,"",$2); print $2; exit}')
	[ -n "$real" ] || { log "no kernel package behind $meta:$a"; exit 1; }
	download "$a" "$real"
	rm -rf "$B/kernel/$a"; mkdir -p "$B/kernel/$a"
	dpkg-deb -x "$(deb "$a" "$real")" "$B/kernel/$a"
	kver=$(ls "$B/kernel/$a/lib/modules")
	depmod -b "$B/kernel/$a" "$kver"
	echo "$kver" >"$B/kernel/$a/kver"
	touch "$B/kernel/$a/.done"
}
kver() { cat "$B/kernel/$1/kver"; }

# modclosure KTREE KVER MOD...: the modules (paths relative to the version
# directory) MOD... need, dependencies first, from modules.dep.
modclosure() {
	local t=$1 v=$2; shift 2
	awk -v want="$*" '
		BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) wanted[w[i]] = 1 }
		{ sub(/:$/, "", $1); path = $1; name = path; sub(/.*\//, "", name); sub(/\.ko(\.[a-z]+)?$/, "", name)
		  gsub(/-/, "_", name); byname[name] = path; dep[path] = ""
		  for (i = 2; i <= NF; i++) dep[path] = dep[path] " " $i }
		function visit(p,   i, n, d) { if (p in seen) return; seen[p] = 1
			n = split(dep[p], d, " "); for (i = 1; i <= n; i++) visit(d[i]); print p }
		END { for (m in wanted) { k = m; gsub(/-/, "_", k); if (k in byname) visit(byname[k]) } }
	' <(sed 's/: */: /' "$t/lib/modules/$v/modules.dep")
}

# busybox_links DIR: busybox applet links for what DIR lacks.
busybox_links() {
	local r=$1 app
	for app in $(/bin/busybox --list); do
		[ -e "$r/bin/$app" ] || [ -e "$r/sbin/$app" ] || [ -e "$r/usr/bin/$app" ] || [ -e "$r/usr/sbin/$app" ] || ln -s busybox "$r/bin/$app"
	done
}

mkcpio() { (cd "$1" && find . -print0 | cpio --null -o -H newc --quiet --owner 0:0) | gzip -1 >"$2.tmp" && mv "$2.tmp" "$2"; }

base() {
	local a=$1 v s pkgs m
	[ -e "$B/base-$a.cpio.gz" ] && return 0
	kernel "$a"
	v=$(kver "$a")
	pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
		$(printf "%s:$a " $BASE_PKGS) | grep -v '^[ <]' | grep ":$a\$" | sed "s/:$a\$//" | grep -Ev "$SKIP_RE" | sort -u)
	download "$a" $pkgs busybox-static
	# netbase (Architecture: all): /etc/protocols and /etc/services, which
	# nft needs to resolve names like esp and ah.
	compgen -G "$B/debs/$a/netbase_*.deb" >/dev/null || (cd "$B/debs/$a" && apt-get download -qq -o APT::Sandbox::User=root netbase)
	s=$B/stage/base-$a
	rm -rf "$s"; mkdir -p "$s"
	for p in $pkgs busybox-static netbase; do dpkg-deb -x "$(deb "$a" "$p")" "$s"; done
	rm -rf "$s/usr/share/doc" "$s/usr/share/man" "$s/usr/share/locale" "$s/usr/share/info"
	mkdir -p "$s/bin" "$s/sbin" "$s/proc" "$s/sys" "$s/dev" "$s/tmp" "$s/run" "$s/etc"
	busybox_links "$s"
	# The whole netfilter trees, veth, and what they need.
	(cd "$B/kernel/$a/lib/modules/$v" && find kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6/netfilter \
		kernel/net/bridge/netfilter -name '*.ko*' 2>/dev/null) >"$s/.mods"
	# ts_*: text-search algorithms helpers (amanda, ...) request at run time.
	for m in veth crc32c_generic libcrc32c nfnetlink_queue xt_NFQUEUE ts_kmp ts_bm ts_fsm; do echo "$m"; done >>"$s/.mods"
	sed -i 's@.*/@@; s@\.ko.*@@' "$s/.mods"
	modclosure "$B/kernel/$a" "$v" $(cat "$s/.mods") | while read -r m; do
		mkdir -p "$s/lib/modules/$v/$(dirname "$m")"
		cp "$B/kernel/$a/lib/modules/$v/$m" "$s/lib/modules/$v/$m"
	done
	rm -f "$s/.mods"
	cp "$B/kernel/$a/lib/modules/$v"/modules.{builtin,builtin.modinfo,order} "$s/lib/modules/$v/" 2>/dev/null || true
	depmod -b "$s" "$v"
	install -m 0755 "$here/guest/init" "$s/init"
	mkcpio "$s" "$B/base-$a.cpio.gz"
	rm -rf "$s"
	log "base-$a.cpio.gz ($(du -h "$B/base-$a.cpio.gz" | cut -f1), kernel $v)"
}

root_amd64() {
	local r=$B/root-amd64 v
	kernel amd64
	v=$(kver amd64)
	if [ ! -e "$r/.done" ]; then
		rm -rf "$r"
		mkdir -p "$B/debs/amd64-debootstrap"
		log "debootstrap --variant=minbase $SUITE (real-peer root)"
		debootstrap --variant=minbase --include="$ROOT_PKGS" --cache-dir="$B/debs/amd64-debootstrap" \
			"$SUITE" "$r" "$MIRROR" >"$B/debootstrap.log" 2>&1 || { tail -n 30 "$B/debootstrap.log"; exit 1; }
		download amd64 $SWAN_DEBS
		for p in $SWAN_DEBS; do dpkg-deb -x "$(deb amd64 "$p")" "$r"; done
		[ -L "$r/lib" ] || { log "root-amd64: /lib is no longer a symlink"; exit 1; }
		# The root is merged-/usr: dpkg-deb -x over it would turn the /lib
		# symlink into a directory, so the modules go to /usr/lib/modules.
		mkdir -p "$r/usr/lib/modules"
		cp -a "$B/kernel/amd64/lib/modules/$v" "$r/usr/lib/modules/"
		depmod -b "$r" "$v"
		rm -rf "$r/var/cache/apt/archives/"*.deb "$r/usr/share/doc" "$r/usr/share/man" "$r/usr/share/locale"
		touch "$r/.done"
	fi
	if [ ! -e "$B/init9p-amd64.cpio.gz" ]; then
		local s=$B/stage/init9p-amd64
		rm -rf "$s"; mkdir -p "$s/bin" "$s/mods" "$s/proc" "$s/sys" "$s/dev" "$s/lower" "$s/upper" "$s/newroot"
		cp /bin/busybox "$s/bin/busybox"
		busybox_links "$s"
		modclosure "$B/kernel/amd64" "$v" virtio_pci virtio_net 9pnet_virtio 9p overlay | while read -r m; do
			cp "$B/kernel/amd64/lib/modules/$v/$m" "$s/mods/"
			echo "${m##*/}" >>"$s/mods/order"
		done
		install -m 0755 "$here/guest/init9p" "$s/init"
		mkcpio "$s" "$B/init9p-amd64.cpio.gz"
		rm -rf "$s"
	fi
	log "root-amd64 ready (kernel $v)"
}

[ $# -gt 0 ] || { echo "usage: $0 ARCH... (amd64 mipsel armhf arm64 s390x); amd64 also builds the real-peer root" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { log "needs root (debootstrap, dpkg --add-architecture)"; exit 1; }
for a in "$@"; do
	case $a in
	amd64) root_amd64 ;;
	*) base "$a" ;;
	esac
done
echo "$B"
