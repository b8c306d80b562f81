package daemon

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// Two clients' kernel-mode PPTP calls to one server, with the same Call ID.
func twoCalls() []ct.Flow {
	a := netip.MustParseAddr
	nat := uint32(ct.StatusSrcNAT | ct.StatusAssured | ct.StatusSeenReply)
	return []ct.Flow{
		{Orig: ct.Tuple{Src: a("10.0.0.2"), Dst: a("198.51.100.2"), Proto: 47, SrcPort: 1, DstPort: 100},
			Reply: ct.Tuple{Src: a("198.51.100.2"), Dst: a("198.51.100.1"), Proto: 47, SrcPort: 100, DstPort: 1}, Status: nat},
		{Orig: ct.Tuple{Src: a("10.0.0.3"), Dst: a("198.51.100.2"), Proto: 47, SrcPort: 1, DstPort: 101},
			Reply: ct.Tuple{Src: a("198.51.100.2"), Dst: a("198.51.100.1"), Proto: 47, SrcPort: 101, DstPort: 2}, Status: nat},
	}
}

func TestDropKernelSession(t *testing.T) {
	r := newRig(t, config.Default())
	r.ct.flows = twoCalls()
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	ss := r.d.Status().Sessions
	if len(ss) != 2 {
		t.Fatalf("sessions %+v", ss)
	}
	// Unknown, or malformed: an error that says so, and nothing deleted.
	for _, c := range []struct{ proto, id string }{{"pptp", "gre/10.0.0.9/198.51.100.2/1"}, {"ipsec", ss[0].ID}, {"", ""}} {
		err := r.d.DropSession(c.proto, c.id)
		if err == nil || (c.proto != "" && !errors.Is(err, status.ErrUnknownSession)) || (c.proto == "" && !errors.Is(err, status.ErrBadArgument)) {
			t.Errorf("drop %q %q: %v", c.proto, c.id, err)
		}
	}
	if len(r.ct.deleted) != 0 {
		t.Fatalf("a refused drop deleted %v", r.ct.deleted)
	}
	ev, cancel := r.d.hub.Subscribe()
	defer cancel()
	if err := r.d.DropSession("pptp", ss[1].ID); err != nil {
		t.Fatal(err)
	}
	if len(r.ct.deleted) != 1 || r.ct.deleted[0].Orig.Src.String() != "10.0.0.3" {
		t.Errorf("deleted %+v, want only 10.0.0.3's call", r.ct.deleted)
	}
	if left := r.d.Status().Sessions; len(left) != 1 || left[0].Client != "10.0.0.2" {
		t.Errorf("left %+v", left)
	}
	select {
	case e := <-ev:
		if e.Name != status.EventSessionEnd || e.Session.Client != "10.0.0.3" {
			t.Errorf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Error("no session.end event")
	}
}

func TestReloadThroughTheLoop(t *testing.T) {
	r := newRig(t, config.Default())
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	r.runLoop(t)
	ev, unsub := r.d.hub.Subscribe()
	defer unsub()
	a := api{r.d}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.loadErr = errors.New("config: x:3: bad")
	r.mu.Unlock()
	if err := a.Reload(); err == nil || err.Error() != "config: x:3: bad" {
		t.Errorf("refused reload: %v", err)
	}
	for _, want := range []string{"", "config: x:3: bad"} {
		select {
		case e := <-ev:
			if e.Name != status.EventApplied || e.Trigger != "api" || e.Error != want {
				t.Errorf("event %+v, want applied with error %q", e, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no applied event")
		}
	}
	if st := r.d.Status(); st.State != status.StateRunning || st.LastError == "" {
		t.Errorf("after a refused reload: %s, last error %q", st.State, st.LastError)
	}
}
