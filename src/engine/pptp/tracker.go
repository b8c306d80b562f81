package pptp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// Config is what the engine needs from the daemon's config and plan. In
// Common: Queue (plan.Queue.Num), MaxSessions (calls in all, max_calls),
// MaxPerClient (calls per LAN client), IdleTimeout (a call without GRE or
// control traffic this long is removed), StatePath (where the call table is
// kept across a crash, "" = not kept; see doc.go) and Log.
type Config struct {
	engine.Common
	// Mark and MarkMask: inbound GRE the engine translated gets
	// mark&^MarkMask|Mark, so the plan's notrack rule and the fw4 forward
	// include recognise it (plan.Mark, plan.MarkMask).
	Mark, MarkMask uint32
	// WANAddrsOnly: Maps holds only plan.MapPPTPWANAddrs (the NFQUEUE
	// fallback, where the engine demultiplexes GRE itself): the engine
	// adds the router addresses its control connections use, nothing else.
	WANAddrsOnly bool
	// ClearKernelHelper removes a kernel conntrack helper from every
	// control connection the engine handles (the kernel has nf_conntrack_pptp
	// and fw4 may assign it; see doc.go).
	ClearKernelHelper bool
	// NoCtnetlink: the probe found no ctnetlink (plan.Caps.Ctnetlink, or
	// VPNPT_DISABLE_CAPS=nf_conntrack_netlink): the engine opens no
	// conntrack socket and follows control connections by its own stream
	// tracking, as on a kernel without nf_conntrack_netlink.
	NoCtnetlink bool
}

func (c *Config) defaults() {
	if c.MaxSessions <= 0 {
		c.MaxSessions = 1024
	}
	if c.MaxPerClient <= 0 {
		c.MaxPerClient = 16
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
}

// HelperClearer removes the conntrack helper of a TCP connection given by its
// original tuple (*ct.Conn).
type HelperClearer interface {
	ClearHelper(src, dst netip.AddrPort) error
}

// Conntrack is the part of *ct.Conn the engine's view of control
// connections uses.
type Conntrack interface {
	// Get looks an entry up by its original tuple; the error wraps
	// unix.ENOENT when there is none.
	Get(t ct.Tuple) (ct.Flow, error)
}

// Netfilter hook numbers (uapi linux/netfilter.h) as NFQUEUE reports them.
const (
	hookPrerouting = 0
	hookForward    = 2
)

// connKey is a control connection by its LAN-side tuple, the same in both
// directions at the forward hook (after the reply's destination NAT).
type connKey struct {
	client, server uint32
	cport, sport   uint16
}

// transKey is a translated Call ID as the server knows it.
type transKey struct {
	server uint32
	id     uint16
}

// call is one PPTP call through the router.
type call struct {
	conn     *ctrlConn
	client   netip.Addr
	server   netip.Addr
	orig     uint16 // the client's Call ID
	trans    uint16 // what the server sees instead
	peer     uint16 // the server's Call ID (valid if havePeer)
	havePeer bool
	state    string
	created  time.Time
	lastSeen time.Time

	pktsIn, bytesIn uint64 // inbound GRE the engine demultiplexed

	// What status calls "established" needs: GRE seen both ways (since
	// the restart, for a restored call). In: the engine's own count
	// (fallback) or the guard element's counter past inBase (maps). Out:
	// the outbound GRE's conntrack entry (the kernel masquerades it),
	// past outBase packets when the kernel counts (outBaseSet: the first
	// look of a restored call took the baseline).
	seenIn, seenOut bool
	inBase, outBase uint64
	outBaseSet      bool

	// Kernel data plane (kernel.go): the elements exist, for wan.
	programmed          bool
	wan                 netip.Addr
	kernPkts, kernBytes uint64 // what the kernel forwarded (element counters)
}

// ctrlConn is one PPTP control connection (TCP 1723).
type ctrlConn struct {
	key         connKey
	client      netip.AddrPort
	server      netip.AddrPort
	dirs        [2]stream
	calls       []*call
	created     time.Time
	lastSeen    time.Time
	helperDone  bool
	helperTries uint8
	natPort     uint16 // the masqueraded source port the server sees (view mode; 0 while unknown)
	// wan is the router's address the server talks to (the reply
	// tuple's destination in conntrack): inbound GRE of the connection's
	// calls must be addressed to it. Invalid while unknown.
	wan netip.Addr
}

// counters are the engine's event counts (guarded by Engine.mu).
type counters struct {
	greIn, greInUnknown, greOther                                       uint64
	ctrlSegments, ctrlRewrites, ctrlBad, ctrlLostSync, ctrlOutOfOrder   uint64
	ctrlUnsynced, ctrlRetransmits, callsRefused, connsRefused, badPkts  uint64
	helperCleared, helperErrors, callsOpened, callsClosed, callsExpired uint64
	greMalformed, greNotToWAN, ctrlSynIgnored, ctrlRSTIgnored           uint64
	ctrlUnconfirmed, ctrlOutOfWindow, mapErrors                         uint64
	mapAdds, mapAddMicros                                               uint64
}

// tracker decides: it holds the control connections and calls, follows
// each control connection, rewrites the Call IDs of queued packets and says
// what happens to each one. Everything it learns from or tells the kernel
// goes through small interfaces (Conntrack, HelperClearer, engine.Maps) that
// the Engine fills with the real sockets and tests with fakes; it makes no
// system call itself.
type tracker struct {
	log    *kvlog.Logger
	now    func() time.Time
	rand   func() uint16
	helper HelperClearer

	mu         sync.Mutex
	cfg        Config
	conns      map[connKey]*ctrlConn
	byTrans    map[transKey]*call
	byNAT      map[natKey]*ctrlConn // view mode: connections by the server's view, for RSTs from the WAN
	blocks     map[transKey]int     // calls per (server, high byte << 8)
	perClient  map[uint32]int
	nCalls     int
	cnt        counters
	limitLog   map[uint32]time.Time
	dirty      bool
	lastSweep  time.Time
	helperOff  bool // ctnetlink is unavailable: stop trying
	ctView     bool // ctq is set: follow control connections with conntrack's view
	ctq        Conntrack
	maps       engine.Maps
	orphans    map[string]*orphan       // kernel.go
	wanAdded   map[netip.Addr]bool      // fallback: router addresses put in MapPPTPWANAddrs
	wanLearned map[netip.Addr]time.Time // fallback without ctnetlink: those learned from control segments (kernel.go)
	lastSync   time.Time
	seg        segCtx
}

// HandleBatch decides a batch of queued packets (nfqueue.Handler).
func (e *tracker) HandleBatch(pkts []nfqueue.Packet) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range pkts {
		e.handleLocked(&pkts[i], now)
	}
}

