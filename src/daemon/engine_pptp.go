package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine/pptp"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// pptpStateDir holds the PPTP engine's call table across a daemon crash. On
// OpenWrt /var/run is tmpfs: it survives a restart of the daemon, not a
// reboot (src/engine/pptp doc.go, "Surviving SIGKILL").
const pptpStateDir = "/var/run/vpn-passthrough"

// pptpEngine is the userspace PPTP Call-ID NAT (src/engine/pptp). A reload
// keeps its calls and applies the new limits and idle timeout (Updater).
type pptpEngine struct {
	*pptp.Engine
	q plan.Queue
}

// pptpStatePath names the state file after the queue and the network
// namespace, so daemons in different namespaces (the lab) never share one.
func pptpStatePath(num uint16) string {
	var ino uint64
	if st, err := os.Stat("/proc/self/ns/net"); err == nil {
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			ino = s.Ino
		}
	}
	return filepath.Join(pptpStateDir, fmt.Sprintf("pptp-calls-q%d-netns%d.json", num, ino))
}

func pptpConfig(q plan.Queue, l *Loaded) pptp.Config {
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
		ClearKernelHelper: l.Caps.PPTPHelper,
		StatePath:         pptpStatePath(q.Num),
	}
}

// newPPTPEngine restores the call table a killed daemon left and binds the
// PPTP queue (queue_base) before the plan's queue rules are applied, so no
// packet meets an empty queue.
func newPPTPEngine(q plan.Queue, l *Loaded, log *slog.Logger) (Engine, error) {
	log = log.With("engine", "pptp")
	cfg := pptpConfig(q, l)
	e, err := pptp.New(cfg, pptp.Options{Log: log})
	if err != nil {
		return nil, err
	}
	log.Info("pptp engine ready", "queue", q.Num, "state_file", cfg.StatePath,
		"max_calls", cfg.MaxCalls, "max_calls_per_client", cfg.MaxPerClient, "idle_timeout", cfg.IdleTimeout,
		"remove_kernel_helper", cfg.ClearKernelHelper)
	return &pptpEngine{Engine: e, q: q}, nil
}

// Update takes a reloaded config without dropping calls.
func (e *pptpEngine) Update(l *Loaded) error {
	e.Engine.Update(pptpConfig(e.q, l))
	return nil
}
