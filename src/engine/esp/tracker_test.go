package esp

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

func TestOneClientLearnsBothDirections(t *testing.T) {
	r := newRig(t, Options{})
	r.espOut(clientA, srvS, 0xc0000001)
	if ok, st := r.session("esp", "10.10.1.2", "0xc0000001"); !ok || st != StateLearning {
		t.Fatalf("after the first outbound packet: session %v state %q, want learning", ok, st)
	}
	r.wantIn(srvS, 0xa0000001, clientA)
	// Both SPIs known, but "established" promises traffic both ways since.
	if ok, st := r.session("esp", "10.10.1.2", "0xa0000001"); !ok || st != StateOneWay {
		t.Fatalf("after the first inbound packet: session %v state %q, want %q", ok, st, StateOneWay)
	}
	for i := 0; i < 5; i++ {
		r.espOut(clientA, srvS, 0xc0000001)
		r.wantIn(srvS, 0xa0000001, clientA)
	}
	if ok, st := r.session("esp", "10.10.1.2", "0xa0000001"); !ok || st != StateEstablished {
		t.Fatalf("after traffic both ways: session %v state %q, want established", ok, st)
	}
	s := r.tr.Sessions(r.now)
	if len(s) != 1 || s[0].PacketsOut != 6 || s[0].PacketsIn != 6 || s[0].BytesIn != 6*76 {
		t.Fatalf("sessions %+v", s)
	}
	st := r.tr.Stats()
	if st.OutForwarded != 6 || st.InForwarded != 6 || st.LearnedIn != 1 || st.LearnedOut != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnknownInbound(t *testing.T) {
	r := newRig(t, Options{})
	// No client talks to anybody: not ours, left to the kernel untouched.
	r.wantInVerdict(srvS, 0x1234, Accept)
	r.espOut(clientA, srvS, 0xc0000001)
	r.wantIn(srvS, 0xa0000001, clientA)
	// Established: another SPI from the same server has no candidate.
	r.wantInVerdict(srvS, 0xa0000002, Drop)
	// A valid-looking SPI from another WAN address is not forwarded.
	r.wantInVerdict(other, 0xa0000001, Accept)
	st := r.tr.Stats()
	if st.InUnknownSPI != 1 || st.InNotOurs != 2 || st.InForwarded != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestInboundToOtherDestinationIsNotRewritten(t *testing.T) {
	r := newRig(t, Options{})
	r.espOut(clientA, srvS, 0xc0000001)
	r.wantIn(srvS, 0xa0000001, clientA)
	// Sent straight to the client's LAN address with its SPI: not for the
	// WAN address, so the engine leaves it (unmarked, fw4 never sees it as
	// ours and the forward chain drops it).
	b := espPacket(srvS, clientA, 0xa0000001, 9)
	if v, _ := r.in(b); v != Accept {
		t.Fatalf("verdict %v, want accept (not ours)", v)
	}
}

func TestNeverBindToAClientThatDidNotTalkToTheServer(t *testing.T) {
	r := newRig(t, Options{})
	// B is pending, but with another server.
	r.handshake(clientB, srvT, 0xb1, 0xb2)
	r.espOut(clientB, srvT, 0xc000000b)
	// A talked to S and is established.
	r.espOut(clientA, srvS, 0xc000000a)
	r.wantIn(srvS, 0xa000000a, clientA)
	r.wantInVerdict(srvS, 0xa000000b, Drop)
	r.wantIn(srvT, 0xa000000b, clientB)
}

func TestSeveralClientsOneServer(t *testing.T) {
	for _, n := range []int{2, 3, 50} {
		t.Run(fmt.Sprintf("%d clients", n), func(t *testing.T) {
			r := newRig(t, Options{})
			client := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 10, byte(i), 2}) }
			// One after the other, as clients usually start.
			for i := 1; i <= n; i++ {
				r.handshake(client(i), srvS, uint64(i)<<32|1, uint64(i)<<32|2)
				r.espOut(client(i), srvS, 0xc0000000+uint32(i))
				r.wantIn(srvS, 0xa0000000+uint32(i), client(i))
			}
			// Every reply keeps reaching its own client, in any order.
			for k := 0; k < 3; k++ {
				for i := n; i >= 1; i-- {
					r.espOut(client(i), srvS, 0xc0000000+uint32(i))
					r.wantIn(srvS, 0xa0000000+uint32(i), client(i))
				}
			}
			if got := r.tr.Len(); got != n {
				t.Fatalf("%d SAs, want %d", got, n)
			}
			if r.tr.Stats().Ambiguous != 0 {
				t.Fatalf("ambiguous learning: %+v", r.tr.Stats())
			}
		})
	}
}

