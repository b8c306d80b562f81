package esp

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// Defaults for the timing rules (doc.go explains each one).
const (
	DefaultMaxSAs      = 4096
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultHoldWindow is how long after the last IKE message of a
	// child-SA exchange another client's child-SA request to the same
	// server is held back, unless the first client's inbound SPI is
	// learned sooner.
	DefaultHoldWindow = 3 * time.Second
	// DefaultHoldMax caps one client's negotiation window however many
	// IKE_AUTH rounds it takes (EAP), so no client can hold others forever.
	DefaultHoldMax = 10 * time.Second
	// DefaultLearnWindow is how long after a child-SA exchange a client
	// counts as waiting for a new inbound SPI, without having sent ESP yet.
	DefaultLearnWindow = 60 * time.Second
	// DefaultRekeyGrace is how long an SA that a newer SA of the same
	// client and server replaced may stay idle before it expires (capped by
	// the idle timeout).
	DefaultRekeyGrace = 60 * time.Second
	// DefaultReplyWindow: a server answers a new SA's first packet within
	// a round trip; 2 s covers slow links and retransmissions.
	DefaultReplyWindow = 2 * time.Second
)

// Options configure a Tracker. Zero values take the defaults above.
type Options struct {
	MaxSAs int // SAs (and client-server pairs) the tables hold
	// MaxPerClient caps the SAs of one LAN client (all servers), so one
	// client cannot fill the tables; 0 takes MaxSAs/4 (at least 16).
	MaxPerClient int
	IdleTimeout  time.Duration // an SA, pair or IKE SPI unused this long expires
	KeepIKEPort  bool          // NAT IKE on 500->500 here, keeping source port 500
	HoldWindow   time.Duration
	HoldMax      time.Duration
	LearnWindow  time.Duration
	RekeyGrace   time.Duration
	// ReplyWindow is how long after its first packet a half-learned SA
	// counts as waiting for the server's answer (candidate evidence).
	ReplyWindow time.Duration
	// Log gets one line per learning, hold, remap and expiry event, never
	// one per forwarded packet. nil discards.
	Log *kvlog.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxSAs <= 0 {
		o.MaxSAs = DefaultMaxSAs
	}
	if o.MaxPerClient <= 0 {
		o.MaxPerClient = max(o.MaxSAs/4, 16)
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.HoldWindow <= 0 {
		o.HoldWindow = DefaultHoldWindow
	}
	if o.HoldMax <= 0 {
		o.HoldMax = DefaultHoldMax
	}
	if o.LearnWindow <= 0 {
		o.LearnWindow = DefaultLearnWindow
	}
	if o.ReplyWindow <= 0 {
		o.ReplyWindow = DefaultReplyWindow
	}
	if o.RekeyGrace <= 0 {
		o.RekeyGrace = DefaultRekeyGrace
	}
	if o.RekeyGrace > o.IdleTimeout {
		o.RekeyGrace = o.IdleTimeout
	}
	return o
}

// Dir is where a packet was queued.
type Dir uint8

const (
	// Outbound: LAN to WAN, queued in the forward hook (after routing,
	// before source NAT), with the outgoing device's address as WAN.
	Outbound Dir = iota + 1
	// Inbound: arriving on the WAN, queued in raw prerouting (before
	// conntrack and before routing).
	Inbound
)

// Verdict is what to do with a queued packet.
type Verdict uint8

const (
	// Accept: pass the packet on unchanged and unmarked; the kernel
	// (conntrack, NAT, fw4) treats it as if the engine were not there.
	Accept Verdict = iota
	// Forward: the packet was rewritten in place; pass it on with the
	// payload and plan.Mark, which keeps it out of conntrack (inbound) and
	// lets fw4's forward chain accept it.
	Forward
	// Drop: discard the packet (counted in Stats).
	Drop
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Forward:
		return "forward"
	case Drop:
		return "drop"
	}
	return "?"
}

