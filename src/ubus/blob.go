package ubus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/vpn-passthrough/vpn-passthrough/src/jsondec"
	"github.com/vpn-passthrough/vpn-passthrough/src/jsonenc"
)

// Blob attribute header bits (libubox blob.h).
const (
	blobExtended = 0x80000000
	blobIDMask   = 0x7f000000
	blobIDShift  = 24
	blobLenMask  = 0x00ffffff
	blobHdrLen   = 4
)

// blobmsg types (libubox blobmsg.h).
const (
	TypeUnspec = 0
	TypeArray  = 1
	TypeTable  = 2
	TypeString = 3
	TypeInt64  = 4
	TypeInt32  = 5
	TypeInt16  = 6
	TypeInt8   = 7 // also bool
	TypeDouble = 8
)

// ErrMalformed reports bytes that are not a well-formed blob.
var ErrMalformed = errors.New("ubus: malformed blob")

// maxDepth bounds nesting, so a hostile message cannot exhaust the stack.
const maxDepth = 32

func align4(n int) int { return (n + 3) &^ 3 }

// Attr is one blob attribute.
type Attr struct {
	ID       int
	Extended bool
	Data     []byte // payload, without padding
}

// ParseAttrs splits b into attributes. Trailing padding is allowed; a
// length that does not fit is an error.
func ParseAttrs(b []byte) ([]Attr, error) {
	var out []Attr
	for len(b) > 0 {
		if len(b) < blobHdrLen {
			return nil, ErrMalformed
		}
		h := binary.BigEndian.Uint32(b)
		n := int(h & blobLenMask)
		if n < blobHdrLen || n > len(b) {
			return nil, ErrMalformed
		}
		out = append(out, Attr{ID: int(h&blobIDMask) >> blobIDShift, Extended: h&blobExtended != 0, Data: b[blobHdrLen:n]})
		p := align4(n)
		if p > len(b) {
			p = len(b)
		}
		b = b[p:]
	}
	return out, nil
}

// AppendAttr appends one attribute (header, payload, padding) to b.
func AppendAttr(b []byte, id int, extended bool, data []byte) []byte {
	h := uint32(id)<<blobIDShift&blobIDMask | uint32(blobHdrLen+len(data))&blobLenMask
	if extended {
		h |= blobExtended
	}
	b = binary.BigEndian.AppendUint32(b, h)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Field is one blobmsg attribute, decoded.
type Field struct {
	Name  string
	Type  int
	Value any // nil, string, bool/int8, int16, int32, int64, float64, []Field (table or array)
}

// ParseFields decodes a run of blobmsg attributes (the inside of a table or
// an array).
func ParseFields(b []byte) ([]Field, error) { return parseFields(b, 0) }

func parseFields(b []byte, depth int) ([]Field, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
	}
	attrs, err := ParseAttrs(b)
	if err != nil {
		return nil, err
	}
	out := make([]Field, 0, len(attrs))
	for _, a := range attrs {
		if !a.Extended {
			return nil, fmt.Errorf("%w: blobmsg attribute without the extended bit", ErrMalformed)
		}
		d := a.Data
		if len(d) < 3 {
			return nil, ErrMalformed
		}
		nl := int(binary.BigEndian.Uint16(d))
		hl := align4(2 + nl + 1)
		if hl > len(d) || d[2+nl] != 0 {
			return nil, fmt.Errorf("%w: bad blobmsg name", ErrMalformed)
		}
		f := Field{Name: string(d[2 : 2+nl]), Type: a.ID}
		v := d[hl:]
		switch a.ID {
		case TypeUnspec:
		case TypeString:
			if len(v) == 0 || v[len(v)-1] != 0 {
				return nil, fmt.Errorf("%w: string %q not NUL-terminated", ErrMalformed, f.Name)
			}
			f.Value = string(v[:len(v)-1])
		case TypeInt8:
			if len(v) < 1 {
				return nil, ErrMalformed
			}
			f.Value = v[0] != 0
		case TypeInt16:
			if len(v) < 2 {
				return nil, ErrMalformed
			}
			f.Value = int16(binary.BigEndian.Uint16(v))
		case TypeInt32:
			if len(v) < 4 {
				return nil, ErrMalformed
			}
			f.Value = int32(binary.BigEndian.Uint32(v))
		case TypeInt64:
			if len(v) < 8 {
				return nil, ErrMalformed
			}
			f.Value = int64(binary.BigEndian.Uint64(v))
		case TypeDouble:
			if len(v) < 8 {
				return nil, ErrMalformed
			}
			f.Value = math.Float64frombits(binary.BigEndian.Uint64(v))
		case TypeTable, TypeArray:
			sub, err := parseFields(v, depth+1)
			if err != nil {
				return nil, err
			}
			f.Value = sub
		default:
			return nil, fmt.Errorf("%w: unknown blobmsg type %d", ErrMalformed, a.ID)
		}
		out = append(out, f)
	}
	return out, nil
}

