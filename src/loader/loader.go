// Package loader turns the files on disk and the running kernel into a plan:
// it reads the UCI config (and OpenWrt's firewall and network configs next
// to it), probes the system, resolves the topology and builds the plan.
// `check`, `apply` and the daemon all load through it, so they agree.
package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/probe"
	"github.com/vpn-passthrough/vpn-passthrough/src/uci"
)

// Loaded is a validated config and the plan made from it.
type Loaded struct {
	Config   config.Config
	Warnings []config.Warning
	Caps     plan.Caps
	Plan     *plan.Plan
}

// Load reads the config file, the OpenWrt firewall and network configs next
// to it (if present), probes the system and builds the plan. n may be nil
// (no netlink): the probe then says so.
func Load(path string, root probe.Root, n *nft.Conn) (*Loaded, error) {
	return load(path, root, n, false)
}

// LoadKernelOnly is Load for a one-shot `apply`, which runs no engines: it
// plans as if the kernel had no NFQUEUE, so nothing is queued or untracked
// without a program to handle it.
func LoadKernelOnly(path string, root probe.Root, n *nft.Conn) (*Loaded, error) {
	return load(path, root, n, true)
}

func load(path string, root probe.Root, n *nft.Conn, kernelOnly bool) (*Loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, warns, err := config.Parse(path, data)
	if err != nil {
		return nil, err
	}
	// OpenWrt's firewall and network configs sit next to ours. They are
	// read only when zones decide a side, so a syntax they use that our
	// parser refuses cannot block a config with explicit devices.
	dir := filepath.Dir(path)
	var firewall, network *uci.File
	needZones := len(cfg.LANDevices) == 0 || len(cfg.WANDevices) == 0
	if firewall, err = optionalUCI(filepath.Join(dir, "firewall")); err != nil && needZones {
		return nil, err
	}
	if needZones {
		if network, err = optionalUCI(filepath.Join(dir, "network")); err != nil {
			return nil, err
		}
	}
	sys, err := probe.System(root)
	if err != nil {
		return nil, err
	}
	topo, err := config.ResolveTopology(cfg, firewall, network, sys)
	if err != nil && cfg.Enabled {
		return nil, fmt.Errorf("topology: %w", err)
	}
	caps := probe.Caps(root, n)
	if kernelOnly {
		caps.NFQueue = false
		caps.Notes["nfnetlink_queue"] = "not used: one-shot apply runs no engines"
	}
	// fw4's live forward chain: does it offload, and are the engines'
	// control connections exempted (plan/offload.go)?
	var fw4 plan.FW4Chain
	if n != nil {
		fw4 = n.FW4Offload()
	}
	p, err := plan.Build(plan.Input{Config: cfg, Caps: caps, Topology: topo, FlowOffload: config.FlowOffload(firewall),
		FW4: fw4, Masquerade: config.Masquerade(firewall)})
	if err != nil {
		return nil, err
	}
	return &Loaded{Config: cfg, Warnings: warns, Caps: caps, Plan: p}, nil
}

// optionalUCI parses an OpenWrt config file if it exists; nil if it does not.
func optionalUCI(path string) (*uci.File, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, err := uci.Parse(path, data)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return f, nil
}
