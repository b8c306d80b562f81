// Package status is the daemon's status model: the one set of wire types that
// the CLI (`status --json`), the ubus object `vpn-passthrough`, the D-Bus
// service and the LuCI page all read, and the one converter (Build) that
// makes it from the applied plan, the nftables counters, conntrack and the
// engines' session rows.
//
// # Contract
//
// The JSON field names below are the contract. They are independent of the
// planner's and the engines' internal structs, so a refactor there changes
// Build, not the clients. Schema is bumped whenever a field is renamed,
// removed or changes meaning; adding a field does not bump it. Clients check
// Schema and refuse (with a message) a schema they do not know, instead of
// showing blanks.
//
// Unknown values are null, never 0: a kernel-mode session with conntrack
// accounting off has "packets_out": null, and one without conntrack
// timestamps has "age_s": null. Clients show "-" (or "not counted") for null.
//
// Top level (Status):
//
//	schema        int      SchemaVersion
//	state         string   "running" | "disabled" | "error" (no good config applied yet)
//	version       string   daemon version
//	pid           int
//	config        string   config file path
//	applied_at    string   RFC 3339, null before the first apply
//	repairs       int      times the table was put back after someone removed it
//	topology      {lan, lan_from, wan, wan_from}
//	offload       {state, detail}: fw4's flow offloading and the engines: state
//	              "off" | "exempted" (on; PPTP control and IKE stay off the
//	              flowtable: the package's fw4 include is ahead of `flow
//	              offload` in fw4's forward chain) | "not_exempted" (on; they
//	              are offloaded and the userspace engines miss them: a warning
//	              says so too) | "unknown" (on in fw4's config, chain not
//	              readable) | "" (nothing applied yet)
//	protocols     [Protocol] in the order pptp, l2tp, ipsec
//	capabilities  [Capability]
//	sessions      [SessionInfo] (never null)
//	last_error    string   the last refused config or failed apply ("" if none)
//	last_error_at string   RFC 3339, or null
//	warnings      [string] (never null)
//	counters      {name: {packets, bytes}}: every counter of our table and of
//	              the userspace engines ("<engine>_<name>"), for diagnostics
//
// Protocol: proto (pptp | l2tp | ipsec), enabled, datapath ("kernel" | "userspace" | "blocked" |
// "untouched"), reason (why that datapath), limitation (what does not work, or
// ""), flow_offload (fw4 offloads traffic its userspace engine must read:
// offload state not_exempted), passed {out, in} and blocked,
// each {packets, bytes}.
//
// Capability: name, present, how (how it was found: a path or a netlink
// probe), needed_for (what uses it) and package (the OpenWrt package that
// provides it).
//
// SessionInfo: id (stable while the session lives; drop_session takes it with
// the protocol), protocol (pptp | l2tp | ipsec), proto (what the row is, named
// by the planner's traffic table: pptp (a userspace call, or in kernel mode
// the TCP 1723 control connection), gre, l2tp, esp, ah, ike, nat-t),
// datapath, client, server, orig_id and trans_id (Call ID, SPI or port
// before and after translation), peer_id (the server's Call ID or inbound
// SPI), state (words), packets_out, bytes_out, packets_in, bytes_in, age_s,
// idle_s and expires_s (the kernel's timeout): each of the last ten may be
// null.
//
// Events (ubus notifications, D-Bus signals): "session.new" and "session.end"
// carry one SessionInfo; "applied" carries {trigger, changed, error}.
package status
