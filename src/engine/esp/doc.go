// Package esp is the userspace ESP multiplexer: it lets several LAN clients
// use raw ESP (IP protocol 50, RFC 4303) with the same server through the
// router's NAT, which Linux conntrack cannot do (it tracks ESP by address
// pair only, so a second client's SA collides with the first: insert_failed).
// It also watches IKE (UDP 500, RFC 7296 and RFC 2409) for timing, and with
// ipsec.keep_ike_port translates IKE itself so every client keeps source
// port 500.
//
// The Tracker is pure (tables and decisions; callers pass the time); the
// Engine connects it to NFQUEUE (src/nfqueue). The rules that feed the queue
// come from src/plan (userspace_esp.go).
//
// # Datapath
//
// Where the kernel has the fast path (plan.Caps.MapPayload, probed), the
// engine is a control plane: only packets of SAs it does not know yet reach
// its queue. Each complete SA (both SPIs known) is one element in each of
// two nftables maps of the daemon's table (src/plan userspace_esp.go,
// kernel.go here):
//
//   - esp_in (server . inbound SPI : client): in raw prerouting, inbound ESP
//     addressed to one of the WAN addresses (esp_wan_addrs) gets the client
//     as destination, is untracked and marked, without userspace;
//   - esp_out (client . server . outbound SPI): in forward, outbound ESP
//     gets the outgoing WAN device's address (esp_wan_src, device index :
//     address) as source, statelessly and untracked, and the mark.
//
// The SPI is keyed as its two 16-bit halves (th sport . th dport): nft
// lists those; a 32-bit integer in a concatenated key of a map made
// through netlink makes nft 1.0.6 abort. Half-learned SAs stay out of the
// maps, so their packets keep reaching the engine as learning evidence.
// Element counters are the SAs' traffic (status) and keep them from idle
// expiry; elements of SAs that ended are deleted. The WAN maps follow the
// WAN devices' addresses through rtnetlink events (and a check every
// second). The maps live in the kernel: they keep forwarding while the
// daemon is down, and a new engine reads them back before it binds its
// queue (adopting what its state file does not have), so established SAs
// lose nothing across a crash or an upgrade (test/esp measures 0 lost).
// On kernels without the fast path every ESP packet takes the queue path
// below; `check` and `status` say which one runs.
//
// What a forwarded packet costs (make bench-esp, 64-byte payloads, on the
// shared 2-core development machine): on the maps, ESP runs level with
// plain forwarding (per-run ratios 0.99 out, 1.11 in at 10 elements, 1.06
// and 1.08 at 10,000; the NFQUEUE fallback 0.57 and 0.52). Inbound was
// ~0.8 until marked ESP left our forward chain right after its guard
// instead of walking the other protocols' ~25 rules (0.77 -> 0.97 back to
// back). What inbound still pays: the payload rewrite with its checksum, the
// esp_wan_addrs and wan_devs lookups and the esp_in lookup with its element
// counter, one esp_untrack rule and two forward rules; plain forwarding pays
// a conntrack lookup and NAT instead. A new SA's first round trip takes
// ~0.84 ms longer (learned by the engine both ways).
//
// The queue path (the fallback, and the first packets of each SA):
//
// # Learning an inbound SPI
//
// SPIs are chosen by the receiver and negotiated inside encrypted IKE, so the
// router cannot read them; it learns them from the first packets:
//
//  1. A client's outbound packet on an SPI not seen before (from that client
//     to that server) starts a new SA in state "learning": its inbound SPI is
//     not known yet.
//  2. An inbound packet from server S on an unknown SPI is bound to a
//     candidate. Candidates are the clients that talked to S and are
//     pending: they have an SA to S whose inbound SPI is unknown, or they
//     exchanged a child-SA-creating IKE message with S (IKEv2 IKE_AUTH or
//     CREATE_CHILD_SA, IKEv1 Quick Mode: exchange types in the cleartext IKE
//     header) within the learn window (60 s) and have learned no inbound SPI
//     since. The packet must also be addressed to the WAN address that
//     client's traffic to S uses. A client that never sent S anything is never
//     a candidate.
//  3. Among several candidates the evidence ranks them (issue 8: with real
//     libreswan, "A up, B up, then A sends first" must go to A, although B's
//     IKE is the most recent):
//     a. clients that started sending on a half-learned SA to S within the
//     reply window (2 s) rank first, as a server answers ESP and rarely
//     starts it; among them the one that started first wins, as the
//     server answers the first request first (two clients whose first
//     packets race: the answers come in the order the packets went);
//     b. then clients with only a recent child-SA exchange: the most
//     recent exchange wins (the fresh SA is about to carry traffic);
//     c. then half-learned SAs unanswered for longer than the reply
//     window, the most recent first;
//     d. then the lower client address, so the result never depends on
//     map order.
//     A binding made while another candidate had evidence of the same kind
//     is counted (esp_learned_ambiguous). The lab and unit tests run every
//     order in which two or three clients negotiate and send their first
//     packet, and every order of the server's first answers
//     (src/engine/esp order_test.go, race_test.go; test/esp
//     TestUpUpThenFirstSends, TestFirstPacketsRaceAnswersReversed).
//  4. If the server's SPI arrives before the client sent anything, the SA is
//     created from the inbound side ("learning" the outbound SPI) and the
//     client's next new outbound SPI to S completes it.
//  5. Rekeying: a new outbound SPI from a known client starts a new SA and so
//     re-learns that client's inbound SPI by the same rules; when the new SA
//     has both SPIs, the older SAs of that client and server are marked
//     "rekeyed" and expire after 60 s without traffic (capped by
//     ipsec.idle_timeout). Every SA expires after ipsec.idle_timeout without
//     traffic, and so do IKE SPIs and client-server records.
//
// # Re-learning a guess
//
// A binding made while another client was a candidate too, or while
// another SA of the server is provisional, is a guess: it is provisional. It stays out of the kernel maps, so its packets and
// its client's keep reaching the engine, and each inbound packet on it
// is judged by the timing: the voter is the client (among those with a
// provisional or half-learned SA to that server) that sent ESP last,
// within the reply window and at most half as long ago as any other of
// them, since a server answers within a round trip. No other of them may
// have sent within twice the server's answer time (its IKEv2
// request-response times, which the router sees; at least 1 ms): on a
// loaded router or server the answer comes after the next client's
// packet, and the most recent sender is then the wrong one. Times are
// the kernel's (NFQA_TIMESTAMP, which the engine turns on), not when a
// busy engine read the batch. Each outbound packet is evidence for one
// answer per SA and for one new SPI of the server (a client is not
// answered on two new SPIs at once).
//   - a vote for the SA's own client delivers the packet once two votes in
//     a row name it (or it was the only client sending): one vote can be
//     a coincidence, such as a burst of delayed answers arriving just
//     before their client's next packet, after another's; six such votes,
//     the last four in a row and six times those for anyone else, confirm
//     the binding (esp_confirmed_in_spi): it goes to the maps;
//   - a vote for another client holds the packet back (dropped,
//     esp_learn_held), not delivering it to a client it may not belong
//     to; three in a row for the same client, with a 2:1 majority plus
//     three, move the SPI there (esp_relearned_in_spi): swapped with that
//     client's provisional SA, or completing its half-learned one (the
//     first client learns again). Confirming asks more than moving: a
//     wrong confirmation would stay in the maps, a wrong move is still
//     provisional;
//   - without new evidence the last votes stand (two in a row for the
//     SA's client deliver, anything else holds); before the first vote
//     the packet is held while any of those clients is sending (their
//     timing will tell), and delivered on the guess when none is (no
//     evidence would come before an answer; it stays provisional).
//
// sim_test.go replays the lab's timings on the tracker: the answers
// reversed (a 150 ms burst) and a loaded machine (clients starting within
// a millisecond in any order, answers 1-4 ms late), 200 timings each, with
// no answer reaching another client (before these rules: 780 and 2,487).
//
// So a crossed guess costs a few held answers and is never left in
// place, and status says "established" only for confirmed SAs
// ("both SPIs, confirming whose inbound SPI" until then).
//
// "established" in status means both SPIs known, confirmed, and traffic
// both ways since (the kernel's per-element counters count too); until
// then an SA shows "learning", "both SPIs, confirming whose inbound SPI" or
// "both SPIs, waiting for traffic both ways".
//
// Tables are hash maps keyed by (server, inbound SPI), (client, server,
// outbound SPI), (client, server) and (server, IKE SPI): O(1) per packet.
// Learning scans only the server's list of pending clients. ipsec.max_sas
// bounds SAs and client-server records; when full, expired entries are swept
// and otherwise new SAs are not learned (esp_table_full, one log line per
// 10 s) while known ones keep working. Each client may hold at most
// MaxPerClient SAs (default max_sas/4, at least 16; esp_client_cap), so
// one client sending ESP with thousands of random SPIs cannot crowd out
// the others; established SAs are never evicted for new ones.
//
// # Two clients at the same moment
//
// The rule above cannot tell two SAs apart if two clients of one server get
// new SAs at the same time and neither has received ESP yet. So the engine
// serialises child-SA negotiations per server: while client A is
// negotiating with S (from its first IKE_AUTH, CREATE_CHILD_SA or Quick Mode
// message until A's new inbound SPI is learned, at most 3 s after A's last
// such message and at most 10 s in all), a child-SA-creating request of
// another client B with S, in either direction, is dropped (esp_ike_held;
// the IKE session shows "held Nx"). IKE retransmits unanswered requests
// (RFC 7296 section 2.1), so B's request passes on a later try, once A's
// inbound SPI is known; B connects one retransmission interval later (about
// 1 to 4 s with common clients) and both get their own replies. If A's SA
// carries no inbound ESP within the window, B goes ahead and the timing rule
// decides.
//
// # IKE and ipsec.keep_ike_port
//
// IKE (UDP 500) and NAT-T (UDP 4500, which carries ESP inside UDP and needs
// no multiplexer) pass through the kernel's NAT. The engine watches UDP 500
// in both directions (queued in forward outbound, before source NAT, and in
// raw prerouting inbound, before de-NAT) for the timing rules, joining the two
// views by the IKE SPIs, which NAT does not change.
//
// Kernel NAT keeps source port 500 for the first client to a server, and
// must remap the second one (conntrack cannot hold two flows with the same
// reply tuple WAN:500<->S:500); the engine reports that as an "ike" session
// in state "remapped by kernel NAT" and logs it once. Some legacy peers
// insist on source port 500. With keep_ike_port on, IKE from LAN port 500 to
// port 500 is untracked and translated by the engine instead: the source
// becomes the WAN address and the port stays 500 for every client, so the
// first client keeps 500 and later ones share it (status: "port 500 shared
// by N clients"). Inbound IKE to WAN:500 is routed by the IKE initiator SPI
// (or by the responder SPI when the client was the responder), both learned
// from the client's own messages; messages with SPIs no client uses are left
// to the kernel (the router's own IKE). Two clients using the same IKE SPI
// with one server cannot share the port: the second one's IKE is dropped
// and shown as "SPI conflict" (a 64-bit random value colliding means a broken
// client). IKE with another source port is left to kernel NAT either way.
//
// # AH
//
// AH (IP protocol 51, RFC 4302) authenticates the IP addresses, so no NAT
// can rewrite them: AH cannot pass NAT by design. The engine never handles
// it; with IPsec enabled it is not blocked, and with IPsec off it is
// blocked like ESP, UDP 500 and UDP 4500.
//
// # Surviving a restart
//
// The flows are untracked, so the kernel keeps nothing the engine could
// rebuild its tables from, and relearning them after a restart is the
// ambiguous case: every client of a server is learning at the same moment
// and no IKE is exchanged to tell them apart. The engine therefore saves its
// tables (SAs, IKE SPIs, the IKE NAT state of each pair) to a small file
// (the daemon uses /var/run/vpn-passthrough, tmpfs on OpenWrt) at most once
// a second when they changed, and when it stops; a new engine restores them
// before it binds its queue, dropping entries that expired meanwhile and
// ignoring a file from another boot. Never per packet.
//
// # Limits
//
// Failing open: the queue rules use the bypass flag, so while the daemon is
// down SAs in the kernel maps keep flowing, but outbound packets of new SAs
// (everything on the fallback) would leave untranslated and are dropped
// by the leak guard. Inbound ESP the maps do not know, from a server in
// esp_servers (the servers LAN clients use, which the engine keeps in the
// kernel) to a WAN address, is dropped by a kernel rule (the planner's,
// esp_no_engine_dropped), as the engine would drop an unknown SPI: so it
// never reaches fw4's input chain, whose reject would send the VPN server
// an ICMP error (test/esp TestNoICMPToServerWhileDaemonDown: 0 ICMP, 0
// replies lost on the established SAs). The fallback has no SA maps but
// the engine keeps the same two sets, so the same drop holds there. ICMP
// errors about ESP packets (such as
// "fragmentation needed") are not translated for the untracked flows. An
// attacker who can spoof a server's address and races the server's first
// inbound packet can bind a bogus SPI to a learning client; that is a denial
// of service for that SA until its next rekey or idle expiry (ESP integrity
// protects the data), the same exposure every SPI-learning NAT has.
//
// Learning cannot read the SPIs (they travel encrypted in IKE). The vote
// assumes a server answers sooner than half the gap between two clients'
// packets. Where both stream faster than the round trip the votes are
// noise: the thresholds keep noise from confirming a crossed binding
// (race_test.go drives 800 such answers), some answers may reach the
// wrong client meanwhile (which drops them: ESP integrity), and the SA
// settles once the timing separates the clients. Two perfectly periodic
// streams with a fixed offset shorter than the round trip would bias the
// votes; the IKE round trip the router sees would be the evidence to add
// for that. A server that sends unprompted to a client that negotiated at the
// same moment as another is delivered on the guess (rule 3) until that
// client's own ESP gives evidence.
//
// The package must not log per forwarded packet or allocate per packet of a
// known SA (tests assert zero allocations).
package esp
