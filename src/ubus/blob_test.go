package ubus

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// A table as libubox's blobmsg_add_string(&b, "a", "xy") writes it:
// extended bit, type 3, length 4+4+3 = 11; name length 1, "a\0", pad; "xy\0",
// pad to 12 bytes.
func TestBlobmsgBytes(t *testing.T) {
	got := AppendField(nil, Field{Name: "a", Type: TypeString, Value: "xy"})
	want := []byte{0x83, 0, 0, 11, 0, 1, 'a', 0, 'x', 'y', 0, 0}
	if !bytes.Equal(got, want) {
		t.Errorf("string field % x, want % x", got, want)
	}
	got = AppendField(nil, Field{Name: "n", Type: TypeInt32, Value: int32(-2)})
	want = []byte{0x85, 0, 0, 12, 0, 1, 'n', 0, 0xff, 0xff, 0xff, 0xfe}
	if !bytes.Equal(got, want) {
		t.Errorf("int32 field % x, want % x", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	in := `{"a":"x","b":true,"c":7,"d":5000000000,"e":1.5,"f":null,"g":[1,"two",{"h":false}],"i":{"j":{}}}`
	fs, err := FromJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, f := range fs {
		b = AppendField(b, f)
	}
	back, err := ParseFields(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(ToJSON(back, true))
	var x, y any
	json.Unmarshal([]byte(in), &x)
	json.Unmarshal(out, &y)
	if !reflect.DeepEqual(x, y) {
		t.Errorf("round trip:\n in %s\nout %s", in, out)
	}
	if back[3].Type != TypeInt64 || back[2].Type != TypeInt32 || back[1].Type != TypeInt8 {
		t.Errorf("types: %+v", back)
	}
}

func TestMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"short header":     {0x83, 0},
		"length too big":   {0x83, 0, 0, 40, 0, 1, 'a', 0},
		"length too small": {0x83, 0, 0, 2},
		"not extended":     {0x03, 0, 0, 8, 0, 0, 0, 0},
		"name overrun":     {0x83, 0, 0, 8, 0, 9, 'a', 0},
		"string no NUL":    {0x83, 0, 0, 10, 0, 1, 'a', 0, 'x', 'y', 0, 0},
		"int32 short":      {0x85, 0, 0, 9, 0, 1, 'n', 0, 1, 0, 0, 0},
		"unknown type":     {0x89, 0, 0, 8, 0, 0, 0, 0},
	} {
		if _, err := ParseFields(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	// Nesting deeper than maxDepth is refused, not recursed into.
	deep := Field{Type: TypeArray}
	for i := 0; i < maxDepth+2; i++ {
		deep = Field{Type: TypeArray, Value: []Field{deep}}
	}
	b := AppendField(nil, deep)
	if _, err := ParseFields(b); err == nil {
		t.Error("deep nesting parsed")
	}
}

func TestMsg(t *testing.T) {
	b := EncodeMsg(MsgInvoke, 7, 0x1234, u32(AttrObjID, 99), str(AttrMethod, "status"), nested(AttrData, nil))
	m, err := ReadMsg(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != MsgInvoke || m.Seq != 7 || m.Peer != 0x1234 || m.Uint32(AttrObjID) != 99 || m.String(AttrMethod) != "status" || !m.Has[AttrData] {
		t.Errorf("msg %+v", m)
	}
	if _, err := ParseMsg(append([]byte{1}, b[1:]...)); err == nil {
		t.Error("version 1 accepted")
	}
}

// TestReadMsgTooLarge: 10 MB of input is refused as too large before it is
// read, not reported as an unexpected EOF.
func TestReadMsgTooLarge(t *testing.T) {
	h := []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[8:], 10<<20)
	_, err := ReadMsg(bytes.NewReader(h)) // the 10 MB never follow
	if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "too large") {
		t.Errorf("10 MB message: %v, want a too-large error", err)
	}
}
