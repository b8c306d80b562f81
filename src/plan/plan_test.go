package plan

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// fullCaps is a kernel with everything (like OpenWrt with
// kmod-nf-nathelper-extra and kmod-nft-queue).
var fullCaps = Caps{NFTables: true, Conntrack: true, PPTPHelper: true, PPTPNAT: true, GRETracking: true,
	NFQueue: true, NFTQueueExpr: true, XTNFQueue: true, MapPayload: true, Ctnetlink: true}

var topo = config.Topology{LAN: []string{"br-lan"}, WAN: []string{"wan"}, LANFrom: "test", WANFrom: "test"}

// Cases shared by the golden test here and the kernel test in src/nft.
func Cases() []struct {
	Name string
	In   Input
} {
	def := config.Default()
	off := config.Default()
	off.PPTP.Enabled, off.L2TP.Enabled, off.IPsec.Enabled, off.LogBlocked = false, false, false, true
	kernel := config.Default()
	kernel.Mode = config.ModeKernel
	noHelper := fullCaps
	noHelper.PPTPHelper, noHelper.PPTPNAT = false, false
	noMaps := fullCaps
	noMaps.MapPayload = false
	noHelperNoMaps := noHelper
	noHelperNoMaps.MapPayload = false
	noHelperNoCtnetlink := noHelper
	noHelperNoCtnetlink.Ctnetlink = false
	disabled := config.Default()
	disabled.Enabled = false
	twoLAN := config.Topology{LAN: []string{"r-lan1", "r-lan2"}, WAN: []string{"r-wan"}}
	// fw4's forward chain with flow offloading, as src/nft reads it.
	exempted := FW4Chain{Read: true, Chain: true, Offload: true, Flowtable: "ft", Exempt: ExemptBefore}
	notExempted := exempted
	notExempted.Exempt = ExemptMissing
	return []struct {
		Name string
		In   Input
	}{
		{"default", Input{Config: def, Caps: fullCaps, Topology: topo}},
		{"all-off-logged", Input{Config: off, Caps: fullCaps, Topology: topo}},
		{"kernel-mode", Input{Config: kernel, Caps: fullCaps, Topology: twoLAN}},
		{"kernel-mode-no-helper", Input{Config: kernel, Caps: noHelper, Topology: topo}},
		{"auto-no-helper", Input{Config: def, Caps: noHelper, Topology: topo}},
		{"disabled", Input{Config: disabled, Caps: fullCaps, Topology: topo}},
		{"no-kernel-maps", Input{Config: def, Caps: noMaps, Topology: topo}},
		{"auto-no-helper-no-maps", Input{Config: def, Caps: noHelperNoMaps, Topology: topo}},
		{"auto-no-helper-no-ctnetlink", Input{Config: def, Caps: noHelperNoCtnetlink, Topology: topo}},
		{"offload-exempted", Input{Config: def, Caps: noHelper, Topology: topo, FlowOffload: true, FW4: exempted}},
		{"offload-not-exempted", Input{Config: def, Caps: noHelper, Topology: topo, FlowOffload: true, FW4: notExempted}},
		{"offload-not-exempted-helper", Input{Config: def, Caps: fullCaps, Topology: topo, FlowOffload: true, FW4: notExempted}},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range Cases() {
		t.Run(tc.Name, func(t *testing.T) {
			p, err := Build(tc.In)
			if err != nil {
				t.Fatal(err)
			}
			got := p.Summary() + "\n" + p.Render()
			path := filepath.Join("testdata", tc.Name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./src/plan -update)", err)
			}
			if got != string(want) {
				t.Errorf("plan differs from %s (go test ./src/plan -update rewrites it):\n--- got\n%s", path, got)
			}
		})
	}
}

// rulesWith returns the rules of all chains that satisfy f.
func rulesWith(p *Plan, f func(Rule) bool) []Rule {
	var out []Rule
	for _, c := range p.Chains {
		for _, r := range c.Rules {
			if f(r) {
				out = append(out, r)
			}
		}
	}
	return out
}

