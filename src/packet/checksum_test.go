package packet

import (
	"encoding/binary"
	"math/rand"
	"net/netip"
	"testing"
)

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 section 3 worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum
	// to 0xddf2 (checksum 0x220d).
	b := unhex(t, "0001 f203 f4f5 f6f7")
	if got := Sum(b, 0); got != 0xddf2 {
		t.Errorf("Sum = %#04x, want 0xddf2", got)
	}
	if got := Checksum(b, 0); got != 0x220d {
		t.Errorf("Checksum = %#04x, want 0x220d", got)
	}
}

func TestSumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		r.Read(b)
		if got, want := Checksum(b, 0), refChecksum(b); got != want {
			t.Fatalf("len %d: Checksum = %#04x, want %#04x", n, got, want)
		}
	}
	// Chained sums over even-length pieces equal one sum over the whole.
	b := make([]byte, 1500)
	r.Read(b)
	if got, want := Checksum(b[100:], Sum(b[:100], 0)), Checksum(b, 0); got != want {
		t.Errorf("chained = %#04x, whole = %#04x", got, want)
	}
	// All-0xff data: the largest words, to exercise the folds.
	ff := make([]byte, 65535)
	for i := range ff {
		ff[i] = 0xff
	}
	if got, want := Checksum(ff, 0xffff), refChecksum(ff, []byte{0xff, 0xff}); got != want {
		t.Errorf("all-ones: %#04x, want %#04x", got, want)
	}
}

// TestIncrementalMatchesFull changes a random field of random data and
// checks every RFC 1624 helper against a full recomputation.
func TestIncrementalMatchesFull(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for i := 0; i < 20000; i++ {
		n := 4 + r.Intn(200)
		b := make([]byte, n)
		r.Read(b)
		if i%50 == 0 { // all-zero and all-ones data hit the -0/+0 corner
			for j := range b {
				b[j] = byte(0xff * (i / 50 % 2))
			}
		}
		c := Checksum(b, 0)
		switch i % 4 {
		case 0: // 16-bit at an even offset
			off := r.Intn(n/2-1) * 2
			old := binary.BigEndian.Uint16(b[off:])
			nv := uint16(r.Uint32())
			binary.BigEndian.PutUint16(b[off:], nv)
			c = UpdateChecksum16(c, old, nv)
		case 1: // 16-bit at any offset
			off := r.Intn(n - 1)
			old := binary.BigEndian.Uint16(b[off:])
			nv := uint16(r.Uint32())
			binary.BigEndian.PutUint16(b[off:], nv)
			c = UpdateChecksumAt(c, off, old, nv)
		case 2: // 32-bit at an even offset
			off := r.Intn(n/2-1) &^ 1
			if off+4 > n {
				off = 0
			}
			old := binary.BigEndian.Uint32(b[off:])
			nv := r.Uint32()
			binary.BigEndian.PutUint32(b[off:], nv)
			c = UpdateChecksum32(c, old, nv)
		case 3: // one byte
			off := r.Intn(n)
			old := b[off]
			nv := byte(r.Uint32())
			b[off] = nv
			c = UpdateChecksumByte(c, off, old, nv)
		}
		if want := Checksum(b, 0); !sameChecksum(c, want) {
			t.Fatalf("case %d len %d: incremental %#04x, full %#04x", i%4, n, c, want)
		}
	}
}

// sameChecksum treats 0x0000 and 0xffff as equal: they are the two
// ones'-complement zeros, and RFC 1624 section 3 shows an incremental update
// may legitimately land on either when the data sums to zero.
func sameChecksum(a, b uint16) bool {
	return a == b || (a == 0 || a == 0xffff) && (b == 0 || b == 0xffff)
}

func TestUpdateChecksumAddr(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for i := 0; i < 2000; i++ {
		src, dst, nsrc := randAddr(r), randAddr(r), randAddr(r)
		body := make([]byte, 1+r.Intn(100))
		r.Read(body)
		c := refChecksum(pseudo(src, dst, ProtoTCP, len(body)), body)
		c = UpdateChecksumAddr(c, src, nsrc)
		if want := refChecksum(pseudo(nsrc, dst, ProtoTCP, len(body)), body); !sameChecksum(c, want) {
			t.Fatalf("addr update %#04x, full %#04x", c, want)
		}
	}
	// IPv6 addresses: 16 bytes each go through the same helper.
	o, n := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:ffff::2")
	ob, nb := o.As16(), n.As16()
	data := append(append([]byte{}, ob[:]...), 0x12, 0x34)
	c := UpdateChecksumAddr(Checksum(data, 0), o, n)
	copy(data, nb[:])
	if want := Checksum(data, 0); c != want {
		t.Errorf("IPv6 addr update %#04x, full %#04x", c, want)
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	for _, n := range []int{0, 1, 20, 1480, 65515} {
		body := make([]byte, n)
		got := Checksum(body, PseudoHeaderSum(lanAddr, wanAddr, ProtoUDP, n))
		if want := refChecksum(pseudo(lanAddr, wanAddr, ProtoUDP, n), body); got != want {
			t.Errorf("len %d: %#04x, want %#04x", n, got, want)
		}
	}
}

func TestChecksumAllocs(t *testing.T) {
	b := make([]byte, 1500)
	assertNoAllocs(t, "Checksum", func() { _ = Checksum(b, 0) })
	assertNoAllocs(t, "UpdateChecksumAddr", func() { _ = UpdateChecksumAddr(1, lanAddr, natAddr) })
	assertNoAllocs(t, "UpdateChecksumAt", func() { _ = UpdateChecksumAt(1, 3, 2, 1) })
}

func BenchmarkChecksum1500(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for range b.N {
		_ = Checksum(buf, 0)
	}
}

func BenchmarkUpdateChecksumAddr(b *testing.B) {
	b.ReportAllocs()
	c := uint16(0x1234)
	for range b.N {
		c = UpdateChecksumAddr(c, lanAddr, natAddr)
	}
	_ = c
}
