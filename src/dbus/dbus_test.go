package dbus

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/vpn-passthrough/vpn-passthrough/src/dbus/dbustest"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
	"github.com/vpn-passthrough/vpn-passthrough/src/status/statustest"
)

// privateBus is a real dbus-daemon with our policy file, its reader group
// being nogroup (the user nobody's).
func privateBus(t *testing.T, extra string) string {
	t.Helper()
	pol, err := os.ReadFile("com.github.vpn_passthrough.Daemon1.conf")
	if err != nil {
		t.Fatal(err)
	}
	return dbustest.Start(t, "", string(pol), "nogroup", extra).Addr
}

// send runs dbus-send as uid/gid and returns its output.
func send(addr string, uid, gid uint32, member string, args ...string) (string, error) {
	cmd := exec.Command("dbus-send", append([]string{"--bus=" + addr, "--print-reply", "--dest=" + Name, string(Path), Interface + "." + member}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// serve runs the service on addr and returns a root connection once it
// owns its name.
func serve(t *testing.T, addr string, api status.API) *godbus.Conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Serve(ctx, addr, api, kvlog.Discard())
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	root, err := Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		var has bool
		root.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, Name).Store(&has)
		if has {
			return root
		}
		if time.Now().After(deadline) {
			t.Fatal("the service never owned its name")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A policy that lets the reader group call everything still cannot open
// the write methods: the service checks the caller's uid itself.
func TestWritesRootOnlyWhateverThePolicy(t *testing.T) {
	addr := privateBus(t, `<policy group="nogroup"><allow send_destination="`+Name+`"/></policy>`)
	api := &statustest.Fake{}
	serve(t, addr, api)
	out, err := send(addr, 65534, 65534, "DropSession", "string:pptp", "string:"+statustest.SessionID)
	if err == nil || !strings.Contains(out, errPrefix+"AccessDenied") || !strings.Contains(out, "root only") {
		t.Errorf("nobody DropSession under a loose policy: %v %s", err, out)
	}
	if len(api.Dropped()) != 0 {
		t.Errorf("dropped %v", api.Dropped())
	}
}

func TestPrivateBus(t *testing.T) {
	addr := privateBus(t, "")
	api := &statustest.Fake{}
	root := serve(t, addr, api)
	obj := root.Object(Name, Path)

	// Signals: a client subscribed to the interface sees sessions come and go.
	if err := root.AddMatchSignal(godbus.WithMatchObjectPath(Path), godbus.WithMatchInterface(Interface)); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *godbus.Signal, 16)
	root.Signal(sigs)
	sess := api.Status().Sessions[0]
	api.Hub.Publish(status.Event{Name: status.EventSessionNew, Session: &sess})
	api.Hub.Publish(status.Event{Name: status.EventSessionEnd, Session: &sess})
	api.Hub.Publish(status.Event{Name: status.EventApplied, Trigger: "SIGHUP"})
	var names []string
	timeout := time.After(20 * time.Second)
	for len(names) < 3 {
		select {
		case s := <-sigs:
			names = append(names, s.Name)
			if s.Name == Interface+".SessionNew" && !strings.Contains(s.Body[0].(string), `"client":"10.0.0.2"`) {
				t.Errorf("SessionNew body %v", s.Body)
			}
		case <-timeout:
			t.Fatalf("signals: %v", names)
		}
	}
	if strings.Join(names, " ") != Interface+".SessionNew "+Interface+".SessionEnd "+Interface+".Applied" {
		t.Errorf("signals %v", names)
	}

	var js string
	if err := obj.Call(Interface+".Status", 0).Store(&js); err != nil || !strings.Contains(js, `"schema":1`) {
		t.Errorf("Status: %v %s", err, js)
	}
	// The reader group (nogroup: user nobody) reads, and is refused writes.
	if out, err := send(addr, 65534, 65534, "Sessions"); err != nil || !strings.Contains(out, statustest.SessionID) {
		t.Errorf("nobody Sessions: %v %s", err, out)
	}
	for _, m := range [][]string{{"Reload"}, {"DropSession", "string:pptp", "string:" + statustest.SessionID}} {
		out, err := send(addr, 65534, 65534, m[0], m[1:]...)
		if err == nil || !strings.Contains(out, "AccessDenied") {
			t.Errorf("nobody %s: %v %s", m[0], err, out)
		}
	}
	// Another user (daemon, not in the group) may not even read.
	if out, err := send(addr, 1, 1, "Status"); err == nil || !strings.Contains(out, "AccessDenied") {
		t.Errorf("uid 1 Status: %v %s", err, out)
	}
	if len(api.Dropped()) != 0 || api.Reloads() != 0 {
		t.Fatalf("refused callers changed something: dropped %v, reloads %d", api.Dropped(), api.Reloads())
	}

	// Root: errors by name with their text, then the real drop.
	err := obj.Call(Interface+".DropSession", 0, "pptp", "gre/10.0.0.9/198.51.100.2/1").Err
	var de godbus.Error
	if !errors.As(err, &de) || de.Name != errPrefix+"UnknownSession" || !strings.Contains(de.Error(), "no such session") {
		t.Errorf("unknown session: %#v", err)
	}
	if err := obj.Call(Interface+".DropSession", 0, "", "").Err; !errors.As(err, &de) || de.Name != errPrefix+"InvalidArgument" {
		t.Errorf("empty arguments: %#v", err)
	}
	if err := obj.Call(Interface+".DropSession", 0, "pptp").Err; err == nil {
		t.Error("DropSession with one argument accepted")
	}
	if err := obj.Call(Interface+".DropSession", 0, "pptp", statustest.SessionID).Err; err != nil || len(api.Dropped()) != 1 {
		t.Errorf("drop: %v %v", err, api.Dropped())
	}
	api.ReloadErr = errors.New("config: x:3: bad")
	if err := obj.Call(Interface+".Reload", 0).Err; !errors.As(err, &de) || de.Name != errPrefix+"Failed" || !strings.Contains(de.Error(), "x:3: bad") {
		t.Errorf("refused reload: %#v", err)
	}
	if err := obj.Call(Interface+".Check", 0, "config pptp 'pptp'\n\toption enabled 'maybe'\n").Store(&js); err != nil {
		t.Fatal(err)
	}
	var cr status.CheckResult
	if json.Unmarshal([]byte(js), &cr); cr.Valid || len(cr.Errors) != 1 || cr.Errors[0].Option != "enabled" || cr.Errors[0].Line != 2 {
		t.Errorf("Check: %s", js)
	}
}
