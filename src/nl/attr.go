package nl

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Attrs is a run of netlink attributes being built: each a 4-byte header
// (length and type in host byte order), the data, padding to 4 bytes.
// Integers are written big-endian, as nf_tables and ctnetlink want them.
type Attrs []byte

// MaxAttr is the most data one attribute holds (its length is 16 bits).
const MaxAttr = 0xffff - 4

// Add appends an attribute holding data. More than MaxAttr bytes is a bug
// of the caller, who must split (the length would wrap, and the kernel
// read a shorter attribute than was meant): it panics rather than send it.
func (a Attrs) Add(typ uint16, data []byte) Attrs {
	if len(data) > MaxAttr {
		panic(fmt.Sprintf("nl: attribute %d of %d bytes", typ, len(data)))
	}
	a = binary.NativeEndian.AppendUint16(a, uint16(4+len(data)))
	a = binary.NativeEndian.AppendUint16(a, typ)
	a = append(a, data...)
	for len(a)%4 != 0 {
		a = append(a, 0)
	}
	return a
}

func (a Attrs) U8(typ uint16, v uint8) Attrs { return a.Add(typ, []byte{v}) }
func (a Attrs) U16(typ uint16, v uint16) Attrs {
	return a.Add(typ, binary.BigEndian.AppendUint16(nil, v))
}
func (a Attrs) U32(typ uint16, v uint32) Attrs {
	return a.Add(typ, binary.BigEndian.AppendUint32(nil, v))
}
func (a Attrs) U64(typ uint16, v uint64) Attrs {
	return a.Add(typ, binary.BigEndian.AppendUint64(nil, v))
}

// Str appends a NUL-terminated string.
func (a Attrs) Str(typ uint16, s string) Attrs { return a.Add(typ, append([]byte(s), 0)) }

// Nest appends in as a nested attribute.
func (a Attrs) Nest(typ uint16, in Attrs) Attrs { return a.Add(unix.NLA_F_NESTED|typ, in) }

// ErrAttr is an attribute whose length does not fit its message.
var ErrAttr = errors.New("netlink: bad attribute length")

// Walk calls f on each attribute of b, with its type without the nested
// and byte-order flags, and stops at f's first error. Bytes left over that
// are no attribute are an error.
func Walk(b []byte, f func(typ uint16, data []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return ErrAttr
		}
		size := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if size < 4 || size > len(b) {
			return ErrAttr
		}
		if err := f(typ, b[4:size]); err != nil {
			return err
		}
		b = b[min(Align(size), len(b)):]
	}
	return nil
}

// Uint reads a big-endian integer of 1, 2, 4 or 8 bytes; ok is false for
// any other length.
func Uint(b []byte) (v uint64, ok bool) {
	switch len(b) {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), true
	case 4:
		return uint64(binary.BigEndian.Uint32(b)), true
	case 8:
		return binary.BigEndian.Uint64(b), true
	}
	return 0, false
}

// String reads a NUL-terminated string attribute.
func String(b []byte) string {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}
