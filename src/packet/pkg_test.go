package packet

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPackageHygiene keeps the promises of doc.go checkable: the package doc
// lives in doc.go alone, and the package imports only the standard library,
// never unsafe, syscall, x/sys or netlink (style.md points 2 and 3).
func TestPackageHygiene(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments|parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		if hasDoc := f.Doc != nil; hasDoc != (name == "doc.go") {
			t.Errorf("%s: package doc present = %v; only doc.go should have it", name, hasDoc)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "github.com/vpn-passthrough/vpn-passthrough/src/packet" {
				continue // external examples import the package itself
			}
			first, _, _ := strings.Cut(p, "/")
			if strings.Contains(first, ".") || p == "unsafe" || p == "syscall" {
				t.Errorf("%s imports %q: standard library only, no unsafe or syscall", name, p)
			}
		}
	}
}
