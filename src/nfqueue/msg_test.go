package nfqueue

import (
	"bytes"
	"encoding/hex"
	"testing"
	"unsafe"
)

// packetMsg builds an NFQNL_MSG_PACKET datagram as the kernel sends it.
func packetMsg(id uint32, mark uint32, outdev uint32, payload []byte, extra ...[]byte) []byte {
	b := putMsgHdr(nil, msgPacket, 0, 0, 4200, 2) // AF_INET
	var hdr [7]byte
	be.PutUint32(hdr[0:], id)
	be.PutUint16(hdr[4:], 0x0800)
	hdr[6] = 4
	b = putAttr(b, attrPacketHdr, hdr[:])
	if mark != 0 {
		b = putAttrU32(b, attrMark, mark)
	}
	if outdev != 0 {
		b = putAttrU32(b, attrOutDev, outdev)
	}
	for _, e := range extra {
		b = append(b, e...)
	}
	if payload != nil {
		b = putAttr(b, attrPayload, payload)
	}
	return endMsg(b, 0)
}

func TestParsePacket(t *testing.T) {
	payload := []byte{0x45, 0, 0, 20, 1, 2, 3, 4, 5}
	ct := putAttr(nil, attrCT|nlaFNested, []byte{8, 0, 3, 0, 0, 0, 0, 8}) // one nested CTA_STATUS
	caplen := putAttrU32(nil, attrCapLen, 1500)
	unknown := putAttr(nil, 21, []byte{1, 2, 3, 4}) // NFQA_PRIORITY, not decoded
	tests := []struct {
		name string
		msg  []byte
		want Packet
		err  error
	}{
		{"minimal", packetMsg(7, 0, 0, payload), Packet{ID: 7, HWProto: 0x0800, Hook: 4, Data: payload}, nil},
		{"mark and outdev", packetMsg(0xfffffffe, 0x00560001, 3, payload),
			Packet{ID: 0xfffffffe, HWProto: 0x0800, Hook: 4, Mark: 0x00560001, OutDev: 3, Data: payload}, nil},
		{"ct, caplen, unknown attribute", packetMsg(9, 0, 0, payload, ct, caplen, unknown),
			Packet{ID: 9, HWProto: 0x0800, Hook: 4, CapLen: 1500, CT: []byte{8, 0, 3, 0, 0, 0, 0, 8}, Data: payload}, nil},
		{"no payload", packetMsg(1, 0, 0, nil), Packet{ID: 1, HWProto: 0x0800, Hook: 4}, nil},
		{"no packet header", endMsg(putAttr(putMsgHdr(nil, msgPacket, 0, 0, 1, 2), attrPayload, payload), 0), Packet{}, ErrNoID},
		{"short mark", endMsg(putAttr(putMsgHdr(nil, msgPacket, 0, 0, 1, 2), attrMark, []byte{1}), 0), Packet{}, ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, rest, ok, err := nextMsg(tc.msg)
			if err != nil || !ok || len(rest) != 0 {
				t.Fatalf("nextMsg: ok %v err %v rest %d", ok, err, len(rest))
			}
			if m.typ != msgPacket {
				t.Fatalf("type %#x", m.typ)
			}
			var p Packet
			err = parsePacket(m.body, &p)
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if p.ID != tc.want.ID || p.HWProto != tc.want.HWProto || p.Hook != tc.want.Hook || p.Mark != tc.want.Mark ||
				p.OutDev != tc.want.OutDev || p.CapLen != tc.want.CapLen || !bytes.Equal(p.Data, tc.want.Data) || !bytes.Equal(p.CT, tc.want.CT) {
				t.Errorf("got %+v\nwant %+v", p, tc.want)
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	p := Packet{Data: make([]byte, 100)}
	if p.Truncated() {
		t.Error("no CapLen: truncated")
	}
	p.CapLen = 100
	if p.Truncated() {
		t.Error("CapLen == len: truncated")
	}
	p.CapLen = 101
	if !p.Truncated() {
		t.Error("CapLen > len: not truncated")
	}
}

// TestVerdictEncoding pins the wire bytes of the messages we send, assembled
// by hand from the uapi structs (nlmsghdr in host byte order, here
// little-endian; nfgenmsg res_id and attribute values big-endian; queue 4200
// = 0x1068). The netns test in queue_test.go proves the kernel takes them.
func TestVerdictEncoding(t *testing.T) {
	if ne.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures are little-endian")
	}
	mark := uint32(0x00560000)
	got := appendVerdict(nil, 4200, 0x01020304, nfAccept, &mark, []byte{0xaa, 0xbb, 0xcc})
	want := "30000000" + "0103" + "0100" + "00000000" + "00000000" + // nlmsghdr: len 48, type 0x301, NLM_F_REQUEST
		"00" + "00" + "1068" + // nfgenmsg: AF_UNSPEC, v0, queue 4200
		"0c000200" + "00000001" + "01020304" + // NFQA_VERDICT_HDR accept, id
		"08000300" + "00560000" + // NFQA_MARK
		"07000a00" + "aabbcc00" // NFQA_PAYLOAD, padded
	if hex.EncodeToString(got) != want {
		t.Errorf("verdict\n got %x\nwant %s", got, want)
	}
	got = appendBatchVerdict(nil, 4200, 77, nfAccept)
	want = "20000000" + "0303" + "0100" + "00000000" + "00000000" + "00001068" + "0c000200" + "00000001" + "0000004d"
	if hex.EncodeToString(got) != want {
		t.Errorf("batch verdict\n got %x\nwant %s", got, want)
	}
	got = configMsg(4200, 5, 0xffff, 1024)
	want = "30000000" + "0203" + "0500" + "05000000" + "00000000" + "00001068" +
		"08000100" + "01000000" + // NFQA_CFG_CMD bind, pf 0
		"09000200" + "0000ffff" + "02000000" + // NFQA_CFG_PARAMS: range, COPY_PACKET (5 bytes, padded)
		"08000300" + "00000400" // NFQA_CFG_QUEUE_MAXLEN
	if hex.EncodeToString(got) != want {
		t.Errorf("config\n got %x\nwant %s", got, want)
	}
}

func TestVerdictSize(t *testing.T) {
	mark := uint32(1)
	for _, n := range []int{0, 1, 3, 4, 100, 1500} {
		b := appendVerdict(nil, 1, 1, nfAccept, &mark, make([]byte, n))
		if len(b) > verdictSize(n) {
			t.Errorf("payload %d: message %d bytes, verdictSize says %d", n, len(b), verdictSize(n))
		}
	}
}

func TestParseErrorMsg(t *testing.T) {
	// An NLMSG_ERROR with errno -EINVAL answering seq 9.
	body := make([]byte, 4+nlmsgHdrLen)
	ne.PutUint32(body[0:], uint32(0xffffffea)) // -22
	ne.PutUint32(body[4+8:], 9)
	errno, seq, ok := parseError(body)
	if !ok || errno != -22 || seq != 9 {
		t.Errorf("parseError = %d %d %v", errno, seq, ok)
	}
	if _, _, ok := parseError(body[:10]); ok {
		t.Error("short error parsed")
	}
}

// TestNoAllocs: parsing a received packet and building verdicts into a
// buffer with room do not allocate.
func TestNoAllocs(t *testing.T) {
	msg := packetMsg(7, 0x10, 2, make([]byte, 120))
	out := make([]byte, 0, 4096)
	var p Packet
	mark := uint32(5)
	allocs := testing.AllocsPerRun(200, func() {
		m, _, _, _ := nextMsg(msg)
		_ = parsePacket(m.body, &p)
		o := appendVerdict(out[:0], 1, p.ID, nfAccept, &mark, p.Data)
		_ = appendBatchVerdict(o, 1, p.ID, nfAccept)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet", allocs)
	}
}

// walk runs the receive path's parsing over one datagram, as receive does.
func walk(b []byte) (pkts int) {
	var p Packet
	for {
		m, rest, ok, err := nextMsg(b)
		if err != nil || !ok {
			return pkts
		}
		b = rest
		switch m.typ {
		case msgPacket:
			if parsePacket(m.body, &p) == nil {
				pkts++
				if p.Truncated() && len(p.Data) > int(p.CapLen) {
					panic("truncated longer than caplen")
				}
			}
		case nlmsgError:
			parseError(m.body)
		}
	}
}

// inside reports whether s lies within b (the fuzzer's inputs may have
// spare capacity, so cap cannot tell).
func inside(s, b []byte) bool {
	if len(s) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(&b[0]))
	p := uintptr(unsafe.Pointer(&s[0]))
	return p >= start && p+uintptr(len(s)) <= start+uintptr(len(b))
}

// FuzzParse feeds arbitrary datagrams to the parser: it must never panic or
// read out of bounds, and a parsed packet's slices stay inside the input.
func FuzzParse(f *testing.F) {
	f.Add(packetMsg(7, 0, 0, []byte{0x45, 0, 0, 20}))
	f.Add(packetMsg(7, 5, 3, []byte{1}, putAttrU32(nil, attrCapLen, 9000)))
	f.Add(append(packetMsg(1, 0, 0, []byte{1, 2}), packetMsg(2, 0, 0, []byte{3})...))
	f.Add(appendVerdict(nil, 1, 2, nfAccept, nil, []byte{1, 2, 3}))
	f.Add([]byte{16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		walk(b)
		m, _, ok, err := nextMsg(b)
		if err != nil || !ok {
			return
		}
		var p Packet
		if parsePacket(m.body, &p) != nil {
			return
		}
		for _, s := range [][]byte{p.Data, p.CT} {
			if !inside(s, b) {
				t.Fatalf("a %d-byte slice of the packet lies outside the %d-byte input", len(s), len(b))
			}
		}
	})
}
