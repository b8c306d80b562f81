// Command depsize prints what each dependency costs in the daemon's binary
// (`make size`): the sizes of its code and read-only data symbols (go tool
// nm -size, types T and R), summed per module, per standard-library package
// family and per package of ours. It omits the pclntab and symbol-less
// data, so the total is below the file size; the shares are what matter.
//
//	go run ./test/cmd/depsize UNSTRIPPED-BINARY
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: depsize UNSTRIPPED-BINARY")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "depsize:", err)
		os.Exit(1)
	}
}

// pkgOf is the import path a symbol belongs to: "type:*net.Conn" -> "net",
// "github.com/a/b.(*T).M" -> "github.com/a/b".
func pkgOf(sym string) string {
	for _, p := range []string{"type:.eq.", "type:.namedata.", "type:.importpath.", "type:", "go:itab.", "go:link."} {
		sym = strings.TrimPrefix(sym, p)
	}
	sym = strings.TrimLeft(sym, "*[]()")
	slash := strings.LastIndex(sym, "/")
	dot := strings.Index(sym[slash+1:], ".")
	if dot < 0 {
		return sym
	}
	return sym[:slash+1+dot]
}

func run(bin string) error {
	out, err := exec.Command("go", "tool", "nm", "-size", "-type", bin).Output()
	if err != nil {
		return fmt.Errorf("go tool nm: %w", err)
	}
	mods, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}", "./src/cmd/vpn-passthrough").Output()
	if err != nil {
		return fmt.Errorf("go list: %w", err)
	}
	modOf := map[string]string{}
	for _, l := range strings.Split(string(mods), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			modOf[f[0]] = f[1]
		}
	}
	group := map[string]int{}
	total := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || (f[2] != "T" && f[2] != "t" && f[2] != "R" && f[2] != "r") {
			continue
		}
		size, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		pkg := pkgOf(strings.Join(f[3:], " "))
		var g string
		switch m := modOf[pkg]; {
		case m == "github.com/vpn-passthrough/vpn-passthrough" || pkg == "main":
			g = "ours " + strings.TrimPrefix(pkg, "github.com/vpn-passthrough/vpn-passthrough/")
		case m != "":
			g = "module " + m
		case strings.HasPrefix(pkg, "go:") || pkg == "":
			g = "runtime tables (go:*)"
		default:
			family := strings.SplitN(strings.TrimPrefix(pkg, "vendor/"), "/", 2)[0]
			if strings.HasPrefix(pkg, "vendor/golang.org/x/net") {
				family = "net"
			}
			g = "std " + family
		}
		group[g] += size
		total += size
	}
	keys := make([]string, 0, len(group))
	for k := range group {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return group[keys[i]] > group[keys[j]] })
	fmt.Printf("%-58s %9s %6s\n", "code+rodata by dependency (go tool nm -size)", "bytes", "share")
	for _, k := range keys {
		if group[k] < 8<<10 {
			continue
		}
		fmt.Printf("%-58s %9d %5.1f%%\n", k, group[k], 100*float64(group[k])/float64(total))
	}
	fmt.Printf("%-58s %9d\n", "total (symbols of 8 KiB and more are listed)", total)
	return nil
}
