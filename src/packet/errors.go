package packet

import "errors"

// Sentinel errors. Parsers return exactly these values (never wrapped, never
// formatted) so that the hot path does not allocate; callers compare with ==
// or errors.Is and count drops by kind.
var (
	// ErrShort: the buffer is shorter than the header, or than the length
	// the header claims. For a PPTP byte stream it means "wait for more".
	ErrShort = errors.New("packet: short buffer")
	// ErrVersion: a version field holds a value this package does not handle.
	ErrVersion = errors.New("packet: unsupported version")
	// ErrHeaderLen: a header length field is below the protocol minimum or
	// points past the end of the packet.
	ErrHeaderLen = errors.New("packet: bad header length")
	// ErrLength: a length field disagrees with the buffer or the protocol
	// (for example an IPv4 total length larger than the packet).
	ErrLength = errors.New("packet: bad length field")
	// ErrFlags: a flag combination the protocol forbids (for example enhanced
	// GRE without the K bit).
	ErrFlags = errors.New("packet: bad flags")
	// ErrProtocol: a protocol or message type field holds a value that does
	// not belong here (for example GRE version 1 not carrying PPP).
	ErrProtocol = errors.New("packet: unexpected protocol or message type")
	// ErrMagic: a PPTP control message without the magic cookie 0x1A2B3C4D.
	// On a TCP stream this means the framing is lost.
	ErrMagic = errors.New("packet: bad PPTP magic cookie")
	// ErrZeroSPI: an ESP SPI of zero, which RFC 4303 section 2.1 reserves
	// and forbids on the wire.
	ErrZeroSPI = errors.New("packet: ESP SPI is zero")
)
