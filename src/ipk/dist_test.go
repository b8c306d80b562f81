package ipk

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Footprint ceilings against regressions, with room for growth; the goals
// (issue 13: mipsel binary 3.5 MiB, packages 1.2 MiB) are what `make size`
// reports against.
const (
	maxMipselBinary = 9 << 19 // 4.5 MiB
	maxIPK          = 2 << 20 // 2 MiB (x86_64 is the largest)
)

// target is one OpenWrt package architecture and what its binary must be.
type target struct {
	arch    string
	machine elf.Machine
	class   elf.Class
	order   binary.ByteOrder
	goarch  string
	setting [2]string // build setting that fixes the float ABI / ISA level
}

var targets = []target{
	{"mips_24kc", elf.EM_MIPS, elf.ELFCLASS32, binary.BigEndian, "mips", [2]string{"GOMIPS", "softfloat"}},
	{"mipsel_24kc", elf.EM_MIPS, elf.ELFCLASS32, binary.LittleEndian, "mipsle", [2]string{"GOMIPS", "softfloat"}},
	{"arm_cortex-a7_neon-vfpv4", elf.EM_ARM, elf.ELFCLASS32, binary.LittleEndian, "arm", [2]string{"GOARM", "7"}},
	{"aarch64_cortex-a53", elf.EM_AARCH64, elf.ELFCLASS64, binary.LittleEndian, "arm64", [2]string{"GOOS", "linux"}},
	{"x86_64", elf.EM_X86_64, elf.ELFCLASS64, binary.LittleEndian, "amd64", [2]string{"GOAMD64", "v1"}},
}

// repoRoot is the repository's root, from the package directory src/ipk.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found: %v", err)
	}
	return root
}

// distDir is where `make ipk` put the packages; tests that need them skip
// unless it is set (make test-pkg sets it).
func distDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("VPNPT_DIST")
	if d == "" {
		t.Skip("VPNPT_DIST not set: run `make test-pkg`")
	}
	return d
}

func readIPK(t *testing.T, dist, pattern string) (string, *Unpacked) {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dist, pattern))
	if err != nil || len(m) != 1 {
		t.Fatalf("want exactly one %s in %s, found %v (%v)", pattern, dist, m, err)
	}
	raw, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > maxIPK {
		t.Errorf("%s: %d bytes, over the %d-byte target", filepath.Base(m[0]), len(raw), maxIPK)
	}
	u, err := Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", m[0], err)
	}
	return filepath.Base(m[0]), u
}

// checkContainer checks what every OpenWrt .ipk must look like and returns
// its control fields.
func checkContainer(t *testing.T, file string, u *Unpacked, name, arch string) map[string]string {
	t.Helper()
	if want := []string{"./debian-binary", "./data.tar.gz", "./control.tar.gz"}; !slices.Equal(u.Members, want) {
		t.Errorf("outer members %v, want %v", u.Members, want)
	}
	if u.DebianBinary != DebianBinary {
		t.Errorf("debian-binary %q", u.DebianBinary)
	}
	for _, n := range []string{"control", "postinst", "prerm"} {
		if _, ok := Find(u.Control, n); !ok {
			t.Errorf("control.tar.gz lacks %s", n)
		}
	}
	if e, _ := Find(u.Control, "postinst"); string(e.Data) != Postinst || e.Mode != 0o755 {
		t.Errorf("postinst (mode %o) is not OpenWrt's default_postinst stub:\n%s", e.Mode, e.Data)
	}
	if e, _ := Find(u.Control, "prerm"); string(e.Data) != Prerm || e.Mode != 0o755 {
		t.Errorf("prerm (mode %o) is not OpenWrt's default_prerm stub:\n%s", e.Mode, e.Data)
	}
	for _, e := range slices.Concat(u.Control, u.Data) {
		if e.Uid != 0 || e.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want 0:0", e.Name, e.Uid, e.Gid)
		}
	}
	ctl, _ := Find(u.Control, "control")
	f, err := ParseControl(string(ctl.Data))
	if err != nil {
		t.Fatal(err)
	}
	version := os.Getenv("VPNPT_VERSION")
	if version == "" {
		version = f["Version"]
	}
	if f["Package"] != name || f["Architecture"] != arch || f["Version"] != version {
		t.Errorf("control Package/Version/Architecture = %q/%q/%q, want %q/%q/%q",
			f["Package"], f["Version"], f["Architecture"], name, version, arch)
	}
	if want := name + "_" + version + "_" + arch + ".ipk"; file != want {
		t.Errorf("file name %s, want %s", file, want)
	}
	if !versionRE.MatchString(f["Version"]) {
		t.Errorf("version %q is not an opkg version", f["Version"])
	}
	if f["Installed-Size"] != formatSize(u.DataTarSize) {
		t.Errorf("Installed-Size %s, want %d (size of the data tar, as ipkg-build)", f["Installed-Size"], u.DataTarSize)
	}
	if f["Description"] == "" || f["Maintainer"] == "" || f["Section"] == "" {
		t.Errorf("control lacks Description, Maintainer or Section:\n%s", ctl.Data)
	}
	return f
}

