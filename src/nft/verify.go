package nft

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// Diff says how our table differs from the plan, or "" if it is exactly
// the plan: the same chains on the same hooks with policy accept, the same
// rules in the same order (each compared expression by expression), the same
// set elements and the plan's counters and helpers. It is the daemon's test
// for "changed from under us": a deleted element, a foreign rule, a rule
// replaced in place or a flushed chain all count, whatever the totals.
func (n *Conn) Diff(p *plan.Plan) string {
	c, err := n.nc()
	if err != nil {
		return err.Error()
	}
	if ok, err := n.Exists(p.Table); err != nil || !ok {
		if err != nil {
			return err.Error()
		}
		return "table inet " + p.Table + " is absent"
	}
	t := table(p.Table)
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Sprintf("list chains: %v", err)
	}
	have := map[string]*nftables.Chain{}
	for _, ch := range chains {
		if ch.Table.Name == p.Table {
			have[ch.Name] = ch
		}
	}
	if len(have) != len(p.Chains) {
		return fmt.Sprintf("%d chains, want %d", len(have), len(p.Chains))
	}
	sets := map[string]*nftables.Set{}
	for _, s := range p.Sets {
		sets[s.Name] = &nftables.Set{Name: s.Name}
	}
	// The engines' maps: their elements are the engines' business (they
	// change all the time), but rules refer to them and they must exist.
	for _, m := range p.Maps {
		sets[m.Name] = &nftables.Set{Name: m.Name}
		if _, err := c.GetSetByName(t, m.Name); err != nil {
			return "map " + m.Name + " is absent"
		}
	}
	lookup := func(name string) *nftables.Set { return sets[name] }
	for _, pc := range p.Chains {
		ch, ok := have[pc.Name]
		if !ok {
			return "chain " + pc.Name + " is absent"
		}
		if !sameHook(ch, pc) || ch.Policy == nil || *ch.Policy != nftables.ChainPolicyAccept {
			return "chain " + pc.Name + " is hooked elsewhere or its policy changed"
		}
		rules, err := n.rules(t, ch)
		if err != nil {
			return fmt.Sprintf("list rules of %s: %v", pc.Name, err)
		}
		if len(rules) != len(pc.Rules) {
			return fmt.Sprintf("chain %s has %d rules, want %d", pc.Name, len(rules), len(pc.Rules))
		}
		for i, r := range pc.Rules {
			want, err := ruleExprs(r, lookup, p.QueueCompat)
			if err != nil {
				return err.Error()
			}
			if !bytes.Equal(rules[i].UserData, comment(r.Comment)) || !sameExprs(rules[i].Exprs, want) {
				return fmt.Sprintf("chain %s rule %d differs from the plan", pc.Name, i+1)
			}
		}
	}
	for _, ps := range p.Sets {
		s, err := c.GetSetByName(t, ps.Name)
		if err != nil {
			return "set " + ps.Name + " is absent"
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			return fmt.Sprintf("list set %s: %v", ps.Name, err)
		}
		if d := diffElements(ps, elems); d != "" {
			return "set " + ps.Name + ": " + d
		}
	}
	objs, err := c.GetNamedObjects(t)
	if err != nil {
		return fmt.Sprintf("list objects: %v", err)
	}
	haveObj := map[string]bool{}
	for _, o := range objs {
		if no, ok := o.(*nftables.NamedObj); ok {
			haveObj[objKey(no.Type, no.Name)] = true
		}
	}
	for _, name := range p.Counters {
		if !haveObj[objKey(nftables.ObjTypeCounter, name)] {
			return "counter " + name + " is absent"
		}
	}
	for _, h := range p.Helpers {
		if !haveObj[objKey(nftables.ObjTypeCtHelper, h.Name)] {
			return "ct helper " + h.Name + " is absent"
		}
	}
	return ""
}

// diffElements compares a set's elements with the plan's, as values.
func diffElements(ps plan.Set, elems []nftables.SetElement) string {
	var want [][]byte
	for _, e := range ps.Elements {
		switch ps.Type {
		case "ifname":
			want = append(want, ifname(e))
		case "ipv4_addr":
			a, err := parseIPv4(e)
			if err != nil {
				return err.Error()
			}
			want = append(want, a)
		}
	}
	if len(elems) != len(want) {
		return fmt.Sprintf("%d elements, want %d", len(elems), len(want))
	}
	for _, e := range elems {
		if !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(bytes.TrimRight(w, "\x00"), bytes.TrimRight(e.Key, "\x00")) }) {
			return fmt.Sprintf("unplanned element %q", bytes.TrimRight(e.Key, "\x00"))
		}
	}
	return ""
}

// sameExprs compares expressions read back from the kernel with encoded
// ones. The kernel does not echo batch-local fields (set IDs), so each
// expression is compared on what decides its effect.
func sameExprs(got, want []expr.Any) bool {
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

func sameExpr(g, w expr.Any) bool {
	switch w := w.(type) {
	case *expr.Cmp:
		g, ok := g.(*expr.Cmp)
		return ok && g.Op == w.Op && bytes.Equal(g.Data, w.Data)
	case *expr.Verdict:
		g, ok := g.(*expr.Verdict)
		return ok && g.Kind == w.Kind
	case *expr.Lookup:
		g, ok := g.(*expr.Lookup)
		return ok && g.SetName == w.SetName && g.Invert == w.Invert
	case *expr.Meta:
		g, ok := g.(*expr.Meta)
		return ok && g.Key == w.Key && g.SourceRegister == w.SourceRegister
	case *expr.Payload:
		g, ok := g.(*expr.Payload)
		return ok && g.Base == w.Base && g.Offset == w.Offset && g.Len == w.Len
	case *expr.Bitwise:
		g, ok := g.(*expr.Bitwise)
		return ok && bytes.Equal(g.Mask, w.Mask) && bytes.Equal(g.Xor, w.Xor)
	case *expr.Objref:
		g, ok := g.(*expr.Objref)
		return ok && g.Type == w.Type && g.Name == w.Name
	case *expr.Queue:
		g, ok := g.(*expr.Queue)
		return ok && g.Num == w.Num && g.Flag == w.Flag
	}
	// Limit, log, notrack, ct, xt targets: the kind is enough (a foreign
	// rule differs in its matches or verdict as well).
	return fmt.Sprintf("%T", g) == fmt.Sprintf("%T", w)
}
