package statefile

import (
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
