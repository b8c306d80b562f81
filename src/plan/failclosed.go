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
