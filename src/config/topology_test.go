package config

import (
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/internal/samples"
	"github.com/vpn-passthrough/vpn-passthrough/src/uci"
)

// sample is one of OpenWrt's sample configs, parsed.
func sample(t *testing.T, name string) *uci.File {
	t.Helper()
	f, err := uci.Parse(name, samples.Read(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustUCI(t *testing.T, text string) *uci.File {
	t.Helper()
	f, err := uci.Parse("t", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestTopologyFromOpenWrtSamples(t *testing.T) {
	fw, nw := sample(t, "firewall"), sample(t, "network.RECONSTRUCTED")
	topo, err := ResolveTopology(Default(), fw, nw, System{})
	if err != nil {
		t.Fatal(err)
	}
	// The sample network puts lan on br-lan and wan/wan6 on device "wan".
	if got := strings.Join(topo.LAN, ","); got != "br-lan" {
		t.Errorf("LAN = %s, want br-lan", got)
	}
	if got := strings.Join(topo.WAN, ","); got != "wan" {
		t.Errorf("WAN = %s, want wan (wan and wan6 share it, listed once)", got)
	}
}

func TestTopology(t *testing.T) {
	fw := mustUCI(t, `
config zone
	option name 'lan'
	list network 'lan'
	list network 'guest'
config zone
	option name 'wan'
	list network 'wan'
	list device 'tun0'
`)
	nw := mustUCI(t, `
config interface 'lan'
	option device 'br-lan'
config interface 'guest'
	option ifname 'eth0.3'
config interface 'wan'
	option device 'eth1'
	option proto 'pppoe'
config interface 'vpn'
	option device '@wan'
config interface 'oldlan'
	option type 'bridge'
	option ifname 'eth0.1 eth0.3'
config interface 'wg0'
	option proto 'wireguard'
config interface 'wwan'
	option proto 'dhcp'
config interface 'lte'
	option proto 'qmi'
	option device '/dev/cdc-wdm0'
`)
	sys := System{
		Links: []Link{
			{Name: "lo", Up: true, Loopback: true},
			{Name: "eth0", Up: true}, {Name: "eth1", Up: true}, {Name: "eth2", Up: false},
		},
		DefaultRouteDev: "eth1",
	}
	tests := []struct {
		name     string
		cfg      func(*Config)
		fw, nw   *uci.File
		lan, wan string
		err      string
	}{
		{name: "zones map through networks, pppoe gets its L3 device", fw: fw, nw: nw,
			lan: "br-lan,eth0.3", wan: "tun0,pppoe-wan"},
		{name: "explicit devices win", fw: fw, nw: nw, cfg: func(c *Config) { c.LANDevices = []string{"x0"}; c.WANDevices = []string{"y0"} },
			lan: "x0", wan: "y0"},
		{name: "network name as zone", fw: fw, nw: nw, cfg: func(c *Config) { c.LANZones = []string{"guest"} },
			lan: "eth0.3", wan: "tun0,pppoe-wan"},
		{name: "plain linux: default route is WAN, other up links LAN",
			lan: "eth0", wan: "eth1"},
		{name: "plain linux with explicit WAN", cfg: func(c *Config) { c.WANDevices = []string{"eth0"} },
			lan: "eth1", wan: "eth0"},
		{name: "legacy bridge is br-<iface>", fw: fw, nw: nw, cfg: func(c *Config) { c.LANZones = []string{"oldlan"} },
			lan: "br-oldlan", wan: "tun0,pppoe-wan"},
		{name: "wireguard is named after the interface", fw: fw, nw: nw, cfg: func(c *Config) { c.LANZones = []string{"wg0"} },
			lan: "wg0", wan: "tun0,pppoe-wan"},
		{name: "wwan and qmi WAN fall back to the default route", fw: fw, nw: nw,
			cfg: func(c *Config) { c.WANZones = []string{"wwan", "lte"} }, lan: "br-lan,eth0.3", wan: "eth1"},
		{name: "unknown zone", fw: fw, nw: nw, cfg: func(c *Config) { c.WANZones = []string{"dmz"} },
			err: `"dmz" is neither a firewall zone nor a network interface`},
		{name: "same device both sides", cfg: func(c *Config) { c.LANDevices = []string{"eth1"} },
			err: `"eth1" is on both`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			if tt.cfg != nil {
				tt.cfg(&c)
			}
			topo, err := ResolveTopology(c, tt.fw, tt.nw, sys)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(topo.LAN, ","); got != tt.lan {
				t.Errorf("LAN = %s, want %s", got, tt.lan)
			}
			if got := strings.Join(topo.WAN, ","); got != tt.wan {
				t.Errorf("WAN = %s, want %s", got, tt.wan)
			}
			if topo.LANFrom == "" || topo.WANFrom == "" {
				t.Error("topology does not say where it came from")
			}
		})
	}
}

func TestTopologyNoDefaultRoute(t *testing.T) {
	_, err := ResolveTopology(Default(), nil, nil, System{Links: []Link{{Name: "eth0", Up: true}}})
	if err == nil || !strings.Contains(err.Error(), "default route") {
		t.Fatalf("err = %v", err)
	}
}

func TestMasquerade(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"config zone\n\toption name 'lan'\n\nconfig zone\n\toption name 'wan'\n\toption masq '1'\n", true},
		{"config zone\n\toption name 'wan'\n\toption masq '0'\n", false},
		{"config defaults\n\toption masq '1'\n", false},
	} {
		f, err := uci.Parse("firewall", []byte(tc.text))
		if err != nil {
			t.Fatal(err)
		}
		if got := Masquerade(f); got != tc.want {
			t.Errorf("Masquerade(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	if Masquerade(nil) {
		t.Error("no firewall config counts as masquerading")
	}
}
