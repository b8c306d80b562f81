package plan

import (
	"fmt"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// Chain priorities. fw4's filter chains sit at 0; ours run just before, so a
// block counts the packet even though fw4 would also see it, and a helper is
// assigned before fw4's own helper chains could assign another one.
const (
	PrioHelper  int32 = -1   // prerouting: ct helper assignment (after conntrack at -200)
	PrioForward int32 = -1   // forward: blocks and pass counters
	PrioRaw     int32 = -300 // prerouting/output: notrack for userspace engines
	PrioMangle  int32 = -150 // prerouting: inbound engine demux before routing
	PrioSrcNAT  int32 = 100  // postrouting: outbound engine rewrite after routing
)

// CounterMarkGuard counts engine-marked packets dropped for leaving towards
// a non-LAN device.
const CounterMarkGuard = "mark_guard_dropped"

// Input is everything Build needs. All of it is plain data.
type Input struct {
	Config   config.Config
	Caps     Caps
	Topology config.Topology
	// FlowOffload is fw4's defaults.flow_offloading (or _hw): offloaded
	// flows skip every hook, so userspace engines miss their later
	// packets unless the package's include exempts them (offload.go).
	FlowOffload bool
	// FW4 is what fw4's live forward chain says about offloading (read by
	// src/nft FW4Offload; zero: not read).
	FW4 FW4Chain
	// Masquerade: fw4 is set to masquerade towards the WAN (a zone with
	// masq '1'), so VPN traffic leaving it un-NATed is a leak (natleak.go).
	Masquerade bool
}

// Build maps (config, capabilities, topology) to the desired state. It never
// fails for a valid config; the error covers inputs it cannot plan for.
func Build(in Input) (*Plan, error) {
	c := in.Config
	p := &Plan{Table: TableName, Topology: in.Topology}
	if !c.Enabled {
		for _, pr := range Protos {
			p.Decisions = append(p.Decisions, Decision{Proto: pr, Datapath: PathUntouched,
				Reason: "globals.enabled is off: vpn-passthrough installs nothing"})
		}
		return p, nil
	}
	if !in.Caps.NFTables {
		return nil, errorf("the kernel has no nf_tables: nothing can be installed")
	}
	if len(in.Topology.LAN) == 0 || len(in.Topology.WAN) == 0 {
		return nil, errorf("no LAN or WAN devices to filter on")
	}
	p.Sets = []Set{
		{Name: SetLAN, Type: "ifname", Elements: in.Topology.LAN},
		{Name: SetWAN, Type: "ifname", Elements: in.Topology.WAN},
	}
	pre := Chain{Name: "prerouting", Hook: HookPrerouting, Priority: PrioHelper}
	fwd := Chain{Name: "forward", Hook: HookForward, Priority: PrioForward}
	p.Offload = judgeOffload(in.FlowOffload, in.FW4)

	for _, pr := range Protos {
		d := decide(pr, c, in.Caps, p.Offload.State)
		p.Decisions = append(p.Decisions, d)
		if d.Datapath == PathBlocked {
			p.Counters = append(p.Counters, BlockedCounter(pr))
			fwd.Rules = append(fwd.Rules, blockRules(pr, c.LogBlocked)...)
			fwd.Rules = append(fwd.Rules, blockInboundRules(pr, c.LogBlocked)...)
			continue
		}
		unsolicited, counters := unsolicitedRules(pr)
		p.Counters = append(p.Counters, PassedCounter(pr, "out"), PassedCounter(pr, "in"))
		p.Counters = append(p.Counters, counters...)
		fwd.Rules = append(fwd.Rules, unsolicited...)
		fwd.Rules = append(fwd.Rules, passCounterRules(pr)...)
		if d.Datapath == PathUserspace {
			var built bool
			switch pr {
			case PPTP:
				built = userspacePPTP(p, in, &pre, &fwd)
			case IPsec:
				built = userspaceESP(p, in, &pre, &fwd)
			}
			if !built {
				d = kernelFallback(d, in.Caps)
			}
			p.Decisions[len(p.Decisions)-1] = d
		}
		if pr == PPTP && d.Datapath == PathKernel && in.Caps.PPTPHelper {
			p.Helpers = append(p.Helpers, Helper{Name: "pptp", Type: "pptp", L4: ProtoTCP, L3IPv4: true})
			pre.Rules = append(pre.Rules, Rule{
				Comment:  "vpn-passthrough: PPTP control gets the kernel pptp helper, also on masquerading zones",
				IIFSet:   SetLAN,
				IPv4Only: true,
				L4:       ProtoTCP,
				DPort:    packet.PortPPTP,
				CtHelper: "pptp",
			})
		}
	}
	// fw4's flow offloading (offload.go): with the package's exemption
	// ahead of `flow offload` in fw4's forward chain only the data is
	// offloaded (test/qemu's flowtable guest); without it decide() kept
	// the engines off what they cannot see, and the verdict is a warning.
	if p.Offload.State == OffloadNotExempted || p.Offload.State == OffloadUnknown {
		p.Warnings = append(p.Warnings, "fw4: "+p.Offload.Detail)
	}
	if len(p.Queues) > 0 {
		// fw4's include accepts our mark whatever the output zone; a
		// packet an engine rewrote towards anywhere but the LAN (a spoofed
		// "client" address on the WAN or in another zone) must not use it.
		p.Counters = append(p.Counters, CounterMarkGuard)
		fwd.Rules = append(fwd.Rules, Rule{
			Comment:  "vpn-passthrough: engine-marked packets from the WAN may only go to the LAN",
			IIFSet:   SetWAN,
			OIFSet:   SetLAN,
			OIFNot:   true,
			MarkMask: MarkMask,
			Mark:     Mark,
			Counter:  CounterMarkGuard,
			Verdict:  VerdictDrop,
		})
	}
	for i, d := range p.Decisions {
		if d.Datapath == PathKernel || d.Datapath == PathUserspace {
			p.Decisions[i].Reason += unsolicitedNote
		}
		if d.Degraded != "" {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s: %s", d.Proto, d.Degraded))
		}
	}
	p.QueueCompat = len(p.Queues) > 0 && !in.Caps.NFTQueueExpr
	if len(pre.Rules) > 0 {
		p.Chains = append(p.Chains, pre)
	}
	p.Chains = append(p.Chains, fwd)
	natLeakGuard(p, in)
	routerPPTP(p, in.Caps)
	setMark(p, c.Mark, c.MarkMask)
	return p, nil
}

// decide picks the datapath of one protocol and says why. offload is the
// verdict on fw4's flow offloading (offload.go).
func decide(pr Proto, c config.Config, caps Caps, offload OffloadState) Decision {
	d := decideCaps(pr, c, caps)
	if offload != OffloadNotExempted || d.Datapath != PathUserspace {
		return d
	}
	// fw4 offloads the control traffic the engines read. A conntrack with
	// a helper is never offloaded: kernel-mode PPTP is unaffected (auto
	// picks it wherever the kernel has the helper).
	switch pr {
	case PPTP:
		d.Degraded = joinNote(d.Degraded, "fw4 offloads PPTP control connections (no exemption in its forward chain, see the fw4 warning): "+
			"the engine misses the Call-ID messages after each connection's first packets and calls fail until `fw4 reload` loads the package's include")
	case IPsec:
		d.Degraded = joinNote(d.Degraded, "fw4 offloads IKE (no exemption in its forward chain, see the fw4 warning): the multiplexer sees only the first "+
			"packets of each IKE flow, so it cannot hold a second client's negotiation with the same server back; raw ESP of clients that negotiate at once may be learned wrong")
	}
	return d
}

// decideCaps picks the datapath from the config and the kernel.
func decideCaps(pr Proto, c config.Config, caps Caps) Decision {
	d := Decision{Proto: pr, Enabled: enabled(pr, c)}
	if !d.Enabled {
		d.Datapath = PathBlocked
		d.Reason = "toggle off: " + describe(pr) + " are dropped both ways between LAN and WAN (port forwards excepted)"
		return d
	}
	d.Datapath = PathKernel
	switch pr {
	case PPTP:
		helper := caps.PPTPHelper && caps.PPTPNAT
		missing := missingPPTP(caps)
		switch {
		case c.Mode == config.ModeUserspace && caps.QueueReady():
			d.Datapath = PathUserspace
			d.Reason = "mode userspace: Call-ID NAT in this daemon, " + pptpDatapath(caps)
			if !caps.Ctnetlink {
				d.Degraded = noCtnetlinkPPTP(caps)
			}
		case c.Mode == config.ModeUserspace:
			d.Reason = "mode userspace requested, but the kernel lacks NFQUEUE (nfnetlink_queue and nft queue or xt_NFQUEUE): kernel conntrack is used"
			d.Degraded = degradedPPTP(caps)
		case c.Mode == config.ModeAuto && !helper && caps.QueueReady():
			d.Datapath = PathUserspace
			d.Reason = "mode auto: kernel lacks " + missing + ", so Call-ID NAT runs in this daemon, " + pptpDatapath(caps)
			if !caps.Ctnetlink {
				d.Degraded = noCtnetlinkPPTP(caps)
			}
		case helper:
			d.Reason = fmt.Sprintf("mode %s: kernel has nf_conntrack_pptp and nf_nat_pptp; helper assigned to LAN->WAN %s", c.Mode, TrafficOf(PPTP)[0])
		default:
			d.Reason = fmt.Sprintf("mode %s: kernel lacks %s", c.Mode, missing)
			d.Degraded = degradedPPTP(caps)
		}
	case L2TP:
		d.Reason = describe(L2TP) + " is tracked and NATed by the kernel; only replies to what a LAN client opened come in"
	case IPsec:
		mux := c.IPsec.ESPMux == config.ESPMuxOn || (c.IPsec.ESPMux == config.ESPMuxAuto && c.Mode != config.ModeKernel)
		if mux && caps.QueueReady() {
			d.Datapath = PathUserspace
			d.Reason = "raw ESP is multiplexed by SPI (several LAN clients per server): kernel maps forward known SAs, this daemon learns new ones through NFQUEUE; IKE and NAT-T use kernel NAT"
			if !caps.MapPayload {
				d.Reason = "raw ESP is multiplexed by SPI in this daemon (several LAN clients per server), every ESP packet through NFQUEUE (the kernel lacks nft map payload statements); IKE and NAT-T use kernel NAT"
			}
			d.Degraded = "AH cannot pass NAT by design"
			return d
		}
		d.Reason = fmt.Sprintf("IKE (UDP %d), NAT-T (UDP %d) and ESP are tracked", packet.PortIKE, packet.PortNATT) + " by the kernel; only replies to what a LAN client opened come in"
		d.Degraded = espLimit
		if mux {
			d.Reason += " (ESP multiplexer wanted, but the kernel lacks NFQUEUE)"
		}
	}
	return d
}

// pptpDatapath says where the userspace PPTP engine's GRE goes.
func pptpDatapath(caps Caps) string {
	switch {
	case PPTPMaps(caps):
		return "control connections through NFQUEUE, GRE demultiplexed by the kernel from the engine's maps"
	case !caps.MapPayload:
		return "through NFQUEUE for every packet (the kernel lacks nft payload statements with map lookups)"
	}
	return "through NFQUEUE for every packet (the kernel lacks nf_conntrack_netlink, which the kernel GRE maps need: " +
		"each call's elements are keyed by the router address conntrack reports)"
}

// noCtnetlinkPPTP is what the userspace PPTP engine cannot do without
// ctnetlink (src/engine/pptp doc.go).
func noCtnetlinkPPTP(caps Caps) string {
	s := "the kernel lacks nf_conntrack_netlink (kmod-nf-conntrack-netlink): control connections are judged by the engine's " +
		"own stream tracking (a spoofed RST or SYN near the stream can end a call), inbound GRE is not checked against " +
		"the router's WAN address, and the session table cannot see outbound GRE (calls show connected, never established)"
	if ClearsKernelHelper(caps) {
		s += "; the kernel pptp helper cannot be taken off control connections fw4 assigns it to, and their calls fail"
	}
	return s
}

const espLimit = "raw ESP is tracked by address pair only: one LAN client per server without NAT-T; AH cannot pass NAT by design"

// kernelFallback turns a userspace decision into the kernel one when this
// build has no engine for the protocol.
func kernelFallback(d Decision, caps Caps) Decision {
	d.Datapath = PathKernel
	d.Reason = "no userspace engine for " + string(d.Proto) + " in this build: kernel conntrack is used"
	switch d.Proto {
	case PPTP:
		d.Degraded = degradedPPTP(caps)
	case IPsec:
		d.Degraded = espLimit
	}
	return d
}

func missingPPTP(caps Caps) string {
	switch {
	case !caps.PPTPHelper && !caps.PPTPNAT:
		return "nf_conntrack_pptp and nf_nat_pptp (kmod-nf-nathelper-extra)"
	case !caps.PPTPHelper:
		return "nf_conntrack_pptp (kmod-nf-nathelper-extra)"
	case !caps.PPTPNAT:
		return "nf_nat_pptp (kmod-nf-nathelper-extra)"
	}
	return ""
}

func degradedPPTP(caps Caps) string {
	if caps.PPTPHelper && caps.PPTPNAT {
		return ""
	}
	return "without the kernel PPTP helper GRE is tracked by address pair only: one PPTP client per server (install kmod-nf-nathelper-extra)"
}

func enabled(pr Proto, c config.Config) bool {
	switch pr {
	case PPTP:
		return c.PPTP.Enabled
	case L2TP:
		return c.L2TP.Enabled
	case IPsec:
		return c.IPsec.Enabled
	}
	return false
}

// blockRules drop a disabled protocol LAN->WAN. Drop is final in nftables, so
// a drop in our table blocks whatever fw4 would accept later.
func blockRules(pr Proto, log bool) []Rule {
	var rules []Rule
	for _, m := range TrafficOf(pr) {
		// A port forward's replies leave the LAN too: it wins (inbound.go).
		base := Rule{IIFSet: SetLAN, OIFSet: SetWAN, L4: m.L4, DPort: m.Port, NotDNAT: true}
		if log {
			// A separate, rate-limited log rule: limit in the drop rule
			// itself would let packets over the rate through.
			l := base
			l.Limit = &Limit{PerSecond: 5, Burst: 10}
			l.Log = fmt.Sprintf("vpn-passthrough blocked %s: ", pr)
			rules = append(rules, l)
		}
		r := base
		r.Counter = BlockedCounter(pr)
		r.Verdict = VerdictDrop
		r.Comment = fmt.Sprintf("vpn-passthrough: %s off", pr)
		rules = append(rules, r)
	}
	return rules
}

// unsolicitedNote ends the reason of every protocol that passes.
const unsolicitedNote = "; unsolicited inbound to the LAN is dropped (unsolicited_* counters) unless port-forwarded"

// passCounterRules count a protocol's forwarded packets in each direction.
// They have no verdict: accepting is left to fw4 (its forward policy is drop,
// and an accept here could not override it anyway). Inbound counts only
// what fw4 will let through: replies (established), related flows (PPTP's
// GRE) and what an engine forwarded (untracked); new inbound flows were
// dropped just before, unless port-forwarded.
func passCounterRules(pr Proto) []Rule {
	var rules []Rule
	for _, m := range TrafficOf(pr) {
		if m.L4 == ProtoAH {
			continue // AH cannot pass NAT; counting it as passed would mislead
		}
		rules = append(rules,
			Rule{IIFSet: SetLAN, OIFSet: SetWAN, L4: m.L4, DPort: m.Port, Counter: PassedCounter(pr, "out")},
			Rule{IIFSet: SetWAN, OIFSet: SetLAN, L4: m.L4, SPort: m.Port,
				CtState: CtStateEstablished | CtStateRelated | CtStateUntracked, Counter: PassedCounter(pr, "in")})
	}
	return rules
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
