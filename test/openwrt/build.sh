#!/bin/bash
# Build OpenWrt's real userland (the sources pinned in sources.lock) into a cache folder and print
# the install root (a DESTDIR tree: usr/, etc/, www/, lib/...). Reused while the sources and this
# recipe are unchanged: the cache key is a hash of both.
#
#   test/openwrt/build.sh              build if needed, print the root
#   test/openwrt/build.sh --fetch-only resolve and verify the sources only, print where each is
#   test/openwrt/build.sh --treehash DIR  print DIR's tree hash (the one sources.lock pins)
#
# Sources, first found wins: $OPENWRT_USERLAND_SRC, else ../shared/openwrt-userland/src beside the
# repository, else a download from the git URLs in sources.lock at the pinned commits, each tree
# checked against its content hash. Each source is a tarball <name>.tar.gz (luci also
# luci-subset.tar.gz) unpacking to <name>/, or a folder <name>/. OpenWrt's base-files shell
# libraries come from base-files/ inside or beside that folder, else the exact upstream files
# pinned in base-files.lock are downloaded, each checked against its sha256.
#
# Environment: OPENWRT_USERLAND_SRC, OPENWRT_USERLAND_CACHE (default ~/.cache/vpn-passthrough/
# openwrt-userland), OPENWRT_USERLAND_LOCK and OPENWRT_BASEFILES_LOCK (other lock files; the
# download tests use them), OPENWRT_BASEFILES_URL (another base URL for base-files.lock),
# OPENWRT_USERLAND_NO_LOCAL=1 (ignore the override and ../shared: force the download), CI.
# Build flags: ../shared/conventions/openwrt-userland.md (nothing is patched, only flags differ).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
lock=${OPENWRT_USERLAND_LOCK:-$here/sources.lock}
cache=${OPENWRT_USERLAND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vpn-passthrough/openwrt-userland}
jobs=${OPENWRT_USERLAND_JOBS:-$(nproc)}
fetch_only=0
[ "${1:-}" = --fetch-only ] && fetch_only=1

