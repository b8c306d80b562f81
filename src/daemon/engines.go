package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/loader"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// Engine is a userspace packet engine that a plan asks for (plan.Queues).
type Engine interface {
	// Run reads the engine's NFQUEUE until ctx ends.
	Run(ctx context.Context) error
	// Sessions is a snapshot of the tunnels it carries, for status.
	Sessions() []status.Session
	// Counters are engine counters for status (e.g. dropped packets).
	Counters() map[string]uint64
}

// Updater is an Engine that takes a new config without losing its sessions.
type Updater interface {
	Update(l *loader.Loaded) error
}

// EngineEnv is what every engine gets from the daemon besides its config.
type EngineEnv struct {
	Log      *kvlog.Logger
	StateDir string // where engines keep state across a crash (statefile)
}

// newEngine builds the engine for one queue. Each engine lives in its own
// file (engine_<name>.go) so the engines can grow independently.
func newEngine(q plan.Queue, l *loader.Loaded, env EngineEnv) (Engine, error) {
	switch q.Engine {
	case "pptp":
		return newPPTPEngine(q, l, env)
	case "esp":
		return newESPEngine(q, l, env)
	}
	return nil, fmt.Errorf("daemon: plan asks for unknown engine %q", q.Engine)
}

type running struct {
	q      plan.Queue
	eng    Engine
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *running) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
	}
}

// splitEngines sorts the running engines into those the new queues keep
// (same engine, same queue number) and those to stop.
func splitEngines(cur map[string]*running, queues []plan.Queue) (keep map[string]*running, stale []*running) {
	keep = map[string]*running{}
	want := map[string]plan.Queue{}
	for _, q := range queues {
		want[q.Engine] = q
	}
	for name, r := range cur {
		if q, ok := want[name]; ok && q == r.q {
			keep[name] = r
		} else {
			stale = append(stale, r)
		}
	}
	return keep, stale
}

// startEngines starts the engines of l's queues that are not in keep. An
// engine whose Run fails while its context is live reports on d.engineErr.
func (d *Daemon) startEngines(l *loader.Loaded, keep map[string]*running) ([]*running, error) {
	log := d.opts.Log
	env := EngineEnv{Log: d.opts.Log, StateDir: d.opts.StateDir}
	failed := d.engineErr
	var started []*running
	for _, q := range l.Plan.Queues {
		if _, ok := keep[q.Engine]; ok {
			continue
		}
		eng, err := d.k.NewEngine(q, l, env)
		if err != nil {
			for _, r := range started {
				r.stop()
			}
			return nil, fmt.Errorf("%s engine: %w", q.Engine, err)
		}
		ectx, cancel := context.WithCancel(d.ectx)
		r := &running{q: q, eng: eng, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(r.done)
			if err := eng.Run(ectx); err != nil && ectx.Err() == nil {
				select {
				case failed <- fmt.Errorf("%s engine (queue %d): %w", q.Engine, q.Num, err):
				default:
				}
			}
		}()
		log.Info("engine started", "engine", q.Engine, "queue", q.Num)
		started = append(started, r)
	}
	return started, nil
}

// updateEngines hands a new config to kept engines. It runs only after the
// table was applied, so an engine never runs with a config whose rules were
// refused.
func updateEngines(engines map[string]*running, l *loader.Loaded) error {
	for _, r := range engines {
		if u, ok := r.eng.(Updater); ok {
			if err := u.Update(l); err != nil {
				return fmt.Errorf("%s engine: %w", r.q.Engine, err)
			}
		}
	}
	return nil
}

func (d *Daemon) setEngines(m map[string]*running) {
	d.mu.Lock()
	d.engines = m
	d.mu.Unlock()
}

func (d *Daemon) stopEngines() {
	d.mu.Lock()
	engines := d.engines
	d.engines = nil
	d.mu.Unlock()
	for _, r := range engines {
		r.stop()
	}
}
