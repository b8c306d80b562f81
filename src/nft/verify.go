package nft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// Diff says how our table differs from the plan, or "" if it is exactly
// the plan: the same chains on the same hooks with policy accept, the same
// rules in the same order (each compared expression by expression), the same
// set elements and the plan's counters and helpers. It is the daemon's test
// for "changed from under us": a deleted element, a foreign rule, a rule
// replaced in place or a flushed chain all count, whatever the totals.
func (n *Conn) Diff(p *plan.Plan) string {
	if ok, err := n.Exists(p.Table); err != nil || !ok {
		if err != nil {
			return err.Error()
		}
		return "table inet " + p.Table + " is absent"
	}
	chains, err := n.chains(p.Table)
	if err != nil {
		return fmt.Sprintf("list chains: %v", err)
	}
	have := map[string]chainInfo{}
	for _, ch := range chains {
		have[ch.name] = ch
	}
	if len(have) != len(p.Chains) {
		return fmt.Sprintf("%d chains, want %d", len(have), len(p.Chains))
	}
	sets, err := n.sets(p.Table)
	if err != nil {
		return fmt.Sprintf("list sets: %v", err)
	}
	haveSet := map[string]bool{}
	for _, s := range sets {
		haveSet[s.name] = true
	}
	// The engines' maps: their elements are the engines' business (they
	// change all the time), but rules refer to them and they must exist.
	for _, m := range p.Maps {
		if !haveSet[m.Name] {
			return "map " + m.Name + " is absent"
		}
	}
	// The kernel does not echo batch-local set IDs: any will do.
	setID := func(string) (uint32, bool) { return 0, true }
	for _, pc := range p.Chains {
		ch, ok := have[pc.Name]
		if !ok {
			return "chain " + pc.Name + " is absent"
		}
		if !sameHook(ch, pc) || !ch.hasPolicy || ch.policy != nfAccept {
			return "chain " + pc.Name + " is hooked elsewhere or its policy changed"
		}
		rules, err := n.rules(p.Table, pc.Name)
		if err != nil {
			return fmt.Sprintf("list rules of %s: %v", pc.Name, err)
		}
		if len(rules) != len(pc.Rules) {
			return fmt.Sprintf("chain %s has %d rules, want %d", pc.Name, len(rules), len(pc.Rules))
		}
		for i, r := range pc.Rules {
			w, err := ruleWire(r, setID, p.QueueCompat)
			if err != nil {
				return err.Error()
			}
			want, ok := parseRule(wire(nil).Nest(unix.NFTA_RULE_EXPRESSIONS, w))
			if !ok {
				return fmt.Sprintf("chain %s rule %d: cannot read its encoding", pc.Name, i+1)
			}
			if !bytes.Equal(rules[i].udata, comment(r.Comment)) || !sameExprs(rules[i].exprs, want.exprs) {
				return fmt.Sprintf("chain %s rule %d differs from the plan", pc.Name, i+1)
			}
		}
	}
	for _, ps := range p.Sets {
		if !haveSet[ps.Name] {
			return "set " + ps.Name + " is absent"
		}
		elems, err := listSetElements(n.netns, p.Table, ps.Name)
		if err != nil {
			return fmt.Sprintf("list set %s: %v", ps.Name, err)
		}
		if d := diffElements(ps, elems); d != "" {
			return "set " + ps.Name + ": " + d
		}
	}
	objs, err := n.objects(p.Table)
	if err != nil {
		return fmt.Sprintf("list objects: %v", err)
	}
	haveObj := map[string]bool{}
	for _, o := range objs {
		haveObj[objKey(o.typ, o.name)] = true
	}
	for _, name := range p.Counters {
		if !haveObj[objKey(unix.NFT_OBJECT_COUNTER, name)] {
			return "counter " + name + " is absent"
		}
	}
	for _, h := range p.Helpers {
		if !haveObj[objKey(unix.NFT_OBJECT_CT_HELPER, h.Name)] {
			return "ct helper " + h.Name + " is absent"
		}
	}
	return ""
}

// diffElements compares a set's elements with the plan's, as values.
func diffElements(ps plan.Set, elems []engine.Element) string {
	want, err := setElements(ps)
	if err != nil {
		return err.Error()
	}
	if len(elems) != len(want) {
		return fmt.Sprintf("%d elements, want %d", len(elems), len(want))
	}
	for _, e := range elems {
		if !slices.ContainsFunc(want, func(w engine.Element) bool {
			return bytes.Equal(bytes.TrimRight(w.Key, "\x00"), bytes.TrimRight(e.Key, "\x00"))
		}) {
			return fmt.Sprintf("unplanned element %q", bytes.TrimRight(e.Key, "\x00"))
		}
	}
	return ""
}

