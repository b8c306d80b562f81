# vpn-passthrough. `make test` and `make demo` do all set-up on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
GO ?= go
BIN := bin/vpn-passthrough
PKG := github.com/vpn-passthrough/vpn-passthrough
CMD := ./src/cmd/vpn-passthrough
# One version for the binary, the .ipk, the .apk and the feed:
# <VERSION_BASE>.<commits on HEAD>-r<PKG_RELEASE>, what apk and opkg accept;
# every commit sorts newer than its parents. A `make dist` tarball has no git
# and carries the file VERSION instead. `make version` prints it.
VERSION_BASE := 0.1
PKG_RELEASE := 1
PKG_VERSION := $(or $(shell cat VERSION 2>/dev/null),$(VERSION_BASE).$(shell git rev-list --count HEAD 2>/dev/null))
VERSION := $(PKG_VERSION)-r$(PKG_RELEASE)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Debian packages the lab and tests need; installed only when missing.
APT_PKGS := nftables conntrack iptables iproute2 qemu-user-static busybox-static
GO123 := go1.23.12
# issue 11: src/dbus and test/luci run a private dbus-daemon (called with dbus-send) and
# headless Chromium for the LuCI page.
APT_PKGS += dbus-daemon dbus-bin chromium
# issue 12: test/kernel runs strongSwan on the router and a far peer (router-own IKE next to
# LAN IPsec); kernel-libipsec (in the extra plugins) carries ESP where the kernel has none.
APT_PKGS += strongswan-charon strongswan-swanctl libcharon-extra-plugins

.PHONY: all build build-dbus deps test unit lint go123 lab demo cross ipk size bench fuzz qemu-test clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) $(CMD)

# The D-Bus service (src/dbus) for Debian-style gateways costs ~1.4 MB, so the
# OpenWrt binary leaves it out; this one has it (daemon --dbus system).
build-dbus:
	CGO_ENABLED=0 $(GO) build -trimpath -tags dbus -ldflags '$(LDFLAGS)' -o $(BIN)-dbus $(CMD)

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "not root: cannot install$$missing (lab tests will skip)"; fi; \
	fi
	$(GO) mod download

lint:
	@out=$$(gofmt -l src test); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The main module must build with OpenWrt 24.10's Go.
go123:
	GOTOOLCHAIN=$(GO123) CGO_ENABLED=0 $(GO) build -o /dev/null $(CMD)
	GOTOOLCHAIN=$(GO123) $(GO) version

unit:
	$(GO) test -count=1 ./src/...

lab: build
	VPNPT_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 15m ./test/...

test: deps lint go123 build unit openwrt-userland lab test-pkg qemu-quick openwrt-luci

demo: deps build
	VPNPT_BIN=$(CURDIR)/$(BIN) $(GO) run ./test/cmd/demo

# Every go test -fuzz target for FUZZTIME each (the seed corpora already run in `make unit`).
FUZZTIME ?= 30s
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' src test); do \
		d=./$$(dirname $$f); \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$d $$t"; $(GO) test -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) $$d; \
		done; \
	done

clean:
	rm -rf bin dist

