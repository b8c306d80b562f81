// Command ipsecpeer is the IPsec peer of the ESP-multiplexer lab (test/esp):
// a toy IKEv2 that speaks the real header (RFC 7296 section 3.1) on UDP 500,
// so the router sees real exchange types, flags and IKE SPIs, and raw ESP
// (RFC 4303, IP protocol 50) with a separate pair of SPIs per Child SA, as
// real IPsec does. The Child SA SPIs travel inside an SK payload the router
// cannot (and does not) read; here it is cleartext, because nothing on the
// path may depend on it anyway.
//
//	ipsecpeer server  [--duration D] [--spi-base N]
//	ipsecpeer client  --server IP [--spi N] [--sport 500] [--count N] [--interval D]
//	                  [--esp-delay D] [--rekey] [--linger D] [--start-at UNIXMS] [--min-received N]
//	ipsecpeer inject  --from IP --to IP --spi N [--count N] [--marker M] [--gap D] [--spi-step N]
//
// Every subcommand prints one JSON object per line: servers an event per
// message and a "summary", clients and inject one "result". Clients exit 1
// when not every ESP packet came back on the right SPI, or a foreign one
// arrived.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var be = binary.BigEndian

// IKEv2 header constants (RFC 7296 section 3.1).
const (
	ikeHeaderLen    = 28
	ikeVersion2     = 0x20
	exSAInit        = 34
	exAuth          = 35
	exCreateChildSA = 36
	flagInitiator   = 0x08
	flagResponse    = 0x20
	payloadNonce    = 40
	payloadSK       = 46
)

type ikeMsg struct {
	ISPI, RSPI uint64
	Exchange   uint8
	Flags      uint8
	MsgID      uint32
	ChildSPI   uint32 // the sender's new inbound Child SA SPI (IKE_AUTH, CREATE_CHILD_SA)
	Marker     string
}

// encode builds the header and one payload: a Nonce carrying the marker in
// IKE_SA_INIT, an SK payload carrying ChildSPI and the marker otherwise.
func (m ikeMsg) encode() []byte {
	body := make([]byte, 4, 4+len(m.Marker)+16)
	be.PutUint32(body, m.ChildSPI)
	body = append(body, m.Marker...)
	for len(body) < 16 { // a nonce is at least 16 octets (RFC 7296 3.9)
		body = append(body, 0)
	}
	next := byte(payloadSK)
	if m.Exchange == exSAInit {
		next = payloadNonce
	}
	b := make([]byte, ikeHeaderLen+4+len(body))
	be.PutUint64(b[0:], m.ISPI)
	be.PutUint64(b[8:], m.RSPI)
	b[16] = next
	b[17] = ikeVersion2
	b[18] = m.Exchange
	b[19] = m.Flags
	be.PutUint32(b[20:], m.MsgID)
	be.PutUint32(b[24:], uint32(len(b)))
	be.PutUint16(b[30:], uint16(4+len(body)))
	copy(b[32:], body)
	return b
}

func parseIKE(b []byte) (ikeMsg, error) {
	var m ikeMsg
	if len(b) < ikeHeaderLen+8 || b[17] != ikeVersion2 || int(be.Uint32(b[24:])) != len(b) {
		return m, fmt.Errorf("not a lab IKEv2 message (%d bytes)", len(b))
	}
	m.ISPI, m.RSPI, m.Exchange, m.Flags, m.MsgID = be.Uint64(b), be.Uint64(b[8:]), b[18], b[19], be.Uint32(b[20:])
	pl := int(be.Uint16(b[30:]))
	if pl < 8 || ikeHeaderLen+pl > len(b) {
		return m, fmt.Errorf("payload length %d", pl)
	}
	body := b[32 : ikeHeaderLen+pl]
	m.ChildSPI = be.Uint32(body)
	m.Marker = strings.TrimRight(string(body[4:]), "\x00")
	return m, nil
}

// ESP (RFC 4303 section 2): SPI, sequence number, payload "VPNPT marker seq".
func espPacket(spi, seq uint32, marker string) []byte {
	pl := fmt.Sprintf("VPNPT %s %d", marker, seq)
	b := make([]byte, 8+len(pl))
	be.PutUint32(b, spi)
	be.PutUint32(b[4:], seq)
	copy(b[8:], pl)
	return b
}