// Stats are the tracker's counters (Counters() in status).
type Stats struct {
	OutForwarded    uint64 // outbound ESP rewritten to the WAN address
	InForwarded     uint64 // inbound ESP demultiplexed to a client
	InUnknownSPI    uint64 // inbound ESP from a server LAN clients use, SPI maps to no client: dropped
	InNotOurs       uint64 // inbound ESP from an address no LAN client talks to, or not to our WAN address: left to the kernel
	Malformed       uint64 // unparsable ESP/IP: dropped
	NoWANAddress    uint64 // outbound while the WAN device had no IPv4 address: dropped
	TableFull       uint64 // an SA or pair not created because MaxSAs was reached
	ClientCap       uint64 // an SA not created because its client has MaxPerClient
	LearnedOut      uint64 // new outbound SPIs
	LearnedIn       uint64 // inbound SPIs bound to a client
	Ambiguous       uint64 // inbound SPIs bound while several clients were candidates
	LearnHeld       uint64 // inbound ESP on a provisional SA held back (dropped): the timing evidence named another client
	Relearned       uint64 // provisional inbound SPIs moved to another client by the timing evidence
	Confirmed       uint64 // provisional inbound SPIs confirmed by the timing evidence (then programmed)
	Expired         uint64 // SAs removed by idle or rekey expiry
	IKESeen         uint64 // IKE messages observed
	IKEHeld         uint64 // child-SA requests held back (dropped) while another client negotiated
	IKEOutNAT       uint64 // outbound IKE source-NATed here (keep_ike_port)
	IKEInDemuxed    uint64 // inbound IKE routed to a client by IKE SPI (keep_ike_port)
	IKEInUnknown    uint64 // inbound IKE with SPIs no LAN client uses: left to the kernel
	IKEMalformed    uint64 // UDP 500 payload that is not IKE
	IKERemapped     uint64 // client IKE flows whose source port 500 the kernel NAT changed
	IKESPIConflicts uint64 // two clients used the same IKE SPI with one server

	// Kernel data plane (KernelSync): sums over the live elements.
	KernelOut, KernelIn           uint64
	KernelBytesOut, KernelBytesIn uint64
	Elements                      uint64 // esp_in + esp_out elements
	Adopted                       uint64 // SA halves made from elements a previous run left
}

// Map returns the counters by the names status shows (prefixed "esp_" by
// the daemon).
func (s Stats) Map() map[string]uint64 {
	return map[string]uint64{
		"out_forwarded":          s.OutForwarded,
		"in_forwarded":           s.InForwarded,
		"dropped_unknown_spi":    s.InUnknownSPI,
		"in_not_ours":            s.InNotOurs,
		"dropped_malformed":      s.Malformed,
		"dropped_no_wan_address": s.NoWANAddress,
		"table_full":             s.TableFull,
		"client_cap":             s.ClientCap,
		"learned_out_spi":        s.LearnedOut,
		"learned_in_spi":         s.LearnedIn,
		"learned_ambiguous":      s.Ambiguous,
		"learn_held":             s.LearnHeld,
		"relearned_in_spi":       s.Relearned,
		"confirmed_in_spi":       s.Confirmed,
		"expired_sa":             s.Expired,
		"ike_seen":               s.IKESeen,
		"ike_held":               s.IKEHeld,
		"ike_out_nat":            s.IKEOutNAT,
		"ike_in_demuxed":         s.IKEInDemuxed,
		"ike_in_unknown":         s.IKEInUnknown,
		"ike_malformed":          s.IKEMalformed,
		"ike_remapped":           s.IKERemapped,
		"ike_spi_conflicts":      s.IKESPIConflicts,
		"kernel_out":             s.KernelOut,
		"kernel_in":              s.KernelIn,
		"adopted_from_kernel":    s.Adopted,
	}
}

// ip4 is an IPv4 address as a big-endian number: cheap map keys.
type ip4 uint32

func ip4Of(a netip.Addr) ip4 {
	b := a.As4()
	return ip4(binary.BigEndian.Uint32(b[:]))
}

