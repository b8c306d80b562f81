package packet

import "encoding/binary"

// ESP sizes (RFC 4303 section 2).
const (
	// ESPHeaderLen is the SPI and Sequence Number in front of the payload.
	ESPHeaderLen = 8
	// ESPMinLen is the shortest well-formed ESP packet: the header plus the
	// Pad Length and Next Header bytes of the trailer, with empty payload,
	// no padding and no ICV.
	ESPMinLen = ESPHeaderLen + 2
)

const (
	espSPI = 0
	espSeq = 4
)

// ESP is an ESP packet (RFC 4303 section 2) returned by ParseESP: raw on IP
// protocol 50, or after the UDP header on port 4500 (RFC 3948 section 2.1).
// Everything after the header is encrypted and covered by the ICV, so this
// package offers no setters: rewriting the SPI would break integrity.
//
//	|               Security Parameters Index (SPI)                 |
//	|                      Sequence Number                          |
//	|                    Payload Data* (variable)                   |
type ESP []byte

// ParseESP validates b as ESP: at least ESPMinLen bytes (ErrShort) and a
// non-zero SPI (ErrZeroSPI; RFC 4303 section 2.1 reserves 0 and forbids it
// on the wire, and on UDP 4500 zero marks IKE instead, RFC 3948 section 2.2).
func ParseESP(b []byte) (ESP, error) {
	if len(b) < ESPMinLen {
		return nil, ErrShort
	}
	if binary.BigEndian.Uint32(b[espSPI:]) == 0 {
		return nil, ErrZeroSPI
	}
	return ESP(b), nil
}

// SPI is the Security Parameters Index, chosen by the receiver of this SA.
func (e ESP) SPI() uint32 { return binary.BigEndian.Uint32(e[espSPI:]) }

// Seq is the Sequence Number (the low 32 bits when ESN is in use).
func (e ESP) Seq() uint32 { return binary.BigEndian.Uint32(e[espSeq:]) }

// Payload is the data after the header: IV, ciphertext, trailer and ICV.
func (e ESP) Payload() []byte { return e[ESPHeaderLen:] }