// Among clients sending on half-learned SAs, the first to send gets the
// first unknown inbound SPI (the server answers the first request first);
// a client that only negotiated ranks below them, and among those the most
// recent IKE exchange wins.
func TestFirstSenderThenMostRecentIKE(t *testing.T) {
	r := newRig(t, Options{HoldWindow: time.Millisecond}) // no hold: exercise the rule itself
	r.handshake(clientA, srvS, 0xa1, 0xa2)
	r.advance(time.Second)
	r.handshake(clientB, srvS, 0xb1, 0xb2)
	r.espOut(clientA, srvS, 0xc000000a)
	r.espOut(clientB, srvS, 0xc000000b)
	// Both sent a moment ago: the timing cannot tell yet, so the guesses
	// are provisional and held back (TestFirstPacketsRaceAnswersInAnyOrder
	// shows the evidence settling them).
	r.wantInVerdict(srvS, 0x11111111, Drop)
	r.wantBound(srvS, 0x11111111, clientA)
	r.wantInVerdict(srvS, 0x22222222, Drop)
	r.wantBound(srvS, 0x22222222, clientB) // the only candidate left
	if r.tr.Stats().Ambiguous != 1 {
		t.Fatalf("stats %+v", r.tr.Stats())
	}
	// Issue 8 (libreswan): A up, B up, A sends first: A's, though B's
	// IKE is more recent.
	r2 := newRig(t, Options{HoldWindow: time.Millisecond})
	r2.handshake(clientA, srvS, 0xa1, 0xa2)
	r2.advance(time.Second)
	r2.handshake(clientB, srvS, 0xb1, 0xb2)
	r2.advance(time.Second)
	r2.espOut(clientA, srvS, 0xc000000a)
	r2.wantIn(srvS, 0x11111111, clientA)
	r2.espOut(clientB, srvS, 0xc000000b)
	// B's SPI is the only one left, but A's is still provisional and A
	// sent a moment before: one vote is not enough to deliver on.
	r2.wantInVerdict(srvS, 0x22222222, Drop)
	r2.wantBound(srvS, 0x22222222, clientB)
	r2.advance(100 * time.Millisecond)
	r2.espOut(clientB, srvS, 0xc000000b)
	r2.wantIn(srvS, 0x22222222, clientB)
	// Only negotiated: the most recent exchange wins.
	r3 := newRig(t, Options{HoldWindow: time.Millisecond})
	r3.handshake(clientA, srvS, 0xa1, 0xa2)
	r3.advance(time.Second)
	r3.handshake(clientB, srvS, 0xb1, 0xb2)
	r3.wantIn(srvS, 0x11111111, clientB)
	// An SA unanswered for longer than the reply window ranks below a
	// fresh exchange.
	r4 := newRig(t, Options{HoldWindow: time.Millisecond})
	r4.espOut(clientA, srvS, 0xc000000a)
	r4.advance(DefaultReplyWindow + time.Second)
	r4.handshake(clientB, srvS, 0xb1, 0xb2)
	r4.wantIn(srvS, 0x11111111, clientB)
}

func TestTieGoesToLowerAddress(t *testing.T) {
	r := newRig(t, Options{})
	tr := r.tr
	now := r.now
	// Same instant for everything: only the address can decide.
	for _, c := range []netip.Addr{clientB, clientA} {
		if v := tr.Process(espPacket(c, srvS, 0xc0000000|uint32(c.As4()[2]), 1), Outbound, wanA, now); v != Forward {
			t.Fatal(v)
		}
	}
	// The guess is provisional and held back (both just sent).
	b := espPacket(srvS, wanA, 0x1, 1)
	if v := tr.Process(b, Inbound, netip.Addr{}, now); v != Drop {
		t.Fatalf("verdict %v to %s, want held back", v, packet.IPv4(b).Dst())
	}
	r.wantBound(srvS, 0x1, clientA)
}

