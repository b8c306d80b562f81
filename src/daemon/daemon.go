package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
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
	StateDir   string // engine state across crashes; statefile.Dir by default
	Log        *slog.Logger
	// Frontends (ubus, D-Bus) serve the API once the first apply is done.
	Frontends []Frontend
}

// Daemon holds the applied state. mu guards everything below it.
type Daemon struct {
	opts Options
	// conn is used by the main loop and the status goroutine; nftables.Conn
	// queues batch messages internally, so calls are serialised by connMu.
	connMu sync.Mutex
	conn   *nft.Conn

	ectx context.Context // parent of engine contexts; outlives the signal context
	// Repairs are bounded: 5 within 10 s, then none until the next reload,
	// so a table that never matches the plan cannot make us loop on our
	// own events. Touched only by the main loop.
	repairWindow  time.Time
	repairsInWin  int
	repairStopped bool
	engineErr     chan error // an engine's Run failed

	mu sync.Mutex
	// engines by name: written by the main loop under mu, read by Status.
	engines   map[string]*running
	applied   *Loaded // last good, applied state
	appliedAt time.Time
	repairs   int
	lastErr   string
	lastErrAt time.Time

	hub       status.Hub      // events for the front-ends
	reloadReq chan chan error // Reload from a front-end, served by the main loop
}

// Run applies the config and serves until ctx ends or SIGTERM/SIGINT, then
// removes what it installed. A bad config at start is an error (procd will
// log it and respawn); a bad config on SIGHUP keeps the running state. An
// engine that fails is fatal too: its queue rules would otherwise let
// traffic bypass it for good, and procd's respawn is the cleaner restart.
func Run(ctx context.Context, o Options) error {
	// SIGHUP's default action ends the process; catch it before anything
	// else, because boot-time triggers send it early and often.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if status.Answering(o.SocketPath) {
		return fmt.Errorf("daemon: another vpn-passthrough answers on %s", o.SocketPath)
	}
	conn, err := nft.Open()
	if err != nil {
		return err
	}
	// Engines get their own context: shutdown stops them only after the
	// table (and so every queue rule) is gone.
	ectx, ecancel := context.WithCancel(context.Background())
	defer ecancel()
	d := &Daemon{opts: o, conn: conn, ectx: ectx, engines: map[string]*running{},
		engineErr: make(chan error, 1), reloadReq: make(chan chan error)}
	log := o.Log

	if err := d.reloadAndTell("start"); err != nil {
		d.stopEngines()
		return err
	}

	gone := make(chan struct{}, 1)
	go nft.Watch(ctx, plan.TableName, gone, func(err error) {
		log.Error("table watch failed, retrying", "err", err)
		d.setErr(err)
	})
	go func() {
		if err := status.Serve(ctx, o.SocketPath, d.Status); err != nil {
			log.Error("status socket failed", "err", err)
			d.setErr(err)
		}
	}()
	go status.WatchSessions(ctx, func() []status.SessionInfo { return d.Status().Sessions }, 2*time.Second, &d.hub)
	for _, f := range o.Frontends {
		go func() {
			if err := f(ctx, d); err != nil && ctx.Err() == nil {
				log.Error("front-end failed", "err", err)
				d.setErr(err)
			}
		}()
	}

	for {
		select {
		case <-ctx.Done():
			return d.shutdown()
		case <-hup:
			d.reloadAndTell("SIGHUP") // errors are logged and kept for status
		case done := <-d.reloadReq:
			done <- d.reloadAndTell("api")
		case <-gone:
			d.repair()
		case err := <-d.engineErr:
			log.Error("engine failed, stopping so procd restarts the daemon", "err", err)
			if serr := d.shutdown(); serr != nil {
				return serr
			}
			return err
		}
	}
}

