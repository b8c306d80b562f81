package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

func TestUsage(t *testing.T) {
	if _, _, err := runCLI(t, ""); err == nil {
		t.Error("no command accepted")
	}
	if _, serr, err := runCLI(t, "", "frobnicate"); err == nil || !strings.Contains(serr, "usage") {
		t.Errorf("unknown command: %v %q", err, serr)
	}
}

func TestCheckBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "vpn-passthrough")
	os.WriteFile(cfg, []byte("config globals 'globals'\n\toption mode 'fast'\n"), 0o644)
	_, _, err := runCLI(t, "", "check", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), `"mode"`) || !strings.Contains(err.Error(), `"fast"`) {
		t.Fatalf("check on bad config: %v", err)
	}
}

// The rpcd exec plugin is gone: the daemon serves ubus itself.
func TestNoRPCDCommand(t *testing.T) {
	if _, _, err := runCLI(t, "", "rpcd"); err == nil || !strings.Contains(err.Error(), `unknown command "rpcd"`) {
		t.Errorf("rpcd: %v", err)
	}
}

func TestStrayArgumentRefused(t *testing.T) {
	_, _, err := runCLI(t, "", "apply", "--config", "/nonexistent", "now", "--dry-run")
	if err == nil || !strings.Contains(err.Error(), `unexpected argument "now"`) {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := runCLI(t, "", "check", "-h"); err != nil {
		t.Errorf("check -h: %v", err)
	}
}

func TestCheckJSONWithWarnings(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vpn-passthrough")
	os.WriteFile(cfg, []byte("config globals 'globals'\n\toption colour 'red'\n\tlist lan_device 'a0'\n\tlist wan_device 'b0'\n"), 0o644)
	out, serr, err := runCLI(t, "", "check", "--json", "--config", cfg)
	if err != nil {
		if strings.Contains(err.Error(), "nf_tables") {
			t.Skipf("no nf_tables here: %v", err)
		}
		t.Fatal(err)
	}
	var v struct {
		ConfigWarnings []string `json:"config_warnings"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("check --json is not JSON (%v): %q (stderr %q)", err, out, serr)
	}
	if len(v.ConfigWarnings) != 4 || !strings.Contains(v.ConfigWarnings[0], "colour") || !strings.Contains(v.ConfigWarnings[1], "no pptp section") {
		t.Errorf("config_warnings = %v", v.ConfigWarnings)
	}
}

// TestStatusPermissionDenied: a socket the user may not open is reported as
// a permission problem, not as "is the daemon running?".
func TestStatusPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		// root opens any socket; drop to nobody in a child to see EACCES.
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("needs setpriv (util-linux) to run as another user")
		}
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Chmod(sock, 0o600)
	os.Chmod(dir, 0o755)
	if os.Geteuid() != 0 {
		_, _, err := runCLI(t, "", "status", "--socket", sock)
		if err == nil || !strings.Contains(err.Error(), "permission denied") || strings.Contains(err.Error(), "is the daemon running") {
			t.Fatalf("status on a root-only socket: %v", err)
		}
		return
	}
	bin := filepath.Join(dir, "vpt")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	os.Chmod(bin, 0o755)
	out, _ := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "status", "--socket", sock).CombinedOutput()
	if !strings.Contains(string(out), "permission denied") || !strings.Contains(string(out), "root-only") ||
		strings.Contains(string(out), "is the daemon running") {
		t.Errorf("status as nobody on a root-only socket: %s", out)
	}
}
