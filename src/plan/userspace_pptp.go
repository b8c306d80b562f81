package plan

// userspacePPTP adds what the userspace PPTP engine needs (queue rules,
// notrack, marks, sets) to p and registers its queue in p.Queues. It reports
// false when this build has no userspace PPTP engine; Build then falls back
// to the kernel datapath and says so.
func userspacePPTP(p *Plan, in Input, pre, fwd *Chain) bool {
	return false
}
