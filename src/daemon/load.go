package daemon

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
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, warns, err := config.Parse(path, data)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	firewall, err := optionalUCI(filepath.Join(dir, "firewall"))
	if err != nil {
		return nil, err
	}
	network, err := optionalUCI(filepath.Join(dir, "network"))
	if err != nil {
		return nil, err
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
	p, err := plan.Build(plan.Input{Config: cfg, Caps: caps, Topology: topo})
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
