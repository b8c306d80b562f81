package pptp

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// TestTrackerIsPure: the files of the tracker (which decides) make no I/O
// of their own: no call into os, net, statefile or x/sys/unix (its
// constants are fine), and no ct or nfqueue function, only their types and
// constants. The kernel is reached through the Conntrack, HelperClearer and
// engine.Maps interfaces, which the Engine (engine.go, state.go) fills.
func TestTrackerIsPure(t *testing.T) {
	banned := map[string]bool{"os": true, "net": true, "statefile": true, "ct": true, "nfqueue": true, "unix": true}
	allowed := map[string]bool{"unix.ENOENT": true, "nfqueue.Drop": true, "nfqueue.Packet": true, "nfqueue.Accept": true,
		"ct.Tuple": true, "ct.Flow": true, "ct.TCPEstablished": true, "ct.TCPClose": true, "ct.StatusAssured": true}
	fset := token.NewFileSet()
	for _, f := range []string{"tracker.go", "calls.go", "stream.go", "kernel.go"} {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok || !banned[pkg.Name] {
				return true
			}
			if name := pkg.Name + "." + sel.Sel.Name; !allowed[name] {
				t.Errorf("%s: the tracker uses %s", fset.Position(sel.Pos()), name)
			}
			return true
		})
	}
}
