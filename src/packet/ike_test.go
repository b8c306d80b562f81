package packet

import "testing"

const (
	// IKEv2 header (RFC 7296 section 3.1), IKE_SA_INIT (34) request from the
	// initiator: SPIi 0011223344556677, SPIr 0, next payload SA (33),
	// version 2.0, flags I, message ID 0, length 28 (header only).
	hexIKEv2SAInit = "0011223344556677 | 0000000000000000 | 21 | 20 | 22 | 08 | 00000000 | 0000001c"
	// IKEv2 IKE_AUTH (35) response: SPIs set, next payload SK (46), flags R,
	// message ID 1, length 36: header plus one 8-byte generic payload.
	hexIKEv2AuthResp = "0011223344556677 | 8899aabbccddeeff | 2e | 20 | 23 | 20 | 00000001 | 00000024 |" +
		"00 00 0008 | deadbeef"
	// ISAKMP (RFC 2408 section 3.1) Main Mode (2) first message: initiator
	// cookie 0102030405060708, responder cookie 0, next payload SA (1),
	// version 1.0, no flags, message ID 0, length 28.
	hexIKEv1MainMode = "0102030405060708 | 0000000000000000 | 01 | 10 | 02 | 00 | 00000000 | 0000001c"
)

func TestParseIKE(t *testing.T) {
	type want struct {
		spii, spir      uint64
		next, ver, exch uint8
		major           uint8
		flags           uint8
		init, resp      bool
		msgID, length   uint32
		payload         int
	}
	tests := []struct {
		name  string
		in    string
		extra int
		err   error
		want  want
	}{
		{name: "v2 IKE_SA_INIT request", in: hexIKEv2SAInit, want: want{spii: 0x0011223344556677,
			next: 33, ver: 0x20, exch: IKEv2ExchangeSAInit, major: 2, flags: IKEFlagInitiator,
			init: true, length: 28}},
		{name: "v2 IKE_AUTH response", in: hexIKEv2AuthResp, want: want{spii: 0x0011223344556677,
			spir: 0x8899aabbccddeeff, next: 46, ver: 0x20, exch: IKEv2ExchangeAuth, major: 2,
			flags: IKEFlagResponse, resp: true, msgID: 1, length: 36, payload: 8}},
		{name: "v2 with trailing bytes", in: hexIKEv2SAInit, extra: 4, want: want{spii: 0x0011223344556677,
			next: 33, ver: 0x20, exch: IKEv2ExchangeSAInit, major: 2, flags: IKEFlagInitiator,
			init: true, length: 28}},
		{name: "v1 main mode", in: hexIKEv1MainMode, want: want{spii: 0x0102030405060708, next: 1,
			ver: 0x10, exch: IKEv1ExchangeIdentityProtection, major: 1, length: 28}},
		{name: "v1 flag 0x08 is not I", in: "0102030405060708 0000000000000000 01 10 02 28 00000000 0000001c",
			want: want{spii: 0x0102030405060708, next: 1, ver: 0x10, exch: 2, major: 1, flags: 0x28, length: 28}},

		{name: "27 bytes", in: "0011223344556677 0000000000000000 21 20 22 08 00000000 000000", err: ErrShort},
		{name: "version 3", in: "0011223344556677 0000000000000000 21 30 22 08 00000000 0000001c", err: ErrVersion},
		{name: "version 0", in: "0011223344556677 0000000000000000 21 00 22 08 00000000 0000001c", err: ErrVersion},
		{name: "length 27", in: "0011223344556677 0000000000000000 21 20 22 08 00000000 0000001b", err: ErrLength},
		{name: "length lies", in: "0011223344556677 0000000000000000 21 20 22 08 00000000 000003e8", err: ErrShort},
		{name: "length huge", in: "0011223344556677 0000000000000000 21 20 22 08 00000000 ffffffff", err: ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseIKE(append(unhex(t, tt.in), make([]byte, tt.extra)...))
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			got := want{spii: h.InitiatorSPI(), spir: h.ResponderSPI(), next: h.NextPayload(),
				ver: h.Version(), exch: h.ExchangeType(), major: h.MajorVersion(), flags: h.Flags(),
				init: h.IsInitiator(), resp: h.IsResponse(), msgID: h.MessageID(), length: h.Length(),
				payload: len(h.Payload())}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if len(h) != int(h.Length()) || h.MinorVersion() != 0 {
				t.Errorf("len %d, minor %d", len(h), h.MinorVersion())
			}
		})
	}
}

