package packet

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
const (
	ProtoTCP = 6  // RFC 793
	ProtoUDP = 17 // RFC 768
	ProtoGRE = 47 // RFC 2784
	ProtoESP = 50 // RFC 4303
	ProtoAH  = 51 // RFC 4302
)

// Well-known ports of the VPN protocols this project passes through.
const (
	PortIKE  = 500  // RFC 7296 section 2
	PortL2TP = 1701 // RFC 2661 section 8.1
	PortPPTP = 1723 // RFC 2637 section 2
	PortNATT = 4500 // RFC 3948 section 2
)

// IPv4MinHeaderLen is the length of an IPv4 header without options.
const IPv4MinHeaderLen = 20

// Field offsets of the IPv4 header (RFC 791 section 3.1).
const (
	ipv4VerIHL   = 0
	ipv4TotalLen = 2
	ipv4ID       = 4
	ipv4FlagsOff = 6
	ipv4TTL      = 8
	ipv4Proto    = 9
	ipv4Csum     = 10
	ipv4Src      = 12
	ipv4Dst      = 16

	ipv4FlagDF     = 0x4000
	ipv4FlagMF     = 0x2000
	ipv4FragOffMsk = 0x1fff
)

// IPv4 is an IPv4 packet (RFC 791) returned by ParseIPv4: header, options and
// payload, cut to the header's Total Length.
type IPv4 []byte

// ParseIPv4 validates b as one IPv4 packet: version 4, IHL at least 5 and
// within b, Total Length at least the header and at most len(b). It returns b
// cut to Total Length, so link-layer padding after the packet is not payload.
// It does not verify the header checksum (see ChecksumValid): the kernel has
// already checked packets that arrive through NFQUEUE.
func ParseIPv4(b []byte) (IPv4, error) {
	if len(b) < IPv4MinHeaderLen {
		return nil, ErrShort
	}
	if b[ipv4VerIHL]>>4 != 4 {
		return nil, ErrVersion
	}
	hl := int(b[ipv4VerIHL]&0x0f) * 4
	if hl < IPv4MinHeaderLen || hl > len(b) {
		return nil, ErrHeaderLen
	}
	tl := int(binary.BigEndian.Uint16(b[ipv4TotalLen:]))
	if tl < hl {
		return nil, ErrLength
	}
	if tl > len(b) {
		return nil, ErrShort
	}
	return IPv4(b[:tl]), nil
}

// HeaderLen is the header length in bytes, options included (IHL * 4).
func (ip IPv4) HeaderLen() int { return int(ip[ipv4VerIHL]&0x0f) * 4 }

// TotalLen is the Total Length field: header plus payload in bytes.
func (ip IPv4) TotalLen() int { return int(binary.BigEndian.Uint16(ip[ipv4TotalLen:])) }

// ID is the Identification field.
func (ip IPv4) ID() uint16 { return binary.BigEndian.Uint16(ip[ipv4ID:]) }

// DontFragment reports the DF flag.
func (ip IPv4) DontFragment() bool {
	return binary.BigEndian.Uint16(ip[ipv4FlagsOff:])&ipv4FlagDF != 0
}

// MoreFragments reports the MF flag.
func (ip IPv4) MoreFragments() bool {
	return binary.BigEndian.Uint16(ip[ipv4FlagsOff:])&ipv4FlagMF != 0
}

// FragOffset is the Fragment Offset in bytes (the field counts 8-byte units).
// A non-zero offset means the payload does not start with the transport
// header: engines must not parse it and should pass it on.
func (ip IPv4) FragOffset() int {
	return int(binary.BigEndian.Uint16(ip[ipv4FlagsOff:])&ipv4FragOffMsk) * 8
}

// IsFragment reports whether the packet is part of a fragmented datagram
// (MF set or a non-zero offset). A first fragment (offset 0, MF set) starts
// with the transport header but does not hold the whole datagram.
func (ip IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(ip[ipv4FlagsOff:])&(ipv4FlagMF|ipv4FragOffMsk) != 0
}

// TTL is the Time to Live field.
func (ip IPv4) TTL() uint8 { return ip[ipv4TTL] }

// Protocol is the Protocol field (ProtoTCP, ProtoGRE, ...).
func (ip IPv4) Protocol() uint8 { return ip[ipv4Proto] }

// Checksum is the Header Checksum field.
func (ip IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(ip[ipv4Csum:]) }

// SetChecksum stores v in the Header Checksum field.
func (ip IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(ip[ipv4Csum:], v) }

// ComputeChecksum computes the header checksum over the header and options as
// if the checksum field were zero.
func (ip IPv4) ComputeChecksum() uint16 {
	hl := ip.HeaderLen()
	s := Sum(ip[:ipv4Csum], 0)
	return Checksum(ip[ipv4Csum+2:hl], s)
}

// UpdateChecksum recomputes the header checksum from scratch and stores it.
func (ip IPv4) UpdateChecksum() { ip.SetChecksum(ip.ComputeChecksum()) }

// ChecksumValid reports whether the stored header checksum is correct.
func (ip IPv4) ChecksumValid() bool { return Sum(ip[:ip.HeaderLen()], 0) == 0xffff }

// Src is the Source Address.
func (ip IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(ip[ipv4Src : ipv4Src+4])) }

// Dst is the Destination Address.
func (ip IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(ip[ipv4Dst : ipv4Dst+4])) }

// SetSrc rewrites the Source Address and updates the header checksum
// incrementally. The TCP or UDP checksum covers the address through its
// pseudo-header: update it too (TCP.UpdateChecksumAddr, UDP.UpdateChecksumAddr).
// a must be IPv4 (or 4-in-6); otherwise SetSrc panics.
func (ip IPv4) SetSrc(a netip.Addr) { ip.setAddr(ipv4Src, a) }

// SetDst is SetSrc for the Destination Address.
func (ip IPv4) SetDst(a netip.Addr) { ip.setAddr(ipv4Dst, a) }

func (ip IPv4) setAddr(off int, a netip.Addr) {
	n := a.As4()
	old := binary.BigEndian.Uint32(ip[off:])
	nv := binary.BigEndian.Uint32(n[:])
	binary.BigEndian.PutUint32(ip[off:], nv)
	ip.SetChecksum(UpdateChecksum32(ip.Checksum(), old, nv))
}

// Payload is the data after the header and options, up to Total Length.
func (ip IPv4) Payload() []byte { return ip[ip.HeaderLen():] }

// PseudoHeaderSum is the sum of this packet's pseudo-header for its protocol
// and payload length (see the package function PseudoHeaderSum).
func (ip IPv4) PseudoHeaderSum() uint16 {
	return PseudoHeaderSum(ip.Src(), ip.Dst(), ip.Protocol(), len(ip)-ip.HeaderLen())
}
