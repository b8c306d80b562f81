package jsondec_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine/esp"
	"github.com/vpn-passthrough/vpn-passthrough/src/jsondec"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// fill sets every field reachable from v to a value that is not the zero
// value (n numbers them), so that a field the decoder misses shows.
func fill(v reflect.Value, n *int) {
	*n++
	switch x := v.Addr().Interface().(type) {
	case *time.Time:
		*x = time.Date(2026, 12, 2, 7, 40, *n%60, 123456789, time.UTC)
		return
	case *netip.Addr:
		*x = netip.AddrFrom4([4]byte{192, 0, 2, byte(*n)})
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d <&> \"ü\" \\ \u2028 \x01", *n))
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
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), n)
		fill(v.Index(1), n)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := 0; i < 2; i++ {
			k := reflect.New(v.Type().Key()).Elem()
			k.SetString(fmt.Sprintf("k%d", *n+i))
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
		v.Set(reflect.ValueOf(map[string]any{"a": []any{1.5, "x", true, nil}}))
	}
}

// TestDaemonTypes: what the daemon reads back (the status socket's answer,
// the ESP engine's state file) decodes as encoding/json decodes it, every
// field filled; and so does the zero value.
func TestDaemonTypes(t *testing.T) {
	for _, zero := range []any{&status.Status{}, &esp.Snapshot{}, &status.Event{}} {
		for _, filled := range []bool{false, true} {
			in := reflect.New(reflect.TypeOf(zero).Elem())
			if filled {
				n := 0
				fill(in.Elem(), &n)
			}
			data, err := json.Marshal(in.Interface())
			if err != nil {
				t.Fatal(err)
			}
			want := reflect.New(in.Type().Elem()).Interface()
			if err := json.Unmarshal(data, want); err != nil {
				t.Fatal(err)
			}
			got := reflect.New(in.Type().Elem()).Interface()
			if err := jsondec.Unmarshal(data, got); err != nil {
				t.Fatalf("%T: %v\n%s", got, err, data)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%T differs from encoding/json's:\n got %+v\nwant %+v", got, got, want)
			}
			if filled && bytes.Count(data, []byte(`"s`)) < 3 {
				t.Errorf("%T: filled too little: %s", got, data)
			}
		}
	}
}

// session is a struct with the shapes the daemon's types have, for the fuzz
// test.
type session struct {
	Kind    string            `json:"kind"`
	Client  netip.Addr        `json:"client"`
	Peer    *uint16           `json:"peer,omitempty"`
	Packets *uint64           `json:"packets"`
	Age     int64             `json:"age_s"`
	Ratio   float64           `json:"ratio"`
	On      bool              `json:"on"`
	Notes   map[string]string `json:"notes"`
	IDs     []int32           `json:"ids"`
	Pair    [2]uint8          `json:"pair"`
	When    *time.Time        `json:"when"`
	Skip    string            `json:"-"`
	Any     any               `json:"any"`
	Inner   []session         `json:"inner"`
	NoTag   string
}

var seeds = []string{
	`{"kind":"pptp","client":"192.168.1.20","peer":7,"packets":18446744073709551615,"age_s":-3,"ratio":1.5e3,"on":true,
	  "notes":{"a":"b","c":""},"ids":[1,-2147483648],"pair":[1,2,3],"when":"2026-12-02T07:40:00.5+01:00","-":"x","Skip":"y",
	  "any":{"n":[1,2.5,-0,1E-7,"s",null,false,{}]},"inner":[{"kind":"esp","inner":null}],"notag":"case","KIND":"again"}`,
	`{"peer":null,"ids":[],"notes":null,"any":null,"pair":[9]}`,
	`"\u00e9\ud83d\ude00\ud800\u0041\\\/\b\f\n\r\t\"" `,
	"\"\xff\xfe ok \xc3\"",
	` [1, 2 , [ ], { } ,"x"] `,
	`{"peer":70000}`, `{"age_s":1.5}`, `{"kind":1}`, `{"client":"nope"}`, `{"ids":{}}`, `[1,]`, `{"a":1,}`, `01`, `-`, `1.`,
	`1e`, `1e+5`, `-0.0e-0`, `tru`, `nul`, `{"a" 1}`, `{1:2}`, `"\x"`, `"\u12"`, "\"a\x01\"", `[`, `{`, `""`, ` `, `1 2`,
	`{"inner":[{"inner":[{"inner":[{}]}]}]}`, `{"Kind":"upper","NOTAG":"x"}`,
}

// FuzzCompare: on any input, jsondec accepts what encoding/json accepts and
// yields the same value, into any (both number modes) and into a struct.
func FuzzCompare(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a, b any
		errA := json.Unmarshal(data, &a)
		errB := jsondec.Unmarshal(data, &b)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("any: encoding/json: %v; jsondec: %v\n%q", errA, errB, data)
		}
		if errA == nil && !reflect.DeepEqual(a, b) {
			t.Fatalf("any: encoding/json: %#v; jsondec: %#v\n%q", a, b, data)
		}
		var na, nb any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		errA = dec.Decode(&na)
		if errA == nil && dec.More() || errA == nil && bytes.TrimSpace(data[dec.InputOffset():]) != nil && len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
			errA = fmt.Errorf("data after the value")
		}
		errB = jsondec.UnmarshalUseNumber(data, &nb)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("UseNumber: encoding/json: %v; jsondec: %v\n%q", errA, errB, data)
		}
		if errA == nil && fmt.Sprint(na) != fmt.Sprint(nb) {
			t.Fatalf("UseNumber: encoding/json: %#v; jsondec: %#v\n%q", na, nb, data)
		}
		var sa, sb session
		errA = json.Unmarshal(data, &sa)
		errB = jsondec.Unmarshal(data, &sb)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("struct: encoding/json: %v; jsondec: %v\n%q", errA, errB, data)
		}
		if errA == nil && !reflect.DeepEqual(sa, sb) {
			t.Fatalf("struct: encoding/json: %+v; jsondec: %+v\n%q", sa, sb, data)
		}
	})
}

func TestErrors(t *testing.T) {
	var s session
	for _, in := range []string{`{"peer":70000}`, `{"kind":1}`, `[1,]`, `{"client":"nope"}`, `1 2`} {
		if err := jsondec.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
	if err := jsondec.Unmarshal([]byte(`1`), s); err == nil {
		t.Error("a non-pointer: no error")
	}
}