// AppendField appends one blobmsg attribute.
func AppendField(b []byte, f Field) []byte {
	hl := align4(2 + len(f.Name) + 1)
	d := make([]byte, hl, hl+16)
	binary.BigEndian.PutUint16(d, uint16(len(f.Name)))
	copy(d[2:], f.Name)
	switch v := f.Value.(type) {
	case nil:
	case string:
		d = append(append(d, v...), 0)
	case bool:
		x := byte(0)
		if v {
			x = 1
		}
		d = append(d, x)
	case int16:
		d = binary.BigEndian.AppendUint16(d, uint16(v))
	case int32:
		d = binary.BigEndian.AppendUint32(d, uint32(v))
	case int64:
		d = binary.BigEndian.AppendUint64(d, uint64(v))
	case float64:
		d = binary.BigEndian.AppendUint64(d, math.Float64bits(v))
	case []Field:
		for _, sub := range v {
			d = AppendField(d, sub)
		}
	}
	return AppendAttr(b, f.Type, true, d)
}

// FromJSON turns a JSON value into blobmsg fields of a table, the way
// libubox's blobmsg_add_json does: objects become tables, arrays arrays,
// integers int32 (int64 when they do not fit), other numbers doubles,
// true/false int8, null unspec. Keys keep a stable (sorted) order.
func FromJSON(js []byte) ([]Field, error) {
	var v any
	if err := jsondec.UnmarshalUseNumber(js, &v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("ubus: a reply must be a JSON object")
	}
	return tableOf(m), nil
}

func tableOf(m map[string]any) []Field {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Field, 0, len(keys))
	for _, k := range keys {
		out = append(out, fieldOf(k, m[k]))
	}
	return out
}

func fieldOf(name string, v any) Field {
	switch x := v.(type) {
	case nil:
		return Field{Name: name, Type: TypeUnspec}
	case string:
		return Field{Name: name, Type: TypeString, Value: x}
	case bool:
		return Field{Name: name, Type: TypeInt8, Value: x}
	case jsondec.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			if i >= math.MinInt32 && i <= math.MaxInt32 {
				return Field{Name: name, Type: TypeInt32, Value: int32(i)}
			}
			return Field{Name: name, Type: TypeInt64, Value: i}
		}
		f, _ := x.Float64()
		return Field{Name: name, Type: TypeDouble, Value: f}
	case map[string]any:
		return Field{Name: name, Type: TypeTable, Value: tableOf(x)}
	case []any:
		sub := make([]Field, 0, len(x))
		for _, e := range x {
			sub = append(sub, fieldOf("", e))
		}
		return Field{Name: name, Type: TypeArray, Value: sub}
	}
	return Field{Name: name, Type: TypeString, Value: fmt.Sprint(v)}
}

// ToJSON turns fields of a table back into a Go value for JSON (src/jsonenc):
// tables become map[string]any, arrays []any.
func ToJSON(fs []Field, table bool) any {
	if !table {
		out := make([]any, 0, len(fs))
		for _, f := range fs {
			out = append(out, valueOf(f))
		}
		return out
	}
	out := make(map[string]any, len(fs))
	for _, f := range fs {
		out[f.Name] = valueOf(f)
	}
	return out
}

func valueOf(f Field) any {
	if sub, ok := f.Value.([]Field); ok {
		return ToJSON(sub, f.Type == TypeTable)
	}
	return f.Value
}

// Marshal encodes v (anything src/jsonenc takes that is an object) as
// the fields of a blobmsg table.
func Marshal(v any) ([]byte, error) {
	js, err := jsonenc.Marshal(v)
	if err != nil {
		return nil, err
	}
	fs, err := FromJSON(js)
	if err != nil {
		return nil, err
	}
	var b []byte
	for _, f := range fs {
		b = AppendField(b, f)
	}
	return b, nil
}
