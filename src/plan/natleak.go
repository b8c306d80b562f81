package plan

import "fmt"

// Without fw4's masquerade (`nft flush ruleset`, the firewall stopped or
// broken) LAN traffic would leave the WAN with its LAN source address: the
// server cannot answer it, and the LAN's addressing leaks. Where fw4 is set
// to masquerade (Input.Masquerade), the VPN traffic this package passes
// may not leave the WAN un-NATed: after fw4's srcnat (100), what is
// tracked but neither masqueraded nor port-forwarded is dropped and
// counted. Untracked packets (an engine's ESP and IKE) are the ESP leak
// guard's (userspace_esp.go); IPv6 is never NATed and is left alone.
const (
	chainNATLeakGuard = "nat_leak_guard"
	// CounterNATLeak counts LAN VPN packets dropped for leaving un-NATed.
	CounterNATLeak = "nat_leak_dropped"
)

// natLeakGuard adds the chain for the protocols that pass (kernel or
// userspace datapath); a blocked protocol is dropped earlier anyway.
func natLeakGuard(p *Plan, in Input) {
	if !in.Masquerade {
		return
	}
	ch := Chain{Name: chainNATLeakGuard, Hook: HookPostrouting, Priority: PrioLeakGuard}
	for _, d := range p.Decisions {
		if d.Datapath != PathKernel && d.Datapath != PathUserspace {
			continue
		}
		for _, t := range TrafficOf(d.Proto) {
			ch.Rules = append(ch.Rules, Rule{
				Comment:  fmt.Sprintf("vpn-passthrough: LAN %s leaving the WAN un-NATed (fw4's masquerade is gone) would leak a LAN address", t),
				IIFSet:   SetLAN,
				OIFSet:   SetWAN,
				IPv4Only: true,
				L4:       t.L4,
				DPort:    t.Port,
				NotNAT:   true,
				Counter:  CounterNATLeak,
				Verdict:  VerdictDrop,
			})
		}
	}
	if len(ch.Rules) == 0 {
		return
	}
	p.Chains = append(p.Chains, ch)
	p.Counters = append(p.Counters, CounterNATLeak)
}
