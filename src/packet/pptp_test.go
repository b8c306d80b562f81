package packet

import (
	"math/rand"
	"testing"
)

// One fixture per RFC 2637 control message, laid out field by field from the
// diagrams of section 2.x. Common header: Length | PPTP Message Type 1 |
// Magic Cookie | Control Message Type | Reserved0. Call IDs: the PNS (LAN
// client) uses 0x4001, the PAC (server) 0x5678 for outgoing calls; the PAC
// uses 0x1111 and the PNS 0x2222 for the incoming call fixtures.
const (
	hdr = "0001 | 1a2b3c4d |"
	// 2.1 Start-Control-Connection-Request: version 1.0, reserved1, framing
	// async, bearer analog, max channels 0, firmware 1, host name, vendor.
	hexSCCRQ = "009c" + hdr + "0001 0000 | 0100 0000 | 00000001 | 00000001 | 0000 0001 | z64 | z64"
	// 2.2 Start-Control-Connection-Reply: version, result 1 (OK), error 0.
	hexSCCRP = "009c" + hdr + "0002 0000 | 0100 01 00 | 00000001 | 00000001 | 0000 0001 | z64 | z64"
	// 2.3 Stop-Control-Connection-Request: reason 1, reserved1, reserved2.
	hexStopCCRQ = "0010" + hdr + "0003 0000 | 01 00 0000"
	// 2.4 Stop-Control-Connection-Reply: result 1, error 0, reserved1.
	hexStopCCRP = "0010" + hdr + "0004 0000 | 01 00 0000"
	// 2.5 Echo-Request: identifier 0x42.
	hexEchoRQ = "0010" + hdr + "0005 0000 | 00000042"
	// 2.6 Echo-Reply: identifier, result 1, error 0, reserved1.
	hexEchoRP = "0014" + hdr + "0006 0000 | 00000042 | 01 00 0000"
	// 2.7 Outgoing-Call-Request: Call ID 0x4001, serial 7, min BPS 2400,
	// max BPS 10000000, bearer 3, framing 3, window 64, delay 0, phone number
	// length 0, reserved1, phone number (64), subaddress (64).
	hexOCRQ = "00a8" + hdr + "0007 0000 | 4001 0007 | 00000960 | 00989680 | 00000003 | 00000003 |" +
		"0040 0000 | 0000 0000 | z64 | z64"
	// 2.8 Outgoing-Call-Reply: Call ID 0x5678, Peer's Call ID 0x4001, result
	// 1, error 0, cause 0, connect speed 100000000, window 64, delay 0,
	// physical channel 0.
	hexOCRP = "0020" + hdr + "0008 0000 | 5678 4001 | 01 00 0000 | 05f5e100 | 0040 0000 | 00000000"
	// 2.9 Incoming-Call-Request: Call ID 0x1111, serial 8, bearer 1,
	// physical channel 0, dialed/dialing lengths 0, dialed number (64),
	// dialing number (64), subaddress (64).
	hexICRQ = "00dc" + hdr + "0009 0000 | 1111 0008 | 00000001 | 00000000 | 0000 0000 | z64 | z64 | z64"
	// 2.10 Incoming-Call-Reply: Call ID 0x2222, Peer's Call ID 0x1111,
	// result 1, error 0, window 64, transmit delay 0, reserved1.
	hexICRP = "0018" + hdr + "000a 0000 | 2222 1111 | 01 00 0040 | 0000 0000"
	// 2.11 Incoming-Call-Connected: Peer's Call ID 0x2222, reserved1,
	// connect speed, window 64, transmit delay 0, framing 3.
	hexICCN = "001c" + hdr + "000b 0000 | 2222 0000 | 05f5e100 | 0040 0000 | 00000003"
	// 2.12 Call-Clear-Request: Call ID 0x4001 (the PNS's own), reserved1.
	hexCCRQ = "0010" + hdr + "000c 0000 | 4001 0000"
	// 2.13 Call-Disconnect-Notify: Call ID 0x5678 (the PAC's own), result 3
	// (admin), error 0, cause 0, reserved1, call statistics (128).
	hexCDN = "0094" + hdr + "000d 0000 | 5678 03 00 | 0000 0000 | z128"
	// 2.14 WAN-Error-Notify: Peer's Call ID 0x4001, reserved1, CRC, framing,
	// hardware overrun, buffer overrun, time-out, alignment errors.
	hexWEN = "0028" + hdr + "000e 0000 | 4001 0000 | 00000001 | z20"
	// 2.15 Set-Link-Info: Peer's Call ID 0x5678, reserved1, send ACCM,
	// receive ACCM.
	hexSLI = "0018" + hdr + "000f 0000 | 5678 0000 | ffffffff | ffffffff"
)

