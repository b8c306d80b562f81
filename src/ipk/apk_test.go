package ipk

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// apkTool is apk-tools v3 (make test-pkg passes the one test/openwrt
// builds); tests that need it skip without it, except under CI.
func apkTool(t *testing.T) string {
	t.Helper()
	a := os.Getenv("VPNPT_APK")
	if a == "" {
		// make test-pkg passes both; with the packages but no apk-tools
		// the run is broken, not merely partial.
		if os.Getenv("CI") == "true" && os.Getenv("VPNPT_DIST") != "" {
			t.Fatal("VPNPT_APK (apk-tools v3) is not set: run `make test-pkg`")
		}
		t.Skip("VPNPT_APK not set: `make test-pkg` runs this with apk-tools v3 from test/openwrt/build.sh")
	}
	return a
}

func TestAPKStage(t *testing.T) {
	p := samplePackage()
	p.Control.Version = "0.1.7-r1"
	p.PrermPkg = "#!/bin/sh\necho bye\n"
	p.PostinstPkg = "#!/bin/sh\necho hi\n"
	dir := t.TempDir()
	args, err := p.StageAPK(dir)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(args, "\x00")
	for _, want := range []string{"name:vpn-passthrough", "version:0.1.7-r1", "arch:mips_24kc",
		"depends:kmod-nft-core kmod-nft-queue", "recommends:kmod-nf-nathelper-extra", "provides:vpn-passthrough-any",
		"description:One line. Second line. After a blank."} {
		if !strings.Contains("\x00"+joined+"\x00", "\x00"+want+"\x00") {
			t.Errorf("mkpkg args lack --info %q: %q", want, args)
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sum := sha256.Sum256([]byte("config globals 'globals'\n"))
	if got, want := read("files/lib/apk/packages/vpn-passthrough.conffiles_static"), "/etc/config/vpn-passthrough "+hex.EncodeToString(sum[:])+"\n"; got != want {
		t.Errorf("conffiles_static %q, want %q", got, want)
	}
	if got := read("files/lib/apk/packages/vpn-passthrough.conffiles"); got != "/etc/config/vpn-passthrough\n" {
		t.Errorf("conffiles %q", got)
	}
	if got, want := read("files/lib/apk/packages/vpn-passthrough.list"), "/etc/config/vpn-passthrough\n/etc/init.d/vpn-passthrough\n/usr/bin-x/a\n/usr/bin/vpn-passthrough\n"; got != want {
		t.Errorf(".list %q, want %q", got, want)
	}
	post := read("scripts/post-install")
	for _, want := range []string{"export pkgname=\"vpn-passthrough\"\n", "add_group_and_user\ndefault_postinst\necho hi\n"} {
		if !strings.Contains(post, want) {
			t.Errorf("post-install lacks %q:\n%s", want, post)
		}
	}
	if up := read("scripts/post-upgrade"); up != "#!/bin/sh\nexport PKG_UPGRADE=1\n"+strings.TrimPrefix(post, "#!/bin/sh\n") {
		t.Errorf("post-upgrade is not PKG_UPGRADE=1 + post-install:\n%s", up)
	}
	if pre := read("scripts/pre-deinstall"); !strings.HasSuffix(pre, "default_prerm\necho bye\n") || strings.Count(pre, "#!") != 1 {
		t.Errorf("pre-deinstall:\n%s", pre)
	}
	if info, err := os.Stat(filepath.Join(dir, "files/etc/config/vpn-passthrough")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("staged config mode %v (%v)", info.Mode(), err)
	}
	all := &Package{Control: Control{Package: "x", Version: "1.0.0-r1", Architecture: "all", Description: "d"}}
	if all.APKArch() != "noarch" || all.APKFileName() != "x-1.0.0-r1.apk" {
		t.Errorf("arch %s file %s", all.APKArch(), all.APKFileName())
	}
	for _, v := range []string{"0.1.0", "0.1-r1", "0.1.0-1", "v0.1.0-r1", "0.1.0-r1a"} {
		if CheckAPKVersion(v) == nil {
			t.Errorf("CheckAPKVersion(%q) accepted it", v)
		}
	}
}

// adbDump is what `apk adbdump` prints about a package.
type adbDump struct {
	info    map[string]string
	lists   map[string][]string // depends, provides, recommends
	files   map[string]adbFile  // absolute path -> file
	scripts map[string]string
}

type adbFile struct{ mode, user, group, hash string }

// parseADBDump reads adbdump's YAML-like text (the subset it prints for a
// package: info, paths with files, scripts).
func parseADBDump(text string) (*adbDump, error) {
	d := &adbDump{info: map[string]string{}, lists: map[string][]string{}, files: map[string]adbFile{}, scripts: map[string]string{}}
	section, list, dir, script := "", "", "", ""
	var file *adbFile
	var fileName string
	flush := func() {
		if file != nil {
			d.files[path.Join("/", dir, fileName)] = *file
			file = nil
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		body := strings.TrimSpace(line)
		if indent == 0 {
			flush()
			section, _, _ = strings.Cut(body, ":")
			continue
		}
		switch section {
		case "info":
			if indent == 2 {
				k, v, _ := strings.Cut(body, ": ")
				switch {
				case strings.HasPrefix(v, "#"):
					list = k
				case v == "|": // a long string, on the lines that follow
					list = k
					d.info[k] = ""
				default:
					d.info[k] = v
				}
			} else if _, block := d.info[list]; block {
				d.info[list] = strings.TrimSpace(d.info[list] + " " + body)
			} else if strings.HasPrefix(body, "- ") {
				d.lists[list] = append(d.lists[list], strings.TrimPrefix(body, "- "))
			}
		case "paths":
			switch {
			case indent == 2:
				flush()
				dir = ""
				if n, ok := strings.CutPrefix(body, "- name: "); ok {
					dir = n
				}
			case indent == 6 && strings.HasPrefix(body, "- name: "):
				flush()
				fileName = strings.TrimPrefix(body, "- name: ")
				file = &adbFile{}
			case file != nil && indent == 10:
				k, v, _ := strings.Cut(body, ": ")
				switch k {
				case "mode":
					file.mode = v
				case "user":
					file.user = v
				case "group":
					file.group = v
				}
			case file != nil && indent == 8 && strings.HasPrefix(body, "hash: "):
				file.hash = strings.TrimPrefix(body, "hash: ")
			}
		case "scripts":
			if indent == 2 {
				script, _, _ = strings.Cut(body, ":")
			} else if indent >= 4 {
				d.scripts[script] += line[4:] + "\n"
			}
		}
	}
	flush()
	if d.info["name"] == "" {
		return nil, fmt.Errorf("adbdump: no info/name in:\n%s", text)
	}
	return d, nil
}

func adbdump(t *testing.T, apk, file string) *adbDump {
	t.Helper()
	out, err := exec.Command(apk, "adbdump", file).CombinedOutput()
	if err != nil {
		t.Fatalf("apk adbdump %s: %v\n%s", file, err, out)
	}
	d, err := parseADBDump(string(out))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// packageOf rebuilds the Package an .ipk was written from, so a test can
// derive what the matching .apk must hold.
func packageOf(t *testing.T, u *Unpacked) *Package {
	t.Helper()
	ctl, _ := Find(u.Control, "control")
	f, err := ParseControl(string(ctl.Data))
	if err != nil {
		t.Fatal(err)
	}
	split := func(s string) []string {
		var out []string
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
		return out
	}
	p := &Package{Control: Control{Package: f["Package"], Version: f["Version"], Depends: split(f["Depends"]),
		Suggests: split(f["Suggests"]), Source: f["Source"], SourceName: f["SourceName"], License: f["License"],
		Section: f["Section"], URL: f["URL"], Maintainer: f["Maintainer"], Architecture: f["Architecture"],
		Description: f["Description"]}}
	for _, e := range u.Data {
		if e.Typeflag == '0' {
			p.Files = append(p.Files, File{Path: strings.TrimPrefix(e.Name, "."), Mode: os.FileMode(e.Mode), Data: e.Data})
		}
	}
	if e, ok := Find(u.Control, "conffiles"); ok {
		p.Conffiles = strings.Fields(string(e.Data))
	}
	if e, ok := Find(u.Control, "postinst-pkg"); ok {
		p.PostinstPkg = string(e.Data)
	}
	if e, ok := Find(u.Control, "prerm-pkg"); ok {
		p.PrermPkg = string(e.Data)
	}
	return p
}

// TestDistAPK: every .apk of `make apk`, read back by apk-tools itself,
// says what the .ipk of the same architecture says and holds the same
// files with the same modes and contents, plus OpenWrt's apk lists and
// scripts.
func TestDistAPK(t *testing.T) {
	dist := distDir(t)
	apk := apkTool(t)
	version := os.Getenv("VPNPT_VERSION")
	type pkg struct{ name, arch, apkArch string }
	var pkgs []pkg
	for _, tg := range targets {
		pkgs = append(pkgs, pkg{"vpn-passthrough", tg.arch, tg.arch})
	}
	pkgs = append(pkgs, pkg{"luci-app-vpn-passthrough", "all", "noarch"})
	for _, pk := range pkgs {
		t.Run(pk.apkArch, func(t *testing.T) {
			_, u := readIPK(t, dist, pk.name+"_*_"+pk.arch+".ipk")
			want := packageOf(t, u)
			file := filepath.Join(dist, "apk", pk.apkArch, want.APKFileName())
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) > maxIPK {
				t.Errorf("%s: %d bytes, over the %d-byte target", file, len(raw), maxIPK)
			}
			if !bytes.HasPrefix(raw, []byte("ADB")) {
				t.Errorf("%s does not start with apk v3's ADB magic: %q", file, raw[:8])
			}
			d := adbdump(t, apk, file)
			c := want.Control
			for k, w := range map[string]string{"name": c.Package, "version": version, "arch": pk.apkArch,
				"license": c.License, "maintainer": c.Maintainer, "url": c.URL, "origin": c.Source,
				"description": strings.Join(strings.Fields(c.Description), " ")} {
				if d.info[k] != w || w == "" {
					t.Errorf("info %s = %q, want %q", k, d.info[k], w)
				}
			}
			// apk stores dependencies sorted.
			if !slices.Equal(d.lists["depends"], slices.Sorted(slices.Values(c.Depends))) || !slices.Equal(d.lists["recommends"], slices.Sorted(slices.Values(c.Suggests))) ||
				!slices.Equal(d.lists["provides"], []string{c.Package + "-any"}) {
				t.Errorf("depends %v recommends %v provides %v; ipk Depends %v Suggests %v", d.lists["depends"], d.lists["recommends"], d.lists["provides"], c.Depends, c.Suggests)
			}
			wantFiles := want.APKFiles()
			for _, f := range wantFiles {
				sum := sha256.Sum256(f.Data)
				got, ok := d.files[f.Path]
				if !ok || got.mode != fmt.Sprintf("%04o", f.Mode) || got.hash != hex.EncodeToString(sum[:]) || got.user != "root" || got.group != "root" {
					t.Errorf("%s: apk has %+v (present %v), want mode %04o, root:root, sha256 %x", f.Path, got, ok, f.Mode, sum)
				}
			}
			if len(d.files) != len(wantFiles) {
				t.Errorf("apk holds %d files, want %d (the .ipk's data plus /lib/apk/packages lists)", len(d.files), len(wantFiles))
			}
			for name, s := range want.apkScripts() {
				if d.scripts[name] != s {
					t.Errorf("script %s: %q, want %q", name, d.scripts[name], s)
				}
			}
			if len(d.scripts) != 3 {
				t.Errorf("scripts %v, want post-install, post-upgrade, pre-deinstall", slices.Collect(mapKeys(d.scripts)))
			}
		})
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestAPKVersionOrder: apk-tools (and opkg, where the OpenWrt builder made
// it next to apk) sort this scheme's versions as commits follow each other,
// and above the older <base>-r<commits> scheme.
func TestAPKVersionOrder(t *testing.T) {
	apk := apkTool(t)
	pairs := [][2]string{{"0.1.79-r1", "0.1.80-r1"}, {"0.1.9-r1", "0.1.10-r1"}, {"0.1.99-r1", "0.1.100-r1"},
		{"0.1.0-r78", "0.1.79-r1"}, {"0.1.0-r500", "0.1.79-r1"}, {"0.1.80-r1", "0.1.80-r2"}, {"0.1.200-r9", "0.2.201-r1"}}
	conf := filepath.Join(t.TempDir(), "opkg.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opkg := filepath.Join(filepath.Dir(apk), "opkg")
	if _, err := os.Stat(opkg); err != nil {
		opkg = ""
	}
	for _, p := range pairs {
		out, err := exec.Command(apk, "version", "-t", p[0], p[1]).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "<" {
			t.Errorf("apk version -t %s %s = %q (%v), want <", p[0], p[1], out, err)
		}
		if opkg != "" {
			cmd := exec.Command(opkg, "-f", conf, "compare-versions", p[0], "<<", p[1])
			cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(filepath.Dir(apk), "..", "lib"))
			if err := cmd.Run(); err != nil {
				t.Errorf("opkg compare-versions %s << %s: %v", p[0], p[1], err)
			}
		}
	}
	if version := os.Getenv("VPNPT_VERSION"); version != "" {
		if err := CheckAPKVersion(version); err != nil {
			t.Error(err)
		}
	}
}

// apkRoot is a scratch OpenWrt-like root for apk: static busybox as the
// shell and applets, OpenWrt's rc.common and functions.sh from the
// userland builder's root (next to the apk binary), x86_64 as its arch.
// apk runs the maintainer scripts chrooted into it (root only).
func apkRoot(t *testing.T, apk string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("apk runs maintainer scripts in a chroot: run as root")
		}
		t.Skip("not root: apk cannot chroot to run maintainer scripts")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("no busybox (apt-get install busybox-static): the scratch root needs a static shell")
	}
	if ef, err := elf.Open(bb); err != nil || slices.ContainsFunc(ef.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
		t.Fatalf("%s is not a static busybox (apt-get install busybox-static)", bb)
	}
	r := t.TempDir()
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/lib/functions", "usr/lib/config", "lib64", "etc/apk", "etc/rc.d", "etc/config", "tmp", "var/lock"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/lib", filepath.Join(r, "lib")); err != nil {
		t.Fatal(err)
	}
	userland, err := filepath.EvalSymlinks(filepath.Join(filepath.Dir(apk), "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{bb: "bin/busybox", filepath.Join(userland, "etc/rc.common"): "etc/rc.common",
		filepath.Join(userland, "usr/lib/functions.sh"):         "usr/lib/functions.sh",
		filepath.Join(userland, "usr/lib/functions/procd.sh"):   "usr/lib/functions/procd.sh",
		filepath.Join(userland, "usr/lib/functions/service.sh"): "usr/lib/functions/service.sh",
		filepath.Join(userland, "usr/lib/config/uci.sh"):        "usr/lib/config/uci.sh"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("scratch root: %v", err)
		}
		if err := os.WriteFile(filepath.Join(r, dst), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// uci and jshn (rc.common sources jshn.sh) from the builder, with the
	// shared libraries they load, where the loader looks.
	if err := os.MkdirAll(filepath.Join(r, "usr/share/libubox"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(userland, "usr/share/libubox/jshn.sh"), filepath.Join(r, "usr/share/libubox/jshn.sh"))
	for _, bin := range []string{"uci", "jshn"} {
		src := filepath.Join(userland, "usr/bin", bin)
		copyFile(t, src, filepath.Join(r, "usr/bin", bin))
		ldd := exec.Command("ldd", src)
		ldd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(userland, "usr/lib"))
		out, err := ldd.Output()
		if err != nil {
			t.Fatalf("ldd %s: %v", src, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(strings.TrimSpace(l))
			lib := ""
			if len(f) >= 3 && f[1] == "=>" {
				lib = f[2]
			} else if len(f) == 2 && strings.HasPrefix(f[0], "/") {
				lib = f[0]
			}
			if lib == "" {
				continue
			}
			dst := filepath.Join(r, lib)
			if strings.HasPrefix(lib, userland) || strings.HasPrefix(lib, filepath.Clean(userland)) {
				dst = filepath.Join(r, "usr/lib", filepath.Base(lib))
			}
			copyFile(t, lib, dst)
		}
	}
	if out, err := exec.Command("chroot", r, "/bin/busybox", "--install", "-s").CombinedOutput(); err != nil {
		t.Fatalf("busybox --install: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(r, "etc/apk/arch"), []byte("x86_64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

func runAPK(t *testing.T, apk, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command(apk, append([]string{"--root", root, "--allow-untrusted", "--no-network", "--no-cache"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("apk %v: %v\n%s", args, err, out)
	}
	t.Logf("apk %v:\n%s", args, out)
	return string(out)
}

// TestAPKInstall installs the x86_64 .apk with real apk-tools into a
// scratch root, scripts running; upgrades it over an edited conffile;
// removes it.
func TestAPKInstall(t *testing.T) {
	dist := distDir(t)
	apk := apkTool(t)
	root := apkRoot(t, apk)
	_, u := readIPK(t, dist, "vpn-passthrough_*_x86_64.ipk")
	p := packageOf(t, u)
	file := filepath.Join(dist, "apk", "x86_64", p.APKFileName())

	// The kmods it depends on, as empty packages.
	stubs := t.TempDir()
	var args []string
	for _, d := range p.Control.Depends {
		s := &Package{Control: Control{Package: d, Version: "1.0.0-r1", Architecture: "x86_64", Description: "stand-in for " + d}}
		f, err := s.WriteAPK(apk, stubs)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
	}
	out := runAPK(t, apk, root, append([]string{"add", "--initdb"}, append(args, file)...)...)
	if !strings.Contains(out, "Executing "+p.Control.Package+"-"+p.Control.Version+".post-install") {
		t.Errorf("post-install did not run")
	}
	at := func(p string) string { return filepath.Join(root, p) }
	// post-install = default_postinst: ran uci-defaults (which removed
	// itself: no fw4 here) and enabled the init script.
	if _, err := os.Stat(at("etc/uci-defaults/vpn-passthrough")); !os.IsNotExist(err) {
		t.Errorf("uci-defaults script still there (%v): default_postinst did not run it", err)
	}
	for _, l := range []string{"etc/rc.d/S25vpn-passthrough", "etc/rc.d/K10vpn-passthrough"} {
		if target, err := os.Readlink(at(l)); err != nil || target != "../init.d/vpn-passthrough" {
			t.Errorf("%s -> %q (%v): the init script was not enabled", l, target, err)
		}
	}
	if info, err := os.Stat(at("etc/config/vpn-passthrough")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v (%v)", info.Mode(), err)
	}
	if b, err := exec.Command("chroot", root, "/usr/bin/vpn-passthrough", "--version").Output(); err != nil || string(b) != "vpn-passthrough "+p.Control.Version+"\n" {
		t.Errorf("installed binary --version: %q %v", b, err)
	}

	// The LuCI app on top (noarch), its luci-base stood in for.
	lb := &Package{Control: Control{Package: "luci-base", Version: "1.0.0-r1", Architecture: "all", Description: "stand-in"}}
	lbf, err := lb.WriteAPK(apk, stubs)
	if err != nil {
		t.Fatal(err)
	}
	_, lu := readIPK(t, dist, "luci-app-vpn-passthrough_*_all.ipk")
	luci := packageOf(t, lu)
	out = runAPK(t, apk, root, "add", lbf, filepath.Join(dist, "apk", "noarch", luci.APKFileName()))
	if !strings.Contains(out, "Executing "+luci.Control.Package+"-"+luci.Control.Version+".post-install") {
		t.Errorf("luci post-install did not run")
	}
	if _, err := os.Stat(at("usr/share/rpcd/acl.d/luci-app-vpn-passthrough.json")); err != nil {
		t.Errorf("luci app not installed: %v", err)
	}
	runAPK(t, apk, root, "del", luci.Control.Package)
	if _, err := os.Stat(at("usr/share/rpcd/acl.d/luci-app-vpn-passthrough.json")); !os.IsNotExist(err) {
		t.Errorf("luci app files still there after apk del (%v)", err)
	}

	// Upgrade over an edited config: the next version, whose default
	// config differs. apk keeps the edit and puts the new file beside it.
	cfg := at("etc/config/vpn-passthrough")
	orig, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	edited := append(slices.Clone(orig), "\nconfig pptp 'edited_by_user'\n"...)
	if err := os.WriteFile(cfg, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	next := packageOf(t, u)
	base, rel, _ := strings.Cut(p.Control.Version, "-r")
	i := strings.LastIndex(base, ".")
	var n int
	fmt.Sscan(base[i+1:], &n)
	next.Control.Version = fmt.Sprintf("%s.%d-r%s", base[:i], n+1, rel)
	newDefault := append(slices.Clone(orig), "\n# a new default\n"...)
	for j := range next.Files {
		if next.Files[j].Path == "/etc/config/vpn-passthrough" {
			next.Files[j].Data = newDefault
		}
	}
	nf, err := next.WriteAPK(apk, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out = runAPK(t, apk, root, "add", nf)
	if !strings.Contains(out, "Executing vpn-passthrough-"+next.Control.Version+".post-upgrade") {
		t.Errorf("post-upgrade did not run")
	}
	if b, _ := os.ReadFile(cfg); !bytes.Equal(b, edited) {
		t.Errorf("upgrade replaced the edited config:\n%s", b)
	}
	if b, err := os.ReadFile(cfg + ".apk-new"); err != nil || !bytes.Equal(b, newDefault) {
		t.Errorf("new default config not beside it as .apk-new: %v", err)
	}
	db, err := os.ReadFile(at("lib/apk/db/installed"))
	if err != nil || !bytes.Contains(db, []byte("P:vpn-passthrough\nV:"+next.Control.Version+"\n")) {
		t.Errorf("installed database does not list vpn-passthrough %s (%v)", next.Control.Version, err)
	}

	// Removal: pre-deinstall = default_prerm (disable) and prerm-pkg.
	out = runAPK(t, apk, root, "del", "vpn-passthrough")
	if !strings.Contains(out, "Executing vpn-passthrough-"+next.Control.Version+".pre-deinstall") {
		t.Errorf("pre-deinstall did not run")
	}
	for _, f := range []string{"usr/bin/vpn-passthrough", "etc/init.d/vpn-passthrough", "etc/rc.d/S25vpn-passthrough", "lib/apk/packages/vpn-passthrough.list",
		"etc/capabilities/vpn-passthrough.json", "usr/share/nftables.d/chain-pre/forward/10-vpn-passthrough.nft"} {
		if _, err := os.Lstat(at(f)); !os.IsNotExist(err) {
			t.Errorf("%s still there after apk del (%v)", f, err)
		}
	}
	if _, err := os.Stat(cfg); err == nil {
		t.Logf("apk del kept the edited %s (a modified protected file)", cfg)
	}
}

// copyFile copies src's content (following links) to dst, mode 0755.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
