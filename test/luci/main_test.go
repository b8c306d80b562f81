package luci

import (
	"os"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/test/openwrt"
)

// TestMain removes the daemon binaries the run built (the D-Bus one, and the plain one without
// $VPNPT_BIN).
func TestMain(m *testing.M) {
	code := m.Run()
	openwrt.RemoveBinaries()
	os.Exit(code)
}