type pptpCase struct {
	name       string
	in         string
	typ        PPTPCtrlType
	length     int
	callID     int // -1: absent
	peerCallID int // -1: absent
	result     int // -1: absent
}

var pptpCases = []pptpCase{
	{"SCCRQ", hexSCCRQ, PPTPStartCtrlConnRequest, 156, -1, -1, -1},
	{"SCCRP", hexSCCRP, PPTPStartCtrlConnReply, 156, -1, -1, 1},
	{"StopCCRQ", hexStopCCRQ, PPTPStopCtrlConnRequest, 16, -1, -1, -1},
	{"StopCCRP", hexStopCCRP, PPTPStopCtrlConnReply, 16, -1, -1, 1},
	{"Echo-Request", hexEchoRQ, PPTPEchoRequest, 16, -1, -1, -1},
	{"Echo-Reply", hexEchoRP, PPTPEchoReply, 20, -1, -1, 1},
	{"OCRQ", hexOCRQ, PPTPOutgoingCallRequest, 168, 0x4001, -1, -1},
	{"OCRP", hexOCRP, PPTPOutgoingCallReply, 32, 0x5678, 0x4001, 1},
	{"ICRQ", hexICRQ, PPTPIncomingCallRequest, 220, 0x1111, -1, -1},
	{"ICRP", hexICRP, PPTPIncomingCallReply, 24, 0x2222, 0x1111, 1},
	{"ICCN", hexICCN, PPTPIncomingCallConn, 28, -1, 0x2222, -1},
	{"CCRQ", hexCCRQ, PPTPCallClearRequest, 16, 0x4001, -1, -1},
	{"CDN", hexCDN, PPTPCallDisconnectNotify, 148, 0x5678, -1, 3},
	{"WEN", hexWEN, PPTPWANErrorNotify, 40, -1, 0x4001, -1},
	{"SLI", hexSLI, PPTPSetLinkInfo, 24, -1, 0x5678, -1},
}

func opt16(v uint16, ok bool) int {
	if !ok {
		return -1
	}
	return int(v)
}

func TestParsePPTPCtrl(t *testing.T) {
	for _, tt := range pptpCases {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.in)
			if len(b) != tt.length {
				t.Fatalf("fixture is %d bytes, want %d", len(b), tt.length)
			}
			// Trailing bytes (the next message) are not part of it.
			m, err := ParsePPTPCtrl(append(b, 0xaa, 0xbb))
			if err != nil {
				t.Fatal(err)
			}
			if m.Type() != tt.typ || m.Length() != tt.length || len(m) != tt.length ||
				m.Magic() != PPTPMagicCookie || m.MessageType() != PPTPMessageTypeControl {
				t.Errorf("type %v length %d/%d", m.Type(), m.Length(), len(m))
			}
			if m.Type().Len() != tt.length {
				t.Errorf("Type().Len() = %d", m.Type().Len())
			}
			if got := opt16(m.CallID()); got != tt.callID {
				t.Errorf("CallID = %#x, want %#x", got, tt.callID)
			}
			if got := opt16(m.PeerCallID()); got != tt.peerCallID {
				t.Errorf("PeerCallID = %#x, want %#x", got, tt.peerCallID)
			}
			r, ok := m.ResultCode()
			if got := opt16(uint16(r), ok); got != tt.result {
				t.Errorf("ResultCode = %d, want %d", got, tt.result)
			}
			if _, eok := m.ErrorCode(); eok != ok {
				t.Errorf("ErrorCode presence %v differs from ResultCode %v", eok, ok)
			}
			if n, err := PPTPMessageLen(b); n != tt.length || err != nil {
				t.Errorf("PPTPMessageLen = %d, %v", n, err)
			}
			if m.Type().String() == "Unknown" {
				t.Errorf("no name for %d", m.Type())
			}
		})
	}
}

