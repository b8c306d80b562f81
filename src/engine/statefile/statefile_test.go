package statefile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "x.json")
	if err := Write(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (state names LAN clients)", st.Mode().Perm())
	}
}

func TestPathNamesNamespace(t *testing.T) {
	ns := NetNS()
	if ns == "" {
		t.Skip("kernel exposes neither a netns cookie nor /proc/self/ns/net")
	}
	p := Path(Dir, "pptp-calls", 4200)
	if !strings.HasPrefix(p, Dir+"/pptp-calls-q4200-") || strings.Contains(filepath.Base(p), ":") {
		t.Errorf("path %q", p)
	}
	if Path(Dir, "pptp-calls", 4200) != p {
		t.Error("path not stable")
	}
}

type testState struct {
	Version int    `json:"version"`
	BootID  string `json:"boot_id"`
	N       int    `json:"n"`
}

func (s *testState) StateHeader() (int, string) { return s.Version, s.BootID }

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v testState) string {
		t.Helper()
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(v)
		if err := Write(p, b); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var s testState
	if ok, err := Load(filepath.Join(dir, "none"), 1, &s); ok || err != nil {
		t.Errorf("missing file: %v %v", ok, err)
	}
	if ok, err := Load(write("good", testState{Version: 1, BootID: BootID(), N: 7}), 1, &s); !ok || err != nil || s.N != 7 {
		t.Errorf("good file: %v %v %+v", ok, err, s)
	}
	if ok, err := Load(write("old", testState{Version: 2, BootID: BootID()}), 1, &s); ok || err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("other version: %v %v", ok, err)
	}
	if BootID() != "" {
		if ok, err := Load(write("boot", testState{Version: 1, BootID: "another-boot"}), 1, &s); ok || err != nil {
			t.Errorf("other boot: %v %v", ok, err)
		}
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("{"), 0o600)
	if ok, err := Load(bad, 1, &s); ok || err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("broken file: %v %v", ok, err)
	}
}
