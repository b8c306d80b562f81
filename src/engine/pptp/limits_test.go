package pptp

import (
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"net/netip"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
)

// TestSplitCallIDKeepsLimits: a client that splits each
// Outgoing-Call-Request right after the Call ID's high byte must still meet
// max_calls.
func TestSplitCallIDKeepsLimits(t *testing.T) {
	h := newHarness(t, Config{Common: engine.Common{MaxSessions: 4, MaxPerClient: 2}})
	var flows []*flow
	for i := 0; i < 6; i++ {
		f := h.flow(1+i%3, uint16(40000+i))
		f.open()
		f.out(sccrq())
		f.in(sccrp())
		flows = append(flows, f)
	}
	for i, f := range flows {
		m := ocrq(uint16(0x0100 + i))
		f.out(m[:13])
		f.out(m[13:])
	}
	if h.e.nCalls > 4 {
		t.Errorf("max_calls 4 exceeded through split Call IDs: %d calls", h.e.nCalls)
	}
}

// TestWANSegmentsCreateNoState: SYNs and segments from the server side (port
// 1723) of connections no LAN client opened create no state, so spoofed WAN
// traffic cannot fill the table and lock the LAN out.
func TestWANSegmentsCreateNoState(t *testing.T) {
	h := newHarness(t, Config{})
	for i := 0; i < 2*1024+16; i++ {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), 1723)
		dst := netip.AddrPortFrom(clientAddr(9), 443)
		h.handle(hookForward, 1, tcpPacket(src, dst, 1, 0, 0x02, nil))
		h.handle(hookForward, 1, tcpPacket(src, dst, 2, 0, 0x18, []byte("hello")))
	}
	if n := len(h.e.conns); n != 0 {
		t.Errorf("%d control connections from WAN-side segments", n)
	}
	f := h.flow(2, 50000)
	if p := h.handle(hookForward, wanIfindex, tcpPacket(f.client, f.server, 1, 0, 0x02, nil)); p.Verdict == nfqueue.Drop {
		t.Error("a LAN client's SYN was refused")
	}
}

// TestOneClientCannotLockOutOthers: unanswered SYNs from one LAN host hit its
// own limit, not everyone's, and are forgotten soon.
func TestOneClientCannotLockOutOthers(t *testing.T) {
	h := newHarness(t, Config{})
	for port := 0; port < 2*1024+16; port++ {
		f := h.flow(1, uint16(10000+port))
		h.handle(hookForward, wanIfindex, tcpPacket(f.client, f.server, 1, 0, 0x02, nil))
	}
	g := h.flow(2, 50000)
	if p := h.handle(hookForward, wanIfindex, tcpPacket(g.client, g.server, 1, 0, 0x02, nil)); p.Verdict == nfqueue.Drop {
		t.Error("another client's SYN was refused while one client flooded")
	}
	h.now = h.now.Add(callSetupGrace + 1e9)
	h.e.housekeeping()
	if n := len(h.e.conns); n != 0 {
		t.Errorf("%d call-less connections kept after the grace period", n)
	}
}
