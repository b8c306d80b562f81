package esp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// Addresses of the unit-test topology (like the lab's).
var (
	wanA    = netip.MustParseAddr("198.51.100.1") // router WAN
	srvS    = netip.MustParseAddr("198.51.100.2") // server
	srvT    = netip.MustParseAddr("203.0.113.7")  // another server
	other   = netip.MustParseAddr("198.51.100.3") // some other WAN host
	clientA = netip.MustParseAddr("10.10.1.2")
	clientB = netip.MustParseAddr("10.10.2.2")
	clientC = netip.MustParseAddr("10.10.3.2")
)

// ipv4Packet builds an IPv4 packet with a valid header checksum.
func ipv4Packet(src, dst netip.Addr, proto byte, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], payload)
	packet.IPv4(b).UpdateChecksum()
	return b
}

func espPacket(src, dst netip.Addr, spi, seq uint32) []byte {
	pl := make([]byte, 8+48)
	binary.BigEndian.PutUint32(pl[0:], spi)
	binary.BigEndian.PutUint32(pl[4:], seq)
	for i := 8; i < len(pl); i++ {
		pl[i] = byte(i * 7)
	}
	return ipv4Packet(src, dst, packet.ProtoESP, pl)
}

// ikeMsg describes an IKE header for ikePacket.
type ikeMsg struct {
	ispi, rspi uint64
	version    byte // 1 or 2 (default 2)
	exchange   byte
	flags      byte
	msgID      uint32
}

func ikePacket(src, dst netip.Addr, sport, dport uint16, m ikeMsg) []byte {
	if m.version == 0 {
		m.version = 2
	}
	ike := make([]byte, packet.IKEHeaderLen+12)
	binary.BigEndian.PutUint64(ike[0:], m.ispi)
	binary.BigEndian.PutUint64(ike[8:], m.rspi)
	ike[16] = 46 // SK: encrypted payload follows
	ike[17] = m.version << 4
	ike[18] = m.exchange
	ike[19] = m.flags
	binary.BigEndian.PutUint32(ike[20:], m.msgID)
	binary.BigEndian.PutUint32(ike[24:], uint32(len(ike)))
	udp := make([]byte, 8+len(ike))
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], ike)
	b := ipv4Packet(src, dst, packet.ProtoUDP, udp)
	ip := packet.IPv4(b)
	packet.UDP(ip.Payload()).UpdateChecksum(src, dst)
	return b
}

// IKEv2 message shapes.
func saInitReq(ispi uint64) ikeMsg {
	return ikeMsg{ispi: ispi, exchange: packet.IKEv2ExchangeSAInit, flags: packet.IKEFlagInitiator}
}
func saInitResp(ispi, rspi uint64) ikeMsg {
	return ikeMsg{ispi: ispi, rspi: rspi, exchange: packet.IKEv2ExchangeSAInit, flags: packet.IKEFlagResponse}
}
func authReq(ispi, rspi uint64) ikeMsg {
	return ikeMsg{ispi: ispi, rspi: rspi, exchange: packet.IKEv2ExchangeAuth, flags: packet.IKEFlagInitiator, msgID: 1}
}
func authResp(ispi, rspi uint64) ikeMsg {
	return ikeMsg{ispi: ispi, rspi: rspi, exchange: packet.IKEv2ExchangeAuth, flags: packet.IKEFlagResponse, msgID: 1}
}
func childReq(ispi, rspi uint64, id uint32) ikeMsg {
	return ikeMsg{ispi: ispi, rspi: rspi, exchange: packet.IKEv2ExchangeCreateChildSA, flags: packet.IKEFlagInitiator, msgID: id}
}
func childResp(ispi, rspi uint64, id uint32) ikeMsg {
	return ikeMsg{ispi: ispi, rspi: rspi, exchange: packet.IKEv2ExchangeCreateChildSA, flags: packet.IKEFlagResponse, msgID: id}
}

// rig drives a Tracker with a fake clock.
type rig struct {
	t   *testing.T
	tr  *Tracker
	now time.Duration
}

func newRig(t *testing.T, o Options) *rig {
	t.Helper()
	if o.Log == nil && testing.Verbose() {
		o.Log = kvlog.New(os.Stderr, kvlog.LevelDebug)
	}
	return &rig{t: t, tr: NewTracker(o), now: time.Hour}
}

func (r *rig) advance(d time.Duration) { r.now += d }

