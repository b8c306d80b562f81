package src

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogCallsPaired does for kvlog what go vet's slog check did for
// log/slog: every Debug/Info/Warn/Error/With call on a logger has a message
// and then key-value pairs with string-literal keys (an odd one shows up
// in the log as !BADKEY). It reads the daemon's sources; calls whose
// arguments end in a spread (args...) are left alone.
func TestLogCallsPaired(t *testing.T) {
	fset := token.NewFileSet()
	calls := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok || c.Ellipsis.IsValid() {
				return true
			}
			sel, ok := c.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pairs := c.Args
			switch sel.Sel.Name {
			case "Debug", "Info", "Warn", "Error":
				if len(c.Args) == 0 {
					return true // err.Error()
				}
				pairs = c.Args[1:]
			case "With":
				if len(c.Args) == 0 {
					return true
				}
			default:
				return true
			}
			if !isLogger(sel.X) {
				return true
			}
			calls++
			where := fset.Position(c.Pos())
			if len(pairs)%2 != 0 {
				t.Errorf("%s: %s has an odd number of key-value arguments", where, sel.Sel.Name)
				return true
			}
			for i := 0; i < len(pairs); i += 2 {
				if lit, ok := pairs[i].(*ast.BasicLit); !ok || lit.Kind != token.STRING {
					t.Errorf("%s: %s: key %d is not a string literal", where, sel.Sel.Name, i/2+1)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 50 {
		t.Fatalf("only %d log calls found: is the logger still called log/Log?", calls)
	}
	t.Logf("%d log calls checked", calls)
}

// isLogger: the receiver is named as the daemon names its loggers (log,
// Log, e.log, c.Log, l, logger...).
func isLogger(x ast.Expr) bool {
	switch x := x.(type) {
	case *ast.Ident:
		return x.Name == "log" || x.Name == "logger"
	case *ast.SelectorExpr:
		return x.Sel.Name == "log" || x.Sel.Name == "Log" || x.Sel.Name == "logger"
	case *ast.CallExpr: // log.With(...).Info(...)
		if s, ok := x.Fun.(*ast.SelectorExpr); ok && s.Sel.Name == "With" {
			return isLogger(s.X)
		}
	}
	return false
}
