package plan

import (
	"fmt"

	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// fw4's flow offloading (defaults.flow_offloading, flow_offloading_hw):
// fw4 renders `meta l4proto { tcp, udp } flow offload @ft` as the first rule
// of its forward chain, and an offloaded flow's later packets skip every
// hook, so the userspace engines would miss PPTP's control messages (TCP
// 1723) and IKE (UDP 500). The package's ruleset-post include
// (files/usr/share/nftables.d/ruleset-post/10-vpn-passthrough.nft) inserts,
// in front of that rule, accepts of established/related TCP 1723 and UDP 500
// matched by destination port (LAN to WAN) and by source port (the replies);
// a flow both of whose directions meet an accept first is never offloaded.
// The daemon reads fw4's live forward chain (src/nft FW4Offload) and the
// planner judges it here.

// Exemption is where fw4's forward chain holds the package's two exemption
// rules, relative to its `flow offload` rule.
type Exemption string

const (
	// ExemptBefore: both rules, ahead of the first `flow offload` rule.
	ExemptBefore Exemption = "before"
	// ExemptAfter: both rules, but at least one behind `flow offload`,
	// where an offloaded flow's packets never get.
	ExemptAfter Exemption = "after"
	// ExemptMissing: one of the two rules or both are not in the chain
	// (one direction alone still lets the flow be offloaded).
	ExemptMissing Exemption = "missing"
)

// FW4Chain is what fw4's live forward chain (table inet fw4) says about
// flow offloading. The zero value is "not read".
type FW4Chain struct {
	// Read: the daemon could ask the kernel. false: no netlink (`check`
	// without root), or Err.
	Read bool   `json:"read"`
	Err  string `json:"error,omitempty"`
	// Chain: table inet fw4 has its forward chain (false: fw4 is not
	// loaded, or not used at all).
	Chain bool `json:"chain"`
	// Offload: the chain holds a `flow offload` rule; Flowtable names
	// the flowtable of the first one.
	Offload   bool   `json:"flow_offload_rule"`
	Flowtable string `json:"flowtable,omitempty"`
	// Exempt places the package's exemption rules (only with Offload).
	Exempt Exemption `json:"exemption,omitempty"`
}

// OffloadState is the planner's verdict on flow offloading.
type OffloadState string

const (
	OffloadOff OffloadState = "off" // nothing of ours is offloaded
	// OffloadExempted: fw4 offloads, and PPTP control and IKE stay off
	// the flowtable (the include's rules are ahead of `flow offload`).
	OffloadExempted OffloadState = "exempted"
	// OffloadNotExempted: fw4 offloads PPTP control and IKE after their
	// first packets: the userspace engines miss them.
	OffloadNotExempted OffloadState = "not_exempted"
	// OffloadUnknown: fw4's config turns offloading on, but its live
	// forward chain could not be read.
	OffloadUnknown OffloadState = "unknown"
)

// Offload is the plan's view of flow offloading, for check and status.
type Offload struct {
	State  OffloadState `json:"state"`
	Detail string       `json:"detail"`
	// Chain is what the verdict was made from, so the daemon can tell
	// when fw4's chain changed under the plan.
	Chain FW4Chain `json:"fw4_forward"`
}

// includeName is the package's exemption include, as users look for it.
const includeName = "/usr/share/nftables.d/ruleset-post/10-vpn-passthrough.nft"

// judgeOffload turns fw4's config (configured: defaults.flow_offloading or
// flow_offloading_hw) and its live forward chain into the plan's verdict.
// The live chain wins where it was read: it is what the kernel does.
func judgeOffload(configured bool, c FW4Chain) Offload {
	o := verdict(configured, c)
	o.Chain = c
	return o
}

func verdict(configured bool, c FW4Chain) Offload {
	ctl := fmt.Sprintf("PPTP control (TCP %d) and IKE (UDP %d)", packet.PortPPTP, packet.PortIKE)
	switch {
	case !c.Read && configured:
		why := "no netlink access"
		if c.Err != "" {
			why = c.Err
		}
		return Offload{State: OffloadUnknown, Detail: "fw4's defaults turn flow offloading on, but fw4's forward chain could not be read (" +
			why + ") to check that " + ctl + " are exempted from it"}
	case !c.Read:
		return Offload{State: OffloadOff, Detail: "flow offloading is off in fw4's defaults"}
	case !c.Offload && configured && !c.Chain:
		return Offload{State: OffloadOff, Detail: "fw4's defaults turn flow offloading on, but fw4's forward chain is not loaded: nothing is offloaded now (checked again when fw4 loads)"}
	case !c.Offload && configured:
		return Offload{State: OffloadOff, Detail: "fw4's defaults turn flow offloading on, but its forward chain has no `flow offload` rule (no flowtable devices): nothing is offloaded"}
	case !c.Offload:
		return Offload{State: OffloadOff, Detail: "fw4's forward chain has no `flow offload` rule"}
	}
	rule := "`flow offload @" + c.Flowtable + "`"
	switch c.Exempt {
	case ExemptBefore:
		return Offload{State: OffloadExempted, Detail: "flow offloading is on; " + ctl + " are exempted: the package's fw4 include " +
			includeName + " is in fw4's forward chain before " + rule + ", so the engines see every control message (only data is offloaded)"}
	case ExemptAfter:
		return Offload{State: OffloadNotExempted, Detail: "flow offloading is on and the package's exemption rules are in fw4's forward chain after " + rule +
			", where offloaded packets never get: " + ctl + " are offloaded after their first packets and the userspace engines miss them; " +
			"something inserted rules ahead of them: run `fw4 reload`"}
	}
	return Offload{State: OffloadNotExempted, Detail: "flow offloading is on and fw4's forward chain lacks the package's exemption (" + includeName +
		" not loaded): " + ctl + " are offloaded after their first packets and the userspace engines miss them; run `fw4 reload`, " +
		"or turn flow offloading off (Network → Firewall → General Settings)"}
}

// Same reports whether fw4's chain reads as c did when the plan was made,
// apart from the words of a read error.
func (o Offload) Same(c FW4Chain) bool {
	a := o.Chain
	a.Err, c.Err = "", ""
	return a == c
}