log() { echo "openwrt-userland: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# treehash DIR: a hash of the file contents, executable bits and symlinks, independent of how the
# tree was delivered (tarball, folder, git checkout). Empty folders do not count (git drops them).
treehash() {
	(cd "$1" && {
		find . -path ./.git -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
		find . -path ./.git -prune -o -type f -perm -u=x -print | LC_ALL=C sort
		find . -path ./.git -prune -o -type l -printf '%p -> %l\n' | LC_ALL=C sort
	}) | sha256sum | cut -c1-64
}

if [ "${1:-}" = --treehash ]; then treehash "$2"; exit 0; fi

mapfile -t rows < <(grep -v '^[[:space:]]*\(#\|$\)' "$lock")
[ ${#rows[@]} -gt 0 ] || die "no sources in $lock"

# Find a local source folder: the override, then ../shared (a sibling of the repository).
srcdir=""
if [ "${OPENWRT_USERLAND_NO_LOCAL:-0}" != 1 ]; then
	if [ -n "${OPENWRT_USERLAND_SRC:-}" ]; then
		[ -d "$OPENWRT_USERLAND_SRC" ] || die "OPENWRT_USERLAND_SRC=$OPENWRT_USERLAND_SRC is not a folder"
		srcdir=$(cd "$OPENWRT_USERLAND_SRC" && pwd)
	elif [ -d "$repo/../shared/openwrt-userland/src" ]; then
		srcdir=$(cd "$repo/../shared/openwrt-userland/src" && pwd)
	fi
fi

# local_input NAME: the tarball or folder for NAME in $srcdir, or nothing.
local_input() {
	local n=$1 f
	[ -n "$srcdir" ] || return 0
	for f in "$srcdir/$n.tar.gz" "$srcdir/$n-subset.tar.gz" "$srcdir/$n"; do
		if [ -e "$f" ]; then echo "$f"; return 0; fi
	done
}

# download NAME URL COMMIT HASH PATHS: fetch the pinned commit into $cache/downloads/NAME-COMMIT.tar.gz,
# after checking the tree hash. Works for https and for local remotes (file://, plain paths).
download() {
	local n=$1 url=$2 commit=$3 want=$4 paths=$5 out="$cache/downloads/$n-$commit.tar.gz"
	if [ -f "$out" ]; then echo "$out"; return 0; fi
	command -v git >/dev/null || die "git is needed to download $n (no local source for it)"
	mkdir -p "$cache/downloads"
	local tmp; tmp=$(mktemp -d "$cache/downloads/.dl-$n.XXXXXX")
	log "downloading $n $commit from $url"
	git init -q "$tmp/git"
	if ! git -C "$tmp/git" fetch -q --depth 1 "$url" "$commit" 2>/dev/null; then
		# Servers that refuse a fetch by commit id: fetch everything and pick the commit.
		git -C "$tmp/git" fetch -q "$url" '+refs/*:refs/remotes/src/*' ||
			{ rm -rf "$tmp"; die "download of $n from $url failed"; }
	fi
	git -C "$tmp/git" cat-file -e "$commit^{commit}" 2>/dev/null ||
		{ rm -rf "$tmp"; die "$n: commit $commit not found at $url"; }
	mkdir -p "$tmp/tree/$n"
	local -a sel=()
	[ "$paths" = - ] || IFS=, read -r -a sel <<<"$paths"
	git -C "$tmp/git" archive "$commit" "${sel[@]}" | tar -x -C "$tmp/tree/$n"
	local got; got=$(treehash "$tmp/tree/$n")
	if [ "$got" != "$want" ]; then
		rm -rf "$tmp"
		die "$n: tree hash mismatch for $url $commit: got $got, sources.lock pins $want"
	fi
	tar -C "$tmp/tree" -czf "$tmp/out.tar.gz" "$n"
	mv "$tmp/out.tar.gz" "$out"
	rm -rf "$tmp"
	log "$n verified ($want)"
	echo "$out"
}

# Resolve every source to a tarball or folder, and remember how it was found.
declare -A input via want
names=()
for row in "${rows[@]}"; do
	read -r n url commit hash paths <<<"$row"
	paths=${paths:--}
	names+=("$n")
	want[$n]=$hash
	f=$(local_input "$n")
	if [ -n "$f" ]; then
		input[$n]=$f
		via[$n]=local
	else
		input[$n]=$(download "$n" "$url" "$commit" "$hash" "$paths")
		via[$n]=download
	fi
done

# base-files: OpenWrt's shell libraries (rc.common, functions.sh, service.sh, procd.sh, uci.sh), not
# in sources.lock (they are single files of openwrt/openwrt, far too large to fetch whole). First
# found wins, as for the sources: base-files/ in or beside the local source folder (the override,
# else ../shared/openwrt-userland), used as it is (the shared set holds edited excerpts, with live/
# for a running procd); else the exact upstream files pinned in base-files.lock, each downloaded
# and checked against its sha256, then edited as the comment at their install says.
bflock=${OPENWRT_BASEFILES_LOCK:-$here/base-files.lock}
basefiles=""
bfvia=""
bfdirs=()
[ -z "$srcdir" ] || bfdirs+=("$srcdir/base-files" "$srcdir/../base-files")
for d in "${bfdirs[@]}"; do
	if [ -f "$d/etc/rc.common" ]; then basefiles=$(cd "$d" && pwd); bfvia=local; break; fi
done

# download_basefiles: fetch every file of base-files.lock into $cache/downloads/base-files-<id>/
# (id: a hash of the lock's rows), refusing any file whose sha256 differs from its pin. Cached
# files are checked again on every run. Works for https, http and file:// URLs.
download_basefiles() {
	local base rows id out tmp dest path commit want url got
	base=$(awk '$1 == "base-url" { print $2; exit }' "$bflock")
	base=${OPENWRT_BASEFILES_URL:-$base}
	[ -n "$base" ] || die "no base-url in $bflock"
	rows=$(grep -v '^[[:space:]]*\(#\|$\|base-url[[:space:]]\)' "$bflock")
	[ -n "$rows" ] || die "no files in $bflock"
	id=$(sha256sum <<<"$rows" | cut -c1-16)
	out="$cache/downloads/base-files-$id"
	check() { # check DIR: every pinned file is in DIR with its pinned sha256
		local dest path commit want
		while read -r dest path commit want; do
			[ -f "$1/$dest" ] && [ "$(sha256sum <"$1/$dest" | cut -c1-64)" = "$want" ] || return 1
		done <<<"$rows"
	}
	if [ -d "$out" ] && check "$out"; then echo "$out"; return 0; fi
	command -v curl >/dev/null || die "curl is needed to download OpenWrt's base-files (no local base-files/ folder)"
	mkdir -p "$cache/downloads"
	tmp=$(mktemp -d "$cache/downloads/.dl-base-files.XXXXXX")
	while read -r dest path commit want; do
		url="${base%/}/$commit/$path"
		mkdir -p "$tmp/$(dirname "$dest")"
		log "downloading base-files $dest from $url"
		if ! curl -fsSL --retry 2 --max-time 120 -o "$tmp/$dest" "$url"; then
			rm -rf "$tmp"
			die "base-files: download of $dest from $url failed"
		fi
		got=$(sha256sum <"$tmp/$dest" | cut -c1-64)
		if [ "$got" != "$want" ]; then
			rm -rf "$tmp"
			die "base-files: sha256 mismatch for $dest from $url: got $got, $(basename "$bflock") pins $want"
		fi
	done <<<"$rows"
	# OpenWrt installs rc.common executable (init scripts name it as their interpreter).
	[ ! -f "$tmp/etc/rc.common" ] || chmod 0755 "$tmp/etc/rc.common"
	rm -rf "$out"
	mv "$tmp" "$out"
	log "base-files verified ($(wc -l <<<"$rows") files)"
	echo "$out"
}
if [ -z "$basefiles" ]; then
	basefiles=$(download_basefiles)
	bfvia=download
fi

# input_id FILE|DIR: what the cache key uses for one input.
input_id() {
	if [ -d "$1" ]; then treehash "$1"; else sha256sum <"$1" | cut -c1-64; fi
}

if [ $fetch_only = 1 ]; then
	for n in "${names[@]}"; do printf '%s\t%s\t%s\n' "$n" "${via[$n]}" "${input[$n]}"; done
	printf 'base-files\t%s\t%s\n' "$bfvia" "$basefiles"
	exit 0
fi

key=$({
	for n in "${names[@]}"; do echo "$n $(input_id "${input[$n]}")"; done
	echo "base-files $bfvia $(treehash "$basefiles")"
	sha256sum <"${BASH_SOURCE[0]}"
} | sha256sum | cut -c1-16)
dest="$cache/$key"
if [ -f "$dest/.done" ]; then
	echo "$dest/root"
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$dest/.done" ]; then echo "$dest/root"; exit 0; fi

# Debian packages the build needs: install the missing ones as root, else name them.
need=(cmake pkg-config libjson-c-dev libbsd-dev meson ninja-build libssl-dev zlib1g-dev libzstd-dev busybox-static nftables gcc make)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		log "installing ${missing[*]}"
		apt-get -o DPkg::Lock::Timeout=900 update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${missing[@]}" >&2
	else
		die "missing Debian packages: ${missing[*]}"
	fi
fi

t0=$(date +%s)
work="$dest.tmp.$$"
rm -rf "$work"
mkdir -p "$work/src" "$work/build"
root="$work/root"
# OPENWRT_USERLAND_KEEP=1 keeps a failed build's folder for a look.
[ "${OPENWRT_USERLAND_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
for n in "${names[@]}"; do
	f=${input[$n]}
	if [ -d "$f" ]; then cp -a "$f" "$work/src/$n"; else tar -xzf "$f" -C "$work/src"; fi
	[ -d "$work/src/$n" ] || die "$f does not unpack to a folder $n/"
	chmod -R u+w "$work/src/$n"
	got=$(treehash "$work/src/$n")
	if [ "$got" != "${want[$n]}" ]; then
		if [ "${via[$n]}" = download ] || [ "${CI:-}" = true ]; then
			die "$n: tree hash $got differs from sources.lock (${want[$n]}) for $f"
		fi
		log "WARNING: $n from $f differs from sources.lock (tree hash $got); building it anyway"
	fi
done

S=$work/src
B=$work/build
export PKG_CONFIG_PATH=$root/usr/lib/pkgconfig
INC="-I$root/usr/include"
LIBS="-L$root/usr/lib -Wl,-rpath-link,$root/usr/lib"

# cm NAME SRCDIR [cmake args...]: configure, build and install one cmake project.
cm() {
	local n=$1 s=$2; shift 2
	local t=$(date +%s)
	cmake -S "$s" -B "$B/$n" -G 'Unix Makefiles' -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_PREFIX_PATH="$root/usr" -DCMAKE_C_FLAGS="$INC ${CFLAGS_EXTRA:-}" \
		-DCMAKE_EXE_LINKER_FLAGS="$LIBS ${LDFLAGS_EXTRA:-}" -DCMAKE_SHARED_LINKER_FLAGS="$LIBS ${LDFLAGS_EXTRA:-}" \
		-DCMAKE_MODULE_LINKER_FLAGS="$LIBS" "$@" >"$B/$n.log" 2>&1 ||
		{ tail -30 "$B/$n.log" >&2; die "cmake configure of $n failed"; }
	make -C "$B/$n" -j"$jobs" ${MAKE_TARGET:-} >>"$B/$n.log" 2>&1 ||
		{ tail -30 "$B/$n.log" >&2; die "build of $n failed"; }
	if [ -z "${MAKE_TARGET:-}" ]; then
		make -C "$B/$n" install DESTDIR="$root" >>"$B/$n.log" 2>&1 ||
			{ tail -30 "$B/$n.log" >&2; die "install of $n failed"; }
	fi
	log "built $n ($(($(date +%s) - t)) s)"
}

mkdir -p "$root"
cm libubox "$S/libubox" -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
cm ubus "$S/ubus" -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
cm uci "$S/uci" -DBUILD_LUA=OFF
cm ucode "$S/ucode" -DNL80211_SUPPORT=OFF -DRTNL_SUPPORT=OFF -DUBUS_SUPPORT=ON -DUCI_SUPPORT=ON \
	-DULOOP_SUPPORT=ON -DSOCKET_SUPPORT=ON -DLOG_SUPPORT=ON -DDEBUG_SUPPORT=ON -DFS_SUPPORT=ON \
	-DMATH_SUPPORT=ON -DRESOLV_SUPPORT=ON -DSTRUCT_SUPPORT=ON -DZLIB_SUPPORT=OFF -DDIGEST_SUPPORT=OFF
CFLAGS_EXTRA=-D_GNU_SOURCE= cm rpcd "$S/rpcd" -DRPCSYS_SUPPORT=OFF -DIWINFO_SUPPORT=OFF -DUCODE_SUPPORT=ON
CFLAGS_EXTRA='-D_GNU_SOURCE= -Wno-error -Wno-stringop-overread' cm uhttpd "$S/uhttpd" \
	-DUBUS_SUPPORT=ON -DUCODE_SUPPORT=ON -DLUA_SUPPORT=OFF -DTLS_SUPPORT=OFF
CFLAGS_EXTRA='-D_GNU_SOURCE= -Wno-error' cm lucihttp "$S/lucihttp" -DBUILD_LUA=OFF -DBUILD_UCODE=ON -DBUILD_TESTS=OFF
cm udebug "$S/udebug"
# procd: only the service manager (not the jail/ujail/utrace tools); strlcpy from libbsd.
CFLAGS_EXTRA='-D_GNU_SOURCE= -include bsd/string.h -Wno-format-overflow' MAKE_TARGET=procd \
	cm procd "$S/procd" -DJAIL_SUPPORT=OFF -DSECCOMP_SUPPORT=OFF -DUTRACE_SUPPORT=OFF -DCMAKE_C_STANDARD_LIBRARIES=-lbsd
install -D -m 0755 "$B/procd/procd" "$root/usr/sbin/procd"
CFLAGS_EXTRA=-fcommon cm opkg "$S/opkg-lede" -DBUILD_TESTS=OFF
# rpcd-mod-luci (the luci-rpc object) is not built: it includes <iwinfo.h>, and libiwinfo is not
# among the pinned sources. LuCI's own rpcd ucode plugin (luci getFeatures etc.) is installed.

# LuCI's core.so (relinked with -lcrypt after the objects: Debian's ld --as-needed drops it
# otherwise) and ucode-mod-html (one compiler line, as its OpenWrt Makefile does).
t=$(date +%s)
lb=$S/luci/modules/luci-base/src
make -C "$lb" compile CFLAGS="-O2 $INC" FPIC=-fPIC LUCI_VERSION=test LUCI_GITBRANCH=test >"$B/luci-base.log" 2>&1 ||
	{ tail -30 "$B/luci-base.log" >&2; die "build of luci-base core.so failed"; }
gcc -shared -o "$lb/core.so" "$lb/lib/luci.o" "$lb/lib/lmo.o" "$lb/lib/plural_formula.o" -lcrypt
nm -D "$lb/core.so" | grep -q ' U crypt' || die "luci core.so lost its crypt reference"
make -C "$lb" install DESTDIR="$root" >>"$B/luci-base.log" 2>&1 || die "install of luci-base core.so failed"
gcc -O2 -fPIC $INC -Wall -ffunction-sections -Wl,--gc-sections -shared \
	-o "$root/usr/lib/ucode/html.so" "$S/luci/contrib/package/ucode-mod-html/src/html.c" $LIBS ||
	die "build of ucode-mod-html failed"
log "built luci core.so + html.so ($(($(date +%s) - t)) s)"

# apk-tools v3 (static, no lua/docs/help).
t=$(date +%s)
(cd "$S/apk-tools" && meson setup "$B/apk" -Dlua=disabled -Ddocs=disabled -Dhelp=disabled -Dpython=disabled \
	-Dtests=disabled -Ddefault_library=static -Dprefix=/usr >"$B/apk.log" 2>&1 &&
	ninja -C "$B/apk" -j"$jobs" >>"$B/apk.log" 2>&1) ||
	{ tail -30 "$B/apk.log" >&2; die "build of apk-tools failed"; }
install -D -m 0755 "$B/apk/src/apk" "$root/usr/bin/apk"
log "built apk-tools ($(($(date +%s) - t)) s)"

# Files that install as they stand: fw4, rpcd's ACL for unauthenticated requests (what OpenWrt's
# rpcd package installs), LuCI's ucode/htdocs/root trees, base-files excerpts.
cp -a "$S/firewall4/root/." "$root/"
install -D -m 0644 "$S/rpcd/unauthenticated.json" "$root/usr/share/rpcd/acl.d/unauthenticated.json"
for d in modules/luci-base themes/luci-theme-bootstrap applications/luci-app-firewall; do
	[ -d "$S/luci/$d/root" ] && cp -a "$S/luci/$d/root/." "$root/"
	[ -d "$S/luci/$d/htdocs" ] && mkdir -p "$root/www" && cp -a "$S/luci/$d/htdocs/." "$root/www/"
	[ -d "$S/luci/$d/ucode" ] && mkdir -p "$root/usr/share/ucode/luci" && cp -a "$S/luci/$d/ucode/." "$root/usr/share/ucode/luci/"
done
# base-files: the local set (live/, the set used with a running procd, over the plain excerpts),
# or the downloaded upstream files, which the bed then edits as follows (and only so):
#  - lib/functions/procd.sh: the bed has no /sbin/validate_data (ubox, which provides it, is not
#    among the pinned sources), so a line appended to procd.sh unsets uci_load_validate and
#    uci_validate_section. Init scripts that check for them then take their path for a procd
#    without validation, as with the shared excerpts, which leave the two out. On a router,
#    validate_data is there and the upstream functions run.
cp -a "$basefiles/etc/." "$root/etc/"
mkdir -p "$root/lib"
cp -a "$basefiles/lib/." "$root/lib/"
[ ! -d "$basefiles/live/lib" ] || cp -a "$basefiles/live/lib/." "$root/lib/"
chmod -R u+w "$root/etc" "$root/lib"
if [ "$bfvia" = download ]; then
	f=$root/lib/functions/procd.sh
	grep -q '^uci_load_validate()' "$f" || die "the pinned procd.sh has no uci_load_validate: review the bed's edit in build.sh"
	printf '\n# test/openwrt bed: no /sbin/validate_data here (see build.sh)\nunset -f uci_load_validate uci_validate_section\n' >>"$f"
	log "edited base-files: lib/functions/procd.sh without the validation helpers (no validate_data in the bed)"
fi
# Keep the sources the tests need as data (fw4's mocks and test suite).
mkdir -p "$root/usr/share/openwrt-src"
cp -a "$S/firewall4/tests" "$root/usr/share/openwrt-src/firewall4-tests"
cp -a "$S/firewall4/run_tests.sh" "$root/usr/share/openwrt-src/firewall4-run_tests.sh" 2>/dev/null || true

# Debian has merged /usr (/sbin -> usr/sbin, /lib -> usr/lib, /bin -> usr/bin): keep everything
# under usr/ so that one overlay on /usr puts the OpenWrt paths (/sbin/fw4, /lib/functions.sh) in place.
for d in sbin bin lib; do
	if [ -d "$root/$d" ]; then mkdir -p "$root/usr/$d"; cp -a "$root/$d/." "$root/usr/$d/"; rm -rf "${root:?}/$d"; fi
done
ln -sf opkg-cl "$root/usr/bin/opkg"
ln -sf ../bin/uci "$root/usr/sbin/uci"
ln -sf ../bin/uhttpd "$root/usr/sbin/uhttpd"

{
	for n in "${names[@]}"; do echo "$n ${via[$n]} ${input[$n]}"; done
	echo "base-files $bfvia $basefiles"
	echo "built in $(($(date +%s) - t0)) s"
} >"$work/SOURCES"
rm -rf "$work/src" "$work/build"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
touch "$dest/.done"
log "userland built in $(($(date +%s) - t0)) s: $dest/root"
echo "$dest/root"
