package kernel

import (
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// TestRouterOriginatedPPTP: the router itself is a PPTP client to a WAN
// server (openwrt#13009, #11101). fw4's input chain rejects the server's
// GRE unless it is related to the control connection, which takes the
// kernel's pptp helper assigned in output. Without the daemon's output rule
// the call gets no GRE back; with it (kernel mode) every reply arrives.
// Userspace mode does not carry the router's own calls yet: the PPTP
// engine's prerouting queue takes their GRE before conntrack can relate it.
func TestRouterOriginatedPPTP(t *testing.T) {
	lab.Need(t)
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{})
	if _, err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	peer, err := l.PeerBin()
	if err != nil {
		t.Fatal(err)
	}
	call := func(id string) lab.PPTPResult {
		var r lab.PPTPResult
		out, _, _ := l.ExecSplit(l.Router, peer, "pptp-client", "--server", l.Server.Addr.String(), "--call-id", id,
			"--count", "5", "--wait", "1s", "--timeout", "8s")
		_ = lab.ParseResult(strings.Split(out, "\n"), &r)
		return r
	}
	// Control: fw4 alone (no daemon) drops the server's GRE to the router.
	if r := call("3"); r.Received != 0 || !r.Connected {
		t.Fatalf("control without the daemon: %+v; want connected and 0 GRE back (else this test proves nothing)", r)
	}
	cfg := l.KernelUCI()
	d := l.RunDaemon(t, bin, cfg.String())
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	if r := call("4"); !r.OK || r.Received != 5 {
		t.Errorf("router-originated PPTP, kernel mode: %+v", r)
	}
	// LAN clients still work next to it.
	if r, err := l.PPTPClient(1, "--call-id", "6", "--count", "5"); err != nil || !r.OK {
		t.Errorf("LAN PPTP next to the router's own call: %+v, %v", r, err)
	}

	// Userspace mode: the PPTP engine translates LAN calls; the router's
	// own call needs no translation (no NAT), only the kernel helper in
	// output, and the engine's drop of GRE no call holds must not take
	// its GRE, also while a LAN call's control connection makes the WAN
	// address one of the engine's.
	cfg.Mode = "userspace"
	if err := d.Apply(cfg.String()); err != nil {
		t.Fatal(err)
	}
	if st, _, err := d.Status(); err != nil || st.Datapath("pptp") != "userspace" {
		t.Fatalf("pptp datapath %q, %v; want userspace", st.Datapath("pptp"), err)
	}
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	if r := call("11"); !r.OK || r.Received != 5 {
		t.Errorf("router-originated PPTP, userspace mode, alone: %+v", r)
	}
	lan, err := l.StartPPTPClient(1, "--call-id", "12", "--count", "5", "--wait-stdin", "--timeout", "30s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lan.Kill)
	if _, err := lan.WaitStdout(0, lab.Scale(10*time.Second), lab.Contains("call-up")); err != nil {
		t.Fatalf("LAN call not up: %v", err)
	}
	if r := call("13"); !r.OK || r.Received != 5 {
		t.Errorf("router-originated PPTP, userspace mode, while a LAN call is up: %+v", r)
	}
	if err := lan.WriteLine("go"); err != nil {
		t.Fatal(err)
	}
	if r, err := lab.WaitPPTPClient(lan, lab.Scale(30*time.Second)); err != nil || !r.OK || r.Received != 5 {
		t.Errorf("LAN PPTP (userspace engine) next to the router's own call: %+v, %v", r, err)
	}

	// pptp switched off: passthrough is blocked, but the router's own
	// call (a PPTP uplink, say) is not passthrough and keeps working.
	cfg.PPTP = false
	if err := d.Apply(cfg.String()); err != nil {
		t.Fatal(err)
	}
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	if r := call("14"); !r.OK || r.Received != 5 {
		t.Errorf("router-originated PPTP with pptp switched off: %+v", r)
	}
	if r, _ := l.PPTPClient(1, "--call-id", "15", "--count", "3", "--timeout", "3s"); r.Connected || r.Received != 0 {
		t.Errorf("LAN PPTP with pptp switched off: %+v, want blocked", r)
	}
}
