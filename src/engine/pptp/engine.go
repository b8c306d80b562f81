package pptp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/statefile"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// Queue is the part of *nfqueue.Queue the engine uses.
type Queue interface {
	Step(h nfqueue.Handler) (int, error)
	Stats() nfqueue.Stats
	Close() error
}

// Options are the engine's dependencies; zero values mean the real ones.
type Options struct {
	Log *kvlog.Logger
	Now func() time.Time
	// Rand returns random 16-bit values for translated Call IDs.
	Rand func() uint16
	// Flows lists the conntrack table, for the outbound packet and byte
	// counts of each call (the kernel NATs outbound GRE); nil means ct.Dump.
	Flows func() ([]ct.Flow, error)
	// OpenQueue binds the queue; nil means nfqueue.Open. NoQueue skips it
	// (tests drive HandleBatch themselves).
	OpenQueue func(nfqueue.Config) (Queue, error)
	NoQueue   bool
	// Helper removes kernel helpers; nil means a ctnetlink socket, opened
	// when first needed.
	Helper HelperClearer
	// Conntrack looks control connections up in conntrack (the engine's
	// view of them, see tcpViewLocked). nil means a ctnetlink socket when
	// the queue is bound and the kernel speaks ctnetlink; without one the
	// engine follows control connections by its own stream tracking only.
	Conntrack Conntrack
}

// errNoCtnetlink: the kernel does not speak ctnetlink (nf_conntrack_netlink).
var errNoCtnetlink = errors.New("pptp: no ctnetlink socket")

// Engine is the userspace PPTP Call-ID NAT: the tracker (which decides)
// with the I/O it needs: the NFQUEUE socket, ctnetlink, the conntrack dump
// for the session table, and the state file.
type Engine struct {
	*tracker
	flows     func() ([]ct.Flow, error)
	q         Queue
	statePath string   // Config.StatePath, fixed for the engine's life
	ctConn    *ct.Conn // the engine's own ctnetlink socket, closed by Run
}

// Update applies a new config without losing calls. The queue number is
// fixed for an engine's life (the daemon starts a new engine for another).
func (e *Engine) Update(cfg Config) error {
	cfg.defaults()
	e.mu.Lock()
	defer e.mu.Unlock()
	// Fixed for the engine's life: its queue, state file and data plane
	// (the daemon starts a new engine for another).
	cfg.Queue, cfg.StatePath = e.cfg.Queue, e.statePath
	cfg.Maps, cfg.WANAddrsOnly = e.cfg.Maps, e.cfg.WANAddrsOnly
	e.cfg = cfg
	return nil
}

// Run handles the queue until ctx ends, then closes it. On a clean stop it
// removes the state file: the daemon removes its rules at the same time, so
// the calls are over.
func (e *Engine) Run(ctx context.Context) error {
	if e.q == nil {
		return errors.New("pptp engine: no queue")
	}
	defer e.q.Close()
	if e.ctConn != nil {
		defer e.ctConn.Close()
	}
	for ctx.Err() == nil {
		if _, err := e.q.Step(e); err != nil {
			return err
		}
		e.housekeeping()
	}
	if e.statePath != "" {
		e.removeState()
	}
	return nil
}

// housekeeping expires idle calls and saves the call table when it changed.
func (e *Engine) housekeeping() {
	now := e.now()
	if e.maps != nil && now.Sub(e.lastSync) >= time.Second {
		e.lastSync = now
		e.syncKernel(now)
	}
	e.mu.Lock()
	if now.Sub(e.lastSweep) >= time.Second {
		e.checkOutboundLocked()
		e.sweepLocked(now)
		e.lastSweep = now
	}
	var snap []byte
	if e.dirty && e.statePath != "" {
		snap = e.snapshotLocked()
		e.dirty = false
	}
	e.mu.Unlock()
	if snap != nil {
		if err := statefile.Write(e.statePath, snap); err != nil {
			e.log.Warn("pptp state not saved", "path", e.statePath, "err", err)
		}
	}
}

