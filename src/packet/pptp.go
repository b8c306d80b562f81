package packet

import "encoding/binary"

// PPTP control connection constants (RFC 2637 section 2).
const (
	// PPTPMagicCookie is the fixed Magic Cookie of every PPTP message.
	PPTPMagicCookie = 0x1A2B3C4D
	// PPTPMessageTypeControl is the PPTP Message Type of control messages,
	// the only type defined (2, management, has no messages).
	PPTPMessageTypeControl = 1
	// PPTPHeaderLen is the header shared by all control messages: Length,
	// PPTP Message Type, Magic Cookie, Control Message Type, Reserved0.
	PPTPHeaderLen = 12
	// PPTPMaxLen is the longest control message, Incoming-Call-Request.
	PPTPMaxLen = 220
)

const (
	pptpLength   = 0
	pptpMsgType  = 2
	pptpMagic    = 4
	pptpCtrlType = 8
	pptpBody     = 12 // first field after Reserved0
)

// PPTPCtrlType is the Control Message Type (RFC 2637 section 1.4 and the
// section 2 subsection named after each constant).
type PPTPCtrlType uint16

// Control Message Types, RFC 2637 section 2.1 to 2.15.
const (
	PPTPStartCtrlConnRequest PPTPCtrlType = 1  // 2.1 SCCRQ
	PPTPStartCtrlConnReply   PPTPCtrlType = 2  // 2.2 SCCRP
	PPTPStopCtrlConnRequest  PPTPCtrlType = 3  // 2.3 StopCCRQ
	PPTPStopCtrlConnReply    PPTPCtrlType = 4  // 2.4 StopCCRP
	PPTPEchoRequest          PPTPCtrlType = 5  // 2.5
	PPTPEchoReply            PPTPCtrlType = 6  // 2.6
	PPTPOutgoingCallRequest  PPTPCtrlType = 7  // 2.7 OCRQ
	PPTPOutgoingCallReply    PPTPCtrlType = 8  // 2.8 OCRP
	PPTPIncomingCallRequest  PPTPCtrlType = 9  // 2.9 ICRQ
	PPTPIncomingCallReply    PPTPCtrlType = 10 // 2.10 ICRP
	PPTPIncomingCallConn     PPTPCtrlType = 11 // 2.11 ICCN
	PPTPCallClearRequest     PPTPCtrlType = 12 // 2.12 CCRQ
	PPTPCallDisconnectNotify PPTPCtrlType = 13 // 2.13 CDN
	PPTPWANErrorNotify       PPTPCtrlType = 14 // 2.14 WEN
	PPTPSetLinkInfo          PPTPCtrlType = 15 // 2.15 SLI
)

// pptpLayout is what this package knows of one control message type.
type pptpLayout struct {
	name    string
	length  uint16 // fixed total length, header included
	callID  int8   // offset of the sender's own Call ID, or -1
	peerID  int8   // offset of the Peer's Call ID, or -1
	result  int8   // offset of the Result Code, or -1
	errCode int8   // offset of the Error Code, or -1
}

