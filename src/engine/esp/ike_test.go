package esp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

func TestSimultaneousStartIsSerialised(t *testing.T) {
	r := newRig(t, Options{})
	// Both clients start at the same moment: IKE_SA_INIT from both passes.
	r.ikeOut(clientA, srvS, saInitReq(0xa1))
	r.ikeOut(clientB, srvS, saInitReq(0xb1))
	r.ikeIn(srvS, 500, saInitResp(0xa1, 0xa2))
	r.ikeIn(srvS, 500, saInitResp(0xb1, 0xb2))
	// A's IKE_AUTH comes first; B's is held back while A's SA is new.
	if v := r.ikeOut(clientA, srvS, authReq(0xa1, 0xa2)); v != Accept {
		t.Fatalf("A's IKE_AUTH: %v", v)
	}
	if v := r.ikeOut(clientB, srvS, authReq(0xb1, 0xb2)); v != Drop {
		t.Fatalf("B's IKE_AUTH while A negotiates: %v, want drop (held)", v)
	}
	// A's own retransmission is never held.
	if v := r.ikeOut(clientA, srvS, authReq(0xa1, 0xa2)); v != Accept {
		t.Fatalf("A's retransmission: %v", v)
	}
	r.ikeIn(srvS, 500, authResp(0xa1, 0xa2))
	r.espOut(clientA, srvS, 0xc1a)
	r.wantIn(srvS, 0xa1a, clientA) // learned: A no longer negotiates
	// B retransmits and gets through.
	if v := r.ikeOut(clientB, srvS, authReq(0xb1, 0xb2)); v != Accept {
		t.Fatalf("B's retransmitted IKE_AUTH: %v", v)
	}
	r.ikeIn(srvS, 500, authResp(0xb1, 0xb2))
	r.espOut(clientB, srvS, 0xc1b)
	r.wantIn(srvS, 0xa1b, clientB)
	r.wantIn(srvS, 0xa1a, clientA)
	st := r.tr.Stats()
	if st.IKEHeld != 1 || st.Ambiguous != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, state := r.session("ike", "10.10.2.2", ""); !strings.Contains(state, "held 1x") {
		t.Fatalf("B's ike session state %q", state)
	}
}

func TestHoldEnds(t *testing.T) {
	t.Run("after the hold window", func(t *testing.T) {
		r := newRig(t, Options{HoldWindow: 3 * time.Second})
		r.handshake(clientA, srvS, 0xa1, 0xa2) // A's SA gets no ESP at all
		if v := r.ikeOut(clientB, srvS, authReq(0xb1, 0xb2)); v != Drop {
			t.Fatalf("B within the window: %v", v)
		}
		r.advance(3 * time.Second)
		if v := r.ikeOut(clientB, srvS, authReq(0xb1, 0xb2)); v != Accept {
			t.Fatalf("B after the window: %v", v)
		}
	})
	t.Run("capped however long the exchange", func(t *testing.T) {
		r := newRig(t, Options{HoldWindow: 3 * time.Second, HoldMax: 10 * time.Second})
		r.ikeOut(clientA, srvS, authReq(0xa1, 0xa2))
		held := 0
		for i := 0; i < 12; i++ { // EAP: a round every second
			r.advance(time.Second)
			r.ikeIn(srvS, 500, authResp(0xa1, 0xa2))
			r.ikeOut(clientA, srvS, authReq(0xa1, 0xa2))
			if r.ikeOut(clientB, srvS, authReq(0xb1, 0xb2)) == Drop {
				held++
			}
		}
		if held == 0 || held >= 12 {
			t.Fatalf("B held %d of 12 times, want some but not all", held)
		}
	})
	t.Run("other servers are not held", func(t *testing.T) {
		r := newRig(t, Options{})
		r.ikeOut(clientA, srvS, authReq(0xa1, 0xa2))
		if v := r.ikeOut(clientB, srvT, authReq(0xb1, 0xb2)); v != Accept {
			t.Fatalf("B to another server: %v", v)
		}
	})
	t.Run("server-initiated rekey to another client", func(t *testing.T) {
		r := newRig(t, Options{})
		r.handshake(clientB, srvS, 0xb1, 0xb2)
		r.espOut(clientB, srvS, 0xc1b)
		r.wantIn(srvS, 0xa1b, clientB)
		r.ikeOut(clientA, srvS, authReq(0xa1, 0xa2))
		// The server starts a CREATE_CHILD_SA with B while A negotiates.
		req := childReq(0xb1, 0xb2, 7)
		req.flags = 0 // sent by the original responder
		if v, _ := r.ikeIn(srvS, 500, req); v != Drop {
			t.Fatalf("server's CREATE_CHILD_SA to B while A negotiates: %v", v)
		}
		// Responses and non-child exchanges are never held.
		if v, _ := r.ikeIn(srvS, 500, ikeMsg{ispi: 0xb1, rspi: 0xb2, exchange: packet.IKEv2ExchangeInformational}); v != Accept {
			t.Fatalf("INFORMATIONAL: %v", v)
		}
	})
}

