// Package pptp is the userspace PPTP passthrough engine: Call-ID NAT for
// kernels without nf_conntrack_pptp/nf_nat_pptp. It is a control plane: it
// follows the control connections (TCP 1723, through NFQUEUE), decides each
// call's translation and, where the kernel has the fast path, programs
// nftables maps from which the kernel itself demultiplexes the calls' GRE
// (see "Kernel data plane" below; the NFQUEUE path described first is the
// fallback of kernels without it).
//
// Without the kernel helper, GRE is tracked by address pair only, so only one
// LAN client can use a given PPTP server. This engine makes every call
// distinguishable by giving it a Call ID that is unique per server, the way
// the kernel's nf_nat_pptp does.
//
// # What it sees (rules made by plan.userspacePPTP)
//
//   - Control connections, TCP 1723, both directions, at the forward hook:
//     after the reply's destination NAT, so both directions carry the LAN
//     client's own address and port, and before masquerade changes the
//     source. The engine follows each direction as a byte stream (RFC 2637
//     section 2 messages; a message may be split across segments, a segment
//     may hold several) and rewrites, always to a value of the same length,
//     so only the TCP checksum changes (incrementally) and no sequence
//     number moves:
//     client -> server: the Call ID of Outgoing-Call-Request and
//     Incoming-Call-Reply (a new translation), and of Call-Clear-Request;
//     server -> client: the Peer's Call ID of Outgoing-Call-Reply,
//     Incoming-Call-Connected, WAN-Error-Notify and Set-Link-Info.
//     A message with a bad magic cookie, type or length is skipped by its
//     Length; a Length outside 12..220 loses the framing, and the engine
//     passes that direction through untouched until a segment starts with a
//     valid header. Retransmitted bytes get the same rewrites again (a short
//     history of rewritten bytes per direction). A segment that arrives
//     ahead of a gap is dropped, so TCP resends in order.
//   - Inbound GRE (version 1 only: other GRE, such as the router's own
//     tunnels, is not touched) from the WAN, in raw prerouting, before
//     routing and conntrack: a packet whose (source, Call ID) is a known
//     translation gets the client's address as destination and the client's
//     Call ID back, plus the daemon's mark (plan.Mark). A second rule
//     untracks marked packets (so conntrack's address-pair tracking cannot
//     fight the translation) and fw4's forward include accepts them. A
//     packet with an unknown Call ID is counted (gre_in_unknown_call) and
//     left alone: unmarked and addressed to the router, it is never
//     forwarded, and the router's input policy drops it (fw4 does) unless
//     the router itself runs a PPTP client on that address, which then keeps
//     working.
//   - Outbound GRE never reaches the engine: its key is the server's own
//     Call ID, which needs no translation, and the kernel's masquerade
//     rewrites its source to the WAN address at postrouting, after routing
//     (a packet that arrived with one of the router's own addresses as its
//     source would be dropped as a martian). Unlike raw ESP, this works for
//     any number of clients per server: a GRE version 1 conntrack tuple
//     holds the key, which the server makes unique per call, so the calls'
//     entries never clash (measured in the lab: two clients, two entries,
//     no insert_failed). It also halves the packets that cross to userspace
//     (test/bench/pptp). The session table takes outbound packet and byte
//     counts from these entries (with net.netfilter.nf_conntrack_acct=1,
//     OpenWrt's default).
//
// # Kernel data plane
//
// With Caps.MapPayload (nft payload statements that take map lookups), the
// plan replaces the GRE queue rule by a rule in raw prerouting that
// demultiplexes inbound GRE from three maps the engine programs when it
// translates a call (kernel.go), and a rule after conntrack (chain
// pptp_gre_guard) that drops the rest unless it is related to the router's
// own calls:
//
//	... ip daddr . ip saddr . @th,48,16 @pptp_gre_calls
//	    ip daddr set ip saddr . @th,48,16 map @pptp_gre_dst
//	    @th,48,16 set ip saddr . @th,48,16 map @pptp_gre_key notrack meta mark set ... accept
//	... ip daddr @pptp_wan_addrs ct state new,invalid counter name "pptp_gre_unknown_call" drop
//
// The guard set pptp_gre_calls is keyed by the router's address the
// control connection uses, the server and the translated Call ID, so GRE
// reaches a call's client only when it was sent to that address, and its
// per-element counters are the call's inbound traffic (read back every
// second for the session table and for the idle timeout). The header check
// in front (key present, no checksum or routing, protocol PPP) keeps
// malformed enhanced GRE out of the rewrite; lengths are not checked (as by
// the kernel helper): such a packet goes to its own call's client, whose GRE
// stack drops it. GRE to a router address in pptp_wan_addrs whose Call ID
// no call holds is dropped without an ICMP error: fw4's input would reject
// it, and a real pptpd tears a call down on that ICMP error. No GRE crosses
// to userspace; a new call's first GRE packet is forwarded by the kernel
// like the rest, because the elements exist from the Outgoing-Call-Request
// on, before the server can send GRE. The elements outlive the daemon: an
// established call loses no GRE while the daemon is killed and restarted
// (the lab measures 0 of 250 packets over a 1 s outage, against about 52 on
// the NFQUEUE fallback, where the replies sent while no engine runs are
// lost and none after the restart), and the restarted engine reads them back, adopting
// its restored calls' elements without adding them again and keeping
// elements no state file knows until they are idle. Outbound GRE keeps the
// kernel's masquerade on both paths. The fast path needs the conntrack view
// (ctnetlink) for the router's address of each call: the probe reports it
// (nf_conntrack_netlink), and without it the plan picks the NFQUEUE
// fallback (plan.PPTPMaps), and check and status say why and what is lost.
//
// The new call's four elements go in with one nftables transaction
// (nft.Maps.AddAll: one netlink round trip and one commit) while its
// Outgoing-Call-Request waits in the queue; that wait is the learning
// latency of the kernel data plane (see the README's performance section
// for the figures; status counts map_adds and map_add_us).
//
// On the fallback the NFQUEUE rule's bypass lets GRE through unhandled while
// no engine runs; the plan drops GRE the engine did not mark when it is sent
// to an address in pptp_wan_addrs (which the engine fills on both paths),
// again without an ICMP error, so the call survives the restart.
//
// Figures (make bench, test/bench/pptp, this 2-core machine): see the
// README's performance table.
//
// # Session states (status)
//
// The control connection says only that the server accepted a call; its
// data is GRE. So a call is "requested" from its Outgoing-Call-Request (or
// Incoming-Call-Reply), "connected" once the server accepted it, and
// "established" only once GRE was seen both ways: inbound from the
// engine's own count (fallback) or the call's guard element counter (kernel
// maps, read every second), outbound from the conntrack entry the kernel's
// masquerade makes for the client's GRE (looked up once a second for the
// calls still waiting for it; with nf_conntrack_acct, OpenWrt's default,
// its packet count). A call restored after a restart is "restored" until
// GRE has been seen both ways again since the restart (counters taken as a
// baseline when read back; without nf_conntrack_acct the outbound entry's
// existence is the only evidence). Without ctnetlink outbound GRE is
// invisible to the engine, and calls stay "connected" (the plan says so).
//
// # Lifecycle and limits
//
// A call is added by Outgoing-Call-Request (or Incoming-Call-Reply) and
// removed by Call-Clear-Request, Call-Disconnect-Notify, a failed
// Outgoing-Call-Reply, Stop-Control-Connection-Request, the real end of its
// control connection, or IdleTimeout without GRE or control traffic.
// MaxCalls and MaxPerClient bound the table; the segment that would exceed
// a limit is dropped (the client's TCP retries; nothing untranslated leaks)
// and a rate-limited warning says which limit, its value and the client.
//
// # Control connections follow conntrack, not whoever sends a segment
//
// With ctnetlink (nf_conntrack_netlink), the engine asks conntrack about a
// control connection at the few moments that decide its state, and the
// plan drops the segments conntrack finds invalid before the queue rule
// (counter invalid_pptp_control). So spoofed segments change nothing:
//
//   - Handshakes create no state. A connection is followed from its first
//     client segment whose conntrack entry is established and assured (a
//     handshake conntrack confirmed), so SYNs from spoofed LAN sources
//     cannot fill the table (control_unconfirmed counts data held back).
//   - RSTs are judged in raw prerouting, before conntrack (the plan queues
//     TCP 1723 there too): only one with exactly the sequence number the
//     sender's stream is at passes (what the receiving TCP accepts without
//     a challenge ACK, RFC 5961). Any other would at best be ignored by the
//     endpoint, but conntrack would take an in-window one into its record
//     of the stream, after which the sender's real segments look stale to
//     it, are invalid, and never reach the client: the connection dies
//     although both endpoints still hold it (measured: the lab's sweep of
//     65,536 RSTs did exactly that). RSTs from the WAN are matched by the
//     server's address and port and the NAT port (learned from conntrack's
//     reply tuple), and only when sent to the router's WAN address. Just
//     after a restart, until the sender's next control message says where
//     its stream is, every RST of a restored connection is dropped: a real
//     reset then ends the call at its idle timeout. Dropped RSTs are
//     counted (control_rst_ignored).
//   - A call ends with its control connection only when conntrack says so:
//     an RST after which the entry is closed or gone, or FINs both ways.
//   - A client SYN on a followed connection ends it only when conntrack no
//     longer has the old entry (it replaced a closed one); a SYN it ignored
//     (the entry is still established: another host spoofs the client's
//     address and port) is dropped (control_syn_ignored).
//   - A segment starting more than 64 KiB away from the stream is dropped
//     (control_out_of_window), never counted as a gap that could
//     resynchronise the stream to forged messages.
//   - Inbound GRE is demultiplexed only when sent to the router's address
//     the control connection uses (conntrack's reply tuple): GRE with a
//     call's key sent to a LAN host or the router's LAN address is left
//     alone (gre_in_not_to_wan), as the kernel helper would.
//   - Malformed enhanced GRE (version 1 that does not parse) is dropped and
//     counted (gre_malformed).
//
// Without ctnetlink the engine follows control connections by its own
// stream tracking alone (a SYN or an RST near the stream ends a
// connection), says so once at start, and cannot check GRE destinations.
//
// # Surviving SIGKILL
//
// The kernel keeps nothing the engine could rebuild the translations from:
// GRE is untracked, and the conntrack entry of the control connection holds
// neither Call ID. Waiting for the next control message does not work either:
// an established call sends only GRE and Echo messages, which carry no Call
// ID, for as long as it lasts. So the engine writes its call table (LAN
// address and port of the control connection, server, original, translated
// and server Call IDs) to a small file whenever a call is added, established
// or removed (Config.StatePath, on tmpfs under /var/run: it survives a
// daemon restart but not a reboot, and a file from another boot is ignored).
// A restarted engine loads it before it binds its queue, so GRE flows again
// as soon as the queue is bound and the rules are re-applied (well within a
// second), and it follows the control connections from their next message
// boundary. A clean stop (SIGTERM) removes the file with the rules.
//
// # The kernel helper conflict
//
// fw4 assigns the kernel pptp helper to TCP 1723 on zones without masquerade
// (usually lan) whenever the kernel has nf_conntrack_pptp; with mode
// userspace on such a kernel, the kernel's nf_nat_pptp would translate the
// Call IDs a second time (to the masqueraded port) and the calls would fail.
// A conntrack helper cannot be unassigned by nftables, and the first
// assignment wins, but the plan cannot run before fw4 with a harmless helper
// (there is none on every kernel). Instead the engine removes the helper
// through ctnetlink (CTA_HELP with an empty name, as `conntrack -U` can) as
// soon as the connection's conntrack entry exists: when the SYN-ACK passes
// the forward hook, before any control message reaches the helper, which
// only runs at conntrack confirmation after all our hooks. This needs
// nf_conntrack_netlink (kmod-nf-conntrack-netlink on OpenWrt); without it
// the engine says so once, loudly. Routers that really lack the helper (the
// reason for this mode) never have the conflict: fw4 renders no pptp helper
// rule there, and Config.ClearKernelHelper is off.
//
// # Hot path
//
// Inbound GRE costs one map lookup and an incremental IPv4 checksum update
// per packet, under one mutex taken once per batch. No allocation.
package pptp