func parseESP(b []byte) (spi, seq uint32, marker string, ok bool) {
	if len(b) < 8 || be.Uint32(b) == 0 {
		return 0, 0, "", false
	}
	f := strings.Fields(string(b[8:]))
	if len(f) != 3 || f[0] != "VPNPT" {
		return be.Uint32(b), be.Uint32(b[4:]), "", true
	}
	return be.Uint32(b), be.Uint32(b[4:]), f[1], true
}

// out prints JSON lines.
type out struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *out) emit(v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.enc.Encode(v)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ipsecpeer server|client|inject [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o := &out{enc: json.NewEncoder(os.Stdout)}
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(ctx, o, os.Args[2:])
	case "client":
		err = runClient(ctx, o, os.Args[2:])
	case "inject":
		err = runInject(ctx, o, os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ipsecpeer %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func random32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return be.Uint32(b[:]) | 0x01000000
}

func random64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return be.Uint64(b[:]) | 1
}

func parseUint(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 0, 32)
	return uint32(v), err
}

// ---- server ----

type childSA struct {
	serverIn, clientIn uint32
	peer               string // IKE peer address the SA belongs to
	in                 int
	// --delay-replies: answers to packets within delay of the SA's first
	// packet leave at first+delay (a slow first answer, so another
	// client's answer overtakes it).
	delay time.Duration
	first time.Time
}

type server struct {
	o        *out
	mu       sync.Mutex
	nextSPI  uint32
	byIn     map[uint32]*childSA // server inbound SPI -> SA
	replies  map[string][]byte   // ISPI/msgID -> cached response (retransmissions)
	rspis    map[uint64]uint64   // ISPI -> our RSPI
	unknown  int
	ikeIn    map[string]int // IKE messages per peer address:port
	espFroms map[string]int
	delays   map[uint32]time.Duration // --delay-replies, by server inbound SPI
}

func runServer(ctx context.Context, o *out, args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	dur := fs.Duration("duration", 5*time.Minute, "maximum lifetime")
	base := fs.String("spi-base", "0x5e000001", "first inbound SPI the server assigns")
	delayFlag := fs.String("delay-replies", "", "SPI=duration,...: hold the answers of that SA's first duration back until it ends")
	if err := fs.Parse(args); err != nil {
		return err
	}
	delays := map[uint32]time.Duration{}
	for _, kv := range strings.Split(*delayFlag, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		spi, err := parseUint(k)
		d, derr := time.ParseDuration(v)
		if !ok || err != nil || derr != nil || d <= 0 || d > time.Minute {
			return fmt.Errorf("--delay-replies %q", kv)
		}
		delays[spi] = d
	}
	first, err := parseUint(*base)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	s := &server{o: o, nextSPI: first, byIn: map[uint32]*childSA{}, replies: map[string][]byte{},
		rspis: map[uint64]uint64{}, ikeIn: map[string]int{}, espFroms: map[string]int{}, delays: delays}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 500})
	if err != nil {
		return err
	}
	ec, err := net.ListenIP("ip4:50", &net.IPAddr{})
	if err != nil {
		uc.Close()
		return err
	}
	go func() {
		<-ctx.Done()
		uc.Close()
		ec.Close()
	}()
	go s.serveIKE(uc)
	go s.serveESP(ec)
	o.emit(map[string]any{"event": "ready"})
	<-ctx.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	sas := map[string]int{}
	for _, sa := range s.byIn {
		sas[fmt.Sprintf("%#08x", sa.serverIn)] = sa.in
	}
	o.emit(map[string]any{"event": "summary", "ike_from": s.ikeIn, "esp_from": s.espFroms, "sas": sas, "unknown_spi": s.unknown})
	return nil
}

func (s *server) serveIKE(c *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		n, addr, err := c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		m, err := parseIKE(buf[:n])
		if err != nil || m.Flags&flagResponse != 0 {
			s.o.emit(map[string]any{"event": "bad-ike", "from": addr.String()})
			continue
		}
		reply := s.answer(m, addr)
		s.o.emit(map[string]any{"event": "ike", "from": addr.String(), "exchange": m.Exchange,
			"ispi": fmt.Sprintf("%#016x", m.ISPI), "msg_id": m.MsgID, "marker": m.Marker, "child_spi": fmt.Sprintf("%#08x", m.ChildSPI)})
		_, _ = c.WriteToUDP(reply, addr)
	}
}