func formatSize(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// repoFiles lists the regular files under dir with the mode a package
// must give them: 0755 if executable in the repository, else 0644.
func repoFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		mode := int64(0o644)
		if info.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
		out["/"+filepath.ToSlash(rel)] = mode
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDistDaemonPackages(t *testing.T) {
	dist := distDir(t)
	root := repoRoot(t)
	files := repoFiles(t, filepath.Join(root, "files"))
	files["/etc/config/vpn-passthrough"] = 0o600 // INSTALL_CONF, as in the feed Makefile
	for _, tg := range targets {
		t.Run(tg.arch, func(t *testing.T) {
			file, u := readIPK(t, dist, "vpn-passthrough_*_"+tg.arch+".ipk")
			f := checkContainer(t, file, u, "vpn-passthrough", tg.arch)
			if !strings.Contains(f["Depends"], "kmod-nft-queue") || !strings.Contains(f["Suggests"], "kmod-nf-nathelper-extra") {
				t.Errorf("Depends %q / Suggests %q", f["Depends"], f["Suggests"])
			}
			if e, ok := Find(u.Control, "prerm-pkg"); !ok || !bytes.Contains(e.Data, []byte("/usr/share/vpn-passthrough/uninstall.sh")) {
				t.Errorf("no prerm-pkg running uninstall.sh")
			}
			if e, ok := Find(u.Control, "conffiles"); !ok || string(e.Data) != "/etc/config/vpn-passthrough\n" {
				t.Errorf("conffiles %q", e.Data)
			}
			for path, mode := range files {
				e, ok := Find(u.Data, "."+path)
				if !ok {
					t.Errorf("%s from files/ is not in the package", path)
					continue
				}
				want, _ := os.ReadFile(filepath.Join(root, "files", path))
				if e.Mode != mode || !bytes.Equal(e.Data, want) {
					t.Errorf("%s: mode %o (want %o), content equal %v", path, e.Mode, mode, bytes.Equal(e.Data, want))
				}
			}
			for _, e := range u.Data {
				if e.Typeflag == '0' && e.Name != "./usr/bin/vpn-passthrough" {
					if _, ok := files[strings.TrimPrefix(e.Name, ".")]; !ok {
						t.Errorf("package has %s, which is not in files/", e.Name)
					}
				}
			}
			bin, ok := Find(u.Data, "./usr/bin/vpn-passthrough")
			if !ok || bin.Mode != 0o755 {
				t.Fatalf("no /usr/bin/vpn-passthrough with mode 0755 (found %v, mode %o)", ok, bin.Mode)
			}
			if tg.arch == "mipsel_24kc" && len(bin.Data) > maxMipselBinary {
				t.Errorf("mipsel binary %d bytes, over the %d-byte target", len(bin.Data), maxMipselBinary)
			}
			t.Logf("binary %d bytes, data tar %d bytes", len(bin.Data), u.DataTarSize)
			checkELF(t, bin.Data, tg, f["Version"])
		})
	}
}

// checkELF checks machine, class, byte order, static linking, stripping and
// the float ABI. Go records no float ABI in ARM's e_flags (no
// EF_ARM_ABI_FLOAT_HARD or _SOFT; it writes EABI5 only), so for ARM the
// evidence is the GOARM=7 build setting (VFPv3, hard float); for MIPS the
// linker writes .MIPS.abiflags and .gnu.attributes, which must say soft
// float, because ath79 and ramips cores have no FPU.
func checkELF(t *testing.T, b []byte, tg target, version string) {
	t.Helper()
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not ELF: %v", err)
	}
	defer ef.Close()
	if ef.Machine != tg.machine || ef.Class != tg.class || ef.ByteOrder != tg.order || ef.Type != elf.ET_EXEC {
		t.Errorf("ELF %v %v %v %v, want %v %v %v ET_EXEC", ef.Machine, ef.Class, ef.ByteOrder, ef.Type, tg.machine, tg.class, tg.order)
	}
	// The 32-bit small-flash targets: 4 KiB segment alignment (-R=0x1000)
	// and no inlining (-gcflags=all=-l), see the Makefile's CROSS_*FLAGS.
	small := tg.goarch == "mips" || tg.goarch == "mipsle" || tg.goarch == "arm"
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("not static: has %v", p.Type)
		}
		if p.Type != elf.PT_LOAD {
			continue
		}
		// The kernel maps a segment only if offset and address agree
		// modulo the page size: 4 KiB pages on these targets.
		if p.Off%4096 != p.Vaddr%4096 {
			t.Errorf("LOAD segment at offset %#x, address %#x: not congruent modulo 4 KiB", p.Off, p.Vaddr)
		}
		if small && p.Align != 0x1000 {
			t.Errorf("LOAD segment aligned to %#x, want 0x1000 (-R=0x1000)", p.Align)
		}
	}
	for _, s := range ef.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug") || strings.HasPrefix(s.Name, ".zdebug") {
			t.Errorf("not stripped: has %s", s.Name)
		}
	}
	switch tg.machine {
	case elf.EM_MIPS:
		// EF_MIPS_ARCH_32 | EF_MIPS_ABI_O32 | EF_MIPS_CPIC: MIPS32, o32.
		if ef.FileHeader.Entry == 0 || elfFlags(b, tg) != 0x50001004 {
			t.Errorf("MIPS e_flags %#x, want 0x50001004 (MIPS32 o32)", elfFlags(b, tg))
		}
		s := ef.Section(".MIPS.abiflags")
		if s == nil {
			t.Fatal("no .MIPS.abiflags section")
		}
		d, err := s.Data()
		if err != nil || len(d) < 24 {
			t.Fatalf(".MIPS.abiflags: %v (%d bytes)", err, len(d))
		}
		// struct: version u16, isa_level, isa_rev, gpr_size, cpr1_size,
		// cpr2_size, fp_abi u8, ... Val_GNU_MIPS_ABI_FP_SOFT = 3.
		if isa, fp := d[2], d[7]; isa != 32 || fp != 3 {
			t.Errorf(".MIPS.abiflags isa_level %d fp_abi %d, want 32 and 3 (soft float)", isa, fp)
		}
		if fp := gnuMIPSFP(t, ef); fp != 3 {
			t.Errorf(".gnu.attributes Tag_GNU_MIPS_ABI_FP = %d, want 3 (soft float)", fp)
		}
	case elf.EM_ARM:
		if f := elfFlags(b, tg); f&0xff000000 != 0x05000000 || f&0x200 != 0 {
			t.Errorf("ARM e_flags %#x, want EABI version 5 and no soft-float flag", f)
		}
	}
	bi, err := buildinfo.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("no Go build info: %v", err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	want := map[string]string{"GOOS": "linux", "GOARCH": tg.goarch, "CGO_ENABLED": "0", "-trimpath": "true", tg.setting[0]: tg.setting[1], "-gcflags": ""}
	if small {
		want["-gcflags"] = "all=-l"
	}
	for k, v := range want {
		if settings[k] != v && !(k == "GOARM" && settings[k] == "7,hardfloat") {
			t.Errorf("build setting %s = %q, want %q", k, settings[k], v)
		}
	}
	// -trimpath keeps -ldflags out of the build info; -X main.version
	// leaves the string itself in the binary.
	if !bytes.Contains(b, []byte(version)) {
		t.Errorf("binary does not contain its package version %s (-X main.version)", version)
	}
}

