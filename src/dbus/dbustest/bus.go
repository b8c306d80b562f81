// Package dbustest starts a real dbus-daemon for tests: a system-bus
// configuration (Debian's system.conf defaults) on a private socket, with
// vpn-passthrough's policy file included.
package dbustest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=SOCKET</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>POLICY</include>
</busconfig>
`

// Bus is a running dbus-daemon.
type Bus struct {
	Addr string // "unix:path=..."
	Dir  string
}

// Start runs dbus-daemon with policy (the text of a policy file) whose
// reader group is replaced by group (nogroup: the user nobody's) and extra
// appended inside it. The socket's folder is under dir ("": the system's
// temporary folder) and open to every user. It needs root: tests call the
// bus as other users.
func Start(t testing.TB, dir, policy, group, extra string) *Bus {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and the D-Bus tests need root")
		}
		t.Skip("needs root: the test calls the bus as other users")
	}
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatal("dbus-daemon missing (Debian package dbus-daemon): ", err)
	}
	d, err := os.MkdirTemp(dir, "vpnp-dbus-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, 0o755)
	p := strings.ReplaceAll(policy, `group="vpn-passthrough"`, `group="`+group+`"`)
	p = strings.Replace(p, "</busconfig>", extra+"</busconfig>", 1)
	polPath := filepath.Join(d, "policy.conf")
	if err := os.WriteFile(polPath, []byte(p), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(d, "bus")
	cfg := filepath.Join(d, "bus.conf")
	os.WriteFile(cfg, []byte(strings.NewReplacer("SOCKET", sock, "POLICY", polPath).Replace(busConfig)), 0o644)
	cmd := exec.Command(bin, "--config-file="+cfg, "--nofork", "--nopidfile")
	var logs strings.Builder
	cmd.Stderr = &logs // its refusals, shown if the test fails
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dbus-daemon:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		// The socket file appears at bind, before listen: ready means a
		// connect succeeds.
		if c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"}); err == nil {
			c.Close()
			return &Bus{Addr: "unix:path=" + sock, Dir: d}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("dbus-daemon did not create its socket")
	return nil
}
