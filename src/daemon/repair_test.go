package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// blocksHeld reports what is missing for p's table to drop LAN->WAN traffic
// of pr, or "" if nothing is.
func blocksHeld(t *plan.Plan, pr plan.Proto) string {
	if t == nil {
		return "table absent"
	}
	for _, s := range t.Sets {
		want := map[string]string{plan.SetLAN: "br-lan", plan.SetWAN: "wan"}[s.Name]
		if want != "" && !slices.Contains(s.Elements, want) {
			return fmt.Sprintf("set %s lacks %s", s.Name, want)
		}
	}
	for _, tr := range plan.TrafficOf(pr) {
		found := false
		for _, c := range t.Chains {
			if c.Hook != plan.HookForward {
				continue
			}
			for i, r := range c.Rules {
				if r.Verdict == plan.VerdictAccept && i == 0 {
					return "a foreign accept rule comes first"
				}
				if r.IIFSet == plan.SetLAN && r.OIFSet == plan.SetWAN && r.L4 == tr.L4 && r.DPort == tr.Port && r.Verdict == plan.VerdictDrop {
					found = true
				}
			}
		}
		if !found {
			return "no drop for " + tr.String()
		}
	}
	return ""
}

// damages are what other programs do to our table.
var damages = []struct {
	name string
	fn   func(t *plan.Plan) *plan.Plan
}{
	{"delete table", func(*plan.Plan) *plan.Plan { return nil }},
	{"flush chain forward", func(t *plan.Plan) *plan.Plan {
		for i := range t.Chains {
			if t.Chains[i].Name == "forward" {
				t.Chains[i].Rules = nil
			}
		}
		return t
	}},
	{"delete element wan", func(t *plan.Plan) *plan.Plan {
		for i := range t.Sets {
			if t.Sets[i].Name == plan.SetWAN {
				t.Sets[i].Elements = nil
			}
		}
		return t
	}},
	{"insert foreign accept", func(t *plan.Plan) *plan.Plan {
		for i := range t.Chains {
			if t.Chains[i].Name == "forward" {
				t.Chains[i].Rules = append([]plan.Rule{{Verdict: plan.VerdictAccept}}, t.Chains[i].Rules...)
			}
		}
		return t
	}},
}

// TestRepairStormNeverDropsTheBlocks damages the table over and over, far
// past the repair burst, and then makes the kernel refuse the full plan:
// after every damage the blocks are back within 2 s.
func TestRepairStormNeverDropsTheBlocks(t *testing.T) {
	c := userspaceConfig()
	c.PPTP.Enabled, c.IPsec.Enabled = false, false
	r := newRig(t, c)
	r.d.stormInterval = 20 * time.Millisecond
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	r.runLoop(t)

	check := func(round int, what string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			missing := ""
			for _, pr := range []plan.Proto{plan.PPTP, plan.IPsec} {
				if m := blocksHeld(r.fw.current(), pr); m != "" {
					missing = string(pr) + ": " + m
				}
			}
			if missing == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d, after %s: blocks not back within 2 s: %s", round, what, missing)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	const rounds = 40
	for i := 0; i < rounds; i++ {
		dm := damages[i%len(damages)]
		r.fw.damage(dm.fn)
		check(i, dm.name)
	}
	if !r.d.storm {
		t.Errorf("%d damages did not count as a repair storm", rounds)
	}
	// Now the kernel refuses anything but drops (say a module went away):
	// the drops alone must still come back.
	r.fw.mu.Lock()
	r.fw.failIf = func(p *plan.Plan) error {
		for _, c := range p.Chains {
			for _, r := range c.Rules {
				if r.Verdict != plan.VerdictDrop {
					return errors.New("fake kernel: counter rule refused")
				}
			}
		}
		return nil
	}
	r.fw.mu.Unlock()
	for i := 0; i < 2*len(damages); i++ {
		dm := damages[i%len(damages)]
		r.fw.damage(dm.fn)
		check(rounds+i, dm.name+" with the full plan refused")
	}
	if !r.d.dropsOnly {
		t.Errorf("the daemon does not know it fell back to the drops")
	}
	if st := r.d.Status(); st.LastError == "" {
		t.Errorf("status says nothing about the refused repair")
	}
}

// TestRepairOfUnchangedTableDoesNothing: our own applies cause events too;
// they must not cause applies.
func TestRepairOfIntactTableDoesNothing(t *testing.T) {
	r := newRig(t, config.Default())
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if wait := r.d.Repair(); wait != 0 {
			t.Fatalf("repair of an intact table asks to retry in %s", wait)
		}
	}
	if n := r.fw.appliesN(); n != 1 {
		t.Errorf("%d applies, want 1", n)
	}
}

