package status

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// Input is everything Build needs: plain data the daemon gathers.
type Input struct {
	Version string
	PID     int
	Config  string
	// Plan is the applied plan; nil before the first good apply.
	Plan      *plan.Plan
	Caps      plan.Caps
	Enabled   bool
	AppliedAt time.Time
	Repairs   int
	LastErr   string
	LastErrAt time.Time
	// Counters are the table's nftables counters by name (nil: unreadable).
	Counters map[string]Counter
	// Flows is the conntrack table, read only when a protocol is on the
	// kernel datapath (FlowsRead says it was).
	Flows     []ct.Flow
	FlowsRead bool
	// Accounting and Timestamps are the conntrack sysctls
	// nf_conntrack_acct and nf_conntrack_timestamp; nil if unreadable.
	Accounting, Timestamps *bool
	Engines                []EngineReport
	// Warnings are the daemon's own (fw4 gone, repair storm), shown after
	// the plan's.
	Warnings []string
}

// EngineReport is what one userspace engine says about itself.
type EngineReport struct {
	Name     string // "pptp", "esp"
	Sessions []Session
	Counters map[string]uint64
}

// Build is the one converter from the daemon's state to the wire model.
func Build(in Input) Status {
	s := Status{
		Schema: SchemaVersion, State: StateError, Version: in.Version, PID: in.PID, Config: in.Config,
		Repairs: in.Repairs, LastError: in.LastErr, Protocols: []Protocol{}, Capabilities: []Capability{},
		Sessions: []SessionInfo{}, Warnings: []string{}, Counters: map[string]Counter{},
	}
	if in.LastErr != "" {
		t := in.LastErrAt
		s.LastErrorAt = &t
	}
	for k, v := range in.Counters {
		s.Counters[k] = v
	}
	for _, e := range in.Engines {
		for k, v := range e.Counters {
			s.Counters[e.Name+"_"+k] = Counter{Packets: v}
		}
	}
	if in.Plan == nil {
		return s
	}
	p := in.Plan
	s.State = StateRunning
	if !in.Enabled {
		s.State = StateDisabled
	}
	t := in.AppliedAt
	s.AppliedAt = &t
	s.Topology = Topology{LAN: p.Topology.LAN, LANFrom: p.Topology.LANFrom, WAN: p.Topology.WAN, WANFrom: p.Topology.WANFrom}
	s.Warnings = append(append(s.Warnings, p.Warnings...), in.Warnings...)
	s.Offload = Offload{State: string(p.Offload.State), Detail: p.Offload.Detail}
	if len(p.Queues) > 0 {
		s.QueueRules = "native nft queue"
		if p.QueueCompat {
			s.QueueRules = "xt NFQUEUE through nft_compat"
		}
	}
	for _, d := range p.Decisions {
		s.Protocols = append(s.Protocols, Protocol{
			Name: string(d.Proto), Enabled: d.Enabled, Datapath: string(d.Datapath), Reason: d.Reason,
			Limitation: d.Degraded, FlowOffload: p.Offload.State == plan.OffloadNotExempted && d.Datapath == plan.PathUserspace,
			Passed:  Passed{Out: in.Counters[plan.PassedCounter(d.Proto, "out")], In: in.Counters[plan.PassedCounter(d.Proto, "in")]},
			Blocked: in.Counters[plan.BlockedCounter(d.Proto)],
		})
	}
	s.Capabilities = capabilities(in.Caps, in.Accounting, in.Timestamps)
	if in.FlowsRead {
		s.Sessions = append(s.Sessions, kernelSessions(in.Flows, p, in.Accounting)...)
	}
	for _, e := range in.Engines {
		for _, x := range e.Sessions {
			s.Sessions = append(s.Sessions, engineSession(x))
		}
	}
	return s
}

// Family maps a session kind to its protocol (pptp, l2tp, ipsec), from the
// planner's traffic table.
func Family(kind string) string {
	for _, pr := range plan.Protos {
		for _, t := range plan.TrafficOf(pr) {
			if t.Kind == kind {
				return string(pr)
			}
		}
	}
	return kind
}

// SessionID is the stable key of a session: kind, client, server and the
// client's own ID (Call ID, SPI or port), which is unique per client and
// server while the session lives.
func SessionID(kind, client, server, orig string) string {
	return kind + "/" + client + "/" + server + "/" + strings.TrimPrefix(orig, "port ")
}

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func u64p(v uint64) *uint64 { return &v }
func i64p(v int64) *int64   { return &v }

func engineSession(x Session) SessionInfo {
	return SessionInfo{
		ID: SessionID(x.Proto, x.Client, x.Server, x.OrigID), Protocol: Family(x.Proto), Kind: x.Proto,
		Datapath: string(plan.PathUserspace), Client: x.Client, Server: x.Server,
		IDOrig: strp(x.OrigID), IDTrans: strp(x.TransID), IDPeer: strp(x.PeerID), State: x.State,
		PacketsOut: u64p(x.PacketsOut), BytesOut: u64p(x.BytesOut), PacketsIn: u64p(x.PacketsIn), BytesIn: u64p(x.BytesIn),
		AgeSeconds: i64p(x.AgeSeconds), IdleSeconds: i64p(x.IdleSeconds),
	}
}