func TestIKEv1QuickMode(t *testing.T) {
	r := newRig(t, Options{})
	qm := func(ispi, rspi uint64, id uint32) ikeMsg {
		return ikeMsg{version: 1, ispi: ispi, rspi: rspi, exchange: packet.IKEv1ExchangeQuickMode, flags: packet.IKEv1FlagEncryption, msgID: id}
	}
	if v := r.ikeOut(clientA, srvS, qm(0xa1, 0xa2, 0x1111)); v != Accept {
		t.Fatal(v)
	}
	if v := r.ikeOut(clientB, srvS, qm(0xb1, 0xb2, 0x2222)); v != Drop {
		t.Fatalf("B's Quick Mode while A's runs: %v", v)
	}
	// Messages 2 and 3 of A's Quick Mode continue it.
	if v, _ := r.ikeIn(srvS, 500, qm(0xa1, 0xa2, 0x1111)); v != Accept {
		t.Fatal(v)
	}
	if v := r.ikeOut(clientA, srvS, qm(0xa1, 0xa2, 0x1111)); v != Accept {
		t.Fatal(v)
	}
	r.espOut(clientA, srvS, 0xc1a)
	r.wantIn(srvS, 0xa1a, clientA)
	if v := r.ikeOut(clientB, srvS, qm(0xb1, 0xb2, 0x2222)); v != Accept {
		t.Fatalf("B after A learned: %v", v)
	}
}

func TestKeepIKEPortSharesPort500(t *testing.T) {
	r := newRig(t, Options{KeepIKEPort: true})
	for _, c := range []struct {
		client     netip.Addr
		ispi, rspi uint64
	}{{clientA, 0xa1, 0xa2}, {clientB, 0xb1, 0xb2}, {clientC, 0xc1, 0xc2}} {
		b := ikePacket(c.client, srvS, 500, 500, saInitReq(c.ispi))
		v, ip := r.out(b)
		u := packet.UDP(ip.Payload())
		if v != Forward || ip.Src() != wanA || u.SrcPort() != 500 || !ip.ChecksumValid() || !u.ChecksumValid(ip.Src(), ip.Dst()) {
			t.Fatalf("IKE from %s: %v src %s:%d checksums %v %v", c.client, v, ip.Src(), u.SrcPort(), ip.ChecksumValid(), u.ChecksumValid(ip.Src(), ip.Dst()))
		}
	}
	// Replies, interleaved, each to its own client by initiator SPI.
	for _, c := range []struct {
		ispi, rspi uint64
		want       netip.Addr
	}{{0xb1, 0xb2, clientB}, {0xa1, 0xa2, clientA}, {0xc1, 0xc2, clientC}, {0xa1, 0xa2, clientA}} {
		v, ip := r.ikeIn(srvS, 500, saInitResp(c.ispi, c.rspi))
		u := packet.UDP(ip.Payload())
		if v != Forward || ip.Dst() != c.want || !ip.ChecksumValid() || !u.ChecksumValid(ip.Src(), ip.Dst()) {
			t.Fatalf("reply %#x: %v to %s, want %s", c.ispi, v, ip.Dst(), c.want)
		}
	}
	// A server-initiated message on B's IKE SA, found by the responder SPI
	// the client registered from its own messages.
	r.ikeOut(clientB, srvS, ikeMsg{ispi: 0xb1, rspi: 0xb2, exchange: packet.IKEv2ExchangeInformational, flags: packet.IKEFlagInitiator, msgID: 3})
	if v, ip := r.ikeIn(srvS, 500, ikeMsg{ispi: 0x5e5e, rspi: 0xb2, exchange: packet.IKEv2ExchangeInformational}); v != Forward || ip.Dst() != clientB {
		t.Fatalf("by responder SPI: %v to %s", v, ip.Dst())
	}
	// Unknown SPIs are left to the kernel (the router's own IKE).
	if v, ip := r.ikeIn(srvS, 500, saInitResp(0xdead, 0xbeef)); v != Accept || ip.Dst() != wanA {
		t.Fatalf("unknown IKE SPI: %v", v)
	}
	if _, state := r.session("ike", "10.10.3.2", ""); state != "port 500 shared by 3 clients, demuxed by IKE SPI" {
		t.Fatalf("ike state %q", state)
	}
	// A source port other than 500 is the kernel's to NAT.
	if v, _ := r.out(ikePacket(clientA, srvS, 40000, 500, saInitReq(0xa9))); v != Accept {
		t.Fatalf("sport 40000: %v", v)
	}
	// Port 500 and the ESP path together: IKE-learned timing still works.
	r.ikeOut(clientA, srvS, authReq(0xa1, 0xa2))
	r.ikeIn(srvS, 500, authResp(0xa1, 0xa2))
	r.espOut(clientA, srvS, 0xc1a)
	r.wantIn(srvS, 0xa1a, clientA)
}

