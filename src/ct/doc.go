// Package ct is the project's one conntrack package: it speaks ctnetlink
// for the session table in kernel mode (Dump), for the daemon's flushes
// (DeleteMatching), and for the PPTP engine's view of its control
// connections (Conn: Get, Available, ClearHelper). The codec is
// hand-written: ti-mo/conntrack cannot send the empty helper name that
// removes a helper, and does not export its attribute decoder. The parser
// (ParseFlow) is pure and fuzzed; the rest does the netlink I/O.
package ct
