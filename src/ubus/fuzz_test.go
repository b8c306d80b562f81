package ubus

import (
	"bytes"
	"testing"
)

// FuzzParseFields: any bytes either fail cleanly or parse into fields that
// encode and parse back to the same fields.
func FuzzParseFields(f *testing.F) {
	b, _ := Marshal(map[string]any{"a": "x", "n": 5, "t": map[string]any{"l": []any{1, true, nil, 2.5}}})
	f.Add(b)
	f.Add([]byte{0x83, 0, 0, 11, 0, 1, 'a', 0, 'x', 'y', 0, 0})
	f.Add([]byte{0x81, 0, 0, 8, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := ParseFields(b)
		if err != nil {
			return
		}
		var enc []byte
		for _, x := range fs {
			enc = AppendField(enc, x)
		}
		again, err := ParseFields(enc)
		if err != nil {
			t.Fatalf("re-encoded fields do not parse: %v", err)
		}
		var enc2 []byte
		for _, x := range again {
			enc2 = AppendField(enc2, x)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable")
		}
	})
}

// FuzzReadMsg: a hostile ubusd (or anything on the socket) cannot crash or
// hang the reader.
func FuzzReadMsg(f *testing.F) {
	f.Add(EncodeMsg(MsgInvoke, 1, 2, u32(AttrObjID, 3), str(AttrMethod, "status"), nested(AttrData, nil)))
	f.Add(EncodeMsg(MsgHello, 0, 5))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadMsg(bytes.NewReader(b))
		if err != nil {
			return
		}
		_ = m.String(AttrMethod)
		_ = m.Uint32(AttrObjID)
		ParseFields(m.Attrs[AttrData])
	})
}
