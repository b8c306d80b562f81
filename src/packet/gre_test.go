package packet

import "testing"

// GRE fixtures, laid out per RFC 2637 section 4.1 (version 1) and RFC 2784 /
// RFC 2890 (version 0).
const (
	// Version 1 data packet: K|S|A, proto PPP, payload length 4, Call ID
	// 0x8001, seq 2, ack 1, payload a PPP frame start (ff 03 00 21).
	hexGREv1SeqAck = "3081 880b | 0004 8001 | 00000002 | 00000001 | ff030021"
	// Version 1 data packet without ack: K|S, seq 7.
	hexGREv1Seq = "3001 880b | 0004 8001 | 00000007 | ff030021"
	// Version 1 acknowledgment only: K|A, payload length 0, ack 9.
	hexGREv1Ack = "2081 880b | 0000 4002 | 00000009"
	// Version 0 (RFC 2784), IPv4 payload, no options.
	hexGREv0 = "0000 0800 | 45000014"
	// Version 0 with C, K, S (RFC 2890): checksum+reserved1, key, seq.
	hexGREv0CKS = "b000 0800 | abcd 0000 | 01020304 | 00000005 | 45000014"
)

func TestParseGRE(t *testing.T) {
	type want struct {
		ver              uint8
		proto            uint16
		hl, payload      int
		c, k, s, a       bool
		key, seq, ack    uint32
		plen, callID     uint16
		firstPayloadByte byte
	}
	tests := []struct {
		name  string
		in    string
		extra int // trailing bytes after the packet
		err   error
		want  want
	}{
		{name: "v1 seq+ack", in: hexGREv1SeqAck, want: want{ver: 1, proto: GREProtoPPP, hl: 16, payload: 4,
			k: true, s: true, a: true, key: 0x00048001, seq: 2, ack: 1, plen: 4, callID: 0x8001, firstPayloadByte: 0xff}},
		{name: "v1 seq", in: hexGREv1Seq, want: want{ver: 1, proto: GREProtoPPP, hl: 12, payload: 4,
			k: true, s: true, key: 0x00048001, seq: 7, plen: 4, callID: 0x8001, firstPayloadByte: 0xff}},
		{name: "v1 seq with trailing bytes cut to payload length", in: hexGREv1Seq, extra: 5,
			want: want{ver: 1, proto: GREProtoPPP, hl: 12, payload: 4,
				k: true, s: true, key: 0x00048001, seq: 7, plen: 4, callID: 0x8001, firstPayloadByte: 0xff}},
		{name: "v1 ack only", in: hexGREv1Ack, want: want{ver: 1, proto: GREProtoPPP, hl: 12,
			k: true, a: true, key: 0x00004002, ack: 9, callID: 0x4002}},
		{name: "v0 plain", in: hexGREv0, want: want{proto: 0x0800, hl: 4, payload: 4, firstPayloadByte: 0x45}},
		{name: "v0 C K S", in: hexGREv0CKS, want: want{proto: 0x0800, hl: 16, payload: 4,
			c: true, k: true, s: true, key: 0x01020304, seq: 5, firstPayloadByte: 0x45}},
		{name: "v0 A bit is not an ack", in: "0080 0800 | 45000014", want: want{proto: 0x0800, hl: 4, payload: 4, firstPayloadByte: 0x45}},

		{name: "3 bytes", in: "3081 88", err: ErrShort},
		{name: "v1 without K", in: "1001 880b | 0004 8001 | 00000007 | ff030021", err: ErrFlags},
		{name: "v1 with C", in: "a001 880b | 0000 8001", err: ErrFlags},
		{name: "v1 with R", in: "6001 880b | 0000 8001", err: ErrFlags},
		{name: "v1 not PPP", in: "2001 0800 | 0000 8001", err: ErrProtocol},
		{name: "v1 key truncated", in: "2001 880b | 0000", err: ErrShort},
		{name: "v1 seq truncated", in: "3001 880b | 0000 8001 | 0000", err: ErrShort},
		{name: "v1 ack truncated", in: "3081 880b | 0000 8001 | 00000001", err: ErrShort},
		{name: "v1 payload length lies", in: "3001 880b | 0100 8001 | 00000007 | ff030021", err: ErrLength},
		{name: "v0 routing", in: "4000 0800 | 0000 0000 | 45000014", err: ErrFlags},
		{name: "v0 K truncated", in: "2000 0800 | 0102", err: ErrShort},
		{name: "version 2", in: "2002 880b | 0000 8001", err: ErrVersion},
		{name: "version 7", in: "0007 0800", err: ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append(unhex(t, tt.in), make([]byte, tt.extra)...)
			g, err := ParseGRE(b)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			got := want{ver: g.Version(), proto: g.Protocol(), hl: g.HeaderLen(), payload: len(g.Payload()),
				c: g.HasChecksum(), k: g.HasKey(), s: g.HasSeq(), a: g.HasAck(),
				key: g.Key(), seq: g.Seq(), ack: g.Ack(), plen: g.PayloadLength(), callID: g.CallID()}
			if len(g.Payload()) > 0 {
				got.firstPayloadByte = g.Payload()[0]
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestGRESetters(t *testing.T) {
	g, err := ParseGRE(unhex(t, hexGREv1SeqAck))
	if err != nil {
		t.Fatal(err)
	}
	g.SetCallID(0xcafe)
	g.SetSeq(100)
	g.SetAck(99)
	want := unhex(t, "3081 880b | 0004 cafe | 00000064 | 00000063 | ff030021")
	if string(g) != string(want) {
		t.Errorf("after setters: % x\nwant              % x", []byte(g), want)
	}
	// Setters of absent fields change nothing.
	v0 := unhex(t, hexGREv0)
	g0, _ := ParseGRE(cloneB(v0))
	g0.SetCallID(1)
	g0.SetSeq(1)
	g0.SetAck(1)
	if string(g0) != string(v0) {
		t.Errorf("v0 changed by absent-field setters: % x", []byte(g0))
	}
	ack, _ := ParseGRE(unhex(t, hexGREv1Ack))
	ack.SetSeq(5)
	if ack.Seq() != 0 || ack.Ack() != 9 {
		t.Errorf("SetSeq on ack-only packet: seq %d ack %d", ack.Seq(), ack.Ack())
	}
}

func TestGREAllocs(t *testing.T) {
	b := unhex(t, hexGREv1SeqAck)
	assertNoAllocs(t, "ParseGRE", func() { _, _ = ParseGRE(b) })
	assertNoAllocs(t, "ParseGRE error", func() { _, _ = ParseGRE(b[:3]) })
	g, _ := ParseGRE(b)
	assertNoAllocs(t, "getters", func() { _, _, _, _ = g.CallID(), g.Seq(), g.Ack(), g.Payload() })
	assertNoAllocs(t, "SetCallID", func() { g.SetCallID(0x4444) })
}

func FuzzGRE(f *testing.F) {
	for _, s := range []string{hexGREv1SeqAck, hexGREv1Seq, hexGREv1Ack, hexGREv0, hexGREv0CKS} {
		f.Add(unhex(f, s), uint16(0xbeef), uint32(42))
	}
	f.Fuzz(func(t *testing.T, b []byte, id uint16, n uint32) {
		g, err := ParseGRE(b)
		if err != nil {
			return
		}
		if g.HeaderLen() > len(g) {
			t.Fatalf("header %d beyond packet %d", g.HeaderLen(), len(g))
		}
		if g.Version() == 1 {
			if !g.HasKey() || g.Protocol() != GREProtoPPP {
				t.Fatalf("accepted v1 without K or PPP")
			}
			if int(g.PayloadLength()) != len(g.Payload()) {
				t.Fatalf("payload length %d, payload %d", g.PayloadLength(), len(g.Payload()))
			}
			g.SetCallID(id)
			if g.CallID() != id {
				t.Fatalf("SetCallID(%#x) then CallID() = %#x", id, g.CallID())
			}
		}
		hl, plen := g.HeaderLen(), g.PayloadLength()
		g.SetSeq(n)
		g.SetAck(n)
		if g.HasSeq() && g.Seq() != n || g.HasAck() && g.Ack() != n {
			t.Fatalf("seq/ack setters and getters disagree")
		}
		if g.HeaderLen() != hl || g.PayloadLength() != plen {
			t.Fatalf("setters moved the layout")
		}
		_ = g.Key()
	})
}

func BenchmarkGRESetCallID(b *testing.B) {
	buf := unhex(b, hexGREv1SeqAck)
	b.ReportAllocs()
	for i := range b.N {
		g, err := ParseGRE(buf)
		if err != nil {
			b.Fatal(err)
		}
		g.SetCallID(uint16(i))
	}
}
