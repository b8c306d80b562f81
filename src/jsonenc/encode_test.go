package jsonenc_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/esp"
	"github.com/vpn-passthrough/vpn-passthrough/src/jsonenc"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// same fails t unless jsonenc writes v as encoding/json does: Marshal,
// MarshalIndent and Encode.
func same(t *testing.T, v any) {
	t.Helper()
	want, errW := json.Marshal(v)
	got, errG := jsonenc.Marshal(v)
	if (errW == nil) != (errG == nil) {
		t.Fatalf("%T: encoding/json: %v; jsonenc: %v", v, errW, errG)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%T differs from encoding/json:\n got %s\nwant %s", v, got, want)
	}
	if errW != nil {
		return
	}
	want, _ = json.MarshalIndent(v, "> ", "\t")
	got, _ = jsonenc.MarshalIndent(v, "> ", "\t")
	if !bytes.Equal(got, want) {
		t.Fatalf("%T: MarshalIndent differs from encoding/json:\n got %s\nwant %s", v, got, want)
	}
	var w, g bytes.Buffer
	enc := json.NewEncoder(&w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
	ind, _ := jsonenc.MarshalIndent(v, "", "  ")
	g.Write(append(ind, '\n'))
	if w.String() != g.String() {
		t.Fatalf("%T: indented Encoder differs:\n got %s\nwant %s", v, g.Bytes(), w.Bytes())
	}
	w.Reset()
	g.Reset()
	json.NewEncoder(&w).Encode(v)
	jsonenc.Encode(&g, v)
	if w.String() != g.String() {
		t.Fatalf("%T: Encode differs:\n got %s\nwant %s", v, g.Bytes(), w.Bytes())
	}
}

// fill sets every field reachable from v to a value that is not the zero
// value (n numbers them), so that a field the encoder writes wrong shows.
func fill(v reflect.Value, n *int) {
	*n++
	if v.CanAddr() {
		switch x := v.Addr().Interface().(type) {
		case *time.Time:
			*x = time.Date(2026, 12, 2, 7, 40, *n%60, 123456789, time.FixedZone("", 3600))
			return
		case *netip.Addr:
			*x = netip.AddrFrom4([4]byte{192, 0, 2, byte(*n)})
			return
		}
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d <&> \"ü\" \\ \u2028 \x01\x7f\xff", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(*n % 100))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n%200) + 1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.25)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2+*n%3, 2+*n%3))
		for i := 0; i < v.Len(); i++ {
			fill(v.Index(i), n)
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := 0; i < 3; i++ {
			k := reflect.New(v.Type().Key()).Elem()
			fill(k, n)
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e, n)
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf(map[string]any{"a": []any{1.5, "x<", true, nil, uint32(7)}, "b": map[string]any{}}))
	}
}

// TestDaemonTypes: every type the daemon marshals, zero and filled, and
// through a pointer (addressable fields) and not.
func TestDaemonTypes(t *testing.T) {
	for _, v := range []any{
		plan.Plan{}, plan.Caps{}, []plan.Decision{}, plan.Offload{}, config.Topology{},
		status.Status{}, status.Event{}, status.SessionInfo{}, status.CheckResult{}, status.Session{},
		esp.Snapshot{},
	} {
		for _, filled := range []bool{false, true} {
			p := reflect.New(reflect.TypeOf(v))
			if filled {
				n := 0
				fill(p.Elem(), &n)
			}
			same(t, p.Interface())
			same(t, p.Elem().Interface())
			same(t, []any{p.Elem().Interface()})
			same(t, map[string]any{"x": p.Interface(), "y": p.Elem().Interface()})
		}
	}
}

// What cmd/vpn-passthrough and src/ubus marshal: maps of any.
func TestMaps(t *testing.T) {
	var s status.Status
	n := 0
	fill(reflect.ValueOf(&s).Elem(), &n)
	same(t, map[string]any{
		"capabilities": plan.Caps{NFTables: true, Notes: map[string]string{"b": "x", "a": "y"}}, "protocols": []plan.Decision{{Proto: plan.PPTP}},
		"topology": config.Topology{LAN: []string{"br-lan"}}, "offload": plan.Offload{}, "warnings": []string(nil), "config_warnings": []string{"w"}})
	same(t, map[string]any{"schema": s.Schema, "state": s.State, "sessions": s.Sessions})
	same(t, map[string]any{"dropped": "a<b", "applied": true, "n": 1.5, "m": int64(-3), "u": uint8(3)})
}

type text struct{ s string }

