package plan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
)

func pptpPlan(t *testing.T, mode config.Mode, caps Caps) *Plan {
	t.Helper()
	c := config.Default()
	c.Mode = mode
	p, err := Build(Input{Config: c, Caps: caps, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUserspacePPTPPlan(t *testing.T) {
	noHelper := fullCaps
	noHelper.PPTPHelper, noHelper.PPTPNAT = false, false
	noMaps := noHelper
	noMaps.MapPayload = false
	noCtnetlink := noHelper
	noCtnetlink.Ctnetlink = false
	for name, tc := range map[string]struct {
		mode config.Mode
		caps Caps
	}{
		"mode userspace, kernel with helper":             {config.ModeUserspace, fullCaps},
		"mode auto, kernel without helper":               {config.ModeAuto, noHelper},
		"mode auto, kernel without helper and fast path": {config.ModeAuto, noMaps},
		"mode auto, kernel without helper and ctnetlink": {config.ModeAuto, noCtnetlink},
	} {
		fast := tc.caps.MapPayload && tc.caps.Ctnetlink
		t.Run(name, func(t *testing.T) {
			p := pptpPlan(t, tc.mode, tc.caps)
			d := p.Decision(PPTP)
			if d.Datapath != PathUserspace || (d.Degraded != "") != !tc.caps.Ctnetlink {
				t.Fatalf("decision %+v", d)
			}
			if !tc.caps.Ctnetlink && (!strings.Contains(d.Reason, "nf_conntrack_netlink") || !strings.Contains(d.Degraded, "kmod-nf-conntrack-netlink")) {
				t.Errorf("without ctnetlink the decision does not say so: %+v", d)
			}
			var q *Queue
			for i := range p.Queues {
				if p.Queues[i].Engine == "pptp" {
					q = &p.Queues[i]
				}
			}
			if q == nil || q.Num != 4200 || q.Maps != fast || q.Mark != Mark || q.ClearHelper != tc.caps.PPTPHelper {
				t.Fatalf("queues %+v", p.Queues)
			}
			// LAN control connections get no kernel helper (the engine
			// translates); the router's own, in output, do when the
			// kernel has it (router.go).
			for _, c := range p.Chains {
				for _, r := range c.Rules {
					if r.CtHelper != "" && c.Hook != HookOutput {
						t.Errorf("a ct helper outside output in userspace mode: %s", r)
					}
				}
			}
			if (len(p.Helpers) != 0) != tc.caps.PPTPHelper || (chainNamed(p, ChainRouterOutput) != nil) != tc.caps.PPTPHelper {
				t.Errorf("helpers %+v with kernel helper %v", p.Helpers, tc.caps.PPTPHelper)
			}
			// New GRE that no call holds, to a PPTP WAN address, is
			// dropped after conntrack (GRE related to the router's own
			// calls is not new).
			if g := chainNamed(p, chainPPTPGREGuard); g == nil || g.Hook != HookPrerouting || g.Priority <= -200 || len(g.Rules) != 1 ||
				!g.Rules[0].GREv1 || g.Rules[0].CtState != CtStateNew|CtStateInvalid || g.Rules[0].KeyMatch == nil ||
				g.Rules[0].KeyMatch.Set != MapPPTPWANAddrs || g.Rules[0].Counter != CounterPPTPUnknownCall || g.Rules[0].Verdict != VerdictDrop {
				t.Errorf("unknown-call drop chain %+v", g)
			}
			raw, untrack, fwd := chainNamed(p, chainPPTPRaw), chainNamed(p, chainPPTPUntrack), chainNamed(p, "forward")
			if raw == nil || fwd == nil || (untrack == nil) == !fast {
				t.Fatalf("chains %+v", p.Chains)
			}
			if raw.Hook != HookPrerouting || raw.Priority != -300 {
				t.Errorf("hooks: raw %s/%d", raw.Hook, raw.Priority)
			}
			if fast {
				checkPPTPFastPath(t, p, raw)
			} else if untrack.Hook != HookPrerouting || untrack.Priority != -299 {
				t.Errorf("hooks: untrack %s/%d", untrack.Hook, untrack.Priority)
			}
			// Every PPTP queue rule uses bypass and queue_base; GRE rules
			// only touch GRE version 1 from the WAN.
			want := map[string]bool{
				"pptp_raw wan_devs  gre":        fast,  // inbound GRE demux (fallback only)
				"pptp_raw lan_devs  tcp":        false, // control RSTs before conntrack
				"pptp_raw wan_devs  tcp":        false,
				"forward lan_devs wan_devs tcp": false,
				"forward wan_devs lan_devs tcp": false,
			}
			for _, c := range p.Chains {
				for _, r := range c.Rules {
					if r.Queue == nil || r.Queue.Num != 4200 {
						continue
					}
					if !r.Queue.Bypass {
						t.Errorf("queue rule without bypass: %s", r)
					}
					kind := r.L4.String()
					if r.GREv1 {
						kind = "gre"
					}
					k := c.Name + " " + r.IIFSet + " " + r.OIFSet + " " + kind
					if _, ok := want[k]; !ok {
						t.Errorf("unexpected queue rule %q: %s", k, r)
					}
					want[k] = true
					if r.L4 == ProtoTCP && (r.DPort != 1723 && r.SPort != 1723 || !r.IPv4Only) {
						t.Errorf("control rule %s", r)
					}
				}
			}
			for k, ok := range want {
				if !ok {
					t.Errorf("no queue rule %q", k)
				}
			}
			// Segments conntrack finds invalid are dropped and counted
			// before the engine's forward rules.
			if inv := rulesWith(p, func(r Rule) bool {
				return r.CtState == CtStateInvalid && r.L4 == ProtoTCP && r.Verdict == VerdictDrop && r.Counter == CounterPPTPInvalid
			}); len(inv) != 1 || inv[0].IIFSet != SetLAN {
				t.Errorf("invalid-control drop rules %+v", inv)
			}
			// Outbound GRE is the kernel's (masquerade): nothing of ours
			// touches GRE from the LAN.
			if lan := rulesWith(p, func(r Rule) bool { return r.IIFSet == SetLAN && r.GREv1 }); len(lan) != 0 {
				t.Errorf("rules on LAN GRE: %+v", lan)
			}
			if fast {
				return
			}
			if r := untrack.Rules[0]; len(untrack.Rules) != 1 || !r.Notrack || !r.GREv1 || r.MarkMask != MarkMask || r.Mark != Mark || r.MarkNot || r.IIFSet != SetWAN {
				t.Errorf("untrack rules %+v", untrack.Rules)
			}
			if m, ok := p.Map(MapPPTPWANAddrs); !ok || len(p.Maps) == 0 || m.Engine != "pptp" {
				t.Errorf("fallback maps %+v", p.Maps)
			}
			for _, r := range rulesWith(p, func(r Rule) bool { return r.L4 == ProtoGRE && (r.Queue != nil || r.Notrack) }) {
				t.Errorf("a rule touches all GRE, not just version 1: %s", r)
			}
		})
	}
}

func TestUserspacePPTPCompatQueue(t *testing.T) {
	caps := fullCaps
	caps.NFTQueueExpr = false
	if p := pptpPlan(t, config.ModeUserspace, caps); !p.QueueCompat {
		t.Error("kernel without nft queue: plan does not ask for the compat target")
	}
	caps.XTNFQueue = false
	p := pptpPlan(t, config.ModeUserspace, caps)
	if d := p.Decision(PPTP); d.Datapath != PathKernel || !strings.Contains(d.Reason, "NFQUEUE") {
		t.Errorf("no queue at all: decision %+v", d)
	}
}

// TestUserspacePPTPGolden pins the whole rendered plan of mode userspace.
func TestUserspacePPTPGolden(t *testing.T) {
	caps := fullCaps
	caps.NFTQueueExpr = false // this lab kernel: compat queue
	c := config.Default()
	c.Mode = config.ModeUserspace
	p, err := Build(Input{Config: c, Caps: caps, Topology: config.Topology{LAN: []string{"r-lan1", "r-lan2"}, WAN: []string{"r-wan"}, LANFrom: "test", WANFrom: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Summary() + "\n" + p.Render()
	path := filepath.Join("testdata", "userspace-pptp.golden")
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
}

// checkPPTPFastPath: with the kernel fast path, inbound GRE of known calls
// is demultiplexed from the maps (only when sent to the control
// connection's router address), unknown Call IDs to those addresses are
// dropped silently, and no GRE is queued.
func checkPPTPFastPath(t *testing.T, p *Plan, raw *Chain) {
	t.Helper()
	for _, name := range []string{MapPPTPCalls, MapPPTPDst, MapPPTPKey, MapPPTPWANAddrs} {
		if m, ok := p.Map(name); !ok || m.Engine != "pptp" {
			t.Errorf("no map %s (%+v)", name, p.Maps)
		}
	}
	if len(raw.Rules) < 1 {
		t.Fatalf("raw rules %+v", raw.Rules)
	}
	demux := raw.Rules[0]
	if !demux.GREv1 || !demux.GREPPTP || demux.IIFSet != SetWAN || demux.KeyMatch == nil || demux.KeyMatch.Set != MapPPTPCalls ||
		demux.KeyMatch.Key[0] != FieldIPDaddr || demux.MapSet == nil || demux.MapSet.Dst != FieldIPDaddr ||
		demux.MapSet2 == nil || demux.MapSet2.Dst != FieldGREKey || !demux.Notrack || !demux.SetMark || demux.Verdict != VerdictAccept {
		t.Errorf("demux rule %s", demux)
	}
	// Both rewrites are keyed by the packet as it arrived: neither key
	// holds the destination the first one rewrites.
	for _, f := range append(append(Key{}, demux.MapSet.Key...), demux.MapSet2.Key...) {
		if f == FieldIPDaddr {
			t.Errorf("a rewrite is keyed by the rewritten address: %s", demux)
		}
	}
	for _, r := range rulesWith(p, func(r Rule) bool { return r.GREv1 && r.Queue != nil }) {
		t.Errorf("GRE queued although the kernel maps carry it: %s", r)
	}
}
