package daemon

import (
	"errors"
	"os"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// Status is the snapshot the socket serves.
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
	var flows []ct.Flow
	ferr := errors.New("no protocol on the kernel datapath")
	if kernelPath { // a big conntrack table is not read for nothing
		flows, ferr = d.k.Conntrack.Dump()
	}
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
	if d.fw4.gone || dropsOnly || d.fw4.markWarning != "" {
		s.Warnings = append([]string(nil), p.Warnings...)
	}
	if d.fw4.gone {
		s.Warnings = append(s.Warnings, fw4Gone)
	}
	if d.fw4.markWarning != "" {
		s.Warnings = append(s.Warnings, d.fw4.markWarning)
	}
	if dropsOnly {
		s.Warnings = append(s.Warnings, "repair storm: our table keeps being changed from outside; only its blocks and guards are in place until the next full repair")
	}
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
	if gerr == nil {
		for k, v := range gs {
			c := s.Counters[k]
			s.Counters[k] = status.Counter{Packets: c.Packets + v.Packets, Bytes: c.Bytes + v.Bytes}
		}
	}
	return s
}
