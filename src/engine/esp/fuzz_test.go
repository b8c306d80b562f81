package esp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// fuzzSeeds are packets of every shape the engine handles, from the unit
// tests' builders.
func fuzzSeeds() [][]byte {
	return [][]byte{
		espPacket(clientA, srvS, 0xc1, 1),
		espPacket(srvS, wanA, 0xa1, 1),
		espPacket(srvS, wanA, 0xdead, 7),
		ikePacket(clientA, srvS, 500, 500, saInitReq(0xa1)),
		ikePacket(srvS, wanA, 500, 500, saInitResp(0xa1, 0xa2)),
		ikePacket(srvS, wanA, 500, 1024, authResp(0xb1, 0xb2)),
		ikePacket(clientB, srvS, 500, 500, childReq(0xb1, 0xb2, 4)),
		ikePacket(clientA, srvS, 500, 500, ikeMsg{version: 1, ispi: 1, rspi: 2, exchange: packet.IKEv1ExchangeQuickMode, msgID: 9}),
		ipv4Packet(clientA, srvS, packet.ProtoESP, []byte{1, 2, 3}),
		{0x45, 0, 0, 20},
	}
}

// primed returns a tracker that knows A (established, kernel NAT for IKE)
// and B (IKE on shared port 500, learning), so fuzzed packets meet every
// table state.
func primed(t testing.TB) (*Tracker, time.Duration) {
	tr := NewTracker(Options{KeepIKEPort: true, MaxSAs: 64})
	now := time.Hour
	step := func(b []byte, dir Dir) {
		now += time.Millisecond
		tr.Process(b, dir, wanA, now)
	}
	step(ikePacket(clientA, srvS, 500, 500, saInitReq(0xa1)), Outbound)
	step(ikePacket(srvS, wanA, 500, 500, saInitResp(0xa1, 0xa2)), Inbound)
	step(ikePacket(clientA, srvS, 500, 500, authReq(0xa1, 0xa2)), Outbound)
	step(ikePacket(srvS, wanA, 500, 500, authResp(0xa1, 0xa2)), Inbound)
	step(espPacket(clientA, srvS, 0xc1, 1), Outbound)
	step(espPacket(srvS, wanA, 0xa1, 1), Inbound)
	step(ikePacket(clientB, srvS, 500, 500, saInitReq(0xb1)), Outbound)
	step(espPacket(clientB, srvS, 0xc2, 1), Outbound)
	if tr.Len() != 2 {
		t.Fatalf("primed tracker has %d SAs", tr.Len())
	}
	return tr, now
}

// FuzzProcess feeds arbitrary packets to a primed tracker in both
// directions: it must never panic, and a Forward verdict must leave a valid
// IPv4 packet whose checksums are as right as they were before.
func FuzzProcess(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, outbound bool) {
		tr, now := primed(t)
		dir := Inbound
		if outbound {
			dir = Outbound
		}
		orig := bytes.Clone(b)
		ipOK, udpOK := checksumsOK(orig)
		v := tr.Process(b, dir, wanA, now+time.Millisecond)
		switch v {
		case Forward:
			ip, err := packet.ParseIPv4(b)
			if err != nil {
				t.Fatalf("forwarded packet no longer parses: %v", err)
			}
			if len(b) != len(orig) {
				t.Fatal("length changed")
			}
			ip2, udp2 := checksumsOK(b)
			if ipOK && !ip2 {
				t.Fatal("IP header checksum broken by the rewrite")
			}
			if udpOK && !udp2 {
				t.Fatal("UDP checksum broken by the rewrite")
			}
			// Only addresses and checksums may change.
			hl := ip.HeaderLen()
			pl, opl := b[hl:], orig[hl:]
			same := bytes.Equal(b[:10], orig[:10]) && bytes.Equal(b[20:hl], orig[20:hl])
			if ip.Protocol() == packet.ProtoUDP && len(pl) >= 8 {
				same = same && bytes.Equal(pl[:6], opl[:6]) && bytes.Equal(pl[8:], opl[8:])
			} else {
				same = same && bytes.Equal(pl, opl)
			}
			if !same {
				t.Fatal("rewrite touched more than addresses and checksums")
			}
		default:
			if !bytes.Equal(b, orig) {
				t.Fatalf("verdict %v but the packet changed", v)
			}
		}
		// No single packet, however malformed or spoofed, changes A's
		// established SA: its bindings both ways stay, and it stays
		// programmed in the kernel maps.
		if s := tr.in[inKey{ip4Of(srvS), 0xa1}]; s == nil || s.pair.client != ip4Of(clientA) || s.out != 0xc1 {
			t.Fatalf("A's inbound binding changed: %+v", s)
		}
		if s := tr.out[outKey{ip4Of(clientA), ip4Of(srvS), 0xc1}]; s == nil || s.in != 0xa1 {
			t.Fatalf("A's outbound binding changed: %+v", s)
		}
		found := false
		for _, d := range tr.Desired() {
			found = found || (d.Client == clientA && d.In == 0xa1 && d.Out == 0xc1)
		}
		if !found {
			t.Fatal("A's SA is no longer programmed")
		}
		// And the tracker stays consistent.
		tr.Expire(now + 24*time.Hour)
		if tr.Len() != 0 || len(tr.in) != 0 || len(tr.out) != 0 || len(tr.pairs) != 0 || len(tr.ikeSPIs) != 0 || len(tr.servers) != 0 {
			t.Fatalf("expiry left %d SAs, %d in, %d out, %d pairs, %d ike, %d servers",
				tr.Len(), len(tr.in), len(tr.out), len(tr.pairs), len(tr.ikeSPIs), len(tr.servers))
		}
	})
}

