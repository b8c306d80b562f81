package pptp

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
)

func (h *harness) state() string {
	h.t.Helper()
	ss := h.e.Sessions()
	if len(ss) != 1 {
		h.t.Fatalf("sessions %+v", ss)
	}
	return ss[0].State
}

// tick runs the engine's once-a-second work.
func (h *harness) tick() {
	h.now = h.now.Add(1100 * time.Millisecond)
	h.e.housekeeping()
}

// setOut records the call's outbound GRE in conntrack (the kernel's
// masquerade made the entry), with pkts counted.
func (c *fakeCT) setOut(client uint16, serverID uint16, pkts uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := outFlow(clientAddr(int(client)), serverID, pkts, 100*pkts)
	c.flows[f.Orig] = f
}

// TestEstablishedNeedsGREBothWays: a call the server accepted is
// "connected"; status says "established" only once GRE was seen both ways:
// inbound (the engine's count on the fallback, the guard element's counter
// on the kernel maps) and outbound (the call's conntrack entry, which the
// kernel's masquerade of the client's GRE creates).
func TestEstablishedNeedsGREBothWays(t *testing.T) {
	t.Run("fallback, inbound first", func(t *testing.T) {
		h, c := newViewHarness(t)
		f := h.flow(1, 40000)
		trans := viewCall(t, h, c, f, 1, 0x7001)
		h.tick()
		if st := h.state(); st != stateConnected {
			t.Fatalf("no GRE yet: %q", st)
		}
		h.handle(hookPrerouting, 0, greV1(server, wanAddr, trans, 1, []byte("x")))
		h.tick()
		if st := h.state(); st != stateConnected {
			t.Errorf("inbound GRE only: %q, want connected", st)
		}
		c.setOut(1, 0x7001, 1)
		h.tick()
		if st := h.state(); st != stateEstablished {
			t.Errorf("GRE both ways: %q, want established", st)
		}
	})
	t.Run("fallback, outbound first", func(t *testing.T) {
		h, c := newViewHarness(t)
		f := h.flow(1, 40000)
		trans := viewCall(t, h, c, f, 1, 0x7001)
		c.setOut(1, 0x7001, 3)
		h.tick()
		if st := h.state(); st != stateConnected {
			t.Errorf("outbound GRE only: %q, want connected", st)
		}
		// GRE with another call's key is no evidence for this one.
		h.handle(hookPrerouting, 0, greV1(server, wanAddr, trans^1, 1, []byte("x")))
		if st := h.state(); st != stateConnected {
			t.Errorf("after GRE with a foreign key: %q", st)
		}
		h.handle(hookPrerouting, 0, greV1(server, wanAddr, trans, 1, []byte("x")))
		if st := h.state(); st != stateEstablished {
			t.Errorf("GRE both ways: %q, want established", st)
		}
	})
	t.Run("kernel maps", func(t *testing.T) {
		c, m := &fakeCT{flows: map[ct.Tuple]ct.Flow{}}, newFakeMaps()
		h := newKernelHarness(t, "", c, m)
		f := h.flow(1, 40000)
		trans := viewCall(t, h, c, f, 0x0102, 0x7001)
		c.setOut(1, 0x7001, 2)
		h.tick()
		if st := h.state(); st != stateConnected {
			t.Errorf("outbound GRE only: %q, want connected", st)
		}
		guard, _ := callKeys(wanAddr, server, trans)
		m.count(guard, 4)
		h.tick()
		if st := h.state(); st != stateEstablished {
			t.Errorf("GRE both ways (kernel counter 4): %q, want established", st)
		}
	})
	t.Run("no conntrack view: the session table's dump", func(t *testing.T) {
		h := newHarness(t, Config{})
		f := h.flow(1, 40000)
		trans, _ := setupCall(t, f, 1, 0x7001)
		h.handle(hookPrerouting, 0, greV1(server, wanAddr, trans, 1, []byte("x")))
		if st := h.state(); st != stateConnected {
			t.Errorf("inbound GRE only: %q, want connected", st)
		}
		h.flows = []ct.Flow{outFlow(clientAddr(1), 0x7001, 1, 100)}
		if st := h.state(); st != stateEstablished {
			t.Errorf("GRE both ways: %q, want established", st)
		}
	})
}

// TestRestoredEstablishedOnlyByNewTraffic: after a restart, a restored call
// becomes established only from GRE counted since: the kernel's element
// and conntrack counters from before the restart prove nothing about now.
func TestRestoredEstablishedOnlyByNewTraffic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pptp.json")
	c, m := &fakeCT{flows: map[ct.Tuple]ct.Flow{}}, newFakeMaps()
	h := newKernelHarness(t, path, c, m)
	f := h.flow(1, 40000)
	trans := viewCall(t, h, c, f, 0x0102, 0x7001)
	guard, _ := callKeys(wanAddr, server, trans)
	m.count(guard, 10)
	c.setOut(1, 0x7001, 10)
	h.tick()
	if st := h.state(); st != stateEstablished {
		t.Fatalf("before the restart: %q", st)
	}
	h.e.housekeeping() // the state file
	h2 := newKernelHarness(t, path, c, m)
	h2.now = h.now
	h2.tick()
	h2.tick()
	if st := h2.state(); st != stateRestored {
		t.Errorf("restored, no GRE since: %q, want restored", st)
	}
	m.count(guard, 11)
	h2.tick()
	if st := h2.state(); st != stateRestored {
		t.Errorf("restored, inbound GRE since: %q, want restored", st)
	}
	c.setOut(1, 0x7001, 12)
	h2.tick()
	if st := h2.state(); st != stateEstablished {
		t.Errorf("restored, GRE both ways since: %q, want established", st)
	}
}
