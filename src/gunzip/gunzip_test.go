package gunzip

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"io"
	"math/rand"
	"os"
	"strings"
	"testing"
)

// reference decodes with compress/gzip (one member), at most limit bytes.
func reference(in []byte, limit int) ([]byte, error) {
	z, err := gzip.NewReader(bytes.NewReader(in))
	if err != nil {
		return nil, err
	}
	z.Multistream(false)
	return io.ReadAll(io.LimitReader(z, int64(limit)))
}

func compress(t testing.TB, data []byte, level int, hdr gzip.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Header = hdr
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// samples: text like a kernel config, random bytes (stored blocks), long
// runs (overlapping back-references), and nothing.
func samples() map[string][]byte {
	r := rand.New(rand.NewSource(1))
	var cfg strings.Builder
	for i := 0; i < 4000; i++ {
		switch i % 3 {
		case 0:
			cfg.WriteString("CONFIG_NF_CONNTRACK_PPTP=m\n")
		case 1:
			cfg.WriteString("# CONFIG_SOMETHING_" + string(rune('A'+r.Intn(26))) + " is not set\n")
		default:
			cfg.WriteString("CONFIG_NFT_QUEUE=y\n")
		}
	}
	random := make([]byte, 100000)
	r.Read(random)
	return map[string][]byte{
		"config": []byte(cfg.String()),
		"random": random,
		"runs":   bytes.Repeat([]byte("a"), 70000),
		"empty":  nil,
		"byte":   {'x'},
	}
}

// TestMatchesCompressGzip: every compression level (stored, Huffman-only,
// fixed and dynamic blocks) decodes to what compress/gzip decodes.
func TestMatchesCompressGzip(t *testing.T) {
	levels := []int{gzip.NoCompression, gzip.HuffmanOnly, gzip.BestSpeed, gzip.DefaultCompression, gzip.BestCompression}
	for name, data := range samples() {
		for _, level := range levels {
			in := compress(t, data, level, gzip.Header{})
			got, err := Gunzip(in, 8<<20)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s level %d: %d bytes, %v; want %d bytes", name, level, len(got), err, len(data))
			}
		}
	}
}

// TestFixedBlock: compress/flate writes fixed-code blocks for short input;
// check one is really there (BTYPE 01 in the first byte) and decodes.
func TestFixedBlock(t *testing.T) {
	in := compress(t, []byte("CONFIG_PPTP=y\n"), gzip.BestCompression, gzip.Header{})
	if btype := in[10] >> 1 & 3; btype != 1 {
		t.Fatalf("first block type %d, want 1 (fixed): the test no longer covers fixed codes", btype)
	}
	if got, err := Gunzip(in, 100); err != nil || string(got) != "CONFIG_PPTP=y\n" {
		t.Errorf("got %q, %v", got, err)
	}
	// With back-references (fixed distance codes).
	rep := strings.Repeat("CONFIG_A=y\n", 5)
	in = compress(t, []byte(rep), gzip.DefaultCompression, gzip.Header{})
	if btype := in[10] >> 1 & 3; btype != 1 {
		t.Fatalf("first block type %d, want 1 (fixed)", btype)
	}
	if got, err := Gunzip(in, 100); err != nil || string(got) != rep {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestHeaderFields(t *testing.T) {
	data := []byte("CONFIG_X=y\n")
	in := compress(t, data, gzip.BestSpeed, gzip.Header{Name: "config", Comment: "kernel", Extra: []byte{1, 2, 3}})
	if got, err := Gunzip(in, 100); err != nil || !bytes.Equal(got, data) {
		t.Errorf("name, comment, extra: %q, %v", got, err)
	}
	// A header CRC (FHCRC), which compress/gzip checks but cannot write.
	plain := compress(t, data, gzip.BestSpeed, gzip.Header{})
	h := append([]byte{}, plain[:10]...)
	h[3] |= 1 << 1
	crc := crc32IEEE(h)
	withCRC := append(append(h, byte(crc), byte(crc>>8)), plain[10:]...)
	if got, err := Gunzip(withCRC, 100); err != nil || !bytes.Equal(got, data) {
		t.Errorf("FHCRC: %q, %v", got, err)
	}
	withCRC[10] ^= 1
	if _, err := Gunzip(withCRC, 100); !errors.Is(err, ErrHeader) {
		t.Errorf("bad FHCRC: %v, want ErrHeader", err)
	}
	for _, bad := range [][]byte{nil, []byte("plain text, not gzip"), {0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := Gunzip(bad, 100); !errors.Is(err, ErrHeader) {
			t.Errorf("%q: %v, want ErrHeader", bad, err)
		}
	}
}

// TestDamage: a truncated or altered file is an error, and what came
// before the damage is still returned (as a streaming reader delivers it).
func TestDamage(t *testing.T) {
	data := samples()["config"]
	in := compress(t, data, gzip.DefaultCompression, gzip.Header{})
	for _, n := range []int{len(in) - 1, len(in) - 8, len(in) / 2, 11} {
		got, err := Gunzip(in[:n], 8<<20)
		if err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(in))
		}
		if !bytes.HasPrefix(data, got) {
			t.Errorf("truncated to %d: output is not a prefix of the data", n)
		}
	}
	bad := append([]byte{}, in...)
	bad[len(bad)-6] ^= 0xff // CRC
	if got, err := Gunzip(bad, 8<<20); !errors.Is(err, ErrTrailer) || !bytes.Equal(got, data) {
		t.Errorf("bad CRC: %d bytes, %v; want all data and ErrTrailer", len(got), err)
	}
}

func TestLimit(t *testing.T) {
	data := samples()["runs"]
	in := compress(t, data, gzip.BestCompression, gzip.Header{})
	for _, limit := range []int{0, 1, 1000, len(data), len(data) + 1} {
		got, err := Gunzip(in, limit)
		want := data[:min(limit, len(data))]
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("limit %d: %d bytes, %v; want %d", limit, len(got), err, len(want))
		}
	}
}

