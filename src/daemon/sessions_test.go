package daemon

import (
	"net/netip"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

func TestKernelSessions(t *testing.T) {
	a := netip.MustParseAddr
	nat := uint32(ct.StatusSrcNAT | ct.StatusAssured | ct.StatusSeenReply)
	flows := []ct.Flow{
		{Orig: ct.Tuple{Src: a("10.0.0.2"), Dst: a("198.51.100.2"), Proto: 47, SrcPort: 7, DstPort: 100},
			Reply:  ct.Tuple{Src: a("198.51.100.2"), Dst: a("198.51.100.1"), Proto: 47, SrcPort: 100, DstPort: 40001},
			Status: nat, Timeout: 100},
		{Orig: ct.Tuple{Src: a("10.0.0.3"), Dst: a("198.51.100.2"), Proto: 17, SrcPort: 500, DstPort: 500},
			Reply: ct.Tuple{Src: a("198.51.100.2"), Dst: a("198.51.100.1"), Proto: 17, SrcPort: 500, DstPort: 1}, Status: nat},
		// Not NATed (router's own traffic): hidden.
		{Orig: ct.Tuple{Src: a("198.51.100.1"), Dst: a("198.51.100.2"), Proto: 17, DstPort: 1701}, Status: ct.StatusAssured},
		// Not a VPN protocol: hidden.
		{Orig: ct.Tuple{Src: a("10.0.0.2"), Dst: a("198.51.100.2"), Proto: 6, DstPort: 443}, Status: nat},
	}
	p := &plan.Plan{Decisions: []plan.Decision{
		{Proto: plan.PPTP, Datapath: plan.PathKernel},
		{Proto: plan.IPsec, Datapath: plan.PathKernel},
		{Proto: plan.L2TP, Datapath: plan.PathKernel},
	}}
	got := kernelSessions(flows, p)
	if len(got) != 2 {
		t.Fatalf("got %d sessions: %+v", len(got), got)
	}
	if g := got[0]; g.Proto != "gre" || g.Client != "10.0.0.2" || g.OrigID != "7" || g.TransID != "40001" || g.PeerID != "100" {
		t.Errorf("gre session = %+v", g)
	}
	if g := got[1]; g.Proto != "ike" || g.TransID != "port 1" {
		t.Errorf("ike session = %+v", g)
	}
	// A blocked protocol's flows are not shown as sessions.
	p.Decisions[1].Datapath = plan.PathBlocked
	if got := kernelSessions(flows, p); len(got) != 1 {
		t.Errorf("blocked ipsec still listed: %+v", got)
	}
}
