package ipk

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The OpenWrt feed cannot be built here (no SDK), so these tests check what
// can be: variables, that every installed file exists, and the install
// recipes themselves, run by GNU make against stub OpenWrt include files.

// Stubs for what the feed Makefiles include. BuildPackage prints the
// package's variables and defines stub-install (runs Package/<name>/install
// into $(STUB_DEST)) and stub-prepare (runs Build/Prepare).
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
	"include/package.mk": `PKG_BUILD_DIR?=$(BUILD_DIR)/$(PKG_NAME)
define BuildPackage
$(eval $(Package/$(1)))
$(info STUB PKG_NAME=$(PKG_NAME))
$(info STUB PKG_VERSION=$(PKG_VERSION))
$(info STUB PKG_RELEASE=$(PKG_RELEASE))
$(info STUB PKG_LICENSE=$(PKG_LICENSE))
$(info STUB PKG_LICENSE_FILES=$(PKG_LICENSE_FILES))
$(info STUB PKG_MAINTAINER=$(PKG_MAINTAINER))
$(info STUB PKG_BUILD_DEPENDS=$(PKG_BUILD_DEPENDS))
$(info STUB GO_PKG=$(GO_PKG))
$(info STUB GO_PKG_BUILD_PKG=$(GO_PKG_BUILD_PKG))
$(info STUB GO_PKG_LDFLAGS_X=$(GO_PKG_LDFLAGS_X))
$(info STUB DEPENDS=$(strip $(DEPENDS)))
$(info STUB TITLE=$(TITLE))
$(info STUB CONFFILES=$(strip $(Package/$(1)/conffiles)))
$(info STUB PRERM=$(subst $(newline),\n,$(Package/$(1)/prerm)))
stub-install:
	$$(call Package/$(1)/install,$$(STUB_DEST))
stub-prepare:
	$$(Build/Prepare)
endef
`,
	"feeds/packages/lang/golang/golang-package.mk": `GO_ARCH_DEPENDS:=@(STUB_GO_ARCH)
define GoPackage/Package/Install/Bin
	$(INSTALL_DIR) $(1)/usr/bin
	$(INSTALL_BIN) $(STUB_BIN) $(1)/usr/bin/vpn-passthrough
endef
GoBinPackage:=
`,
	// What luci.mk does with an app: package metadata from LUCI_*, htdocs/
	// installed to /www and root/ to /.
	"feeds/luci/luci.mk": `LUCI_NAME?=$(notdir $(CURDIR))
PKG_NAME?=$(LUCI_NAME)
include $(INCLUDE_DIR)/package.mk
define Package/$(PKG_NAME)
  TITLE:=$(LUCI_TITLE)
  DEPENDS:=$(LUCI_DEPENDS)
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

func TestFeedDaemonMakefile(t *testing.T) {
	root := repoRoot(t)
	top := stubTop(t)
	pkgDir := filepath.Join(root, "openwrt-feed", "net", "vpn-passthrough")
	bin := filepath.Join(top, "fake-binary")
	if err := os.WriteFile(bin, []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(top, "dest")
	v := runMake(t, top, pkgDir, "stub-install", "STUB_DEST="+dest, "STUB_BIN="+bin)

	mod := modulePath(t, root)
	want := map[string]string{
		"PKG_NAME":          "vpn-passthrough",
		"PKG_BUILD_DEPENDS": "golang/host",
		"GO_PKG":            mod,
		"GO_PKG_BUILD_PKG":  mod + "/src/cmd/vpn-passthrough",
		"PKG_VERSION":       makeVar(t, filepath.Join(root, "Makefile"), "IPK_BASE_VERSION"),
		"GO_PKG_LDFLAGS_X":  "main.version=" + v["PKG_VERSION"] + "-r" + v["PKG_RELEASE"],
		"CONFFILES":         "/etc/config/vpn-passthrough",
		"PKG_LICENSE":       makeVar(t, filepath.Join(root, "Makefile"), "LICENSE"),
		"PKG_LICENSE_FILES": "LICENSE",
		"PKG_MAINTAINER":    makeVar(t, filepath.Join(root, "Makefile"), "MAINTAINER"),
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %q, want %q", k, v[k], w)
		}
	}
	if _, err := os.Stat(filepath.Join(root, strings.TrimPrefix(v["GO_PKG_BUILD_PKG"], mod+"/"), "main.go")); err != nil {
		t.Errorf("GO_PKG_BUILD_PKG %s: %v", v["GO_PKG_BUILD_PKG"], err)
	}
	// The feed's prerm and the prerm-pkg `make ipk` packs are the same.
	pp, err := os.ReadFile(filepath.Join(pkgDir, "prerm-pkg"))
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
	if got, w := strings.Join(plain, ","), makeVar(t, filepath.Join(root, "Makefile"), "IPK_DEPENDS"); got != w {
		t.Errorf("feed DEPENDS %s, top-level IPK_DEPENDS %s: keep them equal", got, w)
	}

	// The install recipe installs exactly files/ plus the binary, with the
	// modes `make ipk` gives: 0755 where executable, INSTALL_CONF's 0600 for
	// the config, 0644 otherwise.
	got := treeModes(t, dest)
	wantModes := map[string]fs.FileMode{"/usr/bin/vpn-passthrough": 0o755}
	for p, m := range treeModes(t, filepath.Join(root, "files")) {
		wantModes[p] = 0o644
		if m&0o111 != 0 {
			wantModes[p] = 0o755
		}
	}
	wantModes["/etc/config/vpn-passthrough"] = 0o600
	for p, m := range wantModes {
		if got[p] != m {
			t.Errorf("installed %s: mode %v, want %v", p, got[p], m)
		}
	}
	for p := range got {
		if _, ok := wantModes[p]; !ok {
			t.Errorf("installed %s, which is not in files/", p)
		}
	}

	// Build/Prepare copies what the Go build needs from the repository.
	build := filepath.Join(top, "build", "vpn-passthrough")
	runMake(t, top, pkgDir, "stub-prepare")
	for _, p := range []string{"go.mod", "go.sum", "src/cmd/vpn-passthrough/main.go"} {
		if _, err := os.Stat(filepath.Join(build, p)); err != nil {
			t.Errorf("Build/Prepare: %v", err)
		}
	}
}

func TestFeedLuciMakefile(t *testing.T) {
	root := repoRoot(t)
	top := stubTop(t)
	pkgDir := filepath.Join(root, "openwrt-feed", "luci", "luci-app-vpn-passthrough")
	for _, d := range []string{"htdocs", "root", "po"} {
		target, err := os.Readlink(filepath.Join(pkgDir, d))
		if err != nil || target != "../../../luci-app/"+d {
			t.Errorf("%s/%s: symlink to %q (%v), want ../../../luci-app/%s", pkgDir, d, target, err, d)
		}
	}
	dest := filepath.Join(top, "dest")
	v := runMake(t, top, pkgDir, "stub-install", "STUB_DEST="+dest)
	for _, k := range []string{"LICENSE", "MAINTAINER"} {
		if w := makeVar(t, filepath.Join(root, "Makefile"), k); v["PKG_"+k] != w {
			t.Errorf("PKG_%s %q, want %q", k, v["PKG_"+k], w)
		}
	}
	if v["PKG_NAME"] != "luci-app-vpn-passthrough" {
		t.Errorf("PKG_NAME %q", v["PKG_NAME"])
	}
	if !strings.Contains(v["DEPENDS"], "+vpn-passthrough") || !strings.Contains(v["DEPENDS"], "+luci-base") {
		t.Errorf("LUCI_DEPENDS %q", v["DEPENDS"])
	}
	if w := makeVar(t, filepath.Join(root, "Makefile"), "IPK_BASE_VERSION"); v["PKG_VERSION"] != w {
		t.Errorf("PKG_VERSION %q, want %q", v["PKG_VERSION"], w)
	}
	got := treeModes(t, dest)
	for _, p := range []string{"/www/luci-static/resources/view/vpn-passthrough/overview.js",
		"/usr/share/luci/menu.d/luci-app-vpn-passthrough.json",
		"/usr/share/rpcd/acl.d/luci-app-vpn-passthrough.json"} {
		if _, ok := got[p]; !ok {
			t.Errorf("luci.mk-style install lacks %s (got %v)", p, got)
		}
	}
	if _, err := os.Stat(filepath.Join(pkgDir, "po", "templates", "vpn-passthrough.pot")); err != nil {
		t.Error(err)
	}
	b, err := os.ReadFile(filepath.Join(pkgDir, "Makefile"))
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
	want := "openwrt-feed/luci/luci-app-vpn-passthrough/Makefile openwrt-feed/net/vpn-passthrough/Makefile"
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
