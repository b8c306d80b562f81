package nft

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// These tests talk to the real kernel inside network namespaces they create.
// They need root and nft(8) (only the tests use nft; the daemon never does).

type netns struct {
	name string
	fd   *os.File
}

func newNetns(t testing.TB) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft(8) to cross-check the netlink encoding (make deps installs nftables)")
	}
	name := fmt.Sprintf("vpt-nft-%d-%d", os.Getpid(), len(t.Name())+int(nsCounter.add()))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	f, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &netns{name: name, fd: f}
}

func (n *netns) conn(t testing.TB) *Conn {
	t.Helper()
	c, err := OpenNetNS(int(n.fd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (n *netns) nft(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("nft %v: %v: %s", args, err, errb.String())
	}
	return out.String()
}

// appliedEveryField is a fresh namespace with everyField's plan applied.
func appliedEveryField(t *testing.T) (*netns, *Conn, *plan.Plan) {
	t.Helper()
	ns := newNetns(t)
	c := ns.conn(t)
	p := everyField()
	if err := c.Apply(p); err != nil {
		t.Fatal(err)
	}
	return ns, c, p
}

func (n *netns) list(t *testing.T) string {
	return n.nft(t, "", "list", "table", "inet", plan.TableName)
}

type counter struct{ n int64 }

func (c *counter) add() int64 { c.n++; return c.n }

var nsCounter counter

var fullCaps = plan.Caps{NFTables: true, Conntrack: true, PPTPHelper: true, PPTPNAT: true, GRETracking: true,
	NFQueue: true, NFTQueueExpr: false, XTNFQueue: true, MapPayload: true, Ctnetlink: true}

func plans(t *testing.T) map[string]*plan.Plan {
	t.Helper()
	topo := config.Topology{LAN: []string{"r-lan1", "r-lan2"}, WAN: []string{"r-wan"}}
	mk := func(f func(*config.Config), caps plan.Caps) *plan.Plan {
		c := config.Default()
		if f != nil {
			f(&c)
		}
		p, err := plan.Build(plan.Input{Config: c, Caps: caps, Topology: topo})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	noHelper := fullCaps
	noHelper.PPTPHelper = false
	masq, err := plan.Build(plan.Input{Config: config.Default(), Caps: fullCaps, Topology: topo, Masquerade: true})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*plan.Plan{
		"masquerade": masq,
		"default":    mk(nil, fullCaps),
		"kernel":     mk(func(c *config.Config) { c.Mode = config.ModeKernel }, fullCaps),
		"all-off-logged": mk(func(c *config.Config) {
			c.PPTP.Enabled, c.L2TP.Enabled, c.IPsec.Enabled, c.LogBlocked = false, false, false, true
		}, fullCaps),
		"userspace":      mk(func(c *config.Config) { c.Mode = config.ModeUserspace }, fullCaps),
		"auto-no-helper": mk(nil, noHelper),
		"every-field":    everyField(),
	}
}

// everyField exercises every Rule field the planner may use, so a new field
// cannot go untested against nft.
func everyField() *plan.Plan {
	return &plan.Plan{
		Table: plan.TableName,
		Sets: []plan.Set{
			{Name: plan.SetLAN, Type: "ifname", Elements: []string{"a0"}},
			{Name: plan.SetWAN, Type: "ifname", Elements: []string{"b0"}},
			{Name: "servers", Type: "ipv4_addr", Elements: []string{"198.51.100.2", "203.0.113.9"}},
		},
		Maps: []plan.Map{
			{Name: "m_in", Key: plan.Key{plan.FieldIPSaddr, plan.FieldSPIHi, plan.FieldSPILo}, Data: plan.FieldIPDaddr, Counter: true},
			{Name: "m_out", Key: plan.Key{plan.FieldIPSaddr, plan.FieldIPDaddr, plan.FieldSPIHi, plan.FieldSPILo}, Counter: true},
			{Name: "m_src", Key: plan.Key{plan.FieldMetaOIF}, Data: plan.FieldIPSaddr},
			{Name: "m_addr", Key: plan.Key{plan.FieldIPDaddr}},
		},
		Counters: []string{"c1"},
		Chains: []plan.Chain{
			{Name: "raw", Hook: plan.HookPrerouting, Priority: plan.PrioRaw, Rules: []plan.Rule{
				{IIFSet: plan.SetWAN, SAddrSet: "servers", L4: plan.ProtoGRE, Notrack: true, Comment: "n"},
				{IIFSet: plan.SetLAN, GREv1: true, Notrack: true, SetMark: true},
				{IIFSet: plan.SetWAN, SAddrSet: "servers", GREv1: true, MarkMask: plan.MarkMask, Mark: plan.Mark, Counter: "c1"},
				{IIFSet: plan.SetWAN, IPv4Only: true, L4: plan.ProtoESP, KeyMatch: &plan.KeyMatch{Key: plan.Key{plan.FieldIPDaddr}, Set: "m_addr"},
					MapSet:  &plan.MapStmt{Dst: plan.FieldIPDaddr, Key: plan.Key{plan.FieldIPSaddr, plan.FieldSPIHi, plan.FieldSPILo}, Map: "m_in"},
					Notrack: true, SetMark: true, Verdict: plan.VerdictAccept},
			}},
			{Name: "post", Hook: plan.HookPostrouting, Priority: plan.PrioSrcNAT, Rules: []plan.Rule{
				{OIFSet: plan.SetWAN, DAddrSet: "servers", L4: plan.ProtoESP, SetMark: true, Counter: "c1"},
				{MarkMask: plan.MarkMask, Mark: plan.Mark, Verdict: plan.VerdictAccept},
				{OIFSet: plan.SetLAN, OIFNot: true, Untracked: true, L4: plan.ProtoESP, Verdict: plan.VerdictDrop},
				{OIFSet: plan.SetWAN, L4: plan.ProtoESP, MarkMask: plan.MarkMask, Mark: plan.Mark, MarkNot: true, Verdict: plan.VerdictDrop},
			}},
			{Name: "filter_fwd", Hook: plan.HookForward, Priority: plan.PrioForward, Rules: []plan.Rule{
				{IIFSet: plan.SetLAN, OIFSet: plan.SetWAN, IPv4Only: true, L4: plan.ProtoESP,
					KeyMatch: &plan.KeyMatch{Key: plan.Key{plan.FieldIPSaddr, plan.FieldIPDaddr, plan.FieldSPIHi, plan.FieldSPILo}, Set: "m_out"},
					MapSet:   &plan.MapStmt{Dst: plan.FieldIPSaddr, Key: plan.Key{plan.FieldMetaOIF}, Map: "m_src"},
					SetMark:  true, Verdict: plan.VerdictAccept},
				{IIFSet: plan.SetLAN, IPv4Only: true, L4: plan.ProtoUDP, SPort: 500, DPort: 4500,
					Limit: &plan.Limit{PerSecond: 3, Burst: 4}, Log: "x: "},
				{IIFSet: plan.SetWAN, OIFSet: plan.SetLAN, L4: plan.ProtoUDP, DPort: 500,
					CtState: plan.CtStateNew, NotDNAT: true, Counter: "c1", Verdict: plan.VerdictDrop},
				{L4: plan.ProtoGRE, CtState: plan.CtStateEstablished | plan.CtStateRelated | plan.CtStateUntracked, Counter: "c1"},
			}},
		},
	}
}

// TestEncodingMatchesNft applies each plan through netlink in one namespace
// and loads its rendered text with `nft -f` in another: nft must list both
// the same. This ties the encoder to the renderer (and so to what dry-run
// shows) rule by rule.
func TestEncodingMatchesNft(t *testing.T) {
	for name, p := range plans(t) {
		t.Run(name, func(t *testing.T) {
			a, b := newNetns(t), newNetns(t)
			if err := a.conn(t).Apply(p); err != nil {
				t.Fatal(err)
			}
			text, got, queued := p.Render(), "", 0
			if p.QueueCompat {
				// nft cannot load the xtables NFQUEUE target from text
				// (and this kernel lacks the native queue expression), so
				// compare the rest of every rule and count the queue
				// statements nft lists for the netlink side.
				text, queued = withoutQueues(p).Render(), countQueues(p)
			}
			b.nft(t, text, "-f", "-")
			got, want := a.list(t), b.list(t)
			for _, m := range p.Maps {
				// nft keeps a typeof line in userdata; netlink makes
				// the same set without it (plan.Map.Decl).
				want = strings.ReplaceAll(want, m.Decl(), m.Type())
			}
			if p.QueueCompat {
				n := len(listedQueue.FindAllString(got, -1))
				got = listedQueue.ReplaceAllString(got, "")
				if n != queued {
					t.Errorf("nft lists %d queue statements, the plan has %d:\n%s", n, queued, a.list(t))
				}
			}
			if got != want {
				t.Errorf("netlink encoding differs from nft's reading of the rendered plan\n--- netlink\n%s\n--- nft -f\n%s", got, want)
			}
		})
	}
}

func TestApplyIsIdempotentAndKeepsCounters(t *testing.T) {
	ns := newNetns(t)
	c := ns.conn(t)
	p := plans(t)["all-off-logged"]
	// Start from a table whose counter already counted something, as after
	// traffic: loaded by nft with a preset value.
	text := strings.Replace(p.Render(), "counter blocked_pptp {\n\t}", "counter blocked_pptp {\n\t\tpackets 7 bytes 700\n\t}", 1)
	if text == p.Render() {
		t.Fatal("test setup: counter not found in rendered plan")
	}
	ns.nft(t, text, "-f", "-")
	if err := c.Apply(p); err != nil {
		t.Fatal(err)
	}
	first := ns.list(t)
	if err := c.Apply(p); err != nil {
		t.Fatal(err)
	}
	if second := ns.list(t); second != first {
		t.Errorf("second apply changed the table:\n%s\n---\n%s", first, second)
	}
	if n := strings.Count(ns.nft(t, "", "list", "tables"), plan.TableName); n != 1 {
		t.Errorf("%d tables named %s", n, plan.TableName)
	}
	cs, err := c.Counters(plan.TableName)
	if err != nil {
		t.Fatal(err)
	}
	if got := cs["blocked_pptp"]; got.Packets != 7 || got.Bytes != 700 {
		t.Errorf("counter after two applies = %+v, want 7 packets 700 bytes", got)
	}
}

func TestRefusedApplyKeepsPreviousState(t *testing.T) {
	ns := newNetns(t)
	c := ns.conn(t)
	good := plans(t)["kernel"]
	if err := c.Apply(good); err != nil {
		t.Fatal(err)
	}
	before := ns.list(t)
	bad := *plans(t)["default"]
	bad.Helpers = append([]plan.Helper(nil), bad.Helpers...)
	bad.Helpers = append(bad.Helpers, plan.Helper{Name: "bogus", Type: "no-such-helper", L4: plan.ProtoTCP, L3IPv4: true})
	err := c.Apply(&bad)
	if err == nil {
		t.Fatal("kernel accepted a helper that does not exist")
	}
	if !strings.Contains(err.Error(), "inet "+plan.TableName) {
		t.Errorf("error does not name the table: %v", err)
	}
	if after := ns.list(t); after != before {
		t.Errorf("refused apply changed the table:\n%s\n---\n%s", before, after)
	}
}

func TestRemove(t *testing.T) {
	ns := newNetns(t)
	c := ns.conn(t)
	if err := c.Remove(plan.TableName); err != nil {
		t.Fatalf("remove without table: %v", err)
	}
	if err := c.Apply(plans(t)["default"]); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Exists(plan.TableName); err != nil || !ok {
		t.Fatalf("exists = %v, %v", ok, err)
	}
	if err := c.Remove(plan.TableName); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Exists(plan.TableName); err != nil || ok {
		t.Fatalf("after remove: exists = %v, %v", ok, err)
	}
	if out := ns.nft(t, "", "list", "ruleset"); strings.TrimSpace(out) != "" {
		t.Errorf("ruleset not empty after remove:\n%s", out)
	}
}

func TestProbes(t *testing.T) {
	ns := newNetns(t)
	c := ns.conn(t)
	if err := c.ProbeCtHelper("no-such-helper", 6); err == nil {
		t.Error("probe accepted a helper that does not exist")
	}
	if err := c.ProbeCtHelper("ftp", 6); err != nil {
		t.Logf("ftp helper not in this kernel: %v", err)
	}
	native, compat := c.ProbeQueue(false), c.ProbeQueue(true)
	t.Logf("queue expression: %v; xt NFQUEUE compat: %v", native, compat)
	if native != nil && compat != nil {
		t.Log("this kernel can queue neither way; userspace engines would be unavailable")
	}
	if out := ns.nft(t, "", "list", "ruleset"); strings.TrimSpace(out) != "" {
		t.Errorf("probes left state behind:\n%s", out)
	}
}

// listedQueue is how nft lists a queue statement: the xtables NFQUEUE target
// as nft translates it, or the native expression.
var listedQueue = regexp.MustCompile(` (queue (num \d+|flags bypass to \d+|to \d+)( bypass)?|xt target "NFQUEUE")`)

// withoutQueues copies p without the queue statements of its rules.
func withoutQueues(p *plan.Plan) *plan.Plan {
	q := *p
	q.Chains = nil
	for _, c := range p.Chains {
		c.Rules = append([]plan.Rule(nil), c.Rules...)
		for i := range c.Rules {
			c.Rules[i].Queue = nil
		}
		q.Chains = append(q.Chains, c)
	}
	return &q
}

func countQueues(p *plan.Plan) int {
	n := 0
	for _, c := range p.Chains {
		for _, r := range c.Rules {
			if r.Queue != nil {
				n++
			}
		}
	}
	return n
}

// TestTransitions applies every other plan in turn and then the target in
// one namespace, in place each time, and requires the result to list exactly
// like the target loaded with nft -f into an empty namespace: no stale chain,
// rule, set, element or object survives a change.
func TestTransitions(t *testing.T) {
	ps := plans(t)
	moved := *ps["default"]
	moved.Chains = append([]plan.Chain(nil), moved.Chains...)
	for i := range moved.Chains {
		if moved.Chains[i].Name == "forward" {
			moved.Chains[i].Priority = -2 // same name, other priority: recreated
		}
	}
	ps["moved-forward"] = &moved
	names := make([]string, 0, len(ps))
	for n := range ps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, target := range names {
		t.Run(target, func(t *testing.T) {
			a, b := newNetns(t), newNetns(t)
			c := a.conn(t)
			for _, other := range names {
				if other != target {
					if err := c.Apply(ps[other]); err != nil {
						t.Fatalf("apply %s: %v", other, err)
					}
				}
			}
			if err := c.Apply(ps[target]); err != nil {
				t.Fatalf("apply %s: %v", target, err)
			}
			if !c.Intact(ps[target]) {
				t.Error("Intact is false right after an apply")
			}
			p := ps[target]
			text := p.Render()
			if p.QueueCompat { // see TestEncodingMatchesNft
				text = withoutQueues(p).Render()
			}
			b.nft(t, text, "-f", "-")
			got, want := a.list(t), b.list(t)
			for _, m := range p.Maps {
				// nft keeps a typeof line in userdata; netlink makes
				// the same set without it (plan.Map.Decl).
				want = strings.ReplaceAll(want, m.Decl(), m.Type())
			}
			if p.QueueCompat {
				got = listedQueue.ReplaceAllString(got, "")
			}
			// Chains and objects that survived keep their older place in
			// the listing; the order of blocks carries no meaning.
			got, want = sortedBlocks(got), sortedBlocks(want)
			if got != want {
				t.Errorf("after transitions, table differs from a fresh load\n--- in place\n%s\n--- fresh\n%s", got, want)
			}
		})
	}
}

// sortedBlocks sorts the top-level blocks (sets, counters, helpers, chains)
// of an `nft list table` output.
func sortedBlocks(listing string) string {
	var blocks []string
	var cur []string
	for _, line := range strings.Split(listing, "\n") {
		switch {
		case strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "\t\t") && strings.HasSuffix(line, "{"):
			cur = []string{line}
		case line == "\t}" && cur != nil:
			blocks = append(blocks, strings.Join(append(cur, line), "\n"))
			cur = nil
		case cur != nil:
			cur = append(cur, line)
		}
	}
	sort.Strings(blocks)
	return strings.Join(blocks, "\n")
}
