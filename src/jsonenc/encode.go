// Package jsonenc writes Go values as JSON, byte for byte as encoding/json's
// Marshal writes them: for plans (compared by their JSON on reload), the
// status model, the engines' state files and the ubus and D-Bus replies. It
// exists for size: encoding/json's encoder with encoding/base64 costs
// ~100 KB of the mipsel binary. The tests compare it with encoding/json on
// the daemon's types and on fuzzed values.
//
// It follows encoding/json's rules: struct tags (names, omitempty,
// omitzero as Go 1.24 has it, string, "-"), embedded structs and their name conflicts, sorted map keys, nil
// slices and maps as null, []byte as base64, MarshalJSON and MarshalText
// (on T, or on *T when addressable), HTML-safe strings. It differs where
// the daemon's values never go: it does not detect pointer cycles, does
// not check that MarshalJSON returns valid JSON (it only compacts it), and
// its errors are plain errors, not encoding/json's error types, and it
// takes any non-ASCII rune in a tag's name for a letter.
package jsonenc

import (
	"encoding"
	"errors"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// marshaler is encoding/json's Marshaler (this package must not import it).
type marshaler interface {
	MarshalJSON() ([]byte, error)
}

var (
	marshalerType     = reflect.TypeOf((*marshaler)(nil)).Elem()
	textMarshalerType = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
)

// Marshal returns the JSON encoding of v, as json.Marshal does.
func Marshal(v any) ([]byte, error) {
	e := encoder{}
	if err := e.value(reflect.ValueOf(v), false); err != nil {
		return nil, err
	}
	return e.b, nil
}

// MarshalIndent is Marshal with each element on a new line, as
// json.MarshalIndent does.
func MarshalIndent(v any, prefix, indent string) ([]byte, error) {
	b, err := Marshal(v)
	if err != nil {
		return nil, err
	}
	return appendIndent(make([]byte, 0, 2*len(b)), b, prefix, indent), nil
}

// Encode writes v and a newline to w in one Write, as
// json.NewEncoder(w).Encode(v) does.
func Encode(w io.Writer, v any) error {
	b, err := Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

type encoder struct{ b []byte }

// value appends v. quoted: the field has the ",string" option.
func (e *encoder) value(v reflect.Value, quoted bool) error {
	if !v.IsValid() {
		e.b = append(e.b, "null"...)
		return nil
	}
	if m, ok, null := implements(v, marshalerType); ok {
		if null {
			e.b = append(e.b, "null"...)
			return nil
		}
		js, err := m.(marshaler).MarshalJSON()
		if err != nil {
			return errors.New("jsonenc: " + v.Type().String() + ".MarshalJSON: " + err.Error())
		}
		e.b = appendCompact(e.b, js)
		return nil
	}
	if m, ok, null := implements(v, textMarshalerType); ok {
		if null {
			e.b = append(e.b, "null"...)
			return nil
		}
		t, err := m.(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return errors.New("jsonenc: " + v.Type().String() + ".MarshalText: " + err.Error())
		}
		e.b = appendString(e.b, string(t), true)
		return nil
	}
	start := len(e.b)
	switch v.Kind() {
	case reflect.Bool:
		e.b = strconv.AppendBool(e.b, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.b = strconv.AppendInt(e.b, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.b = strconv.AppendUint(e.b, v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		bits := v.Type().Bits()
		f := v.Float()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return errors.New("jsonenc: unsupported value: " + strconv.FormatFloat(f, 'g', -1, bits))
		}
		e.b = appendFloat(e.b, f, bits)
	case reflect.String:
		if quoted {
			e.b = appendString(e.b, string(appendString(nil, v.String(), true)), false)
			return nil
		}
		e.b = appendString(e.b, v.String(), true)
	case reflect.Interface:
		if v.IsNil() {
			e.b = append(e.b, "null"...)
			return nil
		}
		return e.value(v.Elem(), false)
	case reflect.Pointer:
		if v.IsNil() {
			e.b = append(e.b, "null"...)
			return nil
		}
		return e.value(v.Elem(), quoted)
	case reflect.Struct:
		return e.object(v)
	case reflect.Map:
		return e.mapObject(v)
	case reflect.Slice:
		if v.IsNil() {
			e.b = append(e.b, "null"...)
			return nil
		}
		if isBytes(v.Type()) {
			e.b = append(e.b, '"')
			e.b = appendBase64(e.b, v.Bytes())
			e.b = append(e.b, '"')
			return nil
		}
		return e.array(v)
	case reflect.Array:
		return e.array(v)
	default:
		return errors.New("jsonenc: unsupported type: " + v.Type().String())
	}
	if quoted { // a bool or number with ",string"
		e.b = append(e.b, 0)
		copy(e.b[start+1:], e.b[start:])
		e.b[start] = '"'
		e.b = append(e.b, '"')
	}
	return nil
}

// implements reports whether v has the method of interface it where
// encoding/json looks for it (on T; on *T if v is addressable) and returns
// the value to call it on; null: v is a nil pointer or interface.
func implements(v reflect.Value, it reflect.Type) (m any, ok, null bool) {
	t := v.Type()
	if t.Kind() != reflect.Pointer && v.CanAddr() && reflect.PointerTo(t).Implements(it) {
		return v.Addr().Interface(), true, false
	}
	if !t.Implements(it) {
		return nil, false, false
	}
	if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
		return nil, true, true
	}
	return v.Interface(), true, false
}

// isBytes: a slice encoding/json writes in base64 (its elements have no
// JSON or text marshaler of their own).
func isBytes(t reflect.Type) bool {
	el := reflect.PointerTo(t.Elem())
	return t.Elem().Kind() == reflect.Uint8 && !el.Implements(marshalerType) && !el.Implements(textMarshalerType)
}

func (e *encoder) array(v reflect.Value) error {
	e.b = append(e.b, '[')
	for i := 0; i < v.Len(); i++ {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		if err := e.value(v.Index(i), false); err != nil {
			return err
		}
	}
	e.b = append(e.b, ']')
	return nil
}

func (e *encoder) object(v reflect.Value) error {
	e.b = append(e.b, '{')
	n := 0
fields:
	for _, f := range fieldsOf(v.Type()) {
		fv := v
		for _, i := range f.index {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() { // through a nil embedded pointer: absent
					continue fields
				}
				fv = fv.Elem()
			}
			fv = fv.Field(i)
		}
		if f.omitEmpty && isEmpty(fv) || f.omitZero && zero(f, fv) {
			continue
		}
		if n > 0 {
			e.b = append(e.b, ',')
		}
		n++
		e.b = appendString(e.b, f.name, true)
		e.b = append(e.b, ':')
		if err := e.value(fv, f.quoted); err != nil {
			return err
		}
	}
	e.b = append(e.b, '}')
	return nil
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

func (e *encoder) mapObject(v reflect.Value) error {
	kt := v.Type().Key()
	switch kt.Kind() {
	case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
	default:
		if !kt.Implements(textMarshalerType) {
			return errors.New("jsonenc: unsupported type: " + v.Type().String())
		}
	}
	if v.IsNil() {
		e.b = append(e.b, "null"...)
		return nil
	}
	type entry struct {
		key string
		val reflect.Value
	}
	entries := make([]entry, 0, v.Len())
	for it := v.MapRange(); it.Next(); {
		k, err := keyName(it.Key())
		if err != nil {
			return err
		}
		entries = append(entries, entry{k, it.Value()})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	e.b = append(e.b, '{')
	for i, en := range entries {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = appendString(e.b, en.key, true)
		e.b = append(e.b, ':')
		if err := e.value(en.val, false); err != nil {
			return err
		}
	}
	e.b = append(e.b, '}')
	return nil
}

// keyName is a map key as encoding/json names it: a string as it is, then
// a text marshaler's text, then an integer in decimal.
func keyName(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
		if k.Kind() == reflect.Pointer && k.IsNil() {
			return "", nil
		}
		t, err := tm.MarshalText()
		if err != nil {
			return "", errors.New("jsonenc: " + k.Type().String() + ".MarshalText: " + err.Error())
		}
		return string(t), nil
	}
	if k.CanInt() {
		return strconv.FormatInt(k.Int(), 10), nil
	}
	return strconv.FormatUint(k.Uint(), 10), nil
}

// appendFloat writes f as encoding/json does: like ES6, shortest decimal,
// exponent only for very small or large magnitudes, "e-07" as "e-7".
func appendFloat(b []byte, f float64, bits int) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}

const hex = "0123456789abcdef"

// appendString writes s as a JSON string, escaped as encoding/json escapes:
// short escapes where JSON has them, \u00XX for other control characters
// (and for <, > and & if html), U+FFFD for invalid UTF-8, U+2028 and
// U+2029 escaped (JavaScript reads them as line ends).
func appendString(b []byte, s string, html bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && !(html && (c == '<' || c == '>' || c == '&')) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += n
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += n
			start = i
			continue
		}
		i += n
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendCompact appends a MarshalJSON result without the whitespace between
// tokens and with <, >, &, U+2028 and U+2029 escaped, as encoding/json does.
func appendCompact(b, src []byte) []byte {
	inString, escaped := false, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '"':
			inString = true
		}
		if c == '<' || c == '>' || c == '&' {
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			continue
		}
		if c == 0xe2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xa8 {
			b = append(b, '\\', 'u', '2', '0', '2', hex[src[i+2]&0xf])
			i += 2
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendIndent re-lays compact JSON out as encoding/json's Indent does;
// empty objects and arrays stay {} and [].
func appendIndent(b, src []byte, prefix, indent string) []byte {
	depth := 0
	needIndent, inString, escaped := false, false, false
	newline := func() {
		b = append(b, '\n')
		b = append(b, prefix...)
		for i := 0; i < depth; i++ {
			b = append(b, indent...)
		}
	}
	for _, c := range src {
		if inString {
			b = append(b, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if needIndent && c != '}' && c != ']' {
			needIndent = false
			depth++
			newline()
		}
		switch c {
		case '"':
			inString = true
			b = append(b, c)
		case '{', '[':
			needIndent = true
			b = append(b, c)
		case ',':
			b = append(b, c)
			newline()
		case ':':
			b = append(b, c, ' ')
		case '}', ']':
			if needIndent {
				needIndent = false
			} else {
				depth--
				newline()
			}
			b = append(b, c)
		default:
			b = append(b, c)
		}
	}
	return b
}

const base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// appendBase64 is base64.StdEncoding (padded).
func appendBase64(b, src []byte) []byte {
	for ; len(src) >= 3; src = src[3:] {
		n := uint(src[0])<<16 | uint(src[1])<<8 | uint(src[2])
		b = append(b, base64Chars[n>>18], base64Chars[n>>12&63], base64Chars[n>>6&63], base64Chars[n&63])
	}
	switch len(src) {
	case 1:
		n := uint(src[0]) << 16
		b = append(b, base64Chars[n>>18], base64Chars[n>>12&63], '=', '=')
	case 2:
		n := uint(src[0])<<16 | uint(src[1])<<8
		b = append(b, base64Chars[n>>18], base64Chars[n>>12&63], base64Chars[n>>6&63], '=')
	}
	return b
}

// field is a struct field as JSON sees it; index leads to it through
// embedded structs.
type field struct {
	name      string
	index     []int
	typ       reflect.Type
	tagged    bool
	omitEmpty bool
	omitZero  bool                     // ",omitzero" (Go 1.24's encoding/json)
	isZero    func(reflect.Value) bool // the type's IsZero method, if it has one
	quoted    bool
}

// zero is ",omitzero"'s test: the field type's IsZero method, else its
// zero value.
func zero(f field, v reflect.Value) bool {
	if f.isZero != nil {
		return f.isZero(v)
	}
	return v.IsZero()
}

type isZeroer interface{ IsZero() bool }

var isZeroerType = reflect.TypeFor[isZeroer]()

// zeroMethod is how ",omitzero" calls t's IsZero, if t (or *t) has one; a
// nil pointer or interface is zero without a call.
func zeroMethod(t reflect.Type) func(reflect.Value) bool {
	call := func(v reflect.Value) bool { return v.Interface().(isZeroer).IsZero() }
	switch {
	case t.Kind() == reflect.Interface && t.Implements(isZeroerType):
		return func(v reflect.Value) bool {
			return v.IsNil() || v.Elem().Kind() == reflect.Pointer && v.Elem().IsNil() || call(v)
		}
	case t.Kind() == reflect.Pointer && t.Implements(isZeroerType):
		return func(v reflect.Value) bool { return v.IsNil() || call(v) }
	case t.Implements(isZeroerType):
		return call
	case reflect.PointerTo(t).Implements(isZeroerType):
		return func(v reflect.Value) bool {
			if !v.CanAddr() { // a copy that can be addressed
				c := reflect.New(v.Type()).Elem()
				c.Set(v)
				v = c
			}
			return call(v.Addr())
		}
	}
	return nil
}

var fieldCache sync.Map // reflect.Type -> []field

func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	f, _ := fieldCache.LoadOrStore(t, typeFields(t))
	return f.([]field)
}

// typeFields lists the fields encoding/json writes for struct type t, in
// its order, by its rules: breadth-first through embedded structs; of
// fields with one name the shallowest wins, a tagged one over an untagged
// one at the same depth, and a tie hides them all.
func typeFields(t reflect.Type) []field {
	var fields []field
	next := []field{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		current := next
		next = nil
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, f := range current {
			if visited[f.typ] {
				continue
			}
			visited[f.typ] = true
			for i := 0; i < f.typ.NumField(); i++ {
				sf := f.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !validName(name) {
					name = ""
				}
				index := append(f.index[:len(f.index):len(f.index)], i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					fl := field{name: name, index: index, typ: ft, tagged: name != "", omitEmpty: hasOption(opts, "omitempty"),
						omitZero: hasOption(opts, "omitzero")}
					if fl.omitZero {
						fl.isZero = zeroMethod(sf.Type)
					}
					if fl.name == "" {
						fl.name = sf.Name
					}
					if hasOption(opts, "string") {
						switch ft.Kind() {
						case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
							reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
							reflect.Float32, reflect.Float64, reflect.String:
							fl.quoted = true
						}
					}
					fields = append(fields, fl)
					if count[f.typ] > 1 {
						// The struct is embedded twice at this depth: a
						// duplicate makes the conflict below hide it.
						fields = append(fields, fl)
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, field{name: ft.Name(), index: index, typ: ft})
				}
			}
		}
	}
	// sort.Slice, not slices.SortFunc: the daemon links sort.Slice anyway,
	// and each slices.SortFunc instance costs ~10 KB on mipsel.
	sort.Slice(fields, func(i, j int) bool {
		a, b := fields[i], fields[j]
		if a.name != b.name {
			return a.name < b.name
		}
		if len(a.index) != len(b.index) {
			return len(a.index) < len(b.index)
		}
		if a.tagged != b.tagged {
			return a.tagged
		}
		return before(a.index, b.index)
	})
	out := fields[:0]
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		if j-i == 1 || len(fields[i].index) < len(fields[i+1].index) || fields[i].tagged != fields[i+1].tagged {
			out = append(out, fields[i])
		}
		i = j
	}
	sort.Slice(out, func(i, j int) bool { return before(out[i].index, out[j].index) })
	return out
}

// before orders index sequences as field order in the struct: the first
// difference decides, and a prefix comes first.
func before(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func hasOption(opts, name string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == name {
			return true
		}
	}
	return false
}

// validName is encoding/json's test of a tag's name: letters, digits and
// some punctuation; otherwise the field keeps its Go name. Any rune
// outside ASCII counts as a letter: encoding/json asks package unicode,
// whose tables cost ~4 KB, and the daemon's tags are ASCII.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c) && c < utf8.RuneSelf &&
			!('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
