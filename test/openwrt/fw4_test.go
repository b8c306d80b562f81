package openwrt

import (
	"regexp"
	"strings"
	"testing"
)

const ourInclude = `include "/usr/share/nftables.d/chain-pre/forward/10-vpn-passthrough.nft"`

// forwardChain returns the statements of fw4's `chain forward` (without its hook line) in an
// `fw4 print` output.
func forwardChain(t *testing.T, ruleset string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)\n\tchain forward \{\n(.*?)\n\t\}`).FindStringSubmatch(ruleset)
	if m == nil {
		t.Fatalf("no forward chain in fw4 print:\n%s", ruleset)
	}
	var lines []string
	for _, l := range strings.Split(m[1], "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "type ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// fw4 with the package's files and uci-defaults, with firewall4's mocked interfaces: the
// forward include is fw4's first statement in `forward`, exactly once, `fw4 check` accepts the
// ruleset; the same with defaults.auto_includes=0, where only our uci-defaults' explicit
// include brings it in; and our script include is registered.
func TestFW4Include(t *testing.T) {
	b := Start(t, Options{})
	b.StartUbusd(t)
	b.StartNetifd(t, FW4MockDump, false)
	b.InstallFiles(t)

	for _, tc := range []struct {
		name, prep string
	}{
		{"auto_includes on (default)", ""},
		{"auto_includes=0", "uci set firewall.@defaults[0].auto_includes=0 && uci commit firewall"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prep != "" {
				b.MustSh(t, tc.prep)
			}
			b.MustSh(t, "sh /etc/uci-defaults/vpn-passthrough")
			show := b.MustSh(t, "uci show firewall | grep vpn_passthrough")
			t.Logf("uci after our uci-defaults:\n%s", show)
			if !strings.Contains(show, "firewall.vpn_passthrough.path='/usr/share/vpn-passthrough/fw4-include.sh'") {
				t.Fatalf("script include not registered:\n%s", show)
			}
			explicit := strings.Contains(show, "firewall.vpn_passthrough_forward=include")
			if explicit != (tc.prep != "") {
				t.Fatalf("explicit forward include registered=%v with %s", explicit, tc.name)
			}
			out, err := b.Run("", "fw4", "print")
			if err != nil {
				t.Fatal(err)
			}
			fwd := forwardChain(t, out)
			t.Logf("fw4 print, chain forward:\n\t%s", strings.Join(fwd, "\n\t"))
			if len(fwd) == 0 || fwd[0] != ourInclude {
				t.Fatalf("our include is not the first statement of forward: %q", fwd)
			}
			if n := strings.Count(out, ourInclude); n != 1 {
				t.Fatalf("our include appears %d times in fw4 print", n)
			}
			// The flowtable exemption (ruleset-post), also with auto_includes=0.
			if n := strings.Count(out, `include "/usr/share/nftables.d/ruleset-post/10-vpn-passthrough.nft"`); n != 1 {
				t.Fatalf("our ruleset-post include appears %d times in fw4 print", n)
			}
			chk, err := b.Run("", "fw4", "check")
			if err != nil {
				t.Fatalf("fw4 check: %v %s", err, chk)
			}
			t.Logf("fw4 check: %s", strings.TrimSpace(chk))
		})
	}
}