// answer builds the response to a request; a retransmitted request gets the
// same response (RFC 7296 2.1), so a Child SA is created once.
func (s *server) answer(m ikeMsg, addr *net.UDPAddr) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ikeIn[addr.String()]++
	key := fmt.Sprintf("%x/%d/%d", m.ISPI, m.Exchange, m.MsgID)
	if r, ok := s.replies[key]; ok {
		return r
	}
	rspi, ok := s.rspis[m.ISPI]
	if !ok {
		rspi = random64()
		s.rspis[m.ISPI] = rspi
	}
	resp := ikeMsg{ISPI: m.ISPI, RSPI: rspi, Exchange: m.Exchange, Flags: flagResponse, MsgID: m.MsgID, Marker: m.Marker}
	if m.Exchange == exAuth || m.Exchange == exCreateChildSA {
		sa := &childSA{serverIn: s.nextSPI, clientIn: m.ChildSPI, peer: addr.IP.String(), delay: s.delays[s.nextSPI]}
		s.nextSPI++
		s.byIn[sa.serverIn] = sa
		resp.ChildSPI = sa.serverIn
	}
	r := resp.encode()
	s.replies[key] = r
	return r
}

func (s *server) serveESP(c *net.IPConn) {
	buf := make([]byte, 65536)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		spi, seq, marker, ok := parseESP(buf[:n])
		if !ok {
			continue
		}
		s.mu.Lock()
		sa := s.byIn[spi]
		var wait time.Duration
		if sa == nil {
			s.unknown++
		} else {
			sa.in++
			s.espFroms[addr.String()]++
			if sa.first.IsZero() {
				sa.first = time.Now()
			}
			wait = time.Until(sa.first.Add(sa.delay))
		}
		s.mu.Unlock()
		if sa == nil {
			s.o.emit(map[string]any{"event": "esp-unknown-spi", "from": addr.String(), "spi": fmt.Sprintf("%#08x", spi)})
			continue
		}
		// The reply goes to where the packet came from, on the client's
		// SPI: with NAT, every client's reply goes to the same address.
		reply := espPacket(sa.clientIn, seq, marker)
		if wait > 0 {
			time.AfterFunc(wait, func() { _, _ = c.WriteTo(reply, addr) })
			continue
		}
		_, _ = c.WriteTo(reply, addr)
	}
}

// ---- client ----

type phase struct {
	SPIIn    string `json:"spi_in"`
	SPIOut   string `json:"spi_out"`
	Sent     int    `json:"sent"`
	Received int    `json:"received"`
}

type result struct {
	Event       string  `json:"event"`
	OK          bool    `json:"ok"`
	SPort       int     `json:"sport"`
	ISPI        string  `json:"ispi"`
	Retransmits int     `json:"ike_retransmits"`
	Phases      []phase `json:"phases"`
	Foreign     int     `json:"foreign"`
	Error       string  `json:"error,omitempty"`
}

type client struct {
	uc       *net.UDPConn
	ec       *net.IPConn
	srv      net.IP
	marker   string
	retrans  time.Duration
	tries    int
	res      *result
	mu       sync.Mutex
	spiIn    uint32          // current inbound SPI
	got      map[string]bool // "spi/seq" received on our SPIs
	foreign  int
	ikeResps chan ikeMsg
}

