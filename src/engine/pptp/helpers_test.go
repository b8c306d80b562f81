package pptp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// Test topology, as in the lab: LAN clients 10.10.N.2, router WAN address
// 198.51.100.1 on interface 3, server 198.51.100.2.
var (
	wanAddr = netip.MustParseAddr("198.51.100.1")
	server  = netip.MustParseAddr("198.51.100.2")
)

const (
	wanIfindex = 3
	testMark   = 0x00560000
	testMask   = 0x00ff0000
)

func clientAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 10, byte(i), 2}) }

// ---- packet builders (independent of src/packet's setters) ----

func csum(b []byte, initial uint32) uint16 {
	s := initial
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func ipv4(src, dst netip.Addr, proto byte, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], csum(b[:20], 0))
	copy(b[20:], payload)
	return b
}

func tcpPacket(src, dst netip.AddrPort, seq, ack uint32, flags byte, payload []byte) []byte {
	t := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(t[0:], src.Port())
	binary.BigEndian.PutUint16(t[2:], dst.Port())
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = 5 << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	copy(t[20:], payload)
	s, d := src.Addr().As4(), dst.Addr().As4()
	var ph uint32
	ph += uint32(binary.BigEndian.Uint16(s[0:])) + uint32(binary.BigEndian.Uint16(s[2:]))
	ph += uint32(binary.BigEndian.Uint16(d[0:])) + uint32(binary.BigEndian.Uint16(d[2:]))
	ph += 6 + uint32(len(t))
	binary.BigEndian.PutUint16(t[16:], csum(t, ph))
	return ipv4(src.Addr(), dst.Addr(), 6, t)
}

func greV1(src, dst netip.Addr, key uint16, seq uint32, payload []byte) []byte {
	g := make([]byte, 12+len(payload))
	binary.BigEndian.PutUint16(g[0:], 0x3001) // K, S, version 1
	binary.BigEndian.PutUint16(g[2:], 0x880B)
	binary.BigEndian.PutUint16(g[4:], uint16(len(payload)))
	binary.BigEndian.PutUint16(g[6:], key)
	binary.BigEndian.PutUint32(g[8:], seq)
	copy(g[12:], payload)
	return ipv4(src, dst, 47, g)
}

// pptpMsg builds a control message of type t with 16-bit fields set at the
// given offsets (and the rest zero), and Result Code 1 where the type has one.
func pptpMsg(t packet.PPTPCtrlType, fields map[int]uint16) []byte {
	b := make([]byte, t.Len())
	binary.BigEndian.PutUint16(b[0:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[2:], 1)
	binary.BigEndian.PutUint32(b[4:], packet.PPTPMagicCookie)
	binary.BigEndian.PutUint16(b[8:], uint16(t))
	switch t {
	case packet.PPTPOutgoingCallReply, packet.PPTPStartCtrlConnReply, packet.PPTPIncomingCallReply:
		b[16] = 1
		if t == packet.PPTPStartCtrlConnReply {
			b[14] = 1
		}
	}
	for off, v := range fields {
		binary.BigEndian.PutUint16(b[off:], v)
	}
	return b
}

func ocrq(callID uint16) []byte {
	return pptpMsg(packet.PPTPOutgoingCallRequest, map[int]uint16{12: callID, 14: 1})
}
func ocrp(serverID, peer uint16) []byte {
	return pptpMsg(packet.PPTPOutgoingCallReply, map[int]uint16{12: serverID, 14: peer})
}
func ccrq(callID uint16) []byte {
	return pptpMsg(packet.PPTPCallClearRequest, map[int]uint16{12: callID})
}
func cdn(serverID uint16) []byte {
	return pptpMsg(packet.PPTPCallDisconnectNotify, map[int]uint16{12: serverID})
}
func sccrq() []byte { return pptpMsg(packet.PPTPStartCtrlConnRequest, map[int]uint16{12: 0x0100}) }
func sccrp() []byte { return pptpMsg(packet.PPTPStartCtrlConnReply, map[int]uint16{12: 0x0100}) }
func echoRq() []byte {
	return pptpMsg(packet.PPTPEchoRequest, map[int]uint16{12: 0xabcd})
}

// ---- a harness around an engine without a queue ----

type fakeHelper struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeHelper) ClearHelper(src, dst netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, src.String()+">"+dst.String())
	return f.err
}