// TestHostConfig decodes this machine's /proc/config.gz, when it has one,
// like compress/gzip does.
func TestHostConfig(t *testing.T) {
	in, err := os.ReadFile("/proc/config.gz")
	if err != nil {
		t.Skip("no /proc/config.gz here:", err)
	}
	want, werr := reference(in, 8<<20)
	got, err := Gunzip(in, 8<<20)
	if werr != nil || err != nil || !bytes.Equal(got, want) {
		t.Errorf("got %d bytes, %v; compress/gzip %d bytes, %v", len(got), err, len(want), werr)
	}
}

func crc32IEEE(b []byte) uint32 {
	// A bitwise CRC-32, independent of the hash/crc32 the package uses.
	crc := ^uint32(0)
	for _, c := range b {
		crc ^= uint32(c)
		for i := 0; i < 8; i++ {
			crc = crc>>1 ^ 0xedb88320&-(crc&1)
		}
	}
	return ^crc
}

// sameUpTo says whether one of a, b is a prefix of the other.
func sameUpTo(a, b []byte) bool {
	n := min(len(a), len(b))
	return bytes.Equal(a[:n], b[:n])
}

// FuzzGunzip: on any input Gunzip agrees with compress/gzip: both accept
// with the same output, or both fail (after consistent output).
func FuzzGunzip(f *testing.F) {
	for _, data := range samples() {
		if len(data) < 5000 {
			f.Add(compress(f, data, gzip.BestCompression, gzip.Header{Name: "n"}))
		}
	}
	f.Add(compress(f, []byte(strings.Repeat("CONFIG_A=y\n", 50)), gzip.DefaultCompression, gzip.Header{}))
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 1 << 20
		want, werr := reference(in, limit)
		got, err := Gunzip(in, limit)
		if len(want) == limit || len(got) == limit {
			if !bytes.Equal(got, want) {
				t.Fatalf("at the limit: got %d bytes, compress/gzip %d", len(got), len(want))
			}
			return
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("Gunzip: %v; compress/gzip: %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("output differs: %d bytes, compress/gzip %d", len(got), len(want))
		}
		if !sameUpTo(got, want) {
			t.Fatal("outputs disagree before the error")
		}
	})
}

// FuzzInflate: raw deflate streams against compress/flate, to reach the
// block decoder without a valid gzip header in the way.
func FuzzInflate(f *testing.F) {
	for _, data := range samples() {
		if len(data) < 5000 {
			for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.BestCompression, flate.HuffmanOnly} {
				var b bytes.Buffer
				w, _ := flate.NewWriter(&b, level)
				w.Write(data)
				w.Close()
				f.Add(b.Bytes())
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 1 << 20
		want, werr := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(in)), limit))
		s := &state{in: in, limit: limit}
		err := s.inflate()
		got := s.out[:min(len(s.out), limit)]
		if len(want) == limit || len(got) == limit {
			if !bytes.Equal(got, want) {
				t.Fatalf("at the limit: got %d bytes, compress/flate %d", len(got), len(want))
			}
			return
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("inflate: %v; compress/flate: %v", err, werr)
		}
		if !sameUpTo(got, want) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("output differs: %d bytes, compress/flate %d", len(got), len(want))
		}
	})
}
