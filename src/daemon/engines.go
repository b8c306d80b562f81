package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

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
	Update(l *Loaded) error
}

// newEngine builds the engine for one queue. Each engine lives in its own
// file (engine_<name>.go) so the engines can grow independently.
func newEngine(q plan.Queue, l *Loaded, log *slog.Logger) (Engine, error) {
	switch q.Engine {
	case "pptp":
		return newPPTPEngine(q, l, log)
	case "esp":
		return newESPEngine(q, l, log)
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

// syncEngines makes the running engines match the plan: it keeps an engine
// whose queue is unchanged (updating its config, so sessions survive a
// reload), starts missing ones and returns the ones to stop once the new
// rules are applied.
func syncEngines(ctx context.Context, cur map[string]*running, l *Loaded, log *slog.Logger) (next map[string]*running, stale []*running, err error) {
	next = map[string]*running{}
	var started []*running
	for _, q := range l.Plan.Queues {
		if r, ok := cur[q.Engine]; ok && r.q == q {
			if u, ok := r.eng.(Updater); ok {
				if err := u.Update(l); err != nil {
					return rollback(started, cur, err)
				}
			}
			next[q.Engine] = r
			continue
		}
		eng, err := newEngine(q, l, log)
		if err != nil {
			return rollback(started, cur, err)
		}
		ectx, cancel := context.WithCancel(ctx)
		r := &running{q: q, eng: eng, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(r.done)
			if err := eng.Run(ectx); err != nil && ectx.Err() == nil {
				log.Error("engine stopped", "engine", q.Engine, "queue", q.Num, "err", err)
			}
		}()
		log.Info("engine started", "engine", q.Engine, "queue", q.Num)
		started = append(started, r)
		next[q.Engine] = r
	}
	for name, r := range cur {
		if next[name] != r {
			stale = append(stale, r)
		}
	}
	return next, stale, nil
}

func rollback(started []*running, cur map[string]*running, err error) (map[string]*running, []*running, error) {
	for _, r := range started {
		r.stop()
	}
	return cur, nil, err
}
