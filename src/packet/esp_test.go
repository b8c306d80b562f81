package packet

import "testing"

const (
	// ESP (RFC 4303 section 2): SPI 0xc0ffee01, seq 1, then 8 bytes of
	// IV/ciphertext, pad length 0 and next header 4 (IPv4) in the clear as
	// they would be with NULL encryption, then a 4-byte ICV stand-in.
	hexESP = "c0ffee01 | 00000001 | 0011223344556677 | 00 04 | aabbccdd"
	// The shortest accepted ESP: header, Pad Length, Next Header 59.
	hexESPMin = "00000100 | ffffffff | 00 3b"
)

func TestParseESP(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		err      error
		spi, seq uint32
		payload  int
	}{
		{name: "esp", in: hexESP, spi: 0xc0ffee01, seq: 1, payload: 14},
		{name: "minimum", in: hexESPMin, spi: 0x100, seq: 0xffffffff, payload: 2},
		{name: "empty", in: "", err: ErrShort},
		{name: "header only", in: "c0ffee01 00000001", err: ErrShort},
		{name: "9 bytes", in: "c0ffee01 00000001 00", err: ErrShort},
		{name: "SPI zero", in: "00000000 00000001 0004", err: ErrZeroSPI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseESP(unhex(t, tt.in))
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if e.SPI() != tt.spi || e.Seq() != tt.seq || len(e.Payload()) != tt.payload {
				t.Errorf("spi %#x seq %d payload %d", e.SPI(), e.Seq(), len(e.Payload()))
			}
		})
	}
}

func TestESPAllocs(t *testing.T) {
	b := unhex(t, hexESP)
	assertNoAllocs(t, "ParseESP", func() {
		e, _ := ParseESP(b)
		_, _ = e.SPI(), e.Seq()
	})
	assertNoAllocs(t, "ParseESP error", func() { _, _ = ParseESP(b[:4]) })
}

func FuzzESP(f *testing.F) {
	for _, s := range []string{hexESP, hexESPMin} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseESP(b)
		if err != nil {
			return
		}
		if e.SPI() == 0 || len(e) < ESPMinLen || len(e.Payload()) != len(e)-ESPHeaderLen {
			t.Fatalf("accepted spi %#x len %d", e.SPI(), len(e))
		}
		_ = e.Seq()
	})
}

func BenchmarkParseESP(b *testing.B) {
	buf := unhex(b, hexESP)
	b.ReportAllocs()
	for range b.N {
		e, err := ParseESP(buf)
		if err != nil || e.SPI() == 0 {
			b.Fatal(err)
		}
	}
}
