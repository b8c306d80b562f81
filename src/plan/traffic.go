package plan

import (
	"fmt"
	"strings"

	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// Traffic is one kind of packet a protocol is made of, as it leaves the LAN:
// an IP protocol and, for TCP and UDP, the server's port. This table is the
// one place that says which ports belong to which protocol; blocks, pass
// counters, helper rules, `check`'s wording and status's session kinds are
// all derived from it.
type Traffic struct {
	Proto Proto
	Kind  string // session kind in status: "pptp", "gre", "esp", "ike", ...
	L4    L4
	Port  uint16 // server port (TCP/UDP only)
}

var traffic = []Traffic{
	{PPTP, "pptp", ProtoTCP, packet.PortPPTP},
	{PPTP, "gre", ProtoGRE, 0},
	{L2TP, "l2tp", ProtoUDP, packet.PortL2TP},
	{IPsec, "esp", ProtoESP, 0},
	{IPsec, "ah", ProtoAH, 0},
	{IPsec, "ike", ProtoUDP, packet.PortIKE},
	{IPsec, "nat-t", ProtoUDP, packet.PortNATT},
}

// TrafficOf lists what a protocol's traffic looks like, in a fixed order.
func TrafficOf(pr Proto) []Traffic {
	var out []Traffic
	for _, t := range traffic {
		if t.Proto == pr {
			out = append(out, t)
		}
	}
	return out
}

// Classify names the traffic an IP protocol number and server port belong
// to (a conntrack orig tuple's destination, say); ok is false for anything
// vpn-passthrough does not handle.
func Classify(l4 uint8, dport uint16) (Traffic, bool) {
	for _, t := range traffic {
		if uint8(t.L4) != l4 {
			continue
		}
		if t.Port == 0 || t.Port == dport {
			return t, true
		}
	}
	return Traffic{}, false
}

// String is the traffic as a user reads it: "TCP 1723", "GRE".
func (t Traffic) String() string {
	s := strings.ToUpper(t.L4.String())
	if t.Port != 0 {
		s += fmt.Sprintf(" %d", t.Port)
	}
	return s
}

// describe lists a protocol's traffic in prose: "ESP, AH, UDP 500 and UDP 4500".
func describe(pr Proto) string {
	var parts []string
	for _, t := range TrafficOf(pr) {
		parts = append(parts, t.String())
	}
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
