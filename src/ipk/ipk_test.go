package ipk

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func samplePackage() *Package {
	return &Package{
		Control: Control{
			Package:      "vpn-passthrough",
			Version:      "0.1.0-r7",
			Depends:      []string{"kmod-nft-core", "kmod-nft-queue"},
			Suggests:     []string{"kmod-nf-nathelper-extra"},
			Section:      "net",
			URL:          "https://example.org/x",
			Maintainer:   "someone",
			Architecture: "mips_24kc",
			Description:  "One line.\nSecond line.\n\nAfter a blank.",
		},
		Files: []File{
			{Path: "/usr/bin/vpn-passthrough", Mode: 0o755, Data: []byte("\x7fELF...")},
			{Path: "/etc/config/vpn-passthrough", Mode: 0o600, Data: []byte("config globals 'globals'\n")},
			{Path: "/etc/init.d/vpn-passthrough", Mode: 0o755, Data: []byte("#!/bin/sh /etc/rc.common\n")},
			{Path: "/usr/bin-x/a", Mode: 0o644, Data: []byte("a")},
		},
		Conffiles: []string{"/etc/config/vpn-passthrough"},
		ModTime:   time.Unix(1700000000, 0),
	}
}

func build(t *testing.T, p *Package) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func names(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func TestWriteRead(t *testing.T) {
	p := samplePackage()
	raw := build(t, p)
	if p.FileName() != "vpn-passthrough_0.1.0-r7_mips_24kc.ipk" {
		t.Errorf("FileName = %s", p.FileName())
	}
	u, err := Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"./debian-binary", "./data.tar.gz", "./control.tar.gz"}; !slices.Equal(u.Members, want) {
		t.Errorf("outer members %v, want %v", u.Members, want)
	}
	if u.DebianBinary != "2.0\n" {
		t.Errorf("debian-binary %q", u.DebianBinary)
	}
	if want := []string{"./", "./conffiles", "./control", "./postinst", "./prerm"}; !slices.Equal(names(u.Control), want) {
		t.Errorf("control members %v, want %v", names(u.Control), want)
	}
	// Depth first, children by name: "bin" and its files before "bin-x".
	wantData := []string{"./", "./etc/", "./etc/config/", "./etc/config/vpn-passthrough",
		"./etc/init.d/", "./etc/init.d/vpn-passthrough", "./usr/", "./usr/bin/",
		"./usr/bin/vpn-passthrough", "./usr/bin-x/", "./usr/bin-x/a"}
	if !slices.Equal(names(u.Data), wantData) {
		t.Errorf("data members\n%v\nwant\n%v", names(u.Data), wantData)
	}
	for _, e := range slices.Concat(u.Control, u.Data) {
		if e.Uid != 0 || e.Gid != 0 || !e.ModTime.Equal(p.ModTime) || e.Format != tar.FormatGNU {
			t.Errorf("%s: uid %d gid %d mtime %v format %v", e.Name, e.Uid, e.Gid, e.ModTime, e.Format)
		}
	}
	modes := map[string]int64{"./usr/bin/vpn-passthrough": 0o755, "./etc/config/vpn-passthrough": 0o600,
		"./usr/bin-x/a": 0o644, "./etc/": 0o755}
	for name, mode := range modes {
		if e, ok := Find(u.Data, name); !ok || e.Mode != mode {
			t.Errorf("%s: mode %o, want %o", name, e.Mode, mode)
		}
	}
	for name, mode := range map[string]int64{"postinst": 0o755, "prerm": 0o755, "control": 0o644, "conffiles": 0o644} {
		if e, _ := Find(u.Control, name); e.Mode != mode {
			t.Errorf("control %s: mode %o, want %o", name, e.Mode, mode)
		}
	}
	if e, _ := Find(u.Control, "postinst"); string(e.Data) != Postinst {
		t.Errorf("postinst:\n%s", e.Data)
	}
	if e, _ := Find(u.Control, "conffiles"); string(e.Data) != "/etc/config/vpn-passthrough\n" {
		t.Errorf("conffiles %q", e.Data)
	}
	ctl, _ := Find(u.Control, "control")
	f, err := ParseControl(string(ctl.Data))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Package": "vpn-passthrough", "Version": "0.1.0-r7", "Architecture": "mips_24kc",
		"Depends": "kmod-nft-core, kmod-nft-queue", "Suggests": "kmod-nf-nathelper-extra",
		"Section": "net", "Description": "One line.\nSecond line.\n.\nAfter a blank.",
	}
	want["Installed-Size"] = strconv.FormatInt(u.DataTarSize, 10)
	for k, v := range want {
		if f[k] != v {
			t.Errorf("control %s = %q, want %q", k, f[k], v)
		}
	}
	if e, _ := Find(u.Data, "usr/bin/vpn-passthrough"); string(e.Data) != "\x7fELF..." {
		t.Errorf("binary content %q", e.Data)
	}
}

