package main

import (
	"fmt"
	"io"
	"strings"
)

// cliFlags are the flags every command accepts (each uses some of them).
type cliFlags struct {
	config, socket, stateDir, ubus, dbus string
	json, dryRun                         bool
}

// flagDef is one flag: a string flag points at str, a boolean one at b.
type flagDef struct {
	name, help string
	str        *string
	b          *bool
}

// errHelp: -h or -help was given (the help went to stderr).
var errHelp = usageError{"help requested"}

// parseFlags parses args the way Go's flag package does (-name or --name;
// a value as -name=value or -name value; -name=true/false for booleans; "--"
// ends the flags), without the package: flag costs ~25 KB of the mipsel
// binary for seven flags. Unlike flag it refuses arguments after the flags:
// a stray word would otherwise silently turn the flags after it into
// ignored arguments.
func parseFlags(cmd string, args []string, stderr io.Writer) (cliFlags, error) {
	f := cliFlags{config: defaultConfig, socket: defaultSocket, stateDir: defaultStateDir, ubus: defaultUbus, dbus: "off"}
	defs := []flagDef{
		{name: "config", help: "UCI config file", str: &f.config},
		{name: "dbus", help: "D-Bus to serve " + dbusName + " on: system, a bus address, or off", str: &f.dbus},
		{name: "dry-run", help: "print the ruleset instead of installing it", b: &f.dryRun},
		{name: "json", help: "print JSON", b: &f.json},
		{name: "socket", help: "status socket", str: &f.socket},
		{name: "state-dir", help: "where engines keep state across a daemon crash (tmpfs)", str: &f.stateDir},
		{name: "ubus", help: "ubusd socket for the vpn-passthrough object (off: none)", str: &f.ubus},
	}
	printHelp := func() {
		fmt.Fprintf(stderr, "Usage of %s:\n", cmd)
		for _, d := range defs {
			if d.b != nil {
				fmt.Fprintf(stderr, "  -%s\n    \t%s\n", d.name, d.help)
			} else {
				fmt.Fprintf(stderr, "  -%s string\n    \t%s (default %q)\n", d.name, d.help, *d.str)
			}
		}
	}
	fail := func(format string, a ...any) (cliFlags, error) {
		msg := fmt.Sprintf(format, a...)
		fmt.Fprintln(stderr, msg)
		printHelp()
		return f, usageError{msg}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return f, usageError{fmt.Sprintf("%s: unexpected argument %q", cmd, args[i+1])}
			}
			break
		}
		if len(a) < 2 || a[0] != '-' || (len(a) == 2 && a[1] == '-') {
			return f, usageError{fmt.Sprintf("%s: unexpected argument %q", cmd, a)}
		}
		name := strings.TrimPrefix(a[1:], "-")
		value, hasValue := "", false
		if j := strings.IndexByte(name, '='); j >= 0 {
			name, value, hasValue = name[:j], name[j+1:], true
		}
		if name == "" || name[0] == '-' || name[0] == '=' {
			return fail("bad flag syntax: %s", a)
		}
		if name == "h" || name == "help" {
			printHelp()
			return f, errHelp
		}
		var d *flagDef
		for k := range defs {
			if defs[k].name == name {
				d = &defs[k]
			}
		}
		if d == nil {
			return fail("flag provided but not defined: -%s", name)
		}
		if d.b != nil {
			switch {
			case !hasValue:
				*d.b = true
			case value == "1" || value == "t" || value == "T" || value == "true" || value == "TRUE" || value == "True":
				*d.b = true
			case value == "0" || value == "f" || value == "F" || value == "false" || value == "FALSE" || value == "False":
				*d.b = false
			default:
				return fail("invalid boolean value %q for -%s", value, name)
			}
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return fail("flag needs an argument: -%s", name)
			}
			i++
			value = args[i]
		}
		*d.str = value
	}
	return f, nil
}
