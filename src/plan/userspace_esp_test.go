package plan

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
)

func espPlan(t *testing.T, f func(*config.Config), caps Caps) *Plan {
	t.Helper()
	c := config.Default()
	if f != nil {
		f(&c)
	}
	p, err := Build(Input{Config: c, Caps: caps, Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func chainNamed(p *Plan, name string) *Chain {
	for i := range p.Chains {
		if p.Chains[i].Name == name {
			return &p.Chains[i]
		}
	}
	return nil
}

func TestUserspaceESPPlan(t *testing.T) {
	p := espPlan(t, nil, fullCaps)
	if d := p.Decision(IPsec); d.Datapath != PathUserspace || d.Degraded != "AH cannot pass NAT by design" {
		t.Fatalf("decision %+v", d)
	}
	if len(p.Queues) != 1 || p.Queues[0] != (Queue{Num: 4201, Engine: "esp", Maps: true, Mark: Mark}) {
		t.Fatalf("queues %+v", p.Queues)
	}
	raw, untrack, fwd := chainNamed(p, chainESPRaw), chainNamed(p, chainESPUntrack), chainNamed(p, "forward")
	if raw == nil || untrack == nil || fwd == nil {
		t.Fatalf("chains %+v", p.Chains)
	}
	if raw.Hook != HookPrerouting || raw.Priority != -300 || untrack.Hook != HookPrerouting || untrack.Priority != -299 {
		t.Fatalf("raw %s/%d, untrack %s/%d", raw.Hook, raw.Priority, untrack.Hook, untrack.Priority)
	}
	// Every queue rule is IPv4, uses bypass and the ESP queue.
	queued := map[string]bool{}
	for _, c := range p.Chains {
		for _, r := range c.Rules {
			if r.Queue == nil {
				continue
			}
			if !r.IPv4Only || !r.Queue.Bypass || r.Queue.Num != 4201 {
				t.Errorf("queue rule %s", r)
			}
			queued[c.Name+" "+r.L4.String()+" "+r.IIFSet] = true
		}
	}
	for _, want := range []string{"esp_raw esp wan_devs", "esp_raw udp wan_devs", "forward esp lan_devs", "forward udp lan_devs"} {
		if !queued[want] {
			t.Errorf("no queue rule %q (have %v)", want, queued)
		}
	}
	// The guard is the first forward rule: nothing unmarked from WAN to LAN.
	g := fwd.Rules[0]
	if g.L4 != ProtoESP || g.IIFSet != SetWAN || g.OIFSet != SetLAN || !g.MarkNot || g.Mark != Mark ||
		g.Verdict != VerdictDrop || g.Counter != CounterESPUnsolicited {
		t.Fatalf("first forward rule %s", g)
	}
	// The untrack chain keys on the engine's mark only; then (kernel
	// maps) unmarked ESP of the servers LAN clients use, to a WAN address,
	// is dropped: with the daemon down it would draw fw4's ICMP errors.
	u := untrack.Rules
	if len(u) != 2 || !u[0].Notrack || u[0].MarkMask != MarkMask || u[0].MarkNot || u[0].Queue != nil {
		t.Fatalf("untrack rules %+v", u)
	}
	if d := u[1]; d.L4 != ProtoESP || d.IIFSet != SetWAN || d.KeyMatch == nil || d.KeyMatch.Set != MapESPServers || d.DAddrSet != MapESPWANAddrs ||
		!d.MarkNot || d.Mark != Mark || d.Verdict != VerdictDrop || d.Counter != CounterESPNoEngine || d.Queue != nil {
		t.Fatalf("no-engine drop %s", d)
	}
	// Without keep_ike_port IKE stays tracked (kernel NAT).
	for _, r := range raw.Rules {
		if r.Notrack && r.L4 == ProtoUDP {
			t.Fatalf("IKE untracked without keep_ike_port: %s", r)
		}
	}
	// Native queue expression where the kernel has it, compat otherwise.
	if p.QueueCompat {
		t.Error("compat with nft_queue present")
	}
	caps := fullCaps
	caps.NFTQueueExpr = false
	if p := espPlan(t, nil, caps); !p.QueueCompat {
		t.Error("no compat without nft_queue")
	}
}

func TestUserspaceESPNotWanted(t *testing.T) {
	noQueue := fullCaps
	noQueue.NFQueue = false
	for name, tc := range map[string]struct {
		f    func(*config.Config)
		caps Caps
		path Datapath
	}{
		"esp_mux off":      {func(c *config.Config) { c.IPsec.ESPMux = config.ESPMuxOff }, fullCaps, PathKernel},
		"mode kernel":      {func(c *config.Config) { c.Mode = config.ModeKernel }, fullCaps, PathKernel},
		"no nfqueue":       {nil, noQueue, PathKernel},
		"ipsec off":        {func(c *config.Config) { c.IPsec.Enabled = false }, fullCaps, PathBlocked},
		"mode kernel, on":  {func(c *config.Config) { c.Mode, c.IPsec.ESPMux = config.ModeKernel, config.ESPMuxOn }, fullCaps, PathUserspace},
		"daemon disabled":  {func(c *config.Config) { c.Enabled = false }, fullCaps, PathUntouched},
		"pptp off, esp on": {func(c *config.Config) { c.PPTP.Enabled = false }, fullCaps, PathUserspace},
	} {
		t.Run(name, func(t *testing.T) {
			p := espPlan(t, tc.f, tc.caps)
			if d := p.Decision(IPsec); d.Datapath != tc.path {
				t.Fatalf("datapath %s, want %s", d.Datapath, tc.path)
			}
			hasESP := chainNamed(p, chainESPRaw) != nil
			if hasESP != (tc.path == PathUserspace) {
				t.Fatalf("esp chains present %v for datapath %s", hasESP, tc.path)
			}
			if tc.path == PathBlocked {
				// AH, ESP, 500 and 4500 are blocked; nothing is queued.
				if len(p.Queues) != 0 {
					t.Fatalf("queues %+v", p.Queues)
				}
				n := len(rulesWith(p, func(r Rule) bool { return r.Counter == BlockedCounter(IPsec) && r.Verdict == VerdictDrop }))
				if n != 10 {
					t.Fatalf("%d ipsec drop rules, want 10 (esp, ah, udp 500, udp 4500 out; esp, ah, udp 500 and 4500 from either port in)", n)
				}
			}
		})
	}
}

func TestUserspaceESPKeepIKEPortGolden(t *testing.T) {
	p := espPlan(t, func(c *config.Config) {
		c.IPsec.KeepIKEPort = true
		c.QueueBase = 7000
		c.PPTP.Enabled, c.L2TP.Enabled = false, false
	}, fullCaps)
	got := p.Summary() + "\n" + p.Render()
	path := filepath.Join("testdata", "userspace-esp-keep-ike-port.golden")
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
	n := len(rulesWith(p, func(r Rule) bool {
		return r.Notrack && r.L4 == ProtoUDP && r.SPort == 500 && r.DPort == 500 && r.IIFSet == SetLAN
	}))
	if n != 1 || p.Queues[0].Num != 7001 {
		t.Fatalf("%d IKE notrack rules, queue %+v", n, p.Queues)
	}
}

// With the fast path, each ESP queue rule has a map rule before it in the
// same chain that forwards (and accepts) what the maps know; without
// it (older kernels) the plan has no maps and queues every packet.
func TestUserspaceESPKernelMaps(t *testing.T) {
	p := espPlan(t, nil, fullCaps)
	for _, name := range []string{MapESPIn, MapESPOut, MapESPWANSrc, MapESPWANAddrs} {
		if _, ok := p.Map(name); !ok {
			t.Errorf("no map %s", name)
		}
	}
	for _, c := range p.Chains {
		for i, r := range c.Rules {
			if r.Queue == nil || r.L4 != ProtoESP {
				continue
			}
			j := slices.IndexFunc(c.Rules[:i], func(m Rule) bool {
				return m.L4 == ProtoESP && m.IIFSet == r.IIFSet && m.MapSet != nil && m.Verdict == VerdictAccept && m.SetMark
			})
			if j < 0 {
				t.Errorf("chain %s: ESP queue rule %q has no map rule before it", c.Name, r)
				continue
			}
			m := c.Rules[j]
			for _, ref := range []string{m.MapSet.Map, m.KeyMatch.Set} {
				if _, ok := p.Map(ref); !ok {
					t.Errorf("rule %q refers to map %s the plan lacks", m, ref)
				}
			}
		}
	}
	old := fullCaps
	old.MapPayload = false
	q := espPlan(t, nil, old)
	if len(q.Maps) != 0 || q.Queues[0].Maps {
		t.Errorf("fallback plan has maps %+v, queue %+v", q.Maps, q.Queues)
	}
	for _, c := range q.Chains {
		for _, r := range c.Rules {
			if r.MapSet != nil || r.KeyMatch != nil {
				t.Errorf("fallback rule uses maps: %s", r)
			}
		}
	}
	if d := q.Decision(IPsec); !strings.Contains(d.Reason, "every ESP packet through NFQUEUE") {
		t.Errorf("fallback reason does not say so: %s", d.Reason)
	}
}
