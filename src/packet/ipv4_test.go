package packet

import (
	"math/rand"
	"net/netip"
	"testing"
)

// Fixtures. Checksums were computed independently (Python, RFC 1071) and
// match the naive reference in helpers_test.go.
const (
	// The textbook IPv4 header (Wikipedia "Internet checksum" example):
	// 192.168.0.1 -> 192.168.0.199, UDP, total length 0x73, checksum 0xb861.
	// Its 95 payload bytes are left out, so it only serves header tests.
	hexIPv4Textbook = "4500 0073 | 0000 4000 | 4011 b861 | c0a8 0001 | c0a8 00c7"

	// TCP SYN 192.168.1.100:50000 -> 203.0.113.5:1723 (PPTP), DF, TTL 64,
	// seq 0x11223344, window 64240, no options.
	hexSYN = "4500 0028 | 1c46 4000 | 4006 2078 | c0a8 0164 | cb00 7105 |" +
		"c350 06bb | 11223344 | 00000000 | 5002 faf0 | a86d 0000"

	// First fragment: MF set, offset 0, proto UDP, 8 bytes of payload.
	hexFragFirst = "4500 001c | 0001 2000 | 4011 0000 | c0a8 0164 | cb00 7105 | 01f4 01f4 0024 0000"
	// Non-first fragment: offset 185 (1480 bytes), MF clear.
	hexFragLast = "4500 001c | 0001 00b9 | 4011 0000 | c0a8 0164 | cb00 7105 | 0102 0304 0506 0708"
	// IHL 6: one 4-byte option (NOP NOP NOP EOL), then 4 bytes of payload.
	hexIPv4Opts = "4600 001c | 0000 0000 | 4006 0000 | 0a00 0001 | 0a00 0002 | 0101 0100 | deadbeef"
)

func TestParseIPv4(t *testing.T) {
	type want struct {
		hl, tl, fragOff int
		proto           uint8
		src, dst        string
		frag, mf, df    bool
		payload         int
	}
	tests := []struct {
		name    string
		in      string
		trailer int // zero bytes appended (link-layer padding)
		err     error
		want    want
	}{
		{name: "syn to 1723", in: hexSYN, want: want{hl: 20, tl: 40, proto: ProtoTCP,
			src: "192.168.1.100", dst: "203.0.113.5", df: true, payload: 20}},
		{name: "syn with ethernet padding", in: hexSYN, trailer: 6, want: want{hl: 20, tl: 40,
			proto: ProtoTCP, src: "192.168.1.100", dst: "203.0.113.5", df: true, payload: 20}},
		{name: "options", in: hexIPv4Opts, want: want{hl: 24, tl: 28, proto: ProtoTCP,
			src: "10.0.0.1", dst: "10.0.0.2", payload: 4}},
		{name: "first fragment", in: hexFragFirst, want: want{hl: 20, tl: 28, proto: ProtoUDP,
			src: "192.168.1.100", dst: "203.0.113.5", frag: true, mf: true, payload: 8}},
		{name: "last fragment", in: hexFragLast, want: want{hl: 20, tl: 28, proto: ProtoUDP,
			src: "192.168.1.100", dst: "203.0.113.5", frag: true, fragOff: 1480, payload: 8}},

		{name: "empty", in: "", err: ErrShort},
		{name: "19 bytes", in: "4500 0013 0000 0000 4006 0000 0a00 0001 0a00 00", err: ErrShort},
		{name: "version 6", in: "6500 0014 0000 0000 4006 0000 0a00 0001 0a00 0002", err: ErrVersion},
		{name: "version 0", in: "0500 0014 0000 0000 4006 0000 0a00 0001 0a00 0002", err: ErrVersion},
		{name: "IHL 4", in: "4400 0014 0000 0000 4006 0000 0a00 0001 0a00 0002", err: ErrHeaderLen},
		{name: "IHL 15 beyond buffer", in: "4f00 003c 0000 0000 4006 0000 0a00 0001 0a00 0002", err: ErrHeaderLen},
		{name: "total length below header", in: "4500 0010 0000 0000 4006 0000 0a00 0001 0a00 0002", err: ErrLength},
		{name: "total length lies past buffer", in: "4500 05dc 0000 0000 4006 0000 0a00 0001 0a00 0002", err: ErrShort},
		{name: "truncated textbook", in: hexIPv4Textbook, err: ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append(unhex(t, tt.in), make([]byte, tt.trailer)...)
			ip, err := ParseIPv4(b)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			w := tt.want
			got := want{hl: ip.HeaderLen(), tl: ip.TotalLen(), fragOff: ip.FragOffset(),
				proto: ip.Protocol(), src: ip.Src().String(), dst: ip.Dst().String(),
				frag: ip.IsFragment(), mf: ip.MoreFragments(), df: ip.DontFragment(),
				payload: len(ip.Payload())}
			if got != w {
				t.Errorf("got %+v\nwant %+v", got, w)
			}
			if len(ip) != w.tl {
				t.Errorf("len(ip) = %d, want total length %d", len(ip), w.tl)
			}
		})
	}
}

