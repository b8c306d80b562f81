package pptp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// batchMaps is fakeMaps with *nft.Maps' one-transaction calls.
type batchMaps struct {
	*fakeMaps
	addAlls, deleteAlls int
}

func (b *batchMaps) AddAll(names []string, in [][]engine.Element) error {
	b.addAlls++
	for i, n := range names {
		if err := b.Add(n, in[i]); err != nil {
			return err
		}
	}
	return nil
}

func (b *batchMaps) DeleteAll(names []string, keys [][][]byte) error {
	b.deleteAlls++
	for i, n := range names {
		if err := b.Delete(n, keys[i]); err != nil {
			return err
		}
	}
	return nil
}

// TestKernelDataPlaneOneTransaction: with maps that take several maps'
// elements at once, a new call's four elements go in one transaction and
// its three come out in one.
func TestKernelDataPlaneOneTransaction(t *testing.T) {
	c, m := &fakeCT{flows: map[ct.Tuple]ct.Flow{}}, &batchMaps{fakeMaps: newFakeMaps()}
	cfg := Config{}
	cfg.Maps = m
	h := newHarnessWith(t, cfg, func(o *Options) { o.Conntrack = c })
	f := h.flow(1, 40000)
	viewCall(t, h, c, f, 0x0102, 0x7001)
	if m.addAlls != 1 {
		t.Errorf("%d AddAll calls for one call, want 1", m.addAlls)
	}
	for _, name := range []string{plan.MapPPTPCalls, plan.MapPPTPDst, plan.MapPPTPKey, plan.MapPPTPWANAddrs} {
		if got := m.dump(name); len(got) != 1 {
			t.Errorf("%s: %v, want one element", name, got)
		}
	}
	f.out(ccrq(0x0102))
	if m.deleteAlls != 1 {
		t.Errorf("%d DeleteAll calls for one Call-Clear-Request, want 1", m.deleteAlls)
	}
	for _, name := range []string{plan.MapPPTPCalls, plan.MapPPTPDst, plan.MapPPTPKey} {
		if got := m.dump(name); len(got) != 0 {
			t.Errorf("%s after Call-Clear-Request: %v", name, got)
		}
	}
}

// TestFallbackLearnsWANWithoutCtnetlink: on the fallback without a
// conntrack view, the router address a server's control segments arrive at
// (raw prerouting) goes in pptp_wan_addrs, so GRE arriving while no engine
// runs is dropped silently; only for a server of a followed call, at most
// maxLearnedWAN addresses, forgotten after IdleTimeout.
func TestFallbackLearnsWANWithoutCtnetlink(t *testing.T) {
	m := newFakeMaps()
	cfg := Config{WANAddrsOnly: true}
	cfg.Maps, cfg.IdleTimeout = m, time.Minute
	h := newHarness(t, cfg)
	fromServer := func(src, dst netip.Addr) {
		h.handle(hookPrerouting, 0, tcpPacket(netip.AddrPortFrom(src, 1723), netip.AddrPortFrom(dst, natPort), 1, 1, packet.TCPFlagACK, []byte("x")))
	}
	fromServer(server, wanAddr)
	if got := m.dump(plan.MapPPTPWANAddrs); len(got) != 0 {
		t.Fatalf("learned %v before any call", got)
	}
	f := h.flow(1, 40000)
	setupCall(t, f, 1, 0x7001)
	fromServer(netip.MustParseAddr("203.0.113.7"), wanAddr) // not a server of a call
	if got := m.dump(plan.MapPPTPWANAddrs); len(got) != 0 {
		t.Fatalf("learned %v from another source", got)
	}
	fromServer(server, wanAddr)
	if got := m.dump(plan.MapPPTPWANAddrs); len(got) != 1 || got[0] != "c6336401=" {
		t.Fatalf("pptp_wan_addrs %v, want the WAN address", got)
	}
	for i := 0; i < 20; i++ {
		fromServer(server, netip.AddrFrom4([4]byte{10, 10, 9, byte(i + 1)}))
	}
	if got := m.dump(plan.MapPPTPWANAddrs); len(got) != maxLearnedWAN {
		t.Errorf("%d addresses learned, want at most %d", len(got), maxLearnedWAN)
	}
	// Only the WAN address keeps being seen.
	for i := 0; i < 4; i++ {
		h.now = h.now.Add(20 * time.Second)
		fromServer(server, wanAddr)
		f.out(echoRq())
		h.e.housekeeping()
	}
	if got := m.dump(plan.MapPPTPWANAddrs); len(got) != 1 || got[0] != "c6336401=" {
		t.Errorf("after the idle timeout: %v, want the WAN address alone", got)
	}
}
