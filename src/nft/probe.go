package nft

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// The probes below ask the kernel itself whether it can do something, by
// sending a batch that creates a scratch table with the object in question
// and deletes it again. The kernel validates every object (and autoloads its
// module) before committing, so an error means "not available", and success
// leaves nothing behind.

func scratchTable() string { return fmt.Sprintf("vpnpt_probe_%d", os.Getpid()) }

// ProbeCtHelper reports whether the kernel has the named conntrack helper.
func (n *Conn) ProbeCtHelper(name string, l4 uint8) error {
	t := scratchTable()
	var b batch
	b.addTable(t)
	b.addObj(t, "probe", unix.NFT_OBJECT_CT_HELPER, helperObj(name, unix.NFPROTO_IPV4, l4))
	b.delTable(t)
	return n.commit(&b)
}

// ProbeQueue reports whether a rule with the native queue expression
// (compat=false) or the xtables NFQUEUE target (compat=true) is accepted.
func (n *Conn) ProbeQueue(compat bool) error {
	t := scratchTable()
	// A rule that can never match (protocol 255) keeps the probe harmless
	// even if the delete below were lost.
	r := plan.Rule{L4: 255, Queue: &plan.QueueStmt{Num: 65535, Bypass: true}}
	exprs, err := ruleWire(r, func(string) (uint32, bool) { return 0, false }, compat)
	if err != nil {
		return err
	}
	var b batch
	b.addTable(t)
	b.addChain(t, "probe", unix.NF_INET_FORWARD, 0)
	b.addRule(t, "probe", exprs, nil)
	b.delTable(t)
	return n.commit(&b)
}

// ProbeMapPayload reports whether the kernel has what the engines' kernel
// data plane needs: maps with concatenated keys and per-element counters,
// an element added to one, a rule that rewrites an address from a map
// lookup on such a key, a set lookup on a concatenated key, notrack and
// the mark. It builds exactly those objects (the encoder's own) in a
// scratch table.
func (n *Conn) ProbeMapPayload() error {
	t := scratchTable()
	var b batch
	b.addTable(t)
	in := plan.Map{Name: "probe_in", Key: plan.Key{plan.FieldIPSaddr, plan.FieldSPIHi, plan.FieldSPILo}, Data: plan.FieldIPDaddr, Counter: true}
	out := plan.Map{Name: "probe_out", Key: plan.Key{plan.FieldIPSaddr, plan.FieldIPDaddr, plan.FieldSPIHi, plan.FieldSPILo}, Counter: true}
	ids := map[string]uint32{}
	for i, m := range []plan.Map{in, out} {
		s, err := mapSpec(m, uint32(i+1))
		if err != nil {
			return err
		}
		b.addSet(t, s)
		ids[m.Name] = s.id
	}
	b.elements(unix.NFT_MSG_NEWSETELEM, t, in.Name, ids[in.Name], []engine.Element{{
		Key: []byte{192, 0, 2, 1, 0, 0, 0, 0, 0, 1, 0, 0}, Val: []byte{192, 0, 2, 2}}})
	prio := plan.PrioRaw
	b.addChain(t, "probe", unix.NF_INET_PRE_ROUTING, uint32(prio))
	// Matches no packet (protocol 255) even if the delete were lost.
	r := plan.Rule{IPv4Only: true, L4: 255,
		KeyMatch: &plan.KeyMatch{Key: out.Key, Set: out.Name},
		MapSet:   &plan.MapStmt{Dst: plan.FieldIPDaddr, Key: in.Key, Map: in.Name},
		Notrack:  true, SetMark: true, Verdict: plan.VerdictAccept}
	exprs, err := ruleWire(r, func(name string) (uint32, bool) { id, ok := ids[name]; return id, ok }, false)
	if err != nil {
		return err
	}
	b.addRule(t, "probe", exprs, nil)
	b.delTable(t)
	return n.commit(&b)
}
