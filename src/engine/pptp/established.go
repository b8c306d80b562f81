package pptp

import (
	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// A call's state as status shows it. The control connection only says
// that the server accepted a call; whether its data flows is the GRE's
// business, so "established" needs GRE seen in both directions.
const (
	stateRequested   = "requested"   // Outgoing-Call-Request (or Incoming-Call-Reply) sent, no answer yet
	stateConnected   = "connected"   // the server accepted the call; GRE not yet seen both ways
	stateEstablished = "established" // GRE seen both ways
	stateRestored    = "restored"    // from the state file after a restart; GRE not yet seen both ways since
)

// greBothWaysLocked promotes a connected or restored call to established
// once GRE has been seen both ways.
func (e *tracker) greBothWaysLocked(cl *call) {
	if (cl.state != stateConnected && cl.state != stateRestored) || !cl.seenIn || !cl.seenOut {
		return
	}
	cl.state = stateEstablished
	e.log.Info("pptp call established: GRE both ways", "client", cl.client.String(), "server", cl.server.String(),
		"call_id", cl.orig, "translated", cl.trans)
}

// outboundTuple is the original tuple of a call's outbound GRE in
// conntrack: nf_conntrack_proto_gre puts the packet's key (the server's
// Call ID) in the destination "port", and 0 in the source one (no keymap:
// the kernel helper is not involved).
func outboundTuple(cl *call) ct.Tuple {
	return ct.Tuple{Src: cl.client, Dst: cl.server, Proto: packet.ProtoGRE, DstPort: cl.peer}
}

// seenOutLocked records evidence of outbound GRE from the call's conntrack
// entry f (found by a lookup or in a dump).
func (e *tracker) seenOutLocked(cl *call, f ct.Flow) {
	if cl.seenOut {
		return
	}
	if cl.state == stateRestored && !cl.outBaseSet {
		// The entry may be from before the restart: only packets
		// counted after this look show the call alive (without
		// nf_conntrack_acct there are no counts, and the entry's
		// existence is all the evidence there is).
		cl.outBase, cl.outBaseSet = f.PacketsOrig, true
		if f.PacketsOrig != 0 {
			return
		}
	}
	if cl.state == stateRestored && f.PacketsOrig != 0 && f.PacketsOrig <= cl.outBase {
		return
	}
	cl.seenOut = true
	e.greBothWaysLocked(cl)
}

// checkOutboundLocked looks up the outbound GRE of the calls still waiting
// for it (once a second, from the sweep; one ctnetlink request per such
// call). Without a conntrack view Sessions' dump is the only evidence.
func (e *tracker) checkOutboundLocked() {
	if e.ctq == nil {
		return
	}
	for _, c := range e.conns {
		for _, cl := range c.calls {
			if cl.seenOut || !cl.havePeer || (cl.state != stateConnected && cl.state != stateRestored) {
				continue
			}
			if f, err := e.ctq.Get(outboundTuple(cl)); err == nil {
				e.seenOutLocked(cl, f)
			}
		}
	}
}
