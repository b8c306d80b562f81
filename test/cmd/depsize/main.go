// Command depsize prints what each dependency costs in the daemon's binary
// (`make size`): the sizes of its code and read-only data symbols (go tool
// nm -size, types T and R), summed per module, per standard-library package
// family and per package of ours. It omits the pclntab and symbol-less
// data, so the total is below the file size; the shares are what matter.
// The "~file" column scales each share to the stripped binary (its pclntab
// and function data grow with the code): an estimate of what dropping that
// dependency would save.
//
// With -variants it also builds the mipsel binary with and without what can
// be switched off (D-Bus, compiler inlining, the Go release, segment
// alignment) and prints the sizes: what each costs, measured.
//
//	go run ./test/cmd/depsize [-stripped BIN] [-variants -gcflags FLAGS -ldflags FLAGS] UNSTRIPPED-BINARY
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

func main() {
	stripped := flag.String("stripped", "", "the stripped binary of the same build, to scale shares to file bytes")
	variants := flag.Bool("variants", false, "also build mipsel variants and print their sizes")
	ldflags := flag.String("ldflags", "-s -w", "the release build's -ldflags, for -variants")
	gcflags := flag.String("gcflags", "", "the release build's -gcflags, for -variants")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: depsize [-stripped BIN] [-variants -gcflags FLAGS -ldflags FLAGS] UNSTRIPPED-BINARY")
		os.Exit(2)
	}
	fileSize := 0
	if *stripped != "" {
		st, err := os.Stat(*stripped)
		if err != nil {
			fmt.Fprintln(os.Stderr, "depsize:", err)
			os.Exit(1)
		}
		fileSize = int(st.Size())
	}
	if err := run(flag.Arg(0), fileSize); err != nil {
		fmt.Fprintln(os.Stderr, "depsize:", err)
		os.Exit(1)
	}
	if *variants {
		if err := runVariants(*gcflags, *ldflags); err != nil {
			fmt.Fprintln(os.Stderr, "depsize:", err)
			os.Exit(1)
		}
	}
}

// variant is one mipsel build: extra environment and go build arguments.
type variant struct {
	name string
	env  []string
	args []string
}

// runVariants builds the mipsel daemon as released and with one switch
// flipped at a time, and prints the stripped sizes and the differences.
func runVariants(gcflags, ldflags string) error {
	inlining := variant{name: "no compiler inlining (-gcflags=all=-l)", args: []string{"-gcflags=all=-l"}}
	if gcflags == "all=-l" {
		inlining = variant{name: "with compiler inlining (Go's default)", args: []string{"-gcflags=all="}}
	}
	vs := []variant{
		{name: "as released (make cross)"},
		{name: "with D-Bus (-tags dbus)", args: []string{"-tags", "dbus"}},
		inlining,
		{name: "Go 1.23, OpenWrt 24.10's (GOTOOLCHAIN=go1.23.12)", env: []string{"GOTOOLCHAIN=go1.23.12"}},
		{name: "64 KiB segment alignment (Go's mips default)", args: []string{"-ldflags=" + strings.ReplaceAll(ldflags, "-R=0x1000", "")}},
	}
	dir, err := os.MkdirTemp("", "depsize")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("\n%-58s %9s %9s\n", "mipsel binary, built and measured", "bytes", "vs first")
	base := 0
	for i, v := range vs {
		out := fmt.Sprintf("%s/v%d", dir, i)
		// A later -gcflags or -ldflags (of a variant) replaces the first.
		args := append([]string{"build", "-trimpath", "-gcflags=" + gcflags, "-ldflags=" + ldflags}, v.args...)
		args = append(args, "-o", out, "./src/cmd/vpn-passthrough")
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=mipsle", "GOMIPS=softfloat")
		cmd.Env = append(cmd.Env, v.env...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			fmt.Printf("%-58s %9s (%v: %s)\n", v.name, "-", err, strings.TrimSpace(string(msg)))
			continue
		}
		st, err := os.Stat(out)
		if err != nil {
			return err
		}
		n := int(st.Size())
		if i == 0 {
			base = n
		}
		fmt.Printf("%-58s %9d %+9d\n", v.name, n, n-base)
	}
	return nil
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

func run(bin string, fileSize int) error {
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
	scale := 0.0
	if fileSize > 0 {
		scale = float64(fileSize) / float64(total)
	}
	fmt.Printf("%-58s %9s %6s %9s\n", "code+rodata by dependency (go tool nm -size)", "bytes", "share", "~file")
	for _, k := range keys {
		if group[k] < 8<<10 {
			continue
		}
		est := "-"
		if scale > 0 {
			est = strconv.Itoa(int(float64(group[k]) * scale))
		}
		fmt.Printf("%-58s %9d %5.1f%% %9s\n", k, group[k], 100*float64(group[k])/float64(total), est)
	}
	fmt.Printf("%-58s %9d\n", "total (symbols of 8 KiB and more are listed)", total)
	if scale > 0 {
		fmt.Printf("~file: the share of the stripped binary (%d bytes: pclntab and function data grow with the code)\n", fileSize)
	}
	return nil
}