func (a ip4) Addr() netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(a))
	return netip.AddrFrom4(b)
}

func (a ip4) String() string { return a.Addr().String() }

type inKey struct {
	server ip4
	spi    uint32
}

type outKey struct {
	client, server ip4
	spi            uint32
}

type pairKey struct{ client, server ip4 }

type ikeKey struct {
	server ip4
	spi    uint64
}

// sa is one ESP security association pair as the router sees it: the SPI
// the client sends with (out, chosen by the server) and the SPI the server
// sends with (in, chosen by the client). Either may be unknown (0) while it
// is being learned.
type sa struct {
	pair      *pair
	out, in   uint32
	wan       ip4 // the address the client's ESP leaves with
	created   time.Duration
	complete  time.Duration // when both SPIs became known; 0 if not yet
	lastOut   time.Duration
	lastIn    time.Duration
	rekeyedAt time.Duration // a newer SA of the same pair completed; 0 if not
	ambiguous bool          // in was learned with more than one candidate
	// provisional: in was bound while another client of the server could
	// have owned it (doc.go, "Re-learning"); the SA stays out of the
	// kernel maps until the timing evidence confirms it.
	provisional bool
	votes       votes
	pktsOut     uint64
	bytesOut    uint64
	pktsIn      uint64
	bytesIn     uint64
	// Packets forwarded here in each direction after both SPIs were
	// known: "established" needs both (status promises traffic both ways).
	inAfter, outAfter uint64
	// What the kernel forwarded through this SA's map elements (last read).
	kPktsIn, kBytesIn, kPktsOut, kBytesOut uint64
	adopted                                bool // made from kernel elements a previous run left
}

// established: both SPIs known, not provisional, and traffic seen both
// ways since.
func (s *sa) established() bool {
	return s.in != 0 && s.out != 0 && !s.provisional && s.inAfter+s.kPktsIn > 0 && s.outAfter+s.kPktsOut > 0
}

// OneWayAfter: an established SA whose one direction has been silent this
// long while the other still flows is shown as one way, not established
// (a dead peer, a crossed SPI, a broken return path).
const OneWayAfter = 30 * time.Second

// silent names the direction ("inbound", "outbound") that has been silent
// for OneWayAfter while the other carried traffic within it; "" if none.
func (s *sa) silent(now time.Duration) string {
	switch {
	case now-s.lastOut < OneWayAfter && now-s.lastIn >= OneWayAfter:
		return "inbound"
	case now-s.lastIn < OneWayAfter && now-s.lastOut >= OneWayAfter:
		return "outbound"
	}
	return ""
}

func (s *sa) outOnly() bool { return s.out != 0 && s.in == 0 }
func (s *sa) inOnly() bool  { return s.in != 0 && s.out == 0 }

func (s *sa) lastUsed() time.Duration {
	return max(s.created, s.lastOut, s.lastIn, s.rekeyedAt)
}

// pair is what the tracker knows about one LAN client and one server.
type pair struct {
	client, server ip4
	wan            ip4 // WAN address the client's traffic to server uses; 0 unknown
	sas            []*sa
	created        time.Duration
	lastSeen       time.Duration

	// IKE timing (see doc.go). Times are 0 when never seen.
	lastIKE    time.Duration // last IKE message either way
	lastESPOut time.Duration // last outbound ESP to server the engine saw (timing evidence)
	childStart time.Duration // first message of the current child-SA exchange
	childLast  time.Duration // last message of a child-SA exchange
	learnedAt  time.Duration // last time an inbound SPI was bound to this pair
	qmMsgID    uint32        // IKEv1 Quick Mode message ID in progress
	ikeReqAt   time.Duration // the client's last IKEv2 request not answered yet
	ikeReqID   uint32        // its message ID

	// IKE NAT (for status and keep_ike_port).
	ikeSPI        uint64 // latest IKE SA initiator SPI
	ikeClientPort uint16 // the client's IKE source port
	ikeWANPort    uint16 // the port the server sees; 0 unknown
	ikeUserNAT    bool   // IKE of this pair is NATed here (keep_ike_port)
	ikeConflict   bool
	remapLogged   bool
	ikePktsOut    uint64
	ikePktsIn     uint64
	ikeBytesOut   uint64
	ikeBytesIn    uint64
	ikeHeld       uint64
	waiting       bool          // a child-SA request of p is being held back
	waitingSince  time.Duration // since when (bounds the wait, see heldBy)
	ikeSPIs       int           // entries in Tracker.ikeSPIs that point here
	listed        bool          // on its server's pending list
}

