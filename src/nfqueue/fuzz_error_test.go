package nfqueue

import (
	"encoding/binary"
	"testing"
)

// FuzzParseError: the NLMSG_ERROR decoder (the ACKs of verdicts and config
// requests) never panics or reads past its input, and decodes what it is
// given: the errno and the answered request's sequence number.
func FuzzParseError(f *testing.F) {
	ack := make([]byte, 4+nlmsgHdrLen)
	binary.NativeEndian.PutUint32(ack[4+8:], 42)
	f.Add(ack)
	f.Add([]byte{0xf0, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		errno, seq, ok := parseError(b)
		if ok != (len(b) >= 4+nlmsgHdrLen) {
			t.Fatalf("%d bytes: ok %v", len(b), ok)
		}
		if ok && (errno != int32(binary.NativeEndian.Uint32(b)) || seq != binary.NativeEndian.Uint32(b[12:])) {
			t.Fatalf("errno %d seq %d from % x", errno, seq, b[:16])
		}
	})
}