func TestFW4GoneIsReported(t *testing.T) {
	r := newRig(t, config.Default())
	r.fw.fw4 = true
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	warned := func() bool {
		for _, w := range r.d.Status().Warnings {
			if strings.Contains(w, "table inet fw4 is gone") {
				return true
			}
		}
		return false
	}
	if warned() {
		t.Fatal("fw4 present, but status says it is gone")
	}
	r.runLoop(t)
	// `nft flush ruleset`: fw4's table and ours go together.
	r.fw.mu.Lock()
	r.fw.fw4 = false
	r.fw.mu.Unlock()
	r.fw.damage(func(*plan.Plan) *plan.Plan { return nil })
	deadline := time.Now().Add(5 * time.Second)
	for !warned() || r.fw.current() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("after a flush ruleset: fw4 warning %v, our table back %v", warned(), r.fw.current() != nil)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.fw.mu.Lock()
	r.fw.fw4 = true
	r.fw.mu.Unlock()
	r.fw.changed()
	for warned() {
		if time.Now().After(deadline) {
			t.Fatal("fw4 back, status still says it is gone")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFW4NeverSeenIsNotReported(t *testing.T) {
	r := newRig(t, config.Default())
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	r.d.checkFW4()
	for _, w := range r.d.Status().Warnings {
		if strings.Contains(w, "fw4") {
			t.Errorf("plain Linux without fw4 warns: %s", w)
		}
	}
}

// TestBackoffKeepsTheDrops: while a storm holds full repairs back (here for
// longer than the test), every damage still gets the drops back at once.
func TestBackoffKeepsTheDrops(t *testing.T) {
	c := userspaceConfig()
	c.PPTP.Enabled, c.IPsec.Enabled = false, false
	r := newRig(t, c)
	r.d.stormInterval = time.Hour
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	r.runLoop(t)
	for i := 0; i < 30; i++ {
		dm := damages[i%len(damages)]
		r.fw.damage(dm.fn)
		deadline := time.Now().Add(2 * time.Second)
		for {
			m := blocksHeld(r.fw.current(), plan.PPTP) + blocksHeld(r.fw.current(), plan.IPsec)
			if m == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d (%s), full repairs backed off: blocks not back within 2 s: %s", i, dm.name, m)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	if !r.d.storm || !r.d.dropsOnly {
		t.Errorf("storm %v, drops only %v: want both", r.d.storm, r.d.dropsOnly)
	}
	// Our own drops-only applies must not feed a loop.
	n := r.fw.appliesN()
	time.Sleep(100 * time.Millisecond)
	if m := r.fw.appliesN(); m != n {
		t.Errorf("%d applies in 100 ms with nothing damaged", m-n)
	}
}

// TestGuardHoldsTheBlocks: the guard table keeps the drops while the main
// table is damaged (before any repair), is itself repaired, and goes at
// shutdown before the engines stop.
func TestGuardHoldsTheBlocks(t *testing.T) {
	c := userspaceConfig()
	c.PPTP.Enabled = false
	r := newRig(t, c)
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	if m := blocksHeld(r.fw.currentGuard(), plan.PPTP); m != "" {
		t.Fatalf("guard after start: %s", m)
	}
	for _, dm := range damages {
		r.fw.damage(dm.fn) // no Loop runs: nothing repairs
		if m := blocksHeld(r.fw.currentGuard(), plan.PPTP); m != "" {
			t.Errorf("after %s of the main table the guard lost the blocks: %s", dm.name, m)
		}
	}
	if g := r.fw.currentGuard(); len(g.Queues) != 0 || len(g.Maps) != 0 || len(g.Helpers) != 0 {
		t.Errorf("the guard holds more than drops: %+v", g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.d.Loop(ctx, make(chan os.Signal)) }()
	r.fw.damageGuard(func(*plan.Plan) *plan.Plan { return nil })
	deadline := time.Now().Add(2 * time.Second)
	for blocksHeld(r.fw.currentGuard(), plan.PPTP) != "" || blocksHeld(r.fw.current(), plan.PPTP) != "" {
		if time.Now().After(deadline) {
			t.Fatalf("guard %q, main %q 2 s after the guard was deleted", blocksHeld(r.fw.currentGuard(), plan.PPTP), blocksHeld(r.fw.current(), plan.PPTP))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	log := r.j.entries()
	if g, stop := slices.Index(log, "remove guard"), slices.Index(log, "stop esp"); r.fw.currentGuard() != nil || g < 0 || stop < g {
		t.Errorf("shutdown: guard left %v, journal %q", r.fw.currentGuard() != nil, log)
	}
}

// TestEngineMapElementsAreQuiet: the engines update their maps several times
// a second; those element events must cost no Diff, while an element change
// in any other set of ours (a foreign `nft delete element ... wan_devs`) or
// of the guard table still counts.
func TestEngineMapElementsAreQuiet(t *testing.T) {
	cfg := config.Default()
	cfg.Mode = config.ModeUserspace
	r := newRig(t, cfg)
	r.caps.MapPayload = true
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	p := r.fw.current()
	if p == nil || len(p.Maps) == 0 {
		t.Fatalf("userspace plan with map payloads has no engine maps: %+v", p)
	}
	for _, m := range p.Maps {
		if !r.d.quietElements(plan.TableName, m.Name) {
			t.Errorf("element events of engine map %s would trigger a Diff", m.Name)
		}
		if r.d.quietElements(plan.GuardTable, m.Name) {
			t.Errorf("a set named %s in the guard table is taken for an engine map", m.Name)
		}
	}
	for _, s := range p.Sets {
		if r.d.quietElements(plan.TableName, s.Name) {
			t.Errorf("a foreign change of set %s's elements would not be repaired", s.Name)
		}
	}
	if !r.d.quietElements(fw4Table, "some_fw4_set") {
		t.Error("element events of fw4's sets would trigger a Diff of our table")
	}
}
