package uci

import (
	"bytes"
	"strings"
)

// Bytes returns f in the canonical form libuci writes (uci_export_package):
// a `package` line only if Package is set, then for each section a blank
// line, `config TYPE 'NAME'` and tab-indented `option NAME 'VALUE'` and
// `list NAME 'VALUE'` lines, and a final blank line. Values are always
// single-quoted; a ' in them closes the quote, is written as \' and opens
// a new quote.
//
// Options with an empty value are left out (libuci cannot hold them and
// Parse drops them). A value holding a NUL byte cannot be parsed back.
func (f *File) Bytes() []byte {
	var b bytes.Buffer
	if f.Package != "" {
		b.WriteString("package ")
		b.WriteString(f.Package)
		b.WriteByte('\n')
	}
	for _, s := range f.Sections {
		b.WriteString("\nconfig ")
		writeType(&b, s.Type)
		if !s.Anonymous && s.Name != "" {
			b.WriteByte(' ')
			writeQuoted(&b, s.Name)
		}
		b.WriteByte('\n')
		for _, o := range s.Options {
			if !o.List {
				if len(o.Values) > 0 && o.Values[0] != "" {
					writeStatement(&b, "option", o.Name, o.Values[0])
				}
				continue
			}
			for _, v := range o.Values {
				writeStatement(&b, "list", o.Name, v)
			}
		}
	}
	b.WriteByte('\n')
	return b.Bytes()
}

func writeStatement(b *bytes.Buffer, kw, name, value string) {
	b.WriteByte('\t')
	b.WriteString(kw)
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteByte(' ')
	writeQuoted(b, value)
	b.WriteByte('\n')
}

// writeType writes a section type bare, as libuci does, unless it holds a
// byte that would read back differently: libuci writes those bare too and
// cannot read its own output then.
func writeType(b *bytes.Buffer, typ string) {
	if typ != "" && !strings.ContainsAny(typ, "'\"\\#; \t\n\v\f\r") {
		b.WriteString(typ)
		return
	}
	writeQuoted(b, typ)
}

// writeQuoted writes s in single quotes. Single quotes have no escapes, so a
// ' closes the quote, adds an escaped \' outside and reopens.
func writeQuoted(b *bytes.Buffer, s string) {
	b.WriteByte('\'')
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteString(`'\''`)
		s = s[i+1:]
	}
	b.WriteString(s)
	b.WriteByte('\'')
}
