package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
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
	if len(v.ConfigWarnings) != 1 || !strings.Contains(v.ConfigWarnings[0], "colour") {
		t.Errorf("config_warnings = %v", v.ConfigWarnings)
	}
}
