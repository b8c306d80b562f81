package ubus

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
	"github.com/vpn-passthrough/vpn-passthrough/src/status/statustest"
)

// userlandRoot is the install root of OpenWrt's real userland (ubusd, the
// ubus CLI): $OPENWRT_USERLAND_ROOT, else what test/openwrt/build.sh builds
// (or has cached) from the pinned sources.
func userlandRoot(t *testing.T) string {
	t.Helper()
	if r := os.Getenv("OPENWRT_USERLAND_ROOT"); r != "" {
		return r
	}
	script, _ := filepath.Abs("../../test/openwrt/build.sh")
	if _, err := os.Stat(script); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("test/openwrt/build.sh missing: cannot build ubusd")
		}
		t.Skip("no OPENWRT_USERLAND_ROOT and no test/openwrt/build.sh")
	}
	out, err := exec.Command("bash", script).Output()
	if err != nil {
		t.Fatalf("test/openwrt/build.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// ubusd is a real ubusd on a private socket.
type ubusd struct {
	t    *testing.T
	root string
	sock string
	cmd  *exec.Cmd
}

func (u *ubusd) env() []string {
	return append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(u.root, "usr/lib"))
}

func (u *ubusd) start() {
	u.t.Helper()
	os.Remove(u.sock)
	u.cmd = exec.Command(filepath.Join(u.root, "usr/sbin/ubusd"), "-s", u.sock)
	u.cmd.Env = u.env()
	u.cmd.Stderr = os.Stderr
	if err := u.cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
}

func (u *ubusd) stop() {
	if u.cmd != nil && u.cmd.Process != nil {
		u.cmd.Process.Kill()
		u.cmd.Wait()
		u.cmd = nil
	}
}

// cli runs the real ubus client.
func (u *ubusd) cli(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(u.root, "usr/bin/ubus"), append([]string{"-s", u.sock, "-t", "20"}, args...)...)
	cmd.Env = u.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// waitObject polls until the object is listed (it registers asynchronously).
func (u *ubusd) waitObject() {
	u.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if out, err := u.cli("list", ObjectName); err == nil && strings.TrimSpace(out) == ObjectName {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	u.t.Fatalf("%s never appeared on ubus", ObjectName)
}

func TestRealUbusd(t *testing.T) {
	u := &ubusd{t: t, root: userlandRoot(t), sock: filepath.Join(t.TempDir(), "ubus.sock")}
	u.start()
	defer u.stop()
	api := &statustest.Fake{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		ServeAPI(ctx, u.sock, api, kvlog.Discard())
		close(done)
	}()
	defer func() { cancel(); <-done }()
	u.waitObject()

	out, err := u.cli("-v", "list", ObjectName)
	if err != nil || !strings.Contains(out, `"drop_session":{"protocol":"String","id":"String"}`) &&
		!strings.Contains(out, `"drop_session":{"id":"String","protocol":"String"}`) {
		t.Errorf("signature (%v):\n%s", err, out)
	}

	out, err = u.cli("call", ObjectName, "status")
	if err != nil {
		t.Fatalf("status: %v %s", err, out)
	}
	var s struct {
		Schema   int    `json:"schema"`
		State    string `json:"state"`
		Sessions []map[string]any
		Counters map[string]map[string]any
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status is not JSON: %v\n%s", err, out)
	}
	if s.Schema != status.SchemaVersion || s.State != "running" || len(s.Sessions) != 1 {
		t.Errorf("status %+v", s)
	}
	if v, ok := s.Sessions[0]["packets_out"]; !ok || v != nil {
		t.Errorf("unknown packets_out is %v (present %v), want null", v, ok)
	}
	if s.Counters["passed_pptp_out"]["packets"] != float64(5000000000) {
		t.Errorf("64-bit counter %v", s.Counters["passed_pptp_out"])
	}

	// Events: a listener sees the session appear.
	lis := exec.Command(filepath.Join(u.root, "usr/bin/ubus"), "-s", u.sock, "listen", EventPrefix+status.EventSessionNew)
	lis.Env = u.env()
	lout, _ := lis.StdoutPipe()
	if err := lis.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { lis.Process.Kill(); lis.Wait() }()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(lout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	got := ""
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond) // until the listener is registered
	defer tick.Stop()
	for got == "" {
		select {
		case l := <-lines:
			got = l
		case <-tick.C:
			sess := api.Status().Sessions[0]
			api.Hub.Publish(status.Event{Name: status.EventSessionNew, Session: &sess})
		case <-deadline:
			t.Fatal("no event reached ubus listen")
		}
	}
	if !strings.Contains(got, `"vpn-passthrough.session.new"`) || !strings.Contains(got, `"client":"10.0.0.2"`) {
		t.Errorf("event %s", got)
	}

	// Errors: each a clear reply, and nothing changes.
	for _, c := range []struct{ method, args, want string }{
		{"drop_session", `{"protocol":"pptp","id":"gre/10.0.0.9/198.51.100.2/1"}`, "Not found"},
		{"drop_session", `{"protocol":5,"id":"x"}`, "Invalid argument"},
		{"drop_session", `{"protocol":"pptp"}`, "Invalid argument"},
		{"drop_session", `{"protocol":"pptp","id":"x","force":"1"}`, "Invalid argument"},
		{"status", `{"verbose":"1"}`, "Invalid argument"},
		{"nosuch", `{}`, "Method not found"},
	} {
		out, err := u.cli("call", ObjectName, c.method, c.args)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s %s: %v %q, want %q", c.method, c.args, err, out, c.want)
		}
	}
	if len(api.Dropped()) != 0 {
		t.Fatalf("a refused call dropped %v", api.Dropped())
	}
	// Our own client sees the error text, not only the code.
	c, err := Dial(u.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply, st, err := c.Call(ObjectName, "drop_session", map[string]string{"protocol": "pptp", "id": "nope"})
	if st != StatusNotFound || err == nil || !strings.Contains(reply["error"].(string), "no such session") {
		t.Errorf("unknown session: %d %v %v", st, reply, err)
	}
	if out, err := u.cli("call", ObjectName, "drop_session", `{"protocol":"pptp","id":"`+statustest.SessionID+`"}`); err != nil ||
		!strings.Contains(out, "dropped") || len(api.Dropped()) != 1 {
		t.Errorf("drop: %v %s %v", err, out, api.Dropped())
	}

	out, err = u.cli("call", ObjectName, "check", `{"config":"config pptp 'pptp'\n\toption enabled 'maybe'\n"}`)
	if err != nil || !strings.Contains(out, `"valid": false`) || !strings.Contains(out, `"option": "enabled"`) || !strings.Contains(out, `"line": 2`) ||
		!strings.Contains(out, `"value": "maybe"`) {
		t.Errorf("check: %v\n%s", err, out)
	}
	api.ReloadErr = errors.New("config: /etc/config/vpn-passthrough:3: bad")
	if out, err := u.cli("call", ObjectName, "reload"); err == nil || api.Reloads() != 1 {
		t.Errorf("refused reload: %v %s (reloads %d)", err, out, api.Reloads())
	}
	if reply, _, _ := c.Call(ObjectName, "reload", map[string]string{}); !strings.Contains(reply["error"].(string), ":3: bad") {
		t.Errorf("refused reload reply %v", reply)
	}

	// ubusd restarts: the object comes back by itself.
	u.stop()
	u.start()
	u.waitObject()
	if out, err := u.cli("call", ObjectName, "sessions"); err != nil || !strings.Contains(out, `"schema": 1`) {
		t.Errorf("after ubusd restart: %v %s", err, out)
	}
}