func TestDeterministic(t *testing.T) {
	a, b := build(t, samplePackage()), build(t, samplePackage())
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same package differ")
	}
	p := samplePackage()
	slices.Reverse(p.Files)
	if !bytes.Equal(a, build(t, p)) {
		t.Fatal("the order files were added in changes the package")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Package)
		want string
	}{
		{"name", func(p *Package) { p.Control.Package = "vpn passthrough" }, "package name"},
		{"version underscore", func(p *Package) { p.Control.Version = "1.0_rc1" }, "version"},
		{"version empty", func(p *Package) { p.Control.Version = "" }, "version"},
		{"arch", func(p *Package) { p.Control.Architecture = "MIPS" }, "architecture"},
		{"description", func(p *Package) { p.Control.Description = " " }, "description"},
		{"depends", func(p *Package) { p.Control.Depends = []string{"a (>= 1)"} }, "dependency"},
		{"newline", func(p *Package) { p.Control.URL = "a\nb" }, "line break"},
		{"relative", func(p *Package) { p.Files[0].Path = "usr/bin/x" }, "absolute"},
		{"unclean", func(p *Package) { p.Files[0].Path = "/usr/../bin/x" }, "absolute"},
		{"long", func(p *Package) { p.Files[0].Path = "/" + strings.Repeat("x", 98) }, "99 bytes"},
		{"duplicate", func(p *Package) { p.Files = append(p.Files, p.Files[0]) }, "twice"},
		{"mode", func(p *Package) { p.Files[0].Mode |= 0o4000 }, "permission"},
		{"conffile", func(p *Package) { p.Conffiles = []string{"/etc/config/other"} }, "conffile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := samplePackage()
			tt.edit(p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := samplePackage().Validate(); err != nil {
		t.Fatalf("valid package refused: %v", err)
	}
}

func TestAddTree(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/init.d/x":  {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		"etc/config/x":  {Data: []byte("config x\n"), Mode: 0o644},
		"usr/share/a/b": {Data: []byte("b"), Mode: 0o664},
	}
	var p Package
	if err := p.AddTree(fsys, "/"); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint32{}
	for _, f := range p.Files {
		got[f.Path] = uint32(f.Mode)
	}
	want := map[string]uint32{"/etc/init.d/x": 0o755, "/etc/config/x": 0o644, "/usr/share/a/b": 0o644}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: mode %o, want %o", k, got[k], v)
		}
	}
	var q Package
	if err := q.AddTree(fstest.MapFS{"a": {Data: []byte("x")}}, "/www"); err != nil || q.Files[0].Path != "/www/a" {
		t.Fatalf("prefix: %v %v", err, q.Files)
	}
}

func TestParseControl(t *testing.T) {
	if _, err := ParseControl("Package: a\nPackage: b\n"); err == nil {
		t.Error("repeated field accepted")
	}
	if _, err := ParseControl(" continuation\n"); err == nil {
		t.Error("leading continuation accepted")
	}
	if _, err := ParseControl("no colon\n"); err == nil {
		t.Error("line without a colon accepted")
	}
}

// TestSameAsGNUTar compares our data.tar with what ipkg-build's own command
// (GNU tar --format=gnu --numeric-owner --sort=name) makes of the same tree.
func TestSameAsGNUTar(t *testing.T) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar")
	}
	if out, _ := exec.Command(tarBin, "--version").Output(); !bytes.Contains(out, []byte("GNU tar")) {
		t.Skip("tar is not GNU tar")
	}
	p := samplePackage()
	u, err := Read(bytes.NewReader(build(t, p)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range p.Files {
		name := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, f.Data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(name, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = os.Chmod(path, 0o755)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tarBin, "--format=gnu", "--numeric-owner", "--owner=0", "--group=0", "--sort=name",
		"--mtime=@"+strconv.FormatInt(p.ModTime.Unix(), 10), "-cpf", "-", ".")
	cmd.Dir = dir
	gnu, err := cmd.Output()
	if err != nil {
		t.Skipf("GNU tar cannot do this here: %v", err)
	}
	theirs, err := readTar(gnu)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names(theirs), names(u.Data)) {
		t.Fatalf("member order:\nGNU tar %v\nours    %v", names(theirs), names(u.Data))
	}
	for i, e := range theirs {
		o := u.Data[i]
		if e.Typeflag != o.Typeflag || e.Mode != o.Mode || e.Uid != o.Uid || e.Gid != o.Gid ||
			!e.ModTime.Equal(o.ModTime) || !bytes.Equal(e.Data, o.Data) {
			t.Errorf("%s: GNU tar %+v\nours %+v", e.Name, e, o)
		}
	}
}

func readTar(b []byte) ([]Entry, error) {
	z, err := gz(b)
	if err != nil {
		return nil, err
	}
	return readTarGz(bytes.NewReader(z))
}
