package daemon

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

func TestReloadUnchangedPlanDoesNotReapply(t *testing.T) {
	r := newRig(t, userspaceConfig())
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	if n := r.fw.appliesN(); n != 1 {
		t.Fatalf("start applied %d times, want 1", n)
	}
	before := r.engineNames()
	for i := 0; i < 3; i++ {
		if err := r.d.Reload("SIGHUP"); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.fw.appliesN(); n != 1 {
		t.Errorf("3 reloads of an unchanged plan applied %d more times, want 0", n-1)
	}
	if got := r.engineNames(); !slices.Equal(got, before) {
		t.Errorf("engines %v, want %v", got, before)
	}
	starts := 0
	for _, e := range r.j.entries() {
		if strings.HasPrefix(e, "start ") {
			starts++
		}
	}
	if starts != len(before) {
		t.Errorf("engines started %d times for %d engines: %q", starts, len(before), r.j.entries())
	}
	// The kept engines still get the reloaded config (limits may differ
	// without the plan changing).
	if !slices.Contains(r.j.entries(), "update pptp") {
		t.Errorf("engines never got the reloaded config: %q", r.j.entries())
	}
	// A reload with an unchanged plan but a damaged table does apply.
	r.fw.damage(func(*plan.Plan) *plan.Plan { return nil })
	if err := r.d.Reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if n := r.fw.appliesN(); n != 2 {
		t.Errorf("reload over a deleted table: %d applies, want 2", n)
	}
}

func TestFailedApplyRestoresPreviousEnginesAndRules(t *testing.T) {
	r := newRig(t, userspaceConfig())
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	good := r.fw.current()
	goodEngines := r.engineNames()
	if !slices.Equal(goodEngines, []string{"esp", "pptp"}) {
		t.Fatalf("userspace mode runs %v, want esp and pptp", goodEngines)
	}
	// The new plan moves PPTP to the kernel (its engine must be stopped
	// to free the queue) and moves the queues; the kernel refuses it.
	next := userspaceConfig()
	next.Mode = config.ModeKernel
	next.QueueBase = 7
	r.setConfig(next)
	r.fw.failIf = func(p *plan.Plan) error {
		if p.Decision(plan.PPTP).Datapath == plan.PathKernel {
			return errors.New("fake kernel: no such helper")
		}
		return nil
	}
	err := r.d.Reload("SIGHUP")
	if err == nil || !strings.Contains(err.Error(), "no such helper") {
		t.Fatalf("reload = %v, want the kernel's refusal", err)
	}
	if !r.fw.Intact(good) {
		t.Errorf("table is not the last good plan after a refused apply")
	}
	if got := r.engineNames(); !slices.Equal(got, goodEngines) {
		t.Errorf("engines after a refused apply: %v, want %v", got, goodEngines)
	}
	// Each engine runs on the queue of the last good plan.
	r.d.mu.Lock()
	for name, e := range r.d.engines {
		if want := r.d.applied.Plan.Queues; !slices.Contains(want, e.q) {
			t.Errorf("engine %s on queue %d, not one of the good plan's %v", name, e.q.Num, want)
		}
	}
	r.d.mu.Unlock()
	st := r.d.Status()
	if !strings.Contains(st.LastError, "no such helper") {
		t.Errorf("status last_error = %q, want the refusal", st.LastError)
	}
	if st.Protocols[0].Datapath != string(plan.PathUserspace) {
		t.Errorf("status shows %v, want the state in force (pptp userspace)", st.Protocols[0])
	}
}

func TestRefusedConfigKeepsLastGoodState(t *testing.T) {
	c := config.Default()
	c.PPTP.Enabled = false
	r := newRig(t, c)
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	good := r.fw.current()
	r.mu.Lock()
	r.loadErr = errors.New(`/etc/config/vpn-passthrough:3: option enabled: "perhaps" is not a boolean`)
	r.mu.Unlock()
	err := r.d.Reload("SIGHUP")
	if err == nil || !strings.Contains(err.Error(), `"perhaps"`) {
		t.Fatalf("reload = %v, want the config error", err)
	}
	if r.fw.appliesN() != 1 || !r.fw.Intact(good) {
		t.Errorf("a refused config touched the table (%d applies)", r.fw.appliesN())
	}
	st := r.d.Status()
	if !strings.Contains(st.LastError, `:3: option enabled: "perhaps"`) || st.LastErrorAt == nil {
		t.Errorf("status last_error = %q (at %v), want the config error and its time", st.LastError, st.LastErrorAt)
	}
	if st.Protocols[0].Datapath != string(plan.PathBlocked) {
		t.Errorf("status shows %v, want pptp still blocked", st.Protocols[0])
	}
	// A good config afterwards clears the error.
	r.setConfig(config.Default())
	if err := r.d.Reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if st := r.d.Status(); st.LastError != "" {
		t.Errorf("last_error = %q after a good reload", st.LastError)
	}
}

func TestRefusedConfigAtStartIsAnError(t *testing.T) {
	r := newRig(t, config.Default())
	r.loadErr = errors.New("config: bad")
	if err := r.d.Start(); err == nil || err.Error() != "config: bad" {
		t.Fatalf("start = %v", err)
	}
	if r.fw.appliesN() != 0 || len(r.engineNames()) != 0 {
		t.Errorf("a refused start left state behind: %q", r.j.entries())
	}
}

func TestShutdownRemovesBeforeItStops(t *testing.T) {
	r := newRig(t, userspaceConfig())
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.d.Loop(ctx, make(chan os.Signal)) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Loop did not return after its context ended")
	}
	log := r.j.entries()
	rm := slices.Index(log, "remove")
	if rm < 0 || r.fw.current() != nil {
		t.Fatalf("shutdown did not remove the table: %q", log)
	}
	for _, e := range []string{"stop pptp", "stop esp"} {
		i := slices.Index(log, e)
		if i < 0 {
			t.Errorf("shutdown did not stop an engine (%s): %q", e, log)
		} else if i < rm {
			t.Errorf("%q before the table was removed: %q", e, log)
		}
	}
	if len(r.engineNames()) != 0 {
		t.Errorf("engines left: %v", r.engineNames())
	}
}