// checksumsOK reports whether b's IPv4 header checksum and (for UDP) its
// UDP checksum are valid.
func checksumsOK(b []byte) (ipOK, udpOK bool) {
	ip, err := packet.ParseIPv4(b)
	if err != nil {
		return false, false
	}
	ipOK = ip.ChecksumValid()
	if ip.Protocol() == packet.ProtoUDP && ip.FragOffset() == 0 {
		if u, err := packet.ParseUDP(ip.Payload()); err == nil && u.Checksum() != 0 {
			udpOK = u.ChecksumValid(ip.Src(), ip.Dst())
		}
	}
	return ipOK, udpOK
}

// FuzzESPHeader checks the ESP parsing the engine relies on (packet.ParseESP):
// no panic, the SPI is the first four bytes and never zero, and short input
// is refused.
func FuzzESPHeader(f *testing.F) {
	for _, s := range fuzzSeeds() {
		if ip, err := packet.ParseIPv4(s); err == nil {
			f.Add(ip.Payload())
		}
	}
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := packet.ParseESP(b)
		if err != nil {
			if len(b) >= packet.ESPMinLen && binary.BigEndian.Uint32(b) != 0 {
				t.Fatalf("refused a valid-looking ESP packet: %v", err)
			}
			return
		}
		if len(b) < packet.ESPMinLen || e.SPI() == 0 || e.SPI() != binary.BigEndian.Uint32(b) ||
			e.Seq() != binary.BigEndian.Uint32(b[4:]) || len(e.Payload()) != len(b)-packet.ESPHeaderLen {
			t.Fatalf("ESP view of %x is wrong", b)
		}
	})
}

// FuzzIKEHeader checks the IKE parsing the engine relies on (packet.ParseIKE
// and ParseNATT) and the child-SA classification on top of it: no panic, the
// view never reaches past its Length, and the classification only ever
// names the exchanges that create Child SAs.
func FuzzIKEHeader(f *testing.F) {
	for _, s := range fuzzSeeds() {
		if ip, err := packet.ParseIPv4(s); err == nil && ip.Protocol() == packet.ProtoUDP {
			f.Add(ip.Payload()[8:])
		}
	}
	f.Add(make([]byte, 28))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := packet.ParseIKE(b)
		if err == nil {
			if int(h.Length()) != len(h) || len(h) > len(b) || len(h) < packet.IKEHeaderLen {
				t.Fatalf("IKE view: length %d, view %d, input %d", h.Length(), len(h), len(b))
			}
			if v := h.MajorVersion(); v != 1 && v != 2 {
				t.Fatalf("version %d accepted", v)
			}
			p := &pair{}
			child, req := childMsg(p, h)
			ex := h.ExchangeType()
			isChild := (v2(h) && (ex == packet.IKEv2ExchangeAuth || ex == packet.IKEv2ExchangeCreateChildSA)) ||
				(!v2(h) && ex == packet.IKEv1ExchangeQuickMode)
			if child != isChild || (req && !child) {
				t.Fatalf("exchange %d version %d classified child=%v request=%v", ex, h.MajorVersion(), child, req)
			}
		}
		// NAT-T framing of the same bytes (as if on UDP 4500).
		kind, inner := packet.ParseNATT(b)
		switch kind {
		case packet.NATTIKE:
			if len(inner) != len(b)-4 {
				t.Fatal("NAT-T IKE view")
			}
		case packet.NATTESP:
			if _, err := packet.ParseESP(inner); err != nil {
				t.Fatalf("NAT-T says ESP, ParseESP says %v", err)
			}
		}
	})
}

func v2(h packet.IKEHeader) bool { return h.MajorVersion() == 2 }

// The seeds must hold as unit tests too (they run without -fuzz anyway).
func TestFuzzSeedsParse(t *testing.T) {
	for i, s := range fuzzSeeds()[:8] {
		if _, err := packet.ParseIPv4(s); err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
	}
	if !netip.MustParseAddr("10.10.1.2").Is4() {
		t.Fatal()
	}
}

// FuzzMapElements: the kernel's map elements, as read back, either parse
// into what makes the same key again or are refused; nothing panics.
func FuzzMapElements(f *testing.F) {
	c := clientA.As4()
	f.Add(InElemKey(srvS, 0x12345678), c[:])
	f.Add(OutElemKey(clientA, srvS, 0xdeadbeef), []byte{})
	f.Add([]byte{1, 2, 3}, []byte{4})
	f.Fuzz(func(t *testing.T, key, val []byte) {
		if e, ok := ParseInElem(key, val); ok {
			if got := InElemKey(e.Server, e.SPI); len(got) != len(key) || !bytes.Equal(got[:4], key[:4]) ||
				binary.BigEndian.Uint16(got[4:]) != binary.BigEndian.Uint16(key[4:]) ||
				binary.BigEndian.Uint16(got[8:]) != binary.BigEndian.Uint16(key[8:]) {
				t.Fatalf("in key % x parsed to %+v, which encodes as % x", key, e, got)
			}
		}
		if e, ok := ParseOutElem(key); ok {
			if got := OutElemKey(e.Client, e.Server, e.SPI); len(got) != len(key) || !bytes.Equal(got[:8], key[:8]) {
				t.Fatalf("out key % x parsed to %+v, which encodes as % x", key, e, got)
			}
		}
	})
}
