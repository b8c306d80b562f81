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

// The daemon's side of status.API: what the ubus object and the D-Bus
// service call. Reload goes through the main loop, like SIGHUP.

// Frontend serves the API (ubus, D-Bus) until ctx ends.
type Frontend func(ctx context.Context, api status.API) error

// sessionDropper is an engine that can remove one of its sessions.
type sessionDropper interface {
	DropSession(kind, client, server, orig string) bool
}

// Reload asks the main loop to reload and waits for the outcome.
func (d *Daemon) Reload() error {
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

// reloadAndTell is reload plus the "applied" event.
func (d *Daemon) reloadAndTell(why string) error {
	err := d.reload(why)
	e := status.Event{Name: status.EventApplied, Trigger: why}
	if err != nil {
		e.Error = err.Error()
	}
	d.hub.Publish(e)
	return err
}

// Subscribe implements status.API.
func (d *Daemon) Subscribe() (<-chan status.Event, func()) { return d.hub.Subscribe() }

// DropSession removes one session: from the engine that carries it, and
// its conntrack entries (so the kernel forgets its NAT mapping too).
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
		return fmt.Errorf("%w: %s session %q (see the sessions method)", status.ErrUnknownSession, protocol, id)
	}
	orig := ""
	if found.IDOrig != nil {
		orig = *found.IDOrig
	}
	if found.Datapath == string(plan.PathUserspace) {
		d.mu.Lock()
		var dropped bool
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
	// The kernel's state of it: the flow itself, and for a userspace ESP
	// SA or PPTP call the conntrack entry of its outbound packets.
	n, err := ct.DeleteMatching(func(f ct.Flow) bool { return flowOf(f, found) })
	if err != nil && found.Datapath == string(plan.PathKernel) {
		return fmt.Errorf("daemon: delete the conntrack entry of %s: %w", id, err)
	}
	d.opts.Log.Info("session dropped", "protocol", protocol, "id", id, "conntrack_entries", n)
	d.hub.Publish(status.Event{Name: status.EventSessionEnd, Session: found})
	return nil
}

// flowOf reports whether a conntrack entry belongs to session s.
func flowOf(f ct.Flow, s *status.SessionInfo) bool {
	if f.Orig.Src.String() != s.Client || f.Orig.Dst.String() != s.Server {
		return false
	}
	kind := status.Classify(f.Orig)
	switch s.Kind {
	case "pptp": // a userspace call: the GRE flow keyed by the server's Call ID
		return kind == "gre" && s.IDPeer != nil && fmt.Sprint(f.Orig.DstPort) == *s.IDPeer
	case "esp":
		return kind == "esp" && s.Datapath == string(plan.PathKernel)
	case "gre":
		return kind == "gre" && s.IDOrig != nil && fmt.Sprint(f.Orig.SrcPort) == *s.IDOrig
	}
	return kind == s.Kind && s.IDOrig != nil && "port "+fmt.Sprint(f.Orig.SrcPort) == *s.IDOrig
}

// Status is the snapshot every front-end serves (status.Build).
func (d *Daemon) Status() status.Status {
	// Lock order is connMu before mu, as in reload.
	d.connMu.Lock()
	cs, cerr := d.conn.Counters(plan.TableName)
	d.connMu.Unlock()
	d.mu.Lock()
	kernelPath := d.applied != nil && d.applied.Plan.UsesKernel()
	d.mu.Unlock()
	in := status.Input{Version: d.opts.Version, PID: os.Getpid(), Config: d.opts.ConfigPath}
	if kernelPath { // a big conntrack table is not read for nothing
		flows, err := ct.Dump()
		in.Flows, in.FlowsRead = flows, err == nil
		in.Accounting = sysctlBool("nf_conntrack_acct")
		in.Timestamps = sysctlBool("nf_conntrack_timestamp")
	}
	if cerr == nil {
		in.Counters = map[string]status.Counter{}
		for k, v := range cs {
			in.Counters[k] = status.Counter{Packets: v.Packets, Bytes: v.Bytes}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	in.Repairs, in.LastErr, in.LastErrAt = d.repairs, d.lastErr, d.lastErrAt
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
