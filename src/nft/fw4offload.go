package nft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// FW4Offload reads fw4's forward chain (table inet fw4) and says whether it
// offloads flows (`flow offload @ft`) and where the package's exemption
// rules are (files/usr/share/nftables.d/ruleset-post/10-vpn-passthrough.nft:
// established/related TCP 1723 and UDP 500, by destination port and by
// source port, accepted), so the planner can judge it (plan/offload.go).
// Like FW4AcceptMark it reads the rule dump with parseRule, which skips the
// expressions (fw4's and users' of every kind) it does not need.
func (n *Conn) FW4Offload() plan.FW4Chain {
	rules, sets, err := n.FW4ForwardDump()
	if errors.Is(err, os.ErrNotExist) {
		return plan.FW4Chain{Read: true} // no fw4 table or chain
	}
	if err != nil {
		return plan.FW4Chain{Err: err.Error()}
	}
	return ParseFW4Forward(rules).WithKeys(sets).Chain()
}

// FW4ForwardDump lists fw4's forward chain as the kernel has it: each rule's
// attributes in chain order, and the keys of the sets the exemption
// candidates look up (test/cmd/fw4dump records them for the parser's
// tests). os.ErrNotExist: no table inet fw4 or no forward chain.
func (n *Conn) FW4ForwardDump() ([][]byte, map[string][][]byte, error) {
	rules, err := n.fw4ForwardRules()
	if err != nil {
		return nil, nil, err
	}
	if len(rules) == 0 {
		// The kernel lists no rules, no error, for a table it lacks.
		if ok, err := n.Exists("fw4"); err != nil {
			return nil, nil, err
		} else if !ok {
			return nil, nil, os.ErrNotExist
		}
	}
	sets := map[string][][]byte{}
	f := ParseFW4Forward(rules)
	for _, r := range []exemptRule{f.Dport, f.Sport} {
		if r.Index < 0 {
			continue
		}
		keys, err := n.setKeys("fw4", r.Set)
		if err != nil {
			return nil, nil, errorf("reading set %s of inet fw4: %w", r.Set, err)
		}
		sets[r.Set] = keys
	}
	return rules, sets, nil
}

// WithKeys fills in the exemption candidates' set keys from sets.
func (f FW4Forward) WithKeys(sets map[string][][]byte) FW4Forward {
	f.Dport.Keys, f.Sport.Keys = sets[f.Dport.Set], sets[f.Sport.Set]
	return f
}

// FW4Forward is what ParseFW4Forward finds in fw4's forward chain: the
// position of its first `flow offload` rule and of the package's two
// exemption rules (-1: none).
type FW4Forward struct {
	Rules     int
	Offload   int
	Flowtable string
	// Dport matches the control traffic LAN to WAN (th dport), Sport its
	// replies (th sport).
	Dport, Sport exemptRule
}

// exemptRule is one candidate exemption rule: our comment, a lookup of
// `meta l4proto . th dport` (or sport) in an anonymous set, accept.
type exemptRule struct {
	Index int
	Set   string
	// Keys are the set's elements (8 bytes each: l4proto and port, each
	// in a 4-byte register), read by FW4Offload; nil: not read.
	Keys [][]byte
}

// Chain judges the parse: the exemption is "before" only if both rules
// match TCP 1723 and UDP 500 and come before the first `flow offload`.
func (f FW4Forward) Chain() plan.FW4Chain {
	c := plan.FW4Chain{Read: true, Chain: true, Offload: f.Offload >= 0, Flowtable: f.Flowtable}
	if !c.Offload {
		return c
	}
	c.Exempt = plan.ExemptBefore
	for _, r := range []exemptRule{f.Dport, f.Sport} {
		if r.Index < 0 || !hasKey(r.Keys, unix.IPPROTO_TCP, packet.PortPPTP) || !hasKey(r.Keys, unix.IPPROTO_UDP, packet.PortIKE) {
			return plan.FW4Chain{Read: true, Chain: true, Offload: true, Flowtable: f.Flowtable, Exempt: plan.ExemptMissing}
		}
		if r.Index > f.Offload {
			c.Exempt = plan.ExemptAfter
		}
	}
	return c
}

// hasKey: keys holds l4proto . port (nft's concatenation: each field in a
// 4-byte register, the port in network byte order).
func hasKey(keys [][]byte, proto uint8, port uint16) bool {
	for _, k := range keys {
		if len(k) == 8 && k[0] == proto && binary.BigEndian.Uint16(k[4:6]) == port {
			return true
		}
	}
	return false
}

// ParseFW4Forward reads a forward chain's rules, each the attributes of one
// NFT_MSG_NEWRULE message of the dump (after the nfgenmsg header), in chain
// order. A rule it cannot parse counts as neither.
func ParseFW4Forward(rules [][]byte) FW4Forward {
	f := FW4Forward{Rules: len(rules), Offload: -1, Dport: exemptRule{Index: -1}, Sport: exemptRule{Index: -1}}
	for i, b := range rules {
		r, ok := parseRule(b)
		if !ok {
			continue
		}
		if ft, ok := r.flowOffload(); ok && f.Offload < 0 {
			f.Offload, f.Flowtable = i, ft
			continue
		}
		if !r.ours {
			continue
		}
		set, off, ok := r.exemption()
		if !ok {
			continue
		}
		switch {
		case off == 2 && f.Dport.Index < 0:
			f.Dport = exemptRule{Index: i, Set: set}
		case off == 0 && f.Sport.Index < 0:
			f.Sport = exemptRule{Index: i, Set: set}
		}
	}
	return f
}

