package pptp

import (
	"net/netip"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// TestMalformedControlSegmentsDropped: a queued TCP 1723 packet whose
// header does not parse (data offset past the end, or below 5 words) or
// that is a fragment is counted and dropped, and changes no call.
func TestMalformedControlSegmentsDropped(t *testing.T) {
	h := newHarness(t, Config{})
	f := h.flow(1, 40000)
	setupCall(t, f, 1, 0x7001)
	good := tcpPacket(netip.AddrPortFrom(clientAddr(2), 41000), f.server, 1, 0, packet.TCPFlagACK, []byte("x"))
	hl := int(good[0]&15) * 4
	for name, mangle := range map[string]func(b []byte) []byte{
		"data offset past the end": func(b []byte) []byte { b[hl+12] = 0xf0; return b },
		"data offset below 5":      func(b []byte) []byte { b[hl+12] = 0x40; return b },
		"truncated header":         func(b []byte) []byte { b = b[:hl+10]; b[3] = byte(hl + 10); return b },
		"fragment":                 func(b []byte) []byte { b[6] |= 0x20; return b },
	} {
		before := h.e.Counters()["bad_packets"]
		pkt := mangle(append([]byte(nil), good...))
		if p := h.handle(hookForward, wanIfindex, pkt); p.Verdict != nfqueue.Drop {
			t.Errorf("%s: verdict %v, want drop", name, p.Verdict)
		}
		if got := h.e.Counters()["bad_packets"] - before; got != 1 {
			t.Errorf("%s: bad_packets rose by %d, want 1", name, got)
		}
	}
	if ss := h.e.Sessions(); len(ss) != 1 || ss[0].Client != clientAddr(1).String() {
		t.Errorf("sessions %+v", ss)
	}
}
