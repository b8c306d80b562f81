package ipk

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Control is a package's control file. Empty fields are left out of it.
type Control struct {
	Package      string
	Version      string
	Depends      []string // package names, written as "a, b"
	Suggests     []string // opkg shows these and installs nothing for them
	Source       string   // e.g. "feeds/vpnpt/net/vpn-passthrough"
	SourceName   string
	License      string
	Section      string
	URL          string
	Maintainer   string
	Architecture string // OpenWrt package arch, e.g. "mips_24kc", or "all"
	Description  string // first line is the summary; more lines follow it
}

// File is one regular file of the package's data.
type File struct {
	Path string      // absolute path on the router, e.g. "/usr/bin/vpn-passthrough"
	Mode fs.FileMode // permission bits: 0o755 or 0o644
	Data []byte
}

// Package is everything one .ipk holds.
type Package struct {
	Control   Control
	Files     []File
	Conffiles []string // absolute paths, each one of Files
	// PostinstPkg is a script default_postinst sources after installing, what
	// OpenWrt's Package/<name>/postinst becomes (CONTROL/postinst-pkg).
	// Empty: none.
	PostinstPkg string
	// PrermPkg is a script default_prerm sources before removing, what
	// OpenWrt's Package/<name>/prerm becomes (CONTROL/prerm-pkg).
	PrermPkg string
	// ModTime is stamped on every tar entry; the zero value means the Unix
	// epoch.
	ModTime time.Time
}

// Postinst and Prerm are the maintainer scripts OpenWrt generates for every
// package (include/package-pack.mk): they do nothing while building an
// image (IPKG_NO_SCRIPT=1) or without base-files, and otherwise defer to
// /lib/functions.sh, which runs the package's uci-defaults and enables,
// starts (postinst) or stops and disables (prerm) its init scripts.
const (
	Postinst = `#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
`
	Prerm = `#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
`
	// DebianBinary is the content of ./debian-binary.
	DebianBinary = "2.0\n"
)