// Netlink values x/sys does not name.
const (
	nftaFlowTableName = 1 // NFTA_FLOW_TABLE_NAME (linux/netfilter/nf_tables.h)
	nfAccept          = 1 // NF_ACCEPT (linux/netfilter.h)
)

// rawExpr is one expression of a rule: its name and its data attributes.
type rawExpr struct {
	name string
	attr map[uint16][]byte
}

type rawRule struct {
	ours  bool   // the comment names vpn-passthrough
	udata []byte // NFTA_RULE_USERDATA (the comment)
	exprs []rawExpr
}

func parseRule(b []byte) (rawRule, bool) {
	var r rawRule
	err := nl.Walk(b, func(typ uint16, data []byte) error {
		switch typ {
		case unix.NFTA_RULE_USERDATA:
			r.udata = data
			r.ours = bytes.Contains(data, []byte("vpn-passthrough"))
		case unix.NFTA_RULE_EXPRESSIONS:
			return nl.Walk(data, func(typ uint16, data []byte) error {
				if typ != unix.NFTA_LIST_ELEM {
					return nil
				}
				e := rawExpr{attr: map[uint16][]byte{}}
				err := nl.Walk(data, func(typ uint16, data []byte) error {
					switch typ {
					case unix.NFTA_EXPR_NAME:
						e.name = nl.String(data)
					case unix.NFTA_EXPR_DATA:
						return nl.Walk(data, func(typ uint16, data []byte) error {
							e.attr[typ] = data
							return nil
						})
					}
					return nil
				})
				r.exprs = append(r.exprs, e)
				return err
			})
		}
		return nil
	})
	return r, err == nil
}

func u32be(b []byte) (uint32, bool) {
	if len(b) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

// flowOffload: the rule holds a `flow offload` (nft_flow_offload's
// expression "flow_offload"); the flowtable's name.
func (r rawRule) flowOffload() (string, bool) {
	for _, e := range r.exprs {
		if e.name == "flow_offload" {
			return nl.String(e.attr[nftaFlowTableName]), true
		}
	}
	return "", false
}

// exemption: the rule is `meta l4proto . th dport|sport @set ... accept`:
// meta l4proto, a 2-byte transport-header payload at offset off (2: dport,
// 0: sport), a lookup (not inverted), and an accept verdict.
func (r rawRule) exemption() (set string, off uint32, ok bool) {
	for i := 0; i+2 < len(r.exprs); i++ {
		m, p, l := r.exprs[i], r.exprs[i+1], r.exprs[i+2]
		if m.name != "meta" || p.name != "payload" || l.name != "lookup" {
			continue
		}
		key, _ := u32be(m.attr[unix.NFTA_META_KEY])
		base, _ := u32be(p.attr[unix.NFTA_PAYLOAD_BASE])
		o, _ := u32be(p.attr[unix.NFTA_PAYLOAD_OFFSET])
		n, _ := u32be(p.attr[unix.NFTA_PAYLOAD_LEN])
		flags, _ := u32be(l.attr[unix.NFTA_LOOKUP_FLAGS])
		name := nl.String(l.attr[unix.NFTA_LOOKUP_SET])
		if key != unix.NFT_META_L4PROTO || base != unix.NFT_PAYLOAD_TRANSPORT_HEADER || n != 2 || (o != 0 && o != 2) ||
			flags&unix.NFT_LOOKUP_F_INV != 0 || name == "" {
			continue
		}
		if !r.accepts() {
			return "", 0, false
		}
		return name, o, true
	}
	return "", 0, false
}

// accepts: the rule's verdict is accept (an immediate into the verdict
// register).
func (r rawRule) accepts() bool {
	for _, e := range r.exprs {
		if e.name != "immediate" {
			continue
		}
		if dreg, _ := u32be(e.attr[unix.NFTA_IMMEDIATE_DREG]); dreg != unix.NFT_REG_VERDICT {
			continue
		}
		return verdictCode(e) == nfAccept
	}
	return false
}

// fw4ForwardRules dumps table inet fw4's forward chain: each rule's
// attributes, in chain order. os.ErrNotExist: no such table or chain.
func (n *Conn) fw4ForwardRules() ([][]byte, error) {
	rules, err := n.dump(unix.NFT_MSG_GETRULE, unix.NFT_MSG_NEWRULE, wire(nil).Str(unix.NFTA_RULE_TABLE, "fw4").Str(unix.NFTA_RULE_CHAIN, "forward"))
	if notFound(err) {
		return nil, os.ErrNotExist
	}
	if err != nil {
		return nil, errorf("list inet fw4 forward: %w", err)
	}
	return rules, nil
}

// setKeys reads the keys of a set (anonymous ones too) of an inet table.
func (n *Conn) setKeys(table, set string) ([][]byte, error) {
	elems, err := listSetElements(n.netns, table, set)
	if err != nil {
		return nil, err
	}
	keys := make([][]byte, 0, len(elems))
	for _, e := range elems {
		keys = append(keys, e.Key)
	}
	return keys, nil
}
