package uci

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/internal/samples"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from Bytes")

// sampleFiles are the UCI-format files among OpenWrt's samples.
var sampleFiles = []string{"firewall", "firewall4-helpers", "network.RECONSTRUCTED", "upnpd"}

// roundTrip checks that f written out parses back to the same thing, and
// that writing is stable.
func roundTrip(t testing.TB, f *File) {
	t.Helper()
	out := f.Bytes()
	g, err := Parse(f.Name, out)
	if err != nil {
		t.Fatalf("Bytes output does not parse: %v\n%s", err, out)
	}
	if a, b := dump(f), dump(g); a != b {
		t.Fatalf("round trip changed the file:\nbefore\n%s\nafter\n%s\ntext\n%q", a, b, out)
	}
	if again := g.Bytes(); !bytes.Equal(out, again) {
		t.Fatalf("Bytes is not stable:\n%q\n%q", out, again)
	}
}

func readSample(t testing.TB, name string) []byte { return samples.Read(t, name) }

func TestSamples(t *testing.T) {
	for _, name := range sampleFiles {
		t.Run(name, func(t *testing.T) {
			f, err := Parse(name, readSample(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Sections) == 0 {
				t.Fatal("no sections")
			}
			roundTrip(t, f)
		})
	}
}

// TestSampleValues checks what matters in the samples against values read
// off the files by eye.
func TestSampleValues(t *testing.T) {
	get := func(t *testing.T, f *File, ref, opt string) []string {
		t.Helper()
		s := f.Section(ref)
		if s == nil {
			t.Fatalf("no section %s", ref)
		}
		return s.GetList(opt)
	}
	for _, tc := range []struct {
		file, ref, opt string
		want           []string
	}{
		{"firewall", "@defaults[0]", "syn_flood", []string{"1"}},
		{"firewall", "@defaults[0]", "disable_ipv6", nil}, // commented out
		{"firewall", "@zone[1]", "network", []string{"wan", "wan6"}},
		{"firewall", "@zone[1]", "masq", []string{"1"}},
		{"firewall", "@forwarding[-1]", "dest", []string{"wan"}},
		{"firewall", "@rule[0]", "name", []string{"Allow-DHCP-Renew"}},
		{"firewall4-helpers", "@helper[1]", "module", []string{"nf_conntrack_ftp"}},
		{"network.RECONSTRUCTED", "lan", "ipaddr", []string{"192.168.1.1"}},
		{"network.RECONSTRUCTED", "@device[0]", "ports", []string{"lan1", "lan2", "lan3", "lan4"}},
		{"upnpd", "config", "upnp_lease_file", []string{"/var/run/miniupnpd.leases"}},
		{"upnpd", "@perm_rule[0]", "int_addr", []string{"0.0.0.0/0"}}, // trailing comment cut
		{"upnpd", "@perm_rule[0]", "comment", []string{"Allow high ports"}},
		{"upnpd", "@perm_rule[-1]", "action", []string{"deny"}},
	} {
		t.Run(tc.file+"/"+tc.ref+"/"+tc.opt, func(t *testing.T) {
			f, err := Parse(tc.file, readSample(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := get(t, f, tc.ref, tc.opt); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("pptp helper", func(t *testing.T) {
		f, err := Parse("firewall4-helpers", readSample(t, "firewall4-helpers"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.SectionsOfType("helper") {
			if n, _ := s.Get("name"); n == "pptp" {
				if m, _ := s.Get("module"); m != "nf_conntrack_pptp" {
					t.Errorf("pptp module %q", m)
				}
				return
			}
		}
		t.Error("no pptp helper")
	})
}

// TestGolden parses each testdata/*.uci and compares Bytes with the .golden
// beside it; run with -update to rewrite them, then read the diff.
func TestGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/*.uci")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no testdata/*.uci: %v", err)
	}
	for _, in := range ins {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(filepath.Base(in), data)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, f)
			golden := in[:len(in)-len(".uci")] + ".golden"
			if *update {
				if err := os.WriteFile(golden, f.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Bytes(); !bytes.Equal(got, want) {
				t.Errorf("Bytes differs from %s:\n%s", golden, got)
			}
		})
	}
}

// TestDefaultConfig parses the default config the README documents.
func TestDefaultConfig(t *testing.T) {
	data, err := os.ReadFile("testdata/vpn-passthrough")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse("vpn-passthrough", data)
	if err != nil {
		t.Fatal(err)
	}
	g := f.Section("globals")
	if v, _ := g.Get("mode"); v != "auto" {
		t.Errorf("mode %q", v)
	}
	if l := g.GetList("lan_zone"); !slices.Equal(l, []string{"lan"}) {
		t.Errorf("lan_zone %q", l)
	}
	if _, ok := g.Get("lan_device"); ok {
		t.Error("commented-out lan_device is set")
	}
	for _, ref := range []string{"pptp", "l2tp", "ipsec"} {
		if v, _ := f.Section(ref).Get("enabled"); v != "1" {
			t.Errorf("%s enabled %q", ref, v)
		}
	}
	roundTrip(t, f)
}

// FuzzParse: Parse never panics, and what parses writes out as text that
// parses back to the same sections.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases() {
		f.Add([]byte(tc.in))
	}
	for _, tc := range errorCases() {
		f.Add([]byte(tc.in))
	}
	for _, name := range sampleFiles {
		if b, err := os.ReadFile(filepath.Join(samples.Dir(), name)); err == nil {
			f.Add(b)
		}
	}
	files, _ := filepath.Glob("testdata/*")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		roundTrip(t, file)
	})
}

func BenchmarkParse(b *testing.B) {
	data := readSample(b, "firewall")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for range b.N {
		if _, err := Parse("firewall", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBytes(b *testing.B) {
	f, err := Parse("firewall", readSample(b, "firewall"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for range b.N {
		f.Bytes()
	}
}
