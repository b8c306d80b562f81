package daemon

import (
	"context"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/loader"
	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// The daemon reaches the kernel only through these small interfaces, so its
// lifecycle (reload, repair, restore, shutdown) is tested with fakes
// (fakes_test.go) and the real parts are tested in the lab.

// Firewall is our nftables table.
type Firewall interface {
	// Apply makes the table equal to the plan in one transaction; on
	// error nothing changed.
	Apply(p *plan.Plan) error
	// Diff says how the table differs from the plan, "" if it does not.
	Diff(p *plan.Plan) string
	// Intact is the coarse check (names and counts), for kernels whose
	// read-back Diff cannot confirm.
	Intact(p *plan.Plan) bool
	// Exists reports whether an inet table exists (fw4's, say).
	Exists(table string) (bool, error)
	// FW4AcceptMark is the mark fw4's forward chain accepts for our
	// engines (our include's rule); found is false without one.
	FW4AcceptMark() (mark, mask uint32, found bool, err error)
	// FW4Offload reads fw4's forward chain for flow offloading and the
	// package's exemption (the loader plans with the same reading).
	FW4Offload() plan.FW4Chain
	// Remove deletes the table (absent is not an error).
	Remove(table string) error
	// Counters reads the table's named counters.
	Counters(table string) (map[string]nft.Counter, error)
}

// Conntrack is the kernel's connection tracking table.
type Conntrack interface {
	Dump() ([]ct.Flow, error)
	DeleteMatching(match func(ct.Flow) bool) (int, error)
}

// Kernel is everything the daemon uses outside its own process.
type Kernel struct {
	Firewall  Firewall
	Conntrack Conntrack
	// Load reads the config and probes the system (loader.Load).
	Load func() (*loader.Loaded, error)
	// NewEngine builds the userspace engine one queue of the plan needs.
	NewEngine func(q plan.Queue, l *loader.Loaded, env EngineEnv) (Engine, error)
	// Watch signals on changed whenever our table may differ from what
	// we applied, until ctx ends (nft.Conn.Watch). Element changes for
	// which quiet reports true do not count.
	Watch func(ctx context.Context, quiet func(table, set string) bool, changed chan<- struct{}, onErr func(error))
}

// realKernel is the kernel this process runs on.
func realKernel(o Options, conn *nft.Conn) Kernel {
	return Kernel{
		Firewall:  conn,
		Conntrack: realConntrack{},
		Load:      func() (*loader.Loaded, error) { return loader.Load(o.ConfigPath, o.Root, conn) },
		NewEngine: newEngine,
		Watch: func(ctx context.Context, quiet func(table, set string) bool, changed chan<- struct{}, onErr func(error)) {
			conn.Watch(ctx, nft.WatchFilter{Tables: []string{plan.TableName, plan.GuardTable, fw4Table}, Quiet: quiet}, changed, onErr)
		},
	}
}

type realConntrack struct{}

func (realConntrack) Dump() ([]ct.Flow, error) { return ct.Dump() }
func (realConntrack) DeleteMatching(m func(ct.Flow) bool) (int, error) {
	return ct.DeleteMatching(m)
}