type server struct {
	pairs   []*pair
	pending []*pair // pairs that may be learning an inbound SPI (superset)
	vote    lastVote
	rtt     time.Duration // how long its IKE answers take (sampleRTT); 0 unknown
	rttVar  time.Duration // and how much that varies
}

type ikeEntry struct {
	pair     *pair
	lastSeen time.Duration
}

// Tracker holds the SPI tables and decides about each queued packet. It is
// pure (no clock, no I/O: callers pass the time) and not safe for
// concurrent use; the Engine serialises calls.
type Tracker struct {
	opt     Options
	in      map[inKey]*sa
	out     map[outKey]*sa
	pairs   map[pairKey]*pair
	servers map[ip4]*server
	ikeSPIs map[ikeKey]*ikeEntry
	nsa     int
	// perClient counts SAs per LAN client (Options.MaxPerClient).
	perClient map[ip4]int
	st        Stats
	// lastFullExpire rate-limits the expiry pass a full table triggers.
	lastFullExpire time.Duration
	fullLogged     time.Duration
	capLogged      time.Duration
	unknownLogged  time.Duration
	dirty          bool // changed since the last Snapshot
}

// NewTracker returns an empty tracker.
func NewTracker(o Options) *Tracker {
	o = o.withDefaults()
	return &Tracker{
		opt:     o,
		in:      make(map[inKey]*sa),
		out:     make(map[outKey]*sa),
		pairs:   make(map[pairKey]*pair),
		servers: make(map[ip4]*server),
		ikeSPIs: make(map[ikeKey]*ikeEntry),

		perClient: make(map[ip4]int),
	}
}

// SetOptions changes limits and timeouts and keeps every table entry. A
// smaller MaxSAs takes effect as entries expire.
func (t *Tracker) SetOptions(o Options) { t.opt = o.withDefaults() }

// Options returns the options in effect (defaults filled in).
func (t *Tracker) Options() Options { return t.opt }

// Stats returns the counters.
func (t *Tracker) Stats() Stats { return t.st }

// Len is the number of SAs in the tables.
func (t *Tracker) Len() int { return t.nsa }

// Process decides about one IPv4 packet queued in direction dir and may
// rewrite it in place (then the verdict is Forward). wan is the address of
// the outgoing WAN device for Outbound packets and is ignored for Inbound
// ones. now is a monotonic time that must be positive and never decrease.
// Process does not allocate for packets of known SAs.
func (t *Tracker) Process(b []byte, dir Dir, wan netip.Addr, now time.Duration) Verdict {
	ip, err := packet.ParseIPv4(b)
	if err != nil {
		t.st.Malformed++
		return Drop
	}
	switch ip.Protocol() {
	case packet.ProtoESP:
		if dir == Outbound {
			return t.outESP(ip, wan, now)
		}
		return t.inESP(ip, now)
	case packet.ProtoUDP:
		return t.ike(ip, dir, wan, now)
	}
	return Accept
}