func TestParseNATT(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		kind  NATTKind
		inner int // length of the inner message, -1 for nil
	}{
		{"keepalive", "ff", NATTKeepalive, -1},
		{"ike after marker", "00000000 |" + hexIKEv2SAInit, NATTIKE, 28},
		{"marker only", "00000000", NATTIKE, 0},
		{"esp", hexESP, NATTESP, 22},
		{"empty", "", NATTInvalid, -1},
		{"single zero byte", "00", NATTInvalid, -1},
		{"two 0xff", "ffff", NATTInvalid, -1},
		{"three zero bytes", "000000", NATTInvalid, -1},
		{"esp too short", "c0ffee01 00000001 00", NATTInvalid, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, inner := ParseNATT(unhex(t, tt.in))
			if kind != tt.kind {
				t.Errorf("kind = %v, want %v", kind, tt.kind)
			}
			n := len(inner)
			if inner == nil {
				n = -1
			}
			if n != tt.inner {
				t.Errorf("inner length %d, want %d", n, tt.inner)
			}
		})
	}
	// The IKE and ESP parsers accept what ParseNATT hands them.
	if _, inner := ParseNATT(unhex(t, "00000000 |"+hexIKEv2SAInit)); inner != nil {
		if _, err := ParseIKE(inner); err != nil {
			t.Errorf("ParseIKE(inner): %v", err)
		}
	}
	if _, inner := ParseNATT(unhex(t, hexESP)); inner != nil {
		if _, err := ParseESP(inner); err != nil {
			t.Errorf("ParseESP(inner): %v", err)
		}
	}
	for k, want := range map[NATTKind]string{NATTInvalid: "invalid", NATTKeepalive: "keepalive",
		NATTIKE: "ike", NATTESP: "esp", 9: "invalid"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), want)
		}
	}
}

func TestIKEAllocs(t *testing.T) {
	b := unhex(t, hexIKEv2AuthResp)
	assertNoAllocs(t, "ParseIKE", func() {
		h, _ := ParseIKE(b)
		_, _, _ = h.InitiatorSPI(), h.ResponderSPI(), h.IsResponse()
	})
	assertNoAllocs(t, "ParseIKE error", func() { _, _ = ParseIKE(b[:20]) })
	n := append(unhex(t, "00000000"), b...)
	assertNoAllocs(t, "ParseNATT", func() {
		k, inner := ParseNATT(n)
		if k == NATTIKE {
			_, _ = ParseIKE(inner)
		}
	})
}

func FuzzIKE(f *testing.F) {
	for _, s := range []string{hexIKEv2SAInit, hexIKEv2AuthResp, hexIKEv1MainMode} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseIKE(b)
		if err != nil {
			return
		}
		if int(h.Length()) != len(h) || len(h) < IKEHeaderLen {
			t.Fatalf("length %d, len %d", h.Length(), len(h))
		}
		if m := h.MajorVersion(); m != 1 && m != 2 {
			t.Fatalf("accepted major version %d", m)
		}
		_, _, _, _ = h.InitiatorSPI(), h.ResponderSPI(), h.MessageID(), h.Payload()
		_, _ = h.IsInitiator(), h.IsResponse()
	})
}

func FuzzNATT(f *testing.F) {
	for _, s := range []string{"ff", "00000000 |" + hexIKEv2SAInit, hexESP, "000000"} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, inner := ParseNATT(b)
		switch kind {
		case NATTKeepalive:
			if len(b) != 1 || b[0] != 0xff || inner != nil {
				t.Fatalf("keepalive from % x", b)
			}
		case NATTIKE:
			if len(inner) != len(b)-4 {
				t.Fatalf("IKE inner %d of %d", len(inner), len(b))
			}
			_, _ = ParseIKE(inner)
		case NATTESP:
			if _, err := ParseESP(inner); err != nil {
				t.Fatalf("classified as ESP but ParseESP: %v", err)
			}
		case NATTInvalid:
			if inner != nil {
				t.Fatalf("invalid with inner")
			}
		default:
			t.Fatalf("kind %d", kind)
		}
	})
}

func BenchmarkParseNATTIKE(b *testing.B) {
	buf := append(unhex(b, "00000000"), unhex(b, hexIKEv2AuthResp)...)
	b.ReportAllocs()
	for range b.N {
		k, inner := ParseNATT(buf)
		if k != NATTIKE {
			b.Fatal(k)
		}
		if _, err := ParseIKE(inner); err != nil {
			b.Fatal(err)
		}
	}
}
