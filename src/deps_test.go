package src

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPureImports keeps the pure core pure: parsing, planning and packet
// accessors must not reach the kernel, so they run (and are tested) anywhere,
// including under qemu-user for big-endian MIPS.
func TestPureImports(t *testing.T) {
	const mod = "github.com/vpn-passthrough/vpn-passthrough/src/"
	banned := []string{"golang.org/x/sys/unix", "github.com/mdlayher/netlink", "github.com/google/nftables", "os/exec", "net"}
	for _, pkg := range []string{"uci", "config", "plan", "packet", "jsondec", "jsonenc", "kvlog"} {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v: %s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range banned {
				if dep == b {
					t.Errorf("%s imports %s (directly or not); keep kernel access out of the pure core", pkg, b)
				}
			}
		}
	}
}
