package openwrt

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fw4State checks the running state after an fw4 operation: table inet vpn_passthrough exactly
// once, our mark accept exactly once in fw4's forward chain, right after the hook line.
func (r *routerBed) fw4State() error {
	tables := r.MustRunQuiet("nft", "list", "tables")
	if n := strings.Count(tables, "table inet vpn_passthrough"); n != 1 {
		return fmt.Errorf("table inet vpn_passthrough %d times: %q", n, tables)
	}
	fwd, err := r.Run("", "nft", "list", "chain", "inet", "fw4", "forward")
	if err != nil {
		return err
	}
	if n := strings.Count(fwd, "vpn-passthrough: accepted by userspace engine"); n != 1 {
		return fmt.Errorf("our mark accept %d times in fw4's forward chain:\n%s", n, fwd)
	}
	return nil
}

// MustRunQuiet is Run ignoring errors (empty output on error).
func (b *Bed) MustRunQuiet(argv ...string) string {
	out, _ := b.Run("", argv...)
	return out
}

// fw4 reload and fw4 restart (flush + start: every table goes, ours too) with the daemon
// running under procd: afterwards our table and our include rule are there exactly once, and
// PPTP and L2TP pass from a LAN client to the server through the router.
func TestFW4ReloadRestartWithDaemon(t *testing.T) {
	r := startRouterBed(t, false)
	r.startService(t)
	if err := WaitFor(20*time.Second, r.fw4State); err != nil {
		t.Fatalf("after start: %v", err)
	}
	if _, err := r.lab.StartServers(); err != nil {
		t.Fatal(err)
	}
	traffic := func(what string) {
		t.Helper()
		p, err := r.lab.PPTPClient(1, "--call-id", "7", "--count", "5")
		if err != nil || !p.OK {
			t.Fatalf("%s: PPTP through the router: %+v %v", what, p, err)
		}
		u, err := r.lab.UDPClient(2, "l2tp")
		if err != nil || !u.OK {
			t.Fatalf("%s: L2TP through the router: %+v %v", what, u, err)
		}
		t.Logf("%s: PPTP %d/%d GRE replies, L2TP %d/%d replies", what, p.Received, p.Sent, u.Received, u.Sent)
	}
	traffic("after start")
	pid := r.pid(t)
	for _, op := range []string{"reload", "restart", "reload"} {
		t0 := time.Now()
		r.MustRun(t, "fw4", "-q", op)
		if err := WaitFor(20*time.Second, r.fw4State); err != nil {
			t.Fatalf("after fw4 %s: %v", op, err)
		}
		t.Logf("fw4 %s: our table and include rule exactly once after %v", op, time.Since(t0).Round(time.Millisecond))
		traffic("after fw4 " + op)
	}
	if p := r.pid(t); p != pid {
		t.Fatalf("the daemon was restarted (pid %d -> %d): fw4 should only make it re-apply", pid, p)
	}
}