// reload loads, plans and applies. On any error the previous state stays:
// the table as it was, and the engines it needs.
func (d *Daemon) reload(why string) error {
	log := d.opts.Log
	d.connMu.Lock()
	defer d.connMu.Unlock()
	d.repairStopped, d.repairsInWin = false, 0
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
	d.mu.Lock()
	prev := d.applied
	d.mu.Unlock()
	if prev != nil && reflect.DeepEqual(prev.Plan, l.Plan) && d.conn.Intact(l.Plan) {
		// A HUP with nothing new (WAN events, fw4 reloads): rebuilding the
		// table would only drop packets waiting in our queues.
		if err := updateEngines(d.engines, l); err != nil {
			log.Error("engine update failed", "err", err)
			d.setErr(err)
			return err
		}
		d.mu.Lock()
		d.applied = l
		d.lastErr = ""
		d.mu.Unlock()
		// Same message as a real apply: the state in force is the plan.
		log.Info("applied", "trigger", why, "changed", false, "table", "inet "+plan.TableName)
		return nil
	}
	if err := d.applyWithEngines(l); err != nil {
		log.Error("apply failed, keeping the last good state", "trigger", why, "err", err)
		d.setErr(err)
		if prev != nil {
			// Bring back the engines the last good plan needs (stale
			// ones were stopped to free their queue numbers).
			if rerr := d.applyWithEngines(prev); rerr != nil {
				log.Error("restoring the last good state failed", "err", rerr)
			}
		}
		return err
	}
	d.flushBlocked(prev, l)
	d.mu.Lock()
	d.applied, d.appliedAt = l, time.Now()
	d.lastErr = ""
	d.mu.Unlock()
	for _, dec := range l.Plan.Decisions {
		log.Info("protocol", "proto", dec.Proto, "datapath", dec.Datapath, "reason", dec.Reason)
	}
	log.Info("applied", "trigger", why, "changed", true, "table", "inet "+plan.TableName,
		"lan", l.Plan.Topology.LAN, "wan", l.Plan.Topology.WAN)
	return nil
}

// applyWithEngines stops engines the plan no longer wants (freeing their
// queue numbers), starts the new ones before their queue rules exist, applies
// the table, and only then hands the new config to the engines it kept.
func (d *Daemon) applyWithEngines(l *Loaded) error {
	keep, stale := splitEngines(d.engines, l.Plan.Queues)
	for _, r := range stale {
		r.stop()
		d.opts.Log.Info("engine stopped", "engine", r.q.Engine, "queue", r.q.Num)
	}
	d.setEngines(keep)
	started, err := startEngines(d.ectx, l, keep, engineEnv{Log: d.opts.Log, StateDir: d.opts.StateDir}, d.engineErr)
	if err != nil {
		return err
	}
	if err := d.conn.Apply(l.Plan); err != nil {
		for _, r := range started {
			r.stop()
		}
		return err
	}
	all := map[string]*running{}
	for k, r := range keep {
		all[k] = r
	}
	for _, r := range started {
		all[r.q.Engine] = r
	}
	d.setEngines(all)
	return updateEngines(keep, l)
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

// flushBlocked deletes the conntrack entries of protocols that were just
// switched off: with fw4 flow offloading, established flows skip the forward
// hook and so our drop rules; without their conntrack entry they must start
// over, and their first packet meets the block.
func (d *Daemon) flushBlocked(prev, next *Loaded) {
	var protos []plan.Proto
	for _, dec := range next.Plan.Decisions {
		if dec.Datapath != plan.PathBlocked {
			continue
		}
		if prev != nil && prev.Plan.Decision(dec.Proto).Datapath == plan.PathBlocked {
			continue
		}
		protos = append(protos, dec.Proto)
	}
	if len(protos) == 0 {
		return
	}
	n, err := ct.DeleteMatching(func(f ct.Flow) bool {
		k := status.Classify(f.Orig)
		return k != "" && slices.Contains(protos, plan.Proto(status.Family(k)))
	})
	if err != nil {
		d.opts.Log.Warn("could not flush conntrack entries of blocked protocols", "err", err)
		return
	}
	d.opts.Log.Info("flushed conntrack entries of blocked protocols", "protos", protos, "entries", n)
}

// repair re-applies the last good plan if our table is gone or damaged.
func (d *Daemon) repair() {
	d.mu.Lock()
	l := d.applied
	d.mu.Unlock()
	if l == nil || l.Plan.Empty() {
		return
	}
	d.connMu.Lock()
	defer d.connMu.Unlock()
	// Deleted, flushed or cut down: anything but the planned state.
	if d.conn.Intact(l.Plan) {
		return
	}
	if now := time.Now(); now.Sub(d.repairWindow) > 10*time.Second {
		d.repairWindow, d.repairsInWin = now, 0
	}
	if d.repairsInWin >= 5 {
		if !d.repairStopped {
			d.repairStopped = true
			err := errors.New("daemon: table keeps differing from the plan after 5 repairs in 10 s; repairs stop until the next reload")
			d.opts.Log.Error("repair stopped", "err", err)
			d.setErr(err)
		}
		return
	}
	d.repairsInWin++
	if err := d.conn.Apply(l.Plan); err != nil {
		d.opts.Log.Error("repair failed", "err", err)
		d.setErr(err)
		return
	}
	d.mu.Lock()
	d.repairs++
	d.appliedAt = time.Now()
	d.mu.Unlock()
	d.opts.Log.Info("table was deleted or changed from under us, restored", "table", "inet "+plan.TableName)
}

func (d *Daemon) shutdown() error {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	err := d.conn.Remove(plan.TableName)
	// Rules first, then engines: a queue rule whose listener is gone would
	// fall back to bypass, but there is no reason to get there.
	d.stopEngines()
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
