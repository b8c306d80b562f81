package pptp

import (
	"fmt"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// fakeCT is conntrack's table as the engine's view asks it (Options.Conntrack).
type fakeCT struct {
	mu    sync.Mutex
	flows map[ct.Tuple]ct.Flow
	gets  int
}

func (f *fakeCT) Get(t ct.Tuple) (ct.Flow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	fl, ok := f.flows[t]
	if !ok {
		return ct.Flow{}, fmt.Errorf("fake: %w", unix.ENOENT)
	}
	return fl, nil
}

const natPort = 61000

// set records the control connection of f in state st (assured).
func (c *fakeCT) set(f *flow, st uint8) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := ct.Tuple{Src: f.client.Addr(), Dst: f.server.Addr(), Proto: packet.ProtoTCP, SrcPort: f.client.Port(), DstPort: 1723}
	c.flows[o] = ct.Flow{Orig: o, Reply: ct.Tuple{Src: f.server.Addr(), Dst: wanAddr, Proto: packet.ProtoTCP, SrcPort: 1723, DstPort: natPort},
		Status: ct.StatusAssured | ct.StatusSeenReply, TCPState: st}
}

func (c *fakeCT) del(f *flow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.flows, ct.Tuple{Src: f.client.Addr(), Dst: f.server.Addr(), Proto: packet.ProtoTCP, SrcPort: f.client.Port(), DstPort: 1723})
}

func newViewHarness(t *testing.T) (*harness, *fakeCT) {
	c := &fakeCT{flows: map[ct.Tuple]ct.Flow{}}
	return newHarnessWith(t, Config{}, func(o *Options) { o.Conntrack = c }), c
}

// viewCall opens a connection the way conntrack confirms it and places a
// call on it.
func viewCall(t *testing.T, h *harness, c *fakeCT, f *flow, callID, serverID uint16) uint16 {
	t.Helper()
	f.open()
	if n := len(h.e.conns); n != 0 {
		t.Fatalf("%d connections after the handshake's SYN and SYN-ACK, want 0", n)
	}
	c.set(f, ct.TCPEstablished)
	f.outFlags(packet.TCPFlagACK)
	f.out(sccrq())
	f.in(sccrp())
	p := f.out(ocrq(callID))
	trans := u16(tcpPayload(t, p.Data), 12)
	f.in(ocrp(serverID, trans))
	if ss := h.e.Sessions(); len(ss) != 1 || ss[0].State != "connected" {
		t.Fatalf("sessions %+v", ss)
	}
	return trans
}

// rawRST is an RST from the server as it arrives at raw prerouting:
// addressed to the router's WAN address and the NAT port.
func (h *harness) rawRST(f *flow, seq uint32) nfqueue.Packet {
	return h.handle(hookPrerouting, 0, tcpPacket(f.server, netip.AddrPortFrom(wanAddr, natPort), seq, 0, packet.TCPFlagRST, nil))
}

func TestViewHandshakesCreateNoState(t *testing.T) {
	h, c := newViewHarness(t)
	// 2,000 SYNs from spoofed LAN sources: conntrack never confirms them.
	for i := 0; i < 2000; i++ {
		f := h.flow(1+i%200, uint16(20000+i))
		if p := f.outFlags(packet.TCPFlagSYN); p.Verdict != nfqueue.Accept {
			t.Fatalf("SYN %d: verdict %v", i, p.Verdict)
		}
		// A bare ACK or data of an unconfirmed connection creates nothing
		// either; data is held back.
		f.outFlags(packet.TCPFlagACK)
		if p := f.out(sccrq()); p.Verdict != nfqueue.Drop {
			t.Fatalf("data of an unconfirmed connection: verdict %v", p.Verdict)
		}
	}
	if n := len(h.e.conns); n != 0 {
		t.Fatalf("%d connections after spoofed handshakes", n)
	}
	f := h.flow(1, 40000)
	trans := viewCall(t, h, c, f, 1, 0x7001)
	if trans == 0 || h.e.Counters()["control_unconfirmed"] != 2000 {
		t.Errorf("trans %d, counters %v", trans, h.e.Counters())
	}
	h.checkInvariants()
}

