// Package samples finds the real OpenWrt config files the tests read
// (openwrt-samples, third-party, so not in the repository): $VPNPT_SHARED,
// else ../shared beside the repository, as test/lab finds them.
package samples

import (
	"os"
	"path/filepath"
	"testing"
)

// Read returns sample name. Without it, a test skips saying why, but fails
// under CI=true, where ../shared is always there.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	p := filepath.Join(Dir(), name)
	b, err := os.ReadFile(p)
	if err == nil {
		return b
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("OpenWrt sample %s missing under CI=true: %v (set VPNPT_SHARED, or put shared/ beside the repository)", name, err)
	}
	t.Skipf("OpenWrt sample %s not available (%v): it lives in shared/ beside the repository, or $VPNPT_SHARED", name, err)
	return nil
}

// Dir is where the samples are looked for.
func Dir() string {
	if d := os.Getenv("VPNPT_SHARED"); d != "" {
		return filepath.Join(d, "openwrt-samples")
	}
	// The repository's root is where go.mod is, above the test's package.
	wd, _ := os.Getwd()
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "openwrt-samples")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(wd, "shared", "openwrt-samples")
		}
	}
}