// kernelSessions turns conntrack entries into session rows for the protocols
// the kernel carries. Only flows the router NATs are shown: the orig source
// is a LAN client and the reply goes to the router's WAN address. Conntrack
// keeps no start time without nf_conntrack_timestamp and no counts without
// nf_conntrack_acct: those stay null.
func kernelSessions(flows []ct.Flow, p *plan.Plan, acct *bool) []SessionInfo {
	kernel := map[string]bool{}
	for _, d := range p.Decisions {
		kernel[string(d.Proto)] = d.Datapath == plan.PathKernel
	}
	counted := acct != nil && *acct
	var out []SessionInfo
	for _, f := range flows {
		if f.Status&ct.StatusSrcNAT == 0 {
			continue
		}
		t, ok := plan.Classify(f.Orig.Proto, f.Orig.DstPort)
		if !ok || !kernel[string(t.Proto)] {
			continue
		}
		kind := t.Kind
		s := SessionInfo{
			Protocol: Family(kind), Kind: kind, Datapath: string(plan.PathKernel),
			Client: f.Orig.Src.String(), Server: f.Orig.Dst.String(), State: flowState(f),
			Expires: i64p(int64(f.Timeout)),
		}
		if counted {
			s.PacketsOut, s.BytesOut = u64p(f.PacketsOrig), u64p(f.BytesOrig)
			s.PacketsIn, s.BytesIn = u64p(f.PacketsReply), u64p(f.BytesReply)
		}
		var orig string
		switch f.Orig.Proto {
		case uint8(plan.ProtoGRE):
			// Keys: the client's Call ID, as the server sees it after the
			// kernel's NAT helper, and the server's own Call ID.
			orig = strconv.Itoa(int(f.Orig.SrcPort))
			s.IDTrans = strp(strconv.Itoa(int(f.Reply.DstPort)))
			s.IDPeer = strp(strconv.Itoa(int(f.Orig.DstPort)))
		case uint8(plan.ProtoTCP), uint8(plan.ProtoUDP):
			orig = "port " + strconv.Itoa(int(f.Orig.SrcPort))
			s.IDTrans = strp("port " + strconv.Itoa(int(f.Reply.DstPort)))
		}
		s.IDOrig = strp(orig)
		s.ID = SessionID(kind, s.Client, s.Server, orig)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// flowState says in words what conntrack knows of a flow.
func flowState(f ct.Flow) string {
	st := "waiting for the server's reply"
	switch {
	case f.Status&ct.StatusAssured != 0:
		st = "established"
	case f.Status&ct.StatusSeenReply != 0:
		st = "answered"
	}
	if f.Helper != "" {
		st += ", " + f.Helper + " helper"
	}
	return "kernel: " + st
}

type capDef struct {
	name, neededFor, pkg string
	present              func(plan.Caps) bool
}

var capDefs = []capDef{
	{"nftables", "everything", "kmod-nft-core", func(c plan.Caps) bool { return c.NFTables }},
	{"conntrack", "NAT and the session table", "kmod-nf-conntrack", func(c plan.Caps) bool { return c.Conntrack }},
	{"nf_conntrack_pptp", "PPTP through the kernel", "kmod-nf-nathelper-extra", func(c plan.Caps) bool { return c.PPTPHelper }},
	{"nf_nat_pptp", "PPTP through the kernel", "kmod-nf-nathelper-extra", func(c plan.Caps) bool { return c.PPTPNAT }},
	{"gre_tracking", "PPTP's GRE through the kernel", "kmod-nf-conntrack", func(c plan.Caps) bool { return c.GRETracking }},
	{"nfnetlink_queue", "the userspace engines", "kmod-nfnetlink-queue", func(c plan.Caps) bool { return c.NFQueue }},
	{"nft_queue_expr", "the userspace engines' queue rules", "kmod-nft-queue", func(c plan.Caps) bool { return c.NFTQueueExpr }},
	{"xt_nfqueue_compat", "queue rules without kmod-nft-queue", "kmod-nft-compat kmod-ipt-nfqueue", func(c plan.Caps) bool { return c.XTNFQueue }},
	{"nft_map_payload", "the engines' kernel data plane (else every packet through NFQUEUE)", "kmod-nft-core", func(c plan.Caps) bool { return c.MapPayload }},
	{"nf_conntrack_netlink", "the PPTP engine's conntrack view and kernel data plane", "kmod-nf-conntrack-netlink", func(c plan.Caps) bool { return c.Ctnetlink }},
}

func capabilities(c plan.Caps, acct, ts *bool) []Capability {
	var out []Capability
	for _, d := range capDefs {
		out = append(out, Capability{Name: d.name, Present: d.present(c), How: c.Notes[d.name], NeededFor: d.neededFor, Package: d.pkg})
	}
	sysctl := func(name, what string, v *bool) Capability {
		cp := Capability{Name: name, NeededFor: what, How: "/proc/sys/net/netfilter/" + name}
		if v == nil {
			cp.How += ": unreadable"
		} else {
			cp.Present = *v
			cp.How += fmt.Sprintf(" = %d", map[bool]int{false: 0, true: 1}[*v])
		}
		return cp
	}
	out = append(out,
		sysctl("nf_conntrack_acct", "packet and byte counts of kernel-mode sessions", acct),
		sysctl("nf_conntrack_timestamp", "ages of kernel-mode sessions", ts))
	return out
}
