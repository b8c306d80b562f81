package openwrt

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// The bed's real paths exist only inside: /etc/config/firewall and /sbin/fw4 come from the built
// userland, /etc, /usr, /www and /var are the bed's own, /bin/sh is busybox ash, and nothing of it shows on the host.
func TestBedIsolation(t *testing.T) {
	b := Start(t, Options{})
	if out := b.MustSh(t, "echo $0; readlink /bin/sh; set -o pipefail && echo pipefail-ok"); !strings.Contains(out, "pipefail-ok") {
		t.Fatalf("/bin/sh is not busybox ash: %q", out)
	}
	for _, p := range []string{"/sbin/fw4", "/lib/functions.sh", "/etc/rc.common", "/usr/sbin/ubusd"} {
		if _, err := os.Stat(b.Path(p)); err != nil {
			t.Errorf("inside the bed: %v", err)
		}
	}
	for _, p := range []string{"/etc/config/vpt-probe", "/www/vpt-probe", "/var/state/vpt-probe", "/usr/lib/vpt-probe"} {
		if err := b.WriteFile(p, "config x 'y'\n", 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s written inside the bed appeared on the host", p)
		}
	}
	b.MustSh(t, "cp /etc/config/vpt-probe /etc/config/vpt-probe2")
	if out := b.MustRun(t, "uci", "show", "vpt-probe"); !strings.Contains(out, "vpt-probe.y=x") {
		t.Fatalf("real uci inside the bed: %q", out)
	}
	if out := b.MustRun(t, "ip", "-o", "link"); strings.Count(out, "\n") != 1 || !strings.Contains(out, "lo:") {
		t.Fatalf("the bed's network namespace is not private: %q", out)
	}
}

// Real ubusd and rpcd: root logs in through rpcd's session object and gets a session.
func TestUbusdRpcd(t *testing.T) {
	b := Start(t, Options{})
	b.StartUbusd(t)
	b.StartRpcd(t)
	out := b.MustRun(t, "ubus", "call", "session", "login", `{"username":"root","password":"test"}`)
	var res struct {
		Session string `json:"ubus_rpc_session"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Session) != 32 {
		t.Fatalf("session login: %v: %q", err, out)
	}
	if _, err := b.Run("", "ubus", "call", "session", "login", `{"username":"root","password":"wrong"}`); err == nil {
		t.Fatal("a wrong password logged in")
	}
	t.Logf("ubus list: %s", strings.Fields(b.MustRun(t, "ubus", "list")))
}