// TestPPTPOffsets pins the field offsets to RFC 2637 section 2 explicitly,
// independent of the fixtures above.
func TestPPTPOffsets(t *testing.T) {
	tests := []struct {
		typ          PPTPCtrlType
		length       int
		callID, peer int
	}{
		{PPTPStartCtrlConnRequest, 156, -1, -1}, // 2.1
		{PPTPStartCtrlConnReply, 156, -1, -1},   // 2.2
		{PPTPStopCtrlConnRequest, 16, -1, -1},   // 2.3
		{PPTPStopCtrlConnReply, 16, -1, -1},     // 2.4
		{PPTPEchoRequest, 16, -1, -1},           // 2.5
		{PPTPEchoReply, 20, -1, -1},             // 2.6
		{PPTPOutgoingCallRequest, 168, 12, -1},  // 2.7
		{PPTPOutgoingCallReply, 32, 12, 14},     // 2.8
		{PPTPIncomingCallRequest, 220, 12, -1},  // 2.9
		{PPTPIncomingCallReply, 24, 12, 14},     // 2.10
		{PPTPIncomingCallConn, 28, -1, 12},      // 2.11
		{PPTPCallClearRequest, 16, 12, -1},      // 2.12
		{PPTPCallDisconnectNotify, 148, 12, -1}, // 2.13
		{PPTPWANErrorNotify, 40, -1, 12},        // 2.14
		{PPTPSetLinkInfo, 24, -1, 12},           // 2.15
	}
	for _, tt := range tests {
		if !tt.typ.Known() || tt.typ.Len() != tt.length || tt.typ.CallIDOffset() != tt.callID ||
			tt.typ.PeerCallIDOffset() != tt.peer {
			t.Errorf("%v: len %d call %d peer %d, want %d %d %d", tt.typ, tt.typ.Len(),
				tt.typ.CallIDOffset(), tt.typ.PeerCallIDOffset(), tt.length, tt.callID, tt.peer)
		}
	}
	for _, u := range []PPTPCtrlType{0, 16, 0xffff} {
		if u.Known() || u.Len() != 0 || u.CallIDOffset() != -1 || u.String() != "Unknown" {
			t.Errorf("type %d should be unknown", u)
		}
	}
}

func TestParsePPTPCtrlHostile(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  error
		// lenErr is what PPTPMessageLen says about the same bytes.
		lenErr error
	}{
		{"empty", "", ErrShort, ErrShort},
		{"7 bytes", "00a8 0001 1a2b3c", ErrShort, ErrShort},
		{"bad magic", "0010 0001 | 1a2b3c4e | 000c 0000 | 4001 0000", ErrMagic, ErrMagic},
		{"length below header", "000b 0001 | 1a2b3c4d | 000c 0000 | 4001 0000", ErrLength, ErrLength},
		{"length above max", "0200 0001 | 1a2b3c4d | 000c 0000 | 4001 0000", ErrLength, ErrLength},
		{"length lies past buffer", "00a8 0001 | 1a2b3c4d | 0007 0000 | 4001 0007", ErrShort, nil},
		{"OCRQ with short length", "0010 0001 | 1a2b3c4d | 0007 0000 | 4001 0007", ErrLength, nil},
		{"CCRQ with long length", "0014 0001 | 1a2b3c4d | 000c 0000 | 4001 0000 | 00000000", ErrLength, nil},
		{"management message type", "0010 0002 | 1a2b3c4d | 000c 0000 | 4001 0000", ErrProtocol, nil},
		{"control type 0", "0010 0001 | 1a2b3c4d | 0000 0000 | 4001 0000", ErrProtocol, nil},
		{"control type 16", "0010 0001 | 1a2b3c4d | 0010 0000 | 4001 0000", ErrProtocol, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.in)
			if _, err := ParsePPTPCtrl(b); err != tt.err {
				t.Errorf("ParsePPTPCtrl err = %v, want %v", err, tt.err)
			}
			if _, err := PPTPMessageLen(b); err != tt.lenErr {
				t.Errorf("PPTPMessageLen err = %v, want %v", err, tt.lenErr)
			}
		})
	}
}