func TestToggleOffBlocksEverythingListed(t *testing.T) {
	c := config.Default()
	c.PPTP.Enabled, c.L2TP.Enabled, c.IPsec.Enabled = false, false, false
	p, err := Build(Input{Config: c, Caps: fullCaps, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		proto Proto
		l4    L4
		port  uint16
	}{
		{PPTP, ProtoTCP, 1723}, {PPTP, ProtoGRE, 0},
		{IPsec, ProtoESP, 0}, {IPsec, ProtoAH, 0}, {IPsec, ProtoUDP, 500}, {IPsec, ProtoUDP, 4500},
		{L2TP, ProtoUDP, 1701},
	}
	for _, w := range want {
		drops := rulesWith(p, func(r Rule) bool {
			return r.Verdict == VerdictDrop && r.L4 == w.l4 && r.DPort == w.port &&
				r.IIFSet == SetLAN && r.OIFSet == SetWAN && r.Counter == BlockedCounter(w.proto)
		})
		if len(drops) != 1 {
			t.Errorf("%s %s/%d: %d drop rules, want 1", w.proto, w.l4, w.port, len(drops))
		}
	}
	if n := len(rulesWith(p, func(r Rule) bool { return r.Verdict == VerdictAccept })); n != 0 {
		t.Errorf("%d accept rules; our table must not accept (fw4 decides)", n)
	}
	// The helper serves only the router's own PPTP calls (output,
	// router.go): nothing assigns it to LAN traffic.
	for _, c := range p.Chains {
		for _, r := range c.Rules {
			if r.CtHelper != "" && c.Hook != HookOutput {
				t.Errorf("helper assigned in %s although PPTP is off: %s", c.Name, r)
			}
		}
	}
	for _, d := range p.Decisions {
		if d.Datapath != PathBlocked {
			t.Errorf("%s: datapath %s, want blocked", d.Proto, d.Datapath)
		}
	}
}

func TestPPTPKernelHelper(t *testing.T) {
	p, err := Build(Input{Config: config.Default(), Caps: fullCaps, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Helpers) != 1 || p.Helpers[0].Type != "pptp" || p.Helpers[0].L4 != ProtoTCP {
		t.Fatalf("helpers = %+v", p.Helpers)
	}
	r := rulesWith(p, func(r Rule) bool { return r.CtHelper == "pptp" && r.IIFSet != "" })
	if len(r) != 1 || r[0].DPort != 1723 || r[0].IIFSet != SetLAN || !r[0].IPv4Only {
		t.Fatalf("helper rule = %+v", r)
	}
	// And the router's own PPTP control connections, in output.
	out := chainNamed(p, ChainRouterOutput)
	if out == nil || out.Hook != HookOutput || len(out.Rules) != 1 || out.Rules[0].OIFSet != SetWAN ||
		out.Rules[0].DPort != 1723 || out.Rules[0].CtHelper != "pptp" {
		t.Fatalf("router output chain = %+v", out)
	}
	if d := p.Decision(PPTP); d.Datapath != PathKernel || d.Degraded != "" {
		t.Errorf("decision = %+v", d)
	}
	// The only drops with everything on are the guards: new inbound flows
	// to the LAN that are no port forward, the ESP engine's (unsolicited
	// WAN ESP, unrewritten (leaking) LAN ESP, ESP of known servers that
	// nothing forwarded) and marked packets heading anywhere but the LAN.
	guards := map[string]bool{CounterESPUnsolicited: true, CounterESPLeak: true, CounterMarkGuard: true,
		CounterESPNoEngine: true}
	unsolicited := func(r Rule) bool {
		return r.IIFSet == SetWAN && r.OIFSet == SetLAN && r.CtState == CtStateNew && r.NotDNAT &&
			strings.HasPrefix(r.Counter, "unsolicited_")
	}
	if n := len(rulesWith(p, func(r Rule) bool { return r.Verdict == VerdictDrop && !guards[r.Counter] && !unsolicited(r) })); n != 0 {
		t.Errorf("%d drop rules with everything on", n)
	}
}

func TestMissingHelperIsSaid(t *testing.T) {
	caps := fullCaps
	caps.PPTPNAT = false
	caps.NFQueue = false // no userspace fallback either
	p, err := Build(Input{Config: config.Default(), Caps: caps, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decision(PPTP)
	if !strings.Contains(d.Reason, "nf_nat_pptp") || !strings.Contains(d.Degraded, "one PPTP client per server") {
		t.Errorf("decision does not say what is missing and what it costs: %+v", d)
	}
	if len(p.Warnings) == 0 {
		t.Error("no warning")
	}
}

func TestBuildRefuses(t *testing.T) {
	if _, err := Build(Input{Config: config.Default(), Caps: Caps{}, Topology: topo}); err == nil {
		t.Error("no error without nf_tables")
	}
	if _, err := Build(Input{Config: config.Default(), Caps: fullCaps}); err == nil {
		t.Error("no error without devices")
	}
}

func TestDisabledInstallsNothing(t *testing.T) {
	c := config.Default()
	c.Enabled = false
	p, err := Build(Input{Config: c, Caps: Caps{}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() || len(p.Counters) != 0 {
		t.Errorf("disabled plan is not empty: %+v", p)
	}
}

// TestEngineGuards: with an engine, marked packets from the WAN may only go to
// the LAN, and untracked LAN ESP that no engine rewrote is dropped after NAT.
func TestEngineGuards(t *testing.T) {
	p, err := Build(Input{Config: config.Default(), Caps: fullCaps, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	g := rulesWith(p, func(r Rule) bool { return r.Counter == CounterMarkGuard })
	if len(g) != 1 || g[0].IIFSet != SetWAN || g[0].OIFSet != SetLAN || !g[0].OIFNot || g[0].MarkMask != MarkMask ||
		g[0].MarkNot || g[0].Verdict != VerdictDrop {
		t.Errorf("mark guard = %+v", g)
	}
	var leak *Chain
	for i := range p.Chains {
		if p.Chains[i].Name == chainESPLeakGuard {
			leak = &p.Chains[i]
		}
	}
	if leak == nil || leak.Hook != HookPostrouting || leak.Priority <= 100 {
		t.Fatalf("leak guard chain = %+v", leak)
	}
	for _, r := range leak.Rules {
		if !r.Untracked || !r.MarkNot || r.OIFSet != SetWAN || r.Verdict != VerdictDrop {
			t.Errorf("leak guard rule = %+v", r)
		}
	}
	kernel := config.Default()
	kernel.Mode, kernel.IPsec.ESPMux = config.ModeKernel, config.ESPMuxOff
	p, _ = Build(Input{Config: kernel, Caps: fullCaps, Topology: topo})
	if n := len(rulesWith(p, func(r Rule) bool { return r.Counter == CounterMarkGuard || r.Counter == CounterESPLeak })); n != 0 {
		t.Errorf("kernel datapath has %d engine guards", n)
	}
}
