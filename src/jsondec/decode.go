// Package jsondec reads JSON into Go values the way encoding/json's
// Unmarshal does, for what the daemon reads back: its state files, the
// status socket's answer and ubus replies. It exists for size: encoding/json's
// decoder costs ~68 KB of the mipsel binary, this one ~31 KB, on the
// reflect package that fmt links already (src/jsonenc is its encoder).
//
// What it takes: objects into structs (fields by their `json` tag, else by
// name; exact match first, then case-insensitive; `json:"-"` skipped;
// unknown keys ignored; fields of embedded structs promoted), maps with
// string keys, slices, arrays, pointers (allocated as needed; null sets them
// nil), strings, booleans, numbers into ints, uints and floats (with range
// checks), encoding.TextUnmarshaler (netip.Addr, time.Time) from strings,
// and any, as map[string]any, []any, float64 (or Number), string, bool or
// nil. What it does not: the `,string` option, []byte as base64, and
// json.Unmarshaler; a value of the wrong type is an error, where
// encoding/json skips it and reports the first such error at the end. The
// tests compare it with encoding/json on the daemon's types and on fuzzed
// input.
package jsondec

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Number is a JSON number as written, for UnmarshalUseNumber.
type Number string

// Float64 is the number as a float64.
func (n Number) Float64() (float64, error) { return strconv.ParseFloat(string(n), 64) }

// Unmarshal parses data, one JSON value with optional white space around it,
// into the value v points to.
func Unmarshal(data []byte, v any) error { return unmarshal(data, v, false) }

// UnmarshalUseNumber is Unmarshal, but numbers decoded into an interface
// value are Numbers instead of float64s (encoding/json's UseNumber).
func UnmarshalUseNumber(data []byte, v any) error { return unmarshal(data, v, true) }

func unmarshal(data []byte, v any, useNumber bool) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("jsondec: Unmarshal needs a non-nil pointer")
	}
	d := &decoder{data: data, useNumber: useNumber}
	if err := d.value(rv.Elem(), 0); err != nil {
		return err
	}
	d.space()
	if d.pos < len(d.data) {
		return d.errorf("data after the top-level value")
	}
	return nil
}

// maxDepth bounds nesting, as encoding/json does (it allows 10000).
const maxDepth = 10000

type decoder struct {
	data      []byte
	pos       int
	useNumber bool
}

func (d *decoder) errorf(format string, a ...any) error {
	return fmt.Errorf("jsondec: offset %d: %s", d.pos, fmt.Sprintf(format, a...))
}

func (d *decoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// value parses the next value into v; an invalid v (an unknown key's
// value) parses it and throws it away.
func (d *decoder) value(v reflect.Value, depth int) error {
	if depth > maxDepth {
		return d.errorf("nested too deeply")
	}
	d.space()
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end of input")
	}
	c := d.data[d.pos]
	if c == 'n' {
		if err := d.literal("null"); err != nil {
			return err
		}
		if v.IsValid() {
			switch v.Kind() {
			case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
				v.SetZero()
			}
		}
		return nil
	}
	if v.IsValid() {
		// Pointers are allocated on the way down (null was handled above).
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		if v.CanAddr() && v.Kind() != reflect.Interface && v.Addr().Type().Implements(textUnmarshaler) {
			if c != '"' {
				return d.errorf("want a string for %s", v.Type())
			}
			s, err := d.str()
			if err != nil {
				return err
			}
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
				return fmt.Errorf("jsondec: %s: %w", v.Type(), err)
			}
			return nil
		}
		if v.Kind() == reflect.Interface {
			if v.NumMethod() != 0 {
				return d.errorf("cannot decode into %s", v.Type())
			}
			x, err := d.generic(depth)
			if err != nil {
				return err
			}
			if x == nil {
				v.SetZero()
			} else {
				v.Set(reflect.ValueOf(x))
			}
			return nil
		}
	}
	switch {
	case c == '{':
		return d.object(v, depth)
	case c == '[':
		return d.array(v, depth)
	case c == '"':
		s, err := d.str()
		if err != nil {
			return err
		}
		if !v.IsValid() {
			return nil
		}
		if v.Kind() != reflect.String {
			return d.errorf("cannot put a string into %s", v.Type())
		}
		v.SetString(s)
		return nil
	case c == 't' || c == 'f':
		b := c == 't'
		lit := "false"
		if b {
			lit = "true"
		}
		if err := d.literal(lit); err != nil {
			return err
		}
		if !v.IsValid() {
			return nil
		}
		if v.Kind() != reflect.Bool {
			return d.errorf("cannot put a boolean into %s", v.Type())
		}
		v.SetBool(b)
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		n, err := d.number()
		if err != nil || !v.IsValid() {
			return err
		}
		return d.setNumber(v, n)
	}
	return d.errorf("unexpected %q", c)
}

