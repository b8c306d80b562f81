package packet_test

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Rewrite an inbound enhanced GRE packet for a LAN client: new destination
// address and the client's own Call ID, in place.
func ExampleGRE_SetCallID() {
	buf := mustHex("4500 0028 0000 4000 402f 0000 cb00 7105 c633 6407" + // IPv4, proto 47
		"3081 880b 0004 8001 0000 0002 0000 0001 ff03 0021") // GRE v1, Call ID 0x8001
	ip, err := packet.ParseIPv4(buf)
	if err != nil || ip.Protocol() != packet.ProtoGRE || ip.FragOffset() != 0 {
		return // not for us: pass it on
	}
	ip.UpdateChecksum() // the fixture was written without one
	g, err := packet.ParseGRE(ip.Payload())
	if err != nil || g.Version() != 1 {
		return
	}
	fmt.Printf("in:  dst %v call %#04x\n", ip.Dst(), g.CallID())
	ip.SetDst(netip.MustParseAddr("192.168.1.100"))
	g.SetCallID(0x4001)
	fmt.Printf("out: dst %v call %#04x checksum ok %v\n", ip.Dst(), g.CallID(), ip.ChecksumValid())
	// Output:
	// in:  dst 198.51.100.7 call 0x8001
	// out: dst 192.168.1.100 call 0x4001 checksum ok true
}

// Walk the PPTP control messages of one TCP segment's payload.
func ExamplePPTPMessageLen() {
	stream := mustHex("0010 0001 1a2b3c4d 000c 0000 4001 0000" + // Call-Clear-Request
		"0010 0001 1a2b3c4d 0005 0000 0000 0042" + // Echo-Request
		"0020 0001 1a2b") // start of a message continued in the next segment
	for len(stream) > 0 {
		n, err := packet.PPTPMessageLen(stream)
		if err == packet.ErrShort || err == nil && n > len(stream) {
			fmt.Printf("keep %d bytes for the next segment\n", len(stream))
			break
		}
		if err != nil {
			fmt.Println("framing lost:", err)
			break
		}
		m, err := packet.ParsePPTPCtrl(stream[:n])
		if err != nil {
			fmt.Println("skip:", err)
		} else if id, ok := m.CallID(); ok {
			fmt.Printf("%v, Call ID %#04x\n", m.Type(), id)
		} else {
			fmt.Println(m.Type())
		}
		stream = stream[n:]
	}
	// Output:
	// Call-Clear-Request, Call ID 0x4001
	// Echo-Request
	// keep 6 bytes for the next segment
}

// Demultiplex a UDP 4500 payload (RFC 3948).
func ExampleParseNATT() {
	for _, p := range []string{
		"ff",
		"0000 0000 0011223344556677 0000000000000000 21 20 22 08 00000000 0000001c",
		"c0ffee01 00000001 0011223344556677 0004",
	} {
		switch kind, inner := packet.ParseNATT(mustHex(p)); kind {
		case packet.NATTIKE:
			h, err := packet.ParseIKE(inner)
			fmt.Println(kind, err == nil && h.IsInitiator())
		case packet.NATTESP:
			e, _ := packet.ParseESP(inner)
			fmt.Printf("%v spi %#x\n", kind, e.SPI())
		default:
			fmt.Println(kind)
		}
	}
	// Output:
	// keepalive
	// ike true
	// esp spi 0xc0ffee01
}