// out sends a LAN->WAN packet and returns the verdict and the packet.
func (r *rig) out(b []byte) (Verdict, packet.IPv4) {
	r.t.Helper()
	r.now += time.Millisecond
	v := r.tr.Process(b, Outbound, wanA, r.now)
	return v, packet.IPv4(b)
}

func (r *rig) in(b []byte) (Verdict, packet.IPv4) {
	r.t.Helper()
	r.now += time.Millisecond
	v := r.tr.Process(b, Inbound, netip.Addr{}, r.now)
	return v, packet.IPv4(b)
}

// espOut sends client's ESP on spi to srv and requires it forwarded with
// the WAN source.
func (r *rig) espOut(client, srv netip.Addr, spi uint32) {
	r.t.Helper()
	v, ip := r.out(espPacket(client, srv, spi, 1))
	if v != Forward || ip.Src() != wanA || ip.Dst() != srv || !ip.ChecksumValid() {
		r.t.Fatalf("outbound ESP %s->%s spi %#x: verdict %v, now %s->%s, checksum ok %v",
			client, srv, spi, v, ip.Src(), ip.Dst(), ip.ChecksumValid())
	}
}

// espIn sends srv's ESP on spi to the WAN address and returns where it
// went: the client, or an invalid Addr if not forwarded.
func (r *rig) espIn(srv netip.Addr, spi uint32) (Verdict, netip.Addr) {
	r.t.Helper()
	b := espPacket(srv, wanA, spi, 1)
	orig := bytes.Clone(b)
	v, ip := r.in(b)
	switch v {
	case Forward:
		if ip.Src() != srv || !ip.ChecksumValid() {
			r.t.Fatalf("inbound ESP forwarded with source %s, checksum ok %v", ip.Src(), ip.ChecksumValid())
		}
		if !bytes.Equal(b[20:], orig[20:]) {
			r.t.Fatalf("inbound ESP payload changed")
		}
		return v, ip.Dst()
	default:
		if !bytes.Equal(b, orig) {
			r.t.Fatalf("packet changed with verdict %v", v)
		}
		return v, netip.Addr{}
	}
}

// wantIn requires srv's ESP on spi to reach want.
func (r *rig) wantIn(srv netip.Addr, spi uint32, want netip.Addr) {
	r.t.Helper()
	v, got := r.espIn(srv, spi)
	if v != Forward || got != want {
		r.t.Fatalf("inbound ESP from %s spi %#x: verdict %v to %v, want forward to %s", srv, spi, v, got, want)
	}
}

// wantInVerdict requires srv's ESP on spi to get verdict v (not Forward).
func (r *rig) wantInVerdict(srv netip.Addr, spi uint32, want Verdict) {
	r.t.Helper()
	v, got := r.espIn(srv, spi)
	if v != want {
		r.t.Fatalf("inbound ESP from %s spi %#x: verdict %v (to %v), want %v", srv, spi, v, got, want)
	}
}

// ike sends an IKE message (client side out, or server side in) and returns
// the verdict.
func (r *rig) ikeOut(client, srv netip.Addr, m ikeMsg) Verdict {
	r.t.Helper()
	v, _ := r.out(ikePacket(client, srv, 500, 500, m))
	return v
}

func (r *rig) ikeIn(srv netip.Addr, dport uint16, m ikeMsg) (Verdict, packet.IPv4) {
	r.t.Helper()
	return r.in(ikePacket(srv, wanA, 500, dport, m))
}

// handshake runs IKE_SA_INIT and IKE_AUTH between client and srv and
// requires every message to pass.
func (r *rig) handshake(client, srv netip.Addr, ispi, rspi uint64) {
	r.t.Helper()
	for i, step := range []func() Verdict{
		func() Verdict { return r.ikeOut(client, srv, saInitReq(ispi)) },
		func() Verdict { v, _ := r.ikeIn(srv, 500, saInitResp(ispi, rspi)); return v },
		func() Verdict { return r.ikeOut(client, srv, authReq(ispi, rspi)) },
		func() Verdict { v, _ := r.ikeIn(srv, 500, authResp(ispi, rspi)); return v },
	} {
		if v := step(); v == Drop {
			r.t.Fatalf("handshake %s<->%s step %d dropped", client, srv, i+1)
		}
	}
}

func (r *rig) session(proto, client string, spi string) (found bool, state string) {
	for _, s := range r.tr.Sessions(r.now) {
		if s.Proto == proto && s.Client == client && (spi == "" || s.OrigID == spi || s.PeerID == spi) {
			return true, s.State
		}
	}
	return false, ""
}

// discardLog is a logger for tests that check no lines.
func discardLog() *kvlog.Logger { return kvlog.Discard() }