func (e *tracker) handleLocked(p *nfqueue.Packet, now time.Time) {
	ip, err := packet.ParseIPv4(p.Data)
	if err != nil {
		e.cnt.badPkts++
		return
	}
	switch ip.Protocol() {
	case packet.ProtoGRE:
		if p.Hook == hookPrerouting {
			e.greInLocked(p, ip, now)
		}
	case packet.ProtoTCP:
		if p.Hook == hookPrerouting {
			e.rstRawLocked(p, ip)
			e.learnWANLocked(ip, now)
			return
		}
		e.tcpLocked(p, ip, now)
	}
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// greInLocked demultiplexes a GRE packet from a server to the router (raw
// prerouting, before routing and conntrack): a known translated Call ID gets
// the client's address and Call ID back and the engine's mark; anything else
// is left as it is, unmarked, for the router's own stack and firewall (see
// doc.go: not forwarded).
func (e *tracker) greInLocked(p *nfqueue.Packet, ip packet.IPv4, now time.Time) {
	if ip.FragOffset() != 0 {
		e.cnt.greOther++
		return
	}
	g, err := packet.ParseGRE(ip.Payload())
	if err != nil {
		if pl := ip.Payload(); len(pl) >= 2 && pl[1]&7 == 1 {
			// Enhanced GRE (version 1) that does not parse is of no
			// use to anyone: counted and dropped.
			e.cnt.greMalformed++
			p.Verdict = nfqueue.Drop
			return
		}
		e.cnt.greOther++
		return
	}
	if g.Version() != 1 {
		e.cnt.greOther++
		return
	}
	c := e.byTrans[transKey{u32(ip.Src()), g.CallID()}]
	if c == nil {
		e.cnt.greInUnknown++
		return
	}
	if w := c.conn.wan; w.IsValid() && ip.Dst() != w {
		// The call's key, but not sent to the router's address the
		// control connection uses: the kernel helper would not deliver
		// it either. Left alone (fw4 forwards nothing unsolicited).
		e.cnt.greNotToWAN++
		return
	}
	ip.SetDst(c.client)
	g.SetCallID(c.orig)
	c.pktsIn++
	if !c.seenIn {
		c.seenIn = true
		e.greBothWaysLocked(c)
	}
	c.bytesIn += uint64(len(ip))
	c.lastSeen = now
	e.cnt.greIn++
	p.Data = p.Data[:len(ip)]
	p.Modified = true
	p.SetMark, p.NewMark = true, p.Mark&^e.cfg.MarkMask|e.cfg.Mark
}

// tcpLocked follows a control connection (forward hook, both directions).
func (e *tracker) tcpLocked(p *nfqueue.Packet, ip packet.IPv4, now time.Time) {
	// The plan queues only TCP 1723, defragmented by conntrack: a
	// fragment or a segment that does not parse is of use to no
	// endpoint. Counted and dropped (never followed).
	if ip.IsFragment() {
		e.cnt.badPkts++
		p.Verdict = nfqueue.Drop
		return
	}
	tcp, err := packet.ParseTCP(ip.Payload())
	if err != nil {
		e.cnt.badPkts++
		p.Verdict = nfqueue.Drop
		return
	}
	var d int
	var key connKey
	switch {
	case tcp.DstPort() == packet.PortPPTP:
		d = dirOut
		key = connKey{u32(ip.Src()), u32(ip.Dst()), tcp.SrcPort(), tcp.DstPort()}
	case tcp.SrcPort() == packet.PortPPTP:
		d = dirIn
		key = connKey{u32(ip.Dst()), u32(ip.Src()), tcp.DstPort(), tcp.SrcPort()}
	default:
		return
	}
	c := e.conns[key]
	if e.ctView {
		e.tcpViewLocked(p, ip, tcp, d, key, c, now)
		return
	}
	e.tcpOwnLocked(p, ip, tcp, d, key, c, now)
}

// tcpViewLocked follows a control connection with conntrack's view of it
// (ctnetlink; conntrack ran before the forward hook, so its entry already
// reflects the segment). State follows what conntrack and the endpoints
// accept:
//
//   - segments conntrack finds invalid (outside both windows: most spoofed
//     RSTs, forged messages) never get here: the plan drops them before the
//     queue rule (plan.CounterPPTPInvalid);
//   - RSTs are judged before conntrack sees them (rstRawLocked): an
//     in-window spoofed RST would otherwise push conntrack's record of the
//     sender's stream forward, so that the sender's real segments look
//     stale to it (invalid: never translated back, lost), and the control
//     connection dies although both endpoints still hold it;
//   - handshakes create no state, so spoofed SYNs cannot fill the table: a
//     connection is followed from its first client segment whose entry is
//     established and assured (a handshake conntrack confirmed), from the
//     next message boundary;
//   - an RST ends the connection only if conntrack closed it (exactly the
//     next sequence number) or dropped it; any other RST is dropped: the
//     endpoint would not accept it either (RFC 5961);
//   - a client SYN on a followed connection ends it only if conntrack
//     no longer has the old entry (it replaced a closed one with a new,
//     still unconfirmed, entry); a SYN it ignored (the entry is still
//     established: someone spoofs the client's address and port) is dropped.
//
// A lookup costs one ctnetlink round trip; it happens for RSTs, SYNs and
// the first segment of a connection, never for GRE or ordinary segments.
func (e *tracker) tcpViewLocked(p *nfqueue.Packet, ip packet.IPv4, tcp packet.TCP, d int, key connKey, c *ctrlConn, now time.Time) {
	flags := tcp.Flags()
	if flags&packet.TCPFlagSYN != 0 {
		if c == nil || d != dirOut || flags&packet.TCPFlagACK != 0 {
			return
		}
		_, err := e.ctGetLocked(c.client, c.server)
		switch {
		case errors.Is(err, unix.ENOENT):
			e.closeConnLocked(c, "control connection reopened")
		case err != nil:
			// Unknown: keep the call, let the SYN through (the client's
			// TCP and the server decide).
		default:
			e.cnt.ctrlSynIgnored++
			p.Verdict = nfqueue.Drop
		}
		return
	}
	if c == nil {
		if d == dirIn {
			return
		}
		client := netip.AddrPortFrom(ip.Src(), tcp.SrcPort())
		server := netip.AddrPortFrom(ip.Dst(), tcp.DstPort())
		f, err := e.ctGetLocked(client, server)
		if err != nil || f.TCPState != ct.TCPEstablished || f.Status&ct.StatusAssured == 0 {
			if len(tcp.Payload()) > 0 {
				// Nothing untranslated leaks; a real client's TCP
				// sends it again.
				e.cnt.ctrlUnconfirmed++
				p.Verdict = nfqueue.Drop
			}
			return
		}
		if c = e.newConnLocked(key, ip, tcp, d, now); c == nil {
			if len(tcp.Payload()) > 0 {
				p.Verdict = nfqueue.Drop
			}
			return
		}
		if w := f.Reply.Dst; w.Is4() {
			c.wan = w
		}
		e.setNATPortLocked(c, f.Reply.DstPort)
	}
	c.lastSeen = now
	e.clearHelperLocked(c)
	if flags&packet.TCPFlagRST != 0 {
		f, err := e.ctGetLocked(c.client, c.server)
		if errors.Is(err, unix.ENOENT) || (err == nil && f.TCPState == ct.TCPClose) {
			e.closeConnLocked(c, "control connection reset")
		} else {
			e.cnt.ctrlRSTIgnored++
			p.Verdict = nfqueue.Drop
		}
		return
	}
	e.ctrlDataLocked(p, c, d, tcp, now)
}

// natKey is a control connection as the server addresses it: its address
// and port, and the router's masqueraded port.
type natKey struct {
	server        uint32
	sport, natPrt uint16
}

func (e *tracker) setNATPortLocked(c *ctrlConn, port uint16) {
	if port == 0 || c.natPort == port {
		return
	}
	if c.natPort != 0 && e.byNAT[natKey{c.key.server, c.key.sport, c.natPort}] == c {
		delete(e.byNAT, natKey{c.key.server, c.key.sport, c.natPort})
	}
	c.natPort = port
	e.byNAT[natKey{c.key.server, c.key.sport, port}] = c
	e.dirty = true
}

// rstRawLocked judges a control connection's RST in raw prerouting, before
// conntrack (view mode; plan.userspacePPTP queues TCP 1723 there too). An
// RST of a followed connection passes only with exactly the sequence number
// the sender's stream is at (RFC 5961 3.2: what the receiver would accept
// without a challenge ACK). Anything else is dropped before conntrack sees
// it: an in-window one would move conntrack's record of the stream (see
// tcpViewLocked). While a direction is not synchronised (just after a
// restart, until the sender's next control message) the engine cannot tell,
// so it drops every RST of it: a real reset then ends the call at its idle
// timeout instead. RSTs of other connections, and all other segments, pass
// untouched.
func (e *tracker) rstRawLocked(p *nfqueue.Packet, ip packet.IPv4) {
	if !e.ctView || ip.IsFragment() {
		return
	}
	tcp, err := packet.ParseTCP(ip.Payload())
	if err != nil || tcp.Flags()&packet.TCPFlagRST == 0 {
		return
	}
	var c *ctrlConn
	var d int
	switch {
	case tcp.DstPort() == packet.PortPPTP:
		d = dirOut
		c = e.conns[connKey{u32(ip.Src()), u32(ip.Dst()), tcp.SrcPort(), tcp.DstPort()}]
	case tcp.SrcPort() == packet.PortPPTP:
		d = dirIn
		c = e.byNAT[natKey{u32(ip.Src()), tcp.SrcPort(), tcp.DstPort()}]
		if c != nil && c.wan.IsValid() && ip.Dst() != c.wan {
			c = nil
		}
	}
	if c == nil {
		return
	}
	if st := &c.dirs[d]; st.synced && tcp.Seq() == st.next {
		return
	}
	e.cnt.ctrlRSTIgnored++
	p.Verdict = nfqueue.Drop
}

// ctGetLocked asks conntrack for a control connection's entry.
func (e *tracker) ctGetLocked(client, server netip.AddrPort) (ct.Flow, error) {
	return e.ctq.Get(ct.Tuple{Src: client.Addr(), Dst: server.Addr(), Proto: packet.ProtoTCP,
		SrcPort: client.Port(), DstPort: server.Port()})
}

// tcpOwnLocked follows a control connection by the engine's own stream
// tracking alone (no conntrack view: the kernel lacks ctnetlink).
func (e *tracker) tcpOwnLocked(p *nfqueue.Packet, ip packet.IPv4, tcp packet.TCP, d int, key connKey, c *ctrlConn, now time.Time) {
	flags := tcp.Flags()
	seq := tcp.Seq()
	payload := tcp.Payload()

	if flags&packet.TCPFlagSYN != 0 {
		if d == dirOut && flags&packet.TCPFlagACK == 0 {
			// The client's SYN. A retransmitted one changes nothing; any
			// other means a new connection on this tuple, so the old
			// one (and its calls) is over.
			if c != nil && !(c.dirs[dirOut].synced && c.dirs[dirOut].next == seq+1) {
				e.closeConnLocked(c, "control connection reopened")
				c = nil
			}
		}
		if c == nil {
			if d == dirIn {
				// A SYN or SYN-ACK from the server side of a connection
				// no client opened: not ours to track. Creating state
				// for it would let WAN hosts fill the table (and lock
				// every LAN client out) with spoofed segments.
				return
			}
			if c = e.newConnLocked(key, ip, tcp, d, now); c == nil {
				p.Verdict = nfqueue.Drop
				return
			}
		}
		c.dirs[d].sync(seq + 1)
		c.lastSeen = now
		if d == dirIn {
			// SYN-ACK: the conntrack entry exists now.
			e.clearHelperLocked(c)
		}
		return
	}
	if c == nil {
		if d == dirIn || (len(payload) == 0 && flags&(packet.TCPFlagFIN|packet.TCPFlagRST) == 0) {
			// A bare ACK of a connection we never saw, or the server's
			// side of one: only the client side may create state (its
			// calls, if any, come back from the state file).
			return
		}
		// Joined mid-stream (after a restart, or the SYN passed while
		// nobody listened): follow it from the next message boundary.
		if c = e.newConnLocked(key, ip, tcp, d, now); c == nil {
			return
		}
	}
	c.lastSeen = now
	e.clearHelperLocked(c)
	st := &c.dirs[d]

	if flags&packet.TCPFlagRST != 0 {
		if !st.synced || inWindow(seq, st.next) {
			e.closeConnLocked(c, "control connection reset")
		}
		return
	}
	e.ctrlDataLocked(p, c, d, tcp, now)
}

// ctrlDataLocked handles a control segment's payload and FIN. It returns
// false when the connection is gone or the segment is dropped.
func (e *tracker) ctrlDataLocked(p *nfqueue.Packet, c *ctrlConn, d int, tcp packet.TCP, now time.Time) bool {
	st := &c.dirs[d]
	seq, payload := tcp.Seq(), tcp.Payload()
	if len(payload) > 0 {
		e.cnt.ctrlSegments++
		if !e.segmentLocked(p, c, d, tcp, seq, payload, now) {
			p.Verdict = nfqueue.Drop
			return false
		}
	}
	if tcp.Flags()&packet.TCPFlagFIN != 0 && st.synced && seq+uint32(len(payload)) == st.next {
		st.fin = true
		if c.dirs[dirOut].fin && c.dirs[dirIn].fin {
			e.closeConnLocked(c, "control connection closed")
			return false
		}
	}
	return true
}

// ctrlWindow bounds how far from the next expected byte a control segment
// may start (view mode): far more than the control messages in flight on a
// connection (each at most 220 bytes), far less than the sequence space.
const ctrlWindow = 1 << 16

// inWindow accepts an RST whose sequence number is at or up to 64 KiB past
// the next expected byte (RFC 5961 would want exactly next; the kernel
// already dropped wildly wrong ones as invalid in conntrack's view).
func inWindow(seq, next uint32) bool {
	d := int32(seq - next)
	return d >= -1 && d <= 65535
}

func (e *tracker) newConnLocked(key connKey, ip packet.IPv4, tcp packet.TCP, d int, now time.Time) *ctrlConn {
	if len(e.conns) >= 2*e.cfg.MaxSessions+16 {
		e.cnt.connsRefused++
		e.limitLogLocked(key.client, now, "pptp control connection refused: limit reached",
			"limit", "max_calls", "value", e.cfg.MaxSessions, "connections", len(e.conns))
		return nil
	}
	// One client must not use up the table for the others: it gets the
	// connections its calls could need, and a few spare (this scan runs
	// only when a connection opens, not per packet).
	perClient := 0
	for k := range e.conns {
		if k.client == key.client {
			perClient++
		}
	}
	if perClient >= 2*e.cfg.MaxPerClient+4 {
		e.cnt.connsRefused++
		e.limitLogLocked(key.client, now, "pptp control connection refused: per-client limit reached",
			"limit", "max_calls_per_client", "value", e.cfg.MaxPerClient, "connections", perClient)
		return nil
	}
	c := &ctrlConn{key: key, created: now, lastSeen: now}
	if d == dirOut {
		c.client = netip.AddrPortFrom(ip.Src(), tcp.SrcPort())
		c.server = netip.AddrPortFrom(ip.Dst(), tcp.DstPort())
	} else {
		c.client = netip.AddrPortFrom(ip.Dst(), tcp.DstPort())
		c.server = netip.AddrPortFrom(ip.Src(), tcp.SrcPort())
	}
	c.dirs[0].resetMsg()
	c.dirs[1].resetMsg()
	c.helperDone = !e.cfg.ClearKernelHelper
	e.conns[key] = c
	return c
}

// clearHelperLocked removes a kernel pptp helper from the connection once
// its conntrack entry exists (from the SYN-ACK on), before any control
// message reaches the helper (which runs after our hooks, at conntrack
// confirmation). See doc.go.
func (e *tracker) clearHelperLocked(c *ctrlConn) {
	if c.helperDone || e.helperOff {
		return
	}
	if e.helper == nil {
		e.helperUnavailableLocked(errNoCtnetlink)
		return
	}
	err := e.helper.ClearHelper(c.client, c.server)
	switch {
	case err == nil:
		c.helperDone = true
		e.cnt.helperCleared++
	case errors.Is(err, unix.ENOENT):
		c.helperTries++
		if c.helperTries >= 5 {
			c.helperDone = true
			e.cnt.helperErrors++
		}
	default:
		e.cnt.helperErrors++
		e.helperUnavailableLocked(err)
	}
}

func (e *tracker) helperUnavailableLocked(err error) {
	e.helperOff = true
	e.log.Error("pptp: cannot remove the kernel pptp conntrack helper from control connections; "+
		"if the firewall assigns it (fw4 does on zones without masquerade), the kernel translates Call IDs too "+
		"and calls fail: install kmod-nf-conntrack-netlink, or set mode kernel", "err", err)
}

// segmentLocked handles a control segment with payload. It returns false
// when the segment must be dropped (out of order, or a call refused).
func (e *tracker) segmentLocked(p *nfqueue.Packet, c *ctrlConn, d int, tcp packet.TCP, seq uint32, payload []byte, now time.Time) bool {
	st := &c.dirs[d]
	if !st.synced {
		if !looksLikeStart(payload) {
			e.cnt.ctrlUnsynced++
			return true
		}
		st.sync(seq)
	}
	off := tcp.HeaderLen()
	rel := int32(seq - st.next)
	if e.ctView && (rel > ctrlWindow || rel < -ctrlWindow) {
		// Far outside the stream: conntrack's window tracking is liberal
		// for this connection (tcpViewLocked), so the engine drops such
		// segments itself. No endpoint would accept one, and counting it
		// as a gap would let forged segments resynchronise the stream.
		e.cnt.ctrlOutOfWindow++
		return false
	}
	if rel > 0 {
		// A gap: an earlier segment has not come through us yet. Drop
		// this one; TCP sends both again in order. A gap that persists
		// means we lost the stream: follow it from here if it looks like
		// a message boundary.
		st.gaps++
		if st.gaps < 8 || !looksLikeStart(payload) {
			e.cnt.ctrlOutOfOrder++
			return st.gaps >= 8
		}
		e.cnt.ctrlLostSync++
		st.sync(seq)
		rel = 0
	}
	st.gaps = 0
	if rel < 0 {
		// Retransmitted bytes: apply the same rewrites again.
		old := min(int(-rel), len(payload))
		if n := st.replay(tcp, off, seq, payload[:old]); n > 0 {
			p.Modified = true
		}
		e.cnt.ctrlRetransmits++
		payload = payload[old:]
		off += old
		if len(payload) == 0 {
			return true
		}
	}
	// Interpret the new bytes on a copy of the stream state; keep it only
	// if the segment is accepted.
	work := *st
	sc := &e.seg
	sc.begin(c, now)
	n, res := work.feed(sc, d, tcp, off, payload)
	if res == feedRefuse {
		sc.rollback()
		return false
	}
	*st = work
	sc.commit()
	if n > 0 {
		e.cnt.ctrlRewrites += uint64(n)
		p.Modified = true
	}
	return true
}

// limitLogLocked logs a limit at most every 10 s per client.
func (e *tracker) limitLogLocked(client uint32, now time.Time, msg string, args ...any) {
	if t, ok := e.limitLog[client]; ok && now.Sub(t) < 10*time.Second {
		return
	}
	e.limitLog[client] = now
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], client)
	e.log.Warn(msg, append(args, "client", netip.AddrFrom4(b).String())...)
}

