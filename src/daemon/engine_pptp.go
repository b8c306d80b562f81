package daemon

import (
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/pptp"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/statefile"
	"github.com/vpn-passthrough/vpn-passthrough/src/loader"
	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// pptpEngine is the userspace PPTP Call-ID NAT (src/engine/pptp). A reload
// keeps its calls and applies the new limits and idle timeout (Updater).
type pptpEngine struct {
	*pptp.Engine
	q        plan.Queue
	stateDir string
}

func pptpConfig(q plan.Queue, l *loader.Loaded, stateDir string) pptp.Config {
	c := l.Config.PPTP
	return pptp.Config{
		Common: engine.Common{
			Queue:        q.Num,
			MaxSessions:  c.MaxCalls,
			MaxPerClient: c.MaxCallsPerClient,
			IdleTimeout:  c.IdleTimeout,
			StatePath:    statefile.Path(stateDir, "pptp-calls", q.Num), // survives SIGKILL (engine/pptp doc.go)
		},
		Mark:     l.Plan.Mark,
		MarkMask: l.Plan.MarkMask,
		// The kernel has the helper: fw4 may assign it to the control
		// connections, and the engine must take it off again.
		ClearKernelHelper: plan.ClearsKernelHelper(l.Caps),
		NoCtnetlink:       !l.Caps.Ctnetlink,
	}
}

// newPPTPEngine restores the call table a killed daemon left and binds the
// PPTP queue (queue_base) before the plan's queue rules are applied, so no
// packet meets an empty queue.
func newPPTPEngine(q plan.Queue, l *loader.Loaded, env EngineEnv) (Engine, error) {
	log := env.Log.With("engine", "pptp")
	cfg := pptpConfig(q, l, env.StateDir)
	cfg.Log = log
	if _, ok := l.Plan.Map(plan.MapPPTPWANAddrs); ok {
		// The engine programs the GRE maps from the control connections
		// (the kernel data plane), or on the fallback only the router
		// addresses where untranslated GRE is dropped silently.
		cfg.WANAddrsOnly = !q.Maps
		n, err := nft.Open()
		if err != nil {
			return nil, err
		}
		cfg.Maps = n.Maps(l.Plan.Table)
	}
	e, err := pptp.New(cfg)
	if err != nil {
		return nil, err
	}
	log.Info("pptp engine ready", "queue", q.Num, "state_file", cfg.StatePath,
		"max_calls", cfg.MaxSessions, "max_calls_per_client", cfg.MaxPerClient, "idle_timeout", cfg.IdleTimeout,
		"remove_kernel_helper", cfg.ClearKernelHelper, "kernel_maps", q.Maps)
	return &pptpEngine{Engine: e, q: q, stateDir: env.StateDir}, nil
}

// Update takes a reloaded config without dropping calls.
func (e *pptpEngine) Update(l *loader.Loaded) error {
	return e.Engine.Update(pptpConfig(e.q, l, e.stateDir))
}
