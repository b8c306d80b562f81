package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
)

func TestSyncFW4Include(t *testing.T) {
	dir := t.TempDir()
	shipped, err := os.ReadFile("../../files/usr/share/nftables.d/chain-pre/forward/10-vpn-passthrough.nft")
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(dir, "10-vpn-passthrough.nft") // i13 may prefix an order
	foreign := filepath.Join(dir, "other.nft")
	os.WriteFile(ours, shipped, 0o644)
	os.WriteFile(foreign, []byte("meta mark & 0x000000ff == 0x00000001 accept\n"), 0o644)
	// The shipped file carries the default mark: nothing to do.
	if ch, err := syncFW4Include(dir, config.DefaultMark, config.DefaultMarkMask); err != nil || len(ch) != 0 {
		t.Fatalf("default mark: changed %v, %v", ch, err)
	}
	ch, err := syncFW4Include(dir, 0x00100000, 0x00f00000)
	if err != nil || len(ch) != 1 || ch[0] != ours {
		t.Fatalf("changed %v, %v; want only %s", ch, err, ours)
	}
	got, _ := os.ReadFile(ours)
	if !strings.Contains(string(got), "meta mark & 0x00f00000 == 0x00100000 counter accept") ||
		strings.Count(string(got), "\n") != strings.Count(string(shipped), "\n") {
		t.Errorf("rewritten include:\n%s", got)
	}
	if f, _ := os.ReadFile(foreign); !strings.Contains(string(f), "0x000000ff == 0x00000001") {
		t.Errorf("a file that is not ours was changed: %s", f)
	}
	if ch, _ := syncFW4Include(dir, 0x00100000, 0x00f00000); len(ch) != 0 {
		t.Errorf("second sync rewrote %v", ch)
	}
	if ch, err := syncFW4Include(filepath.Join(dir, "absent"), 1, 1); err != nil || len(ch) != 0 {
		t.Errorf("no fw4 include dir: %v, %v", ch, err)
	}
}

// TestIncludeFilesAsGlob: the hand-written listing picks what
// filepath.Glob("*vpn-passthrough*.nft") picks, in the same order.
func TestIncludeFilesAsGlob(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"20-vpn-passthrough.nft", "10-vpn-passthrough.nft", "vpn-passthrough.nft",
		".vpn-passthrough.nft", "vpn-passthrough-extra.nft", "vpn-passthrough.nft.tmp", "vpn-passthrough.conf",
		"vpn-passthroug.nft", "other.nft", "x.nftvpn-passthrough"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "30-vpn-passthrough.nft"), 0o755)
	want, _ := filepath.Glob(filepath.Join(dir, "*vpn-passthrough*.nft"))
	if got := includeFiles(dir); strings.Join(got, " ") != strings.Join(want, " ") || len(got) != 6 {
		t.Errorf("includeFiles = %q, want %q (6 names)", got, want)
	}
	if got := includeFiles(filepath.Join(dir, "absent")); got != nil {
		t.Errorf("absent folder: %q", got)
	}
}

// TestMarkFollowsTheOption: a configured mark reaches the plan, the engines'
// queues, the include file, and status warns while fw4's live chain still
// accepts another mark.
func TestMarkFollowsTheOption(t *testing.T) {
	c := userspaceConfig()
	c.Mark, c.MarkMask = 0x00100000, 0x00f00000
	r := newRig(t, c)
	dir := t.TempDir()
	shipped, _ := os.ReadFile("../../files/usr/share/nftables.d/chain-pre/forward/10-vpn-passthrough.nft")
	os.WriteFile(filepath.Join(dir, "10-vpn-passthrough.nft"), shipped, 0o644)
	r.d.opts.FW4IncludeDir = dir
	r.fw.fw4, r.fw.fw4Mark, r.fw.fw4Mask = true, config.DefaultMark, config.DefaultMarkMask
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	p := r.fw.current()
	if p.Mark != c.Mark || p.MarkMask != c.MarkMask {
		t.Errorf("plan mark %#x/%#x", p.Mark, p.MarkMask)
	}
	for _, q := range p.Queues {
		if q.Mark != c.Mark {
			t.Errorf("queue %s mark %#x", q.Engine, q.Mark)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "10-vpn-passthrough.nft")); !strings.Contains(string(got), "meta mark & 0x00f00000 == 0x00100000") {
		t.Errorf("include not rewritten:\n%s", got)
	}
	warned := func() bool {
		for _, w := range r.d.Status().Warnings {
			if strings.Contains(w, "accepts mark 0x05000000/0x0f000000, the engines use 0x00100000/0x00f00000") {
				return true
			}
		}
		return false
	}
	if !warned() {
		t.Errorf("no status warning while fw4 accepts the old mark: %v", r.d.Status().Warnings)
	}
	// fw4 reloads (and sends SIGHUP): the warning goes.
	r.fw.mu.Lock()
	r.fw.fw4Mark, r.fw.fw4Mask = c.Mark, c.MarkMask
	r.fw.mu.Unlock()
	if err := r.d.Reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if warned() {
		t.Errorf("warning stays after fw4 took the include")
	}
}