func (t *Tracker) outESP(ip packet.IPv4, wan netip.Addr, now time.Duration) Verdict {
	if !wan.Is4() {
		t.st.NoWANAddress++
		return Drop
	}
	if ip.FragOffset() != 0 {
		// A later fragment: no ESP header to learn from, but it must
		// leave with the WAN address like its first fragment.
		ip.SetSrc(wan)
		t.st.OutForwarded++
		return Forward
	}
	if ip.Src() == wan {
		// Already translated: a packet that meets the queue again after
		// a reload replaced our chains while it waited for its verdict.
		return Accept
	}
	e, err := packet.ParseESP(ip.Payload())
	if err != nil {
		t.st.Malformed++
		return Drop
	}
	client, srv, w := ip4Of(ip.Src()), ip4Of(ip.Dst()), ip4Of(wan)
	s := t.out[outKey{client, srv, e.SPI()}]
	if s == nil {
		s = t.learnOut(client, srv, e.SPI(), w, now)
	}
	if s != nil {
		s.wan = w
		s.lastOut = now
		s.pktsOut++
		s.bytesOut += uint64(len(ip))
		if s.complete != 0 {
			s.outAfter++
		}
		s.pair.wan = w
		s.pair.lastSeen = now
		s.pair.lastESPOut = now
	}
	ip.SetSrc(wan)
	t.st.OutForwarded++
	return Forward
}

func (t *Tracker) inESP(ip packet.IPv4, now time.Duration) Verdict {
	if ip.FragOffset() != 0 {
		// No SPI to demultiplex by. The kernel reassembles before raw
		// prerouting, so this only happens without conntrack loaded.
		t.st.Malformed++
		return Drop
	}
	e, err := packet.ParseESP(ip.Payload())
	if err != nil {
		t.st.Malformed++
		return Drop
	}
	srv, dst := ip4Of(ip.Src()), ip4Of(ip.Dst())
	s := t.in[inKey{srv, e.SPI()}]
	if s == nil {
		sv := t.servers[srv]
		if sv == nil {
			// No LAN client talks to this address: whatever it is (the
			// router's own IPsec, or unsolicited), it is not ours to
			// forward. Unmarked, it cannot reach the LAN (the forward
			// chain drops unmarked ESP from the WAN).
			t.st.InNotOurs++
			return Accept
		}
		s = t.learnIn(sv, srv, dst, e.SPI(), now)
		if s == nil {
			t.st.InUnknownSPI++
			if now-t.unknownLogged >= time.Second || t.unknownLogged == 0 {
				t.unknownLogged = now
				t.opt.Log.Debug("esp inbound SPI maps to no client, dropped", "server", srv, "spi", hexSPI(e.SPI()))
			}
			return Drop
		}
	}
	if s.wan != dst {
		// Not addressed to the WAN address this SA uses (for example sent
		// straight to a LAN address): not ours to rewrite.
		t.st.InNotOurs++
		return Accept
	}
	if s.provisional {
		if s = t.judge(s, now); s == nil {
			t.st.LearnHeld++
			return Drop
		}
	}
	s.lastIn = now
	s.pktsIn++
	s.bytesIn += uint64(len(ip))
	if s.complete != 0 {
		s.inAfter++
	}
	s.pair.lastSeen = now
	ip.SetDst(s.pair.client.Addr())
	t.st.InForwarded++
	return Forward
}

// learnOut records a new outbound SPI of client to srv. It completes the
// newest in-only SA of the pair if there is one (the server's SPI was seen
// first), or starts a new SA whose inbound half is learned later. nil means
// the tables are full.
func (t *Tracker) learnOut(client, srv ip4, spi uint32, w ip4, now time.Duration) *sa {
	p := t.getPair(client, srv, now)
	if p == nil {
		return nil
	}
	p.wan = w
	t.st.LearnedOut++
	if s := p.newest(func(s *sa) bool { return s.inOnly() && now-s.created < t.opt.LearnWindow }); s != nil {
		s.out = spi
		t.out[outKey{client, srv, spi}] = s
		t.completed(p, s, now)
		t.dirty = true
		t.opt.Log.Info("esp SA established", "client", client, "server", srv,
			"spi_out", hexSPI(spi), "spi_in", hexSPI(s.in), "learned", "outbound SPI after inbound")
		return s
	}
	if !t.roomSA(p.client, now) {
		return nil
	}
	s := &sa{pair: p, out: spi, wan: w, created: now}
	p.sas = append(p.sas, s)
	t.out[outKey{client, srv, spi}] = s
	t.countSA(p.client, 1)
	t.listPending(p)
	t.dirty = true
	t.opt.Log.Info("esp outbound SPI learned, learning inbound", "client", client, "server", srv, "spi_out", hexSPI(spi),
		"rekey", len(p.sas) > 1)
	return s
}

