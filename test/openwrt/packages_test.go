package openwrt

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// madePackages are packages a Makefile target builds for x86_64 (`make -s TARGET
// CROSS_ARCHES=x86_64 DIST=...`), once per run; TestMain removes the folder.
type madePackages struct {
	target string
	once   sync.Once
	dir    string
	err    error
}

var (
	ipks = &madePackages{target: "ipk"}
	apks = &madePackages{target: "apk"}
)

// files builds the packages if not yet done and returns one file for each glob (relative to
// DIST), failing t unless exactly one matches.
func (m *madePackages) files(t *testing.T, globs ...string) []string {
	t.Helper()
	m.once.Do(func() {
		m.dir, m.err = os.MkdirTemp("", "vpt-openwrt-"+m.target+"-")
		if m.err != nil {
			return
		}
		cmd := exec.Command("make", "-s", m.target, "CROSS_ARCHES=x86_64", "DIST="+m.dir)
		cmd.Dir = repoPath(t, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			m.err = fmt.Errorf("make %s: %v: %s", m.target, err, out)
		}
	})
	if m.err != nil {
		t.Fatal(m.err)
	}
	var out []string
	for _, g := range globs {
		ms, _ := filepath.Glob(filepath.Join(m.dir, g))
		if len(ms) != 1 {
			t.Fatalf("want one %s in %s, got %v", g, m.dir, ms)
		}
		out = append(out, ms[0])
	}
	return out
}

func (m *madePackages) remove() {
	if m.dir != "" {
		os.RemoveAll(m.dir)
	}
}

// packages are our two .ipk files: vpn-passthrough's and luci-app-vpn-passthrough's.
func packages(t *testing.T) (daemon, luci string) {
	f := ipks.files(t, "vpn-passthrough_*_x86_64.ipk", "luci-app-vpn-passthrough_*_all.ipk")
	return f[0], f[1]
}

// apkPackages are our two v3 packages from `make apk` (apk-tools' mkpkg, scripts from the
// packaging).
func apkPackages(t *testing.T) (daemon, luci string) {
	f := apks.files(t, "apk/x86_64/vpn-passthrough-*.apk", "apk/noarch/luci-app-vpn-passthrough-*.apk")
	return f[0], f[1]
}

// stage copies host files into the bed's folder dir and returns their paths in the bed.
func (b *Bed) stage(t *testing.T, dir string, files ...string) []string {
	t.Helper()
	var out []string
	for _, f := range files {
		p := dir + "/" + filepath.Base(f)
		if err := b.WriteFile(p, mustRead(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// startLiveRoot is a router bed as a package manager finds a router: fw4 running from its own
// rendering of the lab, none of our files installed yet.
func startLiveRoot(t *testing.T, withRpcd bool) *routerBed {
	t.Helper()
	r := startRouterBed(t, withRpcd)
	r.UninstallFiles(t)
	r.configureFW4(t)
	r.MustRun(t, "fw4", "-q", "restart")
	return r
}

// waitInstalled waits until procd runs the daemon and its table is applied after how.
func (r *routerBed) waitInstalled(t *testing.T, how string) {
	t.Helper()
	if err := WaitFor(20*time.Second, func() error {
		in, err := r.instance()
		if err == nil && !in.Running {
			err = fmt.Errorf("daemon not running after %s: %+v", how, in)
		}
		if err == nil { // running, and its table applied
			_, err = r.Run("", "nft", "list", "table", "inet", "vpn_passthrough")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// ours lists what of ours is in uci (firewall includes) and in the running ruleset.
func ours(r *routerBed) (uciLeft, nftLeft string) {
	uciLeft, _ = r.Sh("uci -q show firewall | grep -i vpn_passthrough; ls /etc/config/ | grep vpn-passthrough; true")
	nftLeft, _ = r.Sh("nft list ruleset | grep -i -e vpn-passthrough -e vpn_passthrough; true")
	return strings.TrimSpace(uciLeft), strings.TrimSpace(nftLeft)
}

// waitRemoved waits until nothing of ours is left in uci and the running ruleset after how
// (keptConf: /etc/config/vpn-passthrough may stay, as apk keeps a changed conffile), and
// returns the files of ours still in /usr, /etc and /www.
func (r *routerBed) waitRemoved(t *testing.T, how string, keptConf bool) []string {
	t.Helper()
	if err := WaitFor(20*time.Second, func() error {
		if u, n := ours(r); (u != "" && !(keptConf && u == "vpn-passthrough")) || n != "" {
			return fmt.Errorf("left after %s: uci %q, ruleset %q", how, u, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	left := r.MustSh(t, "find /usr /etc /www ! -type d \\( -name '*vpn-passthrough*' -o -name '*vpn_passthrough*' \\) -print; true")
	return strings.Fields(left)
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
