package esp

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestWatchAddrs: an address added in the namespace signals the WAN
// refresh at once, nothing signals while nothing changes, and closing done
// ends the watch. It runs in a namespace of its own (a child of this test
// started there), so the host's addresses are not touched.
func TestWatchAddrs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	if os.Getenv("VPT_ESP_WATCH_CHILD") != "" {
		watchChild(t)
		return
	}
	name := fmt.Sprintf("vpt-espw-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	out, err := exec.Command("ip", "netns", "exec", name, "env", "VPT_ESP_WATCH_CHILD=1", os.Args[0],
		"-test.run=^TestWatchAddrs$", "-test.v").CombinedOutput()
	if err != nil {
		t.Fatalf("in the namespace: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func watchChild(t *testing.T) {
	done := make(chan struct{})
	ch := make(chan struct{}, 1)
	if err := watchAddrs(done, ch); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("a signal while nothing changed")
	case <-time.After(300 * time.Millisecond):
	}
	start := time.Now()
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	if out, err := exec.Command("ip", "addr", "add", "192.0.2.1/24", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
	select {
	case <-ch:
		t.Logf("signalled %v after the change", time.Since(start).Round(time.Millisecond))
	case <-time.After(2 * time.Second):
		t.Fatal("no signal within 2 s of an address change")
	}
	close(done)
}
