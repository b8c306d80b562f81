package openwrt

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// apk-tools v3 on a live root in the bed (lab router, real fw4 and procd): our two packages from
// `make apk`, proven v3 by the ADB magic and real `apk adbdump`; `apk add --allow-untrusted` runs
// their post-install (uci-defaults, fw4 reload with our include, procd starts the daemon); `apk
// del` leaves nothing of ours in uci, the ruleset or the file system.
func TestAPKLiveRoot(t *testing.T) {
	pd, pl := apkPackages(t)
	r := startLiveRoot(t, false)
	stage := "/tmp/apk-stage"
	pkgs := r.stage(t, stage, pd, pl)
	r.WriteFile("/etc/apk/arch", "x86_64\n", 0o644)

	// What our packages depend on, as empty stand-in packages (the kernel modules are built in
	// here; luci-base is the bed's real LuCI).
	var stubs []string
	for _, d := range [][2]string{{"kmod-nft-core", "x86_64"}, {"kmod-nft-queue", "x86_64"}, {"kmod-nf-conntrack-netlink", "x86_64"}, {"luci-base", "noarch"}} {
		out := fmt.Sprintf("%s/%s.apk", stage, d[0])
		r.MustSh(t, fmt.Sprintf("apk mkpkg --info name:%s --info version:1.0.0-r1 --info arch:%s --info 'description:stand-in for %s' --output %s",
			d[0], d[1], d[0], out))
		stubs = append(stubs, out)
	}
	pkg := pkgs[0]
	dump := r.MustRun(t, "apk", "adbdump", pkg)
	raw, err := os.ReadFile(r.Path(pkg))
	if err != nil {
		t.Fatal(err)
	}
	if string(raw[:3]) != "ADB" {
		t.Fatalf("%s does not start with apk v3's ADB magic: %q", pkg, raw[:8])
	}
	for _, want := range []string{"name: vpn-passthrough", "post-install:", "usr/bin"} {
		if !strings.Contains(dump, want) {
			t.Fatalf("apk adbdump lacks %q:\n%s", want, dump)
		}
	}
	t.Logf("apk adbdump %s (head):\n%s", filepath.Base(pkg), lastLines(strings.Join(strings.SplitN(dump, "\n", 25)[:24], "\n"), 24))

	// apk refuses a package from outside a repository on a root it sees as volatile (tmpfs here).
	apk := "apk --root / --allow-untrusted --no-network --no-cache --force-non-repository "
	out := r.MustSh(t, apk+"add --initdb "+strings.Join(stubs, " ")+" "+strings.Join(pkgs, " ")+" 2>&1")
	t.Logf("apk add:\n%s", out)
	if !strings.Contains(out, "Executing vpn-passthrough-") || !strings.Contains(out, ".post-install") {
		t.Fatalf("post-install did not run:\n%s", out)
	}
	r.waitInstalled(t, "apk add")
	u, n := ours(r)
	if !strings.Contains(u, "firewall.vpn_passthrough.path=") || !strings.Contains(n, "accepted by userspace engine") || !strings.Contains(n, "table inet vpn_passthrough") {
		t.Fatalf("after apk add: uci %q, ruleset %q", u, n)
	}
	t.Log("after apk add: uci-defaults ran, fw4 holds our include, procd runs the daemon")

	out = r.MustSh(t, apk+"del luci-app-vpn-passthrough vpn-passthrough 2>&1")
	t.Logf("apk del:\n%s", out)
	left := r.waitRemoved(t, "apk del", true)
	t.Logf("after apk del, files of ours: %q", left)
	for _, l := range left {
		if l != "/etc/config/vpn-passthrough" && !strings.HasSuffix(l, ".apk-new") {
			t.Fatalf("apk del left %s", l)
		}
	}
}
