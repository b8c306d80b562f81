package plan

import (
	"fmt"
	"strings"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
)

// Names shared with the fw4 include (files/usr/share/nftables.d) and tests.
const (
	TableName = "vpn_passthrough" // table inet vpn_passthrough
	SetLAN    = "lan_devs"
	SetWAN    = "wan_devs"

	// Mark is what the userspace engines put on packets they forward; the
	// fw4 include accepts it before fw4's forward policy drop. These are
	// the defaults the planner writes rules with; Build then puts the
	// configured globals.mark/mark_mask in their place (mark.go), so read
	// Plan.Mark and Plan.MarkMask.
	Mark     uint32 = config.DefaultMark
	MarkMask uint32 = config.DefaultMarkMask
)

// Proto names a VPN protocol family the daemon controls.
type Proto string

const (
	PPTP  Proto = "pptp"
	L2TP  Proto = "l2tp"
	IPsec Proto = "ipsec"
)

// Protos is the fixed display order.
var Protos = [...]Proto{PPTP, L2TP, IPsec}

// Datapath is what carries a protocol once the plan is applied.
type Datapath string

const (
	PathKernel    Datapath = "kernel"    // conntrack (+ helper), kernel NAT
	PathUserspace Datapath = "userspace" // NFQUEUE engine in this daemon
	PathBlocked   Datapath = "blocked"   // toggle off: LAN->WAN dropped
	PathUntouched Datapath = "untouched" // daemon disabled: nothing installed
)

// Decision is the plan's choice for one protocol, with the reason a user sees
// in `check` and `status`.
type Decision struct {
	Proto    Proto    `json:"proto"`
	Enabled  bool     `json:"enabled"`
	Datapath Datapath `json:"datapath"`
	Reason   string   `json:"reason"`
	Degraded string   `json:"degraded,omitempty"` // what does not work, if anything
}

// Caps is what the kernel offers, as measured by the probe package.
type Caps struct {
	NFTables     bool `json:"nftables"`
	Conntrack    bool `json:"conntrack"`
	PPTPHelper   bool `json:"nf_conntrack_pptp"`
	PPTPNAT      bool `json:"nf_nat_pptp"`
	GRETracking  bool `json:"gre_tracking"`
	NFQueue      bool `json:"nfnetlink_queue"`
	NFTQueueExpr bool `json:"nft_queue_expr"`    // nftables `queue` statement (kmod-nft-queue)
	XTNFQueue    bool `json:"xt_nfqueue_compat"` // xtables NFQUEUE target through nft_compat
	// MapPayload: named maps with concatenated keys and per-element
	// counters, payload statements fed by map lookups, and notrack: what the
	// engines' kernel data plane needs (nft probe, scratch table).
	MapPayload bool `json:"nft_map_payload"`
	// Ctnetlink: the kernel speaks ctnetlink (nf_conntrack_netlink,
	// kmod-nf-conntrack-netlink). The PPTP engine's kernel data plane
	// needs it: it keys each call's GRE elements by the router address
	// of the control connection, which only conntrack's reply tuple says.
	Ctnetlink     bool   `json:"nf_conntrack_netlink"`
	KernelRelease string `json:"kernel_release,omitempty"`
	// Notes says how each capability was found (path or netlink probe).
	Notes map[string]string `json:"notes,omitempty"`
}

// QueueReady reports whether a userspace engine can receive packets.
func (c Caps) QueueReady() bool { return c.NFQueue && (c.NFTQueueExpr || c.XTNFQueue) }

// Set is a named nftables set.
type Set struct {
	Name     string
	Type     string // "ifname", "ipv4_addr"
	Elements []string
}

// Helper is a ct helper object; rules refer to it by Name.
type Helper struct {
	Name   string // object name
	Type   string // kernel helper name, e.g. "pptp"
	L4     L4     // ProtoTCP
	L3IPv4 bool
}

