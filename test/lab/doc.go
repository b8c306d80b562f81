// Package lab builds a network-namespace router lab for vpn-passthrough's
// integration tests and demo.
//
// Topology (all names are unique per lab, prefixed "vpt<pid>-<rand>"):
//
//	lan1 10.10.1.2/24 --eth0 | r-lan1 10.10.1.1 \
//	lan2 10.10.2.2/24 --eth0 | r-lan2 10.10.2.1  router (forwarding, masquerade) r-wan 198.51.100.1 | eth0-- wan 198.51.100.2/24
//	lan3 10.10.3.2/24 --eth0 | r-lan3 10.10.3.1 / (optional)
//
// The WAN host has no route back to the LAN subnets, so replies arrive only
// through the router's NAT. The router's default route points out r-wan. Its
// firewall is fw4's real default ruleset (../shared/openwrt-samples), with the
// lab's device names and without what this kernel lacks.
//
// Everything runs through ip(8), nft(8) and conntrack(8) in the namespaces the
// lab created; Close deletes them and kills every process the lab started.
// The lab needs root; Start skips the test otherwise.
package lab
