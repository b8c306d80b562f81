package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vpn-passthrough/vpn-passthrough/src/uci"
)

// Link is one network device as the system reports it.
type Link struct {
	Name     string
	Up       bool
	Loopback bool
}

// System is the part of the running system that topology resolution needs.
// The probe package fills it; tests build it by hand.
type System struct {
	Links           []Link
	DefaultRouteDev string // IPv4 default route's device, "" if none
}

// Topology is the LAN and WAN device sets the plan filters on.
type Topology struct {
	LAN, WAN         []string
	LANFrom, WANFrom string // how each side was found, for `check` and `status`
}

// ResolveTopology finds LAN and WAN devices. Per side: explicit *_device
// options first; else OpenWrt's firewall zones mapped through
// /etc/config/network (firewall or network may be nil on plain Linux); else
// the WAN is the default route's device and the LAN every other non-loopback
// device that is up.
func ResolveTopology(c Config, firewall, network *uci.File, sys System) (Topology, error) {
	var t Topology
	switch {
	case len(c.WANDevices) > 0:
		t.WAN, t.WANFrom = dedup(c.WANDevices), "option wan_device"
	case firewall != nil && network != nil:
		devs, err := zoneDevices(c.WANZones, firewall, network)
		switch {
		case errors.Is(err, errNoDevices) && sys.DefaultRouteDev != "":
			// wwan, qmi, ncm ...: netifd names their device at run time,
			// and the config does not say it. The default route does.
			t.WAN, t.WANFrom = []string{sys.DefaultRouteDev}, "default route (zones "+strings.Join(c.WANZones, ",")+" name no device in the config)"
		case err != nil:
			return t, fmt.Errorf("wan: %w", err)
		default:
			t.WAN, t.WANFrom = devs, "firewall zones "+strings.Join(c.WANZones, ",")
		}
	default:
		if sys.DefaultRouteDev == "" {
			return t, errors.New("wan: no OpenWrt firewall/network config, no IPv4 default route, and no option wan_device")
		}
		t.WAN, t.WANFrom = []string{sys.DefaultRouteDev}, "default route"
	}
	switch {
	case len(c.LANDevices) > 0:
		t.LAN, t.LANFrom = dedup(c.LANDevices), "option lan_device"
	case firewall != nil && network != nil:
		devs, err := zoneDevices(c.LANZones, firewall, network)
		if err != nil {
			return t, fmt.Errorf("lan: %w", err)
		}
		t.LAN, t.LANFrom = devs, "firewall zones "+strings.Join(c.LANZones, ",")
	default:
		for _, l := range sys.Links {
			if l.Up && !l.Loopback && !slices.Contains(t.WAN, l.Name) {
				t.LAN = append(t.LAN, l.Name)
			}
		}
		slices.Sort(t.LAN)
		t.LANFrom = "every other device that is up"
	}
	if len(t.LAN) == 0 {
		return t, errors.New("lan: no LAN device found (set option lan_device)")
	}
	for _, d := range t.LAN {
		if slices.Contains(t.WAN, d) {
			return t, fmt.Errorf("device %q is on both the LAN and the WAN side", d)
		}
	}
	return t, nil
}

// zoneDevices maps zone names to devices as fw4 does: zone -> `list network`
// and `list device`; network interface -> its L3 device. A name that is not a
// zone is taken as a network interface name.
func zoneDevices(zones []string, firewall, network *uci.File) ([]string, error) {
	var devs []string
	for _, z := range zones {
		zs := findZone(firewall, z)
		var nets []string
		if zs == nil {
			if network.Section(z) == nil {
				return nil, fmt.Errorf("%q is neither a firewall zone nor a network interface", z)
			}
			nets = []string{z}
		} else {
			nets = fields(zs.GetList("network"))
			devs = append(devs, fields(zs.GetList("device"))...)
		}
		for _, n := range nets {
			if d := l3Device(network, n); d != "" {
				devs = append(devs, d)
			}
		}
	}
	devs = dedup(devs)
	if len(devs) == 0 {
		return nil, fmt.Errorf("zones %s: %w", strings.Join(zones, ","), errNoDevices)
	}
	return devs, nil
}

var errNoDevices = errors.New("no device in /etc/config/network (set option lan_device/wan_device)")

func findZone(firewall *uci.File, name string) *uci.Section {
	for _, s := range firewall.SectionsOfType("zone") {
		if n, _ := s.Get("name"); n == name {
			return s
		}
	}
	return nil
}

// l3Device is the device netifd puts an interface's traffic on: PPP-based
// protocols get "<proto>-<iface>", tunnels like wireguard are named after the
// interface, a pre-21.02 `option type 'bridge'` makes "br-<iface>", others
// use `device` (or the pre-21.02 `ifname`). Alias references ("@wan") and
// character devices of modems ("/dev/cdc-wdm0") name no network device.
func l3Device(network *uci.File, iface string) string {
	s := network.Section(iface)
	if s == nil || s.Type != "interface" {
		return ""
	}
	proto, _ := s.Get("proto")
	switch proto {
	case "pppoe", "pppoa", "pptp", "l2tp", "3g", "ppp":
		return proto + "-" + iface
	case "wireguard", "gre", "gretap", "vti", "6in4", "6to4", "6rd", "dslite":
		return iface
	}
	if typ, _ := s.Get("type"); typ == "bridge" {
		return "br-" + iface
	}
	dev, ok := s.Get("device")
	if !ok {
		dev, _ = s.Get("ifname")
	}
	if f := strings.Fields(dev); len(f) > 0 && !strings.HasPrefix(f[0], "@") && !strings.HasPrefix(f[0], "/") {
		return f[0]
	}
	return ""
}

func fields(vals []string) []string {
	var out []string
	for _, v := range vals {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func dedup(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