// Sessions is the call table for status. Inbound packets and bytes are the
// engine's own counts; outbound GRE is NATed by the kernel, so its counts
// come from the call's conntrack entry (zero unless the kernel counts,
// net.netfilter.nf_conntrack_acct=1, OpenWrt's default).
func (e *Engine) Sessions() []status.Session {
	type outKey struct {
		client, server netip.Addr
		key            uint16
	}
	out := map[outKey]ct.Flow{}
	if flows, err := e.flows(); err == nil {
		for _, f := range flows {
			if f.Orig.Proto == packet.ProtoGRE {
				// Conntrack exports GRE keys as ports; the outbound
				// tuple's destination key is the server's Call ID.
				out[outKey{f.Orig.Src, f.Orig.Dst, f.Orig.DstPort}] = f
			}
		}
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	ss := make([]status.Session, 0, e.nCalls)
	for _, c := range e.conns {
		for _, cl := range c.calls {
			s := status.Session{
				Proto: "pptp", Client: cl.client.String(), Server: cl.server.String(),
				OrigID: strconv.Itoa(int(cl.orig)), TransID: strconv.Itoa(int(cl.trans)), State: cl.state,
				PacketsIn: cl.pktsIn + cl.kernPkts, BytesIn: cl.bytesIn + cl.kernBytes,
				AgeSeconds: int64(now.Sub(cl.created) / time.Second), IdleSeconds: int64(now.Sub(cl.lastSeen) / time.Second),
			}
			if cl.havePeer {
				s.PeerID = strconv.Itoa(int(cl.peer))
				if f, ok := out[outKey{cl.client, cl.server, cl.peer}]; ok {
					s.PacketsOut, s.BytesOut = f.PacketsOrig, f.BytesOrig
					e.seenOutLocked(cl, f)
				}
			}
			s.State = cl.state
			ss = append(ss, s)
		}
	}
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].Client != ss[j].Client {
			return ss[i].Client < ss[j].Client
		}
		return ss[i].TransID < ss[j].TransID
	})
	return ss
}

// Stats are the engine's counters in the engines' one counter set
// (engine.Stats). Detail keeps every PPTP-specific count under the names
// status has always shown (gre_in, control_rst_ignored, ...).
func (e *Engine) Stats() engine.Stats {
	e.mu.Lock()
	c := e.cnt
	d := map[string]uint64{
		"calls": uint64(e.nCalls), "control_connections": uint64(len(e.conns)),
		"gre_in": c.greIn, "gre_in_unknown_call": c.greInUnknown, "gre_other": c.greOther,
		"control_segments": c.ctrlSegments, "control_bytes_rewritten": c.ctrlRewrites,
		"control_bad_messages": c.ctrlBad, "control_lost_sync": c.ctrlLostSync,
		"control_out_of_order": c.ctrlOutOfOrder, "control_unsynced": c.ctrlUnsynced,
		"control_retransmits": c.ctrlRetransmits, "calls_refused": c.callsRefused,
		"connections_refused": c.connsRefused, "bad_packets": c.badPkts,
		"kernel_helper_removed": c.helperCleared, "kernel_helper_errors": c.helperErrors,
		"calls_opened": c.callsOpened, "calls_closed": c.callsClosed, "calls_expired": c.callsExpired,
		"gre_malformed": c.greMalformed, "gre_in_not_to_wan": c.greNotToWAN,
		"control_syn_ignored": c.ctrlSynIgnored, "control_rst_ignored": c.ctrlRSTIgnored,
		"control_unconfirmed": c.ctrlUnconfirmed, "control_out_of_window": c.ctrlOutOfWindow,
		"map_adds": c.mapAdds, "map_add_us": c.mapAddMicros,
	}
	var kin uint64
	var elems uint64
	for _, cn := range e.conns {
		for _, cl := range cn.calls {
			if cl.programmed {
				kin += cl.kernPkts
				elems += 3
			}
		}
	}
	elems += 3 * uint64(len(e.orphans))
	d["map_orphans"] = uint64(len(e.orphans))
	st := engine.Stats{
		KernelIn:    kin,
		Elements:    elems,
		MapErrors:   c.mapErrors,
		ForwardedIn: c.greIn,
		Learned:     c.callsOpened,
		Ended:       c.callsClosed,
		Malformed:   c.greMalformed + c.badPkts + c.ctrlBad,
		Unknown:     c.greInUnknown,
		Refused:     c.callsRefused + c.connsRefused,
		Detail:      d,
	}
	e.mu.Unlock()
	if e.q != nil {
		s := e.q.Stats()
		st.QueueRecv, st.QueueLost = s.Packets, s.ENOBUFS+s.SendErrs
		d["queue_batches"], d["queue_enobufs"] = s.Batches, s.ENOBUFS
		d["queue_netlink_errors"], d["queue_send_errors"] = s.NLErrors, s.SendErrs
	}
	return st
}