// ---- calls ----

// addCallLocked registers a call whose translation is decided.
func (e *tracker) addCallLocked(c *ctrlConn, orig, trans uint16, now time.Time) *call {
	cl := &call{conn: c, client: c.client.Addr(), server: c.server.Addr(), orig: orig, trans: trans,
		state: stateRequested, created: now, lastSeen: now}
	e.byTrans[transKey{c.key.server, trans}] = cl
	e.blocks[transKey{c.key.server, trans &^ 0xff}]++
	e.perClient[c.key.client]++
	e.nCalls++
	c.calls = append(c.calls, cl)
	e.dirty = true
	e.cnt.callsOpened++
	return cl
}

func (e *tracker) removeCallLocked(cl *call, why string) {
	e.dropCallLocked(cl)
	e.cnt.callsClosed++
	e.log.Info("pptp call removed", "reason", why, "client", cl.client.String(), "server", cl.server.String(),
		"call_id", cl.orig, "translated", cl.trans, "gre_in", cl.pktsIn)
}

// dropCallLocked unregisters a call.
func (e *tracker) dropCallLocked(cl *call) {
	e.unprogramLocked(cl)
	c := cl.conn
	for i, x := range c.calls {
		if x == cl {
			c.calls = append(c.calls[:i], c.calls[i+1:]...)
			break
		}
	}
	tk := transKey{c.key.server, cl.trans}
	if e.byTrans[tk] == cl {
		delete(e.byTrans, tk)
	}
	bk := transKey{c.key.server, cl.trans &^ 0xff}
	if e.blocks[bk]--; e.blocks[bk] <= 0 {
		delete(e.blocks, bk)
	}
	if e.perClient[c.key.client]--; e.perClient[c.key.client] <= 0 {
		delete(e.perClient, c.key.client)
	}
	e.nCalls--
	e.dirty = true
}

