package packet

import "encoding/binary"

// L2TPv2 header flag bits and version (RFC 2661 section 3.1).
const (
	L2TPFlagT    = 0x8000 // control message
	L2TPFlagL    = 0x4000 // Length field present
	L2TPFlagS    = 0x0800 // Ns and Nr present
	L2TPFlagO    = 0x0200 // Offset Size present
	L2TPFlagP    = 0x0100 // priority (data messages only)
	L2TPVerMask  = 0x000f
	L2TPVersion2 = 2
)

// L2TPMinHeaderLen is a data message header without optional fields: flags
// and version, Tunnel ID, Session ID.
const L2TPMinHeaderLen = 6

// L2TP is an L2TPv2 message (RFC 2661 section 3.1) on UDP 1701, returned by
// ParseL2TP and cut to the Length field when present. The engines only pass
// L2TP through; this view serves the status display and tests.
//
//	|T|L|x|x|S|x|O|P|x|x|x|x|  Ver  |          Length (opt)         |
//	|           Tunnel ID           |           Session ID          |
//	|             Ns (opt)          |             Nr (opt)          |
//	|      Offset Size (opt)        |    Offset pad... (opt)
type L2TP []byte

// ParseL2TP validates b as an L2TPv2 message: version 2 (ErrVersion; 1 is
// L2F and 3 is L2TPv3, RFC 3931), the optional fields that the flags announce
// within b (ErrShort), a control message with L and S set and O clear as
// section 3.1 requires (ErrFlags), and a Length, if present, that covers the
// header (ErrLength) and that b holds (ErrShort).
func ParseL2TP(b []byte) (L2TP, error) {
	if len(b) < 2 {
		return nil, ErrShort
	}
	f := binary.BigEndian.Uint16(b)
	if f&L2TPVerMask != L2TPVersion2 {
		return nil, ErrVersion
	}
	if f&L2TPFlagT != 0 && (f&L2TPFlagL == 0 || f&L2TPFlagS == 0 || f&L2TPFlagO != 0) {
		return nil, ErrFlags
	}
	l := L2TP(b)
	// Fixed fields first, then the offset padding whose size is a field.
	off := l.seqEnd()
	if f&L2TPFlagO != 0 {
		if len(b) < off+2 {
			return nil, ErrShort
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	if len(b) < off {
		return nil, ErrShort
	}
	if f&L2TPFlagL != 0 {
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n < off {
			return nil, ErrLength
		}
		if n > len(b) {
			return nil, ErrShort
		}
		l = l[:n]
	}
	return l, nil
}

func (l L2TP) flags() uint16 { return binary.BigEndian.Uint16(l) }

// Flags is the first 16 bits: L2TPFlag* bits and the version.
func (l L2TP) Flags() uint16 { return l.flags() }

// Version is the version field (2).
func (l L2TP) Version() uint8 { return uint8(l.flags() & L2TPVerMask) }

// IsControl reports the T bit: a control message rather than a PPP frame.
func (l L2TP) IsControl() bool { return l.flags()&L2TPFlagT != 0 }

// HasLength reports the L bit.
func (l L2TP) HasLength() bool { return l.flags()&L2TPFlagL != 0 }

// HasSeq reports the S bit.
func (l L2TP) HasSeq() bool { return l.flags()&L2TPFlagS != 0 }

// HasOffset reports the O bit.
func (l L2TP) HasOffset() bool { return l.flags()&L2TPFlagO != 0 }

// Priority reports the P bit.
func (l L2TP) Priority() bool { return l.flags()&L2TPFlagP != 0 }

// idOff is the offset of the Tunnel ID.
func (l L2TP) idOff() int {
	if l.HasLength() {
		return 4
	}
	return 2
}

// seqEnd is the offset just after Ns/Nr (or after Session ID without S).
func (l L2TP) seqEnd() int {
	off := l.idOff() + 4
	if l.HasSeq() {
		off += 4
	}
	return off
}

// Length is the Length field and whether it is present.
func (l L2TP) Length() (int, bool) {
	if !l.HasLength() {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(l[2:])), true
}

// TunnelID is the receiver's Tunnel ID.
func (l L2TP) TunnelID() uint16 { return binary.BigEndian.Uint16(l[l.idOff():]) }

// SessionID is the receiver's Session ID (0 for tunnel-wide control).
func (l L2TP) SessionID() uint16 { return binary.BigEndian.Uint16(l[l.idOff()+2:]) }

// Ns is the send sequence number, valid iff HasSeq.
func (l L2TP) Ns() uint16 {
	if !l.HasSeq() {
		return 0
	}
	return binary.BigEndian.Uint16(l[l.idOff()+4:])
}

// Nr is the expected receive sequence number, valid iff HasSeq.
func (l L2TP) Nr() uint16 {
	if !l.HasSeq() {
		return 0
	}
	return binary.BigEndian.Uint16(l[l.idOff()+6:])
}

// OffsetSize is the Offset Size field, valid iff HasOffset.
func (l L2TP) OffsetSize() int {
	if !l.HasOffset() {
		return 0
	}
	return int(binary.BigEndian.Uint16(l[l.seqEnd():]))
}

// HeaderLen is the header length, offset padding included. The payload (AVPs
// of a control message, or a PPP frame) starts here.
func (l L2TP) HeaderLen() int {
	off := l.seqEnd()
	if l.HasOffset() {
		off += 2 + l.OffsetSize()
	}
	return off
}

// Payload is the data after the header.
func (l L2TP) Payload() []byte { return l[l.HeaderLen():] }
