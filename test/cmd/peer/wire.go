package main

// Wire formats, written here independently of src/packet so that the lab is an
// oracle for the daemon rather than a copy of it. All fields are big-endian.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

var be = binary.BigEndian

// ---- PPTP control messages (RFC 2637 section 2) ----

const (
	pptpMagic       = 0x1A2B3C4D // RFC 2637 2.1 "Magic Cookie"
	pptpControlType = 1          // "PPTP Message Type": 1 = Control Message
	pptpHeaderLen   = 12         // Length, Message Type, Magic Cookie, Control Message Type, Reserved0

	pptpSCCRQ = 1  // Start-Control-Connection-Request
	pptpSCCRP = 2  // Start-Control-Connection-Reply
	pptpStopQ = 3  // Stop-Control-Connection-Request
	pptpStopP = 4  // Stop-Control-Connection-Reply
	pptpEchoQ = 5  // Echo-Request
	pptpEchoP = 6  // Echo-Reply
	pptpOCRQ  = 7  // Outgoing-Call-Request
	pptpOCRP  = 8  // Outgoing-Call-Reply
	pptpCCRQ  = 12 // Call-Clear-Request
	pptpCDN   = 13 // Call-Disconnect-Notify
	pptpWEN   = 14 // WAN-Error-Notify
	pptpSLI   = 15 // Set-Link-Info

	pptpProtocolVersion = 0x0100
)

// pptpSizes is the fixed size of every control message we speak (RFC 2637 2.x).
var pptpSizes = map[uint16]int{
	pptpSCCRQ: 156, pptpSCCRP: 156, pptpStopQ: 16, pptpStopP: 16,
	pptpEchoQ: 16, pptpEchoP: 20, pptpOCRQ: 168, pptpOCRP: 32,
	9: 220, 10: 24, 11: 28, // Incoming-Call-{Request,Reply,Connected}: sized, not spoken
	pptpCCRQ: 16, pptpCDN: 148, pptpWEN: 40, pptpSLI: 24,
}

// Offsets inside control messages, counted from the start of the message.
const (
	offCtrlType = 8

	// SCCRQ / SCCRP
	offSCCProtoVer = 12
	offSCCPResult  = 14 // SCCRP Result Code
	offSCCRQFrame  = 16
	offSCCBearer   = 20
	offSCCMaxChan  = 24
	offSCCFirmware = 26
	offSCCHost     = 28
	offSCCVendor   = 92

	// Stop-Control-Connection-{Request,Reply}
	offStopReason = 12 // request: Reason; reply: Result Code

	// Echo-{Request,Reply}
	offEchoID     = 12
	offEchoResult = 16

	// Outgoing-Call-Request
	offOCRQCallID  = 12
	offOCRQSerial  = 14
	offOCRQMinBPS  = 16
	offOCRQMaxBPS  = 20
	offOCRQBearer  = 24
	offOCRQFraming = 28
	offOCRQWindow  = 32
	offOCRQPhone   = 40

	// Outgoing-Call-Reply
	offOCRPCallID     = 12
	offOCRPPeerCallID = 14
	offOCRPResult     = 16
	offOCRPSpeed      = 20
	offOCRPWindow     = 24

	// Call-Clear-Request and Call-Disconnect-Notify
	offClearCallID = 12
	offCDNResult   = 14
)

// newPPTP returns a zeroed control message of type typ with its header filled in.
func newPPTP(typ uint16) []byte {
	n := pptpSizes[typ]
	b := make([]byte, n)
	be.PutUint16(b[0:], uint16(n))
	be.PutUint16(b[2:], pptpControlType)
	be.PutUint32(b[4:], pptpMagic)
	be.PutUint16(b[offCtrlType:], typ)
	return b
}

var errPPTP = errors.New("pptp: malformed control message")

