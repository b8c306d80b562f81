package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/loader"
	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// journal records what the fakes were asked to do, in order, so a test can
// check the order of effects across the firewall and the engines.
type journal struct {
	mu  sync.Mutex
	log []string
}

func (j *journal) add(format string, a ...any) {
	j.mu.Lock()
	j.log = append(j.log, fmt.Sprintf(format, a...))
	j.mu.Unlock()
}

func (j *journal) entries() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.log)
}

// fakeFirewall keeps "the table" (our main table) as the last plan applied;
// nil is absent. guard is the guard table likewise. A refused Apply changes
// nothing, as the kernel's transactions promise.
type fakeFirewall struct {
	mu       sync.Mutex
	j        *journal
	table    *plan.Plan
	guard    *plan.Plan
	applies  int
	failNext int                      // refuse this many of the next Applies
	failIf   func(p *plan.Plan) error // refuse plans this returns an error for
	removed  int
	counters map[string]nft.Counter
	onChange func() // called after each change (the watch)
	fw4      bool   // table inet fw4 exists
	// fw4Mark/fw4Mask: what fw4's forward chain accepts (mask 0: no rule)
	fw4Mark, fw4Mask uint32
	// fw4MarkErr: reading fw4's forward chain fails (a rule the library
	// cannot decode)
	fw4MarkErr error
	// fw4Chain is what fw4's forward chain says about offloading.
	fw4Chain plan.FW4Chain
}

func (f *fakeFirewall) FW4Offload() plan.FW4Chain {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fw4Chain
}

// setFW4Chain changes fw4's forward chain, as a fw4 reload does, and
// signals the watch.
func (f *fakeFirewall) setFW4Chain(c plan.FW4Chain) {
	f.mu.Lock()
	f.fw4Chain = c
	f.mu.Unlock()
	f.changed()
}

func (f *fakeFirewall) Apply(p *plan.Plan) error {
	f.mu.Lock()
	if f.failNext > 0 {
		f.failNext--
		f.mu.Unlock()
		f.j.add("apply refused")
		return errors.New("fake kernel: batch refused")
	}
	if f.failIf != nil {
		if err := f.failIf(p); err != nil {
			f.mu.Unlock()
			f.j.add("apply refused")
			return err
		}
	}
	if p.Table == plan.GuardTable {
		f.guard = nil
		if !p.Empty() {
			f.guard = clonePlan(p)
		}
		f.mu.Unlock()
		f.j.add("apply guard")
		f.changed()
		return nil
	}
	f.applies++
	f.table = clonePlan(p)
	f.mu.Unlock()
	f.j.add("apply %s", planName(p))
	f.changed()
	return nil
}

func (f *fakeFirewall) Diff(p *plan.Plan) string {
	if f.Intact(p) {
		return ""
	}
	return "differs"
}

func (f *fakeFirewall) Exists(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return name == fw4Table && f.fw4, nil
}

func (f *fakeFirewall) FW4AcceptMark() (uint32, uint32, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fw4MarkErr != nil {
		return 0, 0, false, f.fw4MarkErr
	}
	return f.fw4Mark, f.fw4Mask, f.fw4Mask != 0, nil
}

func (f *fakeFirewall) Intact(p *plan.Plan) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.table
	if p.Table == plan.GuardTable {
		t = f.guard
		if p.Empty() {
			return t == nil
		}
	}
	return t != nil && reflect.DeepEqual(t, p)
}

func (f *fakeFirewall) Remove(name string) error {
	f.mu.Lock()
	if name == plan.GuardTable {
		f.guard = nil
		f.mu.Unlock()
		f.j.add("remove guard")
		f.changed()
		return nil
	}
	f.table = nil
	f.removed++
	f.mu.Unlock()
	f.j.add("remove")
	f.changed()
	return nil
}

func (f *fakeFirewall) Counters(name string) (map[string]nft.Counter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.table == nil || name == plan.GuardTable {
		return map[string]nft.Counter{}, nil
	}
	return f.counters, nil
}

// damage changes the table from outside, as `nft` would.
func (f *fakeFirewall) damage(fn func(t *plan.Plan) *plan.Plan) {
	f.mu.Lock()
	if f.table != nil {
		f.table = fn(f.table)
	}
	f.mu.Unlock()
	f.changed()
}

func (f *fakeFirewall) changed() {
	if f.onChange != nil {
		f.onChange()
	}
}

// damageGuard changes the guard table from outside.
func (f *fakeFirewall) damageGuard(fn func(t *plan.Plan) *plan.Plan) {
	f.mu.Lock()
	if f.guard != nil {
		f.guard = fn(f.guard)
	}
	f.mu.Unlock()
	f.changed()
}

func (f *fakeFirewall) currentGuard() *plan.Plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.guard
}

func (f *fakeFirewall) current() *plan.Plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.table
}

func (f *fakeFirewall) appliesN() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applies
}

func clonePlan(p *plan.Plan) *plan.Plan {
	c := *p
	c.Chains = nil
	for _, ch := range p.Chains {
		ch.Rules = slices.Clone(ch.Rules)
		c.Chains = append(c.Chains, ch)
	}
	c.Sets = nil
	for _, s := range p.Sets {
		s.Elements = slices.Clone(s.Elements)
		c.Sets = append(c.Sets, s)
	}
	return &c
}

