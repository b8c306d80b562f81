// Package gunzip decompresses a whole gzip file held in memory (RFC 1952
// around RFC 1951 deflate). It exists for one caller, the probe's read of
// /proc/config.gz, in place of compress/gzip, which costs ~70 KB of the
// mipsel binary for a file OpenWrt kernels rarely expose. It decodes a bit
// at a time, simple rather than fast: fine for a 40 KB file read at start.
package gunzip

import (
	"errors"
	"hash/crc32"
)

var (
	ErrHeader   = errors.New("gunzip: not a gzip file (bad header)")
	ErrTrailer  = errors.New("gunzip: checksum or length mismatch")
	ErrCorrupt  = errors.New("gunzip: corrupt deflate data")
	ErrTruncate = errors.New("gunzip: unexpected end of data")
)

// Gunzip decompresses the first gzip member of in, at most limit bytes of
// output (the rest is not decoded, and not checked). On an error it returns
// what was decoded before it, as a streaming reader would have delivered.
func Gunzip(in []byte, limit int) ([]byte, error) {
	limit = max(limit, 0)
	p, err := header(in)
	if err != nil {
		return nil, err
	}
	s := &state{in: in, pos: p, limit: limit}
	if err := s.inflate(); err != nil {
		return s.out, err
	}
	if len(s.out) >= limit {
		return s.out[:limit], nil
	}
	t := s.pos // inflate leaves pos at the byte after the last block
	if len(in)-t < 8 {
		return s.out, ErrTruncate
	}
	crc, size := le32(in[t:]), le32(in[t+4:])
	if crc != crc32.ChecksumIEEE(s.out) || size != uint32(len(s.out)) {
		return s.out, ErrTrailer
	}
	return s.out, nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// header checks the gzip header and returns where the deflate data starts.
// It accepts what compress/gzip accepts: reserved flag bits are ignored, a
// name or comment may be 511 bytes at most, a header CRC must match.
func header(in []byte) (int, error) {
	const (
		fhcrc    = 1 << 1
		fextra   = 1 << 2
		fname    = 1 << 3
		fcomment = 1 << 4
	)
	if len(in) < 10 || in[0] != 0x1f || in[1] != 0x8b || in[2] != 8 {
		return 0, ErrHeader
	}
	flg, p := in[3], 10
	if flg&fextra != 0 {
		if len(in) < p+2 {
			return 0, ErrHeader
		}
		p += 2 + (int(in[p]) | int(in[p+1])<<8)
	}
	for _, f := range []byte{fname, fcomment} {
		if flg&f == 0 {
			continue
		}
		n := 0
		for p+n < len(in) && in[p+n] != 0 && n < 511 {
			n++
		}
		if p+n >= len(in) || in[p+n] != 0 {
			return 0, ErrHeader
		}
		p += n + 1
	}
	if flg&fhcrc != 0 {
		if len(in) < p+2 || uint16(crc32.ChecksumIEEE(in[:p])) != uint16(in[p])|uint16(in[p+1])<<8 {
			return 0, ErrHeader
		}
		p += 2
	}
	if p > len(in) {
		return 0, ErrHeader
	}
	return p, nil
}

// state is a deflate decoder over in from pos, bits taken LSB first.
type state struct {
	in     []byte
	pos    int
	bitbuf uint32
	bitcnt uint
	out    []byte
	limit  int
}

func (s *state) bits(n uint) (int, error) {
	for s.bitcnt < n {
		if s.pos >= len(s.in) {
			return 0, ErrTruncate
		}
		s.bitbuf |= uint32(s.in[s.pos]) << s.bitcnt
		s.pos++
		s.bitcnt += 8
	}
	v := s.bitbuf & (1<<n - 1)
	s.bitbuf >>= n
	s.bitcnt -= n
	return int(v), nil
}

// huffman is a canonical code: how many codes of each length, and the
// symbols in code order.
type huffman struct {
	count  [16]uint16
	symbol [288]uint16
}

// build makes h from code lengths. As in zlib and compress/flate, the set
// must be complete, empty, or a single code of length 1.
func (h *huffman) build(lengths []uint8) error {
	*h = huffman{}
	for _, l := range lengths {
		h.count[l]++
	}
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - int(h.count[l])
		if left < 0 {
			return ErrCorrupt // over-subscribed
		}
	}
	if codes := len(lengths) - int(h.count[0]); left != 0 && codes != 0 && !(codes == 1 && h.count[1] == 1) {
		return ErrCorrupt // incomplete
	}
	var offs [16]uint16
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = uint16(sym)
			offs[l]++
		}
	}
	return nil
}

// decode reads one symbol: codes are compared length by length against the
// first code of that length.
func (s *state) decode(h *huffman) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := s.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		count := int(h.count[l])
		if code-count < first {
			return int(h.symbol[index+code-first]), nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, ErrCorrupt
}