// Counters flattens Stats for status.
func (e *Engine) Counters() map[string]uint64 { return e.Stats().Map() }

// New builds the engine, restores the call table from cfg.StatePath if a
// previous run left one, and binds the queue (unless o.NoQueue), so that it
// listens before the daemon installs the queue rules.
func New(cfg Config, opts ...Options) (*Engine, error) {
	cfg.defaults()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Log == nil {
		o.Log = cfg.Log
	}
	e := &Engine{tracker: &tracker{
		log: o.Log, now: o.Now, rand: o.Rand, helper: o.Helper, cfg: cfg,
		conns: map[connKey]*ctrlConn{}, byTrans: map[transKey]*call{}, byNAT: map[natKey]*ctrlConn{},
		blocks: map[transKey]int{}, perClient: map[uint32]int{}, limitLog: map[uint32]time.Time{},
		ctq: o.Conntrack, ctView: o.Conntrack != nil, maps: cfg.Maps, orphans: map[string]*orphan{},
	}, flows: o.Flows, statePath: cfg.StatePath}
	if e.now == nil {
		e.now = time.Now
	}
	if e.rand == nil {
		e.rand = cryptoRand16
	}
	if e.flows == nil {
		e.flows = ct.Dump
		if cfg.NoCtnetlink {
			e.flows = func() ([]ct.Flow, error) { return nil, errNoCtnetlink }
		}
	}
	e.seg.e = e.tracker
	if cfg.StatePath != "" {
		if n, err := e.loadState(cfg.StatePath); err != nil {
			e.log.Warn("pptp state not restored", "path", cfg.StatePath, "err", err)
		} else if n > 0 {
			e.log.Info("pptp calls restored after a restart", "calls", n, "path", cfg.StatePath)
		}
	}
	e.mu.Lock()
	e.adoptKernelLocked(e.now())
	e.mu.Unlock()
	if !o.NoQueue {
		open := o.OpenQueue
		if open == nil {
			open = func(c nfqueue.Config) (Queue, error) { return nfqueue.Open(c) }
		}
		// A longer queue than the kernel's 1024 rides out scheduling
		// delays of the daemon without drops; coalescing after small
		// batches halves the wakeups at a cost of at most 100 µs latency
		// (measured with test/bench/pptp: ~30% less CPU per packet).
		q, err := open(nfqueue.Config{Num: cfg.Queue, MaxLen: 2048, Coalesce: 100 * time.Microsecond})
		if err != nil {
			return nil, fmt.Errorf("pptp engine: %w", err)
		}
		e.q = q
		if e.ctq == nil {
			c, why := openConntrack(cfg.NoCtnetlink)
			if c != nil {
				e.ctq, e.ctView = c, true
				e.ctConn = c
			} else {
				e.log.Warn("pptp: no conntrack view of control connections (needs nf_conntrack_netlink, kmod-nf-conntrack-netlink): "+
					"spoofed RST, SYN and control segments are judged by the engine's own stream tracking only, "+
					"and inbound GRE is not checked against the router's WAN address", "err", why)
			}
		}
		if e.helper == nil && e.ctConn != nil {
			// The same socket removes kernel helpers (both are used
			// under the tracker's lock, one request at a time).
			e.helper = e.ctConn
		}
	}
	return e, nil
}

// openConntrack opens ctnetlink if the kernel speaks it (and the probe
// said so: off is how the labs run a kernel without it).
func openConntrack(off bool) (*ct.Conn, error) {
	if off {
		return nil, errors.New("nf_conntrack_netlink not found by the probe (or disabled)")
	}
	c, err := ct.Open()
	if err != nil {
		return nil, err
	}
	if err := c.Available(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// The engines' contract (src/engine).
var _ engine.Engine[Config] = (*Engine)(nil)

// cryptoRand16 reads the kernel's CSPRNG directly, as crypto/rand does on
// Linux; crypto/rand itself would add ~170 KiB of FIPS code to the binary.
func cryptoRand16() uint16 {
	var b [2]byte
	_, _ = unix.Getrandom(b[:], 0)
	return binary.BigEndian.Uint16(b[:])
}
