package esp

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// testEngine is an Engine without a queue: HandleBatch only.
func testEngine(addr func(uint32) (netip.Addr, error)) *Engine {
	return &Engine{log: discardLog(), epoch: time.Now(), addr: addr, tr: NewTracker(Options{}), wan: map[uint32]netip.Addr{}}
}

func TestHandleBatch(t *testing.T) {
	lookups := 0
	e := testEngine(func(idx uint32) (netip.Addr, error) {
		lookups++
		if idx == 7 {
			return wanA, nil
		}
		return netip.Addr{}, errors.New("no address")
	})
	pkts := []nfqueue.Packet{
		{Hook: hookForward, OutDev: 7, Mark: 0xff00ff01, Data: espPacket(clientA, srvS, 0xc1, 1)},
		{Hook: hookPrerouting, InDev: 7, Data: espPacket(srvS, wanA, 0xa1, 1)},
		{Hook: hookPrerouting, InDev: 7, Data: espPacket(srvS, wanA, 0xa2, 1)},             // unknown SPI
		{Hook: hookPrerouting, InDev: 7, Data: espPacket(other, wanA, 0xa1, 1)},            // not ours
		{Hook: 4, OutDev: 7, Data: espPacket(clientA, srvS, 0xc1, 1)},                      // a hook we never queue from
		{Hook: hookForward, OutDev: 9, Data: espPacket(clientB, srvS, 0xc2, 1)},            // WAN without address
		{Hook: hookForward, OutDev: 7, CapLen: 2000, Data: espPacket(clientA, srvS, 1, 1)}, // truncated copy
	}
	e.HandleBatch(pkts)
	type want struct {
		v        nfqueue.Verdict
		modified bool
		mark     uint32
	}
	for i, w := range []want{
		{nfqueue.Accept, true, 0xff00ff01&^plan.MarkMask | plan.Mark}, // our bits of the mark replaced, the rest kept
		{nfqueue.Accept, true, plan.Mark},
		{nfqueue.Drop, false, 0},
		{nfqueue.Accept, false, 0},
		{nfqueue.Accept, false, 0},
		{nfqueue.Drop, false, 0},
		{nfqueue.Drop, false, 0},
	} {
		p := pkts[i]
		if p.Verdict != w.v || p.Modified != w.modified || p.SetMark != w.modified || (w.modified && p.NewMark != w.mark) {
			t.Errorf("packet %d: verdict %v modified %v setmark %v mark %#x, want %+v", i, p.Verdict, p.Modified, p.SetMark, p.NewMark, w)
		}
	}
	if ip := packet.IPv4(pkts[0].Data); ip.Src() != wanA {
		t.Errorf("outbound source %s", ip.Src())
	}
	if ip := packet.IPv4(pkts[1].Data); ip.Dst() != clientA {
		t.Errorf("inbound destination %s", ip.Dst())
	}
	if lookups != 2 {
		t.Errorf("%d address lookups, want one per device", lookups)
	}
	s := e.Sessions()
	if len(s) != 1 || s[0].State != StateOneWay { // one packet each way, the inbound one completing it

		t.Fatalf("sessions %+v", s)
	}
}
