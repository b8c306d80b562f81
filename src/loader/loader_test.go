package loader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/internal/samples"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/probe"
)

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoadOpenWrtLayout reads config, firewall and network from one
// directory, as on a router's /etc/config.
func TestLoadOpenWrtLayout(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "../../files/etc/config/vpn-passthrough", filepath.Join(dir, "vpn-passthrough"))
	for src, dst := range map[string]string{"firewall": "firewall", "network.RECONSTRUCTED": "network"} {
		if err := os.WriteFile(filepath.Join(dir, dst), samples.Read(t, src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir() // no kernel facts: the plan must still be made (nf_tables unknown -> error)
	_, err := Load(filepath.Join(dir, "vpn-passthrough"), probe.Root(root), nil)
	if err == nil || !strings.Contains(err.Error(), "nf_tables") {
		t.Fatalf("without nf_tables: err = %v, want it to say nf_tables is missing", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vpn-passthrough")
	if _, err := Load(cfg, probe.Root(dir), nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	os.WriteFile(cfg, []byte("config pptp 'pptp'\n\toption enabled 'perhaps'\n"), 0o644)
	_, err := Load(cfg, probe.Root(dir), nil)
	if err == nil || !strings.Contains(err.Error(), `"perhaps"`) || !strings.Contains(err.Error(), cfg+":2") {
		t.Errorf("bad value: %v", err)
	}
	os.WriteFile(cfg, []byte("config globals 'globals'\n\toption enabled '0'\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "firewall"), []byte("config zone\n\toption name 'lan\n"), 0o644)
	if _, err := Load(cfg, probe.Root(dir), nil); err == nil || !strings.Contains(err.Error(), "firewall") {
		t.Errorf("broken firewall file: %v", err)
	}
}

func TestLoadDisabledNeedsNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vpn-passthrough")
	os.WriteFile(cfg, []byte("config globals 'globals'\n\toption enabled '0'\n"), 0o644)
	l, err := Load(cfg, probe.Root(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Plan.Empty() || l.Plan.Decision(plan.PPTP).Datapath != plan.PathUntouched {
		t.Errorf("disabled config planned something: %+v", l.Plan)
	}
}
