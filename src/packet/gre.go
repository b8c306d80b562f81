package packet

import "encoding/binary"

// GREProtoPPP is the GRE Protocol Type of PPTP's enhanced GRE: PPP
// (RFC 2637 section 4.1).
const GREProtoPPP = 0x880B

// GRE flag bits in the first 16 bits of the header. C, R, K, S, s and Recur
// come from RFC 1701 (RFC 2784 keeps C, RFC 2890 keeps K and S); A is the
// acknowledgment bit of enhanced GRE (RFC 2637 section 4.1).
const (
	GREFlagC     = 0x8000 // checksum present
	GREFlagR     = 0x4000 // routing present (RFC 1701 only)
	GREFlagK     = 0x2000 // key present
	GREFlagS     = 0x1000 // sequence number present
	GREFlagSSR   = 0x0800 // strict source route (RFC 1701 only)
	GRERecurMask = 0x0700 // recursion control (RFC 1701 only)
	GREFlagA     = 0x0080 // acknowledgment number present (version 1)
	GREVerMask   = 0x0007
)

const (
	greFlagsVer = 0
	greProto    = 2
	greOpt      = 4 // first optional field

	// GREMinHeaderLen is the GRE header without optional fields (RFC 2784).
	GREMinHeaderLen = 4
	// GREv1MinHeaderLen is the enhanced GRE header with its mandatory key
	// (RFC 2637 section 4.1).
	GREv1MinHeaderLen = 8
)

// GRE is a GRE packet (header and payload) returned by ParseGRE: either
// version 0 (RFC 2784 with the key and sequence fields of RFC 2890) or
// version 1, the enhanced GRE that carries PPTP data (RFC 2637 section 4.1).
//
// Enhanced GRE header, version 1:
//
//	|C|R|K|S|s|Recur|A| Flags | Ver |        Protocol Type          |
//	|    Key (HW) Payload Length    |       Key (LW) Call ID        |
//	|                 Sequence Number (Optional)                    |
//	|               Acknowledgment Number (Optional)                |
type GRE []byte

// ParseGRE validates b as a GRE packet.
//
// Version 0: the R bit (RFC 1701 routing) is refused with ErrFlags because it
// changes the header layout and RFC 2784 section 2.3 says to discard it.
//
// Version 1: K must be set, and C and R clear (RFC 2637 section 4.1), else
// ErrFlags; the protocol must be GREProtoPPP, else ErrProtocol; the payload
// length in the key must fit in b, else ErrLength. The returned GRE is cut to
// header plus payload length. The s, Recur and Flags bits, which RFC 2637
// also wants zero, are tolerated because they do not move any field.
//
// Other versions return ErrVersion.
func ParseGRE(b []byte) (GRE, error) {
	if len(b) < GREMinHeaderLen {
		return nil, ErrShort
	}
	fv := binary.BigEndian.Uint16(b[greFlagsVer:])
	switch fv & GREVerMask {
	case 0:
		if fv&GREFlagR != 0 {
			return nil, ErrFlags
		}
		if len(b) < GRE(b).HeaderLen() {
			return nil, ErrShort
		}
		return GRE(b), nil
	case 1:
		if fv&GREFlagK == 0 || fv&(GREFlagC|GREFlagR) != 0 {
			return nil, ErrFlags
		}
		if binary.BigEndian.Uint16(b[greProto:]) != GREProtoPPP {
			return nil, ErrProtocol
		}
		hl := GRE(b).HeaderLen()
		if len(b) < hl {
			return nil, ErrShort
		}
		n := hl + int(binary.BigEndian.Uint16(b[greOpt:]))
		if n > len(b) {
			return nil, ErrLength
		}
		return GRE(b[:n]), nil
	default:
		return nil, ErrVersion
	}
}

func (g GRE) flags() uint16 { return binary.BigEndian.Uint16(g[greFlagsVer:]) }

// Flags is the first 16 bits of the header: GREFlag* bits and the version.
func (g GRE) Flags() uint16 { return g.flags() }

