// Command mkipk builds one OpenWrt .ipk (opkg package) from files on disk.
// It is a build tool for `make ipk`; it is not shipped.
//
//	mkipk -name vpn-passthrough -version 0.1.0-r1 -arch mips_24kc \
//	    -description 'VPN passthrough...' -depends kmod-nft-core,kmod-nft-queue \
//	    -tree files=/ -file dist/bin/mips_24kc/vpn-passthrough=/usr/bin/vpn-passthrough:0755 \
//	    -conffile /etc/config/vpn-passthrough -o dist
//
// It prints the path of the package it wrote. With -apk PATH it writes an
// apk v3 package for OpenWrt 25.12 instead, by laying the package out as
// OpenWrt's package-pack.mk does and running that apk-tools binary's
// `apk mkpkg` (under fakeroot when not root, so files are owned by root).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ipk"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkipk:", err)
		os.Exit(1)
	}
}

func list(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func run(args []string) error {
	fl := flag.NewFlagSet("mkipk", flag.ContinueOnError)
	var (
		p           ipk.Package
		c           = &p.Control
		depends     = fl.String("depends", "", "comma-separated `packages` it depends on")
		suggests    = fl.String("suggests", "", "comma-separated `packages` it suggests")
		description = fl.String("description", "", "description; `\\n` starts a new line")
		postinstPkg = fl.String("postinst-pkg", "", "`file` whose script default_postinst sources after install")
		prermPkg    = fl.String("prerm-pkg", "", "`file` whose script default_prerm sources before removal")
		mtime       = fl.Int64("mtime", 0, "modification time of every entry, Unix `seconds` (default $SOURCE_DATE_EPOCH or 0)")
		outDir      = fl.String("o", ".", "output `dir`")
		apkTool     = fl.String("apk", "", "write an apk v3 package with this apk-tools `binary` (apk mkpkg)")
		trees       []string
		files       []string
		modes       = map[string]fs.FileMode{}
	)
	fl.StringVar(&c.Package, "name", "", "package `name`")
	fl.StringVar(&c.Version, "version", "", "package `version`")
	fl.StringVar(&c.Architecture, "arch", "", "package `arch` (e.g. mips_24kc, all)")
	fl.StringVar(&c.Section, "section", "", "`section`")
	fl.StringVar(&c.License, "license", "", "`license`")
	fl.StringVar(&c.URL, "url", "", "project `URL`")
	fl.StringVar(&c.Maintainer, "maintainer", "", "`maintainer`")
	fl.StringVar(&c.Source, "source", "", "`source` field")
	fl.StringVar(&c.SourceName, "source-name", "", "`SourceName` field")
	fl.Func("tree", "add every file under `DIR=PREFIX` (repeatable); mode 0755 where the file has an execute bit, else 0644", func(s string) error {
		trees = append(trees, s)
		return nil
	})
	fl.Func("file", "add one file, `SRC=DEST[:MODE]` (repeatable; MODE octal, default 0644)", func(s string) error {
		files = append(files, s)
		return nil
	})
	fl.Func("mode", "set the mode of an installed file, `PATH=MODE` (repeatable; MODE octal)", func(s string) error {
		p, m, ok := strings.Cut(s, "=")
		n, err := strconv.ParseUint(m, 8, 32)
		if !ok || err != nil {
			return fmt.Errorf("want PATH=MODE with an octal MODE, not %q", s)
		}
		modes[p] = fs.FileMode(n)
		return nil
	})
	fl.Func("conffile", "mark an installed `path` as conffile (repeatable)", func(s string) error {
		p.Conffiles = append(p.Conffiles, s)
		return nil
	})
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	c.Depends = list(*depends)
	c.Suggests = list(*suggests)
	c.Description = strings.ReplaceAll(*description, `\n`, "\n")

	for _, t := range trees {
		dir, prefix, ok := strings.Cut(t, "=")
		if !ok {
			return fmt.Errorf("-tree %q: want DIR=PREFIX", t)
		}
		if err := p.AddTree(os.DirFS(dir), prefix); err != nil {
			return fmt.Errorf("-tree %s: %w", dir, err)
		}
	}
	for _, f := range files {
		src, dest, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("-file %q: want SRC=DEST[:MODE]", f)
		}
		mode := fs.FileMode(0o644)
		if d, m, ok := strings.Cut(dest, ":"); ok {
			n, err := strconv.ParseUint(m, 8, 32)
			if err != nil {
				return fmt.Errorf("-file %q: mode %q is not octal", f, m)
			}
			dest, mode = d, fs.FileMode(n)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		p.Files = append(p.Files, ipk.File{Path: dest, Mode: mode, Data: b})
	}
	for path, mode := range modes {
		i := slices.IndexFunc(p.Files, func(f ipk.File) bool { return f.Path == path })
		if i < 0 {
			return fmt.Errorf("-mode %s: no such file in the package", path)
		}
		p.Files[i].Mode = mode
	}
	for _, s := range []struct {
		path string
		dst  *string
	}{{*postinstPkg, &p.PostinstPkg}, {*prermPkg, &p.PrermPkg}} {
		if s.path == "" {
			continue
		}
		b, err := os.ReadFile(s.path)
		if err != nil {
			return err
		}
		*s.dst = string(b)
	}

	secs := *mtime
	if secs == 0 {
		if env := os.Getenv("SOURCE_DATE_EPOCH"); env != "" {
			n, err := strconv.ParseInt(env, 10, 64)
			if err != nil {
				return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", env, err)
			}
			secs = n
		}
	}
	p.ModTime = time.Unix(secs, 0)

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	if *apkTool != "" {
		return writeAPK(&p, *apkTool, *outDir)
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		return err
	}
	out := filepath.Join(*outDir, p.FileName())
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	fmt.Println(out)
	return nil
}

func writeAPK(p *ipk.Package, tool, outDir string) error {
	out, err := p.WriteAPK(tool, outDir)
	if err != nil {
		return err
	}
	fmt.Println(out)
	return nil
}
