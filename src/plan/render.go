package plan

import (
	"fmt"
	"strings"
)

// Render prints the plan as an nft script: what `apply --dry-run` shows, and
// what tests load with `nft -f` to check the netlink encoder against nft's.
func (p *Plan) Render() string {
	var b strings.Builder
	if p.Empty() {
		fmt.Fprintf(&b, "# vpn-passthrough is disabled: table inet %s is not installed\n", p.Table)
		return b.String()
	}
	for _, q := range p.Queues {
		fmt.Fprintf(&b, "# %s\n", q.Describe(p))
	}
	fmt.Fprintf(&b, "table inet %s {\n", p.Table)
	for _, s := range p.Sets {
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n", s.Name, s.Type)
		if len(s.Elements) > 0 {
			fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(quoteElems(s), ", "))
		}
		b.WriteString("\t}\n\n")
	}
	for _, m := range p.Maps {
		kind := "set"
		if m.IsMap() {
			kind = "map"
		}
		fmt.Fprintf(&b, "\t%s %s {\n\t\t%s\n", kind, m.Name, m.Decl())
		if m.Counter {
			b.WriteString("\t\tcounter\n")
		}
		b.WriteString("\t}\n\n")
	}
	for _, c := range p.Counters {
		fmt.Fprintf(&b, "\tcounter %s {\n\t}\n\n", c)
	}
	for _, h := range p.Helpers {
		fmt.Fprintf(&b, "\tct helper %s {\n\t\ttype %q protocol %s\n", h.Name, h.Type, h.L4)
		if h.L3IPv4 {
			b.WriteString("\t\tl3proto ip\n")
		}
		b.WriteString("\t}\n\n")
	}
	for i, c := range p.Chains {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority %d; policy accept;\n", c.Name, c.Hook, c.Priority)
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.String())
		}
		b.WriteString("\t}\n")
		if i < len(p.Chains)-1 {
			b.WriteString("\n")
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func quoteElems(s Set) []string {
	out := make([]string, len(s.Elements))
	for i, e := range s.Elements {
		if s.Type == "ifname" {
			out[i] = fmt.Sprintf("%q", e)
		} else {
			out[i] = e
		}
	}
	return out
}

// String renders one rule in nft syntax.
func (r Rule) String() string {
	var f []string
	if r.IPv4Only {
		f = append(f, "meta nfproto ipv4")
	}
	if r.SAddrSet != "" {
		f = append(f, "ip saddr @"+r.SAddrSet)
	}
	if r.DAddrSet != "" {
		f = append(f, "ip daddr @"+r.DAddrSet)
	}
	if r.GREv1 {
		f = append(f, "ip protocol gre @th,8,8 & 0x7 == 0x1")
	}
	if r.GREPPTP {
		f = append(f, "@th,0,32 & 0xef7fffff == 0x2001880b")
	}
	switch {
	case r.DPort != 0 || r.SPort != 0:
		if r.SPort != 0 {
			f = append(f, fmt.Sprintf("%s sport %d", r.L4, r.SPort))
		}
		if r.DPort != 0 {
			f = append(f, fmt.Sprintf("%s dport %d", r.L4, r.DPort))
		}
	case r.L4 != ProtoAny:
		f = append(f, "meta l4proto "+r.L4.String())
	}
	// Same order as the netlink encoder: device sets after protocol and
	// ports, which reject most packets more cheaply.
	if r.IIFSet != "" {
		f = append(f, "iifname @"+r.IIFSet)
	}
	if r.OIFSet != "" {
		op := ""
		if r.OIFNot {
			op = "!= "
		}
		f = append(f, "oifname "+op+"@"+r.OIFSet)
	}
	if r.KeyMatch != nil {
		f = append(f, r.KeyMatch.String())
	}
	if r.Untracked {
		f = append(f, "ct state untracked")
	}
	if r.CtState != 0 {
		f = append(f, "ct state "+ctStateNames(r.CtState))
	}
	if r.NotDNAT {
		f = append(f, "ct status & dnat == 0")
	}
	if r.NotNAT {
		f = append(f, "ct status & (snat | dnat) == 0")
	}
	if r.MarkMask != 0 {
		op := "=="
		if r.MarkNot {
			op = "!="
		}
		f = append(f, fmt.Sprintf("meta mark & 0x%08x %s 0x%08x", r.MarkMask, op, r.Mark))
	}
	if r.MapSet != nil {
		f = append(f, r.MapSet.String())
	}
	if r.MapSet2 != nil {
		f = append(f, r.MapSet2.String())
	}
	if r.Limit != nil {
		f = append(f, fmt.Sprintf("limit rate %d/second burst %d packets", r.Limit.PerSecond, r.Limit.Burst))
	}
	if r.Log != "" {
		f = append(f, fmt.Sprintf("log prefix %q", r.Log))
	}
	if r.Counter != "" {
		f = append(f, fmt.Sprintf("counter name %q", r.Counter))
	}
	if r.CtHelper != "" {
		f = append(f, fmt.Sprintf("ct helper set %q", r.CtHelper))
	}
	if r.Notrack {
		f = append(f, "notrack")
	}
	if r.SetMark {
		mark, mask := r.setMarkValues()
		f = append(f, fmt.Sprintf("meta mark set meta mark & 0x%08x | 0x%08x", ^mask, mark))
	}
	if r.Queue != nil {
		q := fmt.Sprintf("queue num %d", r.Queue.Num)
		if r.Queue.Bypass {
			q = fmt.Sprintf("queue flags bypass to %d", r.Queue.Num)
		}
		f = append(f, q)
	}
	switch r.Verdict {
	case VerdictAccept:
		f = append(f, "accept")
	case VerdictDrop:
		f = append(f, "drop")
	}
	if r.Comment != "" {
		f = append(f, fmt.Sprintf("comment %q", r.Comment))
	}
	return strings.Join(f, " ")
}

// Summary is the human part of `check`: decisions, topology and warnings.
func (p *Plan) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "LAN devices: %s (%s)\n", strings.Join(p.Topology.LAN, " "), p.Topology.LANFrom)
	fmt.Fprintf(&b, "WAN devices: %s (%s)\n", strings.Join(p.Topology.WAN, " "), p.Topology.WANFrom)
	for _, d := range p.Decisions {
		fmt.Fprintf(&b, "%-6s %-9s %s\n", d.Proto, d.Datapath, d.Reason)
		if d.Degraded != "" {
			fmt.Fprintf(&b, "%-6s %-9s limitation: %s\n", "", "", d.Degraded)
		}
	}
	for _, q := range p.Queues {
		fmt.Fprintf(&b, "%s\n", q.Describe(p))
	}
	if p.Offload.State != "" {
		fmt.Fprintf(&b, "flow offload: %s (%s)\n", p.Offload.State, p.Offload.Detail)
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}