func TestServerSendsFirst(t *testing.T) {
	r := newRig(t, Options{})
	r.handshake(clientA, srvS, 0xa1, 0xa2)
	// The server's ESP arrives before the client sent any: A is the only
	// client with a fresh child-SA exchange.
	r.wantIn(srvS, 0xa000000a, clientA)
	if ok, st := r.session("esp", "10.10.1.2", hexSPI(0xa000000a)); !ok || st != StateLearning {
		t.Fatalf("in-only SA: found %v state %q", ok, st)
	}
	r.espOut(clientA, srvS, 0xc000000a)
	r.wantIn(srvS, 0xa000000a, clientA)
	if ok, st := r.session("esp", "10.10.1.2", hexSPI(0xc000000a)); !ok || st != StateEstablished {
		t.Fatalf("after outbound: found %v state %q", ok, st)
	}
	if r.tr.Len() != 1 {
		t.Fatalf("%d SAs, want the in-only one completed", r.tr.Len())
	}
	// Long after the exchange, a client without pending SAs is no candidate.
	r2 := newRig(t, Options{})
	r2.handshake(clientA, srvS, 0xa1, 0xa2)
	r2.advance(DefaultLearnWindow + time.Second)
	r2.wantInVerdict(srvS, 0xa000000a, Drop)
}

func TestRekeyRelearnsAndOldSPIsExpire(t *testing.T) {
	r := newRig(t, Options{IdleTimeout: 10 * time.Minute, RekeyGrace: 30 * time.Second})
	r.handshake(clientA, srvS, 0xa1, 0xa2)
	r.espOut(clientA, srvS, 0xc1a)
	r.wantIn(srvS, 0xa1a, clientA)
	r.handshake(clientB, srvS, 0xb1, 0xb2)
	r.espOut(clientB, srvS, 0xc1b)
	r.wantIn(srvS, 0xa1b, clientB)

	// Both rekey: CREATE_CHILD_SA, then new SPIs both ways.
	for _, c := range []struct {
		client   netip.Addr
		ike      uint64
		out, in  uint32
		oldIn    uint32
		oldState string
	}{
		{clientA, 0xa1, 0xc2a, 0xa2a, 0xa1a, ""},
		{clientB, 0xb1, 0xc2b, 0xa2b, 0xa1b, ""},
	} {
		if v := r.ikeOut(c.client, srvS, childReq(c.ike, c.ike+1, 2)); v == Drop {
			t.Fatalf("rekey of %s held", c.client)
		}
		r.ikeIn(srvS, 500, childResp(c.ike, c.ike+1, 2))
		r.espOut(c.client, srvS, c.out)
		// The old inbound SPI still works during the overlap.
		r.wantIn(srvS, c.oldIn, c.client)
		r.wantIn(srvS, c.in, c.client)
	}
	if ok, st := r.session("esp", "10.10.1.2", hexSPI(0xa1a)); !ok || st != StateRekeyed {
		t.Fatalf("old SA of A: found %v state %q, want rekeyed", ok, st)
	}
	// New SAs carry traffic; the old ones expire after the grace period.
	for i := 0; i < 40; i++ {
		r.advance(time.Second)
		r.espOut(clientA, srvS, 0xc2a)
		r.wantIn(srvS, 0xa2a, clientA)
		r.espOut(clientB, srvS, 0xc2b)
		r.wantIn(srvS, 0xa2b, clientB)
		r.tr.Expire(r.now)
	}
	if r.tr.Len() != 2 {
		t.Fatalf("%d SAs after the grace period, want 2: %+v", r.tr.Len(), r.tr.Sessions(r.now))
	}
	r.wantInVerdict(srvS, 0xa1a, Drop)
	if r.tr.Stats().Expired != 2 {
		t.Fatalf("stats %+v", r.tr.Stats())
	}
}