var (
	lenBase   = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra  = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// Order of the code length code lengths in a dynamic block header.
	clOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// inflate decodes blocks until the final one or the output limit.
func (s *state) inflate() error {
	for len(s.out) < s.limit {
		last, err := s.bits(1)
		if err != nil {
			return err
		}
		typ, err := s.bits(2)
		if err != nil {
			return err
		}
		switch typ {
		case 0:
			err = s.stored()
		case 1:
			err = s.fixed()
		case 2:
			err = s.dynamic()
		default:
			err = ErrCorrupt
		}
		if err != nil || last == 1 {
			return err
		}
	}
	return nil
}

func (s *state) stored() error {
	s.bitbuf, s.bitcnt = 0, 0 // to the byte boundary
	if len(s.in)-s.pos < 4 {
		return ErrTruncate
	}
	n := int(s.in[s.pos]) | int(s.in[s.pos+1])<<8
	if ^n&0xffff != int(s.in[s.pos+2])|int(s.in[s.pos+3])<<8 {
		return ErrCorrupt
	}
	s.pos += 4
	if len(s.in)-s.pos < n {
		s.out = append(s.out, s.in[s.pos:]...)
		return ErrTruncate
	}
	s.out = append(s.out, s.in[s.pos:s.pos+n]...)
	s.pos += n
	return nil
}

func (s *state) fixed() error {
	// 32 distance codes of 5 bits: 30 and 31 are invalid but take part in
	// the code (RFC 1951 3.2.6), which so is complete.
	var lengths [288 + 32]uint8
	for i := range lengths {
		switch {
		case i < 144:
			lengths[i] = 8
		case i < 256:
			lengths[i] = 9
		case i < 280:
			lengths[i] = 7
		case i < 288:
			lengths[i] = 8
		default:
			lengths[i] = 5
		}
	}
	var lit, dist huffman
	lit.build(lengths[:288])
	dist.build(lengths[288:])
	return s.codes(&lit, &dist)
}

func (s *state) dynamic() error {
	nlen, err := s.bits(5)
	if err != nil {
		return err
	}
	ndist, err := s.bits(5)
	if err != nil {
		return err
	}
	ncode, err := s.bits(4)
	if err != nil {
		return err
	}
	nlen, ndist, ncode = nlen+257, ndist+1, ncode+4
	if nlen > 286 || ndist > 30 {
		return ErrCorrupt
	}
	var lengths [286 + 30]uint8
	for i := 0; i < ncode; i++ {
		v, err := s.bits(3)
		if err != nil {
			return err
		}
		lengths[clOrder[i]] = uint8(v)
	}
	var cl huffman
	if err := cl.build(lengths[:19]); err != nil {
		return err
	}
	lengths = [286 + 30]uint8{}
	for i := 0; i < nlen+ndist; {
		sym, err := s.decode(&cl)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return ErrCorrupt
			}
			val = lengths[i-1]
			rep, err = s.bits(2)
			rep += 3
		case 17:
			rep, err = s.bits(3)
			rep += 3
		default:
			rep, err = s.bits(7)
			rep += 11
		}
		if err != nil {
			return err
		}
		if i+rep > nlen+ndist {
			return ErrCorrupt
		}
		for ; rep > 0; rep-- {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 {
		return ErrCorrupt // no end-of-block code
	}
	var lit, dist huffman
	if err := lit.build(lengths[:nlen]); err != nil {
		return err
	}
	if err := dist.build(lengths[nlen : nlen+ndist]); err != nil {
		return err
	}
	return s.codes(&lit, &dist)
}

// codes decodes literals and back-references until end of block.
func (s *state) codes(lit, dist *huffman) error {
	for len(s.out) < s.limit {
		sym, err := s.decode(lit)
		if err != nil {
			return err
		}
		if sym < 256 {
			s.out = append(s.out, byte(sym))
			continue
		}
		if sym == 256 {
			return nil
		}
		sym -= 257
		if sym >= len(lenBase) {
			return ErrCorrupt
		}
		extra, err := s.bits(uint(lenExtra[sym]))
		if err != nil {
			return err
		}
		n := int(lenBase[sym]) + extra
		d, err := s.decode(dist)
		if err != nil {
			return err
		}
		if d >= len(distBase) {
			return ErrCorrupt
		}
		if extra, err = s.bits(uint(distExtra[d])); err != nil {
			return err
		}
		back := int(distBase[d]) + extra
		if back > len(s.out) {
			return ErrCorrupt
		}
		for ; n > 0; n-- { // byte by byte: the copy may overlap itself
			s.out = append(s.out, s.out[len(s.out)-back])
		}
	}
	return nil
}
