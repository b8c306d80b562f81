// Package statustest has a fake status.API for the front-ends' tests (ubus,
// D-Bus): a daemon with one kernel-mode PPTP session that records what it
// was asked to do.
package statustest

import (
	"fmt"
	"sync"

	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// SessionID is the fake's one session.
const SessionID = "gre/10.0.0.2/198.51.100.2/7"

// Fake implements status.API.
type Fake struct {
	Hub status.Hub
	mu  sync.Mutex
	// Dropped lists the sessions dropped; Reloads counts reloads.
	dropped   []string
	reloads   int
	ReloadErr error
}

var _ status.API = (*Fake)(nil)

// Status has the one session until it is dropped. Its packet counts are
// unknown (null) and one counter needs 64 bits.
func (f *Fake) Status() status.Status {
	id, trans := "7", "40001"
	f.mu.Lock()
	defer f.mu.Unlock()
	s := status.Status{Schema: status.SchemaVersion, State: status.StateRunning, Version: "test",
		Protocols:    []status.Protocol{{Name: "pptp", Enabled: true, Datapath: "kernel", Reason: "helper"}},
		Sessions:     []status.SessionInfo{},
		Capabilities: []status.Capability{{Name: "nf_conntrack_pptp", Present: true, How: "/sys/module"}},
		Warnings:     []string{}, Counters: map[string]status.Counter{"passed_pptp_out": {Packets: 5000000000}}}
	if len(f.dropped) == 0 {
		s.Sessions = append(s.Sessions, status.SessionInfo{ID: SessionID, Protocol: "pptp", Kind: "gre",
			Datapath: "kernel", Client: "10.0.0.2", Server: "198.51.100.2", IDOrig: &id, IDTrans: &trans})
	}
	return s
}

// Reload counts and returns ReloadErr.
func (f *Fake) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.ReloadErr
}

// DropSession drops the one session once; anything else is unknown.
func (f *Fake) DropSession(proto, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if proto == "" || id == "" {
		return fmt.Errorf("%w: protocol and id are both required", status.ErrBadArgument)
	}
	if proto == "pptp" && id == SessionID && len(f.dropped) == 0 {
		f.dropped = append(f.dropped, id)
		return nil
	}
	return fmt.Errorf("%w: %s session %q", status.ErrUnknownSession, proto, id)
}

// Subscribe implements status.API.
func (f *Fake) Subscribe() (<-chan status.Event, func()) { return f.Hub.Subscribe() }

// Dropped is what was dropped so far.
func (f *Fake) Dropped() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.dropped...)
}

// Reloads is how many reloads were asked for.
func (f *Fake) Reloads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloads
}