func TestIdleExpiry(t *testing.T) {
	r := newRig(t, Options{IdleTimeout: time.Minute})
	r.handshake(clientA, srvS, 0xa1, 0xa2)
	r.espOut(clientA, srvS, 0xc1)
	r.wantIn(srvS, 0xa1, clientA)
	r.advance(59 * time.Second)
	r.tr.Expire(r.now)
	if r.tr.Len() != 1 {
		t.Fatal("expired too early")
	}
	r.advance(2 * time.Second)
	r.tr.Expire(r.now)
	if r.tr.Len() != 0 || len(r.tr.pairs) != 0 || len(r.tr.in) != 0 || len(r.tr.out) != 0 ||
		len(r.tr.servers) != 0 || len(r.tr.ikeSPIs) != 0 {
		t.Fatalf("left behind: %d SAs, %d pairs, %d in, %d out, %d servers, %d ike",
			r.tr.Len(), len(r.tr.pairs), len(r.tr.in), len(r.tr.out), len(r.tr.servers), len(r.tr.ikeSPIs))
	}
	// Expired means forgotten: the old SPI is no longer forwarded.
	r.wantInVerdict(srvS, 0xa1, Accept)
}

func TestTableLimit(t *testing.T) {
	r := newRig(t, Options{MaxSAs: 2})
	r.espOut(clientA, srvS, 0xc1)
	r.espOut(clientB, srvS, 0xc2)
	// The third still leaves with the WAN address, but is not learned.
	r.espOut(clientC, srvS, 0xc3)
	if r.tr.Len() != 2 || r.tr.Stats().TableFull == 0 {
		t.Fatalf("%d SAs, stats %+v", r.tr.Len(), r.tr.Stats())
	}
	// After expiry there is room again.
	r.advance(DefaultIdleTimeout + time.Second)
	r.espOut(clientC, srvS, 0xc3)
	if r.tr.Len() != 1 {
		t.Fatalf("%d SAs after expiry, want 1", r.tr.Len())
	}
}

func TestManySAsStayO1(t *testing.T) {
	const n = 5000
	r := newRig(t, Options{MaxSAs: n})
	for i := 0; i < n; i++ {
		c := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 2})
		r.espOut(c, srvT, 0xc0000000+uint32(i))
		r.wantIn(srvT, 0xa0000000+uint32(i), c)
	}
	if r.tr.Len() != n {
		t.Fatalf("%d SAs", r.tr.Len())
	}
	// Spot-check a few mappings after all were learned.
	for _, i := range []int{0, 1, n / 2, n - 1} {
		c := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 2})
		r.wantIn(srvT, 0xa0000000+uint32(i), c)
	}
}

func TestMalformed(t *testing.T) {
	r := newRig(t, Options{KeepIKEPort: true})
	for name, b := range map[string][]byte{
		"empty":     nil,
		"short ip":  {0x45, 0},
		"esp short": ipv4Packet(clientA, srvS, packet.ProtoESP, []byte{1, 2, 3}),
		"esp spi 0": ipv4Packet(clientA, srvS, packet.ProtoESP, make([]byte, 16)),
		"udp short": ipv4Packet(clientA, srvS, packet.ProtoUDP, []byte{1, 244, 1, 244}),
	} {
		for _, dir := range []Dir{Outbound, Inbound} {
			if v := r.tr.Process(append([]byte(nil), b...), dir, wanA, r.now); v != Drop && !(name == "udp short" && dir == Inbound) {
				t.Errorf("%s %d: verdict %v, want drop", name, dir, v)
			}
		}
	}
	// Not IKE on port 500: watched (counted), passed on; with keep_ike_port
	// it is still NATed, since the plan untracked it.
	junk := ipv4Packet(clientA, srvS, packet.ProtoUDP, append([]byte{1, 244, 1, 244, 0, 12, 0, 0}, 1, 2, 3, 4))
	if v := r.tr.Process(junk, Outbound, wanA, r.now); v != Forward || packet.IPv4(junk).Src() != wanA {
		t.Fatalf("junk on 500->500 with keep_ike_port: %v", v)
	}
	if r.tr.Stats().IKEMalformed == 0 {
		t.Fatal("no ike_malformed count")
	}
}

