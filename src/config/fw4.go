package config

import "github.com/vpn-passthrough/vpn-passthrough/src/uci"

// FlowOffload reports whether OpenWrt's firewall config (fw4) turns on flow
// offloading, software or hardware, in any defaults section. Offloaded
// flows skip the forward hook, which the planner must know. A nil file (no
// /etc/config/firewall) means off.
func FlowOffload(firewall *uci.File) bool {
	if firewall == nil {
		return false
	}
	for _, s := range firewall.SectionsOfType("defaults") {
		for _, o := range []string{"flow_offloading", "flow_offloading_hw"} {
			if v, ok := s.Get(o); ok {
				if b, _ := ParseBool(v); b {
					return true
				}
			}
		}
	}
	return false
}

// Masquerade reports whether OpenWrt's firewall config masquerades any zone
// (masq '1', the default of zone wan). Then LAN traffic must not leave the
// WAN un-NATed; without a firewall config (plain Linux) nothing is assumed.
func Masquerade(firewall *uci.File) bool {
	if firewall == nil {
		return false
	}
	for _, s := range firewall.SectionsOfType("zone") {
		if v, ok := s.Get("masq"); ok {
			if b, _ := ParseBool(v); b {
				return true
			}
		}
	}
	return false
}