func (d *decoder) literal(lit string) error {
	if !strings.HasPrefix(string(d.data[d.pos:]), lit) {
		return d.errorf("invalid literal")
	}
	d.pos += len(lit)
	return nil
}

func (d *decoder) setNumber(v reflect.Value, n string) error {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(n, 10, v.Type().Bits())
		if err != nil {
			return d.errorf("number %s does not fit %s", n, v.Type())
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u, err := strconv.ParseUint(n, 10, v.Type().Bits())
		if err != nil {
			return d.errorf("number %s does not fit %s", n, v.Type())
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n, v.Type().Bits())
		if err != nil {
			return d.errorf("number %s does not fit %s", n, v.Type())
		}
		v.SetFloat(f)
	default:
		return d.errorf("cannot put a number into %s", v.Type())
	}
	return nil
}

// object parses an object into a struct or a map (or nowhere).
func (d *decoder) object(v reflect.Value, depth int) error {
	if v.IsValid() {
		switch {
		case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String:
			if v.IsNil() {
				v.Set(reflect.MakeMap(v.Type()))
			}
		case v.Kind() == reflect.Struct:
		default:
			return d.errorf("cannot put an object into %s", v.Type())
		}
	}
	d.pos++ // {
	for first := true; ; first = false {
		d.space()
		if d.pos < len(d.data) && d.data[d.pos] == '}' && first {
			d.pos++
			return nil
		}
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return d.errorf("want an object key")
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		d.space()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return d.errorf("want a colon after an object key")
		}
		d.pos++
		switch {
		case !v.IsValid():
			err = d.value(reflect.Value{}, depth+1)
		case v.Kind() == reflect.Map:
			e := reflect.New(v.Type().Elem()).Elem()
			if err = d.value(e, depth+1); err == nil {
				k := reflect.New(v.Type().Key()).Elem()
				k.SetString(key)
				v.SetMapIndex(k, e)
			}
		default:
			err = d.value(field(v, key), depth+1)
		}
		if err != nil {
			return err
		}
		d.space()
		if d.pos >= len(d.data) {
			return d.errorf("unexpected end of input in an object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return nil
		default:
			return d.errorf("want a comma or } in an object")
		}
	}
}

// field finds the struct field that key names: by tag or name, exactly,
// else ignoring case; the zero Value if there is none.
func field(v reflect.Value, key string) reflect.Value {
	if f := findField(v, key, false); f.IsValid() {
		return f
	}
	return findField(v, key, true)
}

