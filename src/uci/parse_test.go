package uci

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// dump renders everything Parse produces except line numbers, one item a
// line, so that tests can compare files as text.
func dump(f *File) string {
	var b strings.Builder
	if f.Package != "" {
		fmt.Fprintf(&b, "package %s\n", f.Package)
	}
	for _, s := range f.Sections {
		name := s.Name
		if s.Anonymous {
			name = "@"
		}
		fmt.Fprintf(&b, "config %s %s\n", s.Type, name)
		for _, o := range s.Options {
			if o.List {
				fmt.Fprintf(&b, "  list %s %q\n", o.Name, o.Values)
			} else {
				fmt.Fprintf(&b, "  option %s %q\n", o.Name, o.Values)
			}
		}
	}
	return b.String()
}

type parseCase struct {
	name string
	in   string
	want string // dump of the result
}

// parseCases are inputs that parse. Cases marked libuci are taken from
// libuci's own tests (openwrt/uci test/references, tests/shunit2) and what
// its file.c does with them.
func parseCases() []parseCase {
	return []parseCase{
		{"empty", "", ""},
		{"only comments and blanks", "# a\n\n   \t\n#config x y\n", ""},
		{"named and anonymous", "config globals 'globals'\n\toption enabled '1'\n\nconfig zone\n\toption name lan\n",
			"config globals globals\n  option enabled [\"1\"]\nconfig zone @\n  option name [\"lan\"]\n"},
		{"unquoted single double", "config t\n option a x\n option b 'y z'\n option c \"w v\"\n",
			"config t @\n  option a [\"x\"]\n  option b [\"y z\"]\n  option c [\"w v\"]\n"},
		{"quoted names libuci", "package 'import'\n\nconfig 'type' 'section'\n\toption 'opt' 'val'\n",
			"package import\nconfig type section\n  option opt [\"val\"]\n"},
		{"adjacent pieces join", "config t\n option a 'a'\"b\"c'd'\n",
			"config t @\n  option a [\"abcd\"]\n"},
		{"double quote escapes", `config t` + "\n" + ` option a "q\"b\\s\d\n"` + "\n",
			"config t @\n  option a [\"q\\\"b\\\\sdn\"]\n"},
		{"unquoted escapes", "config t\n option a a\\ b\\#c\\'\\\"\n",
			"config t @\n  option a [\"a b#c'\\\"\"]\n"},
		{"no escapes in single quotes", "config t\n option a 'x\\y'\n option b 'x\\'\n",
			"config t @\n  option a [\"x\\\\y\"]\n  option b [\"x\\\\\"]\n"},
		{"escaped single quote idiom", "config t\n option a 'it'\\''s'\n",
			"config t @\n  option a [\"it's\"]\n"},
		{"multi-line single quote keeps newlines", "config t\n option a 'one\ntwo\n'\n option b c\n",
			"config t @\n  option a [\"one\\ntwo\\n\"]\n  option b [\"c\"]\n"},
		{"backslash newline joins unquoted", "config t\n option a abc\\\ndef\n",
			"config t @\n  option a [\"abcdef\"]\n"},
		{"libuci multi-line double quote", "config t\n\toption mul_line_opt_dq \"\\\"Hello, \\\nWorld.\\'\n\"\n",
			"config t @\n  option mul_line_opt_dq [\"\\\"Hello, World.'\\n\"]\n"},
		{"libuci multi-line single quote", "config t\n\toption mul_line_opt_sq \\''line 1\nline 2 \\\nline 3'\\'\n",
			"config t @\n  option mul_line_opt_sq [\"'line 1\\nline 2 \\\\\\nline 3'\"]\n"},
		{"libuci multi-line with trailing comment", "config sockd 'instance0'\n\toption extra_config '\n\t\tclient pass {\n\t\t} ' # ends here\n\tlist internal_network vpn\n",
			"config sockd instance0\n  option extra_config [\"\\n\\t\\tclient pass {\\n\\t\\t} \"]\n  list internal_network [\"vpn\"]\n"},
		{"trailing comments", "config t 'n' # c\n option a b # c\n option c 'd' #c\n option e f#g\n",
			"config t n\n  option a [\"b\"]\n  option c [\"d\"]\n  option e [\"f\"]\n"},
		{"hash inside quotes", "config t\n option a '#x' \n option b \"#y\"\n",
			"config t @\n  option a [\"#x\"]\n  option b [\"#y\"]\n"},
		{"tabs spaces crlf", "config\tt \t'n'\r\n\t option  \t a\t\tb \r\n\r\n",
			"config t n\n  option a [\"b\"]\n"},
		{"no final newline", "config t\n option a b", "config t @\n  option a [\"b\"]\n"},
		{"backslash at eof", "config t\n option a b\\", "config t @\n  option a [\"b\"]\n"},
		{"keyword abbreviations", "p pk\nc t n\no a b\nl c d\n",
			"package pk\nconfig t n\n  option a [\"b\"]\n  list c [\"d\"]\n"},
		{"semicolons", "config t n; option a b; list c d;list c e\n",
			"config t n\n  option a [\"b\"]\n  list c [\"d\" \"e\"]\n"},
		{"quoted semicolon", "config t\n option a 'x;y'\n option b x\\;y\n",
			"config t @\n  option a [\"x;y\"]\n  option b [\"x;y\"]\n"},
		{"repeated option replaces and moves", "config t\n option a 1\n option b 2\n option a 3\n",
			"config t @\n  option b [\"2\"]\n  option a [\"3\"]\n"},
		{"repeated equal option stays", "config t\n option a 1\n option b 2\n option a 1\n",
			"config t @\n  option a [\"1\"]\n  option b [\"2\"]\n"},
		{"list after option joins", "config t\n option a 1\n option b 2\n list a 3\n",
			"config t @\n  option b [\"2\"]\n  list a [\"1\" \"3\"]\n"},
		{"option after list replaces", "config t\n list a 1\n list a 2\n option a 3\n",
			"config t @\n  option a [\"3\"]\n"},
		{"empty option ignored", "config t\n option a ''\n option b x\n option b \"\"\n",
			"config t @\n  option b [\"x\"]\n"},
		{"empty list item kept", "config t\n list a ''\n list a x\n",
			"config t @\n  list a [\"\" \"x\"]\n"},
		{"empty trailing argument", "config t\n option a b ''\n", "config t @\n  option a [\"b\"]\n"},
		{"reopened section merges", "config t n\n option a 1\nconfig u\nconfig t n\n option b 2\n",
			"config t n\n  option a [\"1\"]\n  option b [\"2\"]\nconfig u @\n"},
		{"empty name is anonymous", "config t ''\n", "config t @\n"},
		{"types allow punctuation", "config wifi-device radio0\nconfig 'a#b'\nconfig x.y[1]\n",
			"config wifi-device radio0\nconfig a#b @\nconfig x.y[1] @\n"},
		{"package with dash", "package vpn-passthrough\nconfig t\n",
			"package vpn-passthrough\nconfig t @\n"},
		{"eight-bit values", "config t\n option a 'h\xc3\xa9\xff'\n", "config t @\n  option a [\"h\xc3\xa9\\xff\"]\n"},
		{"leading blanks before keyword", "   config t\n\t\toption a b\n", "config t @\n  option a [\"b\"]\n"},
		{"comment keyword after semicolon", "config t n; # c\n", "config t n\n"},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("test", []byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := dump(f); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

type errorCase struct {
	name string
	in   string
	line int
	msg  string // substring of the message
}

func errorCases() []errorCase {
	return []errorCase{
		{"option before config", "# c\noption a b\n", 2, "option outside of a section"},
		{"list before config", "\nlist a b\nconfig t\n", 2, "list outside of a section"},
		{"option after package only", "package p\noption a b\n", 2, "option outside of a section"},
		{"unterminated single", "config t\n option a 'abc\n\nxyz\n", 2, "unterminated ' quote"},
		{"unterminated double", "config t\n\n option a \"abc", 3, `unterminated " quote`},
		{"unterminated double by escape", "config t\n option a \"abc\\\"\n", 2, `unterminated " quote`},
		{"unterminated in name", "config 't\n", 1, "unterminated ' quote"},
		{"option without value", "config t\n option a\n", 2, `option "a" without value`},
		{"option without value eof", "config t\n option a", 2, `option "a" without value`},
		{"option value is comment", "config t\n option a # b\n", 2, `option "a" without value`},
		{"option value is semicolon", "config t\n option a ; option b c\n", 2, `option "a" without value`},
		{"list without value", "config t\n list a\n", 2, `list "a" without value`},
		{"option without name", "config t\n option\n", 2, "option without name"},
		{"option without name eof", "config t\n option", 2, "option without name"},
		{"option empty name", "config t\n option '' x\n", 2, "option without name"},
		{"config without type", "config\n", 1, "config without type"},
		{"config without type eof", "config", 1, "config without type"},
		{"config empty type", "config '' n\n", 1, "config without type"},
		{"package without name", "package \n", 1, "package without name"},
		{"section name dash", "config t 'a-b'\n", 1, `invalid section name "a-b"`},
		{"section name space", "config t 'a b'\n", 1, `invalid section name "a b"`},
		{"section name dot", "config t a.b\n", 1, `invalid section name "a.b"`},
		{"option name dot", "config t\n option a.b c\n", 2, `invalid option name "a.b"`},
		{"option name space", "config t\n option 'a b' c\n", 2, `invalid option name "a b"`},
		{"option name 8-bit", "config t\n option \xc3\xa9 c\n", 2, "invalid option name"},
		{"list name dash", "config t\n list a-b c\n", 2, `invalid list name "a-b"`},
		{"type with space", "config 'a b'\n", 1, `invalid section type "a b"`},
		{"type 8-bit", "config \xc3\xa9\n", 1, "invalid section type"},
		{"type control char", "config 'a\x01'\n", 1, "invalid section type"},
		{"package name dot", "package a.b\n", 1, `invalid package name "a.b"`},
		{"too many option args", "config t\n option a b c\n", 2, `too many arguments ("c")`},
		{"too many config args", "config t n x\n", 1, "too many arguments"},
		{"too many package args", "package p q\n", 1, "too many arguments"},
		{"unknown statement", "config t\n foo a b\n", 2, `invalid statement "foo"`},
		{"misspelt keyword", "config t\n options a b\n", 2, `invalid statement "options"`},
		{"quoted keyword", "'config' t\n", 1, `invalid statement "'config'"`},
		{"keyword case", "Config t\n", 1, `invalid statement "Config"`},
		{"semicolon at end of line", "config t n;\n", 1, "expected a statement after ';'"},
		{"semicolon then anonymous config", "config t; option a b\n", 1, "too many arguments"},
		{"redefined with other type", "config t n\nconfig u n\n", 2, `section "n" redefined with type "u" (type "t" on line 1)`},
		{"second package", "package a\npackage b\n", 2, "second package statement"},
		{"package after section", "config t\npackage p\n", 2, "package statement after the first section"},
		{"nul byte", "config t\n option a 'b\x00'\n", 2, "NUL byte"},
		{"line after multi-line value", "config t\n option a 'x\ny'\n option b\n", 4, `option "b" without value`},
		{"line after joined line", "config t\n option a x\\\ny\n bogus\n", 4, `invalid statement "bogus"`},
		{"backslash newline then indent ends token", "config t\n list a abc\\\n\tdef\n", 3, `too many arguments ("def")`},
		{"crlf line numbers", "config t\r\n\r\n option a\r\n", 3, `option "a" without value`},
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases() {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("vpn-passthrough", []byte(tc.in))
			if err == nil {
				t.Fatalf("Parse succeeded:\n%s", dump(f))
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is %T, want *SyntaxError", err, err)
			}
			if se.Line != tc.line || se.File != "vpn-passthrough" || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("error %q, want vpn-passthrough:%d: ...%s...", err, tc.line, tc.msg)
			}
			if want := fmt.Sprintf("vpn-passthrough:%d: ", tc.line); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
}

func TestErrorWithoutName(t *testing.T) {
	_, err := Parse("", []byte("option a b\n"))
	if err == nil || err.Error() != "line 1: option outside of a section" {
		t.Errorf("got %v", err)
	}
}

func TestLines(t *testing.T) {
	in := "# head\nconfig t n\n\toption a 'x\ny'\n\tlist l 1\n\n\tlist l 2\nconfig u\n\toption b c\n"
	f, err := Parse("test", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range f.Sections {
		got = append(got, fmt.Sprintf("%s:%d", s.Type, s.Line))
		for _, o := range s.Options {
			got = append(got, fmt.Sprintf("%s:%d", o.Name, o.Line))
		}
	}
	want := "t:2 a:3 l:5 u:8 b:9"
	if strings.Join(got, " ") != want {
		t.Errorf("lines %q, want %q", strings.Join(got, " "), want)
	}
}