// Hook is a netfilter hook a base chain attaches to.
type Hook string

const (
	HookPrerouting  Hook = "prerouting"
	HookForward     Hook = "forward"
	HookPostrouting Hook = "postrouting"
	HookOutput      Hook = "output"
)

// Chain is a base chain of our table. Policy is always accept: our chains only
// drop, assign helpers or queue; accepting is fw4's job (or nobody's).
type Chain struct {
	Name     string
	Hook     Hook
	Priority int32
	Rules    []Rule
}

// Queue is the engine a plan needs running, and its queue number: how the
// engine's packets reach it and what it programs.
type Queue struct {
	Num    uint16 `json:"num"`
	Engine string `json:"engine"` // "pptp", "esp"
	// Maps: the engine programs the plan's maps of this engine (Plan.Maps)
	// and the kernel forwards what they cover; only what they do not cover
	// reaches the queue. false: every packet crosses the queue (fallback).
	Maps bool `json:"kernel_maps"`
	// Mark is what the engine and its map rules put on forwarded packets
	// (under MarkMask); fw4's include accepts it.
	Mark uint32 `json:"mark"`
	// ClearHelper: fw4 may assign the kernel's helper to this engine's
	// control connections, and the engine must take it off again.
	ClearHelper bool `json:"clear_kernel_helper,omitempty"`
}

// Describe says in one line what the engine does, for check and dry-run.
func (q Queue) Describe(p *Plan) string {
	s := fmt.Sprintf("engine %s: NFQUEUE %d", q.Engine, q.Num)
	if q.Maps {
		var names []string
		for _, m := range p.Maps {
			if m.Engine == q.Engine {
				names = append(names, m.Name)
			}
		}
		s += " for what the kernel maps do not know yet; kernel maps " + strings.Join(names, ", ") + " forward the rest"
	} else {
		s += " for every packet (no kernel maps)"
	}
	s += fmt.Sprintf("; mark 0x%08x/0x%08x", q.Mark, p.MarkMask)
	if q.ClearHelper {
		s += "; takes fw4's kernel helper off its control connections"
	}
	return s
}

// Plan is the whole desired state of our table.
type Plan struct {
	Table     string
	Sets      []Set
	Maps      []Map
	Counters  []string
	Helpers   []Helper
	Chains    []Chain
	Queues    []Queue
	Decisions []Decision
	Topology  config.Topology
	Warnings  []string
	// QueueCompat says queue rules use the xtables NFQUEUE target through
	// nft_compat because the kernel lacks the native `queue` expression.
	QueueCompat bool
	// Mark and MarkMask are the engines' packet mark (globals.mark and
	// mark_mask), in every rule that matches or sets it.
	Mark, MarkMask uint32
	// Offload is the verdict on fw4's flow offloading (offload.go).
	Offload Offload
}

// Empty reports whether the plan installs nothing (daemon disabled).
func (p *Plan) Empty() bool { return len(p.Chains) == 0 }

// UsesKernel reports whether any protocol passes on the kernel datapath
// (whose sessions status reads from conntrack).
func (p *Plan) UsesKernel() bool {
	for _, d := range p.Decisions {
		if d.Datapath == PathKernel {
			return true
		}
	}
	return false
}

// Decision returns the decision for a protocol.
func (p *Plan) Decision(pr Proto) Decision {
	for _, d := range p.Decisions {
		if d.Proto == pr {
			return d
		}
	}
	return Decision{Proto: pr}
}

// CounterName is the named counter that counts what a toggle blocks.
func BlockedCounter(pr Proto) string { return "blocked_" + string(pr) }

// PassedCounter counts a protocol's packets forwarded in one direction.
func PassedCounter(pr Proto, dir string) string { return "passed_" + string(pr) + "_" + dir }

func (p Proto) String() string { return string(p) }

// errorf keeps error texts uniform.
func errorf(format string, a ...any) error { return fmt.Errorf("plan: "+format, a...) }