// layout returns the message layout of t. Lengths and offsets are the
// message diagrams of RFC 2637 section 2.x; the Length field counts the whole
// message, header included. A switch rather than a table keeps the package
// free of mutable globals.
func (t PPTPCtrlType) layout() pptpLayout {
	switch t {
	case PPTPStartCtrlConnRequest:
		// 2.1: Protocol Version, Reserved1, Framing/Bearer Capabilities,
		// Maximum Channels, Firmware Revision, Host Name (64), Vendor (64).
		return pptpLayout{"Start-Control-Connection-Request", 156, -1, -1, -1, -1}
	case PPTPStartCtrlConnReply:
		// 2.2: as 2.1 with Result Code and Error Code in place of Reserved1.
		return pptpLayout{"Start-Control-Connection-Reply", 156, -1, -1, 14, 15}
	case PPTPStopCtrlConnRequest:
		// 2.3: Reason, Reserved1, Reserved2.
		return pptpLayout{"Stop-Control-Connection-Request", 16, -1, -1, -1, -1}
	case PPTPStopCtrlConnReply:
		// 2.4: Result Code, Error Code, Reserved1.
		return pptpLayout{"Stop-Control-Connection-Reply", 16, -1, -1, 12, 13}
	case PPTPEchoRequest:
		// 2.5: Identifier.
		return pptpLayout{"Echo-Request", 16, -1, -1, -1, -1}
	case PPTPEchoReply:
		// 2.6: Identifier, Result Code, Error Code, Reserved1.
		return pptpLayout{"Echo-Reply", 20, -1, -1, 16, 17}
	case PPTPOutgoingCallRequest:
		// 2.7: Call ID, Call Serial Number, Minimum/Maximum BPS, Bearer
		// Type, Framing Type, Packet Recv. Window Size, Packet Processing
		// Delay, Phone Number Length, Reserved1, Phone Number (64),
		// Subaddress (64).
		return pptpLayout{"Outgoing-Call-Request", 168, 12, -1, -1, -1}
	case PPTPOutgoingCallReply:
		// 2.8: Call ID, Peer's Call ID, Result Code, Error Code, Cause Code,
		// Connect Speed, Packet Recv. Window Size, Packet Processing Delay,
		// Physical Channel ID.
		return pptpLayout{"Outgoing-Call-Reply", 32, 12, 14, 16, 17}
	case PPTPIncomingCallRequest:
		// 2.9: Call ID, Call Serial Number, Call Bearer Type, Physical
		// Channel ID, Dialed/Dialing Number Length, Dialed Number (64),
		// Dialing Number (64), Subaddress (64).
		return pptpLayout{"Incoming-Call-Request", 220, 12, -1, -1, -1}
	case PPTPIncomingCallReply:
		// 2.10: Call ID, Peer's Call ID, Result Code, Error Code, Packet
		// Recv. Window Size, Packet Transmit Delay, Reserved1.
		return pptpLayout{"Incoming-Call-Reply", 24, 12, 14, 16, 17}
	case PPTPIncomingCallConn:
		// 2.11: Peer's Call ID (no Call ID of its own), Reserved1, Connect
		// Speed, Packet Recv. Window Size, Packet Transmit Delay, Framing Type.
		return pptpLayout{"Incoming-Call-Connected", 28, -1, 12, -1, -1}
	case PPTPCallClearRequest:
		// 2.12: Call ID (the sending PNS's own, not the peer's), Reserved1.
		return pptpLayout{"Call-Clear-Request", 16, 12, -1, -1, -1}
	case PPTPCallDisconnectNotify:
		// 2.13: Call ID (the sending PAC's own), Result Code, Error Code,
		// Cause Code, Reserved1, Call Statistics (128).
		return pptpLayout{"Call-Disconnect-Notify", 148, 12, -1, 14, 15}
	case PPTPWANErrorNotify:
		// 2.14: Peer's Call ID, Reserved1, six 32-bit error counters.
		return pptpLayout{"WAN-Error-Notify", 40, -1, 12, -1, -1}
	case PPTPSetLinkInfo:
		// 2.15: Peer's Call ID, Reserved1, Send ACCM, Receive ACCM.
		return pptpLayout{"Set-Link-Info", 24, -1, 12, -1, -1}
	}
	return pptpLayout{"Unknown", 0, -1, -1, -1, -1}
}

// Known reports whether t is one of the 15 types of RFC 2637.
func (t PPTPCtrlType) Known() bool { return t >= PPTPStartCtrlConnRequest && t <= PPTPSetLinkInfo }

// String is the RFC 2637 name of the type, or "Unknown".
func (t PPTPCtrlType) String() string { return t.layout().name }

// Len is the fixed total length of a message of type t, or 0 if unknown.
func (t PPTPCtrlType) Len() int { return int(t.layout().length) }

// CallIDOffset is the offset from the start of the message of the sender's
// own Call ID field, or -1 if messages of type t have none. Engines that
// rewrite a message split across TCP segments need it.
func (t PPTPCtrlType) CallIDOffset() int { return int(t.layout().callID) }

// PeerCallIDOffset is the offset of the Peer's Call ID field, or -1.
func (t PPTPCtrlType) PeerCallIDOffset() int { return int(t.layout().peerID) }

// PPTPMessageLen reports the total length of the PPTP message at the front of
// a TCP byte stream, from its Length field, once the first 8 bytes (Length,
// PPTP Message Type, Magic Cookie) are there; ErrShort means "read more".
// The length may exceed len(stream): wait for that many bytes.
//
// ErrMagic and ErrLength (Length below 12 or above PPTPMaxLen) mean the
// framing is lost: the caller cannot find the next message and should stop
// interpreting this connection. A message of an unknown type but sane length
// and magic can be skipped by its length.
func PPTPMessageLen(stream []byte) (int, error) {
	if len(stream) < pptpMagic+4 {
		return 0, ErrShort
	}
	if binary.BigEndian.Uint32(stream[pptpMagic:]) != PPTPMagicCookie {
		return 0, ErrMagic
	}
	n := int(binary.BigEndian.Uint16(stream[pptpLength:]))
	if n < PPTPHeaderLen || n > PPTPMaxLen {
		return 0, ErrLength
	}
	return n, nil
}

