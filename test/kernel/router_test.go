package kernel

import (
	"strings"
	"testing"

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
	d, err := l.StartDaemon(bin, cfg.String())
	if d != nil {
		t.Cleanup(func() {
			d.Kill()
			if t.Failed() {
				t.Logf("daemon log:\n%s", d.Log())
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
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
}
