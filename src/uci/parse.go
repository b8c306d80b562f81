package uci

import (
	"bytes"
	"fmt"
	"strings"
)

// SyntaxError is a parse error and the place it was found.
type SyntaxError struct {
	File string // the name given to Parse
	Line int    // 1-based
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Parse parses the contents of one UCI file. name is the file's name (for
// /etc/config/firewall, "firewall"); it goes into File.Name and into errors,
// which are *SyntaxError.
func Parse(name string, data []byte) (*File, error) {
	p := &parser{
		data:  data,
		f:     &File{Name: name},
		named: map[string]*Section{},
		opts:  map[*Section]map[string]*Option{},
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		// libuci reads lines with fgets and would silently cut the line here.
		p.line = 1 + bytes.Count(data[:i], []byte{'\n'})
		return nil, p.errorf("NUL byte")
	}
	for p.next < len(data) {
		p.fetch()
		if err := p.statements(); err != nil {
			return nil, err
		}
	}
	return p.f, nil
}

// parser walks data the way libuci's parser walks its line buffer, so that
// the corners (comments inside tokens, ';', joined lines) come out the same.
//
// libuci keeps one line in a buffer and appends the next physical line when
// a quote or a trailing backslash runs past its end. Here the buffer is
// data[pos:end]: end is just past the current line's '\n' (or at EOF, or at
// a '#' that cut the line short), next is where the next physical line
// starts. peek returns 0 at the end of the buffer, as the C string does; NUL
// bytes are refused up front so 0 cannot be data.
type parser struct {
	data []byte
	pos  int
	end  int
	next int
	line int // number of the last physical line fetched

	f     *File
	cur   *Section // where option and list statements go
	named map[string]*Section
	opts  map[*Section]map[string]*Option // options by name, for speed
}

func (p *parser) errorf(format string, args ...any) error {
	return p.errorAt(p.line, format, args...)
}

func (p *parser) errorAt(line int, format string, args ...any) error {
	return &SyntaxError{File: p.f.Name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) peek() byte {
	if p.pos < p.end {
		return p.data[p.pos]
	}
	return 0
}

// fetch continues the buffer at pos with the next physical line, dropping
// what was left from pos on (a line break being joined). At EOF the buffer
// ends at pos.
func (p *parser) fetch() {
	if p.next >= len(p.data) {
		p.end = p.pos
		return
	}
	p.pos = p.next
	if i := bytes.IndexByte(p.data[p.pos:], '\n'); i >= 0 {
		p.end = p.pos + i + 1
	} else {
		p.end = len(p.data)
	}
	p.next = p.end
	p.line++
}

// isSpace is C's isspace in the C locale, which libuci uses.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func (p *parser) skipSpace() {
	for p.pos < p.end && isSpace(p.data[p.pos]) {
		p.pos++
	}
}

// statements parses the statements on one line (libuci's uci_parse_line).
func (p *parser) statements() error {
	p.skipSpace()
	for first := true; ; first = false {
		// Between statements libuci uses strtok(" \t"), which does not skip
		// other white space: a ';' at the end of a line is an error there.
		for p.pos < p.end && (p.data[p.pos] == ' ' || p.data[p.pos] == '\t') {
			p.pos++
		}
		if p.pos >= p.end {
			return nil
		}
		start := p.pos
		for p.pos < p.end && p.data[p.pos] != ' ' && p.data[p.pos] != '\t' {
			p.pos++
		}
		word := string(p.data[start:p.pos])
		if word[0] == '#' {
			return nil // a comment: the rest of the line goes
		}
		kw := keyword(word)
		if kw == "" {
			trimmed := strings.TrimRight(word, " \t\n\v\f\r")
			switch {
			case trimmed == "" && !first:
				return p.errorf("expected a statement after ';'")
			case keyword(trimmed) != "":
				// "config\n": the keyword is all there is.
				return p.missing(keyword(trimmed))
			}
			return p.errorf("invalid statement %q", trimmed)
		}
		if p.pos >= p.end {
			return p.missing(kw)
		}
		p.pos++ // the space or tab after the keyword
		var err error
		switch kw {
		case "package":
			err = p.pkg()
		case "config":
			err = p.config()
		default:
			err = p.option(kw == "list")
		}
		if err != nil {
			return err
		}
	}
}

// keyword returns the statement a word names, or "". libuci also takes the
// first letter alone.
func keyword(w string) string {
	for _, k := range [...]string{"package", "config", "option", "list"} {
		if w == k || w == k[:1] {
			return k
		}
	}
	return ""
}

func (p *parser) missing(kw string) error {
	switch kw {
	case "config":
		return p.errorf("config without type")
	default:
		return p.errorf("%s without name", kw)
	}
}

// arg reads one argument (libuci's next_arg). quoted reports whether any
// piece of it was quoted, which tells an empty quoted value from none.
func (p *parser) arg() (s string, quoted bool, err error) {
	p.skipSpace()
	if p.peek() == ';' {
		p.pos++
		return "", false, nil
	}
	var b []byte
	sep := true // whether to consume the white space that ended the token
loop:
	for {
		switch c := p.peek(); c {
		case 0:
			break loop
		case '#':
			p.end = p.pos // the rest of the line is a comment
			break loop
		case ';':
			sep = false // left for the next arg, which makes it an empty one
			break loop
		case '\'':
			quoted = true
			if b, err = p.singleQuoted(b); err != nil {
				return "", false, err
			}
		case '"':
			quoted = true
			if b, err = p.doubleQuoted(b); err != nil {
				return "", false, err
			}
		case '\\':
			if p.backslash() {
				b = append(b, p.data[p.pos])
				p.pos++
			}
		default:
			b = append(b, c)
			p.pos++
		}
		if c := p.peek(); c == 0 || isSpace(c) {
			break
		}
	}
	if sep && p.peek() != 0 {
		p.pos++
	}
	return string(b), quoted, nil
}

// backslash consumes a backslash and reports whether the byte after it is to
// be taken literally. At the end of a line it instead joins the next line
// and reports false.
func (p *parser) backslash() bool {
	p.pos++
	c := p.peek()
	if c == 0 || c == '\n' || (c == '\r' && p.pos+2 == p.end && p.data[p.pos+1] == '\n') {
		p.fetch()
		return false
	}
	return true
}

func (p *parser) singleQuoted(b []byte) ([]byte, error) {
	line := p.line
	p.pos++
	for {
		switch c := p.peek(); c {
		case '\'':
			p.pos++
			return b, nil
		case 0:
			p.fetch()
			if p.peek() == 0 {
				return nil, p.errorAt(line, "unterminated ' quote")
			}
		default:
			b = append(b, c)
			p.pos++
		}
	}
}

func (p *parser) doubleQuoted(b []byte) ([]byte, error) {
	line := p.line
	p.pos++
	for {
		switch c := p.peek(); c {
		case '"':
			p.pos++
			return b, nil
		case 0:
			p.fetch()
			if p.peek() == 0 {
				return nil, p.errorAt(line, `unterminated " quote`)
			}
		case '\\':
			if p.backslash() {
				b = append(b, p.data[p.pos])
				p.pos++
			}
		default:
			b = append(b, c)
			p.pos++
		}
	}
}

// endOfStatement checks that nothing follows (libuci's assert_eol in its
// default strict mode).
func (p *parser) endOfStatement() error {
	s, _, err := p.arg()
	if err != nil {
		return err
	}
	if s != "" {
		return p.errorf("too many arguments (%q)", s)
	}
	return nil
}

func (p *parser) pkg() error {
	name, _, err := p.arg()
	if err != nil {
		return err
	}
	if name == "" {
		return p.errorf("package without name")
	}
	if !validPackage(name) {
		return p.errorf("invalid package name %q", name)
	}
	if err := p.endOfStatement(); err != nil {
		return err
	}
	// `uci import` would start a second package here; a File holds one.
	if p.f.Package != "" {
		return p.errorf("second package statement (%q after %q)", name, p.f.Package)
	}
	if len(p.f.Sections) > 0 {
		return p.errorf("package statement after the first section")
	}
	p.f.Package = name
	return nil
}

func (p *parser) config() error {
	line := p.line
	typ, _, err := p.arg()
	if err != nil {
		return err
	}
	if typ == "" {
		return p.errorf("config without type")
	}
	if !ValidType(typ) {
		return p.errorf("invalid section type %q", typ)
	}
	name, _, err := p.arg()
	if err != nil {
		return err
	}
	if name != "" && !ValidName(name) {
		return p.errorf("invalid section name %q", name)
	}
	if err := p.endOfStatement(); err != nil {
		return err
	}
	if name == "" {
		p.cur = &Section{Type: typ, Anonymous: true, Line: line}
		p.f.Sections = append(p.f.Sections, p.cur)
		return nil
	}
	if s := p.named[name]; s != nil {
		if s.Type != typ {
			return p.errorf("section %q redefined with type %q (type %q on line %d)", name, typ, s.Type, s.Line)
		}
		p.cur = s
		return nil
	}
	p.cur = &Section{Type: typ, Name: name, Line: line}
	p.named[name] = p.cur
	p.f.Sections = append(p.f.Sections, p.cur)
	return nil
}

func (p *parser) option(list bool) error {
	line := p.line
	kw := "option"
	if list {
		kw = "list"
	}
	if p.cur == nil {
		return p.errorf("%s outside of a section", kw)
	}
	name, _, err := p.arg()
	if err != nil {
		return err
	}
	if name == "" {
		return p.errorf("%s without name", kw)
	}
	if !ValidName(name) {
		return p.errorf("invalid %s name %q", kw, name)
	}
	value, quoted, err := p.arg()
	if err != nil {
		return err
	}
	if value == "" && !quoted {
		return p.errorf("%s %q without value", kw, name)
	}
	if err := p.endOfStatement(); err != nil {
		return err
	}
	opts := p.opts[p.cur]
	if opts == nil {
		opts = map[string]*Option{}
		p.opts[p.cur] = opts
	}
	if list {
		opts[name] = p.cur.addList(opts[name], name, value, line)
	} else if o := p.cur.set(opts[name], name, value, line); o != nil {
		opts[name] = o
	}
	return nil
}
