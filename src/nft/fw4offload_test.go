package nft

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// TestFW4OffloadInclude loads the package's real exemption include
// (ruleset-post) into a forward chain like fw4's and reads it back from the
// kernel: both rules, with their anonymous sets' keys. This kernel has no
// flowtables (lab.md), so the `flow offload` rule itself comes from the
// guest's dump (TestFW4ForwardGuestDump).
func TestFW4OffloadInclude(t *testing.T) {
	ns := newNetns(t)
	c := ns.conn(t)
	if got := c.FW4Offload(); got != (plan.FW4Chain{Read: true}) {
		t.Fatalf("without fw4: %+v", got)
	}
	inc, err := os.ReadFile("../../files/usr/share/nftables.d/ruleset-post/10-vpn-passthrough.nft")
	if err != nil {
		t.Fatal(err)
	}
	ns.nft(t, `table inet fw4 {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle forwarded flows"
		meta l4proto udp udp dport 500 counter accept comment "vpn-passthrough: not an exemption (no set)"
	}
}
`, "-f", "-")
	ns.nft(t, string(inc), "-f", "-")
	if got := c.FW4Offload(); got != (plan.FW4Chain{Read: true, Chain: true}) {
		t.Errorf("include, no flow offload rule: %+v", got)
	}
	rules, sets, err := c.FW4ForwardDump()
	if err != nil {
		t.Fatal(err)
	}
	f := ParseFW4Forward(rules).WithKeys(sets)
	// insert puts each rule first: the dport rule (the file's last) leads.
	if f.Rules != 4 || f.Offload != -1 || f.Dport.Index != 0 || f.Sport.Index != 1 {
		t.Fatalf("parse: %+v", f)
	}
	for _, r := range []exemptRule{f.Dport, f.Sport} {
		if len(r.Keys) != 2 || !hasKey(r.Keys, 6, 1723) || !hasKey(r.Keys, 17, 500) {
			t.Errorf("set %s keys %x", r.Set, r.Keys)
		}
	}
	// As if fw4's `flow offload` rule stood at 2, then at 0.
	f.Offload, f.Flowtable = 2, "ft"
	if got := f.Chain(); got.Exempt != plan.ExemptBefore || !got.Offload {
		t.Errorf("exemption ahead of flow offload: %+v", got)
	}
	f.Offload = 0
	if got := f.Chain(); got.Exempt != plan.ExemptAfter {
		t.Errorf("exemption behind flow offload: %+v", got)
	}
	// fw4 reloaded without the include.
	ns.nft(t, "flush chain inet fw4 forward\n", "-f", "-")
	rules, sets, err = c.FW4ForwardDump()
	if err != nil {
		t.Fatal(err)
	}
	f = ParseFW4Forward(rules).WithKeys(sets)
	f.Offload = 0
	if got := f.Chain(); f.Dport.Index != -1 || f.Sport.Index != -1 || got.Exempt != plan.ExemptMissing {
		t.Errorf("flushed chain: %+v, %+v", f, got)
	}
}

// readDump reads a test/cmd/fw4dump file: rules and set keys.
func readDump(t *testing.T, name string) ([][]byte, map[string][][]byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var rules [][]byte
	sets := map[string][][]byte{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "rule":
			r, err := hex.DecodeString(f[1])
			if err != nil {
				t.Fatal(err)
			}
			rules = append(rules, r)
		case len(f) == 3 && f[0] == "set":
			k, err := hex.DecodeString(f[2])
			if err != nil {
				t.Fatal(err)
			}
			sets[f[1]] = append(sets[f[1]], k)
		}
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", name)
	}
	return rules, sets
}

// TestFW4ForwardGuestDump parses fw4's forward chain as a kernel with
// flowtables lists it: real fw4's rendering for the flowtable guest's
// router with `flow offload @ft` (test/qemu fw4check, Debian's 6.1 kernel,
// recorded by test/cmd/fw4dump), with the package's include, without it,
// and with its rules appended behind `flow offload`.
func TestFW4ForwardGuestDump(t *testing.T) {
	for _, tc := range []struct {
		file   string
		want   plan.Exemption
		exempt bool // the two rules are in the chain
	}{
		{"fw4-forward-ft.dump", plan.ExemptBefore, true},
		{"fw4-forward-ft-noinc.dump", plan.ExemptMissing, false},
		{"fw4-forward-ft-after.dump", plan.ExemptAfter, true},
	} {
		rules, sets := readDump(t, tc.file)
		f := ParseFW4Forward(rules).WithKeys(sets)
		got := f.Chain()
		if !got.Offload || got.Flowtable != "ft" || got.Exempt != tc.want || (f.Dport.Index >= 0) != tc.exempt || (f.Sport.Index >= 0) != tc.exempt {
			t.Errorf("%s: %+v from %+v", tc.file, got, f)
		}
		if tc.want != plan.ExemptBefore {
			continue
		}
		// Each rule alone is not an exemption: the other direction
		// still offloads the flow.
		for _, drop := range []int{f.Dport.Index, f.Sport.Index} {
			var cut [][]byte
			for i, r := range rules {
				if i != drop {
					cut = append(cut, r)
				}
			}
			if got := ParseFW4Forward(cut).WithKeys(sets).Chain(); got.Exempt != plan.ExemptMissing {
				t.Errorf("without rule %d: %+v", drop, got)
			}
		}
		// A set without IKE (someone's edit) is not the exemption.
		noIKE := map[string][][]byte{}
		for k, v := range sets {
			for _, key := range v {
				if key[0] != 17 {
					noIKE[k] = append(noIKE[k], key)
				}
			}
		}
		if got := ParseFW4Forward(rules).WithKeys(noIKE).Chain(); got.Exempt != plan.ExemptMissing {
			t.Errorf("sets without udp . 500: %+v", got)
		}
	}
}
