package openwrt

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// routerBed is a lab with a bed inside its router: ubusd, netifd stand-in (lab interfaces),
// procd, our files installed.
type routerBed struct {
	*Bed
	lab *lab.Lab
}

func startRouterBed(t *testing.T, withRpcd bool) *routerBed {
	t.Helper()
	r := StartRouter(t, withRpcd)
	return &routerBed{Bed: r.Bed, lab: r.Lab}
}

// startService: StartService (fw4 with our include, init script started).
func (r *routerBed) startService(t *testing.T) { (&Router{Bed: r.Bed, Lab: r.lab}).StartService(t) }

// instance is what procd says about our service.
type instance struct {
	Running bool `json:"running"`
	Pid     int  `json:"pid"`
}

func (r *routerBed) instance() (instance, error) {
	out, err := r.Run("", "ubus", "call", "service", "list", `{"name":"vpn-passthrough"}`)
	if err != nil {
		return instance{}, err
	}
	var v map[string]struct {
		Instances map[string]instance `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return instance{}, fmt.Errorf("service list: %v: %q", err, out)
	}
	for _, in := range v["vpn-passthrough"].Instances {
		return in, nil
	}
	return instance{}, nil
}

// offProtocols reads which protocols our running table blocks ("pptp off" comments).
func (r *routerBed) offProtocols() ([]string, error) {
	out, err := r.Run("", "nft", "list", "table", "inet", "vpn_passthrough")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range []string{"pptp", "l2tp", "ipsec"} {
		if strings.Contains(out, "vpn-passthrough: "+p+" off") {
			seen[p] = true
		}
	}
	var off []string
	for p := range seen {
		off = append(off, p)
	}
	sort.Strings(off)
	return off, nil
}

// waitOff waits until the running table blocks exactly want (sorted).
func (r *routerBed) waitOff(t *testing.T, what string, want ...string) {
	t.Helper()
	sort.Strings(want)
	t0 := time.Now()
	var got []string
	err := WaitFor(20*time.Second, func() error {
		var err error
		got, err = r.offProtocols()
		if err != nil {
			return err
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("blocked %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: the config is not in force: %v", what, err)
	}
	in, _ := r.instance()
	t.Logf("%s: in force after %v: blocked %v, daemon pid %d", what, time.Since(t0).Round(time.Millisecond), got, in.Pid)
}

func (r *routerBed) pid(t *testing.T) int {
	t.Helper()
	in, err := r.instance()
	if err != nil || !in.Running || in.Pid == 0 {
		t.Fatalf("procd has no running instance: %+v %v", in, err)
	}
	return in.Pid
}

// Real procd starts our init script; every reload path ends with the config in force:
// config.change through rpcd (LuCI's Save & Apply), `reload`, `resync`, fw4's script include,
// and an interface event; `reload` after a `resync` back to the registered file content (the
// md5 case); respawn after SIGKILL; enabled=0 stops the daemon and removes its table.
func TestProcdReloadPaths(t *testing.T) {
	r := startRouterBed(t, true)
	// Real fw4 with our script include registered, for the fw4 path below.
	r.startService(t)
	if err := WaitFor(20*time.Second, func() error {
		in, err := r.instance()
		if err == nil && !in.Running {
			err = fmt.Errorf("not running: %+v", in)
		}
		return err
	}); err != nil {
		t.Fatalf("procd did not start the daemon: %v", err)
	}
	r.waitOff(t, "start")
	first := r.pid(t)

	uciCLI := func(set string) {
		t.Helper()
		r.MustSh(t, "uci set vpn-passthrough."+set+" && uci commit vpn-passthrough")
	}

	t.Run("config.change via rpcd uci commit", func(t *testing.T) {
		out := r.MustRun(t, "ubus", "call", "session", "login", `{"username":"root","password":"test"}`)
		var s struct {
			Session string `json:"ubus_rpc_session"`
		}
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatal(err)
		}
		r.MustRun(t, "ubus", "call", "uci", "set", `{"config":"vpn-passthrough","section":"pptp","values":{"enabled":"0"},"ubus_rpc_session":"`+s.Session+`"}`)
		r.MustRun(t, "ubus", "call", "uci", "commit", `{"config":"vpn-passthrough","ubus_rpc_session":"`+s.Session+`"}`)
		r.waitOff(t, "config.change", "pptp")
	})
	t.Run("reload", func(t *testing.T) {
		uciCLI("pptp.enabled=1")
		r.MustRun(t, "/etc/init.d/vpn-passthrough", "reload")
		r.waitOff(t, "reload")
	})
	t.Run("reload after resync (md5 unchanged since registration)", func(t *testing.T) {
		// uci's first rewrite of a hand-written file changes its layout: write it in uci's
		// form, then register it with procd.
		uciCLI("l2tp.enabled=0")
		uciCLI("l2tp.enabled=1")
		r.MustRun(t, "/etc/init.d/vpn-passthrough", "reload")
		r.waitOff(t, "reload (registers the file)")
		registered := r.MustRun(t, "md5sum", "/etc/config/vpn-passthrough")
		uciCLI("l2tp.enabled=0")
		r.MustRun(t, "/etc/init.d/vpn-passthrough", "resync")
		r.waitOff(t, "resync", "l2tp")
		uciCLI("l2tp.enabled=1")
		if now := r.MustRun(t, "md5sum", "/etc/config/vpn-passthrough"); now != registered {
			t.Fatalf("the file's md5 is not back at the registered one (%s vs %s): not the md5 case", now, registered)
		}
		t.Logf("config file md5 back at the one procd registered: %s", strings.Fields(registered)[0])
		r.MustRun(t, "/etc/init.d/vpn-passthrough", "reload")
		r.waitOff(t, "reload back to the registered file")
	})
	t.Run("fw4 reload runs our script include", func(t *testing.T) {
		uciCLI("ipsec.enabled=0")
		r.MustRun(t, "fw4", "-q", "reload")
		r.waitOff(t, "fw4 reload (script include)", "ipsec")
		uciCLI("ipsec.enabled=1")
		r.MustRun(t, "fw4", "-q", "reload")
		r.waitOff(t, "fw4 reload (script include)")
	})
	t.Run("interface event", func(t *testing.T) {
		uciCLI("l2tp.enabled=0")
		r.MustRun(t, "ubus", "call", "service", "event", `{"type":"interface.update","data":{"interface":"wan"}}`)
		r.waitOff(t, "interface.update wan", "l2tp")
		uciCLI("l2tp.enabled=1")
		r.MustRun(t, "ubus", "call", "service", "event", `{"type":"interface.update","data":{"interface":"wan"}}`)
		r.waitOff(t, "interface.update wan")
	})
	if p := r.pid(t); p != first {
		t.Fatalf("the reloads restarted the daemon: pid %d, then %d", first, p)
	}
	t.Run("respawn after SIGKILL", func(t *testing.T) {
		uciCLI("pptp.enabled=0")
		if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var in instance
		if err := WaitFor(30*time.Second, func() error {
			var err error
			if in, err = r.instance(); err == nil && (!in.Running || in.Pid == first) {
				err = fmt.Errorf("not respawned yet: %+v", in)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("respawned: pid %d -> %d", first, in.Pid)
		r.waitOff(t, "respawn", "pptp")
	})
	t.Run("enabled=0 stops", func(t *testing.T) {
		pid := r.pid(t)
		uciCLI("globals.enabled=0")
		r.MustRun(t, "/etc/init.d/vpn-passthrough", "reload")
		if err := WaitFor(20*time.Second, func() error {
			if in, err := r.instance(); err != nil || in.Running {
				return fmt.Errorf("still running: %+v %v", in, err)
			}
			if syscall.Kill(pid, 0) == nil {
				return fmt.Errorf("pid %d still alive", pid)
			}
			if _, err := r.Run("", "nft", "list", "table", "inet", "vpn_passthrough"); err == nil {
				return fmt.Errorf("our table is still there")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("enabled=0: pid %d gone, table inet vpn_passthrough removed", pid)
	})
}

// configureFW4 points the bed's fw4 config at the lab (ConfigureFW4).
func (r *routerBed) configureFW4(t *testing.T) { ConfigureFW4(t, r.Bed, r.lab) }
