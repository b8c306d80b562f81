package openwrt

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProcdPrivileges: under real procd (no ujail here, as on images without
// procd-ujail), the init script's instance runs with CAP_NET_ADMIN only and
// no_new_privs (the daemon drops the rest itself), and gets GOMEMLIMIT and
// GOGC from UCI, with defaults and with a bad value replaced by the
// default rather than handed to the Go runtime, which would refuse to start.
func TestProcdPrivileges(t *testing.T) {
	r := startRouterBed(t, false)
	if out := r.MustSh(t, "/etc/init.d/vpn-passthrough 2>&1 || true"); !strings.Contains(out, "resync") {
		t.Errorf("init script help does not list the resync extra_command:\n%s", out)
	}
	r.MustRun(t, "/etc/init.d/vpn-passthrough", "start")
	check := func(what, memLimit, gogc string) {
		t.Helper()
		// The daemon drops its capabilities right after exec: wait for it.
		var st map[string]string
		err := WaitFor(20*time.Second, func() error {
			in, err := r.instance()
			if err != nil {
				return err
			}
			if !in.Running {
				return fmt.Errorf("not running: %+v", in)
			}
			env := procEnv(in.Pid)
			if env["GOMEMLIMIT"] != memLimit || env["GOGC"] != gogc {
				return fmt.Errorf("pid %d GOMEMLIMIT=%q GOGC=%q, want %q %q", in.Pid, env["GOMEMLIMIT"], env["GOGC"], memLimit, gogc)
			}
			st = procStatus(in.Pid)
			for k, want := range map[string]uint64{"CapEff": 1 << 12, "CapPrm": 1 << 12, "CapBnd": 1 << 12, "CapInh": 0, "CapAmb": 0} {
				if n, err := strconv.ParseUint(st[k], 16, 64); err != nil || n != want {
					return fmt.Errorf("procd's daemon (pid %d) %s = %s, want %#x (CAP_NET_ADMIN only)", in.Pid, k, st[k], want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if st["NoNewPrivs"] != "1" {
			t.Errorf("%s: NoNewPrivs %q", what, st["NoNewPrivs"])
		}
	}
	check("defaults", "20MiB", "50")
	r.MustSh(t, "uci set vpn-passthrough.globals.memory_limit=32MiB && uci set vpn-passthrough.globals.gogc=off && uci commit vpn-passthrough")
	r.MustRun(t, "/etc/init.d/vpn-passthrough", "restart")
	check("memory_limit 32MiB, gogc off", "32MiB", "off")
	r.MustSh(t, "uci set vpn-passthrough.globals.memory_limit=lots && uci set vpn-passthrough.globals.gogc=-3 && uci commit vpn-passthrough")
	r.MustRun(t, "/etc/init.d/vpn-passthrough", "restart")
	check("bad values", "20MiB", "50")
	r.MustSh(t, "uci set vpn-passthrough.globals.memory_limit=32MiB && uci set vpn-passthrough.globals.gogc=off && uci commit vpn-passthrough")
	// enabled takes every UCI boolean spelling.
	r.MustSh(t, "uci set vpn-passthrough.globals.enabled=off && uci commit vpn-passthrough")
	r.MustRun(t, "/etc/init.d/vpn-passthrough", "restart")
	if err := WaitFor(20*time.Second, func() error {
		if in, err := r.instance(); err != nil || in.Running {
			return fmt.Errorf("still running (%+v, %v)", in, err)
		}
		return nil
	}); err != nil {
		t.Errorf("enabled=off: %v", err)
	}
	r.MustSh(t, "uci set vpn-passthrough.globals.enabled=yes && uci commit vpn-passthrough")
	r.MustRun(t, "/etc/init.d/vpn-passthrough", "restart")
	check("enabled=yes", "32MiB", "off")
}

func procEnv(pid int) map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

func procStatus(pid int) map[string]string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	st := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	return st
}
