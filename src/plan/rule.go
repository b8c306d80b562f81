package plan

import "strings"

// L4 is an IP protocol number (the `meta l4proto` value).
type L4 uint8

// IANA protocol numbers.
const (
	ProtoAny L4 = 0
	ProtoTCP L4 = 6
	ProtoUDP L4 = 17
	ProtoGRE L4 = 47
	ProtoESP L4 = 50
	ProtoAH  L4 = 51
)

func (l L4) String() string {
	switch l {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoGRE:
		return "gre"
	case ProtoESP:
		return "esp"
	case ProtoAH:
		return "ah"
	}
	return "any"
}

// Verdict ends a rule.
type Verdict uint8

const (
	VerdictNone Verdict = iota // continue with the next rule
	VerdictAccept
	VerdictDrop
)

// Limit is a packet rate limit (`limit rate N/second burst B packets`).
type Limit struct {
	PerSecond uint64
	Burst     uint32
}

// QueueStmt sends the packet to an NFQUEUE.
type QueueStmt struct {
	Num uint16
	// Bypass accepts packets when no program listens on the queue
	// (fail-open). Without it a dead daemon black-holes the traffic.
	Bypass bool
}

// Rule is one nftables rule in a small, fixed shape: all matches must hold
// (tested protocol and ports first, device sets last, as they are dearer),
// then the statements run in the order of the fields below. Zero values mean
// "no such match/statement". A fixed shape keeps the nft text renderer and
// the netlink encoder in step and easy to test against each other.
type Rule struct {
	Comment string

	// Matches.
	IIFSet   string // iifname @set
	OIFSet   string // oifname @set
	OIFNot   bool   // with OIFSet: oifname != @set
	IPv4Only bool   // meta nfproto ipv4
	L4       L4     // meta l4proto
	DPort    uint16 // th dport (needs L4 TCP or UDP)
	SPort    uint16 // th sport
	SAddrSet string // ip saddr @set (IPv4)
	DAddrSet string // ip daddr @set (IPv4)
	// GREv1: ip protocol gre @th,8,8 & 0x7 == 0x1 (IPv4 GRE version 1,
	// the enhanced GRE only PPTP uses). Implies IPv4; use instead of L4
	// (nft 1.0.6 cannot list a raw transport match after meta l4proto).
	GREv1 bool
	// GREPPTP, with GREv1: the header is enhanced GRE as PPTP sends it
	// (RFC 2637 4.1): key present, no checksum, routing or recursion,
	// protocol PPP: @th,0,32 & 0xef7fffff == 0x2001880b (S and A may be
	// either). What the kernel rewrites from maps must pass this.
	GREPPTP  bool
	MarkMask uint32 // meta mark & MarkMask == Mark
	Mark     uint32
	MarkNot  bool // with MarkMask: meta mark & MarkMask != Mark
	// Untracked: ct state untracked (notrack'd packets, which NAT skips).
	Untracked bool
	// CtState: ct state is one of these (a CtState* bitmask; 0 = any).
	CtState uint32
	// NotDNAT: ct status ! dnat (not a port forward).
	NotDNAT bool
	// NotNAT: ct status has neither snat nor dnat (tracked, but neither
	// masqueraded nor port-forwarded). Untracked packets never match.
	NotNAT bool
	// KeyMatch: the (concatenated) key is in a set of Plan.Maps.
	KeyMatch *KeyMatch

	// Statements.
	// MapSet rewrites a field from a map of Plan.Maps; without an element
	// for the key the rule ends there, so the next rule sees the packet.
	MapSet *MapStmt
	// MapSet2 is a second rewrite, after MapSet (PPTP: the client's
	// address, then its Call ID, both keyed by the fields as they arrived).
	MapSet2  *MapStmt
	Limit    *Limit
	Log      string // log prefix
	Counter  string // counter name "..."
	CtHelper string // ct helper set "..."
	Notrack  bool
	SetMark  bool // meta mark set meta mark & ^NewMarkMask | NewMark
	// NewMark under NewMarkMask is what SetMark sets; Build fills them in
	// with the plan's mark (0: the default mark).
	NewMark, NewMarkMask uint32
	Queue                *QueueStmt
	Verdict              Verdict
}

// Conntrack states for Rule.CtState (uapi nf_conntrack_common.h: the state
// bits nft's `ct state` tests).
const (
	CtStateInvalid     uint32 = 1 << 0
	CtStateEstablished uint32 = 1 << 1
	CtStateRelated     uint32 = 1 << 2
	CtStateNew         uint32 = 1 << 3
	CtStateUntracked   uint32 = 1 << 6
)

// ctStateNames renders a CtState mask in nft's order.
func ctStateNames(m uint32) string {
	var names []string
	for _, s := range []struct {
		bit  uint32
		name string
	}{{CtStateInvalid, "invalid"}, {CtStateEstablished, "established"}, {CtStateRelated, "related"},
		{CtStateNew, "new"}, {CtStateUntracked, "untracked"}} {
		if m&s.bit != 0 {
			names = append(names, s.name)
		}
	}
	return strings.Join(names, ",")
}

// setMarkValues are the mark and mask a SetMark rule writes.
func (r Rule) setMarkValues() (mark, mask uint32) {
	if r.NewMarkMask == 0 {
		return Mark, MarkMask
	}
	return r.NewMark, r.NewMarkMask
}

// SetMarkValues is setMarkValues for the netlink encoder.
func (r Rule) SetMarkValues() (mark, mask uint32) { return r.setMarkValues() }