func TestPPTPSetters(t *testing.T) {
	for _, tt := range pptpCases {
		t.Run(tt.name, func(t *testing.T) {
			orig := unhex(t, tt.in)
			m, _ := ParsePPTPCtrl(cloneB(orig))
			if ok := m.SetCallID(0xa1b2); ok != (tt.callID >= 0) {
				t.Errorf("SetCallID ok = %v", ok)
			}
			if ok := m.SetPeerCallID(0xc3d4); ok != (tt.peerCallID >= 0) {
				t.Errorf("SetPeerCallID ok = %v", ok)
			}
			want := cloneB(orig)
			if o := tt.typ.CallIDOffset(); o >= 0 {
				want[o], want[o+1] = 0xa1, 0xb2
			}
			if o := tt.typ.PeerCallIDOffset(); o >= 0 {
				want[o], want[o+1] = 0xc3, 0xd4
			}
			if string(m) != string(want) {
				t.Errorf("bytes after setters differ:\n got % x\nwant % x", []byte(m), want)
			}
			if tt.callID >= 0 {
				if v, _ := m.CallID(); v != 0xa1b2 {
					t.Errorf("CallID after set = %#x", v)
				}
			}
			if tt.peerCallID >= 0 {
				if v, _ := m.PeerCallID(); v != 0xc3d4 {
					t.Errorf("PeerCallID after set = %#x", v)
				}
			}
			if _, err := ParsePPTPCtrl(m); err != nil {
				t.Errorf("reparse after rewrite: %v", err)
			}
		})
	}
}

// pptpStream is every fixture back to back, as one TCP byte stream.
func pptpStream(tb testing.TB) ([]byte, []PPTPCtrlType) {
	var s []byte
	var types []PPTPCtrlType
	for _, c := range pptpCases {
		s = append(s, unhex(tb, c.in)...)
		types = append(types, c.typ)
	}
	return s, types
}

// reassemble feeds segments to a minimal reassembler, as an engine would:
// buffer, then consume whole messages by PPTPMessageLen.
func reassemble(t *testing.T, segs [][]byte) []PPTPCtrlType {
	t.Helper()
	var buf []byte
	var got []PPTPCtrlType
	for _, seg := range segs {
		buf = append(buf, seg...)
		for {
			n, err := PPTPMessageLen(buf)
			if err == ErrShort || err == nil && len(buf) < n {
				break
			}
			if err != nil {
				t.Fatalf("framing lost: %v", err)
			}
			m, err := ParsePPTPCtrl(buf[:n])
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got = append(got, m.Type())
			buf = buf[n:]
		}
	}
	if len(buf) != 0 {
		t.Fatalf("%d bytes left over", len(buf))
	}
	return got
}

