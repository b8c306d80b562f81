package ipk

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The OpenWrt feed cannot be built here (no SDK), so these tests check what
// can be: variables, that every installed file exists, and the install
// recipes themselves, run by GNU make against stub OpenWrt include files.

// Stubs for what the feed Makefiles include. BuildPackage prints the
// package's variables and defines stub-install (runs Package/<name>/install
// into $(STUB_DEST)).
var stubs = map[string]string{
	"rules.mk": `INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:=$(TOPDIR)/build
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
CP:=cp -fpR
define newline


endef
`,
	"include/package.mk": `PKG_BUILD_DIR?=$(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
define BuildPackage
$(eval $(Package/$(1)))
$(foreach v,PKG_NAME PKG_VERSION PKG_RELEASE PKG_SOURCE PKG_SOURCE_URL PKG_HASH PKG_LICENSE PKG_LICENSE_FILES \
	PKG_MAINTAINER PKG_BUILD_DEPENDS PKG_BUILD_FLAGS GO_PKG GO_PKG_BUILD_PKG GO_PKG_LDFLAGS GO_PKG_LDFLAGS_X GO_PKG_GCFLAGS \
	SECTION CATEGORY TITLE URL PKGARCH,$(info STUB $(v)=$(strip $($(v)))))
$(info STUB DEPENDS=$(strip $(DEPENDS)))
$(info STUB DESCRIPTION=$(strip $(Package/$(1)/description)))
$(info STUB CONFFILES=$(strip $(Package/$(1)/conffiles)))
$(info STUB PRERM=$(subst $(newline),\n,$(Package/$(1)/prerm)))
$(info STUB GOBINPACKAGE=$(GOBINPACKAGE_CALLED))
stub-install:
	$$(call Package/$(1)/install,$$(STUB_DEST))
endef
`,
	// Reached through the feed's lang/golang shim, as from the buildroot.
	"feeds/packages/lang/golang/golang-package.mk": `GO_ARCH_DEPENDS:=@(STUB_GO_ARCH)
GO_PKG_BUILD_BIN_DIR:=$(STUB_BINDIR)
GoBinPackage=$(eval GOBINPACKAGE_CALLED:=yes)
`,
	// What luci.mk does with an app: package metadata from LUCI_*, htdocs/
	// installed to /www and root/ to /.
	"feeds/luci/luci.mk": `LUCI_NAME?=$(notdir $(CURDIR))
PKG_NAME?=$(LUCI_NAME)
include $(INCLUDE_DIR)/package.mk
define Package/$(PKG_NAME)
  SECTION:=luci
  CATEGORY:=LuCI
  TITLE:=$(LUCI_TITLE)
  DEPENDS:=$(LUCI_DEPENDS)
  PKGARCH:=$(LUCI_PKGARCH)
endef
define Package/$(PKG_NAME)/description
 $(strip $(LUCI_DESCRIPTION))
endef
define Package/$(PKG_NAME)/install
	$(INSTALL_DIR) $(1)/www
	cp -pR ./htdocs/* $(1)/www/
	cp -pR ./root/* $(1)/
endef
$(eval $(call BuildPackage,$(PKG_NAME)))
`,
}

func stubTop(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	top := t.TempDir()
	for name, text := range stubs {
		p := filepath.Join(top, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return top
}

// runMake runs make in dir (reached through a symlink, as the buildroot's
// package/feeds/<feed>/<pkg> links do) and returns the STUB variables.
func runMake(t *testing.T, top, dir string, args ...string) map[string]string {
	t.Helper()
	link := filepath.Join(top, "package", "feeds", "vpnpt", filepath.Base(dir))
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); err != nil {
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("make", append([]string{"-s", "--no-print-directory", "-C", link, "TOPDIR=" + top}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make %v in %s: %v\n%s%s", args, dir, err, out, stderr.Bytes())
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "STUB "), "="); ok && strings.HasPrefix(sc.Text(), "STUB ") {
			vars[k] = v
		}
	}
	return vars
}

// makeVar reads a simple `NAME := value` assignment from a Makefile.
func makeVar(t *testing.T, file, name string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*:?=\s*(.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no %s", file, name)
	}
	return strings.TrimSpace(string(m[1]))
}

func modulePath(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no module line")
	}
	return string(m[1])
}

