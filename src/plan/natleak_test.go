package plan

import (
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
)

// TestNATLeakGuard: where fw4 masquerades, every kind of traffic of each
// protocol that passes gets a drop for leaving the WAN un-NATed (IPv4 only,
// LAN to WAN, port forwards and masqueraded flows excepted); a blocked
// protocol needs none, and without masquerade nothing is added.
func TestNATLeakGuard(t *testing.T) {
	c := config.Default()
	c.L2TP.Enabled = false
	build := func(masq bool) *Plan {
		p, err := Build(Input{Config: c, Caps: fullCaps, Topology: topo, Masquerade: masq})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if ch := chainNamed(build(false), chainNATLeakGuard); ch != nil {
		t.Fatalf("a NAT leak guard without masquerade: %+v", ch)
	}
	p := build(true)
	ch := chainNamed(p, chainNATLeakGuard)
	if ch == nil || ch.Hook != HookPostrouting || ch.Priority <= 100 {
		t.Fatalf("no NAT leak guard after srcnat: %+v", ch)
	}
	want := map[string]bool{}
	for _, pr := range []Proto{PPTP, IPsec} {
		for _, tr := range TrafficOf(pr) {
			want[tr.String()] = false
		}
	}
	for _, r := range ch.Rules {
		if r.IIFSet != SetLAN || r.OIFSet != SetWAN || !r.IPv4Only || !r.NotNAT || r.Verdict != VerdictDrop || r.Counter != CounterNATLeak {
			t.Errorf("guard rule %s", r)
		}
		k := Traffic{L4: r.L4, Port: r.DPort}.String()
		if _, ok := want[k]; !ok {
			t.Errorf("guard rule for %s, which no passing protocol uses", k)
		}
		want[k] = true
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("no guard rule for %s", k)
		}
	}
	if !strings.Contains(p.Render(), "ct status & (snat | dnat) == 0 counter name \"nat_leak_dropped\" drop") {
		t.Errorf("rendered guard:\n%s", p.Render())
	}
}
