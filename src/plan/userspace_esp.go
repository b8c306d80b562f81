package plan

// userspaceESP adds what the userspace ESP multiplexer needs to p and
// registers its queue in p.Queues. It reports false when this build has no
// ESP engine; Build then keeps kernel tracking and says what that costs.
func userspaceESP(p *Plan, in Input, pre, fwd *Chain) bool {
	return false
}