// sameExprs compares expressions read back from the kernel with our
// encoding of the plan's, read by the same parser. The kernel echoes some
// attributes its own way (registers, flags we leave out, names with their
// NUL), so each expression is compared on what decides its effect.
func sameExprs(got, want []rawExpr) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if !sameExpr(got[i], want[i]) {
			return false
		}
	}
	return true
}

func sameExpr(g, w rawExpr) bool {
	if g.name != w.name {
		return false
	}
	eq := func(typ uint16) bool { return bytes.Equal(g.attr[typ], w.attr[typ]) }
	val := func(e rawExpr, typ uint16) []byte { return dataValue(e.attr[typ]) }
	eqVal := func(typ uint16) bool { return bytes.Equal(val(g, typ), val(w, typ)) }
	has := func(e rawExpr, typ uint16) bool { _, ok := e.attr[typ]; return ok }
	str := func(e rawExpr, typ uint16) string { return nl.String(e.attr[typ]) }
	switch w.name {
	case "cmp":
		return eq(unix.NFTA_CMP_OP) && eqVal(unix.NFTA_CMP_DATA)
	case "immediate":
		return verdictCode(g) == verdictCode(w)
	case "lookup":
		gf, _ := u32be(g.attr[unix.NFTA_LOOKUP_FLAGS])
		wf, _ := u32be(w.attr[unix.NFTA_LOOKUP_FLAGS])
		// The kernel dumps a register for every lookup in a map, even
		// one that only tests membership: only ours decides.
		return str(g, unix.NFTA_LOOKUP_SET) == str(w, unix.NFTA_LOOKUP_SET) &&
			gf&unix.NFT_LOOKUP_F_INV == wf&unix.NFT_LOOKUP_F_INV && (!has(w, unix.NFTA_LOOKUP_DREG) || has(g, unix.NFTA_LOOKUP_DREG))
	case "meta":
		return eq(unix.NFTA_META_KEY) && has(g, unix.NFTA_META_SREG) == has(w, unix.NFTA_META_SREG)
	case "payload":
		return eq(unix.NFTA_PAYLOAD_BASE) && eq(unix.NFTA_PAYLOAD_OFFSET) && eq(unix.NFTA_PAYLOAD_LEN) &&
			has(g, unix.NFTA_PAYLOAD_SREG) == has(w, unix.NFTA_PAYLOAD_SREG)
	case "bitwise":
		return eqVal(unix.NFTA_BITWISE_MASK) && eqVal(unix.NFTA_BITWISE_XOR)
	case "objref":
		return eq(unix.NFTA_OBJREF_IMM_TYPE) && str(g, unix.NFTA_OBJREF_IMM_NAME) == str(w, unix.NFTA_OBJREF_IMM_NAME)
	case "queue":
		gf, _ := u16be(g.attr[unix.NFTA_QUEUE_FLAGS])
		wf, _ := u16be(w.attr[unix.NFTA_QUEUE_FLAGS])
		return eq(unix.NFTA_QUEUE_NUM) && gf == wf
	case "ct":
		return eq(unix.NFTA_CT_KEY)
	case "target":
		return str(g, unix.NFTA_TARGET_NAME) == str(w, unix.NFTA_TARGET_NAME)
	case "log":
		return str(g, unix.NFTA_LOG_PREFIX) == str(w, unix.NFTA_LOG_PREFIX)
	}
	// limit (the kernel echoes its rate and burst after its own
	// arithmetic, which differs between versions) and notrack: the kind is
	// enough, as a foreign rule differs in its matches or verdict as well.
	return true
}

// dataValue is the NFTA_DATA_VALUE inside a nested data attribute.
func dataValue(b []byte) []byte {
	var v []byte
	_ = nl.Walk(b, func(typ uint16, d []byte) error {
		if typ == unix.NFTA_DATA_VALUE {
			v = d
		}
		return nil
	})
	return v
}

// verdictCode is an immediate's verdict code (-1 if it sets no verdict).
func verdictCode(e rawExpr) int64 {
	code := int64(-1)
	_ = nl.Walk(e.attr[unix.NFTA_IMMEDIATE_DATA], func(typ uint16, d []byte) error {
		if typ == unix.NFTA_DATA_VERDICT {
			return nl.Walk(d, func(typ uint16, d []byte) error {
				if c, ok := u32be(d); ok && typ == unix.NFTA_VERDICT_CODE {
					code = int64(c)
				}
				return nil
			})
		}
		return nil
	})
	return code
}

func u16be(b []byte) (uint16, bool) {
	if len(b) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(b), true
}
