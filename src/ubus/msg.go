package ubus

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Message types (ubus ubusmsg.h).
const (
	MsgHello        = 0
	MsgStatus       = 1
	MsgData         = 2
	MsgPing         = 3
	MsgLookup       = 4
	MsgInvoke       = 5
	MsgAddObject    = 6
	MsgRemoveObject = 7
	MsgSubscribe    = 8
	MsgUnsubscribe  = 9
	MsgNotify       = 10
	MsgMonitor      = 11
)

// Message attributes.
const (
	AttrStatus      = 1
	AttrObjPath     = 2
	AttrObjID       = 3
	AttrMethod      = 4
	AttrObjType     = 5
	AttrSignature   = 6
	AttrData        = 7
	AttrTarget      = 8
	AttrActive      = 9
	AttrNoReply     = 10
	AttrSubscribers = 11
	AttrUser        = 12
	AttrGroup       = 13
	attrMax         = 14
)

// Status codes of a reply.
const (
	StatusOK               = 0
	StatusInvalidCommand   = 1
	StatusInvalidArgument  = 2
	StatusMethodNotFound   = 3
	StatusNotFound         = 4
	StatusNoData           = 5
	StatusPermissionDenied = 6
	StatusTimeout          = 7
	StatusNotSupported     = 8
	StatusUnknownError     = 9
	StatusConnectionFailed = 10
)

// systemObjectEvent is ubusd's event object (ubus send / ubus listen).
const systemObjectEvent = 1

// maxMsg bounds what we accept from the socket (ubusd's own limit is 1 MiB
// of blob payload).
const maxMsg = 1<<20 + 4096

// Msg is one ubus message.
type Msg struct {
	Type  uint8
	Seq   uint16
	Peer  uint32
	Attrs [attrMax][]byte // payload of each ubus attribute present (nil: absent)
	Has   [attrMax]bool
}

// Uint32 returns a u32 attribute (0 if absent or short).
func (m *Msg) Uint32(id int) uint32 {
	if len(m.Attrs[id]) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(m.Attrs[id])
}

// String returns a NUL-terminated string attribute.
func (m *Msg) String(id int) string {
	b := m.Attrs[id]
	if len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}

// ParseMsg decodes a header and the blob that follows it.
func ParseMsg(b []byte) (*Msg, error) {
	if len(b) < 8+blobHdrLen {
		return nil, fmt.Errorf("%w: message shorter than its headers", ErrMalformed)
	}
	m := &Msg{Type: b[1], Seq: binary.BigEndian.Uint16(b[2:]), Peer: binary.BigEndian.Uint32(b[4:])}
	if b[0] != 0 {
		return nil, fmt.Errorf("%w: protocol version %d", ErrMalformed, b[0])
	}
	outer := b[8:]
	n := int(binary.BigEndian.Uint32(outer) & blobLenMask)
	if n < blobHdrLen || n > len(outer) {
		return nil, fmt.Errorf("%w: blob length %d", ErrMalformed, n)
	}
	attrs, err := ParseAttrs(outer[blobHdrLen:n])
	if err != nil {
		return nil, err
	}
	for _, a := range attrs {
		if a.ID > 0 && a.ID < attrMax {
			m.Attrs[a.ID], m.Has[a.ID] = a.Data, true
		}
	}
	return m, nil
}

// ReadMsg reads one message from r.
func ReadMsg(r io.Reader) (*Msg, error) {
	var h [8 + blobHdrLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(h[8:]) & blobLenMask)
	if n > maxMsg {
		// Said before reading it: a truncated read would only say EOF.
		return nil, fmt.Errorf("%w: message of %d bytes is too large (limit %d)", ErrMalformed, n, maxMsg)
	}
	if n < blobHdrLen {
		return nil, fmt.Errorf("%w: blob length %d", ErrMalformed, n)
	}
	b := make([]byte, 8+align4(n))
	copy(b, h[:])
	if _, err := io.ReadFull(r, b[len(h):8+n]); err != nil {
		return nil, err
	}
	return ParseMsg(b[:8+n])
}

// attr is one ubus attribute to send.
type attr struct {
	id   int
	data []byte
}

func u32(id int, v uint32) attr    { return attr{id, binary.BigEndian.AppendUint32(nil, v)} }
func str(id int, s string) attr    { return attr{id, append([]byte(s), 0)} }
func nested(id int, b []byte) attr { return attr{id, b} }

// EncodeMsg builds a message.
func EncodeMsg(typ uint8, seq uint16, peer uint32, attrs ...attr) []byte {
	var inner []byte
	for _, a := range attrs {
		inner = AppendAttr(inner, a.id, false, a.data)
	}
	b := []byte{0, typ}
	b = binary.BigEndian.AppendUint16(b, seq)
	b = binary.BigEndian.AppendUint32(b, peer)
	return AppendAttr(b, 0, false, inner)
}
