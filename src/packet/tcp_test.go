package packet

import (
	"math/rand"
	"testing"
)

// hexOCRQSegment: IPv4 + TCP 192.168.1.100:50000 -> 203.0.113.5:1723, PSH|ACK,
// seq 0x01020304, ack 0x0a0b0c0d, carrying one Outgoing-Call-Request
// (RFC 2637 section 2.7) with Call ID 0x4001, serial 7. TCP checksum 0x9a08.
var hexOCRQSegment = "4500 00d0 | 1c46 4000 | 4006 1fd0 | c0a8 0164 | cb00 7105 |" + // IPv4
	"c350 06bb | 01020304 | 0a0b0c0d | 5018 faf0 | 9a08 0000 |" + // TCP
	hexOCRQ

func TestParseTCP(t *testing.T) {
	tests := []struct {
		name             string
		in               string
		err              error
		sport, dport     uint16
		seq, ack         uint32
		hl, payload      int
		flags            uint8
		csum             uint16
		checksumValidity bool
	}{
		{name: "syn", in: hexSYN, sport: 50000, dport: 1723, seq: 0x11223344, hl: 20,
			flags: TCPFlagSYN, csum: 0xa86d, checksumValidity: true},
		{name: "ocrq segment", in: hexOCRQSegment, sport: 50000, dport: 1723, seq: 0x01020304,
			ack: 0x0a0b0c0d, hl: 20, payload: 168, flags: TCPFlagPSH | TCPFlagACK, csum: 0x9a08,
			checksumValidity: true},
		// Hostile inputs are bare TCP headers.
		{name: "19 bytes", in: "c350 06bb | 00000000 | 00000000 | 5002 faf0 | 0000 00", err: ErrShort},
		{name: "data offset 4", in: "c350 06bb | 00000000 | 00000000 | 4002 faf0 | 0000 0000", err: ErrHeaderLen},
		{name: "data offset 15 past end", in: "c350 06bb | 00000000 | 00000000 | f002 faf0 | 0000 0000 | 01010101",
			err: ErrHeaderLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.in)
			ip, err := ParseIPv4(b)
			if err == nil {
				b = ip.Payload()
			}
			tcp, err := ParseTCP(b)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if tcp.SrcPort() != tt.sport || tcp.DstPort() != tt.dport || tcp.Seq() != tt.seq ||
				tcp.Ack() != tt.ack || tcp.HeaderLen() != tt.hl || len(tcp.Payload()) != tt.payload ||
				tcp.Flags() != tt.flags || tcp.Checksum() != tt.csum {
				t.Errorf("got ports %d>%d seq %#x ack %#x hl %d payload %d flags %#x csum %#04x",
					tcp.SrcPort(), tcp.DstPort(), tcp.Seq(), tcp.Ack(), tcp.HeaderLen(),
					len(tcp.Payload()), tcp.Flags(), tcp.Checksum())
			}
			if got := tcp.ChecksumValid(ip.Src(), ip.Dst()); got != tt.checksumValidity {
				t.Errorf("ChecksumValid = %v", got)
			}
			if got := tcp.ComputeChecksum(ip.Src(), ip.Dst()); got != tt.csum {
				t.Errorf("ComputeChecksum = %#04x, want %#04x", got, tt.csum)
			}
		})
	}
}

// TestTCPRewriteIncremental: DNAT-style rewrites (address, port, payload
// words at odd and even offsets) on random segments must leave the same
// checksum as a full recomputation.
func TestTCPRewriteIncremental(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for i := 0; i < 5000; i++ {
		b := make([]byte, 20+r.Intn(200))
		r.Read(b)
		b[12] = 5 << 4
		tcp, err := ParseTCP(b)
		if err != nil {
			t.Fatal(err)
		}
		src, dst := randAddr(r), randAddr(r)
		tcp.UpdateChecksum(src, dst)
		switch i % 6 {
		case 0:
			nd := randAddr(r)
			tcp.UpdateChecksumAddr(dst, nd)
			dst = nd
		case 1:
			tcp.SetDstPort(uint16(r.Uint32()))
		case 2:
			tcp.SetSrcPort(uint16(r.Uint32()))
		case 3:
			tcp.SetSeq(r.Uint32())
			tcp.SetAck(r.Uint32())
		case 4:
			if len(tcp) < 22 {
				continue
			}
			tcp.Rewrite16(20+r.Intn(len(tcp)-21), uint16(r.Uint32()))
		case 5:
			if len(tcp) < 21 {
				continue
			}
			tcp.RewriteByte(20+r.Intn(len(tcp)-20), byte(r.Uint32()))
		}
		if got, want := tcp.Checksum(), tcp.ComputeChecksum(src, dst); !sameChecksum(got, want) {
			t.Fatalf("case %d: incremental %#04x, full %#04x", i%6, got, want)
		}
		if !tcp.ChecksumValid(src, dst) {
			t.Fatalf("case %d: not valid after rewrite", i%6)
		}
	}
}

