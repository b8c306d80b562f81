package luci

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"github.com/vpn-passthrough/vpn-passthrough/src/dbus"
	"github.com/vpn-passthrough/vpn-passthrough/src/dbus/dbustest"
	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
	"github.com/vpn-passthrough/vpn-passthrough/test/openwrt"
)

// TestUbusAndDBusWithTunnels: the daemon in the lab's router, on the real
// ubusd and rpcd and on a real dbus-daemon, while two LAN clients hold PPTP
// calls with the same Call ID. Both front-ends list and announce the calls;
// rpcd's sessions grant drop_session only to the write half of the ACL;
// dropping one client's call stops that client's traffic and not the
// other's; bad requests change nothing; ubusd restarting and the daemon
// stopping give the answers they should.
func TestUbusAndDBusWithTunnels(t *testing.T) {
	openwrt.Require(t)
	pol, err := os.ReadFile("../../src/dbus/com.github.vpn_passthrough.Daemon1.conf")
	if err != nil {
		t.Fatal(err)
	}
	// /dev/shm: the bed has its own /tmp and /var, but the host's /dev.
	bus := dbustest.Start(t, "/dev/shm", string(pol), "nogroup", "")
	r := startRig(t, rigOptions{dbus: bus.Addr})

	// D-Bus: a client on the host, subscribed before the tunnels open.
	conn, err := dbus.Connect(bus.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := openwrt.WaitFor(20*time.Second, func() error {
		var has bool
		conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, dbus.Name).Store(&has)
		if !has {
			return errors.New("the daemon does not own " + dbus.Name)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(r.daemon.Stderr(), "\n"))
	}
	if err := conn.AddMatchSignal(godbus.WithMatchObjectPath(dbus.Path), godbus.WithMatchInterface(dbus.Interface)); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *godbus.Signal, 64)
	conn.Signal(sigs)

	// ubus: a listener in the bed.
	listen, err := r.b.Spawn("ubus listen", "ubus", "listen", "vpn-passthrough.session.new", "vpn-passthrough.session.end")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let it register before the first event

	// Two clients, same Call ID, GRE for about 25 s each.
	started := time.Now()
	calls := []*lab.Proc{r.call(1, 250, 100*time.Millisecond), r.call(2, 250, 100*time.Millisecond)}
	var gre map[string]map[string]any
	if err := openwrt.WaitFor(30*time.Second, func() error {
		gre = r.greSessions()
		if len(gre) != 2 {
			return errors.New("not two GRE sessions yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("%v: %+v", err, r.status().Sessions)
	}
	c1, c2 := r.l.Client(1).Addr.String(), r.l.Client(2).Addr.String()
	if gre[c1]["trans_id"] == gre[c2]["trans_id"] || gre[c1]["orig_id"] != "1" {
		t.Errorf("the two calls are not told apart: %v / %v", gre[c1], gre[c2])
	}
	// Kernel mode with nf_conntrack_acct off: counts unknown (null), not 0.
	if v, ok := gre[c1]["packets_out"]; !ok || (v != nil && !r.acctOn()) {
		t.Errorf("packets_out = %v (present %v) with accounting off", v, ok)
	}

	// Both front-ends announced both GRE sessions.
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for !seen[c1] || !seen[c2] {
		select {
		case s := <-sigs:
			if s.Name == dbus.Interface+".SessionNew" && strings.Contains(s.Body[0].(string), `"proto":"gre"`) {
				var x map[string]any
				json.Unmarshal([]byte(s.Body[0].(string)), &x)
				seen[x["client"].(string)] = true
			}
		case <-deadline:
			t.Fatalf("D-Bus SessionNew for the GRE sessions: %v", seen)
		}
	}
	if err := openwrt.WaitFor(20*time.Second, func() error {
		out := strings.Join(listen.Stdout(), "\n")
		if !strings.Contains(out, `"client":"`+c1+`"`) || !strings.Contains(out, `"client":"`+c2+`"`) {
			return errors.New("ubus listen has not seen both clients")
		}
		return nil
	}); err != nil {
		t.Errorf("%v: %s", err, listen.Stdout())
	}

	// ACL through real rpcd sessions.
	sid := func(user string) string {
		out, err := r.ubus("call", "session", "login", `{"username":"`+user+`","password":"test"}`)
		var res struct {
			S string `json:"ubus_rpc_session"`
		}
		if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.S == "" {
			t.Fatalf("login %s: %v %s", user, err, out)
		}
		return res.S
	}
	access := func(s, fn string) bool {
		out, err := r.ubus("call", "session", "access", `{"ubus_rpc_session":"`+s+`","scope":"ubus","object":"vpn-passthrough","function":"`+fn+`"}`)
		return err == nil && strings.Contains(out, `"access": true`)
	}
	root, viewer := sid("root"), sid("viewer")
	for fn, want := range map[string][2]bool{"status": {true, true}, "sessions": {true, true}, "capabilities": {true, true},
		"check": {true, true}, "drop_session": {true, false}, "reload": {true, false}} {
		if got := [2]bool{access(root, fn), access(viewer, fn)}; got != want {
			t.Errorf("%s: access root/viewer %v, want %v", fn, got, want)
		}
	}

	// Refused requests change nothing.
	before := r.greSessions()
	for _, c := range []struct{ args, want string }{
		{`{"protocol":"pptp","id":"gre/10.9.9.9/10.9.9.8/1"}`, "Not found"},
		{`{"protocol":"pptp"}`, "Invalid argument"},
		{`{"protocol":"pptp","id":7}`, "Invalid argument"},
	} {
		if out, err := r.ubus("call", "vpn-passthrough", "drop_session", c.args); err == nil || !strings.Contains(out, c.want) {
			t.Errorf("drop_session %s: %v %q, want %q", c.args, err, out, c.want)
		}
	}
	// D-Bus: the reader group may read, not drop; root may.
	id2 := gre[c2]["id"].(string)
	if out, err := dbusSend(bus.Addr, 65534, "DropSession", "string:pptp", "string:"+id2); err == nil || !strings.Contains(out, "AccessDenied") {
		t.Errorf("nobody DropSession: %v %s", err, out)
	}
	if out, err := dbusSend(bus.Addr, 65534, "Sessions"); err != nil || !strings.Contains(out, id2) {
		t.Errorf("nobody Sessions: %v %s", err, out)
	}
	if after := r.greSessions(); len(after) != 2 || after[c2]["id"] != before[c2]["id"] {
		t.Fatalf("refused drops changed the sessions: %v", after)
	}

	// Drop client 2's call over ubus: its session goes, its traffic stops;
	// client 1's carries on.
	if out, err := r.ubus("call", "vpn-passthrough", "drop_session", `{"protocol":"pptp","id":"`+id2+`"}`); err != nil {
		t.Fatalf("drop_session: %v %s", err, out)
	}
	dropped := time.Now()
	time.Sleep(3 * time.Second)
	for _, s := range r.status().Sessions {
		if s["id"] == id2 {
			t.Errorf("dropped session still listed: %v", s)
		}
	}
	if _, ok := r.greSessions()[c1]; !ok {
		t.Errorf("client 1's session went too")
	}
	res1, err1 := lab.WaitPPTPClient(calls[0], 90*time.Second)
	res2, _ := lab.WaitPPTPClient(calls[1], 90*time.Second)
	if err1 != nil || !res1.OK {
		t.Errorf("client 1 suffered from client 2's drop: %v %+v", err1, res1)
	}
	// Client 2 sends 250 GRE packets over 25 s from about when its call was
	// up; after the drop, none may come back.
	// (5 packets of slack for those in flight).
	left := int(started.Add(25*time.Second).Sub(dropped) / (100 * time.Millisecond))
	if len(res2.Calls) != 1 || res2.Calls[0].Received > res2.Calls[0].Sent-left+5 {
		t.Errorf("client 2's traffic did not stop after the drop (about %d packets were sent after it): %+v", left, res2)
	}
	if len(res1.Calls) == 1 && len(res2.Calls) == 1 {
		t.Logf("GRE echoed: client 1 %d/%d, client 2 (dropped) %d/%d", res1.Calls[0].Received, res1.Calls[0].Sent,
			res2.Calls[0].Received, res2.Calls[0].Sent)
	}
	timeout := time.After(20 * time.Second)
	for ended := false; !ended; {
		select {
		case s := <-sigs:
			ended = s.Name == dbus.Interface+".SessionEnd" && strings.Contains(s.Body[0].(string), id2)
		case <-timeout:
			t.Fatal("no D-Bus SessionEnd for the dropped call")
		}
	}

	// ubusd restarts: the object comes back by itself.
	if out, err := r.b.Run("", "sh", "-c", "kill $(pidof ubusd)"); err != nil {
		t.Fatalf("kill ubusd: %v %s", err, out)
	}
	r.b.StartUbusd(t)
	if err := openwrt.WaitFor(30*time.Second, func() error {
		_, err := r.ubus("call", "vpn-passthrough", "sessions")
		return err
	}); err != nil {
		t.Errorf("after ubusd restarted: %v", err)
	}

	// The daemon stops: ubus says the object is gone, D-Bus that the name has no owner.
	r.daemon.Stop(15 * time.Second)
	if out, err := r.ubus("call", "vpn-passthrough", "status"); err == nil || !strings.Contains(out, "Not found") {
		t.Errorf("status with the daemon down: %v %s", err, out)
	}
	if err := conn.Object(dbus.Name, dbus.Path).Call(dbus.Interface+".Status", 0).Err; err == nil || !strings.Contains(err.Error(), dbus.Name) {
		t.Errorf("D-Bus Status with the daemon down: %v", err)
	}
}

// acctOn is the router's nf_conntrack_acct (per network namespace).
func (r *rig) acctOn() bool {
	out, err := r.l.RouterExec("cat", "/proc/sys/net/netfilter/nf_conntrack_acct")
	return err == nil && strings.TrimSpace(out) != "0"
}

// dbusSend calls the service as uid (and its group) with dbus-send.
func dbusSend(addr string, uid uint32, member string, args ...string) (string, error) {
	cmd := exec.Command("dbus-send", append([]string{"--bus=" + addr, "--print-reply", "--dest=" + dbus.Name, string(dbus.Path), dbus.Interface + "." + member}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
