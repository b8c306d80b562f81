// Package ct reads the kernel's conntrack table through ctnetlink, so status
// can show which LAN client uses which tunnel in kernel mode too. The parser
// (ParseFlow) is pure and fuzzed; Dump does the netlink I/O.
package ct