func TestKeepIKEPortSPIConflict(t *testing.T) {
	r := newRig(t, Options{KeepIKEPort: true})
	if v := r.ikeOut(clientA, srvS, saInitReq(0x77)); v != Forward {
		t.Fatal(v)
	}
	if v := r.ikeOut(clientB, srvS, saInitReq(0x77)); v != Drop {
		t.Fatalf("same initiator SPI from another client: %v, want drop", v)
	}
	if _, state := r.session("ike", "10.10.2.2", ""); !strings.HasPrefix(state, "SPI conflict") {
		t.Fatalf("state %q", state)
	}
	if r.tr.Stats().IKESPIConflicts != 1 {
		t.Fatal(r.tr.Stats())
	}
}

func TestKernelNATRemapIsReported(t *testing.T) {
	r := newRig(t, Options{})
	// Kernel NAT mode: the engine only watches.
	for _, c := range []netip.Addr{clientA, clientB} {
		b := ikePacket(c, srvS, 500, 500, saInitReq(uint64(c.As4()[2])))
		if v, ip := r.out(b); v != Accept || ip.Src() != c {
			t.Fatalf("outbound IKE: %v %s", v, ip.Src())
		}
	}
	// The replies arrive before de-NAT: A kept 500, B got 1024.
	if v, _ := r.ikeIn(srvS, 500, saInitResp(1, 0x51)); v != Accept {
		t.Fatal(v)
	}
	if v, ip := r.ikeIn(srvS, 1024, saInitResp(2, 0x52)); v != Accept || ip.Dst() != wanA {
		t.Fatal(v)
	}
	if _, st := r.session("ike", "10.10.1.2", ""); st != "kernel NAT" {
		t.Fatalf("A: %q", st)
	}
	var b *struct{ orig, trans, state string }
	for _, s := range r.tr.Sessions(r.now) {
		if s.Proto == "ike" && s.Client == "10.10.2.2" {
			b = &struct{ orig, trans, state string }{s.OrigID, s.TransID, s.State}
		}
	}
	if b == nil || b.orig != "500" || b.trans != "1024" || b.state != "remapped by kernel NAT" {
		t.Fatalf("B's ike session %+v", b)
	}
	if r.tr.Stats().IKERemapped != 1 {
		t.Fatal(r.tr.Stats())
	}
}

func TestIKEExpiresWithPair(t *testing.T) {
	r := newRig(t, Options{IdleTimeout: time.Minute, KeepIKEPort: true})
	r.ikeOut(clientA, srvS, saInitReq(0xa1))
	r.advance(2 * time.Minute)
	r.tr.Expire(r.now)
	if len(r.tr.ikeSPIs) != 0 || len(r.tr.pairs) != 0 {
		t.Fatalf("%d IKE SPIs, %d pairs left", len(r.tr.ikeSPIs), len(r.tr.pairs))
	}
	if v, _ := r.ikeIn(srvS, 500, saInitResp(0xa1, 0xa2)); v != Accept {
		t.Fatalf("after expiry: %v", v)
	}
}

func TestKeepIKEPortSwitchedOff(t *testing.T) {
	r := newRig(t, Options{KeepIKEPort: true})
	if v := r.ikeOut(clientA, srvS, saInitReq(0xa1)); v != Forward {
		t.Fatal(v)
	}
	r.tr.SetOptions(Options{}) // reload without keep_ike_port
	if v := r.ikeOut(clientA, srvS, authReq(0xa1, 0xa2)); v != Accept {
		t.Fatalf("after the switch: %v, want accept (kernel NAT)", v)
	}
	if v, ip := r.ikeIn(srvS, 500, authResp(0xa1, 0xa2)); v != Accept || ip.Dst() != wanA {
		t.Fatalf("inbound after the switch: %v", v)
	}
	if _, st := r.session("ike", "10.10.1.2", ""); st != "kernel NAT" {
		t.Fatalf("state %q", st)
	}
}

// TestChainedNegotiationsCannotStarveAClient: LAN hosts that take turns
// starting child-SA exchanges with one server (so one of them is always
// "negotiating") hold another client back for at most HoldMax in all.
func TestChainedNegotiationsCannotStarveAClient(t *testing.T) {
	r := newRig(t, Options{HoldWindow: 3 * time.Second, HoldMax: 10 * time.Second})
	attacker := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 10, 9, byte(i + 1)}) }
	r.ikeOut(attacker(0), srvS, authReq(0x100, 0x200))
	firstHeld, passedAt := time.Duration(-1), time.Duration(-1)
	for s := 1; s <= 20 && passedAt < 0; s++ {
		r.advance(time.Second)
		// A fresh address starts a new exchange every second.
		r.ikeOut(attacker(s), srvS, authReq(uint64(0x100+s), uint64(0x200+s)))
		switch r.ikeOut(clientB, srvS, authReq(0xb1, 0xb2)) {
		case Drop:
			if firstHeld < 0 {
				firstHeld = time.Duration(s) * time.Second
			}
		case Accept:
			passedAt = time.Duration(s) * time.Second
		}
	}
	if firstHeld < 0 {
		t.Fatal("B was never held: the test does not exercise the hold")
	}
	if passedAt < 0 || passedAt-firstHeld > 10*time.Second {
		t.Fatalf("B first held at %v, passed at %v: longer than HoldMax", firstHeld, passedAt)
	}
}
