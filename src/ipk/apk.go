package ipk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// apk (OpenWrt 25.12 and later) packages are apk-tools v3 "ADB" files.
// This file does not write ADB itself: it lays a package out the way
// OpenWrt's include/package-pack.mk does before it runs `apk mkpkg`, and
// returns mkpkg's arguments, so the reference implementation writes the
// bytes (see src/cmd/mkipk).
//
// What package-pack.mk adds for apk, and StageAPK too:
//   - /lib/apk/packages/<name>.list: every file of the package, sorted;
//   - /lib/apk/packages/<name>.conffiles and .conffiles_static (path and
//     sha256), since ADB has no conffiles field (sysupgrade reads them);
//   - post-install, post-upgrade (PKG_UPGRADE=1) and pre-deinstall scripts
//     around default_postinst / default_prerm, with the package's own
//     postinst-pkg / prerm-pkg appended;
//   - arch "noarch" for Architecture "all", and the virtual provide
//     <name>-any every OpenWrt package has.

// APKFileName is OpenWrt's name for an apk: <name>-<version>.apk (the
// architecture is not part of it; packages sit in per-arch folders).
func (p *Package) APKFileName() string {
	return p.Control.Package + "-" + p.Control.Version + ".apk"
}

// APKArch is the package's apk architecture.
func (p *Package) APKArch() string {
	if p.Control.Architecture == "all" {
		return "noarch"
	}
	return p.Control.Architecture
}

// apkScripts returns OpenWrt's three apk scripts for the package.
func (p *Package) apkScripts() map[string]string {
	body := func(s string) string {
		if strings.TrimSpace(s) == "" {
			return ""
		}
		var out []string
		for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "#!") {
				out = append(out, l)
			}
		}
		if len(out) == 0 {
			return ""
		}
		return strings.Join(out, "\n") + "\n"
	}
	env := "export root=\"${IPKG_INSTROOT}\"\nexport pkgname=\"" + p.Control.Package + "\"\n"
	postinst := "#!/bin/sh\n" +
		"[ \"${IPKG_NO_SCRIPT}\" = \"1\" ] && exit 0\n" +
		"[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n" +
		". ${IPKG_INSTROOT}/lib/functions.sh\n" + env +
		"add_group_and_user\ndefault_postinst\n" + body(p.PostinstPkg)
	return map[string]string{
		"post-install": postinst,
		"post-upgrade": "#!/bin/sh\nexport PKG_UPGRADE=1\n" + body(postinst),
		"pre-deinstall": "#!/bin/sh\n" +
			"[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n" +
			". ${IPKG_INSTROOT}/lib/functions.sh\n" + env +
			"default_prerm\n" + body(p.PrermPkg),
	}
}

// APKFiles is the package's data as apk installs it: Files plus the
// /lib/apk/packages/ lists.
func (p *Package) APKFiles() []File {
	files := slices.Clone(p.Files)
	meta := "/lib/apk/packages/" + p.Control.Package
	var list []string
	for _, f := range files {
		list = append(list, f.Path)
	}
	slices.Sort(list)
	files = append(files, File{Path: meta + ".list", Mode: 0o644, Data: []byte(strings.Join(list, "\n") + "\n")})
	if len(p.Conffiles) > 0 {
		cf := slices.Clone(p.Conffiles)
		slices.Sort(cf)
		var static []string
		for _, c := range cf {
			i := slices.IndexFunc(p.Files, func(f File) bool { return f.Path == c })
			sum := sha256.Sum256(p.Files[i].Data)
			static = append(static, c+" "+hex.EncodeToString(sum[:]))
		}
		files = append(files,
			File{Path: meta + ".conffiles", Mode: 0o644, Data: []byte(strings.Join(cf, "\n") + "\n")},
			File{Path: meta + ".conffiles_static", Mode: 0o644, Data: []byte(strings.Join(static, "\n") + "\n")})
	}
	return files
}

// StageAPK writes the package's tree and scripts under dir (which must be
// empty or absent) and returns the arguments for `apk mkpkg`, all but
// --output. Every file and directory gets ModTime; mkpkg takes owners from
// the files, so run it as root or under fakeroot.
func (p *Package) StageAPK(dir string) ([]string, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	mtime := p.ModTime
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	root := filepath.Join(dir, "files")
	scripts := filepath.Join(dir, "scripts")
	for _, d := range []string{root, scripts} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	dirs := map[string]bool{}
	for _, f := range p.APKFiles() {
		dst := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(dst, f.Data, f.Mode); err != nil {
			return nil, err
		}
		// WriteFile's mode is filtered by the umask.
		if err := os.Chmod(dst, f.Mode); err != nil {
			return nil, err
		}
		if err := os.Chtimes(dst, mtime, mtime); err != nil {
			return nil, err
		}
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(d)), mtime, mtime); err != nil {
			return nil, err
		}
	}
	c := &p.Control
	desc := strings.Join(strings.Fields(c.Description), " ")
	args := []string{
		"--info", "name:" + c.Package,
		"--info", "version:" + c.Version,
		"--info", "description:" + desc,
		"--info", "arch:" + p.APKArch(),
		"--info", "license:" + c.License,
		"--info", "origin:" + c.Source,
		"--info", "url:" + c.URL,
		"--info", "maintainer:" + c.Maintainer,
		"--info", "provides:" + c.Package + "-any",
		"--info", "depends:" + strings.Join(c.Depends, " "),
	}
	if len(c.Suggests) > 0 {
		// ipk's Suggests: apk shows recommends and installs nothing for them.
		args = append(args, "--info", "recommends:"+strings.Join(c.Suggests, " "))
	}
	s := p.apkScripts()
	for _, name := range []string{"post-install", "post-upgrade", "pre-deinstall"} {
		f := filepath.Join(scripts, name)
		if err := os.WriteFile(f, []byte(s[name]), 0o755); err != nil {
			return nil, err
		}
		args = append(args, "--script", name+":"+f)
	}
	return append(args, "--files", root), nil
}

var apkVersionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+-r[0-9]+$`)

// CheckAPKVersion reports whether v is what OpenWrt's apk packages use:
// <major>.<minor>.<patch>-r<N>.
func CheckAPKVersion(v string) error {
	if !apkVersionRE.MatchString(v) {
		return fmt.Errorf("ipk: version %q is not <major>.<minor>.<patch>-r<N>", v)
	}
	return nil
}

// WriteAPK writes the package as <outDir>/<APKFileName> with apk-tools'
// `apk mkpkg` (tool is the apk binary), under fakeroot when not root so
// that every file is owned by root, and returns the file's path.
func (p *Package) WriteAPK(tool, outDir string) (string, error) {
	if err := CheckAPKVersion(p.Control.Version); err != nil {
		return "", err
	}
	stage, err := os.MkdirTemp("", "ipk-apk-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	args, err := p.StageAPK(stage)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(outDir, p.APKFileName())
	argv := append([]string{tool, "mkpkg"}, append(args, "--output", out+".tmp")...)
	if os.Geteuid() != 0 {
		argv = append([]string{"fakeroot", "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	// mkpkg stamps build-time and file times from SOURCE_DATE_EPOCH.
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", p.ModTime.Unix()))
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(out + ".tmp")
		return "", fmt.Errorf("ipk: %s: %v\n%s", strings.Join(argv, " "), err, b)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return "", errors.Join(err, os.Remove(out+".tmp"))
	}
	return out, nil
}
