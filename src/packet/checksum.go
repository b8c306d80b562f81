package packet

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Sum returns the 16-bit ones'-complement sum of b (RFC 1071 section 4.1)
// added to initial, not complemented. A trailing odd byte is padded with a
// zero low byte. Chain calls to sum discontiguous regions, but every region
// except the last must have an even length.
func Sum(b []byte, initial uint16) uint16 {
	// Adding 32-bit big-endian words into a 64-bit accumulator and folding
	// at the end gives the same ones'-complement sum as adding 16-bit words
	// (RFC 1071 section 2(B), byte-order and width independence).
	acc := uint64(initial)
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return fold64(acc)
}

// Checksum returns the Internet checksum of b: the complement of Sum(b, initial).
func Checksum(b []byte, initial uint16) uint16 {
	return ^Sum(b, initial)
}

// fold64 folds a 64-bit accumulator into 16 bits with end-around carry.
func fold64(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// add16 is ones'-complement addition of two 16-bit values.
func add16(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s>>16 + s&0xffff)
}

// UpdateChecksum16 returns csum after a 16-bit word at an even offset of the
// checksummed data changed from old to new, using RFC 1624 eqn. 3,
// HC' = ~(~HC + ~m + m'), which avoids the -0/+0 ambiguity of eqn. 2.
func UpdateChecksum16(csum, old, new uint16) uint16 {
	return ^add16(add16(^csum, ^old), new)
}

// UpdateChecksum32 is UpdateChecksum16 for a 32-bit field at an even offset
// (an IPv4 address, a TCP sequence number).
func UpdateChecksum32(csum uint16, old, new uint32) uint16 {
	s := add16(^csum, ^uint16(old>>16))
	s = add16(s, ^uint16(old))
	s = add16(s, uint16(new>>16))
	s = add16(s, uint16(new))
	return ^s
}

// UpdateChecksumAt is UpdateChecksum16 for a 16-bit field at byte offset off
// of the checksummed data, which may be odd: a PPTP Call ID in a TCP segment
// lands on an odd offset whenever an earlier segment ended mid-message. On an
// odd offset the field's bytes straddle two words, which in ones'-complement
// arithmetic is the same as adding the byte-swapped value (RFC 1071 2(B)).
func UpdateChecksumAt(csum uint16, off int, old, new uint16) uint16 {
	if off&1 != 0 {
		old, new = bits.ReverseBytes16(old), bits.ReverseBytes16(new)
	}
	return UpdateChecksum16(csum, old, new)
}

// UpdateChecksumByte is UpdateChecksumAt for a single byte at offset off.
func UpdateChecksumByte(csum uint16, off int, old, new byte) uint16 {
	if off&1 == 0 {
		return UpdateChecksum16(csum, uint16(old)<<8, uint16(new)<<8)
	}
	return UpdateChecksum16(csum, uint16(old), uint16(new))
}

// UpdateChecksumAddr returns csum after an address covered by it changed from
// old to new: the IPv4 header checksum, or a TCP/UDP checksum whose
// pseudo-header (RFC 793 section 3.1, RFC 768) holds the address. Both
// addresses must be of the same family; a 4-in-6 address counts as IPv4.
func UpdateChecksumAddr(csum uint16, old, new netip.Addr) uint16 {
	if old.Is4() || old.Is4In6() {
		o, n := old.As4(), new.As4()
		return UpdateChecksum32(csum, binary.BigEndian.Uint32(o[:]), binary.BigEndian.Uint32(n[:]))
	}
	o, n := old.As16(), new.As16()
	for i := 0; i < 16; i += 4 {
		csum = UpdateChecksum32(csum, binary.BigEndian.Uint32(o[i:]), binary.BigEndian.Uint32(n[i:]))
	}
	return csum
}

// PseudoHeaderSum returns the ones'-complement sum of the IPv4 pseudo-header
// (RFC 793 section 3.1, RFC 768): source, destination, zero, protocol and
// transport length. Use it as the initial value of Sum over the segment.
func PseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint16 {
	s, d := src.As4(), dst.As4()
	acc := uint64(binary.BigEndian.Uint32(s[:])) + uint64(binary.BigEndian.Uint32(d[:])) +
		uint64(proto) + uint64(uint16(length))
	return fold64(acc)
}
