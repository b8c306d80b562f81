package esp

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/statefile"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// Netfilter hook numbers (uapi linux/netfilter.h enum nf_inet_hooks) as
// nfqueue.Packet.Hook reports them.
const (
	hookPrerouting = 0
	hookForward    = 2
)

// Config configures an Engine. Common.Queue is config queue_base + 1;
// Common.MaxSessions, MaxPerClient and IdleTimeout, when set, override the
// same limits in Options.
type Config struct {
	engine.Common
	Options Options
	// Addr returns the IPv4 address outbound ESP leaves with through the
	// device with this index. Default: the device's first IPv4 address.
	Addr func(ifindex uint32) (netip.Addr, error)
	// WANDevices are the devices whose IPv4 addresses the kernel maps'
	// SNAT uses (esp_wan_src, esp_wan_addrs; with Common.Maps).
	WANDevices []string
	// SetsOnly: the fallback datapath. Common.Maps holds only the plain
	// sets esp_wan_addrs and esp_servers (the no-engine drop), no SA maps.
	SetsOnly bool
	// Mark under MarkMask goes on every packet the engine forwards (the
	// plan's globals.mark); 0 means plan.Mark/plan.MarkMask.
	Mark, MarkMask uint32
	// Common.StatePath is where the tables are saved (at most once a
	// second, when they changed, and when Run ends) and restored from by
	// New, so a restarted daemon forwards known SAs at once instead of
	// relearning them all at the same time. "" keeps nothing.
}

// Engine runs a Tracker on an NFQUEUE.
type Engine struct {
	log   *kvlog.Logger
	q     *nfqueue.Queue
	epoch time.Time
	addr  func(uint32) (netip.Addr, error)
	state string // Config.StatePath
	// mark under markMask is put on forwarded packets (Config.Mark).
	mark, markMask uint32
	boot           string // this boot's id, saved with the state
	netns          string // this network namespace's id, saved with the state

	mu    sync.Mutex // guards tr, wan and floor
	tr    *Tracker
	floor time.Duration // the latest time handed to tr

	// wan caches the address of each outgoing device; the housekeeping
	// loop refreshes it, so the packet path never resolves addresses.
	wan map[uint32]netip.Addr

	// Kernel data plane (engine_maps.go); maps is nil on the fallback.
	maps         engine.Maps
	setsOnly     bool          // Config.SetsOnly
	wanDevs      []string      // guarded by mu
	syncMu       sync.Mutex    // one map reconciliation at a time
	adopted      bool          // the maps were read back once (guarded by syncMu)
	wanReady     bool          // the WAN maps were programmed once (housekeeping only)
	mapErrors    uint64        // guarded by mu
	mapErrLogged time.Time     // guarded by mu
	syncCh       chan struct{} // a new SA is complete: program it now
}

// New binds the queue, so packets can be queued to it as soon as New
// returns; Run must follow.
func New(c Config) (*Engine, error) {
	c.Options = c.options()
	if c.Addr == nil {
		c.Addr = ifaceIPv4
	}
	e := &Engine{
		log:   c.Log,
		epoch: time.Now(),
		addr:  c.Addr,
		state: c.StatePath,
		boot:  statefile.BootID(),
		netns: statefile.NetNS(),
		tr:    NewTracker(c.Options),
		wan:   map[uint32]netip.Addr{},

		maps:     c.Maps,
		setsOnly: c.SetsOnly,
		wanDevs:  c.WANDevices,
		syncCh:   make(chan struct{}, 1),
		mark:     c.Mark,
		markMask: c.MarkMask,
	}
	if c.StatePath != "" {
		n, err := e.loadState(c.StatePath)
		if err != nil {
			c.Log.Warn("esp engine: saved SAs not restored", "path", c.StatePath, "err", err)
		} else if n > 0 {
			c.Log.Info("esp engine: SAs restored from the previous run", "sas", n, "path", c.StatePath)
		}
	}
	if e.maps != nil {
		// The kernel kept forwarding while no engine ran: what its maps
		// hold is the truth (after a crash or an upgrade), read back
		// before any packet is queued to us.
		e.syncWAN()
		e.syncMaps()
	}
	q, err := nfqueue.Open(nfqueue.Config{Num: c.Queue})
	if err != nil {
		return nil, fmt.Errorf("esp engine: %w", err)
	}
	e.q = q
	return e, nil
}

// now is the tracker's clock: positive and never decreasing (e.mu held).
func (e *Engine) now() time.Duration { return e.clockLocked(time.Since(e.epoch) + time.Hour) }

// clockLocked keeps the tracker's clock from going back: packets carry
// their arrival times, which can lie before a time already handed out.
func (e *Engine) clockLocked(t time.Duration) time.Duration {
	if t < e.floor {
		return e.floor
	}
	e.floor = t
	return t
}

