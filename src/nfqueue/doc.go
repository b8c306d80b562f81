// Package nfqueue is a netfilter queue (NFQUEUE) client built directly on
// golang.org/x/sys/unix, for the userspace engines' hot path.
//
// Design (measured on the lab machine, see ../shared/conventions/lab.md):
// a client that reads one packet and sends one verdict per syscall reached
// about 0.62x plain forwarding; one that drains the socket with MSG_DONTWAIT
// and answers a whole batch at once reached about 0.72x. This package does
// the latter:
//
//   - Receive: one recvmmsg(2) with MSG_WAITFORONE per batch: it waits
//     for the first message (at most SO_RCVTIMEO, so Run notices its
//     context) and then drains what is queued without waiting, up to the
//     batch size (Config.Batch, default 64) -- the "drain with
//     MSG_DONTWAIT" design in one syscall instead of one per packet (+15-25%
//     in the lab). Each of the preallocated slots holds a maximal message,
//     so nothing is ever truncated; only the pages the kernel writes become
//     resident. Packet.Data points into the slots.
//   - Coalescing (Config.Coalesce, off by default; the PPTP engine uses
//     100 µs): after a small batch the reader waits briefly, so the next
//     batch is bigger and the kernel wakes it less often (~30% less CPU per
//     packet under load, at most that much added latency).
//   - Verdicts: every packet of a batch is answered in ONE sendmsg: an
//     individual NFQNL_MSG_VERDICT for each packet that is dropped, modified
//     (NFQA_PAYLOAD) or re-marked (NFQA_MARK), then a single
//     NFQNL_MSG_VERDICT_BATCH that accepts every remaining packet up to the
//     highest plain-accept id. The kernel handles the messages of one
//     datagram in order, so the batch verdict never touches a packet that
//     already had its own verdict.
//   - No allocation per packet or per batch: arena, packet slots and the
//     verdict buffer are allocated once by Open, and the syscalls go through
//     raw wrappers that take no Sockaddr.
//   - ENOBUFS (the socket buffer overflowed, the kernel dropped what did not
//     fit) is counted and the loop continues. NLMSG_ERROR replies to our
//     verdicts are counted too; NETLINK_CAP_ACK keeps them from echoing the
//     payload back.
//
// Checksums: the queue does not set NFQA_CFG_F_GSO, so the kernel segments
// GSO packets and completes CHECKSUM_PARTIAL checksums before it copies a
// packet to us (nfqnl_build_packet_message calls skb_checksum_help). The
// engines can therefore update checksums incrementally. A modified packet
// comes back with ip_summed = CHECKSUM_NONE, so what we write is what leaves.
//
// Fail-open or fail-closed, chosen per failure:
//
//   - No listener (the daemon is dead or restarting): the queue rules carry
//     the bypass flag (plan.QueueStmt.Bypass), so packets are ACCEPTED
//     unprocessed. What that costs is bounded: the engines only see PPTP
//     control and GRE (and ESP), the control connection keeps working
//     through the kernel's own NAT, and unrewritten GRE goes nowhere useful
//     (outbound it leaves with a private source, inbound it is addressed to
//     the router and fw4's input policy drops it). Failing closed here would
//     black-hole those protocols for every second the daemon is down, with no
//     gain in safety.
//   - Queue full or socket buffer full while we DO listen: FAIL-CLOSED (no
//     NFQA_CFG_F_FAIL_OPEN). A PPTP control segment accepted without its
//     Call-ID rewrite would leak an untranslated Call ID to the server and
//     desynchronise the engine's view of the TCP stream; an inbound GRE
//     packet accepted without its demux would be delivered to the router
//     itself. A drop is the correct outcome instead: TCP retransmits the
//     control segment (the engine then sees it), and PPP over GRE tolerates
//     loss. Drops are visible in /proc/net/netfilter/nfnetlink_queue
//     (queue_dropped, user_dropped) and in Stats.ENOBUFS.
//
// The package must not: interpret packets (that is the engines' job), log per
// packet, or allocate per packet.
package nfqueue
