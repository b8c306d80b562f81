package openwrt

import (
	"os"
	"strings"
	"testing"
)

const opkgConf = `dest root /
arch all 1
arch noarch 1
arch x86_64 10
lists_dir ext /var/opkg-lists
option overlay_root /overlay
`

// opkgStatus marks our dependencies installed, as on a router that has them (the kernel
// modules are built in here; luci-base is the bed's real LuCI).
const opkgStatus = `Package: kmod-nft-core
Version: 6.1-1
Status: install user installed
Architecture: x86_64

Package: kmod-nft-queue
Version: 6.1-1
Status: install user installed
Architecture: x86_64

Package: kmod-nf-conntrack-netlink
Version: 6.1-1
Status: install user installed
Architecture: x86_64

Package: luci-base
Version: 23.05-1
Status: install user installed
Architecture: all

`

// opkg on a live root inside the bed (in the lab router, real fw4 running): install runs our
// uci-defaults through default_postinst (fw4 reloads with our include, procd starts the daemon);
// remove leaves nothing of ours in uci or the running ruleset; a reinstall over an edited
// conffile keeps the edit.
func TestOpkgLiveRoot(t *testing.T) {
	d, l := packages(t)
	r := startLiveRoot(t, true)
	r.WriteFile("/etc/opkg.conf", opkgConf, 0o644)
	r.WriteFile("/usr/lib/opkg/status", opkgStatus, 0o644)
	r.MustSh(t, "mkdir -p /usr/lib/opkg/info && for p in kmod-nft-core kmod-nft-queue kmod-nf-conntrack-netlink luci-base; do : > /usr/lib/opkg/info/$p.list; done")
	staged := r.stage(t, "/tmp/pkg", d, l)
	pd, pl := staged[0], staged[1]

	out := r.MustSh(t, "opkg install "+pd+" "+pl+" 2>&1")
	t.Logf("opkg install:\n%s", out)
	r.waitInstalled(t, "install")
	u, n := ours(r)
	t.Logf("after install, uci:\n%s\nruleset:\n%s", u, n)
	if !strings.Contains(u, "firewall.vpn_passthrough.path=") {
		t.Fatalf("postinst did not run our uci-defaults: %q", u)
	}
	fwd := r.MustRun(t, "nft", "list", "chain", "inet", "fw4", "forward")
	if strings.Count(fwd, "vpn-passthrough: accepted by userspace engine") != 1 {
		t.Fatalf("fw4's forward chain does not hold our mark accept once:\n%s", fwd)
	}
	if _, err := r.Run("", "nft", "list", "table", "inet", "vpn_passthrough"); err != nil {
		t.Fatalf("the daemon's table is missing after install: %v", err)
	}

	out = r.MustSh(t, "opkg remove luci-app-vpn-passthrough vpn-passthrough 2>&1")
	t.Logf("opkg remove:\n%s", out)
	if left := r.waitRemoved(t, "remove", false); len(left) > 0 {
		t.Fatalf("files left after remove: %s", left)
	}
	t.Log("after remove: nothing of ours in uci, the ruleset or the file system")

	// Reinstall, edit the conffile, reinstall over it.
	r.MustSh(t, "opkg install "+pd+" >/dev/null 2>&1")
	r.MustSh(t, "uci set vpn-passthrough.l2tp.enabled=0 && uci commit vpn-passthrough")
	out = r.MustSh(t, "opkg install --force-reinstall "+pd+" 2>&1")
	t.Logf("reinstall over the edited conffile:\n%s", out)
	if got := strings.TrimSpace(r.MustRun(t, "uci", "get", "vpn-passthrough.l2tp.enabled")); got != "0" {
		t.Fatalf("the edit to /etc/config/vpn-passthrough was lost on reinstall: l2tp.enabled=%q", got)
	}
	t.Log("reinstall kept the edited conffile (l2tp.enabled=0)")
	r.MustSh(t, "opkg remove vpn-passthrough >/dev/null 2>&1")
}

// opkg on an offline image root (IPKG_INSTROOT): the files land in the image, scripts run with
// --force-postinstall without touching the running system, and remove takes everything out.
// (Empty folders stay: opkg's file lists hold no directories, for every OpenWrt package.)
func TestOpkgOfflineRoot(t *testing.T) {
	d, l := packages(t)
	b := Start(t, Options{})
	staged := b.stage(t, "/tmp/pkg", d, l)
	img := "/tmp/img"
	// An image root as OpenWrt lays it out (/var -> tmp), with the base-files and libubox shell
	// libraries the maintainer scripts source from $IPKG_INSTROOT.
	b.MustSh(t, "mkdir -p "+img+"/tmp/lock "+img+"/etc/config "+img+"/usr/lib/opkg/info "+img+"/lib "+img+"/usr/share "+
		img+"/etc/init.d "+img+"/etc/rc.d && ln -s tmp "+img+"/var && "+
		"cp -a /etc/config/firewall "+img+"/etc/config/ && cp -a /lib/functions.sh /lib/functions "+img+"/lib/ && "+
		"cp -a /usr/share/libubox "+img+"/usr/share/ && cp /etc/rc.common "+img+"/etc/rc.common && "+
		"for p in kmod-nft-core kmod-nft-queue kmod-nf-conntrack-netlink luci-base; do : > "+img+"/usr/lib/opkg/info/$p.list; done")
	b.WriteFile(img+"/etc/opkg.conf", opkgConf, 0o644)
	b.WriteFile(img+"/usr/lib/opkg/status", opkgStatus, 0o644)
	env := "IPKG_INSTROOT=" + img + " opkg -o " + img + " -f " + img + "/etc/opkg.conf --force-postinstall "
	out := b.MustSh(t, env+"install "+strings.Join(staged, " ")+" 2>&1")
	t.Logf("offline install:\n%s", out)
	for _, p := range []string{"/usr/bin/vpn-passthrough", "/etc/config/vpn-passthrough", "/etc/uci-defaults/vpn-passthrough",
		"/usr/share/luci/menu.d/luci-app-vpn-passthrough.json"} {
		if _, err := os.Stat(b.Path(img + p)); err != nil {
			t.Errorf("offline install: %v", err)
		}
		if _, err := os.Stat(b.Path(p)); err == nil {
			t.Errorf("offline install wrote %s into the running system", p)
		}
	}
	if _, err := os.Stat(b.Path(img + "/etc/rc.d/S25vpn-passthrough")); err != nil {
		t.Errorf("default_postinst did not enable the service in the image: %v", err)
	}
	out = b.MustSh(t, env+"remove luci-app-vpn-passthrough vpn-passthrough 2>&1")
	t.Logf("offline remove:\n%s", out)
	left := b.MustSh(t, "cd "+img+" && find . -path ./tmp -prune -o ! -type d \\( -name '*vpn-passthrough*' -o -name '*vpn_passthrough*' \\) -print; grep -i vpn_passthrough etc/config/firewall; true")
	if strings.TrimSpace(left) != "" {
		t.Fatalf("left in the image after remove:\n%s", left)
	}
	t.Log("offline remove: nothing of ours left in the image")
}
