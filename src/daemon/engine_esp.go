package daemon

import (
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/esp"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/statefile"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/loader"
	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// espEngine is the ESP multiplexer (src/engine/esp). A reload keeps its
// tables and applies the new limits and keep_ike_port (Updater).
type espEngine struct {
	*esp.Engine
	log *kvlog.Logger
}

func espOptions(l *loader.Loaded, log *kvlog.Logger) esp.Options {
	c := l.Config.IPsec
	return esp.Options{
		MaxSAs:       c.MaxSAs,
		MaxPerClient: c.MaxSAsPerClient,
		IdleTimeout:  c.IdleTimeout,
		KeepIKEPort:  c.KeepIKEPort,
		Log:          log,
	}
}

// newESPEngine restores the SA tables of the previous run and binds the ESP
// queue (queue_base+1) before the plan's queue rules are applied, so no
// packet meets an empty queue.
func newESPEngine(q plan.Queue, l *loader.Loaded, env EngineEnv) (Engine, error) {
	log := env.Log.With("engine", "esp")
	c := esp.Config{
		Common:   engine.Common{Queue: q.Num, Log: log, StatePath: statefile.Path(env.StateDir, "esp-sas", q.Num)},
		Options:  espOptions(l, log),
		Mark:     l.Plan.Mark,
		MarkMask: l.Plan.MarkMask,
	}
	// The engine programs its maps (with the kernel data plane) or only
	// the sets of the no-engine drop (the fallback), and follows the WAN
	// devices' addresses.
	n, err := nft.Open()
	if err != nil {
		return nil, err
	}
	c.Maps = n.Maps(l.Plan.Table)
	c.SetsOnly = !q.Maps
	c.WANDevices = l.Plan.Topology.WAN
	e, err := esp.New(c)
	if err != nil {
		return nil, err
	}
	return &espEngine{Engine: e, log: log}, nil
}

// Update takes a reloaded config without dropping the SA tables.
func (e *espEngine) Update(l *loader.Loaded) error {
	return e.Engine.Update(esp.Config{Common: engine.Common{Log: e.log}, Options: espOptions(l, e.log),
		WANDevices: l.Plan.Topology.WAN})
}

// Counters are the engine's Stats for status.
func (e *espEngine) Counters() map[string]uint64 { return e.Stats().Map() }