// readPPTP reads one control message from r and returns it with its type.
func readPPTP(r io.Reader) ([]byte, uint16, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, 0, err
	}
	n := int(be.Uint16(hdr[:]))
	if n < pptpHeaderLen || n > 4096 {
		return nil, 0, fmt.Errorf("%w: length %d", errPPTP, n)
	}
	b := make([]byte, n)
	copy(b, hdr[:])
	if _, err := io.ReadFull(r, b[2:]); err != nil {
		return nil, 0, err
	}
	if be.Uint16(b[2:]) != pptpControlType || be.Uint32(b[4:]) != pptpMagic {
		return nil, 0, fmt.Errorf("%w: message type %d magic %#x", errPPTP, be.Uint16(b[2:]), be.Uint32(b[4:]))
	}
	typ := be.Uint16(b[offCtrlType:])
	if want, ok := pptpSizes[typ]; !ok || n != want {
		return nil, 0, fmt.Errorf("%w: control type %d with length %d", errPPTP, typ, n)
	}
	return b, typ, nil
}

func sccrq(host string) []byte {
	b := newPPTP(pptpSCCRQ)
	be.PutUint16(b[offSCCProtoVer:], pptpProtocolVersion)
	be.PutUint32(b[offSCCRQFrame:], 3)  // async + sync framing
	be.PutUint32(b[offSCCBearer:], 3)   // analog + digital
	be.PutUint16(b[offSCCMaxChan:], 0)  // PNS: must be 0
	be.PutUint16(b[offSCCFirmware:], 1) //
	copy(b[offSCCHost:offSCCHost+63], host)
	copy(b[offSCCVendor:offSCCVendor+63], "vpn-passthrough lab")
	return b
}

func sccrp(host string) []byte {
	b := newPPTP(pptpSCCRP)
	be.PutUint16(b[offSCCProtoVer:], pptpProtocolVersion)
	b[offSCCPResult] = 1 // Successful channel establishment
	be.PutUint32(b[offSCCRQFrame:], 3)
	be.PutUint32(b[offSCCBearer:], 3)
	be.PutUint16(b[offSCCMaxChan:], 64)
	be.PutUint16(b[offSCCFirmware:], 1)
	copy(b[offSCCHost:offSCCHost+63], host)
	copy(b[offSCCVendor:offSCCVendor+63], "vpn-passthrough lab")
	return b
}

func ocrq(callID, serial uint16) []byte {
	b := newPPTP(pptpOCRQ)
	be.PutUint16(b[offOCRQCallID:], callID)
	be.PutUint16(b[offOCRQSerial:], serial)
	be.PutUint32(b[offOCRQMinBPS:], 2400)
	be.PutUint32(b[offOCRQMaxBPS:], 100000000)
	be.PutUint32(b[offOCRQBearer:], 3)
	be.PutUint32(b[offOCRQFraming:], 3)
	be.PutUint16(b[offOCRQWindow:], 64)
	copy(b[offOCRQPhone:offOCRQPhone+63], "lab")
	return b
}

func ocrp(callID, peerCallID uint16) []byte {
	b := newPPTP(pptpOCRP)
	be.PutUint16(b[offOCRPCallID:], callID)
	be.PutUint16(b[offOCRPPeerCallID:], peerCallID)
	b[offOCRPResult] = 1 // Connected
	be.PutUint32(b[offOCRPSpeed:], 100000000)
	be.PutUint16(b[offOCRPWindow:], 64)
	return b
}

func echoRequest(id uint32) []byte {
	b := newPPTP(pptpEchoQ)
	be.PutUint32(b[offEchoID:], id)
	return b
}

func echoReply(id uint32) []byte {
	b := newPPTP(pptpEchoP)
	be.PutUint32(b[offEchoID:], id)
	b[offEchoResult] = 1 // OK
	return b
}

func callClear(callID uint16) []byte {
	b := newPPTP(pptpCCRQ)
	be.PutUint16(b[offClearCallID:], callID)
	return b
}

func callDisconnect(callID uint16) []byte {
	b := newPPTP(pptpCDN)
	be.PutUint16(b[offClearCallID:], callID)
	b[offCDNResult] = 3 // Call disconnected by administrative action (Call-Clear-Request)
	return b
}