// packetTime is when p reached the queue, on the tracker's clock: its
// kernel timestamp (nfqueue.EnableTimestamps) when it has one, so a batch
// read late keeps the gaps between its packets (the timing evidence of
// re-learning is in those gaps), else the batch's time. A timestamp more
// than a second off (a wall-clock step) is ignored.
func (e *Engine) packetTime(p *nfqueue.Packet, batch time.Duration, wall time.Time) time.Duration {
	t := batch
	if !p.Time.IsZero() {
		if lag := wall.Sub(p.Time); lag >= 0 && lag < time.Second {
			t -= lag
		}
	}
	return e.clockLocked(t)
}

// Run handles packets until ctx ends, then closes the queue. It also
// expires idle entries and refreshes WAN addresses every second.
func (e *Engine) Run(ctx context.Context) error {
	defer e.q.Close()
	// Re-learning judges by the gaps between packets: have the kernel
	// stamp them, so a batch read late does not blur them. Run owns the
	// socket that keeps stamping on, so an engine never run leaks none.
	if stamps, err := nfqueue.EnableTimestamps(); err != nil {
		e.log.Warn("esp engine: packets are timed when read, not when queued", "err", err)
	} else {
		defer stamps.Close()
	}
	done := make(chan struct{})
	defer close(done)
	go e.housekeeping(ctx, done)
	err := e.q.Run(ctx, e)
	if serr := e.saveState(e.state, true); serr != nil {
		e.log.Warn("esp engine: SAs not saved", "path", e.state, "err", serr)
	}
	if err != nil {
		return fmt.Errorf("esp engine: %w", err)
	}
	return nil
}

func (e *Engine) housekeeping(ctx context.Context, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	saveWarned := false
	wanCh := make(chan struct{}, 1)
	if len(e.wanDevs) > 0 {
		if err := watchAddrs(done, wanCh); err != nil {
			e.log.Warn("esp engine: no rtnetlink address events; WAN addresses are polled every second", "err", err)
		}
	}
	// Until the plan's maps exist (the daemon applies the plan after New),
	// try every 20 ms, so the first SAs are not queued for a second: a
	// packet whose SA element exists but whose WAN address does not yet
	// would be counted by the kernel and then queued anyway.
	soon := time.NewTicker(20 * time.Millisecond)
	defer soon.Stop()
	var ticks int
	var lastFree time.Time
	for {
		var soonC <-chan time.Time
		if e.maps != nil && !e.wanReady {
			soonC = soon.C
		}
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-soonC:
			if e.syncWAN(); e.wanReady {
				e.syncMaps()
			}
			continue
		case <-e.syncCh:
			e.syncMaps()
			continue
		case <-wanCh:
			e.syncWAN()
			continue
		case <-tick.C:
		}
		e.syncWAN()
		if err := e.saveState(e.state, false); err != nil && !saveWarned {
			saveWarned = true
			e.log.Warn("esp engine: SAs not saved", "path", e.state, "err", err)
		}
		e.mu.Lock()
		e.tr.Expire(e.now())
		idx := make([]uint32, 0, len(e.wan))
		for i := range e.wan {
			idx = append(idx, i)
		}
		e.mu.Unlock()
		for _, i := range idx {
			a, err := e.addr(i)
			e.mu.Lock()
			if err != nil {
				// The device is gone or lost its address. Keep the
				// invalid entry: deleting it would make the packet path
				// resolve (and log) again on every packet.
				e.wan[i] = netip.Addr{}
			} else {
				e.wan[i] = a
			}
			e.mu.Unlock()
		}
		// Big tables are read back every 5 s only: a pass lists every
		// element (idle expiry needs no finer grain; status reads them
		// itself), and its garbage is returned to the kernel afterwards,
		// so the daemon's RSS stays near its live heap on small routers.
		ticks++
		if big := e.elements() > bigTable; !big || ticks%5 == 0 {
			e.syncMaps()
			if big && time.Since(lastFree) > 10*time.Second {
				lastFree = time.Now()
				debug.FreeOSMemory()
			}
		}
	}
}

// bigTable is the element count above which the periodic read-back slows
// down (see housekeeping).
const bigTable = 2000

func (e *Engine) elements() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return int(e.tr.st.Elements)
}