func elfFlags(b []byte, tg target) uint32 {
	if tg.class == elf.ELFCLASS32 {
		return tg.order.Uint32(b[36:40])
	}
	return tg.order.Uint32(b[48:52])
}

// gnuMIPSFP reads Tag_GNU_MIPS_ABI_FP (4) from the "gnu" vendor's file
// attributes in .gnu.attributes: 'A', then per vendor u32 length, name,
// then per scope a tag byte, u32 length and (tag, ULEB128 value) pairs.
func gnuMIPSFP(t *testing.T, ef *elf.File) int {
	t.Helper()
	s := ef.Section(".gnu.attributes")
	if s == nil {
		t.Fatal("no .gnu.attributes section")
	}
	d, err := s.Data()
	if err != nil || len(d) < 1 || d[0] != 'A' {
		t.Fatalf(".gnu.attributes: %v %q", err, d)
	}
	d = d[1:]
	for len(d) >= 4 {
		n := int(ef.ByteOrder.Uint32(d))
		if n < 4 || n > len(d) {
			break
		}
		vendor, rest := d[4:n], d[n:]
		name, body, _ := bytes.Cut(vendor, []byte{0})
		if string(name) == "gnu" && len(body) >= 5 && body[0] == 1 {
			attrs := body[5:]
			for len(attrs) >= 2 {
				tag, val := attrs[0], attrs[1]
				if tag == 4 {
					return int(val)
				}
				attrs = attrs[2:]
			}
		}
		d = rest
	}
	return -1
}