func stopRequest() []byte {
	b := newPPTP(pptpStopQ)
	b[offStopReason] = 1 // General request to clear control connection
	return b
}

func stopReply() []byte {
	b := newPPTP(pptpStopP)
	b[offStopReason] = 1 // OK
	return b
}

// ---- Enhanced GRE, version 1 (RFC 2637 section 4.1) ----

const (
	greFlagC       = 0x80 // checksum present: must be 0
	greFlagR       = 0x40 // routing present: must be 0
	greFlagK       = 0x20 // key present: must be 1
	greFlagS       = 0x10 // sequence number present
	greFlagStrict  = 0x08 // strict source route: must be 0
	greRecurMask   = 0x07 // recursion control: must be 0
	greFlagA       = 0x80 // (second byte) acknowledgment number present
	greVersionMask = 0x07
	greVersion1    = 1
	greProtoPPP    = 0x880B
	greHeaderLen   = 8 // flags, version, protocol, payload length, call id
)

// greV1 builds an enhanced GRE header (K and S set) followed by payload.
// The key's high half is the payload length, the low half the peer's Call ID.
func greV1(callID uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, greHeaderLen+4+len(payload))
	b[0] = greFlagK | greFlagS
	b[1] = greVersion1
	be.PutUint16(b[2:], greProtoPPP)
	be.PutUint16(b[4:], uint16(len(payload)))
	be.PutUint16(b[6:], callID)
	be.PutUint32(b[8:], seq)
	copy(b[12:], payload)
	return b
}

type greFrame struct {
	CallID  uint16
	Seq     uint32
	HasSeq  bool
	Ack     uint32
	HasAck  bool
	Payload []byte
}

var errGRE = errors.New("gre: not an enhanced GRE v1 packet")

func parseGRE(b []byte) (greFrame, error) {
	var f greFrame
	if len(b) < greHeaderLen {
		return f, fmt.Errorf("%w: %d bytes", errGRE, len(b))
	}
	if b[0]&(greFlagC|greFlagR|greFlagStrict|greRecurMask) != 0 || b[0]&greFlagK == 0 {
		return f, fmt.Errorf("%w: flags %#02x", errGRE, b[0])
	}
	if b[1]&greVersionMask != greVersion1 || b[1]&0x78 != 0 {
		return f, fmt.Errorf("%w: version byte %#02x", errGRE, b[1])
	}
	if p := be.Uint16(b[2:]); p != greProtoPPP {
		return f, fmt.Errorf("%w: protocol %#04x", errGRE, p)
	}
	plen := int(be.Uint16(b[4:]))
	f.CallID = be.Uint16(b[6:])
	off := greHeaderLen
	if b[0]&greFlagS != 0 {
		if len(b) < off+4 {
			return f, fmt.Errorf("%w: short sequence number", errGRE)
		}
		f.Seq, f.HasSeq = be.Uint32(b[off:]), true
		off += 4
	}
	if b[1]&greFlagA != 0 {
		if len(b) < off+4 {
			return f, fmt.Errorf("%w: short acknowledgment number", errGRE)
		}
		f.Ack, f.HasAck = be.Uint32(b[off:]), true
		off += 4
	}
	if len(b) < off+plen {
		return f, fmt.Errorf("%w: payload length %d beyond %d bytes", errGRE, plen, len(b)-off)
	}
	f.Payload = b[off : off+plen]
	return f, nil
}

// ---- ESP (RFC 4303 section 2) and AH (RFC 4302 section 2) ----

const (
	espHeaderLen = 8  // SPI, Sequence Number
	ahICVLen     = 12 // HMAC-SHA1-96 sized Integrity Check Value
	ahHeaderLen  = 12 + ahICVLen
	ipProtoNone  = 59 // "No Next Header"
)

func esp(spi, seq uint32, payload []byte) []byte {
	b := make([]byte, espHeaderLen+len(payload))
	be.PutUint32(b[0:], spi)
	be.PutUint32(b[4:], seq)
	copy(b[8:], payload)
	return b
}