// learnIn binds an unseen inbound SPI of srv to the best candidate client
// (doc.go, "Learning an inbound SPI"). nil means no candidate (or no room).
// It looks only at the server's pending list, so its cost is the number of
// clients currently learning with that server, not the table size.
func (t *Tracker) learnIn(sv *server, srv, dst ip4, spi uint32, now time.Duration) *sa {
	var best *pair
	var ranks []int // classes of the candidates, for the ambiguity count
	kept := sv.pending[:0]
	for _, p := range sv.pending {
		if !t.pending(p, now) {
			p.listed = false
			continue
		}
		kept = append(kept, p)
		if p.wan != 0 && p.wan != dst {
			continue
		}
		c, _ := t.rank(p, now)
		ranks = append(ranks, c)
		if best == nil || t.better(p, best, now) {
			best = p
		}
	}
	// Ambiguous: another candidate had evidence of the same kind.
	n := 0
	if best != nil {
		bc, _ := t.rank(best, now)
		for _, c := range ranks {
			if c == bc {
				n++
			}
		}
	}
	clear(sv.pending[len(kept):])
	sv.pending = kept
	if best == nil {
		return nil
	}
	bestClass, _ := t.rank(best, now)
	p := best
	var s *sa
	if s = p.newest((*sa).outOnly); s != nil {
		s.in = spi
		t.completed(p, s, now)
	} else {
		if !t.roomSA(p.client, now) {
			return nil
		}
		s = &sa{pair: p, in: spi, wan: dst, created: now}
		p.sas = append(p.sas, s)
		t.countSA(p.client, 1)
	}
	if p.wan == 0 {
		p.wan = dst
	}
	s.ambiguous = n > 1
	// Another client could own this SPI (or an SA of this server is still
	// being confirmed): provisional until the timing evidence says whose.
	s.provisional = len(ranks) > 1 || t.hasProvisional(sv)
	s.votes = votes{}
	t.in[inKey{srv, spi}] = s
	p.learnedAt = now
	t.dirty = true
	t.st.LearnedIn++
	how := "only candidate"
	switch bc := bestClass; {
	case n > 1:
		t.st.Ambiguous++
		how = "first to send among clients sending on a half-learned SA"
		if bc != classFresh {
			how = "most recent IKE exchange among candidates"
		}
	case len(ranks) > 1 && bc == classFresh:
		how = "the only client sending on a half-learned SA"
	case len(ranks) > 1:
		how = "the only client with a recent child-SA exchange"
	}
	state := "established"
	if s.out == 0 {
		state = "learning outbound SPI"
	}
	t.opt.Log.Info("esp inbound SPI learned", "client", p.client, "server", srv, "spi_in", hexSPI(spi),
		"spi_out", hexSPI(s.out), "candidates", n, "rule", how, "state", state, "provisional", s.provisional,
		"server_answer_time", sv.answerTime())
	return s
}

// listPending puts p on its server's pending list (once).
func (t *Tracker) listPending(p *pair) {
	if p.listed {
		return
	}
	if sv := t.servers[p.server]; sv != nil {
		p.listed = true
		sv.pending = append(sv.pending, p)
	}
}

// pending reports whether p may own an inbound SPI not seen before: it has
// an SA whose inbound half is unknown, or a recent child-SA exchange after
// which no inbound SPI was learned.
func (t *Tracker) pending(p *pair, now time.Duration) bool {
	return p.newest((*sa).outOnly) != nil || t.ikePending(p, now)
}

func (t *Tracker) ikePending(p *pair, now time.Duration) bool {
	return p.childLast != 0 && p.learnedAt < p.childStart && now-p.childLast < t.opt.LearnWindow
}

