package plan

// Drops is the part of p that must hold through any fault: every rule that
// drops (the blocks of switched-off protocols, the guards against
// unsolicited inbound traffic, the mark and leak guards), in their chains,
// with the sets and counters they use, and nothing else: no queues (no
// engine needs to run), no helpers, no notrack. The daemon applies it when
// the full table cannot be kept, so a fault never turns a block into a pass.
func (p *Plan) Drops() *Plan {
	out := &Plan{Table: p.Table, Decisions: p.Decisions, Topology: p.Topology, Warnings: p.Warnings}
	used := map[string]bool{}
	for _, c := range p.Chains {
		keep := Chain{Name: c.Name, Hook: c.Hook, Priority: c.Priority}
		for _, r := range c.Rules {
			if r.Verdict != VerdictDrop {
				continue
			}
			keep.Rules = append(keep.Rules, r)
			for _, s := range []string{r.IIFSet, r.OIFSet, r.SAddrSet, r.DAddrSet, r.Counter} {
				used[s] = true
			}
			if r.KeyMatch != nil {
				used[r.KeyMatch.Set] = true
			}
		}
		if len(keep.Rules) > 0 {
			out.Chains = append(out.Chains, keep)
		}
	}
	for _, s := range p.Sets {
		if used[s.Name] {
			out.Sets = append(out.Sets, s)
		}
	}
	for _, m := range p.Maps {
		if used[m.Name] {
			out.Maps = append(out.Maps, m)
		}
	}
	for _, c := range p.Counters {
		if used[c] {
			out.Counters = append(out.Counters, c)
		}
	}
	return out
}

// GuardTable holds a second copy of the drops (Plan.Guard), so damage to
// our main table (a flushed chain, a deleted element, a foreign accept)
// never opens a block even for the moments before the repair: a drop in
// either table is final.
const GuardTable = "vpnpt_guard"

// Guard is the guard table for p: its drops in table GuardTable, without
// those that need the engines' maps (they live in the main table). An
// empty plan gives an empty guard (nothing installed).
func (p *Plan) Guard() *Plan {
	d := p.Drops()
	g := &Plan{Table: GuardTable, Decisions: d.Decisions, Topology: d.Topology, Mark: p.Mark, MarkMask: p.MarkMask}
	used := map[string]bool{}
	for _, c := range d.Chains {
		// One step after the main table's chain: the main table counts
		// what it drops, and the guard only what the main table missed
		// (a drop is final; an accept, fw4's included, ends only its own
		// chain, so the guard still sees what fw4 accepted).
		keep := Chain{Name: c.Name, Hook: c.Hook, Priority: c.Priority + 1}
		for _, r := range c.Rules {
			if r.KeyMatch != nil || r.MapSet != nil {
				continue
			}
			keep.Rules = append(keep.Rules, r)
			for _, s := range []string{r.IIFSet, r.OIFSet, r.SAddrSet, r.DAddrSet, r.Counter} {
				used[s] = true
			}
		}
		if len(keep.Rules) > 0 {
			g.Chains = append(g.Chains, keep)
		}
	}
	for _, s := range d.Sets {
		if used[s.Name] {
			g.Sets = append(g.Sets, s)
		}
	}
	for _, c := range d.Counters {
		if used[c] {
			g.Counters = append(g.Counters, c)
		}
	}
	return g
}
