package plan

import (
	"fmt"
	"strings"
)

// Inbound traffic to the LAN. fw4's stock rules Allow-IPSec-ESP and
// Allow-ISAKMP accept ESP and UDP 500 from any WAN host to any LAN host, and
// a router upstream of the LAN segment can route anything to LAN addresses.
// Our forward chain runs before fw4's, and a drop is final, so:
//
//   - protocol on: a WAN->LAN packet of the protocol that conntrack sees as
//     new (no LAN client opened its flow, no expectation relates it) is
//     dropped and counted as unsolicited_<kind>. Replies (established),
//     PPTP's GRE (related to the control connection's expectation) and what
//     an engine forwarded (untracked and marked) are not new.
//   - protocol off: every WAN->LAN packet of the protocol is dropped, in
//     either port direction, and counted in blocked_<proto>.
//   - a port forward wins in both cases: a packet fw4 DNATed to a LAN host
//     (ct status dnat) is left to fw4, which accepts it through the
//     redirect. A LAN host that really serves IPsec, PPTP or L2TP to the
//     WAN is port-forwarded; it needs no passthrough.

// UnsolicitedCounter counts unsolicited inbound packets of one traffic kind
// dropped on their way to the LAN.
func UnsolicitedCounter(t Traffic) string {
	return "unsolicited_" + strings.ReplaceAll(t.Kind, "-", "")
}

// unsolicitedRules drop new WAN->LAN flows of an enabled protocol's traffic
// that are not port forwards. AH is included: it cannot pass NAT at all.
func unsolicitedRules(pr Proto) ([]Rule, []string) {
	var rules []Rule
	var counters []string
	for _, t := range TrafficOf(pr) {
		c := UnsolicitedCounter(t)
		rules = append(rules, Rule{
			Comment: fmt.Sprintf("vpn-passthrough: unsolicited %s to the LAN (no LAN client opened it, no port forward)", t),
			IIFSet:  SetWAN, OIFSet: SetLAN, L4: t.L4, DPort: t.Port,
			CtState: CtStateNew, NotDNAT: true,
			Counter: c, Verdict: VerdictDrop,
		})
		counters = append(counters, c)
	}
	return rules, counters
}

// blockInboundRules drop a disabled protocol's traffic WAN->LAN, replies and
// unsolicited alike (either port direction), unless it is a port forward.
func blockInboundRules(pr Proto, log bool) []Rule {
	var rules []Rule
	for _, t := range TrafficOf(pr) {
		var ms []Rule
		base := Rule{IIFSet: SetWAN, OIFSet: SetLAN, L4: t.L4, NotDNAT: true}
		if t.Port == 0 {
			ms = []Rule{base}
		} else {
			sp, dp := base, base
			sp.SPort, dp.DPort = t.Port, t.Port
			ms = []Rule{sp, dp}
		}
		for _, m := range ms {
			if log {
				l := m
				l.Limit = &Limit{PerSecond: 5, Burst: 10}
				l.Log = fmt.Sprintf("vpn-passthrough blocked %s in: ", pr)
				rules = append(rules, l)
			}
			m.Counter = BlockedCounter(pr)
			m.Verdict = VerdictDrop
			m.Comment = fmt.Sprintf("vpn-passthrough: %s off, inbound", pr)
			rules = append(rules, m)
		}
	}
	return rules
}
