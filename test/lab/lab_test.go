package lab

// These tests check the lab and its peers WITHOUT the daemon: with the
// firewall state lab.md describes added by hand, the peers must see
// passthrough work, and without it they must see it fail. They are the proof
// that the daemon scenarios (test/kernel) can fail.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemovePeerCache()
	os.Exit(code)
}

func TestTopology(t *testing.T) {
	l := Start(t, Config{Clients: 3})
	out, err := l.RouterExec("ip", "-4", "route", "show", "default")
	if err != nil || !strings.Contains(out, "dev r-wan") {
		t.Errorf("router default route: %q %v", out, err)
	}
	out, err = l.RouterExec("cat", "/proc/sys/net/ipv4/ip_forward")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("router ip_forward: %q %v", out, err)
	}
	// The server has no route back to the LAN subnets.
	if out, err := l.Exec(l.Server.NS, "ip", "-4", "route", "get", "10.10.1.2"); err == nil {
		t.Errorf("the WAN server can route to the LAN: %s", out)
	}
	for _, c := range l.Clients {
		out, err := l.Exec(c.NS, "ip", "-4", "route", "get", l.Server.Addr.String())
		if err != nil || !strings.Contains(out, "via "+c.Gateway.String()) {
			t.Errorf("%s: route to the server %q, %v; want via %s", c.Name, out, err, c.Gateway)
		}
	}
	fw4, err := l.NftListTable("inet", "fw4")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fw4, `iifname { "r-lan1", "r-lan2", "r-lan3" } jump forward_lan`) {
		t.Errorf("fw4 was not loaded with the lab's LAN devices:\n%s", fw4)
	}
	// The package's own fw4 includes are rendered, as on a router with the
	// package installed: its chain-pre/forward rules come first in forward.
	incs, _ := filepath.Glob(filepath.Join(l.Repo, "files", "usr", "share", "nftables.d", "chain-pre", "forward", "*.nft"))
	if len(incs) > 0 {
		tbl, err := l.ListTable("inet", "fw4")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range tbl.Rules {
			if r.Chain == "forward" {
				if strings.HasPrefix(r.Comment, "!fw4:") {
					t.Errorf("forward starts with fw4's %q, not the package's chain-pre include %v", r.Comment, incs)
				}
				break
			}
		}
	}
}

// TestFW4ChainPreInclude loads a chain-pre/forward fragment the way fw4
// would render the package's include, and checks it lands first in forward.
func TestFW4ChainPreInclude(t *testing.T) {
	l := Start(t, Config{Includes: "-"})
	dir := t.TempDir()
	p := filepath.Join(dir, "chain-pre", "forward", "50-lab.nft")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("meta mark & 0x00ff0000 == 0x00560000 counter accept comment \"lab chain-pre\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.ReloadFW4(dir); err != nil {
		t.Fatal(err)
	}
	tbl, err := l.ListTable("inet", "fw4")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tbl.Rules {
		if r.Chain == "forward" {
			if r.Comment != "lab chain-pre" {
				t.Errorf("first rule of forward is %q, want the chain-pre include", r.Comment)
			}
			return
		}
	}
	t.Error("forward has no rules")
}

// pptpHelperTable is what lab.md says makes PPTP work here: a ct helper
// object and `ct helper set` on LAN-to-WAN TCP 1723 in the same table.
func pptpHelperTable(l *Lab) string {
	return fmt.Sprintf(`table inet lab_helper {
	ct helper pptp {
		type "pptp" protocol tcp;
	}
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		iifname { "%s" } meta nfproto ipv4 tcp dport 1723 ct helper set "pptp"
	}
}
`, strings.Join(l.LANDevs, `", "`))
}

func TestPPTPHelperByHand(t *testing.T) {
	l := Start(t, Config{Clients: 3})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DropFW4PPTPHelper(); err != nil {
		t.Fatal(err)
	}

	t.Run("without helper GRE replies are lost", func(t *testing.T) {
		if err := l.ConntrackFlush(); err != nil {
			t.Fatal(err)
		}
		mark := srv.Mark()
		r, err := l.PPTPClient(1, "--call-id", "1", "--count", "5", "--wait", "500ms")
		if err == nil || !r.Connected || r.Sent != 5 || r.Received != 0 {
			t.Errorf("without a helper: err %v, result %+v; want connected, 5 sent, 0 received", err, r)
		}
		// Untranslated: the server sees the client's own Call ID.
		if evs := srv.Events(mark, "ocrq"); len(evs) != 1 || *evs[0].CallID != 1 {
			t.Errorf("server OCRQ events %+v, want one with Call ID 1", evs)
		}
		if evs := srv.Events(mark, "gre"); len(evs) != 5 {
			t.Errorf("server saw %d GRE packets, want 5 (they go out; replies do not come back)", len(evs))
		}
	})

	t.Run("with helper three clients with the same Call ID", func(t *testing.T) {
		if err := l.NftApply(pptpHelperTable(l)); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = l.Nft("delete", "table", "inet", "lab_helper") }()
		if err := l.ConntrackFlush(); err != nil {
			t.Fatal(err)
		}
		mark := srv.Mark()
		var procs []*Proc
		for i := range l.Clients {
			p, err := l.StartPPTPClient(i+1, "--call-id", "7", "--count", "20", "--wait-stdin", "--marker", fmt.Sprintf("lan%d", i+1))
			if err != nil {
				t.Fatal(err)
			}
			procs = append(procs, p)
		}
		for _, p := range procs {
			if _, err := p.WaitStdout(0, 10*time.Second, Contains(`"call-up"`)); err != nil {
				t.Fatalf("%v (stderr %q)", err, p.Stderr())
			}
		}
		// Expectations exist now; the first GRE packet will consume them.
		exps, err := l.Expectations()
		if err != nil {
			t.Fatal(err)
		}
		gre := 0
		for _, e := range exps {
			if e.Proto == 47 {
				gre++
			}
		}
		t.Logf("expectations before the first GRE packet:\n%s", expLines(exps))
		if gre < len(procs) {
			t.Errorf("%d GRE expectations for %d calls:\n%s", gre, len(procs), expLines(exps))
		}
		for _, p := range procs {
			if err := p.WriteLine("go"); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range procs {
			r, err := WaitPPTPClient(p, 15*time.Second)
			if err != nil || !r.OK || r.Received != 20 || r.Foreign != 0 || r.Calls[0].PeerCallIDInReply != 7 {
				t.Errorf("%s: %+v, %v", p.Name, r, err)
			}
		}
		seen, errs := srv.OutgoingCallIDs(mark, l.WANAddr.String())
		for _, err := range errs {
			t.Error(err)
		}
		t.Logf("Call IDs the server saw: %v", seen)
		if len(seen) != len(procs) {
			t.Errorf("server saw %d distinct Call IDs, want %d", len(seen), len(procs))
		}
	})
}