func TestPPTPStreamReassembly(t *testing.T) {
	stream, want := pptpStream(t)
	check := func(name string, got []PPTPCtrlType) {
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d", name, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: message %d is %v, want %v", name, i, got[i], want[i])
			}
		}
	}
	// Two segments, split at every byte.
	for cut := 0; cut <= len(stream); cut++ {
		check("two segments", reassemble(t, [][]byte{stream[:cut], stream[cut:]}))
	}
	// Many random-sized segments, including 1-byte ones.
	r := rand.New(rand.NewSource(7))
	for i := 0; i < 200; i++ {
		var segs [][]byte
		for rest := stream; len(rest) > 0; {
			n := 1 + r.Intn(min(len(rest), 300))
			segs = append(segs, rest[:n])
			rest = rest[n:]
		}
		check("random segments", reassemble(t, segs))
	}
}

func TestPPTPAllocs(t *testing.T) {
	b := unhex(t, hexOCRP)
	assertNoAllocs(t, "ParsePPTPCtrl", func() { _, _ = ParsePPTPCtrl(b) })
	assertNoAllocs(t, "ParsePPTPCtrl error", func() { _, _ = ParsePPTPCtrl(b[:8]) })
	assertNoAllocs(t, "PPTPMessageLen", func() { _, _ = PPTPMessageLen(b) })
	m, _ := ParsePPTPCtrl(b)
	assertNoAllocs(t, "getters", func() {
		_, _ = m.CallID()
		_, _ = m.PeerCallID()
		_, _ = m.ResultCode()
		_ = m.Type().String()
	})
	assertNoAllocs(t, "setters", func() { m.SetCallID(1); m.SetPeerCallID(2) })
	ip, _ := ParseIPv4(unhex(t, hexOCRQSegment))
	tcp, _ := ParseTCP(ip.Payload())
	assertNoAllocs(t, "rewrite Call ID in TCP", func() {
		mm, err := ParsePPTPCtrl(tcp.Payload())
		if err != nil {
			t.Fatal(err)
		}
		tcp.Rewrite16(tcp.HeaderLen()+mm.Type().CallIDOffset(), 0x7777)
	})
}

func FuzzPPTPCtrl(f *testing.F) {
	for _, c := range pptpCases {
		f.Add(unhex(f, c.in), uint16(0x9999))
	}
	stream, _ := pptpStream(f)
	f.Add(stream, uint16(1))
	f.Fuzz(func(t *testing.T, b []byte, id uint16) {
		// Walking a stream terminates and never over-reads.
		for rest := b; ; {
			n, err := PPTPMessageLen(rest)
			if err != nil || n > len(rest) {
				break
			}
			if n < PPTPHeaderLen {
				t.Fatalf("PPTPMessageLen = %d", n)
			}
			rest = rest[n:]
		}
		m, err := ParsePPTPCtrl(b)
		if err != nil {
			return
		}
		if !m.Type().Known() || m.Length() != len(m) || m.Type().Len() != len(m) {
			t.Fatalf("accepted type %d length %d/%d", m.Type(), m.Length(), len(m))
		}
		_, _ = m.ResultCode()
		_, _ = m.ErrorCode()
		if m.SetCallID(id) {
			if v, ok := m.CallID(); !ok || v != id {
				t.Fatalf("SetCallID then CallID = %#x, %v", v, ok)
			}
		}
		if m.SetPeerCallID(id) {
			if v, ok := m.PeerCallID(); !ok || v != id {
				t.Fatalf("SetPeerCallID then PeerCallID = %#x, %v", v, ok)
			}
		}
		if _, err := ParsePPTPCtrl(m); err != nil {
			t.Fatalf("reparse after rewrite: %v", err)
		}
	})
}

func BenchmarkPPTPRewriteOCRQ(b *testing.B) {
	ip, _ := ParseIPv4(unhex(b, hexOCRQSegment))
	b.ReportAllocs()
	for i := range b.N {
		tcp, err := ParseTCP(ip.Payload())
		if err != nil {
			b.Fatal(err)
		}
		m, err := ParsePPTPCtrl(tcp.Payload())
		if err != nil {
			b.Fatal(err)
		}
		tcp.Rewrite16(tcp.HeaderLen()+m.Type().CallIDOffset(), uint16(i))
	}
}
