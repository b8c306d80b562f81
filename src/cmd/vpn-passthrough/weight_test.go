package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoHeavyStdlib keeps out of the router binary the standard packages
// that cost a lot for what a few lines do here (mipsel figures, Go 1.26):
// crypto/* (crypto/rand links the FIPS module, ~130 KB; unix.Getrandom is
// the same kernel CSPRNG), regexp (~120 KB), and the usual suspects that
// pull in more still. `make size` prints what each dependency costs.
func TestNoHeavyStdlib(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	// D-Bus (godbus: crypto/rand, crypto/sha1, math/big) is allowed its own
	// weight; it may sit behind a build tag. make size reports its cost.
	viaDBus := map[string]bool{}
	if strings.Contains(string(out), "github.com/godbus/dbus/v5\n") {
		dout, err := exec.Command("go", "list", "-deps", "github.com/godbus/dbus/v5").CombinedOutput()
		if err != nil {
			t.Fatalf("go list godbus: %v\n%s", err, dout)
		}
		for _, d := range strings.Fields(string(dout)) {
			viaDBus[d] = true
		}
	}
	for _, dep := range strings.Fields(string(out)) {
		if viaDBus[dep] {
			continue
		}
		// compress/ (~70 KB for /proc/config.gz): src/gunzip does it;
		// flag (~25 KB for seven flags): flags.go; text/tabwriter (~12 KB
		// for one table): status.writeColumns; bufio (~8 KB for one loop);
		// google/nftables (~290 KB; its expression package registers every
		// decoder at init): src/nft/netlink.go; mdlayher/netlink and package
		// net (~200 KB with mdlayher/socket): src/nl; log/slog (~93 KB):
		// src/kvlog writes the same lines; encoding/json (~170 KB with its
		// decoder and base64): src/jsonenc, src/jsondec.
		for _, heavy := range []string{"crypto/", "regexp", "net/http", "text/template", "html/template", "encoding/xml", "math/big", "compress/",
			"flag", "text/tabwriter", "bufio", "github.com/google/nftables", "github.com/google/nftables/", "github.com/mdlayher/", "net",
			"log/slog", "encoding/json"} {
			if dep == strings.TrimSuffix(heavy, "/") || (strings.HasSuffix(heavy, "/") && strings.HasPrefix(dep, heavy)) {
				t.Errorf("the daemon links %s", dep)
			}
		}
	}
}

// TestNoResolver: net.Dial and net.Listen resolve addresses and so link the
// DNS resolver (260 KB on mipsel); the daemon only needs unix sockets
// (net.DialUnix, net.ListenUnix).
func TestNoResolver(t *testing.T) {
	deps, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, deps)
	}
	if strings.Contains(string(deps), "github.com/godbus/dbus/v5\n") {
		// godbus registers TCP transports (net.Dial) at init: with D-Bus
		// linked the resolver comes along, and make size shows the cost.
		t.Log("D-Bus is linked: its TCP transports bring net's resolver; not checked")
		return
	}
	bin := t.TempDir() + "/vpn-passthrough"
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	if strings.Contains(string(out), "net.(*Resolver).lookupIPAddr") {
		t.Error("the daemon links net's DNS resolver: use net.DialUnix/net.ListenUnix, not net.Dial/net.Listen")
	}
	// fmt's scanner (fmt.Sscan and friends, ~50 KB): strconv parses numbers.
	if strings.Contains(string(out), "fmt.(*ss).doScan") {
		t.Error("the daemon links fmt's scanner (fmt.Sscan, Sscanf, Fscan...): parse with strconv")
	}
	// package net's sockets (~60 KB with what they bring): the status
	// socket and ubusd go through src/unixsock.
	if strings.Contains(string(out), "net.(*netFD)") {
		t.Error("the daemon links package net's sockets (net.ListenUnix, net.DialUnix...): use src/unixsock")
	}
	// reflect.DeepEqual (~8 KB): the reload compares plans by their JSON.
	if strings.Contains(string(out), "reflect.deepValueEqual") {
		t.Error("the daemon links reflect.DeepEqual: compare plans with samePlan")
	}
	// encoding/json's decoder (~68 KB; TestNoHeavyStdlib keeps the whole
	// package out): src/jsondec reads what the daemon reads back.
	if strings.Contains(string(out), "encoding/json.(*decodeState)") {
		t.Error("the daemon links encoding/json's decoder (json.Unmarshal, json.NewDecoder): use src/jsondec")
	}
}
