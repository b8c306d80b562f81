package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/probe"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// Options configure a daemon run.
type Options struct {
	ConfigPath string
	SocketPath string
	Root       probe.Root
	Version    string
	Log        *slog.Logger
}

// Daemon holds the applied state. mu guards everything below it.
type Daemon struct {
	opts Options
	// conn is used by the main loop and the status goroutine; nftables.Conn
	// queues batch messages internally, so calls are serialised by connMu.
	connMu sync.Mutex
	conn   *nft.Conn

	ctx context.Context // the run's context, parent of engine contexts

	mu sync.Mutex
	// engines by name: written by the main loop under mu, read by Status.
	engines   map[string]*running
	applied   *Loaded // last good, applied state
	appliedAt time.Time
	repairs   int
	lastErr   string
	lastErrAt time.Time
}

// Run applies the config and serves until ctx ends or SIGTERM/SIGINT, then
// removes what it installed. A bad config at start is an error (procd will
// log it and respawn); a bad config on SIGHUP keeps the running state.
func Run(ctx context.Context, o Options) error {
	conn, err := nft.Open()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d := &Daemon{opts: o, conn: conn, ctx: ctx, engines: map[string]*running{}}
	log := o.Log

	if err := d.reload("start"); err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	gone := make(chan struct{}, 1)
	watchErr := make(chan error, 1)
	go func() { watchErr <- nft.Watch(ctx, plan.TableName, gone) }()
	go func() {
		if err := status.Serve(ctx, o.SocketPath, d.Status); err != nil {
			log.Error("status socket failed", "err", err)
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return d.shutdown()
		case <-hup:
			d.reload("SIGHUP") // errors are logged and kept for status
		case <-gone:
			d.repair()
		case err := <-watchErr:
			if err != nil {
				// Without events we cannot repair; say so, keep serving.
				log.Error("table watch stopped", "err", err)
				d.setErr(err)
			}
		}
	}
}

// reload loads, plans and applies. On any error the previous state stays.
func (d *Daemon) reload(why string) error {
	log := d.opts.Log
	d.connMu.Lock()
	defer d.connMu.Unlock()
	l, err := Load(d.opts.ConfigPath, d.opts.Root, d.conn)
	if err != nil {
		log.Error("config refused, keeping the last good state", "trigger", why, "err", err)
		d.setErr(err)
		return err
	}
	for _, w := range l.Warnings {
		log.Warn("config warning", "where", w.String())
	}
	for _, w := range l.Plan.Warnings {
		log.Warn("limitation", "detail", w)
	}
	// Engines listen before their queue rules exist, so no packet meets an
	// empty queue (the rules use bypass, but fail-open is for crashes).
	next, stale, err := syncEngines(d.ctx, d.engines, l, log)
	if err != nil {
		log.Error("engine start failed, keeping the last good state", "trigger", why, "err", err)
		d.setErr(err)
		return err
	}
	if err := d.conn.Apply(l.Plan); err != nil {
		for name, r := range next {
			if d.engines[name] != r {
				r.stop()
			}
		}
		log.Error("apply failed, keeping the last good state", "trigger", why, "err", err)
		d.setErr(err)
		return err
	}
	for _, r := range stale {
		r.stop()
		log.Info("engine stopped", "engine", r.q.Engine, "queue", r.q.Num)
	}
	d.mu.Lock()
	d.engines = next
	d.applied, d.appliedAt = l, time.Now()
	d.lastErr = ""
	d.mu.Unlock()
	for _, dec := range l.Plan.Decisions {
		log.Info("protocol", "proto", dec.Proto, "datapath", dec.Datapath, "reason", dec.Reason)
	}
	log.Info("applied", "trigger", why, "table", "inet "+plan.TableName,
		"lan", l.Plan.Topology.LAN, "wan", l.Plan.Topology.WAN)
	return nil
}

// repair re-applies the last good plan if our table is gone.
func (d *Daemon) repair() {
	d.mu.Lock()
	l := d.applied
	d.mu.Unlock()
	if l == nil || l.Plan.Empty() {
		return
	}
	d.connMu.Lock()
	defer d.connMu.Unlock()
	ok, err := d.conn.Exists(plan.TableName)
	if err != nil || ok {
		return
	}
	if err := d.conn.Apply(l.Plan); err != nil {
		d.opts.Log.Error("repair failed", "err", err)
		d.setErr(err)
		return
	}
	d.mu.Lock()
	d.repairs++
	d.appliedAt = time.Now()
	d.mu.Unlock()
	d.opts.Log.Info("table was deleted from under us, restored", "table", "inet "+plan.TableName)
}

func (d *Daemon) shutdown() error {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	err := d.conn.Remove(plan.TableName)
	// Rules first, then engines: a queue rule whose listener is gone would
	// fall back to bypass, but there is no reason to get there.
	d.mu.Lock()
	engines := d.engines
	d.engines = nil
	d.mu.Unlock()
	for _, r := range engines {
		r.stop()
	}
	if err != nil {
		d.opts.Log.Error("remove failed", "err", err)
		return err
	}
	d.opts.Log.Info("stopped, table removed", "table", "inet "+plan.TableName)
	return nil
}

func (d *Daemon) setErr(err error) {
	d.mu.Lock()
	d.lastErr, d.lastErrAt = err.Error(), time.Now()
	d.mu.Unlock()
}

// Status is the snapshot the socket serves.
func (d *Daemon) Status() status.Status {
	// Lock order is connMu before mu, as in reload.
	d.connMu.Lock()
	cs, cerr := d.conn.Counters(plan.TableName)
	d.connMu.Unlock()
	flows, ferr := ct.Dump()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := status.Status{
		Version:   d.opts.Version,
		PID:       os.Getpid(),
		Config:    d.opts.ConfigPath,
		Repairs:   d.repairs,
		LastError: d.lastErr,
		Counters:  map[string]status.Counter{},
		Sessions:  []status.Session{},
	}
	if d.lastErr != "" {
		t := d.lastErrAt
		s.LastErrorAt = &t
	}
	if d.applied == nil {
		return s
	}
	p := d.applied.Plan
	s.Enabled = d.applied.Config.Enabled
	s.AppliedAt = d.appliedAt
	s.Protocols = p.Decisions
	s.Topology = p.Topology
	s.Caps = d.applied.Caps
	s.Warnings = p.Warnings
	if ferr == nil {
		s.Sessions = kernelSessions(flows, p)
	}
	for _, r := range d.engines {
		s.Sessions = append(s.Sessions, r.eng.Sessions()...)
		for k, v := range r.eng.Counters() {
			s.Counters[r.q.Engine+"_"+k] = status.Counter{Packets: v}
		}
	}
	if len(p.Queues) > 0 {
		s.QueueRules = "native nft queue"
		if p.QueueCompat {
			s.QueueRules = "xt NFQUEUE through nft_compat"
		}
	}
	if cerr == nil {
		for k, v := range cs {
			s.Counters[k] = status.Counter{Packets: v.Packets, Bytes: v.Bytes}
		}
	}
	return s
}
