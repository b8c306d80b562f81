package pptp

import (
	"bytes"
	"fmt"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// setupCall runs SCCRQ/SCCRP and OCRQ/OCRP on f and returns the translated
// Call ID the server saw and the Peer's Call ID the client got back.
func setupCall(t *testing.T, f *flow, callID, serverID uint16) (trans, peerBack uint16) {
	t.Helper()
	f.open()
	f.out(sccrq())
	f.in(sccrp())
	p := f.out(ocrq(callID))
	if p.Verdict != nfqueue.Accept {
		t.Fatalf("OCRQ dropped")
	}
	trans = u16(tcpPayload(t, p.Data), 12)
	p = f.in(ocrp(serverID, trans))
	peerBack = u16(tcpPayload(t, p.Data), 14)
	return trans, peerBack
}

func TestThreeClientsSameCallID(t *testing.T) {
	h := newHarness(t, Config{})
	var flows []*flow
	trans := map[uint16]int{}
	for i := 1; i <= 3; i++ {
		f := h.flow(i, 40000)
		flows = append(flows, f)
		tr, back := setupCall(t, f, 1, uint16(0x7000+i))
		if back != 1 {
			t.Errorf("client %d: Outgoing-Call-Reply Peer's Call ID %d, want its own 1", i, back)
		}
		if _, dup := trans[tr]; dup {
			t.Errorf("client %d got translated Call ID %d, already used by client %d", i, tr, trans[tr])
		}
		trans[tr] = i
	}
	h.checkInvariants()
	for tr, i := range trans {
		// Inbound GRE keyed with the translated ID goes to its client with
		// the client's own Call ID, marked.
		p := h.handle(hookPrerouting, 0, greV1(server, wanAddr, tr, 1, []byte("ppp")))
		if !p.Modified || !p.SetMark || p.NewMark&testMask != testMark {
			t.Fatalf("inbound GRE for %d: modified %v mark %v %#x", tr, p.Modified, p.SetMark, p.NewMark)
		}
		src, dst, key := gre(t, p.Data)
		if src != server || dst != clientAddr(i) || key != 1 {
			t.Errorf("inbound GRE for %d: %s -> %s key %d, want %s -> %s key 1", tr, src, dst, key, server, clientAddr(i))
		}
		// Outbound GRE is the kernel's to NAT (the engine never even
		// sees it); its conntrack entry gives the session its counts.
		h.flows = append(h.flows, outFlow(clientAddr(i), uint16(0x7000+i), 5, 500))
	}
	// A guessed Call ID is left alone, unmarked, and counted.
	guess := uint16(1)
	for {
		if _, used := trans[guess]; !used {
			break
		}
		guess++
	}
	pkt := greV1(server, wanAddr, guess, 1, []byte("x"))
	p := h.handle(hookPrerouting, 0, pkt)
	if p.Modified || p.SetMark || p.Verdict != nfqueue.Accept {
		t.Errorf("unknown Call ID: modified %v mark %v verdict %v", p.Modified, p.SetMark, p.Verdict)
	}
	if c := h.e.Counters(); c["gre_in_unknown_call"] != 1 || c["gre_in"] != 3 {
		t.Errorf("counters %v", c)
	}
	ss := h.e.Sessions()
	if len(ss) != 3 {
		t.Fatalf("sessions %+v", ss)
	}
	for _, s := range ss {
		if s.Proto != "pptp" || s.Server != server.String() || s.OrigID != "1" || s.State != "established" ||
			s.PacketsIn != 1 || s.PacketsOut != 5 || s.BytesOut != 500 || s.BytesIn == 0 || s.PeerID == "" {
			t.Errorf("session %+v", s)
		}
	}
	if !strings.Contains(h.log.String(), "pptp call mapped") {
		t.Errorf("no log line for a new call:\n%s", h.log)
	}
}

// TestSplitEverywhere cuts a stream of SCCRQ + OCRQ + Echo into two and
// three segments at every position: the rewritten stream must always carry
// one consistent translated Call ID, and the TCP checksum must stay right.
func TestSplitEverywhere(t *testing.T) {
	stream := append(append(sccrq(), ocrq(0x1234)...), echoRq()...)
	ocrqOff := len(sccrq())
	check := func(t *testing.T, cuts []int) {
		h := newHarness(t, Config{})
		f := h.flow(1, 40001)
		f.open()
		var got []byte
		prev := 0
		for _, c := range append(cuts, len(stream)) {
			p := f.out(append([]byte(nil), stream[prev:c]...))
			if p.Verdict != nfqueue.Accept {
				t.Fatalf("cuts %v: segment %d..%d dropped", cuts, prev, c)
			}
			got = append(got, tcpPayload(t, p.Data)...)
			prev = c
		}
		ss := h.e.Sessions()
		if len(ss) != 1 {
			t.Fatalf("cuts %v: sessions %+v", cuts, ss)
		}
		tr, _ := strconv.Atoi(ss[0].TransID)
		want := append([]byte(nil), stream...)
		want[ocrqOff+12], want[ocrqOff+13] = byte(tr>>8), byte(tr)
		if !bytes.Equal(got, want) {
			t.Fatalf("cuts %v: rewritten stream differs at Call ID: got %x want %04x", cuts, got[ocrqOff+12:ocrqOff+14], tr)
		}
		if ss[0].OrigID != "4660" {
			t.Errorf("cuts %v: original Call ID %s", cuts, ss[0].OrigID)
		}
		// The reply, split too, comes back with the client's ID.
		rep := ocrp(0x7001, uint16(tr))
		var back []byte
		for _, part := range [][]byte{rep[:15], rep[15:]} {
			p := f.in(append([]byte(nil), part...))
			back = append(back, tcpPayload(t, p.Data)...)
		}
		if u16(back, 14) != 0x1234 {
			t.Errorf("cuts %v: reply Peer's Call ID %#x, want 0x1234", cuts, u16(back, 14))
		}
		h.checkInvariants()
	}
	for i := 1; i < len(stream); i++ {
		check(t, []int{i})
	}
	for i := ocrqOff - 3; i < ocrqOff+20; i++ {
		for j := i + 1; j < ocrqOff+20; j++ {
			check(t, []int{i, j})
		}
	}
}

// TestSplitReplyField: the Peer's Call ID of a reply split between its two
// bytes, with two calls on one connection whose Call IDs share a high byte.
func TestSplitReplyField(t *testing.T) {
	h := newHarness(t, Config{})
	f := h.flow(1, 40002)
	f.open()
	f.out(sccrq())
	f.in(sccrp())
	t1 := u16(tcpPayload(t, f.out(ocrq(0x0501)).Data), 12)
	t2 := u16(tcpPayload(t, f.out(ocrq(0x0502)).Data), 12)
	if t1>>8 != t2>>8 {
		t.Errorf("Call IDs 0x0501 and 0x0502 on one connection got high bytes %#x and %#x; want one", t1>>8, t2>>8)
	}
	for _, c := range []struct{ trans, want uint16 }{{t2, 0x0502}, {t1, 0x0501}} {
		rep := ocrp(0x7000|c.want&0xff, c.trans)
		var back []byte
		for _, part := range [][]byte{rep[:15], rep[15:]} {
			back = append(back, tcpPayload(t, f.in(append([]byte(nil), part...)).Data)...)
		}
		if got := u16(back, 14); got != c.want {
			t.Errorf("split reply for %#x: Peer's Call ID %#x, want %#x", c.trans, got, c.want)
		}
	}
	// A Call-Clear-Request split in its Call ID.
	clr := ccrq(0x0502)
	var out []byte
	for _, part := range [][]byte{clr[:13], clr[13:]} {
		out = append(out, tcpPayload(t, f.out(append([]byte(nil), part...)).Data)...)
	}
	if got := u16(out, 12); got != t2 {
		t.Errorf("split Call-Clear-Request: Call ID %#x, want %#x", got, t2)
	}
	if n := len(h.e.Sessions()); n != 1 {
		t.Errorf("%d sessions after clearing one of two", n)
	}
	h.checkInvariants()
}

func TestSeveralMessagesPerSegment(t *testing.T) {
	h := newHarness(t, Config{})
	f := h.flow(1, 40003)
	f.open()
	seg := append(append(append(sccrq(), ocrq(7)...), ocrq(8)...), echoRq()...)
	p := f.out(seg)
	got := tcpPayload(t, p.Data)
	o := len(sccrq())
	t7, t8 := u16(got, o+12), u16(got, o+168+12)
	if t7 == t8 || t7 == 0 || t8 == 0 {
		t.Errorf("translated %d and %d", t7, t8)
	}
	if n := len(h.e.Sessions()); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
	// Both replies in one segment.
	rep := append(ocrp(100, t8), ocrp(101, t7)...)
	back := tcpPayload(t, f.in(rep).Data)
	if u16(back, 14) != 8 || u16(back, 32+14) != 7 {
		t.Errorf("replies carry %d and %d, want 8 and 7", u16(back, 14), u16(back, 32+14))
	}
	h.checkInvariants()
}

func TestRetransmissionAndReordering(t *testing.T) {
	h := newHarness(t, Config{})
	f := h.flow(1, 40004)
	f.open()
	f.out(sccrq())
	msg := ocrq(0x0101)
	seq0 := f.seqOut
	first := tcpPayload(t, f.out(msg).Data)
	tr := u16(first, 12)
	// The same segment again: the same rewrite.
	p := h.handle(hookForward, wanIfindex, tcpPacket(f.client, f.server, seq0, f.seqIn, packet.TCPFlagACK, msg))
	h.checkTCP(p)
	if got := u16(tcpPayload(t, p.Data), 12); got != tr {
		t.Errorf("retransmission carries %#x, first copy %#x", got, tr)
	}
	// A retransmission that starts in the middle and carries new data.
	part := append(append([]byte(nil), msg[10:]...), echoRq()...)
	p = h.handle(hookForward, wanIfindex, tcpPacket(f.client, f.server, seq0+10, f.seqIn, packet.TCPFlagACK, part))
	h.checkTCP(p)
	if got := u16(tcpPayload(t, p.Data), 2); got != tr {
		t.Errorf("overlapping retransmission carries %#x, want %#x", got, tr)
	}
	f.seqOut += uint32(len(echoRq()))
	if n := len(h.e.Sessions()); n != 1 {
		t.Errorf("%d sessions after retransmissions, want 1", n)
	}
	// Out of order: the second of two segments arrives first and is
	// dropped; after the first, it passes.
	a, b := ocrq(0x0202), ccrq(0x0101)
	pb := h.handle(hookForward, wanIfindex, tcpPacket(f.client, f.server, f.seqOut+uint32(len(a)), f.seqIn, packet.TCPFlagACK, b))
	if pb.Verdict != nfqueue.Drop {
		t.Errorf("segment after a gap: verdict %v, want drop", pb.Verdict)
	}
	f.out(a)
	pb = f.out(b)
	if pb.Verdict != nfqueue.Accept || u16(tcpPayload(t, pb.Data), 12) != tr {
		t.Errorf("in-order Call-Clear-Request: verdict %v Call ID %#x want %#x", pb.Verdict, u16(tcpPayload(t, pb.Data), 12), tr)
	}
	if n := len(h.e.Sessions()); n != 1 {
		t.Errorf("%d sessions, want 1 (one cleared, one open)", n)
	}
	h.checkInvariants()
}

func TestMalformedMessages(t *testing.T) {
	h := newHarness(t, Config{})
	f := h.flow(1, 40005)
	f.open()
	badMagic := ocrq(9)
	badMagic[4] = 0xff
	unknownType := pptpMsg(packet.PPTPEchoRequest, nil)
	unknownType[9] = 99
	wrongLen := pptpMsg(packet.PPTPEchoRequest, nil)
	wrongLen[8], wrongLen[9] = 0, byte(packet.PPTPOutgoingCallRequest) // OCRQ type with Echo length
	p := f.out(append(append(append(badMagic, unknownType...), wrongLen...), ocrq(10)...))
	got := tcpPayload(t, p.Data)
	if u16(got, 12) != 9 {
		t.Errorf("message with a bad magic cookie was rewritten")
	}
	o := len(badMagic) + len(unknownType) + len(wrongLen)
	if ss := h.e.Sessions(); len(ss) != 1 || ss[0].OrigID != "10" || ss[0].TransID != strconv.Itoa(int(u16(got, o+12))) {
		t.Errorf("OCRQ after skipped messages: sessions %+v, wire Call ID %d", ss, u16(got, o+12))
	}
	if c := h.e.Counters(); c["control_bad_messages"] != 3 || c["calls"] != 1 {
		t.Errorf("counters %v", c)
	}
	// A length outside 12..220 loses the framing; the stream resyncs on a
	// segment that starts with a valid header.
	lost := []byte{0x10, 0x00, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 5, 0, 0}
	f.out(lost)
	// The rest of a lost stream passes untouched until a segment starts
	// with a valid header.
	junk := append([]byte{0, 0, 0}, ocrq(12)...)
	p = f.out(junk)
	if p.Modified {
		t.Errorf("segment without a message start rewritten while unsynchronised")
	}
	p = f.out(ocrq(11))
	if c := h.e.Counters(); c["control_lost_sync"] != 1 || c["control_unsynced"] != 1 || c["calls"] != 2 {
		t.Errorf("counters %v", c)
	}
	if ss := h.e.Sessions(); len(ss) != 2 || u16(tcpPayload(t, p.Data), 12) == 11 && ss[0].TransID != "11" && ss[1].TransID != "11" {
		t.Errorf("OCRQ at a segment start after lost framing was not translated: %+v", ss)
	}
	h.checkInvariants()
}

func TestLifecycle(t *testing.T) {
	t.Run("call clear", func(t *testing.T) {
		h := newHarness(t, Config{})
		f := h.flow(1, 41000)
		tr, _ := setupCall(t, f, 5, 0x7005)
		p := f.out(ccrq(5))
		if u16(tcpPayload(t, p.Data), 12) != tr {
			t.Errorf("Call-Clear-Request not translated")
		}
		if len(h.e.Sessions()) != 0 {
			t.Errorf("call not removed by Call-Clear-Request")
		}
		f.in(cdn(0x7005))
		// Re-open on the same connection with the same Call ID.
		p = f.out(ocrq(5))
		tr2 := u16(tcpPayload(t, p.Data), 12)
		back := u16(tcpPayload(t, f.in(ocrp(0x7006, tr2)).Data), 14)
		if back != 5 || len(h.e.Sessions()) != 1 {
			t.Errorf("re-opened call: peer back %d, sessions %d", back, len(h.e.Sessions()))
		}
		ip := h.handle(hookPrerouting, 0, greV1(server, wanAddr, tr2, 1, nil))
		if _, dst, key := gre(t, ip.Data); dst != clientAddr(1) || key != 5 {
			t.Errorf("GRE of the re-opened call: %s key %d", dst, key)
		}
		if strings.Count(h.log.String(), "pptp call mapped") != 2 || !strings.Contains(h.log.String(), "reason=Call-Clear-Request") {
			t.Errorf("log:\n%s", h.log)
		}
		h.checkInvariants()
	})
	t.Run("disconnect notify", func(t *testing.T) {
		h := newHarness(t, Config{})
		f := h.flow(1, 41001)
		setupCall(t, f, 5, 0x7005)
		f.in(cdn(0x7005))
		if len(h.e.Sessions()) != 0 {
			t.Errorf("call not removed by Call-Disconnect-Notify")
		}
	})
	t.Run("refused by server", func(t *testing.T) {
		h := newHarness(t, Config{})
		f := h.flow(1, 41002)
		f.open()
		tr := u16(tcpPayload(t, f.out(ocrq(5)).Data), 12)
		rep := ocrp(0x7005, tr)
		rep[16] = 2 // General Error
		f.in(rep)
		if len(h.e.Sessions()) != 0 {
			t.Errorf("refused call kept")
		}
	})
	t.Run("stop control connection", func(t *testing.T) {
		h := newHarness(t, Config{})
		f := h.flow(1, 41003)
		setupCall(t, f, 5, 0x7005)
		f.out(ocrq(6))
		f.out(pptpMsg(packet.PPTPStopCtrlConnRequest, nil))
		if len(h.e.Sessions()) != 0 {
			t.Errorf("calls survive Stop-Control-Connection-Request")
		}
		h.checkInvariants()
	})
	t.Run("fin both ways", func(t *testing.T) {
		h := newHarness(t, Config{})
		f := h.flow(1, 41004)
		setupCall(t, f, 5, 0x7005)
		f.outFlags(packet.TCPFlagFIN | packet.TCPFlagACK)
		if len(h.e.Sessions()) != 1 {
			t.Errorf("half close removed the call")
		}
		f.inFlags(packet.TCPFlagFIN | packet.TCPFlagACK)
		if len(h.e.Sessions()) != 0 || h.e.Counters()["control_connections"] != 0 {
			t.Errorf("close kept state: %v", h.e.Counters())
		}
	})
	t.Run("reset", func(t *testing.T) {
		h := newHarness(t, Config{})
		f := h.flow(1, 41005)
		setupCall(t, f, 5, 0x7005)
		// An RST far outside the window is ignored.
		h.handle(hookForward, 1, tcpPacket(f.server, f.client, f.seqIn+1<<30, 0, packet.TCPFlagRST, nil))
		if len(h.e.Sessions()) != 1 {
			t.Errorf("out-of-window RST removed the call")
		}
		f.inFlags(packet.TCPFlagRST)
		if len(h.e.Sessions()) != 0 {
			t.Errorf("RST kept the call")
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		h := newHarness(t, Config{Common: engine.Common{IdleTimeout: time.Minute}})
		f := h.flow(1, 41006)
		tr, _ := setupCall(t, f, 5, 0x7005)
		h.now = h.now.Add(50 * time.Second)
		h.handle(hookPrerouting, 0, greV1(server, wanAddr, tr, 1, nil)) // keeps it alive
		h.now = h.now.Add(50 * time.Second)
		h.e.housekeeping()
		if len(h.e.Sessions()) != 1 {
			t.Fatalf("call with recent GRE expired")
		}
		if s := h.e.Sessions()[0]; s.AgeSeconds != 100 || s.IdleSeconds != 50 {
			t.Errorf("age %d idle %d, want 100 and 50", s.AgeSeconds, s.IdleSeconds)
		}
		h.now = h.now.Add(61 * time.Second)
		h.e.housekeeping()
		if len(h.e.Sessions()) != 0 || h.e.Counters()["calls_expired"] != 1 {
			t.Errorf("idle call kept: %v", h.e.Counters())
		}
		if !strings.Contains(h.log.String(), "reason=\"idle timeout\"") {
			t.Errorf("log:\n%s", h.log)
		}
	})
	t.Run("syn on a known tuple", func(t *testing.T) {
		h := newHarness(t, Config{})
		f := h.flow(1, 41007)
		setupCall(t, f, 5, 0x7005)
		f.seqOut += 99999
		f.open()
		if len(h.e.Sessions()) != 0 {
			t.Errorf("a new connection on the same tuple kept the old calls")
		}
	})
}

func TestIncomingCall(t *testing.T) {
	h := newHarness(t, Config{})
	f := h.flow(1, 42000)
	f.open()
	// The server (PAC) offers an incoming call; the client answers with
	// its own Call ID; the server confirms.
	f.in(pptpMsg(packet.PPTPIncomingCallRequest, map[int]uint16{12: 0x6001}))
	p := f.out(pptpMsg(packet.PPTPIncomingCallReply, map[int]uint16{12: 3, 14: 0x6001}))
	tr := u16(tcpPayload(t, p.Data), 12)
	if u16(tcpPayload(t, p.Data), 14) != 0x6001 {
		t.Errorf("ICRP Peer's Call ID changed")
	}
	back := u16(tcpPayload(t, f.in(pptpMsg(packet.PPTPIncomingCallConn, map[int]uint16{12: tr})).Data), 12)
	if back != 3 {
		t.Errorf("ICCN Peer's Call ID %d, want 3", back)
	}
	for _, m := range [][]byte{
		pptpMsg(packet.PPTPWANErrorNotify, map[int]uint16{12: tr}),
		pptpMsg(packet.PPTPSetLinkInfo, map[int]uint16{12: tr}),
	} {
		if got := u16(tcpPayload(t, f.in(m).Data), 12); got != 3 {
			t.Errorf("inbound %v: Peer's Call ID %d, want 3", packet.PPTPCtrlType(u16(m, 8)), got)
		}
	}
	// Outbound Set-Link-Info carries the server's Call ID: untouched.
	if got := u16(tcpPayload(t, f.out(pptpMsg(packet.PPTPSetLinkInfo, map[int]uint16{12: 0x6001})).Data), 12); got != 0x6001 {
		t.Errorf("outbound Set-Link-Info rewritten to %#x", got)
	}
	ss := h.e.Sessions()
	if len(ss) != 1 || ss[0].PeerID != strconv.Itoa(0x6001) || ss[0].State != "connected" {
		t.Errorf("sessions %+v", ss)
	}
	// Outbound GRE of the call is counted from its conntrack entry; GRE
	// at another hook is not the engine's business.
	p = h.handle(4, wanIfindex, greV1(clientAddr(1), server, 0x6001, 1, nil))
	if p.Modified || p.Verdict != nfqueue.Accept {
		t.Errorf("GRE at postrouting was touched")
	}
	h.flows = []ct.Flow{outFlow(clientAddr(1), 0x6001, 3, 300), outFlow(clientAddr(2), 0x6001, 9, 900)}
	if s := h.e.Sessions()[0]; s.PacketsOut != 3 || s.BytesOut != 300 {
		t.Errorf("outbound counts %d/%d, want 3/300 from the call's own conntrack entry", s.PacketsOut, s.BytesOut)
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t, Config{Common: engine.Common{MaxSessions: 3, MaxPerClient: 2}})
	f1 := h.flow(1, 43000)
	f1.open()
	for _, id := range []uint16{1, 2} {
		if p := f1.out(ocrq(id)); p.Verdict != nfqueue.Accept {
			t.Fatalf("call %d refused", id)
		}
	}
	p := f1.out(ocrq(3))
	if p.Verdict != nfqueue.Drop {
		t.Errorf("third call of one client: verdict %v, want drop", p.Verdict)
	}
	if !strings.Contains(h.log.String(), "limit=max_calls_per_client value=2") {
		t.Errorf("no limit log line:\n%s", h.log)
	}
	f2 := h.flow(2, 43000)
	f2.open()
	if p := f2.out(ocrq(1)); p.Verdict != nfqueue.Accept {
		t.Errorf("call of a second client refused")
	}
	if p := f2.out(ocrq(2)); p.Verdict != nfqueue.Drop {
		t.Errorf("call over max_calls accepted")
	}
	if !strings.Contains(h.log.String(), "limit=max_calls value=3") {
		t.Errorf("no max_calls log line:\n%s", h.log)
	}
	// The refused segment did not advance the stream: once a call is
	// cleared, the retransmitted request goes through.
	f1.out(ccrq(1))
	if p := f1.out(ocrq(3)); p.Verdict != nfqueue.Accept {
		t.Errorf("retried call refused after one was cleared")
	}
	if c := h.e.Counters(); c["calls_refused"] != 2 || c["calls"] != 3 {
		t.Errorf("counters %v", c)
	}
	h.checkInvariants()
}

func TestKernelHelperCleared(t *testing.T) {
	h := newHarness(t, Config{ClearKernelHelper: true})
	f := h.flow(1, 44000)
	f.open()
	f.out(sccrq())
	if len(h.helper.calls) != 1 || h.helper.calls[0] != "10.10.1.2:44000>198.51.100.2:1723" {
		t.Errorf("helper cleared for %v, want once for the original tuple", h.helper.calls)
	}
	h2 := newHarness(t, Config{})
	h2.flow(1, 44000).open()
	if len(h2.helper.calls) != 0 {
		t.Errorf("helper cleared although ClearKernelHelper is off")
	}
}

// TestRestore: a second engine reads the first one's call table and
// demultiplexes GRE at once; the control connection is followed again from
// its next message, so later messages are still translated.
func TestRestore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pptp.json")
	h := newHarness(t, Config{Common: engine.Common{StatePath: path}})
	f := h.flow(1, 45000)
	tr, _ := setupCall(t, f, 0x0102, 0x7777)
	h.e.housekeeping()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), fmt.Sprintf(`"translated":%d`, tr)) {
		t.Errorf("state file: %s", data)
	}
	// "SIGKILL": a new engine on the same file.
	h2 := newHarness(t, Config{Common: engine.Common{StatePath: path}})
	ss := h2.e.Sessions()
	if len(ss) != 1 || ss[0].State != "restored" || ss[0].TransID != strconv.Itoa(int(tr)) || ss[0].PeerID != strconv.Itoa(0x7777) {
		t.Fatalf("restored sessions %+v", ss)
	}
	p := h2.handle(hookPrerouting, 0, greV1(server, wanAddr, tr, 9, nil))
	if _, dst, key := gre(t, p.Data); dst != clientAddr(1) || key != 0x0102 || !p.SetMark {
		t.Errorf("GRE after restore: %s key %#x", dst, key)
	}
	if s := h2.e.Sessions()[0]; s.PacketsIn != 1 {
		t.Errorf("restored call counters %+v", s)
	}
	// The control stream resumes at the next message boundary.
	f.h = h2
	f.out(echoRq())
	p = f.out(ccrq(0x0102))
	if got := u16(tcpPayload(t, p.Data), 12); got != tr {
		t.Errorf("Call-Clear-Request after restore carries %#x, want %#x", got, tr)
	}
	if len(h2.e.Sessions()) != 0 {
		t.Errorf("call not cleared after restore")
	}
	h2.e.housekeeping()
	data, _ = os.ReadFile(path)
	if strings.Contains(string(data), "translated") {
		t.Errorf("state file still lists the cleared call: %s", data)
	}
	// A file from another boot is ignored.
	os.WriteFile(path, []byte(`{"version":1,"boot_id":"not-this-boot","calls":[{"client":"10.10.1.2:1","server":"198.51.100.2:1723","call_id":1,"translated":2}]}`), 0o600)
	if h3 := newHarness(t, Config{Common: engine.Common{StatePath: path}}); len(h3.e.Sessions()) != 0 {
		t.Errorf("calls restored from another boot")
	}
}