func TestViewRSTs(t *testing.T) {
	h, c := newViewHarness(t)
	f := h.flow(1, 40000)
	viewCall(t, h, c, f, 1, 0x7001)
	// Before conntrack: only the exact sequence number passes.
	for _, seq := range []uint32{f.seqIn + 1, f.seqIn + 60000, f.seqIn - 1, 12345} {
		if p := h.rawRST(f, seq); p.Verdict != nfqueue.Drop {
			t.Errorf("RST at seq next%+d passed", int32(seq-f.seqIn))
		}
	}
	// From the LAN side, spoofed as the client.
	if p := h.handle(hookPrerouting, 0, tcpPacket(f.client, f.server, f.seqOut+5, 0, packet.TCPFlagRST, nil)); p.Verdict != nfqueue.Drop {
		t.Error("LAN RST off the stream passed")
	}
	if p := h.rawRST(f, f.seqIn); p.Verdict != nfqueue.Accept {
		t.Error("RST with the exact sequence number dropped")
	}
	// At forward, an RST conntrack did not close the connection on is
	// dropped and changes nothing.
	if p := f.inFlags(packet.TCPFlagRST); p.Verdict != nfqueue.Drop || len(h.e.Sessions()) != 1 {
		t.Errorf("RST with conntrack established: verdict %v, sessions %d", p.Verdict, len(h.e.Sessions()))
	}
	if got := h.e.Counters()["control_rst_ignored"]; got != 6 {
		t.Errorf("control_rst_ignored %d, want 6", got)
	}
	// Conntrack closed it: the call is over.
	c.set(f, ct.TCPClose)
	f.inFlags(packet.TCPFlagRST)
	if ss := h.e.Sessions(); len(ss) != 0 {
		t.Errorf("sessions after a real reset %+v", ss)
	}
	h.checkInvariants()
}

func TestViewRestartedDropsRSTsUntilSynced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pptp.json")
	c := &fakeCT{flows: map[ct.Tuple]ct.Flow{}}
	opt := func(o *Options) { o.Conntrack = c }
	h := newHarnessWith(t, Config{Common: engine.Common{StatePath: path}}, opt)
	f := h.flow(1, 40000)
	viewCall(t, h, c, f, 1, 0x7001)
	h.e.housekeeping()
	// "SIGKILL": a new engine on the same file. It knows the WAN address
	// and NAT port, but not where the streams are: every RST is dropped.
	h2 := newHarnessWith(t, Config{Common: engine.Common{StatePath: path}}, opt)
	f.h = h2
	if p := h2.rawRST(f, f.seqIn); p.Verdict != nfqueue.Drop {
		t.Error("RST on an unsynchronised stream passed")
	}
	if p := h2.handle(hookPrerouting, 0, tcpPacket(f.client, f.server, f.seqOut, 0, packet.TCPFlagRST, nil)); p.Verdict != nfqueue.Drop {
		t.Error("LAN RST on an unsynchronised stream passed")
	}
	if ss := h2.e.Sessions(); len(ss) != 1 || ss[0].State != "restored" {
		t.Errorf("sessions %+v", ss)
	}
	// GRE to another address than the WAN address is not demultiplexed
	// after the restart either.
	trans, _ := strconv.Atoi(h2.e.Sessions()[0].TransID)
	if p := h2.handle(hookPrerouting, 0, greV1(server, clientAddr(2), uint16(trans), 1, nil)); p.Modified {
		t.Error("restored call: GRE to a LAN address demultiplexed")
	}
	// Once the server's next message synchronises its stream, the exact
	// RST passes again.
	f.in(echoRq())
	if p := h2.rawRST(f, f.seqIn); p.Verdict != nfqueue.Accept {
		t.Error("exact RST after resynchronisation dropped")
	}
}