// HandleBatch decides a batch of queued packets (nfqueue.Handler).
func (e *Engine) HandleBatch(pkts []nfqueue.Packet) {
	e.mu.Lock()
	defer e.mu.Unlock()
	batch, wall := e.now(), time.Now()
	learned := e.tr.st.LearnedIn + e.tr.st.LearnedOut + e.tr.st.Confirmed + e.tr.st.Relearned
	defer func() {
		if e.maps != nil && e.tr.st.LearnedIn+e.tr.st.LearnedOut+e.tr.st.Confirmed+e.tr.st.Relearned != learned {
			select {
			case e.syncCh <- struct{}{}:
			default:
			}
		}
	}()
	for i := range pkts {
		p := &pkts[i]
		var dir Dir
		var wan netip.Addr
		switch p.Hook {
		case hookForward:
			dir = Outbound
			wan = e.wanAddrLocked(p.OutDev)
		case hookPrerouting:
			dir = Inbound
		default:
			continue // not from our rules: accept untouched
		}
		if p.Truncated() {
			// Only part of it was copied; it cannot be rewritten.
			p.Verdict = nfqueue.Drop
			e.tr.st.Malformed++
			continue
		}
		switch e.tr.Process(p.Data, dir, wan, e.packetTime(p, batch, wall)) {
		case Accept:
			p.Verdict = nfqueue.Accept
		case Drop:
			p.Verdict = nfqueue.Drop
		case Forward:
			p.Verdict = nfqueue.Accept
			p.Modified = true
			p.SetMark = true
			mark, mask := e.markBits()
			p.NewMark = p.Mark&^mask | mark
		}
	}
}

// markBits is the mark the engine puts on what it forwards.
func (e *Engine) markBits() (mark, mask uint32) {
	if e.markMask == 0 {
		return plan.Mark, plan.MarkMask
	}
	return e.mark, e.markMask
}

// wanAddrLocked returns the cached address of device idx, resolving it on
// first use.
func (e *Engine) wanAddrLocked(idx uint32) netip.Addr {
	if a, ok := e.wan[idx]; ok || idx == 0 {
		return a
	}
	a, err := e.addr(idx)
	if err != nil {
		e.log.Warn("esp engine: outgoing device has no IPv4 address; outbound ESP is dropped", "ifindex", idx, "err", err)
		a = netip.Addr{}
	}
	e.wan[idx] = a // cached even when invalid: refreshed every second
	return a
}

// options merges the common limits into the tracker's options.
func (c Config) options() Options {
	o := c.Options
	if c.MaxSessions > 0 {
		o.MaxSAs = c.MaxSessions
	}
	if c.MaxPerClient > 0 {
		o.MaxPerClient = c.MaxPerClient
	}
	if c.IdleTimeout > 0 {
		o.IdleTimeout = c.IdleTimeout
	}
	if o.Log == nil {
		o.Log = c.Log
	}
	return o
}

// Update changes the tracker's limits and keep_ike_port without losing
// sessions (a reload). The queue and state path stay as New set them.
func (e *Engine) Update(c Config) error {
	if c.Log == nil {
		c.Log = e.log
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tr.SetOptions(c.options())
	if e.maps != nil && c.WANDevices != nil {
		e.wanDevs = c.WANDevices // the next pass follows the new devices
	}
	return nil
}

// Sessions is a snapshot for status, with the kernel's counters read now.
func (e *Engine) Sessions() []status.Session {
	e.syncMaps()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tr.Sessions(e.now())
}

// Stats are the tracker's counters in the engines' common set, with the
// tracker's own names (Stats.Map in tracker.go) as detail.
func (e *Engine) Stats() engine.Stats {
	e.mu.Lock()
	ts := e.tr.Stats()
	mapErrors := e.mapErrors
	e.mu.Unlock()
	qs := e.q.Stats()
	d := ts.Map()
	d["queue_enobufs"] = qs.ENOBUFS
	d["queue_send_errors"] = qs.SendErrs
	return engine.Stats{
		ForwardedOut: ts.OutForwarded,
		ForwardedIn:  ts.InForwarded,
		KernelOut:    ts.KernelOut,
		KernelIn:     ts.KernelIn,
		Elements:     ts.Elements,
		MapErrors:    mapErrors,
		Learned:      ts.LearnedOut + ts.LearnedIn,
		Ended:        ts.Expired,
		Malformed:    ts.Malformed + ts.IKEMalformed,
		Unknown:      ts.InUnknownSPI,
		Refused:      ts.TableFull + ts.ClientCap,
		QueueRecv:    qs.Packets,
		QueueLost:    qs.ENOBUFS + qs.SendErrs,
		Detail:       d,
	}
}

var _ engine.Engine[Config] = (*Engine)(nil)

// ifaceIPv4 returns the first IPv4 address of a device: its primary
// address, which is also what masquerade would pick.
func ifaceIPv4(idx uint32) (netip.Addr, error) {
	addrs, err := nl.IPv4Addrs(idx)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(addrs) > 0 {
		return addrs[0], nil
	}
	name := fmt.Sprint(idx)
	if l, err := nl.LinkByIndex(idx); err == nil {
		name = l.Name
	}
	return netip.Addr{}, fmt.Errorf("%s has no IPv4 address", name)
}