func TestUpdateKeepsCalls(t *testing.T) {
	h := newHarness(t, Config{Common: engine.Common{MaxSessions: 10}})
	setupCall(t, h.flow(1, 46000), 1, 2)
	h.e.Update(Config{Common: engine.Common{MaxSessions: 1, MaxPerClient: 1, IdleTimeout: time.Hour}})
	if len(h.e.Sessions()) != 1 {
		t.Errorf("update lost calls")
	}
	f := h.flow(2, 46000)
	f.open()
	if p := f.out(ocrq(1)); p.Verdict != nfqueue.Drop {
		t.Errorf("new limit not applied")
	}
}

// TestHotPathNoAllocs: inbound GRE, alone and in a batch, does not
// allocate.
func TestHotPathNoAllocs(t *testing.T) {
	h := newHarness(t, Config{})
	tr, _ := setupCall(t, h.flow(1, 47000), 1, 0x7001)
	in := greV1(server, wanAddr, tr, 1, make([]byte, 64))
	bufs := [][]byte{make([]byte, len(in)), make([]byte, len(in))}
	batch := make([]nfqueue.Packet, 2)
	allocs := testing.AllocsPerRun(1000, func() {
		for i := range batch {
			copy(bufs[i], in)
			batch[i] = nfqueue.Packet{Hook: hookPrerouting, Data: bufs[i]}
		}
		h.e.HandleBatch(batch)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
	if !batch[0].Modified || !batch[1].Modified {
		t.Fatal("packets not translated")
	}
}
