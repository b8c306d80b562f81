package plan

import (
	"slices"
	"strings"
	"testing"
)

// TestInboundRules: in every golden case, an enabled protocol drops each of
// its kinds of new, non-port-forwarded WAN->LAN flows before its inbound pass
// counter, which counts only established, related or untracked packets; a
// disabled one drops its WAN->LAN traffic from either port; a port forward
// is never dropped; and Drops keeps all of it.
func TestInboundRules(t *testing.T) {
	for _, tc := range Cases() {
		p, err := Build(tc.In)
		if err != nil {
			t.Fatal(err)
		}
		if p.Empty() {
			continue
		}
		fwd := chainNamed(p, "forward")
		for _, d := range p.Decisions {
			for _, tr := range TrafficOf(d.Proto) {
				in := func(r Rule) bool { return r.IIFSet == SetWAN && r.OIFSet == SetLAN && r.L4 == tr.L4 }
				switch d.Datapath {
				case PathBlocked:
					for _, dir := range []func(Rule) bool{
						func(r Rule) bool { return r.SPort == tr.Port },
						func(r Rule) bool { return r.DPort == tr.Port },
					} {
						if !slices.ContainsFunc(fwd.Rules, func(r Rule) bool {
							return in(r) && dir(r) && r.Verdict == VerdictDrop && r.Counter == BlockedCounter(d.Proto) && r.NotDNAT && r.CtState == 0
						}) {
							t.Errorf("%s: %s off but inbound %s not dropped", tc.Name, d.Proto, tr)
						}
					}
				default:
					drop := slices.IndexFunc(fwd.Rules, func(r Rule) bool {
						return in(r) && r.DPort == tr.Port && r.CtState == CtStateNew && r.NotDNAT && r.Verdict == VerdictDrop &&
							r.Counter == UnsolicitedCounter(tr) && slices.Contains(p.Counters, r.Counter)
					})
					if drop < 0 {
						t.Errorf("%s: %s on but new inbound %s is not dropped and counted", tc.Name, d.Proto, tr)
					}
					// A pass counter on the engine's mark counts only
					// what an engine forwarded: never unsolicited.
					pass := slices.IndexFunc(fwd.Rules, func(r Rule) bool {
						return r.Counter == PassedCounter(d.Proto, "in") && r.L4 == tr.L4 && (r.MarkMask == 0 || r.MarkNot)
					})
					if pass >= 0 && (pass < drop || fwd.Rules[pass].CtState&CtStateNew != 0 || fwd.Rules[pass].CtState == 0) {
						t.Errorf("%s: %s's inbound pass counter would count unsolicited %s: %s", tc.Name, d.Proto, tr, fwd.Rules[pass])
					}
					if !strings.Contains(d.Reason, "unsolicited inbound") {
						t.Errorf("%s: %s's reason does not say what happens to unsolicited inbound: %s", tc.Name, d.Proto, d.Reason)
					}
				}
			}
		}
		for _, c := range p.Chains {
			for _, r := range c.Rules {
				if r.Verdict == VerdictDrop && r.IIFSet == SetWAN && r.OIFSet == SetLAN && r.L4 != ProtoAny && !r.NotDNAT && r.MarkMask == 0 {
					t.Errorf("%s: a drop could hit a port forward: %s", tc.Name, r)
				}
			}
		}
		drops := p.Drops()
		if got, want := len(rulesWith(drops, func(r Rule) bool { return true })),
			len(rulesWith(p, func(r Rule) bool { return r.Verdict == VerdictDrop })); got != want || len(drops.Queues) != 0 {
			t.Errorf("%s: Drops has %d rules and %d queues, want every one of the %d drops and no queue", tc.Name, got, len(drops.Queues), want)
		}
	}
}

func TestGuardIsTheDropsOneStepLater(t *testing.T) {
	for _, tc := range Cases() {
		p, err := Build(tc.In)
		if err != nil {
			t.Fatal(err)
		}
		g := p.Guard()
		if p.Empty() != g.Empty() || g.Table != GuardTable || len(g.Queues)+len(g.Maps)+len(g.Helpers) != 0 {
			t.Errorf("%s: guard %+v", tc.Name, g)
			continue
		}
		main := map[string]int32{}
		for _, c := range p.Chains {
			main[c.Name] = c.Priority
		}
		n := 0
		for _, c := range g.Chains {
			if c.Priority != main[c.Name]+1 {
				t.Errorf("%s: guard chain %s at %d, main at %d", tc.Name, c.Name, c.Priority, main[c.Name])
			}
			for _, r := range c.Rules {
				if r.Verdict != VerdictDrop {
					t.Errorf("%s: guard rule that does not drop: %s", tc.Name, r)
				}
				n++
			}
		}
		want := len(rulesWith(p, func(r Rule) bool { return r.Verdict == VerdictDrop && r.KeyMatch == nil && r.MapSet == nil }))
		if n != want {
			t.Errorf("%s: guard has %d drops, want %d", tc.Name, n, want)
		}
	}
}
