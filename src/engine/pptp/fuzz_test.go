package pptp

import (
	"fmt"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"

	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// controlSeeds are the control fuzzers' seed corpus.
func controlSeeds(f *testing.F) {
	seg := func(dir byte, b []byte) []byte { return append([]byte{dir | byte(len(b))}, b...) }
	var s []byte
	for _, m := range [][]byte{sccrq()[:60], sccrq()[60:120], sccrq()[120:]} {
		s = append(s, seg(0, m)...)
	}
	o := ocrq(0x0101)
	s = append(s, seg(0, o[:13])...)
	s = append(s, seg(0x40, o[13:60])...)
	f.Add(s)
	f.Add(append(seg(0x80, ocrp(1, 0x0101)[:20]), seg(0x80, ocrp(1, 0x0101)[20:])...))
	f.Add(seg(0, ccrq(1)))
	f.Add(seg(0, []byte{0x10, 0, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 5, 0, 0}))
	f.Add(append(seg(0, pptpMsg(packet.PPTPStopCtrlConnRequest, nil)), seg(0x80, cdn(1))...))
}

// FuzzControlStream feeds arbitrary control-connection bytes, cut into
// segments in both directions, through the engine: whatever they hold,
// another client's call stays as it was and keeps its GRE. Each chunk of the input
// starts with a byte: bit 7 the direction, bit 6 "retransmit the previous
// segment of this direction first", bits 0-5 the segment length. The engine
// must not panic, every segment it rewrites must keep valid checksums (the
// harness checks), and its indexes must stay consistent.
func FuzzControlStream(f *testing.F) {
	controlSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		h := newHarness(t, Config{Common: engine.Common{MaxSessions: 8, MaxPerClient: 4}})
		controlStream(t, h, nil, in)
	})
}

// FuzzControlStreamView is FuzzControlStream with the conntrack view of
// control connections (ctnetlink), where the engine follows a connection
// once conntrack confirmed its handshake.
func FuzzControlStreamView(f *testing.F) {
	controlSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		h, c := newViewHarness(t)
		controlStream(t, h, c, in)
	})
}

func controlStream(t *testing.T, h *harness, c *fakeCT, in []byte) {
	unchanged := bystander(t, h, c)
	fl := h.flow(1, 40000)
	fl.open()
	if c != nil {
		c.set(fl, ct.TCPEstablished)
		fl.outFlags(packet.TCPFlagACK)
	}
	var last [2][]byte
	var lastSeq [2]uint32
	for len(in) > 0 && len(in) < 1<<16 {
		hdr := in[0]
		n := min(int(hdr&0x3f), len(in)-1)
		data := append([]byte(nil), in[1:1+n]...)
		in = in[1+n:]
		d := int(hdr >> 7)
		if hdr&0x40 != 0 && last[d] != nil {
			if d == dirOut {
				p := h.handle(hookForward, wanIfindex, tcpPacket(fl.client, fl.server, lastSeq[d], fl.seqIn, packet.TCPFlagACK, last[d]))
				h.checkTCP(p)
			} else {
				p := h.handle(hookForward, 1, tcpPacket(fl.server, fl.client, lastSeq[d], fl.seqOut, packet.TCPFlagACK, last[d]))
				h.checkTCP(p)
			}
		}
		if d == dirOut {
			lastSeq[d] = fl.seqOut
			fl.out(data)
		} else {
			lastSeq[d] = fl.seqIn
			fl.in(data)
		}
		last[d] = data
	}
	h.checkInvariants()
	h.e.housekeeping()
	unchanged()
}

// bystanderPort is client 2's control connection in the fuzz targets: a
// call that no input of theirs may change.
const bystanderPort = 41000