// planName names a plan in the journal by its datapaths, e.g.
// "pptp=userspace,l2tp=kernel,ipsec=blocked".
func planName(p *plan.Plan) string {
	var parts []string
	for _, d := range p.Decisions {
		parts = append(parts, string(d.Proto)+"="+string(d.Datapath))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("(%d chains)", len(p.Chains))
	}
	return strings.Join(parts, ",")
}

type fakeConntrack struct {
	j       *journal
	flows   []ct.Flow
	deleted []ct.Flow
}

func (c *fakeConntrack) Dump() ([]ct.Flow, error) { return c.flows, nil }
func (c *fakeConntrack) DeleteMatching(m func(ct.Flow) bool) (int, error) {
	var keep []ct.Flow
	for _, f := range c.flows {
		if m(f) {
			c.deleted = append(c.deleted, f)
		} else {
			keep = append(keep, f)
		}
	}
	c.flows = keep
	c.j.add("conntrack flush %d", len(c.deleted))
	return len(c.deleted), nil
}

// fakeEngine runs until its context ends and journals start, update, stop.
type fakeEngine struct {
	j       *journal
	name    string
	updates int
}

func (e *fakeEngine) Run(ctx context.Context) error {
	<-ctx.Done()
	e.j.add("stop %s", e.name)
	return nil
}
func (e *fakeEngine) Sessions() []status.Session  { return nil }
func (e *fakeEngine) Counters() map[string]uint64 { return map[string]uint64{"packets": 1} }
func (e *fakeEngine) Update(*loader.Loaded) error {
	e.updates++
	e.j.add("update %s", e.name)
	return nil
}

// rig is a daemon wired to fakes. cfg is what the next Load reads; loadErr,
// if set, is what it refuses with.
type rig struct {
	t       *testing.T
	j       *journal
	fw      *fakeFirewall
	ct      *fakeConntrack
	d       *Daemon
	mu      sync.Mutex
	cfg     config.Config
	loadErr error
	caps    plan.Caps
	// flowOffload is fw4's defaults.flow_offloading.
	flowOffload bool
	cancel      context.CancelFunc
	changed     chan struct{} // what the fake watch signals
}

var fullCaps = plan.Caps{NFTables: true, Conntrack: true, PPTPHelper: true, PPTPNAT: true, GRETracking: true,
	NFQueue: true, NFTQueueExpr: true, XTNFQueue: true}

// runLoop runs the daemon's loop until the test ends.
func (r *rig) runLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.d.Loop(ctx, make(chan os.Signal)) }()
	t.Cleanup(func() { cancel(); <-done })
}

func newRig(t *testing.T, cfg config.Config) *rig {
	j := &journal{}
	r := &rig{t: t, j: j, fw: &fakeFirewall{j: j, counters: map[string]nft.Counter{}},
		ct: &fakeConntrack{j: j}, cfg: cfg, caps: fullCaps, changed: make(chan struct{}, 1)}
	r.fw.onChange = func() {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
	ectx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	t.Cleanup(cancel)
	k := Kernel{
		Firewall:  r.fw,
		Conntrack: r.ct,
		Load:      r.load,
		NewEngine: func(q plan.Queue, l *loader.Loaded, env EngineEnv) (Engine, error) {
			j.add("start %s", q.Engine)
			return &fakeEngine{j: j, name: q.Engine}, nil
		},
		Watch: func(ctx context.Context, quiet func(table, set string) bool, changed chan<- struct{}, onErr func(error)) {
			for {
				select {
				case <-ctx.Done():
					return
				case <-r.changed:
					select {
					case changed <- struct{}{}:
					default:
					}
				}
			}
		},
	}
	log := kvlog.Discard()
	if testing.Verbose() {
		log = kvlog.New(testWriter{t}, kvlog.LevelInfo)
	}
	r.d = New(ectx, Options{ConfigPath: "/fake/vpn-passthrough", Log: log}, k)
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func (r *rig) load() (*loader.Loaded, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loadErr != nil {
		return nil, r.loadErr
	}
	topo := config.Topology{LAN: []string{"br-lan"}, WAN: []string{"wan"}, LANFrom: "test", WANFrom: "test"}
	// As loader.Load: fw4's config and its live forward chain.
	p, err := plan.Build(plan.Input{Config: r.cfg, Caps: r.caps, Topology: topo, FlowOffload: r.flowOffload, FW4: r.fw.FW4Offload()})
	if err != nil {
		return nil, err
	}
	return &loader.Loaded{Config: r.cfg, Caps: r.caps, Plan: p}, nil
}

func (r *rig) setConfig(c config.Config) {
	r.mu.Lock()
	r.cfg, r.loadErr = c, nil
	r.mu.Unlock()
}

// engineNames lists the engines running now, sorted.
func (r *rig) engineNames() []string {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	var names []string
	for n := range r.d.engines {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// waitJournal waits (bounded) until the journal holds want.
func (r *rig) waitJournal(want string) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if slices.Contains(r.j.entries(), want) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatalf("journal never got %q: %q", want, r.j.entries())
}

func userspaceConfig() config.Config {
	c := config.Default()
	c.Mode = config.ModeUserspace
	return c
}
