// Package engine is the contract the userspace engines (src/engine/pptp,
// src/engine/esp) share with the daemon: how one is made, updated and
// observed, and the one counter set both report. The engines are control
// planes: they read the few packets that carry decisions from NFQUEUE and,
// where the kernel allows it, program nftables maps (Maps) so that the kernel
// forwards the rest.
package engine

import (
	"context"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// Engine is what both engines implement. Each package also has
//
//	func New(Config) (*Engine, error)
//
// which restores what a previous run left (kernel map elements first, then
// its state file), binds the queue, and returns; packets may be queued to it
// as soon as New returns, and Run must follow.
type Engine[C any] interface {
	// Run handles queued packets and housekeeping until ctx ends.
	Run(ctx context.Context) error
	// Update takes a reloaded configuration without losing sessions.
	Update(C) error
	// Sessions is a snapshot of the tunnels the engine carries, for status.
	Sessions() []status.Session
	// Stats are the engine's counters.
	Stats() Stats
}

// Common is the part of every engine's configuration that does not depend
// on the protocol.
type Common struct {
	Queue        uint16        // NFQUEUE number
	MaxSessions  int           // ipsec.max_sas, pptp.max_calls
	MaxPerClient int           // ipsec.max_sas_per_client, pptp.max_calls_per_client
	IdleTimeout  time.Duration // a session without traffic this long ends
	StatePath    string        // state file ("": none)
	Log          *kvlog.Logger // nil discards
	// Maps is the kernel data plane (nil: every packet of every session
	// crosses NFQUEUE, the fallback on kernels without the fast path).
	Maps Maps
}

// Maps is the kernel data plane an engine programs: named nftables maps of
// the daemon's table, whose elements carry per-element counters. src/nft
// implements it; tests may use a fake. Keys and values are in the kernel's
// byte layout (each concatenated field padded to 4 bytes).
type Maps interface {
	// Add inserts or replaces elements of a map.
	Add(m string, elems []Element) error
	// Delete removes elements by key; keys not present are ignored.
	Delete(m string, keys [][]byte) error
	// List reads a map back, with each element's counter.
	List(m string) ([]Element, error)
}

// Element is one map element.
type Element struct {
	Key, Val []byte
	Packets  uint64 // what the kernel forwarded through this element
	Bytes    uint64
}

// Stats is the one counter set of both engines. Engine-specific detail
// goes in Detail, under names the engine documents.
type Stats struct {
	// Packets the engine itself forwarded (rewritten in userspace).
	ForwardedOut, ForwardedIn uint64
	// Packets the kernel forwarded through map elements (sums of the
	// element counters of live sessions).
	KernelOut, KernelIn uint64
	Learned             uint64 // sessions created
	Ended               uint64 // sessions removed (idle, closed, rekeyed)
	Malformed           uint64 // unparsable packets: dropped
	Unknown             uint64 // packets for no known session: dropped
	Refused             uint64 // sessions not created: table or per-client cap full
	Elements            uint64 // live map elements
	MapErrors           uint64 // map updates the kernel refused
	QueueRecv           uint64 // packets read from NFQUEUE
	QueueLost           uint64 // ENOBUFS and verdict send errors
	Detail              map[string]uint64
}

// Map flattens Stats for status (the daemon prefixes the engine's name).
func (s Stats) Map() map[string]uint64 {
	m := map[string]uint64{
		"forwarded_out":     s.ForwardedOut,
		"forwarded_in":      s.ForwardedIn,
		"kernel_out":        s.KernelOut,
		"kernel_in":         s.KernelIn,
		"learned":           s.Learned,
		"ended":             s.Ended,
		"dropped_malformed": s.Malformed,
		"dropped_unknown":   s.Unknown,
		"refused":           s.Refused,
		"map_elements":      s.Elements,
		"map_errors":        s.MapErrors,
		"queue_packets":     s.QueueRecv,
		"queue_lost":        s.QueueLost,
	}
	for k, v := range s.Detail {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return m
}