// PPTPCtrl is one PPTP control message (RFC 2637 section 2) returned by
// ParsePPTPCtrl, cut to its Length.
//
// Call IDs: each side names a call by the Call ID it chose; a message carries
// the sender's own ID in "Call ID" and the receiver's in "Peer's Call ID".
// The GRE packets of the call carry the receiver's ID (GRE.CallID).
type PPTPCtrl []byte

// ParsePPTPCtrl validates the message at the front of b: magic cookie
// (ErrMagic), a Length that b holds (ErrShort) and that is the fixed length
// RFC 2637 gives the type (ErrLength), PPTP Message Type 1 and a known
// Control Message Type (ErrProtocol). Bytes after the message are left to
// the caller: use PPTPMessageLen to walk a stream.
func ParsePPTPCtrl(b []byte) (PPTPCtrl, error) {
	n, err := PPTPMessageLen(b)
	if err != nil {
		return nil, err
	}
	if len(b) < n {
		return nil, ErrShort
	}
	if binary.BigEndian.Uint16(b[pptpMsgType:]) != PPTPMessageTypeControl {
		return nil, ErrProtocol
	}
	t := PPTPCtrlType(binary.BigEndian.Uint16(b[pptpCtrlType:]))
	if !t.Known() {
		return nil, ErrProtocol
	}
	if n != t.Len() {
		return nil, ErrLength
	}
	return PPTPCtrl(b[:n]), nil
}

// Length is the Length field: the whole message in bytes.
func (m PPTPCtrl) Length() int { return int(binary.BigEndian.Uint16(m[pptpLength:])) }

// MessageType is the PPTP Message Type (PPTPMessageTypeControl).
func (m PPTPCtrl) MessageType() uint16 { return binary.BigEndian.Uint16(m[pptpMsgType:]) }

// Magic is the Magic Cookie (PPTPMagicCookie).
func (m PPTPCtrl) Magic() uint32 { return binary.BigEndian.Uint32(m[pptpMagic:]) }

// Type is the Control Message Type.
func (m PPTPCtrl) Type() PPTPCtrlType {
	return PPTPCtrlType(binary.BigEndian.Uint16(m[pptpCtrlType:]))
}

// field16 reads the 16-bit field at off, if off >= 0.
func (m PPTPCtrl) field16(off int8) (uint16, bool) {
	if off < 0 {
		return 0, false
	}
	return binary.BigEndian.Uint16(m[off:]), true
}

func (m PPTPCtrl) setField16(off int8, v uint16) bool {
	if off < 0 {
		return false
	}
	binary.BigEndian.PutUint16(m[off:], v)
	return true
}

// CallID is the sender's own Call ID, and whether this message type has one:
// Outgoing-Call-Request/Reply, Incoming-Call-Request/Reply,
// Call-Clear-Request and Call-Disconnect-Notify.
func (m PPTPCtrl) CallID() (uint16, bool) { return m.field16(m.Type().layout().callID) }

// SetCallID rewrites the Call ID in place and reports whether the message
// has one. The caller updates the TCP checksum (TCP.Rewrite16 does both).
func (m PPTPCtrl) SetCallID(id uint16) bool {
	return m.setField16(m.Type().layout().callID, id)
}

// PeerCallID is the Peer's Call ID, and whether this message type has one:
// Outgoing-Call-Reply, Incoming-Call-Reply, Incoming-Call-Connected,
// WAN-Error-Notify and Set-Link-Info.
func (m PPTPCtrl) PeerCallID() (uint16, bool) { return m.field16(m.Type().layout().peerID) }

// SetPeerCallID rewrites the Peer's Call ID in place and reports whether the
// message has one.
func (m PPTPCtrl) SetPeerCallID(id uint16) bool {
	return m.setField16(m.Type().layout().peerID, id)
}

// ResultCode is the Result Code, and whether this message type has one
// (SCCRP, StopCCRP, Echo-Reply, OCRP, ICRP, CDN).
func (m PPTPCtrl) ResultCode() (uint8, bool) {
	off := m.Type().layout().result
	if off < 0 {
		return 0, false
	}
	return m[off], true
}

// ErrorCode is the General Error Code that goes with ResultCode.
func (m PPTPCtrl) ErrorCode() (uint8, bool) {
	off := m.Type().layout().errCode
	if off < 0 {
		return 0, false
	}
	return m[off], true
}
