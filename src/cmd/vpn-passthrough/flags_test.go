package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	good := []struct {
		args []string
		want cliFlags
	}{
		{nil, cliFlags{config: defaultConfig, socket: defaultSocket, stateDir: defaultStateDir, ubus: defaultUbus, dbus: "off"}},
		{[]string{"--config", "/tmp/c", "-json", "--dry-run=false", "-socket=/s", "--state-dir=", "-ubus", "off", "-dbus", "system", "--"},
			cliFlags{config: "/tmp/c", socket: "/s", stateDir: "", ubus: "off", dbus: "system", json: true}},
		{[]string{"-dry-run", "-json=0", "--json=true"}, cliFlags{config: defaultConfig, socket: defaultSocket, stateDir: defaultStateDir,
			ubus: defaultUbus, dbus: "off", json: true, dryRun: true}},
		// A value that looks like a flag is still the value (as in flag).
		{[]string{"-config", "-json"}, cliFlags{config: "-json", socket: defaultSocket, stateDir: defaultStateDir, ubus: defaultUbus, dbus: "off"}},
	}
	for _, c := range good {
		got, err := parseFlags("x", c.args, io.Discard)
		if err != nil || got != c.want {
			t.Errorf("parseFlags(%q) = %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
	bad := map[string][]string{
		"flag provided but not defined: -frob": {"-frob"},
		"flag needs an argument: -config":      {"-config"},
		"invalid boolean value":                {"-json=maybe"},
		`unexpected argument "word"`:           {"-json", "word", "-dry-run"},
		`unexpected argument "after"`:          {"--", "after"},
		"bad flag syntax":                      {"---config", "x"},
	}
	for msg, args := range bad {
		var stderr strings.Builder
		_, err := parseFlags("x", args, &stderr)
		if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseFlags(%q) = %v; want a usage error with %q", args, err, msg)
		}
	}
	var stderr strings.Builder
	if _, err := parseFlags("check", []string{"-h"}, &stderr); err != errHelp || !strings.Contains(stderr.String(), "-config string") {
		t.Errorf("-h: %v, %q", err, stderr.String())
	}
}