func runClient(ctx context.Context, o *out, args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	server := fs.String("server", "", "server IPv4 address")
	spiFlag := fs.String("spi", "", "our inbound Child SA SPI (default random)")
	sport := fs.Int("sport", 500, "IKE source port")
	count := fs.Int("count", 20, "ESP packets per Child SA")
	interval := fs.Duration("interval", 20*time.Millisecond, "between ESP packets")
	espDelay := fs.Duration("esp-delay", 0, "wait after IKE_AUTH before the first ESP packet")
	espAt := fs.Int64("esp-start-at", 0, "send the first ESP packet at this Unix time in milliseconds (after IKE_AUTH)")
	rekey := fs.Bool("rekey", false, "after the first SA, CREATE_CHILD_SA and continue on the new one")
	linger := fs.Duration("linger", 0, "keep listening this long after the last reply")
	startAt := fs.Int64("start-at", 0, "start at this Unix time in milliseconds")
	retrans := fs.Duration("retransmit", time.Second, "IKE retransmission interval")
	marker := fs.String("marker", fmt.Sprintf("c%d", os.Getpid()), "payload marker (no spaces)")
	timeout := fs.Duration("timeout", 30*time.Second, "overall time limit")
	minRecv := fs.Int("min-received", 0, "replies per Child SA that count as success (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv := net.ParseIP(*server).To4()
	if srv == nil || *count < 1 || *count > 10000 {
		return errors.New("need --server IPv4 and 1 <= --count <= 10000")
	}
	spiIn := random32()
	if *spiFlag != "" {
		v, err := parseUint(*spiFlag)
		if err != nil || v == 0 {
			return fmt.Errorf("--spi %q", *spiFlag)
		}
		spiIn = v
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res := &result{Event: "result", SPort: *sport}
	defer func() { o.emit(res) }()
	fail := func(err error) error {
		res.Error = err.Error()
		return err
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: *sport})
	if err != nil {
		return fail(err)
	}
	defer uc.Close()
	ec, err := net.ListenIP("ip4:50", &net.IPAddr{})
	if err != nil {
		return fail(err)
	}
	defer ec.Close()
	go func() {
		<-ctx.Done()
		uc.Close()
		ec.Close()
	}()
	c := &client{uc: uc, ec: ec, srv: srv, marker: *marker, retrans: *retrans, tries: 8, res: res,
		got: map[string]bool{}, ikeResps: make(chan ikeMsg, 16)}
	go c.readIKE()
	go c.readESP()
	if *startAt > 0 {
		if d := time.Until(time.UnixMilli(*startAt)); d > 0 && !sleepCtx(ctx, d) {
			return fail(ctx.Err())
		}
	}
	ispi := random64()
	res.ISPI = fmt.Sprintf("%#016x", ispi)
	init, err := c.exchange(ctx, ikeMsg{ISPI: ispi, Exchange: exSAInit, Flags: flagInitiator, MsgID: 0, Marker: c.marker})
	if err != nil {
		return fail(fmt.Errorf("IKE_SA_INIT: %w", err))
	}
	rspi := init.RSPI
	c.setSPI(spiIn)
	auth, err := c.exchange(ctx, ikeMsg{ISPI: ispi, RSPI: rspi, Exchange: exAuth, Flags: flagInitiator, MsgID: 1, ChildSPI: spiIn, Marker: c.marker})
	if err != nil {
		return fail(fmt.Errorf("IKE_AUTH: %w", err))
	}
	if *espDelay > 0 && !sleepCtx(ctx, *espDelay) {
		return fail(ctx.Err())
	}
	if *espAt > 0 {
		if d := time.Until(time.UnixMilli(*espAt)); d > 0 && !sleepCtx(ctx, d) {
			return fail(ctx.Err())
		}
	}
	if err := c.traffic(ctx, spiIn, auth.ChildSPI, *count, *interval); err != nil {
		return fail(err)
	}
	if *rekey {
		newIn := random32()
		c.setSPI(newIn) // from now on only the new SPI counts as ours
		ch, err := c.exchange(ctx, ikeMsg{ISPI: ispi, RSPI: rspi, Exchange: exCreateChildSA, Flags: flagInitiator, MsgID: 2, ChildSPI: newIn, Marker: c.marker})
		if err != nil {
			return fail(fmt.Errorf("CREATE_CHILD_SA: %w", err))
		}
		if err := c.traffic(ctx, newIn, ch.ChildSPI, *count, *interval); err != nil {
			return fail(err)
		}
	}
	if *linger > 0 {
		sleepCtx(ctx, *linger)
	}
	c.mu.Lock()
	res.Foreign = c.foreign
	c.mu.Unlock()
	res.OK = res.Foreign == 0
	for _, p := range res.Phases {
		want := p.Sent
		if *minRecv > 0 && *minRecv < want {
			want = *minRecv
		}
		res.OK = res.OK && p.Received >= want
	}
	if !res.OK {
		return fail(fmt.Errorf("replies: phases %+v, %d foreign", res.Phases, res.Foreign))
	}
	return nil
}

func (c *client) setSPI(v uint32) {
	c.mu.Lock()
	c.spiIn = v
	c.mu.Unlock()
}

// exchange sends an IKE request and waits for its response, retransmitting
// like a real IKE daemon (RFC 7296 2.1) when none comes.
func (c *client) exchange(ctx context.Context, m ikeMsg) (ikeMsg, error) {
	req := m.encode()
	dst := &net.UDPAddr{IP: c.srv, Port: 500}
	for try := 0; try < c.tries; try++ {
		if try > 0 {
			c.res.Retransmits++
		}
		if _, err := c.uc.WriteToUDP(req, dst); err != nil {
			return ikeMsg{}, err
		}
		deadline := time.NewTimer(c.retrans)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				deadline.Stop()
				return ikeMsg{}, ctx.Err()
			case <-deadline.C:
				waiting = false
			case r := <-c.ikeResps:
				if r.ISPI == m.ISPI && r.MsgID == m.MsgID && r.Exchange == m.Exchange {
					deadline.Stop()
					return r, nil
				}
			}
		}
	}
	return ikeMsg{}, fmt.Errorf("no response after %d tries", c.tries)
}

