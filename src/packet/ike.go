package packet

import "encoding/binary"

// IKEHeaderLen is the fixed IKE header: the same 28 bytes in IKEv2
// (RFC 7296 section 3.1) and ISAKMP/IKEv1 (RFC 2408 section 3.1, where the
// SPIs are called cookies).
const IKEHeaderLen = 28

const (
	ikeSPIi    = 0
	ikeSPIr    = 8
	ikeNext    = 16
	ikeVersion = 17
	ikeExch    = 18
	ikeFlags   = 19
	ikeMsgID   = 20
	ikeLength  = 24
)

// IKEv2 header flags (RFC 7296 section 3.1).
const (
	IKEFlagInitiator = 0x08 // I: sent by the original initiator of the IKE SA
	IKEFlagVersion   = 0x10 // V: sender can speak a higher major version
	IKEFlagResponse  = 0x20 // R: this message is a response
)

// ISAKMP/IKEv1 header flags (RFC 2408 section 3.1).
const (
	IKEv1FlagEncryption = 0x01 // E: payloads after the header are encrypted
	IKEv1FlagCommit     = 0x02 // C
	IKEv1FlagAuthOnly   = 0x04 // A
)

// Exchange types: IKEv2 (RFC 7296 section 3.1) and IKEv1 (RFC 2408 section
// 3.1 and RFC 2409 for Quick Mode).
const (
	IKEv2ExchangeSAInit        = 34
	IKEv2ExchangeAuth          = 35
	IKEv2ExchangeCreateChildSA = 36
	IKEv2ExchangeInformational = 37

	IKEv1ExchangeIdentityProtection = 2 // Main Mode
	IKEv1ExchangeAggressive         = 4
	IKEv1ExchangeInformational      = 5
	IKEv1ExchangeQuickMode          = 32
)

// IKEHeader is an IKE message (header and payloads) returned by ParseIKE, cut
// to the header's Length. On UDP 500 it starts the UDP payload; on UDP 4500
// it follows the 4-byte non-ESP marker (see ParseNATT).
//
//	|                       IKE SA Initiator's SPI                  |
//	|                       IKE SA Responder's SPI                  |
//	|  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//	|                          Message ID                           |
//	|                            Length                             |
type IKEHeader []byte

// ParseIKE validates b as an IKE message: at least 28 bytes (ErrShort), major
// version 1 or 2 (ErrVersion), and a Length of at least 28 (ErrLength) that
// b holds (ErrShort). It returns b cut to Length.
func ParseIKE(b []byte) (IKEHeader, error) {
	if len(b) < IKEHeaderLen {
		return nil, ErrShort
	}
	if v := b[ikeVersion] >> 4; v != 1 && v != 2 {
		return nil, ErrVersion
	}
	n := binary.BigEndian.Uint32(b[ikeLength:])
	if n < IKEHeaderLen {
		return nil, ErrLength
	}
	if n > uint32(len(b)) {
		return nil, ErrShort
	}
	return IKEHeader(b[:n]), nil
}

// InitiatorSPI is the IKE SA Initiator's SPI (IKEv1: initiator cookie).
func (h IKEHeader) InitiatorSPI() uint64 { return binary.BigEndian.Uint64(h[ikeSPIi:]) }

// ResponderSPI is the IKE SA Responder's SPI; zero in the first message.
func (h IKEHeader) ResponderSPI() uint64 { return binary.BigEndian.Uint64(h[ikeSPIr:]) }

// NextPayload is the type of the first payload.
func (h IKEHeader) NextPayload() uint8 { return h[ikeNext] }

// Version is the version byte: major version in the high nibble.
func (h IKEHeader) Version() uint8 { return h[ikeVersion] }

// MajorVersion is 1 (IKEv1/ISAKMP) or 2 (IKEv2).
func (h IKEHeader) MajorVersion() uint8 { return h[ikeVersion] >> 4 }

// MinorVersion is the low nibble of the version byte.
func (h IKEHeader) MinorVersion() uint8 { return h[ikeVersion] & 0x0f }

// ExchangeType is the Exchange Type (IKEv2Exchange*, IKEv1Exchange*).
func (h IKEHeader) ExchangeType() uint8 { return h[ikeExch] }

// Flags is the flags byte (IKEFlag* for IKEv2, IKEv1Flag* for IKEv1).
func (h IKEHeader) Flags() uint8 { return h[ikeFlags] }

// IsInitiator reports the IKEv2 I flag; always false for IKEv1, which has no
// such flag.
func (h IKEHeader) IsInitiator() bool {
	return h.MajorVersion() == 2 && h[ikeFlags]&IKEFlagInitiator != 0
}

// IsResponse reports the IKEv2 R flag; always false for IKEv1.
func (h IKEHeader) IsResponse() bool {
	return h.MajorVersion() == 2 && h[ikeFlags]&IKEFlagResponse != 0
}

// MessageID is the Message ID.
func (h IKEHeader) MessageID() uint32 { return binary.BigEndian.Uint32(h[ikeMsgID:]) }

// Length is the Length field: the whole message, header included.
func (h IKEHeader) Length() uint32 { return binary.BigEndian.Uint32(h[ikeLength:]) }

// Payload is the data after the fixed header (the payload chain).
func (h IKEHeader) Payload() []byte { return h[IKEHeaderLen:] }

// NATTKind is what a UDP 4500 datagram carries (RFC 3948 section 2).
type NATTKind uint8

const (
	// NATTInvalid: matches none of the forms below (too short, or a
	// single byte other than 0xFF).
	NATTInvalid NATTKind = iota
	// NATTKeepalive: a single 0xFF byte (RFC 3948 section 2.3).
	NATTKeepalive
	// NATTIKE: a 4-byte zero non-ESP marker, then IKE (RFC 3948 section
	// 2.2; the marker is where an SPI would be, and an SPI is never zero).
	NATTIKE
	// NATTESP: UDP-encapsulated ESP (RFC 3948 section 2.1), non-zero SPI.
	NATTESP
)

// String names the kind for logs and status.
func (k NATTKind) String() string {
	switch k {
	case NATTKeepalive:
		return "keepalive"
	case NATTIKE:
		return "ike"
	case NATTESP:
		return "esp"
	}
	return "invalid"
}

// natTMarkerLen is the length of the non-ESP marker (RFC 3948 section 2.2).
const natTMarkerLen = 4

// ParseNATT classifies the payload of a UDP 4500 datagram by the rules of
// RFC 3948 section 2 and returns the inner message: the IKE message after the
// non-ESP marker (pass it to ParseIKE), the ESP packet (pass it to ParseESP),
// or nil for a keepalive or an invalid payload.
func ParseNATT(udpPayload []byte) (NATTKind, []byte) {
	b := udpPayload
	if len(b) == 1 {
		if b[0] == 0xff {
			return NATTKeepalive, nil
		}
		return NATTInvalid, nil
	}
	if len(b) < natTMarkerLen {
		return NATTInvalid, nil
	}
	if binary.BigEndian.Uint32(b) == 0 {
		return NATTIKE, b[natTMarkerLen:]
	}
	if len(b) < ESPMinLen {
		return NATTInvalid, nil
	}
	return NATTESP, b
}