// pendingSince is when p last became a candidate.
func (t *Tracker) pendingSince(p *pair, now time.Duration) time.Duration {
	var at time.Duration
	if s := p.newest((*sa).outOnly); s != nil {
		at = s.created
	}
	if t.ikePending(p, now) {
		at = max(at, p.childLast)
	}
	return at
}

// Candidate classes, strongest evidence first (doc.go, "Learning an
// inbound SPI").
const (
	classStale = iota // an out-only SA unanswered for longer than ReplyWindow
	classIKE          // a recent child-SA exchange, no ESP sent yet
	classFresh        // an out-only SA that started within ReplyWindow
)

// rank is a candidate's class and, within it, the time that orders it.
func (t *Tracker) rank(p *pair, now time.Duration) (class int, at time.Duration) {
	var fresh *sa
	for _, s := range p.sas {
		if s.outOnly() && now-s.created < t.opt.ReplyWindow && (fresh == nil || s.created < fresh.created) {
			fresh = s
		}
	}
	switch {
	case fresh != nil:
		return classFresh, fresh.created
	case t.ikePending(p, now):
		return classIKE, p.lastIKE
	}
	return classStale, t.pendingSince(p, now)
}

// better reports whether candidate a wins over b. A client that has just
// started sending on a half-learned SA beats one that only negotiated (a
// server answers ESP; it rarely starts it), and among those the one that
// started first wins (the server answers the first request first). Then a
// client whose child-SA exchange is the most recent; then an old
// unanswered SA, the most recent first; then the lower client address, so
// the choice never depends on map order.
func (t *Tracker) better(a, b *pair, now time.Duration) bool {
	ca, ta := t.rank(a, now)
	cb, tb := t.rank(b, now)
	if ca != cb {
		return ca > cb
	}
	if ta != tb {
		if ca == classFresh {
			return ta < tb
		}
		return ta > tb
	}
	return a.client < b.client
}

// completed marks s as having both SPIs, and older complete SAs of the same
// pair as replaced by it: they expire after RekeyGrace without traffic.
func (t *Tracker) completed(p *pair, s *sa, now time.Duration) {
	s.complete = now
	for _, o := range p.sas {
		if o != s && o.complete != 0 && o.rekeyedAt == 0 && o.created <= s.created {
			o.rekeyedAt = now
		}
	}
}

// newest returns the most recently created SA of p for which f holds.
func (p *pair) newest(f func(*sa) bool) *sa {
	var best *sa
	for _, s := range p.sas {
		if f(s) && (best == nil || s.created >= best.created) {
			best = s
		}
	}
	return best
}

// getPair returns the pair of client and srv, creating it; nil if the
// tables are full.
func (t *Tracker) getPair(client, srv ip4, now time.Duration) *pair {
	k := pairKey{client, srv}
	if p := t.pairs[k]; p != nil {
		return p
	}
	if !t.room(now, func() bool { return len(t.pairs) < t.opt.MaxSAs }) {
		return nil
	}
	p := &pair{client: client, server: srv, created: now, lastSeen: now}
	t.pairs[k] = p
	sv := t.servers[srv]
	if sv == nil {
		sv = &server{}
		t.servers[srv] = sv
	}
	sv.pairs = append(sv.pairs, p)
	return p
}

// roomSA reports whether one more SA of client fits: in the tables, and
// under the client's own cap (so one client cannot crowd out the others;
// SAs already learned are never evicted for new ones).
func (t *Tracker) roomSA(client ip4, now time.Duration) bool {
	if t.perClient[client] >= t.opt.MaxPerClient {
		t.st.ClientCap++
		if t.capLogged == 0 || now-t.capLogged >= 10*time.Second {
			t.capLogged = now
			t.opt.Log.Warn("esp client reached its SA cap: its new SAs are not learned", "client", client,
				"max_sas_per_client", t.opt.MaxPerClient)
		}
		return false
	}
	return t.room(now, func() bool { return t.nsa < t.opt.MaxSAs })
}