func expLines(exps []Expectation) string {
	var s []string
	for _, e := range exps {
		s = append(s, e.Raw)
	}
	return strings.Join(s, "\n")
}

func TestIPsecAndL2TPThroughNAT(t *testing.T) {
	l := Start(t, Config{})
	if _, err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"ike", "natt", "l2tp"} {
		if r, err := l.UDPClient(1, proto, "--count", "5"); err != nil || !r.OK || r.Received != 5 {
			t.Errorf("%s from lan1: %+v, %v", proto, r, err)
		}
	}
	// A second client on the same source port is remapped by masquerade and
	// still gets its replies.
	if r, err := l.UDPClient(2, "ike", "--count", "5"); err != nil || !r.OK {
		t.Errorf("ike from lan2: %+v, %v", r, err)
	}
	for _, proto := range []string{"esp", "ah"} {
		r, err := l.RawClient(1, proto, "--count", "5", "--spi", "0x1001")
		if err != nil || !r.OK || r.Received != 5 || r.ReplySPI == "" {
			t.Errorf("%s from lan1: %+v, %v", proto, r, err)
		}
	}
}

// TestBlockByHand checks the peers and the counter reader see a block.
func TestBlockByHand(t *testing.T) {
	l := Start(t, Config{})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.NftApply(`table inet lab_block {
	counter blocked_ipsec { }
	chain forward {
		type filter hook forward priority filter - 1; policy accept;
		meta l4proto esp counter name "blocked_ipsec" drop
	}
}
`); err != nil {
		t.Fatal(err)
	}
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	mark := srv.Mark()
	r, err := l.RawClient(1, "esp", "--count", "4", "--wait", "300ms")
	if err == nil || r.Received != 0 || r.Sent != 4 {
		t.Errorf("blocked ESP: %+v, %v", r, err)
	}
	if evs := srv.Events(mark, "esp"); len(evs) != 0 {
		t.Errorf("server saw %d ESP packets through a block", len(evs))
	}
	c, err := l.ReadCounter("inet", "lab_block", "blocked_ipsec")
	if err != nil || c.Packets != 4 {
		t.Errorf("counter %+v, %v; want 4 packets", c, err)
	}
}

// TestPPTPCallReopen clears a call and opens another on the same control
// connection, through the kernel helper (assigned by fw4's helper_lan here).
func TestPPTPCallReopen(t *testing.T) {
	l := Start(t, Config{})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	mark := srv.Mark()
	r, err := l.PPTPClient(1, "--call-id", "9", "--count", "5", "--calls", "3")
	if err != nil || !r.OK || len(r.Calls) != 3 {
		t.Fatalf("three calls in a row: %+v, %v", r, err)
	}
	for i, c := range r.Calls {
		if c.Received != 5 || !c.Cleared {
			t.Errorf("call %d: %+v", i+1, c)
		}
	}
	if evs := srv.Events(mark, "call-clear"); len(evs) != 3 {
		t.Errorf("server saw %d Call-Clear-Requests, want 3: %+v", len(evs), evs)
	}
}

// TestTwoClientsRawESP records the kernel fact lab.md states: raw ESP from a
// second LAN client to the same server through masquerade is lost (generic
// conntrack by address pair cannot tell the two apart). This is what the
// userspace ESP engine exists for.
func TestTwoClientsRawESP(t *testing.T) {
	l := Start(t, Config{})
	if _, err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	if r, err := l.RawClient(1, "esp", "--count", "3", "--spi", "0x1001"); err != nil || !r.OK {
		t.Fatalf("first client: %+v, %v", r, err)
	}
	r, err := l.RawClient(2, "esp", "--count", "3", "--spi", "0x1002", "--wait", "500ms")
	if err == nil || r.Received != 0 {
		t.Errorf("second client's raw ESP came back without an engine: %+v, %v", r, err)
	}
}