func (e *tracker) setPeerLocked(cl *call, peer uint16) {
	cl.peer, cl.havePeer = peer, true
	e.dirty = true
}

func (e *tracker) closeConnLocked(c *ctrlConn, why string) {
	for len(c.calls) > 0 {
		e.removeCallLocked(c.calls[len(c.calls)-1], why)
	}
	e.forgetConnLocked(c)
}

// forgetConnLocked removes a connection from the tables.
func (e *tracker) forgetConnLocked(c *ctrlConn) {
	if e.conns[c.key] == c {
		delete(e.conns, c.key)
	}
	if nk := (natKey{c.key.server, c.key.sport, c.natPort}); c.natPort != 0 && e.byNAT[nk] == c {
		delete(e.byNAT, nk)
	}
}

// callSetupGrace is how long a control connection may exist without a call.
const callSetupGrace = 2 * time.Minute

// sweepLocked removes idle calls and idle connections without calls.
func (e *tracker) sweepLocked(now time.Time) {
	idle := e.cfg.IdleTimeout
	for _, c := range e.conns {
		for i := len(c.calls) - 1; i >= 0; i-- {
			if cl := c.calls[i]; now.Sub(cl.lastSeen) > idle {
				e.cnt.callsExpired++
				e.removeCallLocked(cl, "idle timeout")
			}
		}
		// A connection that never carried a call is kept only briefly: a
		// real client sends its Outgoing-Call-Request within seconds.
		if len(c.calls) == 0 && (now.Sub(c.lastSeen) > idle || now.Sub(c.created) > callSetupGrace) {
			e.forgetConnLocked(c)
		}
	}
	for k, t := range e.limitLog {
		if now.Sub(t) > time.Minute {
			delete(e.limitLog, k)
		}
	}
}
