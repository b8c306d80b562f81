package luci

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
	"github.com/vpn-passthrough/vpn-passthrough/test/openwrt"
)

// rpcdConfig: root holds every ACL group (openwrt.RpcdConfig); viewer
// (password "test" too) holds only the read half of the app's group (and
// luci-base's, to log in to LuCI).
const rpcdConfig = openwrt.RpcdConfig + `
config login
	option username 'viewer'
	option password '$1$vpnpt$yuCAMnyb1pbF6aMULAeC91'
	list read 'luci-app-vpn-passthrough'
	list read 'luci-base'
	list read 'unauthenticated'
`

// rig is the lab (two LAN clients, fw4 router, WAN servers) with OpenWrt's
// real userland in the router's namespace: ubusd, rpcd, the daemon serving
// its ubus object, and the LuCI app installed.
type rig struct {
	t      *testing.T
	l      *lab.Lab
	srv    *lab.Servers
	b      *openwrt.Bed
	daemon *lab.Proc // the daemon (nil when procd runs it)
	procd  *lab.Proc
	ubusd  *lab.Proc
	www    string // uhttpd's document root inside the bed
}

type rigOptions struct {
	dbus string // a bus address for the daemon's D-Bus service ("" none)
	// procd runs the daemon the way a router does: procd as the service
	// manager and the package's init script, so LuCI's Save & Apply
	// (config.change) reaches it as a reload.
	procd bool
}

// binary is the daemon to install: with D-Bus built in when asked.
func binary(t *testing.T, withDBus bool) string {
	if withDBus {
		return openwrt.BinaryWithTags(t, "dbus")
	}
	return openwrt.Binary(t)
}

func startRig(t *testing.T, o rigOptions) *rig {
	openwrt.Require(t)
	l := lab.Start(t, lab.Config{Clients: 2, Logf: t.Logf})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	b := openwrt.Start(t, openwrt.Options{NetNS: l.Router})
	ubusd := b.StartUbusd(t)
	if err := b.WriteFile("/etc/config/rpcd", rpcdConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, l: l, srv: srv, b: b, ubusd: ubusd}
	// LuCI needs session access for every login: rpcd's unauthenticated.json,
	// which the userland build installs.
	r.installApp()
	b.StartRpcd(t)
	b.InstallFiles(t)
	data, err := os.ReadFile(binary(t, o.dbus != ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFile("/usr/bin/vpn-passthrough", string(data), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFile("/etc/config/vpn-passthrough", l.KernelUCI().String(), 0o644); err != nil {
		t.Fatal(err)
	}
	if o.procd {
		r.procd = b.StartProcd(t)
		if out, err := b.Run("", "/etc/init.d/vpn-passthrough", "start"); err != nil {
			t.Fatalf("init script start: %v %s", err, out)
		}
	} else {
		argv := []string{"/usr/bin/vpn-passthrough", "daemon", "--config", "/etc/config/vpn-passthrough", "--state-dir", "/tmp/vpnpt"}
		if o.dbus != "" {
			argv = append(argv, "--dbus", o.dbus)
		}
		r.daemon, err = b.Spawn("vpn-passthrough daemon", argv...)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := openwrt.WaitFor(30*time.Second, func() error {
		if r.daemon != nil {
			if done, err := r.daemon.Exited(); done {
				return fmt.Errorf("daemon exited: %v", err)
			}
		}
		_, err := r.ubus("call", "vpn-passthrough", "status")
		return err
	}); err != nil {
		var logs []string
		if r.daemon != nil {
			logs = r.daemon.Stderr()
		} else if r.procd != nil {
			logs = r.procd.Stderr()
		}
		t.Fatalf("the daemon's ubus object: %v\n%s", err, strings.Join(logs, "\n"))
	}
	return r
}

// installApp puts luci-app's files where the package puts them. The web
// root is the bed's /www if the bed overlays one, else a copy of the
// userland's www in the bed's /tmp (never the host's /www).
func (r *rig) installApp() {
	r.www = "/www"
	if _, err := r.b.Sh("mountpoint -q /www"); err != nil {
		r.www = "/tmp/www"
		if out, err := r.b.Sh("mkdir -p /tmp/www && cp -a " + r.b.Root + "/www/. /tmp/www/"); err != nil {
			r.t.Fatalf("web root: %v %s", err, out)
		}
	}
	for _, m := range []struct{ src, dst string }{{"htdocs", r.www}, {"root", "/"}} {
		src := filepath.Join(app, m.src)
		err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return r.b.WriteFile(filepath.Join(m.dst, rel), string(data), 0o644)
		})
		if err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rig) ubus(args ...string) (string, error) {
	out, err := r.b.Run("", append([]string{"ubus", "-t", "30"}, args...)...)
	if err != nil {
		out += "\n" + err.Error()
	}
	return out, err
}

// status is `ubus call vpn-passthrough status`, decoded.
type wireStatus struct {
	Schema    int `json:"schema"`
	State     string
	Protocols []struct {
		Proto, Datapath string
		Blocked         struct{ Packets uint64 }
	}
	Sessions []map[string]any
}

func (r *rig) status() wireStatus {
	r.t.Helper()
	out, err := r.ubus("call", "vpn-passthrough", "status")
	if err != nil {
		r.t.Fatalf("ubus call vpn-passthrough status: %v %s", err, out)
	}
	var s wireStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		r.t.Fatalf("status: %v\n%s", err, out)
	}
	return s
}

// greSessions are the kernel's PPTP data sessions by client.
func (r *rig) greSessions() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, s := range r.status().Sessions {
		if s["proto"] == "gre" {
			out[s["client"].(string)] = s
		}
	}
	return out
}

// call opens a PPTP call (Call ID 1) from LAN client i that sends GRE for
// about count*interval, and waits until it is up.
func (r *rig) call(i, count int, interval time.Duration) *lab.Proc {
	r.t.Helper()
	p, err := r.l.StartPPTPClient(i, "--call-id", "1", "--count", fmt.Sprint(count), "--interval", interval.String(),
		"--wait", "3s", "--timeout", (time.Duration(count)*interval + 30*time.Second).String(), "--marker", fmt.Sprintf("lan%d", i))
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}
