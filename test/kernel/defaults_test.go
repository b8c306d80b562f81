package kernel

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// TestDefaultConfig runs the daemon with the shipped
// files/etc/config/vpn-passthrough (mode auto, zones lan/wan, no devices):
// on a plain Linux router it must find the WAN by the default route and the
// LAN as the other devices; with OpenWrt's firewall and network configs next
// to it, through the zones.
func TestDefaultConfig(t *testing.T) {
	lab.Need(t)
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{})
	def, err := os.ReadFile(filepath.Join(l.Repo, "files", "etc", "config", "vpn-passthrough"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DropFW4PPTPHelper(); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T) {
		d, err := l.StartDaemon(bin, string(def))
		if d != nil {
			defer func() {
				d.Kill()
				if t.Failed() {
					t.Logf("daemon log:\n%s", d.Log())
				}
			}()
		}
		if err != nil {
			t.Fatal(err)
		}
		s, raw, err := d.Status()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Topology.LAN, l.LANDevs) || !reflect.DeepEqual(s.Topology.WAN, []string{l.WANDev}) {
			t.Errorf("topology LAN %v WAN %v, want %v and [%s]\n%s", s.Topology.LAN, s.Topology.WAN, l.LANDevs, l.WANDev, raw)
		}
		if dp := s.Datapath("pptp"); dp != "kernel" {
			t.Errorf("mode auto on a kernel with the pptp helper: pptp datapath %q, want kernel", dp)
		}
		if err := l.ConntrackFlush(); err != nil {
			t.Fatal(err)
		}
		(&env{l: l, srv: srv, d: d}).pptpSameCallID(t)
		if err := d.Stop(5 * time.Second); err != nil {
			t.Errorf("daemon exit: %v", err)
		}
		if ok, _ := l.TableExists(lab.TableFamily, lab.Table); ok {
			t.Error("table left after SIGTERM")
		}
	}
	t.Run("plain linux: default route and the other devices", run)

	t.Run("openwrt: firewall zones through /etc/config/network", func(t *testing.T) {
		samples := filepath.Join(lab.SharedDir(l.Repo), "openwrt-samples")
		fw, err1 := os.ReadFile(filepath.Join(samples, "firewall"))
		nw, err2 := os.ReadFile(filepath.Join(samples, "network.RECONSTRUCTED"))
		if err1 != nil || err2 != nil {
			t.Skipf("OpenWrt samples missing: %v %v", err1, err2)
		}
		// The sample's zone lan has network lan (device br-lan); the lab's
		// second LAN becomes interface lan2 in the same zone. wan and wan6
		// use device wan.
		firewall := strings.Replace(string(fw), "\tlist   network\t\t'lan'\n", "\tlist   network\t\t'lan'\n\tlist   network\t\t'lan2'\n", 1)
		network := strings.ReplaceAll(string(nw), "option device 'br-lan'", "option device 'r-lan1'")
		network = strings.ReplaceAll(network, "option device 'wan'", "option device 'r-wan'")
		network += "\nconfig interface 'lan2'\n\toption device 'r-lan2'\n\toption proto 'static'\n"
		if firewall == string(fw) || network == string(nw) {
			t.Fatal("the samples did not have the expected shape")
		}
		dir := l.DaemonDir()
		for name, body := range map[string]string{"firewall": firewall, "network": network} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(filepath.Join(dir, name))
		}
		run(t)
	})
}