// treeModes lists the regular files under dir with their permission bits.
func treeModes(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out["/"+filepath.ToSlash(rel)] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFeedLicence: the licence the Makefiles declare is the LICENSE file's,
// and the maintainer is `Name <email>`, as openwrt/packages requires.
func TestFeedLicence(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if lic := makeVar(t, filepath.Join(root, "Makefile"), "LICENSE"); lic != "Apache-2.0" ||
		!bytes.Contains(b[:200], []byte("Apache License")) || !bytes.Contains(b[:200], []byte("Version 2.0, January 2004")) {
		t.Errorf("LICENSE is not the Apache-2.0 text that LICENSE := %s declares", lic)
	}
	if m := makeVar(t, filepath.Join(root, "Makefile"), "MAINTAINER"); !regexp.MustCompile(`^[^<>@]+ <[a-z0-9.+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+>$`).MatchString(m) {
		t.Errorf("MAINTAINER %q is not `Name <email>`", m)
	}
}

// feedPkg is one feed Makefile run under the stubs: its variables and the
// files its install recipe installed, with their modes.
type feedPkg struct {
	vars  map[string]string
	files map[string]fs.FileMode
	dest  string
}

func runFeed(t *testing.T, pkgDir string, makeArgs ...string) feedPkg {
	t.Helper()
	top := stubTop(t)
	bindir := filepath.Join(top, "gobin")
	if err := os.MkdirAll(bindir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bindir, "vpn-passthrough"), []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(top, "dest")
	v := runMake(t, top, pkgDir, append([]string{"stub-install", "STUB_DEST=" + dest, "STUB_BINDIR=" + bindir}, makeArgs...)...)
	return feedPkg{vars: v, files: treeModes(t, dest), dest: dest}
}

// daemonFiles is what the daemon package must install: files/ plus the
// binary, 0755 where executable, INSTALL_CONF's 0600 for the config, 0644
// otherwise. `make ipk` and `make apk` give the same modes.
func daemonFiles(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	want := map[string]fs.FileMode{"/usr/bin/vpn-passthrough": 0o755}
	for p, m := range treeModes(t, filepath.Join(root, "files")) {
		want[p] = 0o644
		if m&0o111 != 0 {
			want[p] = 0o755
		}
	}
	want["/etc/config/vpn-passthrough"] = 0o600
	return want
}

func compareFiles(t *testing.T, what string, got, want map[string]fs.FileMode) {
	t.Helper()
	for p, m := range want {
		if g, ok := got[p]; !ok || g != m {
			t.Errorf("%s: %s mode %v (present %v), want %v", what, p, g, ok, m)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s installs %s, which it should not", what, p)
		}
	}
}

// checkDaemonVars checks what both the committed and the dist feed
// Makefile must say.
func checkDaemonVars(t *testing.T, root string, v map[string]string) {
	t.Helper()
	top := filepath.Join(root, "Makefile")
	mod := modulePath(t, root)
	want := map[string]string{
		"PKG_NAME":          "vpn-passthrough",
		"PKG_SOURCE":        "vpn-passthrough-" + v["PKG_VERSION"] + ".tar.gz",
		"PKG_SOURCE_URL":    "https://github.com/vpn-passthrough/vpn-passthrough/releases/download/v" + v["PKG_VERSION"],
		"PKG_BUILD_DEPENDS": "golang/host",
		"PKG_BUILD_FLAGS":   "no-mips16",
		"GO_PKG":            mod,
		"GO_PKG_BUILD_PKG":  mod + "/src/cmd/vpn-passthrough",
		"GO_PKG_LDFLAGS_X":  "main.version=" + v["PKG_VERSION"] + "-r" + v["PKG_RELEASE"],
		"CONFFILES":         "/etc/config/vpn-passthrough",
		"PKG_LICENSE":       makeVar(t, top, "LICENSE"),
		"PKG_LICENSE_FILES": "LICENSE",
		"PKG_MAINTAINER":    makeVar(t, top, "MAINTAINER"),
		"SECTION":           "net",
		"URL":               "https://github.com/vpn-passthrough/vpn-passthrough",
		"GOBINPACKAGE":      "", // the install recipe is explicit: GoBinPackage would be redundant
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %q, want %q", k, v[k], w)
		}
	}
	base := makeVar(t, top, "VERSION_BASE")
	if !regexp.MustCompile(`^`+regexp.QuoteMeta(base)+`\.[0-9]+$`).MatchString(v["PKG_VERSION"]) || !regexp.MustCompile(`^[0-9]+$`).MatchString(v["PKG_RELEASE"]) {
		t.Errorf("PKG_VERSION %q / PKG_RELEASE %q: want %s.<commits> / <N>", v["PKG_VERSION"], v["PKG_RELEASE"], base)
	}
	if err := CheckAPKVersion(v["PKG_VERSION"] + "-r" + v["PKG_RELEASE"]); err != nil {
		t.Error(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(v["PKG_HASH"]) {
		t.Errorf("PKG_HASH %q is not a sha256", v["PKG_HASH"])
	}
	if _, err := os.Stat(filepath.Join(root, strings.TrimPrefix(v["GO_PKG_BUILD_PKG"], mod+"/"), "main.go")); err != nil {
		t.Errorf("GO_PKG_BUILD_PKG %s: %v", v["GO_PKG_BUILD_PKG"], err)
	}
	// The feed's prerm and the prerm-pkg `make ipk`/`make apk` pack are the same.
	pp, err := os.ReadFile(filepath.Join(root, "openwrt-feed", "net", "vpn-passthrough", "prerm-pkg"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.ReplaceAll(v["PRERM"], `\n`, "\n"), strings.TrimSpace(string(pp)); got != want {
		t.Errorf("Package/vpn-passthrough/prerm = %q, prerm-pkg = %q", got, want)
	}
	// DEPENDS = $(GO_ARCH_DEPENDS) plus the list `make ipk` writes.
	deps := strings.Fields(v["DEPENDS"])
	if len(deps) == 0 || deps[0] != "@(STUB_GO_ARCH)" {
		t.Errorf("DEPENDS %q does not start with $(GO_ARCH_DEPENDS)", v["DEPENDS"])
	}
	var plain []string
	for _, d := range deps[1:] {
		plain = append(plain, strings.TrimPrefix(d, "+"))
	}
	if got, w := strings.Join(plain, ","), makeVar(t, top, "IPK_DEPENDS"); got != w {
		t.Errorf("feed DEPENDS %s, top-level IPK_DEPENDS %s: keep them equal", got, w)
	}
}

func TestFeedDaemonMakefile(t *testing.T) {
	root := repoRoot(t)
	pkgDir := filepath.Join(root, "openwrt-feed", "net", "vpn-passthrough")
	f := runFeed(t, pkgDir)
	checkDaemonVars(t, root, f.vars)
	compareFiles(t, "feed install", f.files, daemonFiles(t, root))
	// The committed feed names a release at or before this commit.
	if out, err := exec.Command("git", "-C", root, "rev-list", "--count", "HEAD").Output(); err == nil {
		n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		_, rel, _ := strings.Cut(f.vars["PKG_VERSION"], makeVar(t, filepath.Join(root, "Makefile"), "VERSION_BASE")+".")
		if r, err := strconv.Atoi(rel); err != nil || r > n {
			t.Errorf("PKG_VERSION %s is newer than this commit (%d commits)", f.vars["PKG_VERSION"], n)
		}
	}
	// PKG_HASH is checkable: the "# Tarball:" line names the commit whose
	// `make dist` writes it.
	m := regexp.MustCompile(`(?m)^# Tarball: make dist DIST_REV=([0-9a-f]{40})$`).FindSubmatch(mustRead(t, filepath.Join(pkgDir, "Makefile")))
	if m == nil {
		t.Fatal("no `# Tarball: make dist DIST_REV=<commit>` line")
	}
	if err := exec.Command("git", "-C", root, "cat-file", "-e", string(m[1])+"^{commit}").Run(); err != nil {
		t.Logf("commit %s not in this clone (%v): PKG_HASH not re-derived", m[1], err)
	} else {
		dist := t.TempDir()
		out := string(mustRun(t, root, "make", "-s", "dist", "DIST_REV="+string(m[1]), "DIST="+dist))
		want := f.vars["PKG_HASH"] + "  " + filepath.Join(dist, f.vars["PKG_SOURCE"]) + "\n"
		if !strings.HasSuffix(out, want) {
			t.Errorf("make dist DIST_REV=%s printed %q; the feed says %q", m[1], out, want)
		}
	}
	// The include is the openwrt/packages one, relative; the feed's
	// lang/golang/golang-package.mk hands over to the packages feed.
	b, err := os.ReadFile(filepath.Join(pkgDir, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("\ninclude ../../lang/golang/golang-package.mk\n")) || bytes.Contains(b, []byte("$(TOPDIR)/feeds")) {
		t.Error("the Makefile must include ../../lang/golang/golang-package.mk, and nothing from $(TOPDIR)/feeds")
	}
}

// TestFeedGoFlags: per target, the feed compiles with the -gcflags that
// `make cross` uses (for size on the small-flash 32-bit targets).
func TestFeedGoFlags(t *testing.T) {
	root := repoRoot(t)
	pkgDir := filepath.Join(root, "openwrt-feed", "net", "vpn-passthrough")
	// OpenWrt's $(ARCH) of each package architecture `make cross` builds.
	arches := map[string]string{"mips_24kc": "mips", "mipsel_24kc": "mipsel", "arm_cortex-a7_neon-vfpv4": "arm",
		"aarch64_cortex-a53": "aarch64", "x86_64": "x86_64"}
	small := 0
	for pkgArch, arch := range arches {
		cmd := exec.Command("make", "-s", "--no-print-directory", "-f", "Makefile", "-f", "-", "print-var", "V=CROSS_GCFLAGS_"+pkgArch)
		cmd.Dir = root
		cmd.Stdin = strings.NewReader("print-var:\n\t@echo '$($(V))'\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("make print-var: %v", err)
		}
		want := strings.TrimSpace(string(out))
		v := runFeed(t, pkgDir, "ARCH="+arch).vars
		if v["GO_PKG_GCFLAGS"] != want {
			t.Errorf("ARCH=%s: feed GO_PKG_GCFLAGS %q, make cross -gcflags %q (%s)", arch, v["GO_PKG_GCFLAGS"], want, pkgArch)
		}
		if want != "" {
			small++
		}
	}
	if small != 3 {
		t.Errorf("%d targets compiled for size, want 3 (mips, mipsel, arm)", small)
	}
}

// TestFeedTestSh: openwrt/packages CI runs test.sh <package> <version>
// on the target; it must pass for the binary's own version and fail for
// another, with the binary built as the feed builds it (-X main.version).
func TestFeedTestSh(t *testing.T) {
	root := repoRoot(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	dir := t.TempDir()
	const v = "0.1.4242-r3"
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+v, "-o", filepath.Join(dir, "vpn-passthrough"), "./src/cmd/vpn-passthrough")
	build.Dir = root
	// A binary for this machine, also when the test itself runs under
	// qemu-user (make qemu-test sets GOARCH for the test binary).
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=", "GOMIPS=", "GOARM=", "GOAMD64=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		ok   bool
	}{{[]string{"vpn-passthrough", v}, true}, {[]string{"vpn-passthrough", "0.1.4242"}, true}, {[]string{"vpn-passthrough", "0.1.4243-r3"}, false}} {
		cmd := exec.Command("sh", append([]string{filepath.Join(root, "openwrt-feed", "net", "vpn-passthrough", "test.sh")}, c.args...)...)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if (err == nil) != c.ok {
			t.Errorf("test.sh %v: err %v, want success %v\n%s", c.args, err, c.ok, out)
		}
	}
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(filepath.Join(dir, "vpn-passthrough"), arg).Output()
		if err != nil || string(out) != "vpn-passthrough "+v+"\n" {
			t.Errorf("vpn-passthrough %s: %q, %v", arg, out, err)
		}
	}
}

func TestFeedLuciMakefile(t *testing.T) {
	root := repoRoot(t)
	app := filepath.Join(root, "luci-app")
	// The feed entry links to luci-app/, whose folders are real.
	entry := filepath.Join(root, "openwrt-feed", "luci", "luci-app-vpn-passthrough")
	if target, err := os.Readlink(entry); err != nil || target != "../../luci-app" {
		t.Errorf("%s: link to %q (%v), want ../../luci-app", entry, target, err)
	}
	err := filepath.WalkDir(app, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("%s is a symlink: the app's folders must be real", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkLuci(t, root, runFeed(t, entry), "")
}

func checkLuci(t *testing.T, root string, f feedPkg, version string) {
	t.Helper()
	v := f.vars
	top := filepath.Join(root, "Makefile")
	want := map[string]string{
		"PKG_NAME":       "luci-app-vpn-passthrough",
		"PKG_LICENSE":    makeVar(t, top, "LICENSE"),
		"PKG_MAINTAINER": makeVar(t, top, "MAINTAINER"),
		"DEPENDS":        "+luci-base +vpn-passthrough",
		"PKGARCH":        "all",
	}
	if version != "" {
		want["PKG_VERSION"], want["PKG_RELEASE"], _ = strings.Cut(version, "-r")
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("luci %s = %q, want %q", k, v[k], w)
		}
	}
	if err := CheckAPKVersion(v["PKG_VERSION"] + "-r" + v["PKG_RELEASE"]); err != nil {
		t.Error(err)
	}
	wantFiles := map[string]fs.FileMode{}
	for p := range treeModes(t, filepath.Join(root, "luci-app", "htdocs")) {
		wantFiles["/www"+p] = 0o644
	}
	for p := range treeModes(t, filepath.Join(root, "luci-app", "root")) {
		wantFiles[p] = 0o644
	}
	for _, p := range []string{"/www/luci-static/resources/view/vpn-passthrough/overview.js",
		"/usr/share/luci/menu.d/luci-app-vpn-passthrough.json",
		"/usr/share/rpcd/acl.d/luci-app-vpn-passthrough.json"} {
		if _, ok := wantFiles[p]; !ok {
			t.Errorf("luci-app/ has no source for %s", p)
		}
	}
	compareFiles(t, "luci.mk install", f.files, wantFiles)
	if _, err := os.Stat(filepath.Join(root, "luci-app", "po", "templates", "vpn-passthrough.pot")); err != nil {
		t.Error(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "luci-app", "Makefile"))
	if err != nil || !strings.Contains(string(b), "# call BuildPackage - OpenWrt buildroot signature") {
		t.Errorf("luci Makefile lacks the buildroot signature line (scan.mk greps for BuildPackage)")
	}
}

// TestFeedScanSafe: with src-git the feed is the whole repository, and the
// buildroot's scan takes every Makefile that mentions BuildPackage as a
// package. Only the feed's own Makefiles may.
func TestFeedScanSafe(t *testing.T) {
	root := repoRoot(t)
	var pkgs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "dist" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.Name() != "Makefile" || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("BuildPackage")) || bytes.Contains(b, []byte("KernelPackage")) {
			rel, _ := filepath.Rel(root, p)
			pkgs = append(pkgs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "luci-app/Makefile openwrt-feed/net/vpn-passthrough/Makefile"
	if strings.Join(pkgs, " ") != want {
		t.Errorf("Makefiles that look like packages: %v, want %s", pkgs, want)
	}
}

// TestFeedShellScripts: every shell script shipped parses (sh -n, and
// busybox ash -n where busybox is installed: OpenWrt runs them under ash).
func TestFeedShellScripts(t *testing.T) {
	root := repoRoot(t)
	var scripts []string
	for _, dir := range []string{"files", "luci-app"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err == nil && bytes.HasPrefix(b, []byte("#!/bin/sh")) {
				scripts = append(scripts, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(scripts) < 5 {
		t.Fatalf("found only %v", scripts)
	}
	shells := [][]string{{"sh", "-n"}}
	if _, err := exec.LookPath("busybox"); err == nil {
		shells = append(shells, []string{"busybox", "ash", "-n"})
	}
	for _, s := range scripts {
		for _, sh := range shells {
			if out, err := exec.Command(sh[0], append(sh[1:], s)...).CombinedOutput(); err != nil {
				t.Errorf("%v %s: %v\n%s", sh, s, err, out)
			}
		}
	}
}

// TestFeedDist: `make dist` writes the same tarball twice from one commit,
// prints its sha256, and writes a feed whose Makefiles are the committed
// ones but for PKG_VERSION, PKG_RELEASE and PKG_HASH, which name that
// tarball and this commit's version; the feed has real folders, and the
// tarball builds (go.mod at its root, VERSION instead of git).
func TestFeedDist(t *testing.T) {
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skip("not a git checkout: make dist archives HEAD")
	}
	version := strings.TrimSpace(string(mustRun(t, root, "make", "-s", "version")))
	pkgVersion, release, _ := strings.Cut(version, "-r")
	var tarballs [][]byte
	var dist string
	for i := 0; i < 2; i++ {
		dist = t.TempDir()
		out := string(mustRun(t, root, "make", "-s", "dist", "DIST="+dist))
		tarball := filepath.Join(dist, "vpn-passthrough-"+pkgVersion+".tar.gz")
		b, err := os.ReadFile(tarball)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if want := hex.EncodeToString(sum[:]) + "  " + tarball + "\n"; !strings.HasSuffix(out, want) {
			t.Errorf("make dist printed %q, want it to end in %q", out, want)
		}
		tarballs = append(tarballs, b)
	}
	if !bytes.Equal(tarballs[0], tarballs[1]) {
		t.Error("two make dist runs wrote different tarballs")
	}
	sum := sha256.Sum256(tarballs[1])
	hash := hex.EncodeToString(sum[:])

	feed := filepath.Join(dist, "openwrt-feed")
	err := filepath.WalkDir(feed, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("dist feed: %s is a symlink", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]string{"PKG_VERSION": pkgVersion, "PKG_RELEASE": release, "PKG_HASH": hash}
	head := strings.TrimSpace(string(mustRun(t, root, "git", "rev-parse", "HEAD")))
	for _, mk := range []string{"net/vpn-passthrough/Makefile", "luci/luci-app-vpn-passthrough/Makefile"} {
		committed, err := os.ReadFile(filepath.Join(root, "openwrt-feed", mk))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(feed, mk))
		if err != nil {
			t.Fatal(err)
		}
		cl, gl := strings.Split(string(committed), "\n"), strings.Split(string(got), "\n")
		if len(cl) != len(gl) {
			t.Errorf("dist %s has %d lines, committed %d", mk, len(gl), len(cl))
			continue
		}
		for i := range cl {
			if strings.HasPrefix(cl[i], "# Tarball: ") {
				if want := "# Tarball: make dist DIST_REV=" + head; gl[i] != want {
					t.Errorf("dist %s: %q, want %q", mk, gl[i], want)
				}
				continue
			}
			name, _, _ := strings.Cut(cl[i], ":=")
			if w, ok := set[name]; ok {
				if gl[i] != name+":="+w {
					t.Errorf("dist %s: %q, want %s:=%s", mk, gl[i], name, w)
				}
			} else if cl[i] != gl[i] {
				t.Errorf("dist %s line %d: %q, committed %q", mk, i+1, gl[i], cl[i])
			}
		}
	}
	d := runFeed(t, filepath.Join(feed, "net", "vpn-passthrough"))
	checkDaemonVars(t, root, d.vars)
	if d.vars["PKG_VERSION"] != pkgVersion || d.vars["PKG_HASH"] != hash {
		t.Errorf("dist feed PKG_VERSION %s PKG_HASH %s, want %s %s", d.vars["PKG_VERSION"], d.vars["PKG_HASH"], pkgVersion, hash)
	}
	compareFiles(t, "dist feed install", d.files, daemonFiles(t, root))
	for p := range d.files {
		if p == "/usr/bin/vpn-passthrough" {
			continue
		}
		a, _ := os.ReadFile(filepath.Join(d.dest, p))
		b, _ := os.ReadFile(filepath.Join(root, "files", p))
		if !bytes.Equal(a, b) {
			t.Errorf("dist feed installs a %s different from files/", p)
		}
	}
	checkLuci(t, root, runFeed(t, filepath.Join(feed, "luci", "luci-app-vpn-passthrough")), version)

	// The tarball: PKG_BUILD_DIR's name, go.mod at its root, the licence
	// file, VERSION; and it builds to a binary with this version.
	src := t.TempDir()
	mustRun(t, src, "tar", "-xzf", filepath.Join(dist, "vpn-passthrough-"+pkgVersion+".tar.gz"))
	top := filepath.Join(src, "vpn-passthrough-"+pkgVersion)
	for _, f := range []string{"go.mod", "go.sum", d.vars["PKG_LICENSE_FILES"], "src/cmd/vpn-passthrough/main.go"} {
		if _, err := os.Stat(filepath.Join(top, f)); err != nil {
			t.Errorf("tarball: %v", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(top, "VERSION")); err != nil || string(b) != pkgVersion+"\n" {
		t.Errorf("tarball VERSION %q (%v), want %s", b, err, pkgVersion)
	}
	if modulePath(t, top) != d.vars["GO_PKG"] {
		t.Errorf("tarball go.mod module %s, GO_PKG %s", modulePath(t, top), d.vars["GO_PKG"])
	}
	if got := strings.TrimSpace(string(mustRun(t, top, "make", "-s", "version"))); got != version {
		t.Errorf("make version in the tarball: %s, want %s", got, version)
	}
}

func mustRun(t *testing.T, dir string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v in %s: %v\n%s%s", name, args, dir, err, out, stderr.Bytes())
	}
	return out
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
