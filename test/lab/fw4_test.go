package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fw4Sample(t *testing.T) string {
	t.Helper()
	repo, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(SharedDir(repo), "openwrt-samples", "fw4-default-ruleset.nft"))
	if err != nil {
		t.Skipf("fw4's default ruleset sample is not here: %v", err)
	}
	return string(b)
}

// chainBody returns the lines of chain name in ruleset rs.
func chainBody(t *testing.T, rs, name string) []string {
	t.Helper()
	var body []string
	in := false
	for _, l := range strings.Split(rs, "\n") {
		switch {
		case strings.TrimSpace(l) == "chain "+name+" {":
			in = true
		case in && strings.TrimSpace(l) == "}":
			return body
		case in && strings.TrimSpace(l) != "":
			body = append(body, strings.TrimSpace(l))
		}
	}
	t.Fatalf("no chain %s in the ruleset", name)
	return nil
}

func TestFW4Ruleset(t *testing.T) {
	sample := fw4Sample(t)
	rs, err := FW4Ruleset(sample, []string{"r-lan1", "r-lan2"}, "r-wan", "-")
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"br-lan", "pppoe-wan", "flowtable", "flow offload", "rtsp", `include "`} {
		if strings.Contains(rs, gone) {
			t.Errorf("%q is still in the ruleset", gone)
		}
	}
	for _, want := range []string{
		`iifname { "r-lan1", "r-lan2" } jump forward_lan`,
		`define lan_devices = { "r-lan1", "r-lan2" }`,
		`oifname "r-wan" jump srcnat_wan`,
		`meta nfproto ipv4 masquerade`,
		`ct helper pptp {`,
		`tcp dport 1723 ct helper set "pptp"`,
		`type filter hook forward priority filter; policy drop`,
	} {
		if !strings.Contains(rs, want) {
			t.Errorf("ruleset lacks %q", want)
		}
	}
	// Only the lines named above went away.
	if got, want := strings.Count(rs, "\n"), strings.Count(sample, "\n")-(6+3+1+1+1); got != want {
		t.Errorf("%d lines, want %d", got, want)
	}
	// A sample without one of the pieces is refused: the lab would be
	// silently testing something else.
	for _, cut := range []string{`	include "/etc/nftables.d/*.nft"`, `		meta l4proto { tcp, udp } flow offload @ft;`} {
		if _, err := FW4Ruleset(strings.Replace(sample, cut, "", 1), []string{"a"}, "b", "-"); err == nil {
			t.Errorf("a sample without %q was accepted", cut)
		}
	}
}

func TestFW4Includes(t *testing.T) {
	sample := fw4Sample(t)
	dir := t.TempDir()
	files := map[string]string{
		"chain-pre/forward/20-b.nft":  `meta mark 0x2 accept`,
		"chain-pre/forward/10-a.nft":  `meta mark 0x1 accept`,
		"chain-post/forward/10-c.nft": `meta mark 0x3 accept`,
		"chain-pre/input/10-d.nft":    `meta mark 0x4 accept`,
		"chain-pre/srcnat/10-e.nft":   `meta mark 0x5 accept`,
		"table-post/10-f.nft":         `chain lab_extra { }`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := FW4Ruleset(sample, []string{"r-lan1"}, "r-wan", dir)
	if err != nil {
		t.Fatal(err)
	}
	inc := func(name string) string { return `include "` + filepath.Join(dir, name) + `"` }
	fwd := chainBody(t, rs, "forward")
	if len(fwd) < 4 || fwd[1] != inc("chain-pre/forward/10-a.nft") || fwd[2] != inc("chain-pre/forward/20-b.nft") {
		t.Errorf("forward does not start with the chain-pre includes in name order:\n%s", strings.Join(fwd, "\n"))
	}
	if n := len(fwd); fwd[n-1] != "jump handle_reject" || fwd[n-2] != inc("chain-post/forward/10-c.nft") {
		t.Errorf("forward's chain-post include is not right before jump handle_reject:\n%s", strings.Join(fwd, "\n"))
	}
	in := chainBody(t, rs, "input")
	if !strings.HasPrefix(in[1], `iif "lo" accept`) || in[2] != inc("chain-pre/input/10-d.nft") {
		t.Errorf("input's chain-pre include is not after the loopback accept:\n%s", strings.Join(in, "\n"))
	}
	if sn := chainBody(t, rs, "srcnat"); sn[1] != inc("chain-pre/srcnat/10-e.nft") {
		t.Errorf("srcnat's chain-pre include is not first:\n%s", strings.Join(sn, "\n"))
	}
	lines := strings.Split(strings.TrimRight(rs, "\n"), "\n")
	if n := len(lines); strings.TrimSpace(lines[n-2]) != inc("table-post/10-f.nft") || lines[n-1] != "}" {
		t.Errorf("table-post include is not last in the table: %q", lines[n-2:])
	}
	if err := os.MkdirAll(filepath.Join(dir, "chain-pre", "no_such_chain"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := FW4Ruleset(sample, []string{"r-lan1"}, "r-wan", dir); err == nil {
		t.Error("an include for a chain fw4 lacks was accepted")
	}
}
