package openwrt

import (
	"os"
	"testing"
	"time"
)

// TestMain removes what the run built once (binary, packages) and prints how long the bed took.
func TestMain(m *testing.M) {
	t0 := time.Now()
	code := m.Run()
	RemoveBinaries()
	ipks.remove()
	apks.remove()
	if buildRoot != "" {
		println("openwrt test bed: userland build/cache check", BuildTime().Round(time.Millisecond).String(),
			"of", time.Since(t0).Round(time.Millisecond).String(), "in all; root", buildRoot)
	}
	os.Exit(code)
}
