package nft

import (
	"os"
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