// countSA keeps the SA totals (all, and per client) in step.
func (t *Tracker) countSA(client ip4, d int) {
	t.nsa += d
	if n := t.perClient[client] + d; n > 0 {
		t.perClient[client] = n
	} else {
		delete(t.perClient, client)
	}
}

// room reports whether fits() holds, expiring idle entries first if it does
// not (at most every 100 ms, so a flood of new SPIs cannot turn every packet
// into a full scan).
func (t *Tracker) room(now time.Duration, fits func() bool) bool {
	if fits() {
		return true
	}
	if now-t.lastFullExpire >= 100*time.Millisecond {
		t.lastFullExpire = now
		t.Expire(now)
	}
	if fits() {
		return true
	}
	t.st.TableFull++
	if t.fullLogged == 0 || now-t.fullLogged >= 10*time.Second {
		t.fullLogged = now
		t.opt.Log.Warn("esp tables full: new SAs are not learned (raise ipsec.max_sas)", "max_sas", t.opt.MaxSAs)
	}
	return false
}

// Expire removes SAs, pairs and IKE SPIs that have been idle too long:
// IdleTimeout, or RekeyGrace for SAs a newer SA of the same pair replaced.
func (t *Tracker) Expire(now time.Duration) {
	for k, e := range t.ikeSPIs {
		if now-e.lastSeen > t.opt.IdleTimeout {
			delete(t.ikeSPIs, k)
			e.pair.ikeSPIs--
			t.dirty = true
		}
	}
	for k, p := range t.pairs {
		kept := p.sas[:0]
		for _, s := range p.sas {
			limit := t.opt.IdleTimeout
			if s.rekeyedAt != 0 {
				limit = t.opt.RekeyGrace
			}
			if now-s.lastUsed() <= limit {
				kept = append(kept, s)
				continue
			}
			t.removeSA(s)
			t.st.Expired++
			t.dirty = true
			t.opt.Log.Info("esp SA expired", "client", p.client, "server", p.server,
				"spi_out", hexSPI(s.out), "spi_in", hexSPI(s.in), "rekeyed", s.rekeyedAt != 0,
				"idle", (now - s.lastUsed()).Round(time.Second).String())
		}
		clear(p.sas[len(kept):])
		p.sas = kept
		if len(p.sas) == 0 && now-p.lastSeen > t.opt.IdleTimeout && p.ikeSPIs == 0 {
			delete(t.pairs, k)
			t.dropFromServer(p)
		}
	}
}

func (t *Tracker) removeSA(s *sa) {
	p := s.pair
	if s.out != 0 {
		if t.out[outKey{p.client, p.server, s.out}] == s {
			delete(t.out, outKey{p.client, p.server, s.out})
		}
	}
	if s.in != 0 {
		if t.in[inKey{p.server, s.in}] == s {
			delete(t.in, inKey{p.server, s.in})
		}
	}
	t.countSA(p.client, -1)
}

func (t *Tracker) dropFromServer(p *pair) {
	sv := t.servers[p.server]
	if sv == nil {
		return
	}
	sv.pairs = remove(sv.pairs, p)
	if p.listed {
		sv.pending = remove(sv.pending, p)
		p.listed = false
	}
	if len(sv.pairs) == 0 {
		delete(t.servers, p.server)
	}
}

// remove deletes p from list, not keeping the order.
func remove(list []*pair, p *pair) []*pair {
	for i, q := range list {
		if q == p {
			last := len(list) - 1
			list[i] = list[last]
			list[last] = nil
			return list[:last]
		}
	}
	return list
}

func hexSPI(v uint32) string {
	if v == 0 {
		return "?"
	}
	const digits = "0123456789abcdef"
	var b [10]byte
	b[0], b[1] = '0', 'x'
	for i := 9; i >= 2; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

func hexSPI64(v uint64) string {
	const digits = "0123456789abcdef"
	var b [18]byte
	b[0], b[1] = '0', 'x'
	for i := 17; i >= 2; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}
