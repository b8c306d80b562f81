package packet

import (
	"encoding/binary"
	"net/netip"
)

// TCPMinHeaderLen is the length of a TCP header without options.
const TCPMinHeaderLen = 20

// Field offsets of the TCP header (RFC 9293 section 3.1).
const (
	tcpSrcPort = 0
	tcpDstPort = 2
	tcpSeq     = 4
	tcpAck     = 8
	tcpDataOff = 12
	tcpFlags   = 13
	tcpWindow  = 14
	tcpCsum    = 16
)

// TCP flag bits (RFC 9293 section 3.1).
const (
	TCPFlagFIN = 0x01
	TCPFlagSYN = 0x02
	TCPFlagRST = 0x04
	TCPFlagPSH = 0x08
	TCPFlagACK = 0x10
	TCPFlagURG = 0x20
)

// TCP is a TCP segment (header, options and data) returned by ParseTCP. Its
// length is the transport length that the checksum pseudo-header uses, so
// pass IPv4.Payload() of a non-fragmented packet.
type TCP []byte

// ParseTCP validates b as a TCP segment: at least 20 bytes and a Data Offset
// of at least 5 words that stays within b.
func ParseTCP(b []byte) (TCP, error) {
	if len(b) < TCPMinHeaderLen {
		return nil, ErrShort
	}
	hl := int(b[tcpDataOff]>>4) * 4
	if hl < TCPMinHeaderLen || hl > len(b) {
		return nil, ErrHeaderLen
	}
	return TCP(b), nil
}

// SrcPort is the Source Port.
func (t TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(t[tcpSrcPort:]) }

// DstPort is the Destination Port.
func (t TCP) DstPort() uint16 { return binary.BigEndian.Uint16(t[tcpDstPort:]) }

// SetSrcPort rewrites the Source Port and updates the checksum incrementally.
func (t TCP) SetSrcPort(p uint16) { t.Rewrite16(tcpSrcPort, p) }

// SetDstPort rewrites the Destination Port and updates the checksum incrementally.
func (t TCP) SetDstPort(p uint16) { t.Rewrite16(tcpDstPort, p) }

// Seq is the Sequence Number.
func (t TCP) Seq() uint32 { return binary.BigEndian.Uint32(t[tcpSeq:]) }

// Ack is the Acknowledgment Number.
func (t TCP) Ack() uint32 { return binary.BigEndian.Uint32(t[tcpAck:]) }

// SetSeq rewrites the Sequence Number and updates the checksum incrementally.
func (t TCP) SetSeq(v uint32) { t.rewrite32(tcpSeq, v) }

// SetAck rewrites the Acknowledgment Number and updates the checksum incrementally.
func (t TCP) SetAck(v uint32) { t.rewrite32(tcpAck, v) }

func (t TCP) rewrite32(off int, v uint32) {
	old := binary.BigEndian.Uint32(t[off:])
	binary.BigEndian.PutUint32(t[off:], v)
	t.SetChecksum(UpdateChecksum32(t.Checksum(), old, v))
}

// HeaderLen is the header length in bytes, options included (Data Offset * 4).
// The payload starts here.
func (t TCP) HeaderLen() int { return int(t[tcpDataOff]>>4) * 4 }

// Flags is the flags byte (TCPFlagSYN, ...).
func (t TCP) Flags() uint8 { return t[tcpFlags] }

// Window is the Window field.
func (t TCP) Window() uint16 { return binary.BigEndian.Uint16(t[tcpWindow:]) }

// Checksum is the Checksum field.
func (t TCP) Checksum() uint16 { return binary.BigEndian.Uint16(t[tcpCsum:]) }

// SetChecksum stores v in the Checksum field.
func (t TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(t[tcpCsum:], v) }

// Payload is the data after the header and options.
func (t TCP) Payload() []byte { return t[t.HeaderLen():] }

// ComputeChecksum computes the checksum over the IPv4 pseudo-header for src
// and dst and the whole segment, as if the checksum field were zero.
func (t TCP) ComputeChecksum(src, dst netip.Addr) uint16 {
	return l4Checksum(t, tcpCsum, src, dst, ProtoTCP)
}

// UpdateChecksum recomputes the checksum from scratch and stores it.
func (t TCP) UpdateChecksum(src, dst netip.Addr) { t.SetChecksum(t.ComputeChecksum(src, dst)) }

// ChecksumValid reports whether the stored checksum is right for src and dst.
func (t TCP) ChecksumValid(src, dst netip.Addr) bool {
	return Sum(t, PseudoHeaderSum(src, dst, ProtoTCP, len(t))) == 0xffff
}

// UpdateChecksumAddr updates the checksum after the IPv4 header's source or
// destination changed from old to new (the pseudo-header holds it).
func (t TCP) UpdateChecksumAddr(old, new netip.Addr) {
	t.SetChecksum(UpdateChecksumAddr(t.Checksum(), old, new))
}

// Rewrite16 stores v big-endian at byte offset off of the segment (header or
// payload, any alignment) and updates the checksum incrementally. Use it to
// rewrite a PPTP Call ID inside the TCP payload. The field must not overlap
// the checksum field (offsets 15 to 17).
func (t TCP) Rewrite16(off int, v uint16) {
	old := binary.BigEndian.Uint16(t[off:])
	binary.BigEndian.PutUint16(t[off:], v)
	t.SetChecksum(UpdateChecksumAt(t.Checksum(), off, old, v))
}

// RewriteByte stores v at byte offset off of the segment and updates the
// checksum incrementally: for a field split across two segments.
func (t TCP) RewriteByte(off int, v byte) {
	old := t[off]
	t[off] = v
	t.SetChecksum(UpdateChecksumByte(t.Checksum(), off, old, v))
}

// l4Checksum is the TCP/UDP checksum of seg with the field at csumOff taken
// as zero, over the IPv4 pseudo-header.
func l4Checksum(seg []byte, csumOff int, src, dst netip.Addr, proto uint8) uint16 {
	s := PseudoHeaderSum(src, dst, proto, len(seg))
	s = Sum(seg[:csumOff], s)
	return Checksum(seg[csumOff+2:], s)
}