func (t text) MarshalText() ([]byte, error) { return []byte("t:" + t.s), nil }

type ptrText struct{ s string }

func (t *ptrText) MarshalText() ([]byte, error) { return []byte("p:" + t.s), nil }

type ptrJSON struct{ n int }

func (j *ptrJSON) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf(" { \"n\" : %d , \"h\":\"<&>\u2028\" } ", j.n)), nil
}

type failing struct{}

func (failing) MarshalJSON() ([]byte, error) { return nil, errors.New("no") }

type byteText uint8

func (b byteText) MarshalText() ([]byte, error) { return []byte{'b', byte(b)}, nil }

type Inner struct {
	A    int `json:"a"`
	B    string
	Dup  int
	Deep int `json:"deep"`
}

type Other struct {
	Dup  int
	C    bool `json:"b"`
	Deep int
}

type unexportedEmbed struct{ X int }

type Quoted struct {
	I  int      `json:"i,string"`
	P  *int     `json:"p,string"`
	S  string   `json:",string"`
	B  bool     `json:"b,omitempty,string"`
	F  float64  `json:"f,string"`
	Sl []int    `json:"sl,string"`
	T  text     `json:"t,string"`
	N  *float32 `json:"n,string"`
}

type shapes struct {
	Inner
	*Other
	unexportedEmbed
	Named     plan.Key
	Bytes     []byte
	ByteArr   [3]byte
	TextBytes []byteText
	Text      text
	TextPtr   ptrText
	PText     *ptrText
	JSON      ptrJSON
	PJSON     *ptrJSON
	Time      time.Time
	TimeP     *time.Time
	Addr      netip.Addr
	AddrPort  netip.AddrPort
	IntKeys   map[int8]string
	UintKeys  map[uint16]int
	TextKeys  map[text]int
	Empty     map[string]int `json:",omitempty"`
	Ifc       any            `json:"ifc,omitempty"`
	F32       float32
	F64       []float64
	Weird     string `json:"wé!rd#,omitempty"`
	BadTag    int    `json:"a b\x01"`
	Dash      int    `json:"-,"`
	Skip      int    `json:"-"`
	Quoted
	hidden int
}

func TestShapes(t *testing.T) {
	x := 7
	f := float32(0.1)
	now := time.Date(2026, 12, 2, 10, 0, 0, 5, time.UTC)
	v := shapes{
		Inner: Inner{A: 1, B: "b", Dup: 3, Deep: 4}, Other: &Other{Dup: 5, C: true, Deep: 6}, unexportedEmbed: unexportedEmbed{9},
		Named: plan.Key{plan.FieldIPSaddr, plan.FieldMetaOIF}, Bytes: []byte("hello, world\x00\xff"), ByteArr: [3]byte{1, 2, 3},
		TextBytes: []byteText{'x', 'y'}, Text: text{"a<"}, TextPtr: ptrText{"b"}, PText: &ptrText{"c"}, JSON: ptrJSON{1}, PJSON: &ptrJSON{2},
		Time: now, TimeP: &now, Addr: netip.MustParseAddr("2001:db8::1"), AddrPort: netip.MustParseAddrPort("192.0.2.1:500"),
		IntKeys: map[int8]string{-1: "a", 10: "b", 2: "c"}, UintKeys: map[uint16]int{65535: 1, 0: 2}, TextKeys: map[text]int{{"z"}: 1, {"a"}: 2},
		Ifc: &ptrJSON{3}, F32: 1e21, F64: []float64{0, -0.0, 1e-7, 1e-6, 123456789e13, 1e21, 1.5e300, -2.5e-300, 0.1, 100},
		Dash: 1, Skip: 2, hidden: 3, Quoted: Quoted{I: -5, P: &x, S: "q\"<", B: true, F: 2.5, Sl: []int{1}, T: text{"u"}, N: &f},
	}
	same(t, v)
	same(t, &v)
	same(t, []shapes{v, {}})
	same(t, map[string]shapes{"k": v})
	for _, bad := range []any{math.NaN(), math.Inf(-1), float32(math.Inf(1)), func() {}, make(chan int), complex(1, 2),
		map[[2]int]int{}, map[bool]int(nil), failing{}, []any{failing{}}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		same(t, bad)
	}
	for _, ok := range []any{nil, "", []int(nil), []int{}, map[string]int(nil), (*int)(nil), (*ptrJSON)(nil), (*text)(nil), (*time.Time)(nil),
		[]byte{}, []byte(nil), [0]int{}, struct{}{}, &struct{ A []struct{} }{}, "\xed\xa0\x80", "\u2029<\t>", uintptr(3),
		[]*ptrText{nil, {"x"}}, map[string]*ptrText{"n": nil}, []any{[]any{}, map[string]any{}, [][]int{{}, nil}}} {
		same(t, ok)
	}
}