func TestDistLuciPackage(t *testing.T) {
	dist := distDir(t)
	root := repoRoot(t)
	file, u := readIPK(t, dist, "luci-app-vpn-passthrough_*_all.ipk")
	f := checkContainer(t, file, u, "luci-app-vpn-passthrough", "all")
	if !strings.Contains(f["Depends"], "luci-base") || !strings.Contains(f["Depends"], "vpn-passthrough") {
		t.Errorf("Depends %q", f["Depends"])
	}
	want := map[string]string{}
	for p, mode := range repoFiles(t, filepath.Join(root, "luci-app", "htdocs")) {
		want["/www"+p] = filepath.Join(root, "luci-app", "htdocs", p)
		_ = mode
	}
	for p := range repoFiles(t, filepath.Join(root, "luci-app", "root")) {
		want[p] = filepath.Join(root, "luci-app", "root", p)
	}
	for _, p := range []string{"/www/luci-static/resources/view/vpn-passthrough/overview.js",
		"/usr/share/luci/menu.d/luci-app-vpn-passthrough.json",
		"/usr/share/rpcd/acl.d/luci-app-vpn-passthrough.json"} {
		if _, ok := want[p]; !ok {
			t.Errorf("luci-app/ has no source for %s", p)
		}
	}
	for p, src := range want {
		e, ok := Find(u.Data, "."+p)
		b, _ := os.ReadFile(src)
		if !ok || !bytes.Equal(e.Data, b) || e.Mode != 0o644 {
			t.Errorf("%s: present %v, mode %o, same content %v", p, ok, e.Mode, bytes.Equal(e.Data, b))
		}
		if strings.HasSuffix(p, ".json") && !json.Valid(b) {
			t.Errorf("%s is not valid JSON", p)
		}
	}
	if e, ok := Find(u.Control, "postinst-pkg"); !ok || !bytes.Contains(e.Data, []byte("rpcd")) {
		t.Errorf("no postinst-pkg reloading rpcd")
	}
}

// TestDistMatchesFeed: the control fields of `make ipk`'s packages are what
// the feed Makefiles declare (so an SDK build and a hand-built package say
// the same), and the version is `make version`'s, the one `make dist`
// writes into the feed. TestDistAPK holds the .apk to the .ipk.
func TestDistMatchesFeed(t *testing.T) {
	dist := distDir(t)
	root := repoRoot(t)
	words := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	plusList := func(deps string, skipAt bool) string {
		var out []string
		for _, d := range strings.Fields(deps) {
			if skipAt && strings.HasPrefix(d, "@") {
				continue
			}
			out = append(out, strings.TrimPrefix(d, "+"))
		}
		return strings.Join(out, ", ")
	}
	d := runFeed(t, filepath.Join(root, "openwrt-feed", "net", "vpn-passthrough")).vars
	_, u := readIPK(t, dist, "vpn-passthrough_*_x86_64.ipk")
	ctl, _ := Find(u.Control, "control")
	f, err := ParseControl(string(ctl.Data))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"Package": d["PKG_NAME"], "License": d["PKG_LICENSE"], "Maintainer": d["PKG_MAINTAINER"],
		"URL": d["URL"], "Section": d["SECTION"], "Depends": plusList(d["DEPENDS"], true), "SourceName": d["PKG_NAME"],
		"Description": d["DESCRIPTION"]} {
		if words(f[k]) != words(want) || want == "" {
			t.Errorf("vpn-passthrough .ipk %s %q, feed says %q", k, f[k], want)
		}
	}
	if v := os.Getenv("VPNPT_VERSION"); v != "" && f["Version"] != v {
		t.Errorf("Version %s, make version %s", f["Version"], v)
	}
	l := runFeed(t, filepath.Join(root, "openwrt-feed", "luci", "luci-app-vpn-passthrough")).vars
	_, lu := readIPK(t, dist, "luci-app-vpn-passthrough_*_all.ipk")
	lctl, _ := Find(lu.Control, "control")
	lf, err := ParseControl(string(lctl.Data))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"Package": l["PKG_NAME"], "License": l["PKG_LICENSE"], "Maintainer": l["PKG_MAINTAINER"],
		"Section": l["SECTION"], "Depends": plusList(l["DEPENDS"], false), "Architecture": l["PKGARCH"], "Description": l["DESCRIPTION"]} {
		if words(lf[k]) != words(want) || want == "" {
			t.Errorf("luci .ipk %s %q, feed says %q", k, lf[k], want)
		}
	}
}
