package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// TestMarkCoexistsWithPBR runs the userspace engines next to a pbr-like
// policy router that uses pbr's default fw_mask 0x00ff0000: it marks LAN
// traffic 0x00010000 under that mask in mangle prerouting and skips packets
// that already carry bits of it. With the default engine mark (0x05000000
// under 0x0f000000) ESP and PPTP pass through the engines, and packets leave
// the WAN with both pbr's mark and ours intact. Status then sees fw4 accept
// our mark; configuring another mark makes status say fw4 must reload.
func TestMarkCoexistsWithPBR(t *testing.T) {
	lab.Need(t)
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{})
	if _, err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	// pbr's nft mode: mark in mangle prerouting under fw_mask, skip what is
	// marked already (pbr's "mark & fw_mask != 0 return").
	if err := l.NftApply(fmt.Sprintf(`table inet pbr_lab {
	counter egress_pbr_and_ours {}
	counter egress_pbr_esp {}
	chain mangle_prerouting {
		type filter hook prerouting priority mangle; policy accept;
		meta mark & 0x00ff0000 != 0 return
		iifname %q meta mark set meta mark & 0xff00ffff | 0x00010000
	}
	chain mangle_postrouting {
		type filter hook postrouting priority mangle; policy accept;
		oifname %q meta l4proto esp meta mark & 0x00ff0000 == 0x00010000 counter name "egress_pbr_esp"
		oifname %q meta mark & 0x0fff0000 == 0x05010000 counter name "egress_pbr_and_ours"
	}
}
`, l.LANDevs[0], l.WANDev, l.WANDev)); err != nil {
		t.Fatal(err)
	}
	cfg := l.KernelUCI()
	cfg.Mode = "userspace"
	d := l.RunDaemon(t, bin, cfg.String())
	c0, _ := l.ReadCounter("inet", "pbr_lab", "egress_pbr_esp")
	if r, err := l.RawClient(1, "esp", "--count", "5", "--spi", "0x7001"); err != nil || !r.OK || r.Received != 5 {
		t.Errorf("ESP through the engine with pbr marking: %+v, %v", r, err)
	}
	if r, err := l.PPTPClient(1, "--call-id", "1", "--count", "5"); err != nil || !r.OK || r.Received != 5 {
		t.Errorf("PPTP through the engine with pbr marking: %+v, %v", r, err)
	}
	c1, err := l.ReadCounter("inet", "pbr_lab", "egress_pbr_esp")
	if err != nil {
		t.Fatal(err)
	}
	if got := c1.Packets - c0.Packets; got < 5 {
		t.Errorf("%d ESP packets left the WAN with pbr's mark, want 5: the engine's mark clobbered it", got)
	}
	if c, _ := l.ReadCounter("inet", "pbr_lab", "egress_pbr_and_ours"); c.Packets == 0 {
		t.Errorf("no packet left with both pbr's mark and the engines'")
	}
	s, raw, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	_ = s
	if strings.Contains(raw, "accepts mark") || strings.Contains(raw, "no vpn-passthrough accept rule") {
		t.Errorf("status warns about fw4's mark with the shipped include:\n%s", raw)
	}

	// Control: the engines on pbr's own mask (the old fixed mark), with an
	// include that accepts it. ESP still passes, but pbr's mark is gone
	// from what the engine forwarded: the collision the default avoids.
	inc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(inc, "chain-pre", "forward"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inc, "chain-pre", "forward", "10-vpn-passthrough.nft"),
		[]byte("meta mark & 0x00ff0000 == 0x00560000 counter accept comment \"vpn-passthrough: accepted by userspace engine\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.ReloadFW4(inc); err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(cfg.String(), "config globals 'globals'\n",
		"config globals 'globals'\n\toption mark '0x00560000'\n\toption mark_mask '0x00ff0000'\n", 1)
	if err := d.Apply(old); err != nil {
		t.Fatal(err)
	}
	c0, _ = l.ReadCounter("inet", "pbr_lab", "egress_pbr_esp")
	if r, err := l.RawClient(1, "esp", "--count", "5", "--spi", "0x7002"); err != nil || !r.OK {
		t.Errorf("ESP with the old mark and its include: %+v, %v", r, err)
	}
	if c, _ := l.ReadCounter("inet", "pbr_lab", "egress_pbr_esp"); c.Packets-c0.Packets >= 5 {
		t.Errorf("control: pbr's mark survived the engine on pbr's own mask (%d packets); the test would not see a collision", c.Packets-c0.Packets)
	}
	if err := l.ReloadFW4(""); err != nil {
		t.Fatal(err)
	}

	// Another mark: fw4 (not reloaded with a rewritten include) still
	// accepts the shipped one, and status says so.
	other := strings.Replace(cfg.String(), "config globals 'globals'\n",
		"config globals 'globals'\n\toption mark '0x00100000'\n\toption mark_mask '0x00f00000'\n", 1)
	if err := d.Apply(other); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, raw, err := d.Status()
		if err == nil && strings.Contains(raw, "accepts mark 0x05000000/0x0f000000, the engines use 0x00100000/0x00f00000") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status does not warn that fw4 accepts another mark:\n%s", raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
