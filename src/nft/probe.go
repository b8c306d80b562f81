package nft

import (
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// The probes below ask the kernel itself whether it can do something, by
// sending a batch that creates a scratch table with the object in question
// and deletes it again. The kernel validates every object (and autoloads its
// module) before committing, so an error means "not available", and success
// leaves nothing behind.

func scratchTable() *nftables.Table {
	return &nftables.Table{Name: fmt.Sprintf("vpnpt_probe_%d", os.Getpid()), Family: nftables.TableFamilyINet}
}

// ProbeCtHelper reports whether the kernel has the named conntrack helper.
func (n *Conn) ProbeCtHelper(name string, l4 uint8) error {
	nc, err := n.nc()
	if err != nil {
		return err
	}
	t := scratchTable()
	nc.AddTable(t)
	nc.AddObj(&nftables.NamedObj{Table: t, Name: "probe", Type: nftables.ObjTypeCtHelper,
		Obj: &expr.CtHelper{Name: name, L3Proto: unix.NFPROTO_IPV4, L4Proto: l4}})
	nc.DelTable(t)
	return nc.Flush()
}

// ProbeQueue reports whether a rule with the native queue expression
// (compat=false) or the xtables NFQUEUE target (compat=true) is accepted.
func (n *Conn) ProbeQueue(compat bool) error {
	nc, err := n.nc()
	if err != nil {
		return err
	}
	t := scratchTable()
	nc.AddTable(t)
	prio := nftables.ChainPriority(0)
	ch := nc.AddChain(&nftables.Chain{Name: "probe", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: &prio})
	// A rule that can never match keeps the probe harmless even if the
	// delete below were lost.
	nc.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{255}},
		queueExpr(plan.QueueStmt{Num: 65535, Bypass: true}, compat),
	}})
	nc.DelTable(t)
	return nc.Flush()
}

// ProbeMapPayload reports whether the kernel has what the engines' kernel
// data plane needs: maps with concatenated keys and per-element counters,
// an element added to one, a rule that rewrites an address from a map
// lookup on such a key, a set lookup on a concatenated key, notrack and
// the mark. It builds exactly those objects (the encoder's own) in a
// scratch table.
func (n *Conn) ProbeMapPayload() error {
	nc, err := n.nc()
	if err != nil {
		return err
	}
	t := scratchTable()
	nc.AddTable(t)
	in := plan.Map{Name: "probe_in", Key: plan.Key{plan.FieldIPSaddr, plan.FieldSPIHi, plan.FieldSPILo}, Data: plan.FieldIPDaddr, Counter: true}
	out := plan.Map{Name: "probe_out", Key: plan.Key{plan.FieldIPSaddr, plan.FieldIPDaddr, plan.FieldSPIHi, plan.FieldSPILo}, Counter: true}
	sets := map[string]*nftables.Set{}
	for i, m := range []plan.Map{in, out} {
		s, err := mapSet(t, m, uint32(i+1))
		if err != nil {
			return err
		}
		if err := nc.AddSet(s, nil); err != nil {
			return err
		}
		sets[m.Name] = s
	}
	if err := nc.SetAddElements(sets[in.Name], []nftables.SetElement{{
		Key: []byte{192, 0, 2, 1, 0, 0, 0, 0, 0, 1, 0, 0}, Val: []byte{192, 0, 2, 2}}}); err != nil {
		return err
	}
	prio := nftables.ChainPriority(plan.PrioRaw)
	ch := nc.AddChain(&nftables.Chain{Name: "probe", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: &prio})
	// Matches no packet (protocol 255) even if the delete were lost.
	r := plan.Rule{IPv4Only: true, L4: 255,
		KeyMatch: &plan.KeyMatch{Key: out.Key, Set: out.Name},
		MapSet:   &plan.MapStmt{Dst: plan.FieldIPDaddr, Key: in.Key, Map: in.Name},
		Notrack:  true, SetMark: true, Verdict: plan.VerdictAccept}
	exprs, err := ruleExprs(r, func(name string) *nftables.Set { return sets[name] }, false)
	if err != nil {
		return err
	}
	nc.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	nc.DelTable(t)
	return nc.Flush()
}