// bystander opens client 2's call and returns a check that it is still
// there, unchanged, and still gets its GRE.
func bystander(t *testing.T, h *harness, c *fakeCT) func() {
	f := h.flow(2, bystanderPort)
	f.open()
	if c != nil {
		c.set(f, ct.TCPEstablished)
		f.outFlags(packet.TCPFlagACK)
	}
	p := f.out(ocrq(7))
	ip, _ := packet.ParseIPv4(p.Data)
	tcp, _ := packet.ParseTCP(ip.Payload())
	tr := u16(tcp.Payload(), 12)
	f.in(ocrp(0x7002, tr))
	if p.Verdict != nfqueue.Accept {
		t.Fatal("the bystander's call was refused")
	}
	snap := func() string {
		for _, s := range h.e.Sessions() {
			if s.Client == clientAddr(2).String() {
				return fmt.Sprintf("%s %s %s %s %s", s.OrigID, s.TransID, s.PeerID, s.State, s.Server)
			}
		}
		return "gone"
	}
	want := snap()
	return func() {
		t.Helper()
		if got := snap(); got != want {
			t.Fatalf("another client's call changed: %q, was %q", got, want)
		}
		p := h.handle(hookPrerouting, 0, greV1(server, wanAddr, tr, 1<<30, []byte("bystander")))
		if _, dst, key := gre(t, p.Data); !p.Modified || dst != clientAddr(2) || key != 7 {
			t.Fatalf("the other client's GRE: modified %v, to %v key %d", p.Modified, dst, key)
		}
	}
}

// touchesBystander reports whether pkt is a TCP segment of client 2's
// control connection (a spoofed one may legitimately end it without a
// conntrack view).
func touchesBystander(pkt []byte) bool {
	ip, err := packet.ParseIPv4(pkt)
	if err != nil || ip.Protocol() != packet.ProtoTCP {
		return false
	}
	return ip.Src() == clientAddr(2) || ip.Dst() == clientAddr(2)
}

// FuzzGRE hands arbitrary packets to the GRE path (and the TCP path) of an
// engine that has a call: no panic, a rewritten packet is still a valid
// IPv4 packet with a correct header checksum, and another client's call
// stays as it was (unless the packet is a segment of its own control
// connection).
func FuzzGRE(f *testing.F) {
	f.Add(greV1(server, wanAddr, 0x1234, 1, []byte("ppp")), uint8(hookPrerouting))
	f.Add(greV1(clientAddr(1), server, 0x7001, 1, []byte("ppp")), uint8(4))
	f.Add(ipv4(server, wanAddr, 47, []byte{0, 0, 0x08, 0}), uint8(hookPrerouting))
	f.Add(ipv4(server, wanAddr, 47, []byte{0x30, 0x01, 0x88, 0x0b, 0xff, 0xff, 0, 1}), uint8(hookPrerouting))
	f.Add([]byte{0x45, 0, 0, 20}, uint8(hookForward))
	f.Fuzz(func(t *testing.T, pkt []byte, hook uint8) {
		h := newHarness(t, Config{})
		tr, _ := setupCallQuiet(h, 1, 0x7001)
		unchanged := bystander(t, h, nil)
		// Also a packet keyed with the live translation.
		if len(pkt) >= 28 && pkt[9] == 47 {
			pkt[26], pkt[27] = byte(tr>>8), byte(tr)
		}
		valid := false
		if ip, err := packet.ParseIPv4(pkt); err == nil && ip.ChecksumValid() {
			valid = true
		}
		p := h.handle(hook%5, wanIfindex, append([]byte(nil), pkt...))
		if p.Modified && valid {
			ip, err := packet.ParseIPv4(p.Data)
			if err != nil || !ip.ChecksumValid() {
				t.Fatalf("rewritten packet invalid: %v", err)
			}
		}
		h.checkInvariants()
		if !touchesBystander(pkt) {
			unchanged()
		}
	})
}

// setupCallQuiet opens a call on client 1 without a testing.T.
func setupCallQuiet(h *harness, callID, serverID uint16) (uint16, bool) {
	f := h.flow(1, 40000)
	f.open()
	p := f.out(ocrq(callID))
	ip, _ := packet.ParseIPv4(p.Data)
	tcp, _ := packet.ParseTCP(ip.Payload())
	tr := u16(tcp.Payload(), 12)
	f.in(ocrp(serverID, tr))
	return tr, p.Verdict == nfqueue.Accept
}
