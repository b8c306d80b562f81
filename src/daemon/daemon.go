package daemon

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/loader"
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
	// FW4IncludeDir holds our fw4 include (fw4IncludeDir under Root by
	// default); the daemon keeps its mark equal to globals.mark.
	FW4IncludeDir string
	Log           *kvlog.Logger
	// Frontends (ubus, D-Bus) serve the API once the first apply is done.
	Frontends []Frontend
}

// Daemon holds the applied state. The files of this package split it by
// concern: reload.go (load, apply, restore), repair.go (our table changed
// under us), engines.go (userspace engines), statusview.go (the status
// snapshot), kernel.go (the interfaces to the kernel).
type Daemon struct {
	opts Options
	k    Kernel
	// fwMu serialises calls on k.Firewall from the main loop and the
	// status goroutine (nftables.Conn queues batch messages internally).
	// Lock order: fwMu before mu.
	fwMu sync.Mutex

	ectx context.Context // parent of engine contexts; outlives the signal context
	// Repair bounds (repair.go). Touched only by the main loop, under fwMu.
	repairWindowStart time.Time
	repairsInWin      int
	lastRepair        time.Time
	storm             bool          // more than repairBurst repairs in this window
	stormInterval     time.Duration // least time between repairs in a storm
	dropsOnly         bool          // the kernel refused the full plan: only its drops are in place
	coarse            bool          // Firewall.Diff cannot confirm our applies here: use Intact
	engineErr         chan error    // an engine's Run failed

	mu sync.Mutex
	// engines by name: written by the main loop under mu, read by Status.
	engines   map[string]*running
	applied   *loader.Loaded // last good, applied state
	appliedAt time.Time
	repairs   int
	lastErr   string
	lastErrAt time.Time
	fw4       fw4State

	hub       status.Hub      // events for the front-ends (api.go)
	reloadReq chan chan error // reloads the front-ends ask for
}

// New makes a daemon that reaches the kernel through k. Engines run under
// ectx, which must outlive the daemon's own context: shutdown stops them
// only after the table (and so every queue rule) is gone.
func New(ectx context.Context, o Options, k Kernel) *Daemon {
	return &Daemon{opts: o, k: k, ectx: ectx, engines: map[string]*running{},
		engineErr: make(chan error, 1), stormInterval: defaultStormInterval, reloadReq: make(chan chan error)}
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
	ectx, ecancel := context.WithCancel(context.Background())
	defer ecancel()
	d := New(ectx, o, realKernel(o, conn))
	if err := d.Start(); err != nil {
		return err
	}
	d.serve(ctx)
	return d.Loop(ctx, hup)
}

// serve starts what answers for the daemon (the status socket) until ctx
// ends.
func (d *Daemon) serve(ctx context.Context) {
	go func() {
		if err := status.Serve(ctx, d.opts.SocketPath, d.Status); err != nil {
			d.opts.Log.Error("status socket failed", "err", err)
			d.setErr(err)
		}
	}()
	d.serveAPI(ctx)
}

// Start applies the config for the first time. On error nothing is left
// running.
func (d *Daemon) Start() error {
	if err := d.Reload("start"); err != nil {
		d.stopEngines()
		return err
	}
	return nil
}

// Loop watches our table and reloads on each signal from reload (SIGHUP)
// until ctx ends, then shuts down. It returns early, after shutting down, if
// an engine fails.
func (d *Daemon) Loop(ctx context.Context, reload <-chan os.Signal) error {
	changed := make(chan struct{}, 1)
	go d.k.Watch(ctx, d.quietElements, changed, func(err error) {
		d.opts.Log.Error("table watch failed, retrying", "err", err)
		d.setErr(err)
	})
	// retry fires when a repair backed off or fell back to the drops.
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	repair := func() {
		if wait := d.Repair(); wait > 0 {
			retry.Reset(wait)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return d.Shutdown()
		case <-reload:
			d.reloadAndTell("SIGHUP") // errors are logged and kept for status
		case done := <-d.reloadReq:
			done <- d.reloadAndTell("api")
		case <-changed:
			d.checkFW4()
			repair()
			d.mu.Lock()
			l := d.applied
			d.mu.Unlock()
			if l != nil {
				d.checkFW4Mark(l) // fw4 reloaded: did it take the include?
				d.followOffload(l)
			}
		case <-retry.C:
			repair()
		case err := <-d.engineErr:
			d.opts.Log.Error("engine failed, stopping so procd restarts the daemon", "err", err)
			if serr := d.Shutdown(); serr != nil {
				return serr
			}
			return err
		}
	}
}

// Shutdown removes our table, then stops the engines: rules first, because
// a queue rule whose listener is gone would fall back to bypass, and there
// is no reason to get there.
func (d *Daemon) Shutdown() error {
	d.fwMu.Lock()
	defer d.fwMu.Unlock()
	err := d.k.Firewall.Remove(tableName)
	if gerr := d.k.Firewall.Remove(plan.GuardTable); err == nil {
		err = gerr
	}
	d.stopEngines()
	if err != nil {
		d.opts.Log.Error("remove failed", "err", err)
		return err
	}
	d.opts.Log.Info("stopped, table removed", "table", "inet "+tableName)
	return nil
}

func (d *Daemon) setErr(err error) {
	d.mu.Lock()
	d.lastErr, d.lastErrAt = err.Error(), time.Now()
	d.mu.Unlock()
}