# ---- OpenWrt packages: cross binaries, .ipk and .apk files, dist, sizes, package tests ----
# Same as PKG_MAINTAINER and PKG_LICENSE in the feed Makefiles (a test checks).
MAINTAINER := vpn-passthrough maintainers <maintainers@vpn-passthrough.org>
LICENSE := Apache-2.0
SOURCE_DATE_EPOCH ?= $(or $(shell git log -1 --format=%ct 2>/dev/null),$(shell stat -c %Y VERSION 2>/dev/null),0)
DIST := dist
# OpenWrt package architecture -> Go target (static, CGO_ENABLED=0).
CROSS_ARCHES := mips_24kc mipsel_24kc arm_cortex-a7_neon-vfpv4 aarch64_cortex-a53 x86_64
GOENV_mips_24kc := GOARCH=mips GOMIPS=softfloat
GOENV_mipsel_24kc := GOARCH=mipsle GOMIPS=softfloat
GOENV_arm_cortex-a7_neon-vfpv4 := GOARCH=arm GOARM=7
GOENV_aarch64_cortex-a53 := GOARCH=arm64
GOENV_x86_64 := GOARCH=amd64 GOAMD64=v1
CROSS_LDFLAGS := -s -w -buildid= -X main.version=$(VERSION)
# Go's linker aligns mips and arm segments to 64 KiB in the file, for kernels
# with large pages; OpenWrt's 32-bit ARM (always 4 KiB pages) and its
# 24Kc/74Kc/1004Kc MIPS targets run 4 KiB pages, and 4 KiB alignment saves
# 30-90 KiB of padding. arm64 keeps 64 KiB (16/64 KiB-page kernels exist).
CROSS_LDFLAGS_mips_24kc := -R=0x1000
CROSS_LDFLAGS_mipsel_24kc := -R=0x1000
CROSS_LDFLAGS_arm_cortex-a7_neon-vfpv4 := -R=0x1000
# The small-flash targets are compiled for size, as OpenWrt compiles C there
# with -Os: no inlining saves ~280 KiB of the mipsel binary; the engines'
# per-packet benchmarks and the idle RSS stay the same within noise (make
# size prints the sizes both ways). The feed Makefile sets the same
# (GO_PKG_GCFLAGS; a test checks).
CROSS_GCFLAGS_SMALL := all=-l
CROSS_GCFLAGS_mips_24kc := $(CROSS_GCFLAGS_SMALL)
CROSS_GCFLAGS_mipsel_24kc := $(CROSS_GCFLAGS_SMALL)
CROSS_GCFLAGS_arm_cortex-a7_neon-vfpv4 := $(CROSS_GCFLAGS_SMALL)
# Same list as DEPENDS in openwrt-feed/net/vpn-passthrough/Makefile (a test checks).
IPK_DEPENDS := kmod-nft-core,kmod-nft-queue,kmod-nf-conntrack-netlink
IPK_SUGGESTS := kmod-nf-nathelper-extra
IPK_COMMON = -version $(VERSION) -mtime $(SOURCE_DATE_EPOCH) -maintainer '$(MAINTAINER)' -license $(LICENSE) \
	-url https://github.com/vpn-passthrough/vpn-passthrough
# Descriptions from the feed Makefiles, as one line (what apk stores).
# Exported, so that recipes quote them as "$$IPK_DESC" whatever they contain.
export IPK_DESC := $(shell sed -n '/^define Package\/vpn-passthrough\/description/,/^endef/{/^define\|^endef/!p}' openwrt-feed/net/vpn-passthrough/Makefile | tr -s ' \n' '  ' | sed 's/^ //;s/ $$//')
export LUCI_DESC := $(shell sed -n 's/^LUCI_DESCRIPTION:=//p' luci-app/Makefile)
# Packages whose tests also run big-endian under qemu-user (no netlink there).
QEMU_TEST_PKGS := src/packet src/uci src/config src/plan src/ipk src/engine/esp src/engine/pptp src/gunzip src/jsondec src/jsonenc src/kvlog
# Their tests that need this machine's kernel (they re-run the test binary in
# a namespace of their own, which qemu-user cannot): left out there.
QEMU_TEST_SKIP := ^TestWatchAddrs$$
# Packages that also open netlink sockets: only their wire-format tests run
# under qemu-user (NETLINK_NETFILTER does not work there).
QEMU_WIRE_PKGS := ./src/nfqueue/ ./src/ct/ ./src/nl/ ./src/nft/
QEMU_WIRE_TESTS := ^(TestParse.*|TestTruncated|TestVerdict.*|TestNoAllocs|TestRememberLost|TestClearHelperMsg|TestAttrsWalk|TestWire.*|TestRulesReadMIPS.*|TestDumpEndedByError|Fuzz.*)$$

.PHONY: test-pkg version dist feed-release apk

version:
	@echo $(VERSION)