type harness struct {
	t      testing.TB
	e      *Engine
	now    time.Time
	log    *bytes.Buffer
	helper *fakeHelper
	rnd    uint32
	flows  []ct.Flow // what the fake conntrack dump returns
}

func newHarness(t testing.TB, cfg Config) *harness { return newHarnessWith(t, cfg, nil) }

// newHarnessWith lets a test change the engine's options (opt may be nil).
func newHarnessWith(t testing.TB, cfg Config, opt func(*Options)) *harness {
	h := &harness{t: t, now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), log: &bytes.Buffer{}, helper: &fakeHelper{}}
	if cfg.Mark == 0 {
		cfg.Mark, cfg.MarkMask = testMark, testMask
	}
	o := Options{
		Log: kvlog.New(h.log, kvlog.LevelInfo),
		Now: func() time.Time { return h.now },
		Rand: func() uint16 {
			// xorshift: deterministic but spread out.
			h.rnd ^= h.rnd << 13
			h.rnd ^= h.rnd >> 17
			h.rnd ^= h.rnd << 5
			return uint16(h.rnd)
		},
		Flows:   func() ([]ct.Flow, error) { return h.flows, nil },
		NoQueue: true,
		Helper:  h.helper,
	}
	if opt != nil {
		opt(&o)
	}
	e, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	h.rnd = 2463534242
	h.e = e
	return h
}

// handle runs one packet through the engine at hook and returns it with
// the engine's decision.
func (h *harness) handle(hook uint8, outdev uint32, pkt []byte) nfqueue.Packet {
	p := []nfqueue.Packet{{ID: 1, HWProto: 0x0800, Hook: hook, OutDev: outdev, Data: pkt}}
	h.e.HandleBatch(p)
	return p[0]
}

// flow is one client's control connection as the forward hook sees it.
type flow struct {
	h              *harness
	client, server netip.AddrPort
	seqOut, seqIn  uint32
}

func (h *harness) flow(i int, port uint16) *flow {
	return &flow{h: h, client: netip.AddrPortFrom(clientAddr(i), port), server: netip.AddrPortFrom(server, 1723),
		seqOut: 1000 * uint32(i), seqIn: 500000 + 7*uint32(i)}
}

// open does the handshake.
func (f *flow) open() {
	f.h.handle(hookForward, wanIfindex, tcpPacket(f.client, f.server, f.seqOut, 0, packet.TCPFlagSYN, nil))
	f.seqOut++
	f.h.handle(hookForward, 1, tcpPacket(f.server, f.client, f.seqIn, f.seqOut, packet.TCPFlagSYN|packet.TCPFlagACK, nil))
	f.seqIn++
}

// out sends payload client -> server and returns the decided packet.
func (f *flow) out(payload []byte) nfqueue.Packet {
	p := f.h.handle(hookForward, wanIfindex, tcpPacket(f.client, f.server, f.seqOut, f.seqIn, packet.TCPFlagACK|packet.TCPFlagPSH, payload))
	if p.Verdict == nfqueue.Accept {
		f.seqOut += uint32(len(payload))
	}
	f.h.checkTCP(p)
	return p
}

// in sends payload server -> client.
func (f *flow) in(payload []byte) nfqueue.Packet {
	p := f.h.handle(hookForward, 1, tcpPacket(f.server, f.client, f.seqIn, f.seqOut, packet.TCPFlagACK|packet.TCPFlagPSH, payload))
	if p.Verdict == nfqueue.Accept {
		f.seqIn += uint32(len(payload))
	}
	f.h.checkTCP(p)
	return p
}

func (f *flow) outFlags(flags byte) nfqueue.Packet {
	p := f.h.handle(hookForward, wanIfindex, tcpPacket(f.client, f.server, f.seqOut, f.seqIn, flags, nil))
	if flags&packet.TCPFlagFIN != 0 {
		f.seqOut++
	}
	return p
}