func TestViewSYNs(t *testing.T) {
	h, c := newViewHarness(t)
	f := h.flow(1, 40000)
	viewCall(t, h, c, f, 1, 0x7001)
	// Conntrack still has the established entry: someone spoofs the
	// client's address and port.
	if p := f.outFlags(packet.TCPFlagSYN); p.Verdict != nfqueue.Drop || len(h.e.Sessions()) != 1 {
		t.Errorf("spoofed SYN: verdict %v, sessions %d", p.Verdict, len(h.e.Sessions()))
	}
	// Conntrack replaced the entry (a new connection on the tuple).
	c.del(f)
	if p := f.outFlags(packet.TCPFlagSYN); p.Verdict != nfqueue.Accept || len(h.e.Sessions()) != 0 {
		t.Errorf("reopened: verdict %v, sessions %d", p.Verdict, len(h.e.Sessions()))
	}
	h.checkInvariants()
}

func TestViewForgedSegments(t *testing.T) {
	h, c := newViewHarness(t)
	f := h.flow(1, 40000)
	viewCall(t, h, c, f, 1, 0x7001)
	// Twenty Call-Clear-Requests far from the stream: none is taken as a
	// gap, none resynchronises the stream.
	for i := 0; i < 20; i++ {
		seq := f.seqOut + 1<<20 + uint32(i)*4096
		p := h.handle(hookForward, wanIfindex, tcpPacket(f.client, f.server, seq, f.seqIn, packet.TCPFlagACK|packet.TCPFlagPSH, ccrq(1)))
		if p.Verdict != nfqueue.Drop {
			t.Fatalf("forged segment %d passed", i)
		}
	}
	if ss := h.e.Sessions(); len(ss) != 1 || h.e.Counters()["control_out_of_window"] != 20 {
		t.Errorf("sessions %+v, counters %v", ss, h.e.Counters())
	}
	// The real stream carries on.
	if p := f.out(echoRq()); p.Verdict != nfqueue.Accept {
		t.Error("the real stream is stuck")
	}
}

func TestViewGREOnlyToWANAddress(t *testing.T) {
	h, c := newViewHarness(t)
	f := h.flow(1, 40000)
	trans := viewCall(t, h, c, f, 1, 0x7001)
	for _, dst := range []string{"10.10.2.2", "10.10.1.1", "10.10.1.99"} {
		p := h.handle(hookPrerouting, 0, greV1(server, netip.MustParseAddr(dst), trans, 1, []byte("x")))
		if p.Modified || p.SetMark {
			t.Errorf("GRE to %s demultiplexed", dst)
		}
	}
	p := h.handle(hookPrerouting, 0, greV1(server, wanAddr, trans, 1, []byte("x")))
	if _, dst, key := gre(t, p.Data); !p.Modified || dst != clientAddr(1) || key != 1 {
		t.Errorf("GRE to the WAN address: modified %v dst %v key %d", p.Modified, dst, key)
	}
	if got := h.e.Counters()["gre_in_not_to_wan"]; got != 3 {
		t.Errorf("gre_in_not_to_wan %d, want 3", got)
	}
}

func TestMalformedGREDropped(t *testing.T) {
	h := newHarness(t, Config{})
	for _, g := range [][]byte{{0x20, 0x01}, {0x20, 0x01, 0x88, 0x0b, 0, 16, 0, 1}, {0x00, 0x01, 0x88, 0x0b, 0, 0, 0, 1}} {
		p := h.handle(hookPrerouting, 0, ipv4(server, wanAddr, packet.ProtoGRE, g))
		if p.Verdict != nfqueue.Drop {
			t.Errorf("malformed GRE %x passed", g)
		}
	}
	// Version 0 GRE (the router's own tunnels) is not ours: untouched.
	if p := h.handle(hookPrerouting, 0, ipv4(server, wanAddr, packet.ProtoGRE, []byte{0, 0, 0x08, 0})); p.Verdict != nfqueue.Accept {
		t.Error("GRE version 0 dropped")
	}
	if got := h.e.Counters()["gre_malformed"]; got != 3 {
		t.Errorf("gre_malformed %d, want 3", got)
	}
}
