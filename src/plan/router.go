package plan

import "github.com/vpn-passthrough/vpn-passthrough/src/packet"

// ChainRouterOutput assigns the kernel's pptp helper to PPTP control
// connections the router itself opens (it is a PPTP client: openwrt#13009,
// #11101). Without the helper, the server's GRE to the router is a new flow
// that fw4's input policy rejects; with it, the GRE is related and accepted.
// The router's own traffic needs no NAT, so the helper alone is enough.
const ChainRouterOutput = "output"

// routerPPTP adds the output chain when the kernel has the helper and the
// plan assigns it (p.Helpers holds "pptp").
func routerPPTP(p *Plan) {
	has := false
	for _, h := range p.Helpers {
		has = has || h.Name == "pptp"
	}
	if !has {
		return
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
