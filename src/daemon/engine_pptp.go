package daemon

import (
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/pptp"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/statefile"
	"github.com/vpn-passthrough/vpn-passthrough/src/loader"
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
		Queue:        q.Num,
		MaxCalls:     c.MaxCalls,
		MaxPerClient: c.MaxCallsPerClient,
		IdleTimeout:  c.IdleTimeout,
		Mark:         plan.Mark,
		MarkMask:     plan.MarkMask,
		// The kernel has the helper: fw4 may assign it to the control
		// connections, and the engine must take it off again.
		ClearKernelHelper: plan.ClearsKernelHelper(l.Caps),
		StatePath:         statefile.Path(stateDir, "pptp-calls", q.Num), // survives SIGKILL (engine/pptp doc.go)
	}
}

// newPPTPEngine restores the call table a killed daemon left and binds the
// PPTP queue (queue_base) before the plan's queue rules are applied, so no
// packet meets an empty queue.
func newPPTPEngine(q plan.Queue, l *loader.Loaded, env EngineEnv) (Engine, error) {
	log := env.Log.With("engine", "pptp")
	cfg := pptpConfig(q, l, env.StateDir)
	e, err := pptp.New(cfg, pptp.Options{Log: log})
	if err != nil {
		return nil, err
	}
	log.Info("pptp engine ready", "queue", q.Num, "state_file", cfg.StatePath,
		"max_calls", cfg.MaxCalls, "max_calls_per_client", cfg.MaxPerClient, "idle_timeout", cfg.IdleTimeout,
		"remove_kernel_helper", cfg.ClearKernelHelper)
	return &pptpEngine{Engine: e, q: q, stateDir: env.StateDir}, nil
}

// Update takes a reloaded config without dropping calls.
func (e *pptpEngine) Update(l *loader.Loaded) error {
	e.Engine.Update(pptpConfig(e.q, l, e.stateDir))
	return nil
}