func findField(v reflect.Value, key string, fold bool) reflect.Value {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			if f := findField(v.Field(i), key, fold); f.IsValid() {
				return f
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if name == key || (fold && strings.EqualFold(name, key)) {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}

// array parses an array into a slice or an array (or nowhere).
func (d *decoder) array(v reflect.Value, depth int) error {
	if v.IsValid() && v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return d.errorf("cannot put an array into %s", v.Type())
	}
	d.pos++ // [
	n := 0
	for ; ; n++ {
		d.space()
		if d.pos < len(d.data) && d.data[d.pos] == ']' && n == 0 {
			d.pos++
			break
		}
		var e reflect.Value
		switch {
		case !v.IsValid():
		case v.Kind() == reflect.Slice:
			if n >= v.Cap() {
				v.Grow(1)
			}
			v.SetLen(n + 1)
			e = v.Index(n)
			e.SetZero()
		case n < v.Len():
			e = v.Index(n)
		}
		if err := d.value(e, depth+1); err != nil {
			return err
		}
		d.space()
		if d.pos >= len(d.data) {
			return d.errorf("unexpected end of input in an array")
		}
		if d.data[d.pos] == ']' {
			d.pos++
			n++
			break
		}
		if d.data[d.pos] != ',' {
			return d.errorf("want a comma or ] in an array")
		}
		d.pos++
	}
	switch {
	case !v.IsValid():
	case v.Kind() == reflect.Slice:
		if n == 0 && v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0)) // [] is an empty slice, not nil
		}
		v.SetLen(n)
	default:
		for i := n; i < v.Len(); i++ {
			v.Index(i).SetZero()
		}
	}
	return nil
}

// generic parses the next value as any.
func (d *decoder) generic(depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.errorf("nested too deeply")
	}
	d.space()
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end of input")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		m := map[string]any{}
		err := d.object(reflect.ValueOf(&m).Elem(), depth)
		return m, err
	case c == '[':
		a := []any{}
		err := d.array(reflect.ValueOf(&a).Elem(), depth)
		return a, err
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		n, err := d.number()
		if err != nil {
			return nil, err
		}
		if d.useNumber {
			return Number(n), nil
		}
		f, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return nil, d.errorf("number %s out of range", n)
		}
		return f, nil
	default:
		return nil, d.errorf("unexpected %q", c)
	}
}

// number reads a number by JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() (string, error) {
	start := d.pos
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos < len(d.data) && d.data[d.pos] == '0' {
		d.pos++
	} else if digits() == 0 {
		return "", d.errorf("invalid number")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			return "", d.errorf("invalid number")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return "", d.errorf("invalid number")
		}
	}
	return string(d.data[start:d.pos]), nil
}

// str reads a string literal: escapes decoded, invalid UTF-8 and lone
// surrogates replaced by U+FFFD (as encoding/json does), control
// characters refused.
func (d *decoder) str() (string, error) {
	d.pos++ // "
	var b []byte
	for start := d.pos; d.pos < len(d.data); {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			if b == nil {
				return string(d.data[start : d.pos-1]), nil
			}
			return string(b), nil
		case c < 0x20:
			return "", d.errorf("control character in a string")
		case c == '\\':
			if b == nil {
				b = append(make([]byte, 0, d.pos-start+16), d.data[start:d.pos]...)
			}
			r, err := d.escape()
			if err != nil {
				return "", err
			}
			b = utf8.AppendRune(b, r)
		case c < utf8.RuneSelf:
			d.pos++
			if b != nil {
				b = append(b, c)
			}
		default:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size == 1 && b == nil {
				b = append(make([]byte, 0, d.pos-start+16), d.data[start:d.pos]...)
			}
			d.pos += size
			if b != nil {
				b = utf8.AppendRune(b, r)
			}
		}
	}
	return "", d.errorf("unterminated string")
}

// escape reads one escape sequence after its backslash.
func (d *decoder) escape() (rune, error) {
	d.pos++ // backslash
	if d.pos >= len(d.data) {
		return 0, d.errorf("unterminated string")
	}
	c := d.data[d.pos]
	d.pos++
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, ok := d.hex4()
		if !ok {
			return 0, d.errorf("invalid \\u escape")
		}
		if utf16.IsSurrogate(r) {
			// A pair makes one rune; a lone half is U+FFFD.
			save := d.pos
			if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
				d.pos += 2
				if r2, ok := d.hex4(); ok {
					if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
						return p, nil
					}
				}
			}
			d.pos = save
			return utf8.RuneError, nil
		}
		return r, nil
	}
	return 0, d.errorf("invalid escape \\%c", c)
}

func (d *decoder) hex4() (rune, bool) {
	if d.pos+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.pos += 4
	return r, true
}
