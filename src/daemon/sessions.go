package daemon

import (
	"fmt"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// kernelSessions turns conntrack entries into session rows for the protocols
// the kernel carries, so `status` (and LuCI) show who uses which tunnel in
// kernel mode too. Only flows the router NATs are shown: the orig source is
// a LAN client and the reply goes to the router's WAN address.
func kernelSessions(flows []ct.Flow, p *plan.Plan) []status.Session {
	kernel := map[plan.Proto]bool{}
	for _, d := range p.Decisions {
		kernel[d.Proto] = d.Datapath == plan.PathKernel
	}
	var out []status.Session
	for _, f := range flows {
		if f.Status&ct.StatusSrcNAT == 0 {
			continue
		}
		t, ok := plan.Classify(f.Orig.Proto, f.Orig.DstPort)
		if !ok || !kernel[t.Proto] {
			continue
		}
		s := status.Session{
			Proto:      t.Kind,
			Client:     f.Orig.Src.String(),
			Server:     f.Orig.Dst.String(),
			State:      flowState(f),
			PacketsOut: f.PacketsOrig, BytesOut: f.BytesOrig,
			PacketsIn: f.PacketsReply, BytesIn: f.BytesReply,
		}
		switch f.Orig.Proto {
		case uint8(plan.ProtoGRE):
			// Keys: the client's Call ID, as the server sees it after the
			// kernel's NAT helper, and the server's own Call ID.
			s.OrigID = fmt.Sprintf("%d", f.Orig.SrcPort)
			s.TransID = fmt.Sprintf("%d", f.Reply.DstPort)
			s.PeerID = fmt.Sprintf("%d", f.Orig.DstPort)
		case uint8(plan.ProtoTCP), uint8(plan.ProtoUDP):
			s.OrigID = fmt.Sprintf("port %d", f.Orig.SrcPort)
			s.TransID = fmt.Sprintf("port %d", f.Reply.DstPort)
		}
		out = append(out, s)
	}
	return out
}

func flowState(f ct.Flow) string {
	st := "unreplied"
	switch {
	case f.Status&ct.StatusAssured != 0:
		st = "assured"
	case f.Status&ct.StatusSeenReply != 0:
		st = "replied"
	}
	if f.Helper != "" {
		st += "+" + f.Helper
	}
	return fmt.Sprintf("kernel %s, %ds left", st, f.Timeout)
}
