package openwrt

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// apkScripts are the maintainer scripts OpenWrt 25.12's apk packages carry for a package like
// ours (package-pack.mk: default_postinst / our prerm then default_prerm).
const apkPostInstall = `#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname=vpn-passthrough
default_postinst
`

const apkPreDeinstall = `#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname=vpn-passthrough
[ -n "${IPKG_INSTROOT}" ] || . /usr/share/vpn-passthrough/uninstall.sh
default_prerm
`

// apk-tools v3 on a live root in the bed: a v3 package of the daemon (written with real
// `apk mkpkg` from files/ and the binary, since `make apk` is another branch's), proven by
// `apk adbdump`; `apk add --allow-untrusted` runs post-install (uci-defaults, fw4 reload, procd
// starts the daemon); `apk del` leaves nothing of ours in uci, the ruleset or the file system.
func TestAPKLiveRoot(t *testing.T) {
	r := startRouterBed(t, false)
	r.configureFW4(t)
	r.MustRun(t, "fw4", "-q", "restart")

	// The package tree, staged inside the bed; the installed copies InstallFiles made go away.
	stage := "/tmp/apk-stage"
	r.MustSh(t, "mkdir -p "+stage+" && cp -a /usr/share/vpn-passthrough "+stage+"/ && "+
		"mkdir -p "+stage+"/root/usr/share "+stage+"/root/etc/config "+stage+"/root/etc/init.d "+stage+"/root/etc/uci-defaults "+
		stage+"/root/etc/capabilities "+stage+"/root/usr/bin "+stage+"/root/usr/share/nftables.d/chain-pre/forward "+stage+"/root/lib/apk/packages && "+
		"cd "+stage+"/root && mv ../vpn-passthrough usr/share/ && "+
		"mv /etc/config/vpn-passthrough etc/config/ && mv /etc/init.d/vpn-passthrough etc/init.d/ && "+
		"mv /etc/uci-defaults/vpn-passthrough etc/uci-defaults/ && mv /etc/capabilities/vpn-passthrough.json etc/capabilities/ && mv /usr/bin/vpn-passthrough usr/bin/ && "+
		"mv /usr/share/nftables.d/chain-pre/forward/10-vpn-passthrough.nft usr/share/nftables.d/chain-pre/forward/ && "+
		"rm -rf /usr/share/vpn-passthrough && "+
		"rm -rf /usr/share/luci/menu.d/luci-app-vpn-passthrough.json /usr/share/rpcd/acl.d/luci-app-vpn-passthrough.json /www/luci-static/resources/view/vpn-passthrough /www/luci-static/resources/view/status/include/70_vpn-passthrough.js && "+
		"find . ! -type d | sed 's,^\\.,,' | sort > lib/apk/packages/vpn-passthrough.list && "+
		"echo /etc/config/vpn-passthrough > lib/apk/packages/vpn-passthrough.conffiles")
	r.WriteFile(stage+"/post-install", apkPostInstall, 0o755)
	r.WriteFile(stage+"/pre-deinstall", apkPreDeinstall, 0o755)
	r.WriteFile("/etc/apk/arch", "x86_64\n", 0o644)

	mk := func(name, arch, deps, extra string) string {
		out := fmt.Sprintf("%s/%s.apk", stage, name)
		cmd := fmt.Sprintf("apk mkpkg --info name:%s --info version:1.0.0-r1 --info arch:%s --info 'description:%s' %s --output %s",
			name, arch, name, extra, out)
		if deps != "" {
			cmd += " --info 'depends:" + deps + "'"
		}
		r.MustSh(t, cmd)
		return out
	}
	deps := []string{"kmod-nft-core", "kmod-nft-queue", "kmod-nf-conntrack-netlink"}
	var stubs []string
	for _, d := range deps {
		stubs = append(stubs, mk(d, "x86_64", "", ""))
	}
	pkg := mk("vpn-passthrough", "x86_64", strings.Join(deps, " "),
		"--files "+stage+"/root --script post-install:"+stage+"/post-install --script pre-deinstall:"+stage+"/pre-deinstall")

	dump := r.MustRun(t, "apk", "adbdump", pkg)
	raw, err := os.ReadFile(r.Path(pkg))
	if err != nil {
		t.Fatal(err)
	}
	if string(raw[:3]) != "ADB" {
		t.Fatalf("%s does not start with apk v3's ADB magic: %q", pkg, raw[:8])
	}
	for _, want := range []string{"name: vpn-passthrough", "post-install:", "pre-deinstall:", "name: vpn-passthrough", "usr/bin"} {
		if !strings.Contains(dump, want) {
			t.Fatalf("apk adbdump lacks %q:\n%s", want, dump)
		}
	}
	t.Logf("apk adbdump %s (head):\n%s", filepath.Base(pkg), lastLines(strings.Join(strings.SplitN(dump, "\n", 25)[:24], "\n"), 24))

	// apk refuses a package from outside a repository on a root it sees as volatile (tmpfs here).
	apk := "apk --root / --allow-untrusted --no-network --no-cache --force-non-repository "
	out := r.MustSh(t, apk+"add --initdb "+strings.Join(stubs, " ")+" "+pkg+" 2>&1")
	t.Logf("apk add:\n%s", out)
	if !strings.Contains(out, "vpn-passthrough-1.0.0-r1.post-install") {
		t.Fatalf("post-install did not run:\n%s", out)
	}
	if err := WaitFor(20*time.Second, func() error {
		in, err := r.instance()
		if err == nil && !in.Running {
			err = fmt.Errorf("daemon not running after apk add: %+v", in)
		}
		if err == nil {
			_, err = r.Run("", "nft", "list", "table", "inet", "vpn_passthrough")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	u, n := ours(r)
	if !strings.Contains(u, "firewall.vpn_passthrough.path=") || !strings.Contains(n, "accepted by userspace engine") || !strings.Contains(n, "table inet vpn_passthrough") {
		t.Fatalf("after apk add: uci %q, ruleset %q", u, n)
	}
	t.Log("after apk add: uci-defaults ran, fw4 holds our include, procd runs the daemon")

	out = r.MustSh(t, apk+"del vpn-passthrough 2>&1")
	t.Logf("apk del:\n%s", out)
	if err := WaitFor(20*time.Second, func() error {
		if u, n := ours(r); u != "" && u != "vpn-passthrough" || n != "" {
			return fmt.Errorf("left after apk del: uci %q, ruleset %q", u, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	left := r.MustSh(t, "find /usr /etc /www ! -type d \\( -name '*vpn-passthrough*' -o -name '*vpn_passthrough*' \\) -print; true")
	t.Logf("after apk del, files of ours: %q", strings.TrimSpace(left))
	for _, l := range strings.Fields(left) {
		if l != "/etc/config/vpn-passthrough" && !strings.HasSuffix(l, ".apk-new") {
			t.Fatalf("apk del left %s", l)
		}
	}
}
