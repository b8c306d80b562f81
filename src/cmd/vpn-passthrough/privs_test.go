package main

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// The capabilities file procd hands to ujail names exactly what the daemon
// keeps when it drops privileges itself.
func TestCapabilitiesFile(t *testing.T) {
	b, err := os.ReadFile("../../../files/etc/capabilities/vpn-passthrough.json")
	if err != nil {
		t.Fatal(err)
	}
	var caps map[string][]string
	if err := json.Unmarshal(b, &caps); err != nil {
		t.Fatal(err)
	}
	names := map[uintptr]string{unix.CAP_NET_ADMIN: "CAP_NET_ADMIN"}
	var want []string
	for _, c := range daemonCaps {
		n, ok := names[c]
		if !ok {
			t.Fatalf("capability %d has no name here: add it", c)
		}
		want = append(want, n)
	}
	for _, set := range []string{"bounding", "effective", "permitted", "ambient", "inheritable"} {
		if got := slices.Sorted(slices.Values(caps[set])); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", set, got, want)
		}
	}
}
