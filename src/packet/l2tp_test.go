package packet

import "testing"

// L2TPv2 fixtures, RFC 2661 section 3.1 layout.
const (
	// Control SCCRQ: T|L|S, ver 2, length 20, tunnel 0, session 0, Ns 0,
	// Nr 0, one AVP: M, length 8, vendor 0, type 0 (Message Type) = 1.
	hexL2TPSCCRQ = "c802 | 0014 | 0000 | 0000 | 0000 | 0000 | 8008 0000 0000 0001"
	// Control ZLB acknowledgment: tunnel 0x1234, Ns 1, Nr 2, no AVPs.
	hexL2TPZLB = "c802 | 000c | 1234 | 0000 | 0001 | 0002"
	// Data, no optional fields: tunnel 0x1234, session 0x5678, PPP LCP.
	hexL2TPData = "0002 | 1234 | 5678 | ff03 c021"
	// Data with L: length 12.
	hexL2TPDataL = "4002 | 000c | 1234 | 5678 | ff03 c021"
	// Data with O: Offset Size 2, two bytes of offset pad.
	hexL2TPDataO = "0202 | 1234 | 5678 | 0002 | aaaa | ff03 c021"
	// Data with S and P: Ns 3, Nr 4.
	hexL2TPDataSP = "0902 | 1234 | 5678 | 0003 | 0004 | ff03"
)

func TestParseL2TP(t *testing.T) {
	type want struct {
		ctl, hasL, hasS, hasO, prio bool
		length                      int
		tunnel, session, ns, nr     uint16
		hl, payload                 int
	}
	tests := []struct {
		name  string
		in    string
		extra int
		err   error
		want  want
	}{
		{name: "control SCCRQ", in: hexL2TPSCCRQ, want: want{ctl: true, hasL: true, hasS: true,
			length: 20, hl: 12, payload: 8}},
		{name: "control SCCRQ with trailing bytes", in: hexL2TPSCCRQ, extra: 3, want: want{ctl: true,
			hasL: true, hasS: true, length: 20, hl: 12, payload: 8}},
		{name: "ZLB", in: hexL2TPZLB, want: want{ctl: true, hasL: true, hasS: true, length: 12,
			tunnel: 0x1234, ns: 1, nr: 2, hl: 12}},
		{name: "data", in: hexL2TPData, want: want{tunnel: 0x1234, session: 0x5678, hl: 6, payload: 4}},
		{name: "data with L", in: hexL2TPDataL, want: want{hasL: true, length: 12, tunnel: 0x1234,
			session: 0x5678, hl: 8, payload: 4}},
		{name: "data with O", in: hexL2TPDataO, want: want{hasO: true, tunnel: 0x1234, session: 0x5678,
			hl: 10, payload: 4}},
		{name: "data with S and P", in: hexL2TPDataSP, want: want{hasS: true, prio: true, tunnel: 0x1234,
			session: 0x5678, ns: 3, nr: 4, hl: 10, payload: 2}},

		{name: "1 byte", in: "c8", err: ErrShort},
		{name: "version 3", in: "c803 0014 0000 0000 0000 0000", err: ErrVersion},
		{name: "version 1 (L2F)", in: "0001 1234 5678", err: ErrVersion},
		{name: "control without L", in: "8802 1234 0000 0001 0002", err: ErrFlags},
		{name: "control without S", in: "c002 0008 1234 0000", err: ErrFlags},
		{name: "control with O", in: "ca02 000e 1234 0000 0001 0002 0000", err: ErrFlags},
		{name: "data truncated", in: "0002 1234 56", err: ErrShort},
		{name: "seq truncated", in: "0802 1234 5678 0003", err: ErrShort},
		{name: "offset size truncated", in: "0202 1234 5678 00", err: ErrShort},
		{name: "offset pad lies", in: "0202 1234 5678 00ff aaaa", err: ErrShort},
		{name: "length lies", in: "c802 00ff 1234 0000 0001 0002", err: ErrShort},
		{name: "length below header", in: "c802 0008 1234 0000 0001 0002", err: ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseL2TP(append(unhex(t, tt.in), make([]byte, tt.extra)...))
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			n, _ := l.Length()
			got := want{ctl: l.IsControl(), hasL: l.HasLength(), hasS: l.HasSeq(), hasO: l.HasOffset(),
				prio: l.Priority(), length: n, tunnel: l.TunnelID(), session: l.SessionID(),
				ns: l.Ns(), nr: l.Nr(), hl: l.HeaderLen(), payload: len(l.Payload())}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if l.Version() != L2TPVersion2 {
				t.Errorf("version %d", l.Version())
			}
		})
	}
}

func TestL2TPAllocs(t *testing.T) {
	b := unhex(t, hexL2TPZLB)
	assertNoAllocs(t, "ParseL2TP", func() {
		l, _ := ParseL2TP(b)
		_, _, _ = l.TunnelID(), l.SessionID(), l.Payload()
	})
	assertNoAllocs(t, "ParseL2TP error", func() { _, _ = ParseL2TP(b[:3]) })
}

func FuzzL2TP(f *testing.F) {
	for _, s := range []string{hexL2TPSCCRQ, hexL2TPZLB, hexL2TPData, hexL2TPDataL, hexL2TPDataO, hexL2TPDataSP} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseL2TP(b)
		if err != nil {
			return
		}
		if l.HeaderLen() > len(l) {
			t.Fatalf("header %d beyond message %d", l.HeaderLen(), len(l))
		}
		if n, ok := l.Length(); ok && n != len(l) {
			t.Fatalf("length %d, len %d", n, len(l))
		}
		if l.IsControl() && (!l.HasLength() || !l.HasSeq() || l.HasOffset()) {
			t.Fatalf("accepted control flags %#04x", l.Flags())
		}
		_, _, _, _, _ = l.TunnelID(), l.SessionID(), l.Ns(), l.Nr(), l.Payload()
	})
}

func BenchmarkParseL2TP(b *testing.B) {
	buf := unhex(b, hexL2TPDataL)
	b.ReportAllocs()
	for range b.N {
		if _, err := ParseL2TP(buf); err != nil {
			b.Fatal(err)
		}
	}
}