var (
	// ipkg-build refuses package names with other characters.
	nameRE = regexp.MustCompile(`^[a-zA-Z0-9_.+-]+$`)
	// [epoch:]upstream[-revision]; no '_' (it separates the file name's
	// parts) and no white space.
	versionRE = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$`)
	archRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
)

// FileName is the package's file name: <name>_<version>_<arch>.ipk.
func (p *Package) FileName() string {
	return p.Control.Package + "_" + p.Control.Version + "_" + p.Control.Architecture + ".ipk"
}

// Validate reports the first thing that would make opkg or ipkg-build
// refuse the package.
func (p *Package) Validate() error {
	c := &p.Control
	if !nameRE.MatchString(c.Package) {
		return fmt.Errorf("ipk: package name %q: want only [a-zA-Z0-9_.+-]", c.Package)
	}
	if !versionRE.MatchString(c.Version) {
		return fmt.Errorf("ipk: package %s: version %q is not [epoch:]upstream[-revision]", c.Package, c.Version)
	}
	if !archRE.MatchString(c.Architecture) {
		return fmt.Errorf("ipk: package %s: architecture %q is not a package arch", c.Package, c.Architecture)
	}
	if strings.TrimSpace(c.Description) == "" {
		return fmt.Errorf("ipk: package %s: empty description", c.Package)
	}
	for _, d := range slices.Concat(c.Depends, c.Suggests) {
		if !nameRE.MatchString(d) {
			return fmt.Errorf("ipk: package %s: dependency %q is not a package name", c.Package, d)
		}
	}
	for _, f := range c.fields(0) {
		if f[0] != "Description" && strings.Contains(f[1], "\n") {
			return fmt.Errorf("ipk: package %s: field %s has a line break", c.Package, f[0])
		}
	}
	seen := make(map[string]bool, len(p.Files))
	for _, f := range p.Files {
		if err := checkPath(f.Path); err != nil {
			return fmt.Errorf("ipk: package %s: %w", c.Package, err)
		}
		if seen[f.Path] {
			return fmt.Errorf("ipk: package %s: file %s added twice", c.Package, f.Path)
		}
		if f.Mode&^fs.ModePerm != 0 {
			return fmt.Errorf("ipk: package %s: file %s: mode %v is not plain permission bits", c.Package, f.Path, f.Mode)
		}
		seen[f.Path] = true
	}
	for _, cf := range p.Conffiles {
		if !seen[cf] {
			return fmt.Errorf("ipk: package %s: conffile %s is not a file of the package", c.Package, cf)
		}
	}
	return nil
}

func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("file path %q is not absolute and clean", p)
	}
	if len("."+p) >= 100 {
		// Short names keep the tar headers plain ustar, which every tar
		// reader, including opkg's own, understands.
		return fmt.Errorf("file path %q is 99 bytes or longer", p)
	}
	return nil
}

// fields lists the control fields in OpenWrt's order (package-pack.mk).
func (c *Control) fields(installedSize int64) [][2]string {
	all := [][2]string{
		{"Package", c.Package},
		{"Version", c.Version},
		{"Depends", strings.Join(c.Depends, ", ")},
		{"Suggests", strings.Join(c.Suggests, ", ")},
		{"Source", c.Source},
		{"SourceName", c.SourceName},
		{"License", c.License},
		{"Section", c.Section},
		{"URL", c.URL},
		{"Maintainer", c.Maintainer},
		{"Architecture", c.Architecture},
		{"Installed-Size", fmt.Sprint(installedSize)},
		{"Description", c.Description},
	}
	return slices.DeleteFunc(all, func(f [2]string) bool { return f[1] == "" })
}

// Text renders the control file. Continuation lines of the description get
// one leading space, as Debian-style control files require.
func (c *Control) Text(installedSize int64) string {
	var b strings.Builder
	for _, f := range c.fields(installedSize) {
		v := f[1]
		if f[0] == "Description" {
			lines := strings.Split(strings.TrimSpace(v), "\n")
			for i := range lines {
				lines[i] = strings.TrimSpace(lines[i])
				if lines[i] == "" {
					lines[i] = "."
				}
			}
			v = strings.Join(lines, "\n ")
		}
		fmt.Fprintf(&b, "%s: %s\n", f[0], v)
	}
	return b.String()
}

// entry is one member of a tar archive being written.
type entry struct {
	name string // "./etc/config/x" or "./etc/" for a directory
	dir  bool
	mode int64
	data []byte
}

// dataEntries lists ./, every directory and every file, depth first with
// each directory's children sorted by name, as `tar --sort=name` does.
func (p *Package) dataEntries() []entry {
	dirs := map[string]bool{"/": true}
	for _, f := range p.Files {
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var es []entry
	for d := range dirs {
		name := "./"
		if d != "/" {
			name = "." + d + "/"
		}
		es = append(es, entry{name: name, dir: true, mode: 0o755})
	}
	for _, f := range p.Files {
		es = append(es, entry{name: "." + f.Path, mode: int64(f.Mode), data: f.Data})
	}
	slices.SortFunc(es, func(a, b entry) int {
		return slices.Compare(components(a.name), components(b.name))
	})
	return es
}

func components(name string) []string {
	name = strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
	if name == "" || name == "." {
		return nil
	}
	return strings.Split(name, "/")
}

func (p *Package) controlEntries(installedSize int64) []entry {
	es := []entry{
		{name: "./", dir: true, mode: 0o755},
		{name: "./control", mode: 0o644, data: []byte(p.Control.Text(installedSize))},
		{name: "./postinst", mode: 0o755, data: []byte(Postinst)},
		{name: "./prerm", mode: 0o755, data: []byte(Prerm)},
	}
	if len(p.Conffiles) > 0 {
		cf := slices.Clone(p.Conffiles)
		slices.Sort(cf)
		es = append(es, entry{name: "./conffiles", mode: 0o644, data: []byte(strings.Join(cf, "\n") + "\n")})
	}
	if p.PostinstPkg != "" {
		es = append(es, entry{name: "./postinst-pkg", mode: 0o755, data: []byte(p.PostinstPkg)})
	}
	if p.PrermPkg != "" {
		es = append(es, entry{name: "./prerm-pkg", mode: 0o755, data: []byte(p.PrermPkg)})
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return es
}

// writeTar writes es as a GNU-format tar, owned by 0:0.
func writeTar(w io.Writer, es []entry, mtime time.Time) error {
	tw := tar.NewWriter(w)
	for _, e := range es {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			ModTime: mtime,
			Format:  tar.FormatGNU,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("tar %s: %w", e.name, err)
		}
	}
	return tw.Close()
}

// gz compresses b with no name and no time in the header (gzip -n).
func gz(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Write validates the package and writes the .ipk to w.
func (p *Package) Write(w io.Writer) error {
	if err := p.Validate(); err != nil {
		return err
	}
	mtime := p.ModTime
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	mtime = mtime.UTC().Truncate(time.Second)

	var data bytes.Buffer
	if err := writeTar(&data, p.dataEntries(), mtime); err != nil {
		return fmt.Errorf("ipk: %s data: %w", p.Control.Package, err)
	}
	installedSize := int64(data.Len())
	dataGz, err := gz(data.Bytes())
	if err != nil {
		return fmt.Errorf("ipk: %s data: %w", p.Control.Package, err)
	}

	var control bytes.Buffer
	if err := writeTar(&control, p.controlEntries(installedSize), mtime); err != nil {
		return fmt.Errorf("ipk: %s control: %w", p.Control.Package, err)
	}
	controlGz, err := gz(control.Bytes())
	if err != nil {
		return fmt.Errorf("ipk: %s control: %w", p.Control.Package, err)
	}

	var outer bytes.Buffer
	err = writeTar(&outer, []entry{
		{name: "./debian-binary", mode: 0o644, data: []byte(DebianBinary)},
		{name: "./data.tar.gz", mode: 0o644, data: dataGz},
		{name: "./control.tar.gz", mode: 0o644, data: controlGz},
	}, mtime)
	if err != nil {
		return fmt.Errorf("ipk: %s: %w", p.Control.Package, err)
	}
	outerGz, err := gz(outer.Bytes())
	if err != nil {
		return fmt.Errorf("ipk: %s: %w", p.Control.Package, err)
	}
	_, err = w.Write(outerGz)
	return err
}

// AddTree adds every regular file under fsys to the package, at prefix plus
// its path in fsys. A file with any execute bit set gets mode 0755, any
// other 0644. Symlinks and other special files are refused.
func (p *Package) AddTree(fsys fs.FS, prefix string) error {
	return fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("ipk: %s: not a regular file", name)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if info.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
		p.Files = append(p.Files, File{Path: path.Join("/", prefix, name), Mode: mode, Data: b})
		return nil
	})
}

// ErrNotIPK is returned by Read for input that is not an OpenWrt .ipk.
var ErrNotIPK = errors.New("ipk: not an OpenWrt ipk (gzip'd tar)")
