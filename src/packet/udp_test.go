package packet

import (
	"math/rand"
	"testing"
)

const (
	// UDP 192.168.1.100:500 -> 203.0.113.5:500 carrying a 28-byte IKEv2
	// IKE_SA_INIT header (initiator SPI 0011223344556677). Checksum 0xed56.
	hexUDP500 = "4500 0038 | 1c46 4000 | 4011 205d | c0a8 0164 | cb00 7105 |" +
		"01f4 01f4 | 0024 ed56 |" + hexIKEv2SAInit
	// UDP 1701 -> 1701 with checksum 0 (none), carrying an L2TP data header.
	hexUDPNoCsum = "4500 0028 | 1c46 4000 | 4011 206d | c0a8 0164 | cb00 7105 |" +
		"06a5 06a5 | 0014 0000 | c802 000c 0001 0000 0000 0000"
)

func TestParseUDP(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		extra        int // bytes after the datagram inside the IP payload
		err          error
		sport, dport uint16
		length       int
		csum         uint16
	}{
		{name: "ike 500", in: hexUDP500, sport: 500, dport: 500, length: 36, csum: 0xed56},
		{name: "no checksum", in: hexUDPNoCsum, sport: 1701, dport: 1701, length: 20},
		{name: "trailing bytes cut", in: hexUDPNoCsum, extra: 3, sport: 1701, dport: 1701, length: 20},
		{name: "7 bytes", in: "01f4 01f4 0008 00", err: ErrShort},
		{name: "length 7", in: "01f4 01f4 0007 0000", err: ErrLength},
		{name: "length past end", in: "01f4 01f4 0100 0000 0000", err: ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.in)
			ip, ipErr := ParseIPv4(b)
			if ipErr == nil {
				b = append(cloneB(ip.Payload()), make([]byte, tt.extra)...)
			}
			u, err := ParseUDP(b)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if u.SrcPort() != tt.sport || u.DstPort() != tt.dport || u.Length() != tt.length ||
				len(u) != tt.length || u.Checksum() != tt.csum || len(u.Payload()) != tt.length-8 {
				t.Errorf("got %d>%d len %d/%d csum %#04x", u.SrcPort(), u.DstPort(), u.Length(), len(u), u.Checksum())
			}
			if !u.ChecksumValid(ip.Src(), ip.Dst()) {
				t.Errorf("checksum not valid")
			}
			if tt.csum != 0 {
				if got := u.ComputeChecksum(ip.Src(), ip.Dst()); got != tt.csum {
					t.Errorf("ComputeChecksum = %#04x, want %#04x", got, tt.csum)
				}
			}
		})
	}
}

func TestUDPZeroChecksumStaysZero(t *testing.T) {
	ip, _ := ParseIPv4(unhex(t, hexUDPNoCsum))
	u, _ := ParseUDP(ip.Payload())
	u.UpdateChecksumAddr(ip.Src(), natAddr)
	u.SetSrcPort(40000)
	u.Rewrite16(9, 0x1234)
	if u.Checksum() != 0 {
		t.Errorf("checksum = %#04x, want 0 kept", u.Checksum())
	}
}

func TestUDPRewriteIncremental(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	for i := 0; i < 5000; i++ {
		b := make([]byte, 8+r.Intn(100))
		r.Read(b)
		b[4], b[5] = byte(len(b)>>8), byte(len(b))
		u, err := ParseUDP(b)
		if err != nil {
			t.Fatal(err)
		}
		src, dst := randAddr(r), randAddr(r)
		u.UpdateChecksum(src, dst)
		switch i % 3 {
		case 0:
			ns := randAddr(r)
			u.UpdateChecksumAddr(src, ns)
			src = ns
		case 1:
			u.SetSrcPort(uint16(r.Uint32()))
			u.SetDstPort(uint16(r.Uint32()))
		case 2:
			if len(u) < 10 {
				continue
			}
			u.Rewrite16(8+r.Intn(len(u)-9), uint16(r.Uint32()))
		}
		if u.Checksum() == 0 {
			t.Fatalf("checksum became 0 (none)")
		}
		if got, want := u.Checksum(), u.ComputeChecksum(src, dst); !sameChecksum(got, want) {
			t.Fatalf("incremental %#04x, full %#04x", got, want)
		}
	}
}

func TestUDPComputedZeroIsFFFF(t *testing.T) {
	// Find a datagram whose checksum computes to zero, by filling the last
	// word with the complement of the rest.
	u := UDP(unhex(t, "0035 0035 000c 0000 0000 0000"))
	c := u.ComputeChecksum(lanAddr, wanAddr)
	u[10], u[11] = byte(c>>8), byte(c) // the data word now cancels the sum
	if got := u.ComputeChecksum(lanAddr, wanAddr); got != 0xffff {
		t.Fatalf("ComputeChecksum = %#04x, want 0xffff", got)
	}
	u.UpdateChecksum(lanAddr, wanAddr)
	if !u.ChecksumValid(lanAddr, wanAddr) {
		t.Errorf("0xffff checksum not accepted as valid")
	}
}

func TestUDPAllocs(t *testing.T) {
	ip, _ := ParseIPv4(unhex(t, hexUDP500))
	b := ip.Payload()
	assertNoAllocs(t, "ParseUDP", func() { _, _ = ParseUDP(b) })
	u, _ := ParseUDP(b)
	assertNoAllocs(t, "rewrites", func() {
		u.SetSrcPort(4500)
		u.UpdateChecksumAddr(lanAddr, natAddr)
		u.Rewrite16(9, 1)
		u.UpdateChecksum(natAddr, wanAddr)
	})
}

func FuzzUDP(f *testing.F) {
	for _, s := range []string{hexUDP500, hexUDPNoCsum} {
		ip, _ := ParseIPv4(unhex(f, s))
		f.Add([]byte(ip.Payload()), uint16(4500))
	}
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		u, err := ParseUDP(b)
		if err != nil {
			return
		}
		if u.Length() != len(u) || len(u) < UDPHeaderLen {
			t.Fatalf("length %d, len %d", u.Length(), len(u))
		}
		wasZero := u.Checksum() == 0
		u.SetSrcPort(port)
		u.SetDstPort(port)
		if u.SrcPort() != port || u.DstPort() != port {
			t.Fatalf("setters and getters disagree")
		}
		if wasZero != (u.Checksum() == 0) {
			t.Fatalf("checksum zero-ness changed")
		}
		u.UpdateChecksum(lanAddr, wanAddr)
		u.UpdateChecksumAddr(lanAddr, natAddr)
		if !u.ChecksumValid(natAddr, wanAddr) {
			t.Fatalf("checksum invalid after rewrite")
		}
	})
}
