// Package privs checks that the daemon does its whole job with
// CAP_NET_ADMIN alone: it drops every other capability itself and sets
// no_new_privs, whether started as full root (procd without ujail) or with
// only CAP_NET_ADMIN from the start (procd with ujail, setpriv).
package privs

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

const capNetAdmin = 1 << 12

// procStatus reads the capability and no_new_privs lines of a process.
func procStatus(t *testing.T, pid int) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !(strings.HasPrefix(k, "Cap") || k == "NoNewPrivs") {
			continue
		}
		base := 16
		if k == "NoNewPrivs" {
			base = 10
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), base, 64)
		if err != nil {
			t.Fatalf("/proc/%d/status %s: %v", pid, l, err)
		}
		out[k] = n
	}
	return out
}

func TestDaemonCapabilities(t *testing.T) {
	bin := lab.DaemonBin(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal("no setpriv (util-linux)")
	}
	l := lab.Start(t, lab.Config{})
	// Userspace mode: the PPTP and ESP engines bind NFQUEUE queues and use
	// ctnetlink, besides the nf_tables table.
	u := l.KernelUCI()
	u.Mode = "userspace"

	wrapper := filepath.Join(t.TempDir(), "vpn-passthrough-net-admin")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --bounding-set -all,+net_admin --inh-caps -all --no-new-privs -- %s \"$@\"\n", setpriv, bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, bin string }{{"as root", bin}, {"with CAP_NET_ADMIN only", wrapper}} {
		t.Run(c.name, func(t *testing.T) {
			d, err := l.StartDaemon(c.bin, u.String())
			if err != nil {
				t.Fatal(err)
			}
			st := procStatus(t, d.Pid())
			for _, k := range []string{"CapEff", "CapPrm", "CapBnd"} {
				if st[k] != capNetAdmin {
					t.Errorf("%s = %#x, want %#x (CAP_NET_ADMIN only)", k, st[k], capNetAdmin)
				}
			}
			if st["CapInh"] != 0 || st["CapAmb"] != 0 || st["NoNewPrivs"] != 1 {
				t.Errorf("CapInh %#x CapAmb %#x NoNewPrivs %d, want 0 0 1", st["CapInh"], st["CapAmb"], st["NoNewPrivs"])
			}
			// Both engines bound their queues (nfnetlink_queue lists the
			// queue number first and the daemon's netlink port second).
			queues, err := l.RouterExec("cat", "/proc/net/netfilter/nfnetlink_queue")
			if err != nil {
				t.Fatal(err)
			}
			bound := 0
			for _, line := range strings.Split(strings.TrimSpace(queues), "\n") {
				if f := strings.Fields(line); len(f) > 1 && f[1] != "0" {
					bound++
				}
			}
			// The status socket answers, with the userspace datapath.
			out, errOut, err := d.CLI("status", "--json", "--socket", d.Socket)
			if err != nil {
				t.Fatalf("status: %v\n%s", err, errOut)
			}
			var s map[string]any
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatalf("status --json: %v\n%s", err, out)
			}
			if bound < 2 {
				t.Errorf("%d NFQUEUE queues bound, want the PPTP and the ESP engine's:\n%s\ndaemon log:\n%s", bound, queues, d.Log())
			}
			// A reload re-applies; SIGTERM removes the table: both need only
			// CAP_NET_ADMIN too.
			if res, err := d.Reload(20 * time.Second); err != nil {
				t.Errorf("reload: %v (%s)\n%s", err, res, d.Log())
			}
			if err := d.Stop(15 * time.Second); err != nil {
				t.Errorf("stop: %v\n%s", err, d.Log())
			}
			if ok, _ := l.TableExists(lab.TableFamily, lab.Table); ok {
				t.Errorf("table still there after SIGTERM:\n%s", d.Log())
			}
			for _, line := range strings.Split(d.Log(), "\n") {
				if strings.Contains(line, "operation not permitted") {
					t.Errorf("daemon log: %s", line)
				}
			}
		})
	}
}