func TestEngineFailureShutsDown(t *testing.T) {
	r := newRig(t, userspaceConfig())
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.d.Loop(context.Background(), make(chan os.Signal)) }()
	r.d.engineErr <- errors.New("pptp engine (queue 0): socket closed")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "socket closed") {
			t.Fatalf("Loop = %v, want the engine's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Loop did not return after an engine failed")
	}
	if r.fw.current() != nil {
		t.Errorf("table left after an engine failure")
	}
}

func TestSIGHUPReloadsThroughLoop(t *testing.T) {
	r := newRig(t, config.Default())
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- r.d.Loop(ctx, hup) }()
	c := config.Default()
	c.L2TP.Enabled = false
	r.setConfig(c)
	hup <- syscall.SIGHUP
	r.waitJournal("apply pptp=kernel,l2tp=blocked,ipsec=userspace")
	cancel()
	<-done
}

func TestSwitchingOffFlushesOnlyThatProtocolsConntrack(t *testing.T) {
	r := newRig(t, config.Default())
	r.ct.flows = []ct.Flow{
		{Orig: ct.Tuple{Proto: uint8(plan.ProtoGRE)}},
		{Orig: ct.Tuple{Proto: uint8(plan.ProtoTCP), DstPort: 1723}},
		{Orig: ct.Tuple{Proto: uint8(plan.ProtoTCP), DstPort: 443}},
		{Orig: ct.Tuple{Proto: uint8(plan.ProtoUDP), DstPort: 500}},
	}
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	if len(r.ct.deleted) != 0 {
		t.Fatalf("start with everything on flushed %v", r.ct.deleted)
	}
	c := config.Default()
	c.PPTP.Enabled = false
	r.setConfig(c)
	if err := r.d.Reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if len(r.ct.deleted) != 2 || len(r.ct.flows) != 2 {
		t.Errorf("switching PPTP off deleted %v, kept %v; want GRE and TCP 1723 gone, the rest kept", r.ct.deleted, r.ct.flows)
	}
	// Reloading with PPTP still off flushes nothing more.
	r.fw.damage(func(*plan.Plan) *plan.Plan { return nil })
	r.d.Reload("SIGHUP")
	if len(r.ct.deleted) != 2 {
		t.Errorf("a second reload with pptp off flushed again: %v", r.ct.deleted)
	}
}