// Version is the version field: 0 (RFC 2784) or 1 (enhanced GRE, PPTP).
func (g GRE) Version() uint8 { return uint8(g.flags() & GREVerMask) }

// Protocol is the Protocol Type (an EtherType; GREProtoPPP for PPTP).
func (g GRE) Protocol() uint16 { return binary.BigEndian.Uint16(g[greProto:]) }

// HasChecksum reports the C bit (version 0 only).
func (g GRE) HasChecksum() bool { return g.flags()&GREFlagC != 0 }

// HasKey reports the K bit (always set on a parsed version 1 packet).
func (g GRE) HasKey() bool { return g.flags()&GREFlagK != 0 }

// HasSeq reports the S bit.
func (g GRE) HasSeq() bool { return g.flags()&GREFlagS != 0 }

// HasAck reports the A bit (version 1 only; always false for version 0).
func (g GRE) HasAck() bool { return g.Version() == 1 && g.flags()&GREFlagA != 0 }

// keyOff is the offset of the key: after the checksum and reserved1 words
// when C is set (RFC 2890 section 2).
func (g GRE) keyOff() int {
	if g.flags()&GREFlagC != 0 {
		return greOpt + 4
	}
	return greOpt
}

func (g GRE) seqOff() int {
	off := g.keyOff()
	if g.HasKey() {
		off += 4
	}
	return off
}

func (g GRE) ackOff() int {
	off := g.seqOff()
	if g.HasSeq() {
		off += 4
	}
	return off
}

// HeaderLen is the header length including the optional fields present.
// The payload starts here.
func (g GRE) HeaderLen() int {
	off := g.ackOff()
	if g.HasAck() {
		off += 4
	}
	return off
}

// Key is the 32-bit key, valid iff HasKey. In version 1 it is
// PayloadLength<<16 | CallID.
func (g GRE) Key() uint32 {
	if !g.HasKey() {
		return 0
	}
	return binary.BigEndian.Uint32(g[g.keyOff():])
}

// PayloadLength is the high half of the version 1 key: the payload length in
// bytes, not counting the GRE header. Valid iff Version is 1.
func (g GRE) PayloadLength() uint16 {
	if g.Version() != 1 {
		return 0
	}
	return binary.BigEndian.Uint16(g[greOpt:])
}

// CallID is the low half of the version 1 key, which RFC 2637 section 4.1
// calls the Peer's Call ID: the Call ID that the receiver of this packet
// chose for the call (in its Outgoing-Call-Request/Reply or
// Incoming-Call-Request/Reply). Valid iff Version is 1.
func (g GRE) CallID() uint16 {
	if g.Version() != 1 {
		return 0
	}
	return binary.BigEndian.Uint16(g[greOpt+2:])
}

// SetCallID rewrites the Call ID of a version 1 packet. Enhanced GRE has no
// checksum, so nothing else changes. It does nothing on version 0.
func (g GRE) SetCallID(id uint16) {
	if g.Version() == 1 {
		binary.BigEndian.PutUint16(g[greOpt+2:], id)
	}
}

// Seq is the Sequence Number, valid iff HasSeq.
func (g GRE) Seq() uint32 {
	if !g.HasSeq() {
		return 0
	}
	return binary.BigEndian.Uint32(g[g.seqOff():])
}

// SetSeq rewrites the Sequence Number; it does nothing unless HasSeq.
func (g GRE) SetSeq(v uint32) {
	if g.HasSeq() {
		binary.BigEndian.PutUint32(g[g.seqOff():], v)
	}
}

// Ack is the Acknowledgment Number, valid iff HasAck.
func (g GRE) Ack() uint32 {
	if !g.HasAck() {
		return 0
	}
	return binary.BigEndian.Uint32(g[g.ackOff():])
}

// SetAck rewrites the Acknowledgment Number; it does nothing unless HasAck.
func (g GRE) SetAck(v uint32) {
	if g.HasAck() {
		binary.BigEndian.PutUint32(g[g.ackOff():], v)
	}
}

// Payload is the data after the header (a PPP frame in version 1; empty in
// an acknowledgment-only packet).
func (g GRE) Payload() []byte { return g[g.HeaderLen():] }
