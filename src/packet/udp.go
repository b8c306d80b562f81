package packet

import (
	"encoding/binary"
	"net/netip"
)

// UDPHeaderLen is the length of the UDP header.
const UDPHeaderLen = 8

// Field offsets of the UDP header (RFC 768).
const (
	udpSrcPort = 0
	udpDstPort = 2
	udpLength  = 4
	udpCsum    = 6
)

// UDP is a UDP datagram (header and data) returned by ParseUDP, cut to the
// header's Length field.
//
// On IPv4 a checksum of zero means "not computed" (RFC 768). Rewrites keep a
// zero checksum zero, and a computed checksum of zero is sent as 0xFFFF.
type UDP []byte

// ParseUDP validates b as a UDP datagram: at least 8 bytes, and a Length
// field of at least 8 that does not exceed b. It returns b cut to Length.
func ParseUDP(b []byte) (UDP, error) {
	if len(b) < UDPHeaderLen {
		return nil, ErrShort
	}
	n := int(binary.BigEndian.Uint16(b[udpLength:]))
	if n < UDPHeaderLen {
		return nil, ErrLength
	}
	if n > len(b) {
		return nil, ErrShort
	}
	return UDP(b[:n]), nil
}

// SrcPort is the Source Port.
func (u UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(u[udpSrcPort:]) }

// DstPort is the Destination Port.
func (u UDP) DstPort() uint16 { return binary.BigEndian.Uint16(u[udpDstPort:]) }

// SetSrcPort rewrites the Source Port and updates a non-zero checksum.
func (u UDP) SetSrcPort(p uint16) { u.Rewrite16(udpSrcPort, p) }

// SetDstPort rewrites the Destination Port and updates a non-zero checksum.
func (u UDP) SetDstPort(p uint16) { u.Rewrite16(udpDstPort, p) }

// Length is the Length field: header plus data in bytes.
func (u UDP) Length() int { return int(binary.BigEndian.Uint16(u[udpLength:])) }

// HeaderLen is always UDPHeaderLen; it is here for symmetry with TCP.
func (u UDP) HeaderLen() int { return UDPHeaderLen }

// Checksum is the Checksum field; 0 means none.
func (u UDP) Checksum() uint16 { return binary.BigEndian.Uint16(u[udpCsum:]) }

// SetChecksum stores v in the Checksum field as is.
func (u UDP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(u[udpCsum:], v) }

// Payload is the data after the header, up to Length.
func (u UDP) Payload() []byte { return u[UDPHeaderLen:] }

// ComputeChecksum computes the checksum over the IPv4 pseudo-header and the
// datagram, as if the checksum field were zero. It never returns 0: a
// computed zero is transmitted as 0xFFFF (RFC 768).
func (u UDP) ComputeChecksum(src, dst netip.Addr) uint16 {
	return nonZero(l4Checksum(u, udpCsum, src, dst, ProtoUDP))
}

// UpdateChecksum recomputes the checksum from scratch and stores it. It
// computes one even when the stored checksum is zero.
func (u UDP) UpdateChecksum(src, dst netip.Addr) { u.SetChecksum(u.ComputeChecksum(src, dst)) }

// ChecksumValid reports whether the checksum is absent (zero) or right for
// src and dst.
func (u UDP) ChecksumValid(src, dst netip.Addr) bool {
	return u.Checksum() == 0 || Sum(u, PseudoHeaderSum(src, dst, ProtoUDP, len(u))) == 0xffff
}

// UpdateChecksumAddr updates a non-zero checksum after the IPv4 source or
// destination changed from old to new.
func (u UDP) UpdateChecksumAddr(old, new netip.Addr) {
	if c := u.Checksum(); c != 0 {
		u.SetChecksum(nonZero(UpdateChecksumAddr(c, old, new)))
	}
}

// Rewrite16 stores v big-endian at byte offset off of the datagram (header
// or payload, any alignment) and updates a non-zero checksum. The field must
// not overlap the checksum field (offsets 5 to 7).
func (u UDP) Rewrite16(off int, v uint16) {
	old := binary.BigEndian.Uint16(u[off:])
	binary.BigEndian.PutUint16(u[off:], v)
	if c := u.Checksum(); c != 0 {
		u.SetChecksum(nonZero(UpdateChecksumAt(c, off, old, v)))
	}
}

// nonZero maps a computed UDP checksum of 0 to 0xFFFF, its other
// ones'-complement representation, because 0 on the wire means "none".
func nonZero(c uint16) uint16 {
	if c == 0 {
		return 0xffff
	}
	return c
}
