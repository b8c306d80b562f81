package packet

import (
	"encoding/hex"
	"math/rand"
	"net/netip"
	"strings"
	"testing"
)

// unhex decodes a fixture written as hex with any whitespace and with "|"
// separating labelled fields; "z<N>" inserts N zero bytes (long reserved or
// string fields of RFC 2637 messages).
func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	var out []byte
	for _, tok := range strings.Fields(strings.ReplaceAll(s, "|", " ")) {
		if tok[0] == 'z' {
			var n int
			for _, c := range tok[1:] {
				n = n*10 + int(c-'0')
			}
			out = append(out, make([]byte, n)...)
			continue
		}
		b, err := hex.DecodeString(tok)
		if err != nil {
			tb.Fatalf("bad fixture token %q: %v", tok, err)
		}
		out = append(out, b...)
	}
	return out
}

// refChecksum is a deliberately naive RFC 1071 checksum, byte pair by byte
// pair, to check the fast one against.
func refChecksum(chunks ...[]byte) uint16 {
	var all []byte
	for _, c := range chunks {
		all = append(all, c...)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		w := uint32(all[i]) << 8
		if i+1 < len(all) {
			w |= uint32(all[i+1])
		}
		s += w
		for s > 0xffff {
			s = s&0xffff + s>>16
		}
	}
	return ^uint16(s)
}

// pseudo builds the IPv4 pseudo-header bytes for the reference checksum.
func pseudo(src, dst netip.Addr, proto uint8, n int) []byte {
	s, d := src.As4(), dst.As4()
	return []byte{s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3], 0, proto, byte(n >> 8), byte(n)}
}

func randAddr(r *rand.Rand) netip.Addr {
	var a [4]byte
	r.Read(a[:])
	return netip.AddrFrom4(a)
}

// cloneB copies a fixture so a test can rewrite it.
func cloneB(b []byte) []byte { return append([]byte(nil), b...) }

// assertNoAllocs fails if f allocates.
func assertNoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(100, f); n != 0 {
		t.Errorf("%s: %v allocations per run, want 0", name, n)
	}
}

var (
	lanAddr = netip.MustParseAddr("192.168.1.100")
	wanAddr = netip.MustParseAddr("203.0.113.5")
	natAddr = netip.MustParseAddr("198.51.100.7")
)