# The release tarball the feed Makefile downloads: a commit's tree (HEAD, or
# DIST_REV=<commit>; not the work tree) under vpn-passthrough-<version>/,
# plus VERSION, all stamped with the commit time, gzip -n: the same commit
# gives the same bytes. Also dist/openwrt-feed/, the feed with PKG_VERSION,
# PKG_RELEASE, PKG_HASH and its "# Tarball:" line set for that tarball and
# real folders instead of links (what goes to openwrt/packages and
# openwrt/luci, or into feeds.conf as src-link with the tarball in dl/).
DIST_REV ?= HEAD
DIST_COMMIT = $(shell git rev-parse --verify -q '$(DIST_REV)^{commit}')
DIST_VERSION = $(if $(filter HEAD,$(DIST_REV)),$(PKG_VERSION),$(VERSION_BASE).$(shell git rev-list --count '$(DIST_REV)'))
DIST_TARBALL = $(DIST)/vpn-passthrough-$(DIST_VERSION).tar.gz
dist:
	@[ -n "$(DIST_COMMIT)" ] || { echo "dist: $(DIST_REV) is not a commit here" >&2; exit 1; }
	@[ "$(DIST_REV)" != HEAD ] || git diff --quiet HEAD 2>/dev/null || echo "dist: uncommitted changes are not in the tarball (it is HEAD's tree)" >&2
	@mkdir -p $(DIST) && d=$$(mktemp -d) && trap 'rm -rf $$d' EXIT && \
	echo $(DIST_VERSION) > $$d/VERSION && \
	git -c tar.umask=0022 archive --format=tar --prefix=vpn-passthrough-$(DIST_VERSION)/ --add-file=$$d/VERSION $(DIST_COMMIT) | gzip -9n > $(DIST_TARBALL).tmp && \
	mv $(DIST_TARBALL).tmp $(DIST_TARBALL) && \
	hash=$$(sha256sum $(DIST_TARBALL) | cut -d' ' -f1) && \
	rm -rf $(DIST)/openwrt-feed && tar -xzf $(DIST_TARBALL) -C $$d && \
	cp -RL $$d/vpn-passthrough-$(DIST_VERSION)/openwrt-feed $(DIST)/openwrt-feed && \
	for mk in $(DIST)/openwrt-feed/net/vpn-passthrough/Makefile $(DIST)/openwrt-feed/luci/luci-app-vpn-passthrough/Makefile; do \
		sed -i -e 's/^PKG_VERSION:=.*/PKG_VERSION:=$(DIST_VERSION)/' -e 's/^PKG_RELEASE:=.*/PKG_RELEASE:=$(PKG_RELEASE)/' \
			-e "s/^PKG_HASH:=.*/PKG_HASH:=$$hash/" -e 's/^# Tarball: .*/# Tarball: make dist DIST_REV=$(DIST_COMMIT)/' $$mk || exit 1; done && \
	echo "$$hash  $(DIST_TARBALL)"

# After tagging v<version> and uploading the tarball: point the committed
# feed at that release (PKG_VERSION, PKG_RELEASE, PKG_HASH and the Tarball
# line from `make dist`), e.g. make feed-release DIST_REV=v0.1.120.
feed-release: dist
	@for mk in net/vpn-passthrough/Makefile luci/luci-app-vpn-passthrough/Makefile; do \
		for v in PKG_VERSION PKG_RELEASE PKG_HASH '# Tarball'; do \
			line=$$(grep "^$$v:* " $(DIST)/openwrt-feed/$$mk || grep "^$$v:=" $(DIST)/openwrt-feed/$$mk) || continue; \
			sed -i "s|^$$v:.*|$$line|" openwrt-feed/$$mk || exit 1; done; done
	@git diff --stat openwrt-feed luci-app/Makefile

cross: $(addprefix cross-,$(CROSS_ARCHES))

cross-%:
	@mkdir -p $(DIST)/bin/$*
	CGO_ENABLED=0 GOOS=linux $(GOENV_$*) $(GO) build -trimpath $(if $(CROSS_GCFLAGS_$*),-gcflags='$(CROSS_GCFLAGS_$*)') \
		-ldflags '$(CROSS_LDFLAGS) $(CROSS_LDFLAGS_$*)' -o $(DIST)/bin/$*/vpn-passthrough $(CMD)