func TestNoWANAddress(t *testing.T) {
	tr := NewTracker(Options{})
	if v := tr.Process(espPacket(clientA, srvS, 1, 1), Outbound, netip.Addr{}, time.Hour); v != Drop {
		t.Fatalf("verdict %v, want drop (it would leave with its LAN source)", v)
	}
	if tr.Stats().NoWANAddress != 1 {
		t.Fatal(tr.Stats())
	}
}

func TestOutboundFragment(t *testing.T) {
	r := newRig(t, Options{})
	b := espPacket(clientA, srvS, 0xc1, 1)
	b[6] = 0x00
	b[7] = 0x10 // offset 128 bytes: a later fragment
	packet.IPv4(b).UpdateChecksum()
	v, ip := r.out(b)
	if v != Forward || ip.Src() != wanA || !ip.ChecksumValid() {
		t.Fatalf("later fragment: %v %s", v, ip.Src())
	}
	if r.tr.Len() != 0 {
		t.Fatal("learned from a fragment without ESP header")
	}
}

func TestUpdateKeepsEntries(t *testing.T) {
	r := newRig(t, Options{})
	r.espOut(clientA, srvS, 0xc1)
	r.wantIn(srvS, 0xa1, clientA)
	r.tr.SetOptions(Options{MaxSAs: 10, IdleTimeout: time.Minute, KeepIKEPort: true})
	r.wantIn(srvS, 0xa1, clientA)
	if o := r.tr.Options(); o.MaxSAs != 10 || o.RekeyGrace != time.Minute {
		t.Fatalf("options %+v", o)
	}
}

