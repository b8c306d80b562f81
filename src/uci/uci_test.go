package uci

import (
	"slices"
	"testing"
)

const refFile = `
config zone 'lan'
	option name 'lan'
config zone
	option name 'wan'
config forwarding
	option src 'lan'
config zone
	option name 'guest'
config rule 'r1'
	option name 'rule1'
	list proto 'tcp'
	list proto 'udp'
	option single 'x'
	list empty ''
`

func mustParse(t *testing.T, in string) *File {
	t.Helper()
	f, err := Parse("test", []byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func TestSectionRef(t *testing.T) {
	f := mustParse(t, refFile)
	for _, tc := range []struct {
		ref  string
		want string // value of option name, "" for no section
	}{
		{"lan", "lan"},
		{"r1", "rule1"},
		{"@zone[0]", "lan"}, // named sections count, as in uci
		{"@zone[1]", "wan"},
		{"@zone[2]", "guest"},
		{"@zone[3]", ""},
		{"@zone[-1]", "guest"},
		{"@zone[-3]", "lan"},
		{"@zone[-4]", ""},
		{"@rule[0]", "rule1"},
		{"@[1]", "wan"},
		{"@[-1]", "rule1"},
		{"@nope[0]", ""},
		{"wan", ""}, // anonymous sections have no name
		{"", ""},
		{"@zone", ""},
		{"@zone[x]", ""},
		{"@zone[1", ""},
		{"@zone[1]x", ""},
		{"@zo ne[0]", ""},
		{"@zone[99999999999999999999]", ""},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			s := f.Section(tc.ref)
			got := ""
			if s != nil {
				got, _ = s.Get("name")
			}
			if got != tc.want {
				t.Errorf("Section(%q) has name %q, want %q", tc.ref, got, tc.want)
			}
		})
	}
}

func TestSectionsOfType(t *testing.T) {
	f := mustParse(t, refFile)
	var names []string
	for _, s := range f.SectionsOfType("zone") {
		n, _ := s.Get("name")
		names = append(names, n)
	}
	if !slices.Equal(names, []string{"lan", "wan", "guest"}) {
		t.Errorf("zones %q", names)
	}
	if got := f.SectionsOfType("none"); len(got) != 0 {
		t.Errorf("SectionsOfType(none) = %v", got)
	}
}

func TestGet(t *testing.T) {
	s := mustParse(t, refFile).Section("r1")
	for _, tc := range []struct {
		name     string
		want     string
		ok       bool
		wantList []string
	}{
		{"name", "rule1", true, []string{"rule1"}},
		{"proto", "tcp udp", true, []string{"tcp", "udp"}},
		{"single", "x", true, []string{"x"}},
		{"empty", "", true, []string{""}},
		{"missing", "", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := s.Get(tc.name)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Get = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
			if l := s.GetList(tc.name); !slices.Equal(l, tc.wantList) {
				t.Errorf("GetList = %q, want %q", l, tc.wantList)
			}
		})
	}
	// GetList returns a copy.
	s.GetList("proto")[0] = "changed"
	if v, _ := s.Get("proto"); v != "tcp udp" {
		t.Errorf("GetList result aliases the section: %q", v)
	}
}