// session has the shapes of the daemon's types, for the fuzz test.
type session struct {
	Kind    string             `json:"kind"`
	Client  netip.Addr         `json:"client"`
	Peer    *uint16            `json:"peer,omitempty"`
	Packets *uint64            `json:"packets"`
	Age     int64              `json:"age_s"`
	Ratio   float64            `json:"ratio"`
	Small   float32            `json:"small,omitempty"`
	On      bool               `json:"on,omitempty"`
	Notes   map[string]string  `json:"notes"`
	IDs     []int32            `json:"ids"`
	Key     []byte             `json:"key,omitempty"`
	Pair    [2]uint8           `json:"pair"`
	When    *time.Time         `json:"when"`
	Skip    string             `json:"-"`
	Any     any                `json:"any"`
	Inner   []session          `json:"inner"`
	Counts  map[string]float64 `json:"counts,omitempty"`
	NoTag   string
}

// FuzzCompare: on fuzzed values jsonenc writes what encoding/json writes.
// The value is what encoding/json decodes from data (into a struct and
// into any), with the other arguments put where decoding cannot reach
// (invalid UTF-8, any float, raw bytes).
func FuzzCompare(f *testing.F) {
	f.Add([]byte(`{"kind":"pptp<>","client":"192.168.1.20","peer":7,"packets":18446744073709551615,"age_s":-3,"ratio":1.5e3,"on":true,
	  "notes":{"b":"a","a":"\u2028"},"ids":[1,-2147483648],"key":"AAEC","pair":[1,2],"when":"2026-12-02T07:40:00.5+01:00",
	  "any":{"n":[1,2.5,-0,1E-7,"s",null,false,{}]},"inner":[{"kind":"esp","inner":null}],"counts":{"x":1e21},"NoTag":"x"}`),
		"s\xff\u2029&", 1e-7, float32(3.4e38), int64(-1), []byte{0, 1, 2, 3})
	f.Add([]byte(`[1,"a",{"b":[]},null]`), "", 0.0, float32(0), int64(0), []byte(nil))
	f.Fuzz(func(t *testing.T, data []byte, s string, fl float64, f32 float32, i int64, b []byte) {
		var v session
		json.Unmarshal(data, &v) // whatever got decoded before an error is a value too
		same(t, v)
		v.Kind, v.NoTag = s, s
		v.Ratio, v.Small, v.Age = fl, f32, i
		v.Key = b
		v.Notes = map[string]string{s: s, "k": s + "<"}
		v.Counts = map[string]float64{s: fl, "f32": float64(f32)}
		v.Any = []any{s, fl, f32, i, b, map[string]any{s: v.Notes}}
		v.Inner = append(v.Inner, session{Kind: s, Ratio: fl, Key: b, Any: v.Any})
		same(t, v)
		var a any
		if json.Unmarshal(data, &a) == nil {
			same(t, a)
		}
	})
}

// TestIndent: indentation of what Marshal does not write (MarshalJSON
// results keep their strings) is encoding/json's.
func TestIndent(t *testing.T) {
	v := map[string]any{"a": []any{}, "b": map[string]any{"c": []any{1, []any{}, map[string]any{}}}, "s": "x,:{[\"\\"}
	same(t, v)
	// Without prefix and indent still one element a line, as encoding/json.
	got, _ := jsonenc.MarshalIndent(v, "", "")
	want, _ := json.MarshalIndent(v, "", "")
	if !bytes.Equal(got, want) || !strings.Contains(string(got), "\n") {
		t.Errorf("MarshalIndent with no indent:\n got %s\nwant %s", got, want)
	}
}

// The one documented difference: a non-ASCII rune that is not a letter or
// digit in a tag's name (encoding/json then keeps the Go name).
func TestNonASCIITag(t *testing.T) {
	v := struct {
		A int `json:"a→b"`
		B int `json:"é"`
	}{1, 2}
	want, _ := json.Marshal(v)
	got, _ := jsonenc.Marshal(v)
	if string(want) != `{"A":1,"é":2}` || string(got) != `{"a→b":1,"é":2}` {
		t.Errorf("encoding/json %s, jsonenc %s", want, got)
	}
}