func (f *flow) inFlags(flags byte) nfqueue.Packet {
	p := f.h.handle(hookForward, 1, tcpPacket(f.server, f.client, f.seqIn, f.seqOut, flags, nil))
	if flags&packet.TCPFlagFIN != 0 {
		f.seqIn++
	}
	return p
}

// checkTCP verifies the IPv4 and TCP checksums of a (possibly rewritten)
// segment.
func (h *harness) checkTCP(p nfqueue.Packet) {
	h.t.Helper()
	ip, err := packet.ParseIPv4(p.Data)
	if err != nil {
		h.t.Fatal(err)
	}
	if !ip.ChecksumValid() {
		h.t.Errorf("bad IPv4 checksum")
	}
	tcp, err := packet.ParseTCP(ip.Payload())
	if err != nil {
		h.t.Fatal(err)
	}
	if !tcp.ChecksumValid(ip.Src(), ip.Dst()) {
		h.t.Errorf("bad TCP checksum after rewrite")
	}
}

// tcpPayload returns the TCP payload of a packet.
func tcpPayload(t testing.TB, b []byte) []byte {
	ip, err := packet.ParseIPv4(b)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := packet.ParseTCP(ip.Payload())
	if err != nil {
		t.Fatal(err)
	}
	return tcp.Payload()
}

func u16(b []byte, off int) uint16 { return binary.BigEndian.Uint16(b[off:]) }

// gre parses a GRE packet's addresses and key.
func gre(t testing.TB, b []byte) (src, dst netip.Addr, key uint16) {
	ip, err := packet.ParseIPv4(b)
	if err != nil {
		t.Fatal(err)
	}
	if !ip.ChecksumValid() {
		t.Errorf("bad IPv4 checksum on GRE packet")
	}
	g, err := packet.ParseGRE(ip.Payload())
	if err != nil {
		t.Fatal(err)
	}
	return ip.Src(), ip.Dst(), g.CallID()
}

// checkInvariants cross-checks the engine's indexes.
func (h *harness) checkInvariants() {
	h.t.Helper()
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	per := map[uint32]int{}
	blocks := map[transKey]int{}
	for k, c := range e.conns {
		if c.key != k {
			h.t.Errorf("conn key mismatch")
		}
		for _, cl := range c.calls {
			n++
			per[k.client]++
			blocks[transKey{k.server, cl.trans &^ 0xff}]++
			if e.byTrans[transKey{k.server, cl.trans}] != cl {
				h.t.Errorf("call %d>%d not in byTrans", cl.orig, cl.trans)
			}
			if cl.trans == 0 {
				h.t.Errorf("translated Call ID 0")
			}
		}
	}
	if n != e.nCalls || n != len(e.byTrans) {
		h.t.Errorf("nCalls %d, byTrans %d, calls in conns %d", e.nCalls, len(e.byTrans), n)
	}
	if len(per) != len(e.perClient) {
		h.t.Errorf("perClient %v, want %v", e.perClient, per)
	}
	for k, v := range per {
		if e.perClient[k] != v {
			h.t.Errorf("perClient %v, want %v", e.perClient, per)
		}
	}
	for k, v := range blocks {
		if e.blocks[k] != v {
			h.t.Errorf("blocks %v, want %v", e.blocks, blocks)
		}
	}
	if len(blocks) != len(e.blocks) {
		h.t.Errorf("blocks %v, want %v", e.blocks, blocks)
	}
}

// outFlow is the conntrack entry of a call's outbound GRE, as the kernel's
// masquerade makes it.
func outFlow(client netip.Addr, serverID uint16, pkts, bytes uint64) ct.Flow {
	return ct.Flow{
		Orig:        ct.Tuple{Src: client, Dst: server, Proto: 47, DstPort: serverID},
		Reply:       ct.Tuple{Src: server, Dst: wanAddr, Proto: 47, SrcPort: serverID},
		Status:      ct.StatusSrcNAT,
		PacketsOrig: pkts, BytesOrig: bytes,
	}
}