func TestEdit(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(f *File)
		want string
	}{
		{"set new", func(f *File) { f.Section("s").Set("c", "3") },
			"\nconfig t 's'\n\toption a '1'\n\tlist b 'x'\n\toption c '3'\n\n"},
		{"set same keeps place", func(f *File) { f.Section("s").Set("a", "1") },
			"\nconfig t 's'\n\toption a '1'\n\tlist b 'x'\n\n"},
		{"set changed moves to end", func(f *File) { f.Section("s").Set("a", "2") },
			"\nconfig t 's'\n\tlist b 'x'\n\toption a '2'\n\n"},
		{"set replaces list", func(f *File) { f.Section("s").Set("b", "y") },
			"\nconfig t 's'\n\toption a '1'\n\toption b 'y'\n\n"},
		{"set empty deletes", func(f *File) { f.Section("s").Set("a", "") },
			"\nconfig t 's'\n\tlist b 'x'\n\n"},
		{"del", func(f *File) { f.Section("s").Del("b"); f.Section("s").Del("nope") },
			"\nconfig t 's'\n\toption a '1'\n\n"},
		{"add list appends", func(f *File) { f.Section("s").AddList("b", "y") },
			"\nconfig t 's'\n\toption a '1'\n\tlist b 'x'\n\tlist b 'y'\n\n"},
		{"add list converts option", func(f *File) { f.Section("s").AddList("a", "2") },
			"\nconfig t 's'\n\tlist b 'x'\n\tlist a '1'\n\tlist a '2'\n\n"},
		{"add list new", func(f *File) { f.Section("s").AddList("c", "it's") },
			"\nconfig t 's'\n\toption a '1'\n\tlist b 'x'\n\tlist c 'it'\\''s'\n\n"},
		{"add sections", func(f *File) {
			f.AddSection("u", "").Set("x", "1")
			f.AddSection("v", "n").AddList("l", "")
		}, "\nconfig t 's'\n\toption a '1'\n\tlist b 'x'\n\nconfig u\n\toption x '1'\n\nconfig v 'n'\n\tlist l ''\n\n"},
		{"add existing section retypes", func(f *File) {
			if f.AddSection("w", "s") != f.Sections[0] {
				panic("not the existing section")
			}
		}, "\nconfig w 's'\n\toption a '1'\n\tlist b 'x'\n\n"},
		{"package header", func(f *File) { f.Package = "p" },
			"package p\n\nconfig t 's'\n\toption a '1'\n\tlist b 'x'\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustParse(t, "config t s\n option a 1\n list b x\n")
			tc.edit(f)
			got := string(f.Bytes())
			if got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
			if g, err := Parse("again", []byte(got)); err != nil || dump(g) != dump(f) {
				t.Errorf("Bytes does not parse back: %v\n%s", err, got)
			}
		})
	}
}

func TestEditPanics(t *testing.T) {
	s := &Section{Type: "t"}
	f := &File{}
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"set bad name", func() { s.Set("a-b", "x") }},
		{"set empty name", func() { s.Set("", "x") }},
		{"add list bad name", func() { s.AddList("a b", "x") }},
		{"add section bad type", func() { f.AddSection("a b", "") }},
		{"add section empty type", func() { f.AddSection("", "n") }},
		{"add section bad name", func() { f.AddSection("t", "a.b") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.fn()
		})
	}
}

func TestBytesOddStructs(t *testing.T) {
	// Files built by hand, not by Parse: Bytes still writes text that parses.
	f := &File{Sections: []*Section{
		{Type: "a\\b"},
		{Type: "t", Name: "n", Anonymous: true}, // Anonymous wins
		{Type: "t", Options: []*Option{
			{Name: "none"},
			{Name: "empty", Values: []string{""}},
			{Name: "two", Values: []string{"1", "2"}}, // an option has one value: the first
			{Name: "nolist", List: true},
		}},
	}}
	want := "\nconfig 'a\\b'\n\nconfig t\n\nconfig t\n\toption two '1'\n\n"
	if got := string(f.Bytes()); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if _, err := Parse("x", f.Bytes()); err != nil {
		t.Error(err)
	}
	if got := string((&File{}).Bytes()); got != "\n" {
		t.Errorf("empty file: %q", got)
	}
}

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		s           string
		name, typ   bool
		packageName bool
	}{
		{"lan_1", true, true, true},
		{"wifi-device", false, true, true},
		{"a.b", false, true, false},
		{"", false, false, false},
		{"a b", false, false, false},
		{"é", false, false, false},
		{"~!", false, true, false},
	} {
		t.Run(tc.s, func(t *testing.T) {
			if ValidName(tc.s) != tc.name || ValidType(tc.s) != tc.typ || validPackage(tc.s) != tc.packageName {
				t.Errorf("ValidName %v ValidType %v validPackage %v", ValidName(tc.s), ValidType(tc.s), validPackage(tc.s))
			}
		})
	}
}
