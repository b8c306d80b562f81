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

.PHONY: all build deps test unit lint go123 lab demo cross ipk size bench fuzz qemu-test clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) $(CMD)

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

test: deps lint go123 build unit lab

demo: deps build
	VPNPT_BIN=$(CURDIR)/$(BIN) $(GO) run ./test/cmd/demo

clean:
	rm -rf bin dist
