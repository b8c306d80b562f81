package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// The daemon's side of status.API, which the ubus object and the D-Bus
// service call. A reload from them goes through the main loop, like SIGHUP.

// Frontend serves the API (ubus, D-Bus) until ctx ends.
type Frontend func(ctx context.Context, api status.API) error

// sessionDropper is an engine that can remove one of its sessions.
type sessionDropper interface {
	DropSession(kind, client, server, orig string) bool
}

// api adapts the daemon to status.API.
type api struct{ d *Daemon }

func (a api) Status() status.Status                    { return a.d.Status() }
func (a api) Subscribe() (<-chan status.Event, func()) { return a.d.hub.Subscribe() }
func (a api) DropSession(protocol, id string) error    { return a.d.DropSession(protocol, id) }
func (a api) Reload() error                            { return a.d.requestReload() }

var _ status.API = api{}

// serveAPI starts the session watcher and the front-ends until ctx ends.
func (d *Daemon) serveAPI(ctx context.Context) {
	// Every 5 s, as LuCI polls: each look reads conntrack in kernel mode.
	go status.WatchSessions(ctx, func() []status.SessionInfo { return d.Status().Sessions }, 5*time.Second, &d.hub)
	for _, f := range d.opts.Frontends {
		go func() {
			if err := f(ctx, api{d}); err != nil && ctx.Err() == nil {
				d.opts.Log.Error("front-end failed", "err", err)
				d.setErr(err)
			}
		}()
	}
}

// requestReload asks the main loop to reload and waits for the outcome.
func (d *Daemon) requestReload() error {
	done := make(chan error, 1)
	select {
	case d.reloadReq <- done:
	case <-time.After(30 * time.Second):
		return errors.New("daemon: busy, reload not started")
	}
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Minute):
		return errors.New("daemon: reload did not finish in 2 minutes")
	}
}

// reloadAndTell is Reload plus the "applied" event.
func (d *Daemon) reloadAndTell(why string) error {
	err := d.Reload(why)
	e := status.Event{Name: status.EventApplied, Trigger: why}
	if err != nil {
		e.Error = err.Error()
	}
	d.hub.Publish(e)
	return err
}

// DropSession removes one session: from the engine that carries it, and
// its conntrack entries, so the kernel forgets its NAT mapping too.
func (d *Daemon) DropSession(protocol, id string) error {
	if protocol == "" || id == "" {
		return fmt.Errorf("%w: protocol and id are both required", status.ErrBadArgument)
	}
	var found *status.SessionInfo
	for _, s := range d.Status().Sessions {
		if s.Protocol == protocol && s.ID == id {
			s := s
			found = &s
			break
		}
	}
	if found == nil {
		return fmt.Errorf("%w: %s session %q (the sessions method lists them)", status.ErrUnknownSession, protocol, id)
	}
	orig := ""
	if found.IDOrig != nil {
		orig = *found.IDOrig
	}
	if found.Datapath == string(plan.PathUserspace) {
		d.mu.Lock()
		dropped := false
		for _, r := range d.engines {
			if dr, ok := r.eng.(sessionDropper); ok && dr.DropSession(found.Kind, found.Client, found.Server, orig) {
				dropped = true
			}
		}
		d.mu.Unlock()
		if !dropped {
			return fmt.Errorf("%w: %s session %q ended meanwhile", status.ErrUnknownSession, protocol, id)
		}
	}
	n, err := d.k.Conntrack.DeleteMatching(func(f ct.Flow) bool { return flowOf(f, found) })
	if err != nil && found.Datapath == string(plan.PathKernel) {
		return fmt.Errorf("daemon: delete the conntrack entry of %s: %w", id, err)
	}
	d.opts.Log.Info("session dropped", "protocol", protocol, "id", id, "conntrack_entries", n)
	d.hub.Publish(status.Event{Name: status.EventSessionEnd, Session: found})
	return nil
}

// flowOf reports whether a conntrack entry is the kernel state of session
// s: the flow itself in kernel mode; for a userspace PPTP call, the GRE
// flow of its outbound packets (keyed by the server's Call ID).
func flowOf(f ct.Flow, s *status.SessionInfo) bool {
	if f.Orig.Src.String() != s.Client || f.Orig.Dst.String() != s.Server {
		return false
	}
	t, ok := plan.Classify(f.Orig.Proto, f.Orig.DstPort)
	if !ok {
		return false
	}
	if s.Datapath == string(plan.PathUserspace) {
		return s.Kind == "pptp" && t.Kind == "gre" && s.IDPeer != nil && fmt.Sprint(f.Orig.DstPort) == *s.IDPeer
	}
	switch {
	case t.Kind != s.Kind || s.IDOrig == nil:
		return false
	case t.Kind == "gre":
		return fmt.Sprint(f.Orig.SrcPort) == *s.IDOrig
	case t.L4 == plan.ProtoTCP || t.L4 == plan.ProtoUDP:
		return "port "+fmt.Sprint(f.Orig.SrcPort) == *s.IDOrig
	}
	return true // esp, ah: one flow per client and server
}

// Status is the snapshot every front-end serves (status.Build).
func (d *Daemon) Status() status.Status {
	d.fwMu.Lock()
	cs, cerr := d.k.Firewall.Counters(tableName)
	// The guard's drops count too: whichever table drops a packet first.
	gs, gerr := d.k.Firewall.Counters(plan.GuardTable)
	dropsOnly := d.dropsOnly
	d.fwMu.Unlock()
	d.mu.Lock()
	kernelPath := d.applied != nil && d.applied.Plan.UsesKernel()
	d.mu.Unlock()
	in := status.Input{Version: d.opts.Version, PID: os.Getpid(), Config: d.opts.ConfigPath}
	if kernelPath { // a big conntrack table is not read for nothing
		flows, err := d.k.Conntrack.Dump()
		in.Flows, in.FlowsRead = flows, err == nil
		in.Accounting = sysctlBool("nf_conntrack_acct")
		in.Timestamps = sysctlBool("nf_conntrack_timestamp")
	}
	if cerr == nil {
		in.Counters = map[string]status.Counter{}
		for k, v := range cs {
			in.Counters[k] = status.Counter{Packets: v.Packets, Bytes: v.Bytes}
		}
		if gerr == nil {
			for k, v := range gs {
				c := in.Counters[k]
				in.Counters[k] = status.Counter{Packets: c.Packets + v.Packets, Bytes: c.Bytes + v.Bytes}
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	in.Repairs, in.LastErr, in.LastErrAt = d.repairs, d.lastErr, d.lastErrAt
	if d.fw4.gone {
		in.Warnings = append(in.Warnings, fw4Gone)
	}
	if d.fw4.markWarning != "" {
		in.Warnings = append(in.Warnings, d.fw4.markWarning)
	}
	if dropsOnly {
		in.Warnings = append(in.Warnings, "repair storm: our table keeps being changed from outside; only its blocks and guards are in place until the next full repair")
	}
	if d.applied != nil {
		in.Plan, in.Caps, in.Enabled, in.AppliedAt = d.applied.Plan, d.applied.Caps, d.applied.Config.Enabled, d.appliedAt
	}
	for _, r := range d.engines {
		in.Engines = append(in.Engines, status.EngineReport{Name: r.q.Engine, Sessions: r.eng.Sessions(), Counters: r.eng.Counters()})
	}
	return status.Build(in)
}

func sysctlBool(name string) *bool {
	b, err := os.ReadFile("/proc/sys/net/netfilter/" + name)
	if err != nil {
		return nil
	}
	v := strings.TrimSpace(string(b)) != "0"
	return &v
}
