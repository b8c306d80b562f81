package plan

import "github.com/vpn-passthrough/vpn-passthrough/src/packet"

// ChainRouterOutput assigns the kernel's pptp helper to PPTP control
// connections the router itself opens (it is a PPTP client: openwrt#13009,
// #11101). Without the helper, the server's GRE to the router is a new flow
// that fw4's input policy rejects; with it, the GRE is related and accepted.
// The router's own traffic needs no NAT, so the helper alone is enough.
const ChainRouterOutput = "output"

// routerPPTP adds the output chain wherever the kernel has the helper, in
// every mode and whatever the pptp toggle says: the router's own calls
// need no translation (it is the only PPTP endpoint on its own address),
// and the toggle is about passthrough between LAN and WAN, so switching it
// off must not cut a PPTP uplink of the router itself (OpenWrt's pptp WAN
// protocol). LAN calls are the kernel helper's (kernel mode) or the
// engine's (userspace mode); this rule never sees them.
func routerPPTP(p *Plan, caps Caps) {
	if !caps.PPTPHelper {
		return
	}
	has := false
	for _, h := range p.Helpers {
		has = has || h.Name == "pptp"
	}
	if !has {
		p.Helpers = append(p.Helpers, Helper{Name: "pptp", Type: "pptp", L4: ProtoTCP, L3IPv4: true})
	}
	p.Chains = append(p.Chains, Chain{Name: ChainRouterOutput, Hook: HookOutput, Priority: PrioHelper, Rules: []Rule{{
		Comment:  "vpn-passthrough: PPTP control the router itself opens gets the kernel pptp helper",
		OIFSet:   SetWAN,
		IPv4Only: true,
		L4:       ProtoTCP,
		DPort:    packet.PortPPTP,
		CtHelper: "pptp",
	}}})
}