func TestZeroAllocsOnKnownSAs(t *testing.T) {
	r := newRig(t, Options{KeepIKEPort: true})
	r.handshake(clientA, srvS, 0xa1, 0xa2)
	r.espOut(clientA, srvS, 0xc1)
	r.wantIn(srvS, 0xa1, clientA)
	out := espPacket(clientA, srvS, 0xc1, 1)
	in := espPacket(srvS, wanA, 0xa1, 1)
	ikeO := ikePacket(clientA, srvS, 500, 500, ikeMsg{ispi: 0xa1, rspi: 0xa2, exchange: packet.IKEv2ExchangeInformational, flags: packet.IKEFlagInitiator, msgID: 5})
	ikeI := ikePacket(srvS, wanA, 500, 500, ikeMsg{ispi: 0xa1, rspi: 0xa2, exchange: packet.IKEv2ExchangeInformational, flags: packet.IKEFlagResponse, msgID: 5})
	bufs := [][]byte{out, in, ikeO, ikeI}
	orig := make([][]byte, len(bufs))
	for i, b := range bufs {
		orig[i] = append([]byte(nil), b...)
	}
	dirs := []Dir{Outbound, Inbound, Outbound, Inbound}
	now := r.now
	allocs := testing.AllocsPerRun(200, func() {
		for i, b := range bufs {
			copy(b, orig[i])
			now += time.Microsecond
			if v := r.tr.Process(b, dirs[i], wanA, now); v != Forward {
				t.Fatalf("packet %d: %v", i, v)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per round on known SAs, want 0", allocs)
	}
}

func BenchmarkOutboundESP(b *testing.B) {
	tr := NewTracker(Options{})
	pkt := espPacket(clientA, srvS, 0xc1, 1)
	orig := append([]byte(nil), pkt...)
	now := time.Hour
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for range b.N {
		copy(pkt, orig)
		now += time.Microsecond
		tr.Process(pkt, Outbound, wanA, now)
	}
}

func BenchmarkInboundESP(b *testing.B) {
	tr := NewTracker(Options{})
	tr.Process(espPacket(clientA, srvS, 0xc1, 1), Outbound, wanA, time.Hour)
	tr.Process(espPacket(srvS, wanA, 0xa1, 1), Inbound, netip.Addr{}, time.Hour)
	pkt := espPacket(srvS, wanA, 0xa1, 1)
	orig := append([]byte(nil), pkt...)
	now := time.Hour
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for range b.N {
		copy(pkt, orig)
		now += time.Microsecond
		tr.Process(pkt, Inbound, netip.Addr{}, now)
	}
}

func TestAlreadyTranslatedIsNotLearned(t *testing.T) {
	// A packet the engine already rewrote can meet the queue again when a
	// reload replaces the chains while it waits for its verdict.
	r := newRig(t, Options{KeepIKEPort: true})
	if v, _ := r.out(espPacket(wanA, srvS, 0xc1, 1)); v != Accept {
		t.Fatalf("ESP from the WAN address: %v", v)
	}
	if v, _ := r.out(ikePacket(wanA, srvS, 500, 500, saInitReq(0xa1))); v != Accept {
		t.Fatalf("IKE from the WAN address: %v", v)
	}
	if len(r.tr.pairs) != 0 || r.tr.Len() != 0 {
		t.Fatalf("learned the router as a client: %+v", r.tr.Sessions(r.now))
	}
}

// Issue 8: one LAN client sending ESP with thousands of random SPIs must not
// fill the tables for the others, nor evict their established SAs.
func TestPerClientCapKeepsOthersWorking(t *testing.T) {
	r := newRig(t, Options{MaxSAs: 64, MaxPerClient: 8})
	r.espOut(clientB, srvS, 0xb1)
	r.wantIn(srvS, 0xb2, clientB)
	for i := uint32(0); i < 5000; i++ {
		r.espOut(clientA, srvS, 0x10000+i)
	}
	if got := r.tr.perClient[ip4Of(clientA)]; got != 8 {
		t.Fatalf("client A holds %d SAs, want its cap 8", got)
	}
	if r.tr.Stats().ClientCap == 0 {
		t.Fatal("client_cap not counted")
	}
	r.espOut(clientB, srvS, 0xb1)
	r.wantIn(srvS, 0xb2, clientB)
	// B still has room for a new SA (to another server).
	r.espOut(clientB, srvT, 0xb3)
	r.wantIn(srvT, 0xb4, clientB)
}

// wantBound requires srv's inbound SPI bound to client (provisionally or
// not).
func (r *rig) wantBound(srv netip.Addr, spi uint32, client netip.Addr) {
	r.t.Helper()
	s := r.tr.in[inKey{ip4Of(srv), spi}]
	if s == nil || s.pair.client != ip4Of(client) {
		r.t.Fatalf("spi %#x of %s bound to %v, want %s", spi, srv, s, client)
	}
}

// Issue 8: a full table refuses new SAs; it never evicts established ones
// to make room, however many new SPIs arrive (the sweep a full table
// triggers removes only idle entries).
func TestFullTableNeverEvictsEstablished(t *testing.T) {
	r := newRig(t, Options{MaxSAs: 2})
	r.espOut(clientA, srvS, 0xa1)
	r.wantIn(srvS, 0xa2, clientA)
	r.advance(time.Second)
	r.espOut(clientB, srvS, 0xb1)
	r.wantIn(srvS, 0xb2, clientB)
	for i := uint32(0); i < 200; i++ {
		r.advance(200 * time.Millisecond) // lets the full-table sweep run
		r.espOut(clientC, srvS, 0xc0000+i)
		r.espOut(clientA, srvS, 0xa1)
		r.wantIn(srvS, 0xa2, clientA)
		r.espOut(clientB, srvS, 0xb1)
		r.wantIn(srvS, 0xb2, clientB)
	}
	if st := r.tr.Stats(); st.TableFull == 0 || st.Expired != 0 || r.tr.Len() != 2 {
		t.Fatalf("%d SAs, stats %+v", r.tr.Len(), st)
	}
	for _, c := range []netip.Addr{clientA, clientB} {
		if ok, st := r.session("esp", c.String(), ""); !ok || st != StateEstablished {
			t.Fatalf("%s: found %v state %q", c, ok, st)
		}
	}
}