// TestTCPRewriteCallIDOddOffset: a PPTP Call ID at an odd offset of a
// segment, as happens after an earlier segment ended mid-message.
func TestTCPRewriteCallIDOddOffset(t *testing.T) {
	ip, _ := ParseIPv4(unhex(t, hexOCRQSegment))
	// Make the payload start one byte later: drop the last payload byte,
	// insert a 0x55 byte before the message.
	seg := make([]byte, len(ip.Payload()))
	copy(seg, ip.Payload()[:20])
	seg[20] = 0x55
	copy(seg[21:], ip.Payload()[20:len(ip.Payload())-1])
	tcp, _ := ParseTCP(seg)
	tcp.UpdateChecksum(ip.Src(), ip.Dst())
	off := 20 + 1 + PPTPOutgoingCallRequest.CallIDOffset()
	if off%2 != 1 {
		t.Fatalf("offset %d is not odd", off)
	}
	tcp.Rewrite16(off, 0xbeef)
	if !tcp.ChecksumValid(ip.Src(), ip.Dst()) {
		t.Errorf("checksum invalid after odd-offset Rewrite16")
	}
	if tcp[off] != 0xbe || tcp[off+1] != 0xef {
		t.Errorf("bytes = %x, want beef", tcp[off:off+2])
	}
}

func TestTCPAllocs(t *testing.T) {
	ip, _ := ParseIPv4(unhex(t, hexOCRQSegment))
	b := ip.Payload()
	assertNoAllocs(t, "ParseTCP", func() { _, _ = ParseTCP(b) })
	tcp, _ := ParseTCP(b)
	assertNoAllocs(t, "getters", func() { _, _, _, _ = tcp.SrcPort(), tcp.DstPort(), tcp.Payload(), tcp.Seq() })
	assertNoAllocs(t, "rewrites", func() {
		tcp.SetDstPort(1723)
		tcp.UpdateChecksumAddr(wanAddr, natAddr)
		tcp.Rewrite16(33, 7)
		tcp.RewriteByte(33, 7)
	})
	assertNoAllocs(t, "UpdateChecksum", func() { tcp.UpdateChecksum(lanAddr, wanAddr) })
}

func FuzzTCP(f *testing.F) {
	for _, s := range []string{hexSYN, hexOCRQSegment} {
		ip, _ := ParseIPv4(unhex(f, s))
		f.Add([]byte(ip.Payload()), uint16(1723), uint32(7), uint16(33))
	}
	f.Fuzz(func(t *testing.T, b []byte, port uint16, seq uint32, off uint16) {
		tcp, err := ParseTCP(b)
		if err != nil {
			return
		}
		if tcp.HeaderLen() < TCPMinHeaderLen || tcp.HeaderLen() > len(tcp) {
			t.Fatalf("header length %d of %d", tcp.HeaderLen(), len(tcp))
		}
		_, _ = tcp.Payload(), tcp.Flags()
		tcp.UpdateChecksum(lanAddr, wanAddr)
		tcp.SetSrcPort(port)
		tcp.SetDstPort(port)
		tcp.SetSeq(seq)
		tcp.SetAck(seq)
		if tcp.SrcPort() != port || tcp.DstPort() != port || tcp.Seq() != seq || tcp.Ack() != seq {
			t.Fatalf("setters and getters disagree")
		}
		if o := int(off); o+1 < len(tcp) && (o > 17 || o+1 < 16) {
			tcp.Rewrite16(o, port)
			if tcp[o] != byte(port>>8) || tcp[o+1] != byte(port) {
				t.Fatalf("Rewrite16 did not store")
			}
		}
		if !tcp.ChecksumValid(lanAddr, wanAddr) {
			t.Fatalf("checksum invalid after incremental rewrites")
		}
	})
}

func BenchmarkTCPRewriteDNAT(b *testing.B) {
	ip, _ := ParseIPv4(unhex(b, hexOCRQSegment))
	b.ReportAllocs()
	for range b.N {
		tcp, err := ParseTCP(ip.Payload())
		if err != nil {
			b.Fatal(err)
		}
		old := ip.Dst()
		ip.SetDst(natAddr)
		tcp.UpdateChecksumAddr(old, natAddr)
		ip.SetDst(old)
		tcp.UpdateChecksumAddr(natAddr, old)
	}
}