func (c *client) readIKE() {
	buf := make([]byte, 65536)
	for {
		n, _, err := c.uc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		m, err := parseIKE(buf[:n])
		if err != nil || m.Flags&flagResponse == 0 || m.Marker != c.marker {
			c.mu.Lock()
			c.foreign++
			c.mu.Unlock()
			continue
		}
		select {
		case c.ikeResps <- m:
		default:
		}
	}
}

func (c *client) readESP() {
	buf := make([]byte, 65536)
	for {
		n, _, err := c.ec.ReadFrom(buf)
		if err != nil {
			return
		}
		spi, seq, marker, ok := parseESP(buf[:n])
		if !ok {
			continue
		}
		c.mu.Lock()
		if spi == c.spiIn && marker == c.marker {
			c.got[fmt.Sprintf("%x/%d", spi, seq)] = true
		} else {
			c.foreign++
		}
		c.mu.Unlock()
	}
}

// traffic sends count ESP packets on out and waits for the replies on in.
func (c *client) traffic(ctx context.Context, in, out uint32, count int, interval time.Duration) error {
	p := phase{SPIIn: fmt.Sprintf("%#08x", in), SPIOut: fmt.Sprintf("%#08x", out)}
	dst := &net.IPAddr{IP: c.srv}
	for i := 1; i <= count; i++ {
		if _, err := c.ec.WriteTo(espPacket(out, uint32(i), c.marker), dst); err != nil {
			return err
		}
		p.Sent++
		if !sleepCtx(ctx, interval) {
			break
		}
	}
	received := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := 0
		for i := 1; i <= count; i++ {
			if c.got[fmt.Sprintf("%x/%d", in, i)] {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(2 * time.Second)
	for received() < p.Sent && time.Now().Before(deadline) && sleepCtx(ctx, 10*time.Millisecond) {
	}
	p.Received = received()
	c.res.Phases = append(c.res.Phases, p)
	return nil
}

// ---- inject ----

func runInject(ctx context.Context, o *out, args []string) error {
	fs := flag.NewFlagSet("inject", flag.ContinueOnError)
	from := fs.String("from", "", "source IPv4 address (must be one of this host's)")
	to := fs.String("to", "", "destination IPv4 address")
	spiFlag := fs.String("spi", "", "SPI to use")
	count := fs.Int("count", 5, "packets")
	marker := fs.String("marker", "inject", "payload marker")
	gap := fs.Duration("gap", 10*time.Millisecond, "between packets")
	step := fs.Uint("spi-step", 0, "add this to the SPI for every packet (a flood of new SPIs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	src, dst := net.ParseIP(*from).To4(), net.ParseIP(*to).To4()
	spi, err := parseUint(*spiFlag)
	if src == nil || dst == nil || err != nil || spi == 0 || *count < 1 || *count > 10000 {
		return errors.New("need --from, --to, --spi and 1 <= --count <= 10000")
	}
	c, err := net.ListenIP("ip4:50", &net.IPAddr{IP: src})
	if err != nil {
		return err
	}
	defer c.Close()
	sent := 0
	for i := 1; i <= *count && ctx.Err() == nil; i++ {
		if _, err := c.WriteTo(espPacket(spi+uint32(i-1)*uint32(*step), uint32(i), *marker), &net.IPAddr{IP: dst}); err != nil {
			return err
		}
		sent++
		if *gap > 0 {
			sleepCtx(ctx, *gap)
		}
	}
	o.emit(map[string]any{"event": "result", "ok": true, "sent": sent})
	return nil
}