func parseESP(b []byte) (spi, seq uint32, payload []byte, err error) {
	if len(b) < espHeaderLen {
		return 0, 0, nil, fmt.Errorf("esp: %d bytes", len(b))
	}
	spi = be.Uint32(b)
	if spi == 0 {
		return 0, 0, nil, errors.New("esp: SPI 0 is reserved")
	}
	return spi, be.Uint32(b[4:]), b[8:], nil
}

func ah(spi, seq uint32, payload []byte) []byte {
	b := make([]byte, ahHeaderLen+len(payload))
	b[0] = ipProtoNone
	b[1] = ahHeaderLen/4 - 2 // Payload Len: AH length in 32-bit words, minus 2
	be.PutUint32(b[4:], spi)
	be.PutUint32(b[8:], seq)
	copy(b[ahHeaderLen:], payload)
	return b
}

func parseAH(b []byte) (spi, seq uint32, payload []byte, err error) {
	if len(b) < 12 {
		return 0, 0, nil, fmt.Errorf("ah: %d bytes", len(b))
	}
	n := (int(b[1]) + 2) * 4
	if n < 12 || len(b) < n {
		return 0, 0, nil, fmt.Errorf("ah: payload len %d for %d bytes", b[1], len(b))
	}
	spi = be.Uint32(b[4:])
	if spi == 0 {
		return 0, 0, nil, errors.New("ah: SPI 0 is reserved")
	}
	return spi, be.Uint32(b[8:]), b[n:], nil
}

// ---- IKEv2 (RFC 7296 section 3.1) and NAT-T (RFC 3948 section 2.2) ----

const (
	ikeHeaderLen     = 28
	ikeVersion2      = 0x20 // major 2, minor 0
	ikeSAInit        = 34   // Exchange Type IKE_SA_INIT
	ikeFlagInitiator = 0x08
	ikeFlagResponse  = 0x20
	ikePayloadNonce  = 40
	nonESPMarkerLen  = 4 // RFC 3948: four zero octets before IKE on port 4500
)

type ikeMsg struct {
	ISPI, RSPI uint64
	Flags      uint8
	MsgID      uint32
	Nonce      []byte
}

// ikeMessage builds an IKE_SA_INIT header with one Nonce payload.
// RFC 7296 3.9: a nonce is 16 to 256 octets, so short ones are padded.
func ikeMessage(m ikeMsg) []byte {
	nonce := m.Nonce
	if len(nonce) < 16 {
		nonce = append(append([]byte{}, nonce...), make([]byte, 16-len(nonce))...)
	}
	n := ikeHeaderLen + 4 + len(nonce)
	b := make([]byte, n)
	be.PutUint64(b[0:], m.ISPI)
	be.PutUint64(b[8:], m.RSPI)
	b[16] = ikePayloadNonce
	b[17] = ikeVersion2
	b[18] = ikeSAInit
	b[19] = m.Flags
	be.PutUint32(b[20:], m.MsgID)
	be.PutUint32(b[24:], uint32(n))
	// generic payload header: next payload none, not critical, length
	be.PutUint16(b[30:], uint16(4+len(nonce)))
	copy(b[32:], nonce)
	return b
}

func parseIKE(b []byte) (ikeMsg, error) {
	var m ikeMsg
	if len(b) < ikeHeaderLen {
		return m, fmt.Errorf("ike: %d bytes", len(b))
	}
	if b[17] != ikeVersion2 {
		return m, fmt.Errorf("ike: version %#02x", b[17])
	}
	if l := be.Uint32(b[24:]); int(l) != len(b) {
		return m, fmt.Errorf("ike: length field %d for a %d byte message", l, len(b))
	}
	m.ISPI, m.RSPI, m.Flags, m.MsgID = be.Uint64(b), be.Uint64(b[8:]), b[19], be.Uint32(b[20:])
	if m.ISPI == 0 {
		return m, errors.New("ike: initiator SPI 0")
	}
	if b[16] == ikePayloadNonce && len(b) >= ikeHeaderLen+4 {
		pl := int(be.Uint16(b[30:]))
		if pl < 4 || ikeHeaderLen+pl > len(b) {
			return m, fmt.Errorf("ike: nonce payload length %d", pl)
		}
		m.Nonce = b[32 : ikeHeaderLen+pl]
	}
	return m, nil
}

