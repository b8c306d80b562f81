package openwrt

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// BedConfig is /etc/config/vpn-passthrough for a bed inside the lab router: explicit devices, so
// that the checks do not depend on the network config.
func BedConfig(l *lab.Lab) string {
	var b strings.Builder
	b.WriteString("config globals 'globals'\n\toption enabled '1'\n\toption mode 'kernel'\n")
	for _, d := range l.LANDevs {
		fmt.Fprintf(&b, "\tlist lan_device '%s'\n", d)
	}
	fmt.Fprintf(&b, "\tlist wan_device '%s'\n", l.WANDev)
	b.WriteString("\nconfig pptp 'pptp'\n\toption enabled '1'\n\nconfig l2tp 'l2tp'\n\toption enabled '1'\n\nconfig ipsec 'ipsec'\n\toption enabled '1'\n\toption esp_mux 'off'\n")
	return b.String()
}

// LabInterfaceDump is `network.interface dump` for the lab router: lan = the first LAN port,
// lan2 = the second, wan = the WAN port (one l3_device per interface, as netifd reports).
func LabInterfaceDump(l *lab.Lab) string {
	type addr struct {
		Address string `json:"address"`
		Mask    int    `json:"mask"`
	}
	type iface struct {
		Interface string   `json:"interface"`
		Up        bool     `json:"up"`
		Available bool     `json:"available"`
		Proto     string   `json:"proto"`
		Device    string   `json:"device"`
		L3Device  string   `json:"l3_device"`
		IPv4      []addr   `json:"ipv4-address"`
		Data      struct{} `json:"data"`
	}
	var ifs []iface
	for i, d := range l.LANDevs {
		name := "lan"
		if i > 0 {
			name = "lan" + strconv.Itoa(i+1)
		}
		ifs = append(ifs, iface{Interface: name, Up: true, Available: true, Proto: "static", Device: d, L3Device: d,
			IPv4: []addr{{fmt.Sprintf("10.10.%d.1", i+1), 24}}})
	}
	ifs = append(ifs, iface{Interface: "wan", Up: true, Available: true, Proto: "static", Device: l.WANDev, L3Device: l.WANDev,
		IPv4: []addr{{l.WANAddr.String(), 24}}})
	out, _ := json.MarshalIndent(map[string]any{"interface": ifs}, "", "\t")
	return string(out)
}

// ConfigureFW4 points the bed's fw4 config at the lab: network config with the lab's devices,
// the second LAN network in zone lan. Real fw4 then renders for the lab router.
func ConfigureFW4(t testing.TB, bed *Bed, l *lab.Lab) {
	t.Helper()
	var b strings.Builder
	for i, d := range l.LANDevs {
		name := "lan"
		if i > 0 {
			name = "lan" + strconv.Itoa(i+1)
		}
		fmt.Fprintf(&b, "config interface '%s'\n\toption device '%s'\n\toption proto 'static'\n\toption ipaddr '10.10.%d.1'\n\toption netmask '255.255.255.0'\n\n", name, d, i+1)
	}
	fmt.Fprintf(&b, "config interface 'wan'\n\toption device '%s'\n\toption proto 'static'\n\n", l.WANDev)
	if err := bed.WriteFile("/etc/config/network", b.String(), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(l.LANDevs); i++ {
		bed.MustSh(t, fmt.Sprintf("uci add_list firewall.@zone[0].network=lan%d && uci commit firewall", i+1))
	}
}

// Router is a lab with a bed inside its router, as a router runs our package: ubusd, rpcd if
// asked, the netifd stand-in serving the lab's interfaces, procd, our files installed and
// BedConfig in /etc/config/vpn-passthrough. The service is not started (StartService).
type Router struct {
	*Bed
	Lab *lab.Lab
}

// StartRouter starts a Router (Require first: it skips, or fails under CI=true, naming what
// the bed lacks).
func StartRouter(t testing.TB, withRpcd bool) *Router {
	t.Helper()
	Require(t)
	l := lab.Start(t, lab.Config{})
	b := Start(t, Options{NetNS: l.Router})
	b.StartUbusd(t)
	b.InstallFiles(t)
	if withRpcd {
		b.StartRpcd(t)
	}
	if err := b.WriteFile("/tmp/lab-ifaces.json", LabInterfaceDump(l), 0o644); err != nil {
		t.Fatal(err)
	}
	b.StartNetifd(t, "/tmp/lab-ifaces.json", true)
	b.StartProcd(t)
	if err := b.WriteFile("/etc/config/vpn-passthrough", BedConfig(l), 0o600); err != nil {
		t.Fatal(err)
	}
	return &Router{Bed: b, Lab: l}
}

// StartService starts our service as a router's first boot does: real fw4 renders the lab
// (ConfigureFW4) with our include, which our uci-defaults script registers, and procd starts
// the init script.
func (r *Router) StartService(t testing.TB) {
	t.Helper()
	ConfigureFW4(t, r.Bed, r.Lab)
	r.MustSh(t, "sh /etc/uci-defaults/vpn-passthrough && fw4 -q restart && /etc/init.d/vpn-passthrough start")
	// procd starts the daemon in the background: wait until its table is
	// applied and its ubus object answers, or the first call races it.
	if err := WaitFor(30*time.Second, func() error {
		_, err := r.Bed.Sh("nft list table inet vpn_passthrough >/dev/null && ubus call vpn-passthrough status >/dev/null")
		return err
	}); err != nil {
		t.Fatalf("daemon not ready after /etc/init.d/vpn-passthrough start: %v", err)
	}
}
