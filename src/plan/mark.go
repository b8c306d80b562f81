package plan

// setMark puts the configured engine mark in place of the default the
// planner writes rules with: every rule that matches the engines' mark or
// sets it, and every engine's queue. The planner's parts need not thread
// the option through; only this function knows it is configurable.
func setMark(p *Plan, mark, mask uint32) {
	if mask == 0 { // a Config not from config.Parse (tests): the default
		mark, mask = Mark, MarkMask
	}
	p.Mark, p.MarkMask = mark, mask
	for ci := range p.Chains {
		for ri := range p.Chains[ci].Rules {
			r := &p.Chains[ci].Rules[ri]
			if r.MarkMask == MarkMask && r.Mark == Mark {
				r.MarkMask, r.Mark = mask, mark
			}
			if r.SetMark {
				r.NewMark, r.NewMarkMask = mark, mask
			}
		}
	}
	for i := range p.Queues {
		p.Queues[i].Mark = mark
	}
}