// ---- L2TPv2 control messages (RFC 2661 sections 3.1 and 4) ----

const (
	l2tpFlagsControl = 0xC802 // T=1 L=1 S=1, Ver=2
	l2tpHeaderLen    = 12
	l2tpAVPMandatory = 0x8000
	l2tpSCCRQ        = 1
	l2tpSCCRP        = 2

	avpMessageType     = 0
	avpProtocolVersion = 2
	avpHostName        = 7
	avpAssignedTunnel  = 9
)

type l2tpMsg struct {
	TunnelID, SessionID uint16
	Ns, Nr              uint16
	Type                uint16
	AssignedTunnel      uint16
	HostName            string
}

func l2tpAVP(attr uint16, val []byte) []byte {
	b := make([]byte, 6+len(val))
	be.PutUint16(b[0:], l2tpAVPMandatory|uint16(len(b)))
	be.PutUint16(b[4:], attr)
	copy(b[6:], val)
	return b
}

func l2tpControl(m l2tpMsg) []byte {
	var avps []byte
	u16 := func(v uint16) []byte { return be.AppendUint16(nil, v) }
	avps = append(avps, l2tpAVP(avpMessageType, u16(m.Type))...)
	avps = append(avps, l2tpAVP(avpProtocolVersion, []byte{1, 0})...)
	avps = append(avps, l2tpAVP(avpHostName, []byte(m.HostName))...)
	avps = append(avps, l2tpAVP(avpAssignedTunnel, u16(m.AssignedTunnel))...)
	b := make([]byte, l2tpHeaderLen, l2tpHeaderLen+len(avps))
	be.PutUint16(b[0:], l2tpFlagsControl)
	be.PutUint16(b[2:], uint16(l2tpHeaderLen+len(avps)))
	be.PutUint16(b[4:], m.TunnelID)
	be.PutUint16(b[6:], m.SessionID)
	be.PutUint16(b[8:], m.Ns)
	be.PutUint16(b[10:], m.Nr)
	return append(b, avps...)
}

func parseL2TP(b []byte) (l2tpMsg, error) {
	var m l2tpMsg
	if len(b) < l2tpHeaderLen {
		return m, fmt.Errorf("l2tp: %d bytes", len(b))
	}
	if f := be.Uint16(b); f != l2tpFlagsControl {
		return m, fmt.Errorf("l2tp: flags/version %#04x is not a v2 control message", f)
	}
	if l := int(be.Uint16(b[2:])); l != len(b) {
		return m, fmt.Errorf("l2tp: length field %d for %d bytes", l, len(b))
	}
	m.TunnelID, m.SessionID, m.Ns, m.Nr = be.Uint16(b[4:]), be.Uint16(b[6:]), be.Uint16(b[8:]), be.Uint16(b[10:])
	first := true
	for off := l2tpHeaderLen; off < len(b); {
		if len(b)-off < 6 {
			return m, fmt.Errorf("l2tp: truncated AVP at %d", off)
		}
		l := int(be.Uint16(b[off:]) & 0x03ff)
		if l < 6 || off+l > len(b) {
			return m, fmt.Errorf("l2tp: AVP length %d at %d", l, off)
		}
		attr, val := be.Uint16(b[off+4:]), b[off+6:off+l]
		if first && attr != avpMessageType {
			return m, errors.New("l2tp: first AVP is not Message Type")
		}
		first = false
		switch attr {
		case avpMessageType:
			if len(val) == 2 {
				m.Type = be.Uint16(val)
			}
		case avpHostName:
			m.HostName = string(val)
		case avpAssignedTunnel:
			if len(val) == 2 {
				m.AssignedTunnel = be.Uint16(val)
			}
		}
		off += l
	}
	if first {
		return m, errors.New("l2tp: no AVPs")
	}
	return m, nil
}
