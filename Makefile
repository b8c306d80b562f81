# vpn-passthrough. `make test` and `make demo` do all set-up on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
GO ?= go
BIN := bin/vpn-passthrough
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0)
PKG := github.com/vpn-passthrough/vpn-passthrough
CMD := ./src/cmd/vpn-passthrough
LDFLAGS := -s -w -X main.version=$(VERSION)
# Debian packages the lab and tests need; installed only when missing.
APT_PKGS := nftables conntrack iptables iproute2 qemu-user-static
GO123 := go1.23.12
# issue 11: src/dbus and test/luci run a private dbus-daemon (called with dbus-send) and
# headless Chromium for the LuCI page.
APT_PKGS += dbus-daemon dbus-bin chromium

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

test: deps lint go123 build unit lab test-pkg

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

# ---- OpenWrt packages: cross binaries, .ipk files, sizes, package tests ----
# Package version <base>-r<commits on HEAD>: valid for opkg and for apk, and it
# grows with every commit. Keep IPK_BASE_VERSION equal to PKG_VERSION in
# openwrt-feed/net/vpn-passthrough/Makefile (a test checks).
IPK_BASE_VERSION := 0.1.0
# Same as PKG_MAINTAINER and PKG_LICENSE in the feed Makefiles (a test checks).
MAINTAINER := vpn-passthrough maintainers <maintainers@vpn-passthrough.org>
LICENSE := Apache-2.0
IPK_VERSION := $(IPK_BASE_VERSION)-r$(shell git rev-list --count HEAD 2>/dev/null || echo 1)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
DIST := dist
# OpenWrt package architecture -> Go target (static, CGO_ENABLED=0).
CROSS_ARCHES := mips_24kc mipsel_24kc arm_cortex-a7_neon-vfpv4 aarch64_cortex-a53 x86_64
GOENV_mips_24kc := GOARCH=mips GOMIPS=softfloat
GOENV_mipsel_24kc := GOARCH=mipsle GOMIPS=softfloat
GOENV_arm_cortex-a7_neon-vfpv4 := GOARCH=arm GOARM=7
GOENV_aarch64_cortex-a53 := GOARCH=arm64
GOENV_x86_64 := GOARCH=amd64 GOAMD64=v1
CROSS_LDFLAGS := -s -w -buildid= -X main.version=$(IPK_VERSION)
# Same list as DEPENDS in openwrt-feed/net/vpn-passthrough/Makefile (a test checks).
IPK_DEPENDS := kmod-nft-core,kmod-nft-queue,kmod-nf-conntrack-netlink
IPK_SUGGESTS := kmod-nf-nathelper-extra
IPK_COMMON = -version $(IPK_VERSION) -mtime $(SOURCE_DATE_EPOCH) -maintainer '$(MAINTAINER)' -license $(LICENSE) \
	-url https://github.com/vpn-passthrough/vpn-passthrough -o $(DIST)
IPK_DESC := Real VPN passthrough (PPTP, L2TP, IPsec) through the router NAT.\nKernel conntrack helpers where present (install kmod-nf-nathelper-extra for\nthe PPTP helper), NFQUEUE engines where not; toggling a protocol off blocks it.
LUCI_DESC := LuCI support for vpn-passthrough: settings and live status.
# Packages whose tests also run big-endian under qemu-user (no netlink there).
QEMU_TEST_PKGS := src/packet src/uci src/config src/plan src/ipk src/engine/esp src/engine/pptp
# Packages that also open netlink sockets: only their wire-format tests run
# under qemu-user (NETLINK_NETFILTER does not work there).
QEMU_WIRE_PKGS := ./src/nfqueue/ ./src/ct/
QEMU_WIRE_TESTS := ^(TestParse.*|TestTruncated|TestVerdict.*|TestNoAllocs|TestRememberLost|TestClearHelperMsg|Fuzz.*)$$

.PHONY: test-pkg

cross: $(addprefix cross-,$(CROSS_ARCHES))

cross-%:
	@mkdir -p $(DIST)/bin/$*
	CGO_ENABLED=0 GOOS=linux $(GOENV_$*) $(GO) build -trimpath -ldflags '$(CROSS_LDFLAGS)' -o $(DIST)/bin/$*/vpn-passthrough $(CMD)

bin/mkipk: $(wildcard src/ipk/*.go src/cmd/mkipk/*.go)
	CGO_ENABLED=0 $(GO) build -o $@ ./src/cmd/mkipk

ipk: cross bin/mkipk
	rm -f $(DIST)/*.ipk
	@for a in $(CROSS_ARCHES); do \
		bin/mkipk -name vpn-passthrough -arch $$a -section net $(IPK_COMMON) \
			-depends '$(IPK_DEPENDS)' -suggests '$(IPK_SUGGESTS)' -description '$(IPK_DESC)' \
			-tree files=/ -mode /etc/config/vpn-passthrough=0600 \
			-file $(DIST)/bin/$$a/vpn-passthrough=/usr/bin/vpn-passthrough:0755 \
			-conffile /etc/config/vpn-passthrough -prerm-pkg openwrt-feed/net/vpn-passthrough/prerm-pkg || exit 1; \
	done
	bin/mkipk -name luci-app-vpn-passthrough -arch all -section luci $(IPK_COMMON) \
		-depends 'luci-base,vpn-passthrough' -description '$(LUCI_DESC)' \
		-tree luci-app/htdocs=/www -tree luci-app/root=/ -postinst-pkg luci-app/postinst-pkg

size: ipk
	@printf '%-28s %12s %9s\n' 'binary (stripped)' bytes MiB
	@for a in $(CROSS_ARCHES); do s=$$(stat -c %s $(DIST)/bin/$$a/vpn-passthrough); \
		awk -v a=$$a -v s=$$s 'BEGIN { printf "%-28s %12d %9.2f\n", a, s, s/1048576 }'; done
	@printf '%-54s %12s %9s\n' 'package' bytes MiB
	@for f in $(DIST)/*.ipk; do s=$$(stat -c %s $$f); \
		awk -v f=$${f#$(DIST)/} -v s=$$s 'BEGIN { printf "%-54s %12d %9.2f\n", f, s, s/1048576 }'; done

# The unit tests of the pure packages on big-endian 32-bit MIPS (softfloat).
qemu-test:
	@pkgs=""; for p in $(QEMU_TEST_PKGS); do ls $$p/*_test.go >/dev/null 2>&1 && pkgs="$$pkgs ./$$p/"; done; \
	echo "GOARCH=mips GOMIPS=softfloat go test -exec qemu-mips-static$$pkgs"; \
	CGO_ENABLED=0 GOARCH=mips GOMIPS=softfloat $(GO) test -count=1 -exec qemu-mips-static $$pkgs
	CGO_ENABLED=0 GOARCH=mips GOMIPS=softfloat $(GO) test -count=1 -exec qemu-mips-static -run '$(QEMU_WIRE_TESTS)' $(QEMU_WIRE_PKGS)

# Build every .ipk, take each apart and check it (src/ipk/dist_test.go), and
# run the parser tests big-endian.
test-pkg: ipk qemu-test
	VPNPT_DIST=$(CURDIR)/$(DIST) VPNPT_VERSION=$(IPK_VERSION) $(GO) test -count=1 -v -run 'TestDist|TestFeed' ./src/ipk/

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
