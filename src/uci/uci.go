package uci

import (
	"slices"
	"strconv"
	"strings"
)

// File is one parsed UCI file: one package.
type File struct {
	Name     string // the name given to Parse; used in errors
	Package  string // from a `package` statement, "" if there was none
	Sections []*Section
}

// Section is a `config TYPE [NAME]` block.
type Section struct {
	Type      string
	Name      string // "" when Anonymous
	Anonymous bool   // no name: address it as @TYPE[N]
	Options   []*Option
	Line      int // line of the config statement; 0 if made by AddSection
}

// Option is an `option NAME VALUE` (List false, exactly one value) or the
// `list NAME VALUE` statements of one name (List true, one value each, in
// order).
type Option struct {
	Name   string
	List   bool
	Values []string
	Line   int // line of the statement that made it; 0 if made by a method
}

// ValidName reports whether s may name a section or an option:
// [A-Za-z0-9_]+, as libuci requires.
func ValidName(s string) bool {
	return validStr(s, func(c byte) bool { return false })
}

// ValidType reports whether s may be a section type: printable ASCII
// without space. libuci allows more here than in names (wifi-device).
func ValidType(s string) bool {
	return validStr(s, func(c byte) bool { return c >= 33 && c <= 126 })
}

func validPackage(s string) bool {
	return validStr(s, func(c byte) bool { return c == '-' })
}

func validStr(s string, extra func(byte) bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '_' || extra(c) {
			continue
		}
		return false
	}
	return true
}

// Section returns the section that ref names, or nil. ref is a section name
// or, as for `uci get`, "@TYPE[N]": the Nth section of that type counting
// from 0, named ones included, with N < 0 counting back from the last
// (-1). "@[N]" counts sections of every type.
func (f *File) Section(ref string) *Section {
	if !strings.HasPrefix(ref, "@") {
		if ref == "" {
			return nil
		}
		for _, s := range f.Sections {
			if !s.Anonymous && s.Name == ref {
				return s
			}
		}
		return nil
	}
	open := strings.IndexByte(ref, '[')
	if open < 0 || !strings.HasSuffix(ref, "]") {
		return nil
	}
	typ := ref[1:open]
	n, err := strconv.Atoi(ref[open+1 : len(ref)-1])
	if err != nil || (typ != "" && !ValidType(typ)) {
		return nil
	}
	var of []*Section
	for _, s := range f.Sections {
		if typ == "" || s.Type == typ {
			of = append(of, s)
		}
	}
	if n < 0 {
		n += len(of)
	}
	if n < 0 || n >= len(of) {
		return nil
	}
	return of[n]
}

// SectionsOfType returns the sections of type typ in file order.
func (f *File) SectionsOfType(typ string) []*Section {
	var of []*Section
	for _, s := range f.Sections {
		if s.Type == typ {
			of = append(of, s)
		}
	}
	return of
}

// AddSection appends a section and returns it; name "" makes an anonymous
// one. Like `uci set PKG.NAME=TYPE`, an existing section of that name is
// kept in place, given type typ and returned. It panics if typ or name is
// invalid (see ValidType, ValidName): that is a bug in the caller, and
// writing it out would give a file that does not parse.
func (f *File) AddSection(typ, name string) *Section {
	if !ValidType(typ) {
		panic("uci: AddSection: invalid section type " + strconv.Quote(typ))
	}
	if name != "" {
		if !ValidName(name) {
			panic("uci: AddSection: invalid section name " + strconv.Quote(name))
		}
		if s := f.Section(name); s != nil {
			s.Type = typ
			return s
		}
	}
	s := &Section{Type: typ, Name: name, Anonymous: name == ""}
	f.Sections = append(f.Sections, s)
	return s
}

// Option returns the option or list called name, or nil.
func (s *Section) Option(name string) *Option {
	for _, o := range s.Options {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// Get returns what `uci get` prints for an option: its value, or for a list
// its values joined by single spaces (as `uci get` and the shell's config_get
// give them). Callers that want a list to be an error where one value is
// expected can check Option(name).List.
func (s *Section) Get(name string) (string, bool) {
	o := s.Option(name)
	if o == nil || len(o.Values) == 0 {
		return "", false
	}
	if !o.List {
		return o.Values[0], true
	}
	return strings.Join(o.Values, " "), true
}

// GetList returns a copy of a list's values, or an option's value as a
// one-element list (config_list_foreach in OpenWrt's shell library takes
// either), or nil.
func (s *Section) GetList(name string) []string {
	o := s.Option(name)
	if o == nil || len(o.Values) == 0 {
		return nil
	}
	if !o.List {
		return []string{o.Values[0]}
	}
	return append([]string(nil), o.Values...)
}

// Set sets option name to value, replacing an option or list of that name,
// like `uci set`: an empty value deletes it, and a changed option moves to
// the end of the section. It panics if name is not ValidName.
func (s *Section) Set(name, value string) {
	mustName("Set", name)
	if value == "" {
		s.Del(name)
		return
	}
	s.set(s.Option(name), name, value, 0)
}

// Del deletes the option or list called name, if any.
func (s *Section) Del(name string) {
	kept := s.Options[:0]
	for _, o := range s.Options {
		if o.Name != name {
			kept = append(kept, o)
		}
	}
	clear(s.Options[len(kept):])
	s.Options = kept
}

// AddList appends value to list name, like `uci add_list`: a list is made if
// there is none, and an option of that name becomes a list holding its value
// and then this one (moved to the end of the section). It panics if name is
// not ValidName.
func (s *Section) AddList(name, value string) {
	mustName("AddList", name)
	s.addList(s.Option(name), name, value, 0)
}

func mustName(method, name string) {
	if !ValidName(name) {
		panic("uci: " + method + ": invalid option name " + strconv.Quote(name))
	}
}

// set is libuci's uci_set for an option, shared by the parser and Set. o is
// the option already called name, or nil: the parser finds it in a map, so
// that long sections do not parse in quadratic time. set returns the option
// that now holds name (nil if none). An empty value is ignored: the parser
// does so as libuci does.
func (s *Section) set(o *Option, name, value string, line int) *Option {
	if value == "" || (o != nil && !o.List && len(o.Values) == 1 && o.Values[0] == value) {
		return o
	}
	if o != nil {
		s.remove(o)
	}
	o = &Option{Name: name, Values: []string{value}, Line: line}
	s.Options = append(s.Options, o)
	return o
}

// addList is libuci's uci_add_list, shared by the parser and AddList; o and
// the result are as for set.
func (s *Section) addList(o *Option, name, value string, line int) *Option {
	if o != nil && o.List {
		o.Values = append(o.Values, value)
		return o
	}
	n := &Option{Name: name, List: true, Line: line}
	if o != nil {
		n.Values = append(n.Values, o.Values...)
		n.Line = o.Line
		s.remove(o)
	}
	n.Values = append(n.Values, value)
	s.Options = append(s.Options, n)
	return n
}

func (s *Section) remove(o *Option) {
	if i := slices.Index(s.Options, o); i >= 0 {
		s.Options = slices.Delete(s.Options, i, i+1)
	}
}