func TestIPv4Checksum(t *testing.T) {
	// The textbook header alone: pretend the packet has no payload, which
	// does not change the header checksum.
	hdr := unhex(t, hexIPv4Textbook)
	ip := IPv4(hdr)
	if !ip.ChecksumValid() {
		t.Errorf("textbook header: checksum not valid")
	}
	if got := ip.ComputeChecksum(); got != 0xb861 {
		t.Errorf("ComputeChecksum = %#04x, want 0xb861", got)
	}
	syn, err := ParseIPv4(unhex(t, hexSYN))
	if err != nil {
		t.Fatal(err)
	}
	if got := syn.ComputeChecksum(); got != 0x2078 {
		t.Errorf("SYN ComputeChecksum = %#04x, want 0x2078", got)
	}
	opt, _ := ParseIPv4(unhex(t, hexIPv4Opts))
	opt.UpdateChecksum()
	if got, want := opt.Checksum(), refChecksum(opt[:10], opt[12:24]); got != want || !opt.ChecksumValid() {
		t.Errorf("options header checksum %#04x, want %#04x", got, want)
	}
}

// TestIPv4SetAddrIncremental rewrites addresses of random headers and
// compares the incremental checksum with a full recomputation.
func TestIPv4SetAddrIncremental(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for i := 0; i < 5000; i++ {
		hl := 20 + 4*r.Intn(11)
		b := make([]byte, hl+r.Intn(64))
		r.Read(b)
		b[0] = 0x40 | byte(hl/4)
		b[2], b[3] = byte(len(b)>>8), byte(len(b))
		ip, err := ParseIPv4(b)
		if err != nil {
			t.Fatal(err)
		}
		ip.UpdateChecksum()
		a := randAddr(r)
		if i%2 == 0 {
			ip.SetSrc(a)
			if ip.Src() != a {
				t.Fatalf("Src = %v, want %v", ip.Src(), a)
			}
		} else {
			ip.SetDst(a)
			if ip.Dst() != a {
				t.Fatalf("Dst = %v, want %v", ip.Dst(), a)
			}
		}
		if got, want := ip.Checksum(), ip.ComputeChecksum(); !sameChecksum(got, want) {
			t.Fatalf("incremental %#04x, full %#04x", got, want)
		}
	}
	// A 4-in-6 address is accepted as IPv4.
	ip, _ := ParseIPv4(unhex(t, hexSYN))
	ip.SetDst(netip.MustParseAddr("::ffff:198.51.100.7"))
	if ip.Dst() != natAddr || !ip.ChecksumValid() {
		t.Errorf("4-in-6 SetDst: dst %v valid %v", ip.Dst(), ip.ChecksumValid())
	}
}

func TestIPv4Allocs(t *testing.T) {
	b := unhex(t, hexSYN)
	assertNoAllocs(t, "ParseIPv4", func() { _, _ = ParseIPv4(b) })
	assertNoAllocs(t, "ParseIPv4 error", func() { _, _ = ParseIPv4(b[:10]) })
	ip, _ := ParseIPv4(b)
	assertNoAllocs(t, "getters", func() {
		_, _, _, _ = ip.Src(), ip.Dst(), ip.Protocol(), ip.Payload()
		_, _ = ip.IsFragment(), ip.FragOffset()
	})
	assertNoAllocs(t, "SetSrc/SetDst", func() { ip.SetSrc(natAddr); ip.SetDst(wanAddr) })
	assertNoAllocs(t, "UpdateChecksum", func() { ip.UpdateChecksum() })
}

func FuzzIPv4(f *testing.F) {
	for _, s := range []string{hexSYN, hexFragFirst, hexFragLast, hexIPv4Opts, hexIPv4Textbook} {
		f.Add(unhex(f, s), uint32(0xc6336407))
	}
	f.Fuzz(func(t *testing.T, b []byte, addr uint32) {
		ip, err := ParseIPv4(b)
		if err != nil {
			return
		}
		if ip.HeaderLen() < IPv4MinHeaderLen || ip.HeaderLen() > len(ip) || ip.TotalLen() != len(ip) {
			t.Fatalf("inconsistent: hl %d tl %d len %d", ip.HeaderLen(), ip.TotalLen(), len(ip))
		}
		_, _, _, _ = ip.Protocol(), ip.Payload(), ip.FragOffset(), ip.IsFragment()
		_ = ip.PseudoHeaderSum()
		wasValid := ip.ChecksumValid()
		a := netip.AddrFrom4([4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)})
		ip.SetSrc(a)
		ip.SetDst(a)
		if ip.Src() != a || ip.Dst() != a {
			t.Fatalf("set %v, got src %v dst %v", a, ip.Src(), ip.Dst())
		}
		if wasValid && !ip.ChecksumValid() {
			t.Fatalf("incremental update broke a valid checksum")
		}
		ip.UpdateChecksum()
		if !ip.ChecksumValid() {
			t.Fatalf("UpdateChecksum did not give a valid checksum")
		}
	})
}

func BenchmarkParseIPv4(b *testing.B) {
	buf := unhex(b, hexSYN)
	b.ReportAllocs()
	for range b.N {
		ip, err := ParseIPv4(buf)
		if err != nil || ip.Protocol() != ProtoTCP {
			b.Fatal(err)
		}
	}
}

func BenchmarkIPv4SetDst(b *testing.B) {
	ip, _ := ParseIPv4(unhex(b, hexSYN))
	b.ReportAllocs()
	for i := range b.N {
		if i&1 == 0 {
			ip.SetDst(natAddr)
		} else {
			ip.SetDst(wanAddr)
		}
	}
}