bin/mkipk: $(wildcard src/ipk/*.go src/cmd/mkipk/*.go)
	CGO_ENABLED=0 $(GO) build -o $@ ./src/cmd/mkipk

# What mkipk packs, for .ipk and .apk alike (the feed Makefiles say the same;
# src/ipk/feed_test.go and dist_test.go check).
DAEMON_PKG = -name vpn-passthrough -section net $(IPK_COMMON) \
	-source feeds/vpnpt/net/vpn-passthrough -source-name vpn-passthrough \
	-depends '$(IPK_DEPENDS)' -suggests '$(IPK_SUGGESTS)' -description "$$IPK_DESC" \
	-tree files=/ -mode /etc/config/vpn-passthrough=0600 \
	-conffile /etc/config/vpn-passthrough -prerm-pkg openwrt-feed/net/vpn-passthrough/prerm-pkg
DAEMON_BIN = -arch $$a -file $(DIST)/bin/$$a/vpn-passthrough=/usr/bin/vpn-passthrough:0755
LUCI_PKG = -name luci-app-vpn-passthrough -arch all -section luci $(IPK_COMMON) \
	-source feeds/vpnpt/luci/luci-app-vpn-passthrough -source-name luci-app-vpn-passthrough \
	-depends 'luci-base,vpn-passthrough' -description "$$LUCI_DESC" \
	-tree luci-app/htdocs=/www -tree luci-app/root=/ -postinst-pkg luci-app/postinst-pkg

ipk: cross bin/mkipk
	rm -f $(DIST)/*.ipk
	@for a in $(CROSS_ARCHES); do bin/mkipk $(DAEMON_PKG) $(DAEMON_BIN) -o $(DIST) || exit 1; done
	@bin/mkipk $(LUCI_PKG) -o $(DIST)

# apk-tools v3 for `make apk`: APK=/path/to/apk, else the one the OpenWrt
# userland builder makes (test/openwrt/build.sh; about a minute cold, cached).
APK ?=
APK_BIN = $(or $(APK),$(shell test/openwrt/build.sh)/usr/bin/apk)
apk: cross bin/mkipk
	@apk="$(APK_BIN)"; [ -x "$$apk" ] || { echo "make apk: no apk-tools v3 binary at $$apk" >&2; exit 1; }; \
	rm -rf $(DIST)/apk; \
	for a in $(CROSS_ARCHES); do bin/mkipk -apk "$$apk" $(DAEMON_PKG) $(DAEMON_BIN) -o $(DIST)/apk/$$a || exit 1; done; \
	bin/mkipk -apk "$$apk" $(LUCI_PKG) -o $(DIST)/apk/noarch

# Footprint: binary and package sizes per architecture against the mipsel
# goals, what each dependency costs, and the daemon's RSS idle and under load
# with the init script's GOMEMLIMIT/GOGC (root: it runs in the lab).
SIZE_GOAL_BIN := 3670016
SIZE_GOAL_PKG := 1258291
size: ipk apk
	@printf '%-26s %10s %8s %10s %8s %10s %8s\n' arch binary MiB .ipk MiB .apk MiB
	@for a in $(CROSS_ARCHES); do \
		b=$$(stat -c %s $(DIST)/bin/$$a/vpn-passthrough); i=$$(stat -c %s $(DIST)/vpn-passthrough_$(VERSION)_$$a.ipk); \
		p=$$(stat -c %s $(DIST)/apk/$$a/vpn-passthrough-$(VERSION).apk); \
		awk -v a=$$a -v b=$$b -v i=$$i -v p=$$p 'BEGIN { printf "%-26s %10d %8.2f %10d %8.2f %10d %8.2f\n", a, b, b/1048576, i, i/1048576, p, p/1048576 }'; done
	@i=$$(stat -c %s $(DIST)/luci-app-vpn-passthrough_$(VERSION)_all.ipk); p=$$(stat -c %s $(DIST)/apk/noarch/luci-app-vpn-passthrough-$(VERSION).apk); \
		printf '%-26s %10s %8s %10d %8s %10d\n' 'luci-app (all/noarch)' - - $$i - $$p
	@b=$$(stat -c %s $(DIST)/bin/mipsel_24kc/vpn-passthrough); i=$$(stat -c %s $(DIST)/vpn-passthrough_$(VERSION)_mipsel_24kc.ipk); \
		p=$$(stat -c %s $(DIST)/apk/mipsel_24kc/vpn-passthrough-$(VERSION).apk); \
		for x in "binary $$b $(SIZE_GOAL_BIN) 3.5" ".ipk $$i $(SIZE_GOAL_PKG) 1.2" ".apk $$p $(SIZE_GOAL_PKG) 1.2"; do set -- $$x; \
			if [ $$2 -le $$3 ]; then v=met; else v="OVER by $$(( ($$2 - $$3) / 1024 )) KiB"; fi; \
			echo "mipsel goal: $$1 <= $$4 MiB: $$v"; done
	@CGO_ENABLED=0 GOOS=linux $(GOENV_mipsel_24kc) $(GO) build -trimpath -gcflags='$(CROSS_GCFLAGS_mipsel_24kc)' -o $(DIST)/vpn-passthrough-mipsel-unstripped $(CMD)
	@nice -n 10 $(GO) run ./test/cmd/depsize -stripped $(DIST)/bin/mipsel_24kc/vpn-passthrough -variants \
		-gcflags '$(CROSS_GCFLAGS_mipsel_24kc)' -ldflags '$(CROSS_LDFLAGS) $(CROSS_LDFLAGS_mipsel_24kc)' $(DIST)/vpn-passthrough-mipsel-unstripped
	@# RSS: the host build, and a 386 build compiled as mipsel is, 32-bit
	@# like it (pointers, Go's heap arenas), which runs natively here: the
	@# nearest measurable stand-in for the router's figure.
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) -s build && VPNPT_BIN=$(CURDIR)/$(BIN) $(GO) run ./test/cmd/rss && \
		CGO_ENABLED=0 GOARCH=386 $(GO) build -trimpath -gcflags='$(CROSS_GCFLAGS_SMALL)' -ldflags '$(CROSS_LDFLAGS)' -o $(DIST)/vpn-passthrough-386 $(CMD) && \
		VPNPT_BIN=$(CURDIR)/$(DIST)/vpn-passthrough-386 $(GO) run ./test/cmd/rss -label '386 build, 32-bit like mipsel; goal idle <= 8 MiB'; \
	else echo "daemon RSS: not measured (needs root for the lab)"; fi

# ---- QEMU guests (test/qemu, issue 10) ----
# Images come from Debian packages only (test/qemu/build.sh), cached under
# QEMU_BUILD (default /var/cache/vpn-passthrough/qemu, outside the clone on
# purpose: debs, kernels, initramfs images, the real-peer debootstrap root);
# a repeat run downloads nothing.
QEMU_APT_PKGS := qemu-system-x86 qemu-system-mips qemu-system-arm qemu-system-misc debootstrap busybox-static cpio kmod
QEMU_GUESTS := realpeer flowtable mipsel armhf arm64 s390x
QEMU_QUICK := realpeer-quick armhf-quick
.PHONY: qemu-deps qemu-quick qemu-guests qemu-user-test

qemu-deps:
	@missing=""; for p in $(QEMU_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get -o DPkg::Lock::Timeout=900 update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq $$missing >/dev/null; fi

# make test's share: the x86_64 real-peer guest (PPTP, IKEv2, raw ESP with two
# clients, kernel and userspace mode) and one 32-bit guest (armhf).
qemu-quick: qemu-deps
	nice -n 5 $(GO) run ./test/qemu -parallel $(QEMU_QUICK)

# Every guest: all real-peer scenarios, flow offloading, the routers' architectures.
qemu-guests: qemu-deps
	nice -n 5 $(GO) run ./test/qemu $(QEMU_GUESTS)

qemu-test: qemu-user-test qemu-guests

# The unit tests of the pure packages on big-endian 32-bit MIPS (softfloat).
qemu-user-test:
	@pkgs=""; for p in $(QEMU_TEST_PKGS); do ls $$p/*_test.go >/dev/null 2>&1 && pkgs="$$pkgs ./$$p/"; done; \
	echo "GOARCH=mips GOMIPS=softfloat go test -exec qemu-mips-static$$pkgs"; \
	CGO_ENABLED=0 GOARCH=mips GOMIPS=softfloat $(GO) test -count=1 -exec qemu-mips-static -skip '$(QEMU_TEST_SKIP)' $$pkgs
	CGO_ENABLED=0 GOARCH=mips GOMIPS=softfloat $(GO) test -count=1 -exec qemu-mips-static -run '$(QEMU_WIRE_TESTS)' $(QEMU_WIRE_PKGS)

# Build every .ipk and .apk, take each apart and check it against the feed
# Makefiles (src/ipk/dist_test.go, apk_test.go, feed_test.go), install,
# upgrade and remove the .apk with real apk-tools, and run the parser tests
# big-endian.
test-pkg: ipk apk qemu-user-test
	VPNPT_DIST=$(CURDIR)/$(DIST) VPNPT_VERSION=$(VERSION) VPNPT_APK=$(APK_BIN) $(GO) test -count=1 -v -run 'TestDist|TestFeed|TestAPK' ./src/ipk/

# ESP multiplexer: raw ESP through the engine against plain forwarding, both
# directions, medians of several runs, and their ratio (root; figures only).
.PHONY: bench-esp
bench-esp: build
	VPNPT_BIN=$(CURDIR)/$(BIN) $(GO) run ./test/bench/esp

# PPTP GRE through the router: (a) plain forwarding, (b) kernel helper,
# (c) userspace engine, both directions, medians and the ratios c/a and b/a
# (root; figures only), after the engine's per-packet Go benchmarks.
.PHONY: bench-pptp
bench-pptp: build
	$(GO) test -run='^$$' -bench=. -benchtime=1s ./src/engine/pptp/
	VPNPT_BIN=$(CURDIR)/$(BIN) $(GO) run ./test/bench/pptp

bench: bench-esp bench-pptp

# ---- soak (i12): floods, reload storms, table damage and SIGKILLs at once,
# while PPTP and ESP sessions carry traffic; fails on any breach (root).
SOAK_DURATION ?= 2m
.PHONY: soak
soak: build
	VPNPT_BIN=$(CURDIR)/$(BIN) $(GO) run ./test/cmd/soak -duration $(SOAK_DURATION)

# ---- OpenWrt's real userland test bed (test/openwrt, issue 9) ----
# test/openwrt/build.sh builds fw4, ubus, rpcd, procd, uhttpd + LuCI, opkg and apk-tools from the
# sources pinned in test/openwrt/sources.lock ($$OPENWRT_USERLAND_SRC, else ../shared, else a
# hash-checked git download) into a cache reused while sources and recipe are unchanged.
# `make lab` runs the bed's Go tests (./test/openwrt) and test/luci's browser test (chromedp
# v0.12, main module) with the rest of ./test/...; `make openwrt-luci` runs the bed's LuCI test,
# test/openwrt/luci, a module of its own on chromedp v0.14 (go 1.24): moved onto v0.12 it hung or
# got uhttpd's Bad Gateway on its first page load in 3 of about 10 runs, so it stays there.
OPENWRT_APT_PKGS := cmake pkg-config gcc make git curl libjson-c-dev libbsd-dev meson ninja-build \
	libssl-dev zlib1g-dev libzstd-dev busybox-static nftables chromium
APT_PKGS += $(OPENWRT_APT_PKGS)
.PHONY: openwrt-userland openwrt-luci openwrt-test

openwrt-userland:
	@t0=$$(date +%s.%N); root=$$(nice -n 10 test/openwrt/build.sh) || exit 1; \
	awk -v t0=$$t0 -v t1=$$(date +%s.%N) -v r="$$root" 'BEGIN { printf "openwrt userland: %s (%.1f s, cached when unchanged)\n", r, t1-t0 }'

openwrt-luci: build openwrt-userland
	cd test/openwrt/luci && $(GO) vet . && VPNPT_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -timeout 10m .

# Everything of the bed: builder, download path, fw4, procd, ubus/rpcd ACL, opkg, apk, LuCI; and
# how long it took.
openwrt-test: deps build openwrt-userland
	@t0=$$(date +%s); \
	VPNPT_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -v -timeout 15m ./test/openwrt/ && \
	$(MAKE) --no-print-directory openwrt-luci && \
	echo "openwrt-test: the test bed took $$(( $$(date +%s) - t0 )) s"
