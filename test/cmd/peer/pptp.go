package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

const pptpPort = 1723

// ---- server ----

// pptpCall is one call the server accepted.
type pptpCall struct {
	serverID uint16 // the Call ID the server assigned (OCRP Call ID)
	peerID   uint16 // the Call ID from the OCRQ as it arrived (after NAT)
	ctrlFrom string // remote address of the control connection
	greIn    int
}

type pptpServer struct {
	out *emitter

	mu       sync.Mutex
	nextID   uint16
	calls    map[uint16]*pptpCall // by server Call ID
	greIn    int
	greStray int // GRE with an unknown Call ID or malformed
}

func newPPTPServer(out *emitter) *pptpServer {
	return &pptpServer{out: out, nextID: 0x7001, calls: map[uint16]*pptpCall{}}
}

func runPPTPServer(ctx context.Context, out *emitter, args []string) error {
	fs := flag.NewFlagSet("pptp-server", flag.ContinueOnError)
	dur := fs.Duration("duration", 5*time.Minute, "maximum lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := serverCtx(ctx, *dur)
	defer cancel()
	s := newPPTPServer(out)
	if err := s.start(ctx); err != nil {
		return err
	}
	out.emit(event{Event: "ready", Proto: "pptp"})
	<-ctx.Done()
	s.summary()
	return nil
}

// start opens TCP 1723 and the GRE socket and serves both until ctx ends.
func (s *pptpServer) start(ctx context.Context) error {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{Port: pptpPort})
	if err != nil {
		return err
	}
	gre, err := net.ListenIP("ip4:47", &net.IPAddr{})
	if err != nil {
		ln.Close()
		return err
	}
	go func() {
		<-ctx.Done()
		ln.Close()
		gre.Close()
	}()
	go func() {
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			go s.serveControl(ctx, c)
		}
	}()
	go s.serveGRE(gre)
	return nil
}

func (s *pptpServer) serveControl(ctx context.Context, c *net.TCPConn) {
	defer c.Close()
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	from := c.RemoteAddr().String()
	s.out.emit(event{Event: "control-open", Proto: "pptp", From: from})
	r := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		msg, typ, err := readPPTP(r)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.out.emit(event{Event: "control-close", Proto: "pptp", From: from, Detail: err.Error()})
			}
			return
		}
		var reply []byte
		switch typ {
		case pptpSCCRQ:
			if v := be.Uint16(msg[offSCCProtoVer:]); v != pptpProtocolVersion {
				s.out.emit(event{Event: "sccrq", Proto: "pptp", From: from, Error: fmt.Sprintf("protocol version %#04x", v)})
			} else {
				s.out.emit(event{Event: "sccrq", Proto: "pptp", From: from})
			}
			reply = sccrp("lab-pptp-server")
		case pptpOCRQ:
			peer := be.Uint16(msg[offOCRQCallID:])
			s.mu.Lock()
			id := s.nextID
			s.nextID++
			s.calls[id] = &pptpCall{serverID: id, peerID: peer, ctrlFrom: from}
			s.mu.Unlock()
			s.out.emit(event{Event: "ocrq", Proto: "pptp", From: from, CallID: intp(int(peer)), ServerCallID: intp(int(id))})
			reply = ocrp(id, peer)
		case pptpEchoQ:
			reply = echoReply(be.Uint32(msg[offEchoID:]))
		case pptpCCRQ:
			peer := be.Uint16(msg[offClearCallID:])
			var found *pptpCall
			s.mu.Lock()
			for id, call := range s.calls {
				if call.peerID == peer && call.ctrlFrom == from {
					found = call
					delete(s.calls, id)
					break
				}
			}
			s.mu.Unlock()
			if found == nil {
				s.out.emit(event{Event: "call-clear", Proto: "pptp", From: from, CallID: intp(int(peer)), Error: "no such call"})
				continue
			}
			s.out.emit(event{Event: "call-clear", Proto: "pptp", From: from, CallID: intp(int(peer)), ServerCallID: intp(int(found.serverID))})
			reply = callDisconnect(found.serverID)
		case pptpStopQ:
			s.out.emit(event{Event: "stop", Proto: "pptp", From: from})
			_, _ = c.Write(stopReply())
			return
		case pptpSLI, pptpWEN:
			continue
		default:
			s.out.emit(event{Event: "unexpected", Proto: "pptp", From: from, Detail: fmt.Sprintf("control type %d", typ)})
			continue
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// serveGRE echoes each GRE packet of a known call back to its source, keyed
// with the Call ID the server learned for that call.
func (s *pptpServer) serveGRE(conn *net.IPConn) {
	buf := make([]byte, 65536)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		f, err := parseGRE(buf[:n])
		if err != nil {
			s.mu.Lock()
			s.greStray++
			s.mu.Unlock()
			s.out.emit(event{Event: "gre-bad", Proto: "gre", From: addr.String(), Error: err.Error()})
			continue
		}
		marker, seq, _ := parsePayload(f.Payload)
		s.mu.Lock()
		call := s.calls[f.CallID]
		s.greIn++
		var peer uint16
		if call != nil {
			call.greIn++
			peer = call.peerID
		} else {
			s.greStray++
		}
		s.mu.Unlock()
		ev := event{Event: "gre", Proto: "gre", From: addr.String(), ServerCallID: intp(int(f.CallID)), Marker: marker, Seq: int64p(int64(seq))}
		if call == nil {
			ev.Error = "unknown call"
			s.out.emit(ev)
			continue
		}
		ev.CallID = intp(int(peer))
		s.out.emit(ev)
		_, _ = conn.WriteTo(greV1(peer, f.Seq, f.Payload), addr)
	}
}

func (s *pptpServer) summary() {
	type callSummary struct {
		ServerCallID int    `json:"server_call_id"`
		CallID       int    `json:"call_id"`
		From         string `json:"from"`
		GREIn        int    `json:"gre_in"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := []callSummary{}
	for _, c := range s.calls {
		calls = append(calls, callSummary{int(c.serverID), int(c.peerID), c.ctrlFrom, c.greIn})
	}
	s.out.emit(struct {
		Event    string        `json:"event"`
		Proto    string        `json:"proto"`
		Calls    []callSummary `json:"calls"`
		GREIn    int           `json:"gre_in"`
		GREStray int           `json:"gre_stray"`
	}{"summary", "pptp", calls, s.greIn, s.greStray})
}

// ---- client ----

type pptpCallResult struct {
	ServerCallID int `json:"server_call_id"`
	// PeerCallIDInReply is the Peer's Call ID of the Outgoing-Call-Reply as
	// the client received it; through a correct NAT it equals the client's
	// own Call ID again.
	PeerCallIDInReply int `json:"peer_call_id_in_reply"`
	Sent              int `json:"sent"`
	Received          int `json:"received"`
	// Cleared: the Call-Clear-Request was answered by a
	// Call-Disconnect-Notify. CDNCallID is that notify's Call ID as received:
	// RFC 2637 2.13 says it is the PAC's Call ID, but Linux's nf_nat_pptp
	// rewrites it like a Peer's Call ID (to the client's own Call ID).
	Cleared   bool `json:"cleared"`
	CDNCallID int  `json:"cdn_call_id"`
}

type pptpResult struct {
	Event     string           `json:"event"` // "result"
	OK        bool             `json:"ok"`
	Connected bool             `json:"connected"`
	CallID    int              `json:"call_id"`
	Calls     []pptpCallResult `json:"calls"`
	Sent      int              `json:"sent"`
	Received  int              `json:"received"`
	// Foreign counts GRE packets with our Call ID that carry another
	// client's marker: a reply delivered to the wrong client.
	Foreign int `json:"foreign"`
	// WrongKey counts packets with our marker but another Call ID.
	WrongKey int    `json:"wrong_key"`
	EchoOK   bool   `json:"echo_ok"`
	Error    string `json:"error,omitempty"`
}

type greCounter struct {
	mu       sync.Mutex
	callID   uint16
	marker   string // current call's marker
	received map[int]bool
	foreign  int
	wrongKey int
}

func (g *greCounter) expect(marker string) {
	g.mu.Lock()
	g.marker, g.received = marker, map[int]bool{}
	g.mu.Unlock()
}

func (g *greCounter) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.received)
}

func (g *greCounter) run(conn *net.IPConn, base string) {
	buf := make([]byte, 65536)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		f, err := parseGRE(buf[:n])
		if err != nil {
			continue
		}
		m, seq, ok := parsePayload(f.Payload)
		ours := ok && len(m) >= len(base) && m[:len(base)] == base
		g.mu.Lock()
		switch {
		case f.CallID == g.callID && m == g.marker:
			g.received[seq] = true
		case f.CallID == g.callID && !ours:
			g.foreign++
		case f.CallID != g.callID && ours:
			g.wrongKey++
		}
		g.mu.Unlock()
	}
}

func runPPTPClient(ctx context.Context, out *emitter, args []string) error {
	fs := flag.NewFlagSet("pptp-client", flag.ContinueOnError)
	server := fs.String("server", "", "server IPv4 address")
	callID := fs.Uint("call-id", 1, "our Call ID (two clients may use the same one)")
	count := fs.Int("count", 10, "GRE packets per call")
	interval := fs.Duration("interval", 10*time.Millisecond, "between GRE packets")
	timeout := fs.Duration("timeout", 10*time.Second, "overall time limit")
	connTimeout := fs.Duration("connect-timeout", 3*time.Second, "TCP connect and per-reply limit")
	wait := fs.Duration("wait", 2*time.Second, "how long to wait for the last GRE replies")
	marker := fs.String("marker", defaultMarker("pptp"), "payload marker (no spaces)")
	calls := fs.Int("calls", 1, "calls to open one after the other on the control connection")
	doClear := fs.Bool("clear", true, "clear each call and stop the control connection at the end")
	waitStdin := fs.Bool("wait-stdin", false, "after the first call is up, print a call-up event and wait for a line on stdin before sending GRE")
	greOnly := fs.Bool("gre-only", false, "no control connection: just send GRE with --server-call-id")
	serverCallID := fs.Uint("server-call-id", 0, "with --gre-only: the Call ID to put in GRE keys")
	if err := fs.Parse(args); err != nil {
		return err
	}
	scaled(timeout, connTimeout, wait)
	srv := net.ParseIP(*server).To4()
	if srv == nil || *callID > 0xffff || *serverCallID > 0xffff || *count < 0 || *count > 10000 || *calls < 1 || *calls > 100 {
		return fmt.Errorf("need --server IPv4, --call-id/--server-call-id <= 65535, 0 <= --count <= 10000, 1 <= --calls <= 100")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	res := pptpResult{Event: "result", CallID: int(*callID), Calls: []pptpCallResult{}}
	defer func() { out.emit(res) }()
	fail := func(err error) error {
		res.Error = err.Error()
		return err
	}

	gre, err := net.ListenIP("ip4:47", &net.IPAddr{})
	if err != nil {
		return fail(err)
	}
	go func() {
		<-ctx.Done()
		gre.Close()
	}()
	defer gre.Close()
	g := &greCounter{callID: uint16(*callID)}
	go g.run(gre, *marker)

	sendCall := func(serverID uint16, callMarker string) (pptpCallResult, error) {
		cr := pptpCallResult{ServerCallID: int(serverID)}
		g.expect(callMarker)
		dst := &net.IPAddr{IP: srv}
		for i := 0; i < *count; i++ {
			if _, err := gre.WriteTo(greV1(serverID, uint32(i+1), payload(callMarker, i+1)), dst); err != nil {
				return cr, fmt.Errorf("send GRE: %w", err)
			}
			cr.Sent++
			if !sleepCtx(ctx, *interval) {
				break
			}
		}
		deadline := time.Now().Add(*wait)
		for g.count() < cr.Sent && time.Now().Before(deadline) && sleepCtx(ctx, 10*time.Millisecond) {
		}
		cr.Received = g.count()
		return cr, nil
	}

	finish := func() error {
		g.mu.Lock()
		res.Foreign, res.WrongKey = g.foreign, g.wrongKey
		g.mu.Unlock()
		for _, c := range res.Calls {
			res.Sent += c.Sent
			res.Received += c.Received
		}
		res.OK = res.Received == res.Sent && res.Foreign == 0 && res.WrongKey == 0
		if !res.OK {
			return fmt.Errorf("received %d of %d GRE replies (%d foreign, %d with a wrong key)", res.Received, res.Sent, res.Foreign, res.WrongKey)
		}
		return nil
	}

	if *greOnly {
		cr, err := sendCall(uint16(*serverCallID), *marker+".0")
		res.Calls = append(res.Calls, cr)
		if err != nil {
			return fail(err)
		}
		if err := finish(); err != nil {
			return fail(err)
		}
		return nil
	}

	d := net.Dialer{Timeout: *connTimeout}
	conn, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(srv.String(), fmt.Sprint(pptpPort)))
	if err != nil {
		return fail(fmt.Errorf("connect: %w", err))
	}
	defer conn.Close()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	res.Connected = true
	r := bufio.NewReader(conn)
	exchange := func(req []byte, want uint16) ([]byte, error) {
		_ = conn.SetDeadline(time.Now().Add(*connTimeout))
		if _, err := conn.Write(req); err != nil {
			return nil, err
		}
		for {
			msg, typ, err := readPPTP(r)
			if err != nil {
				return nil, err
			}
			if typ == want {
				return msg, nil
			}
			if typ == pptpEchoQ { // the server may probe us; answer and keep waiting
				if _, err := conn.Write(echoReply(be.Uint32(msg[offEchoID:]))); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("got control type %d, want %d", typ, want)
		}
	}

	msg, err := exchange(sccrq("lab-pptp-client"), pptpSCCRP)
	if err != nil {
		return fail(fmt.Errorf("start control connection: %w", err))
	}
	if msg[offSCCPResult] != 1 {
		return fail(fmt.Errorf("start control connection: result code %d", msg[offSCCPResult]))
	}
	for call := 0; call < *calls; call++ {
		msg, err := exchange(ocrq(uint16(*callID), uint16(call+1)), pptpOCRP)
		if err != nil {
			return fail(fmt.Errorf("outgoing call %d: %w", call+1, err))
		}
		if msg[offOCRPResult] != 1 {
			return fail(fmt.Errorf("outgoing call %d: result code %d", call+1, msg[offOCRPResult]))
		}
		serverID := be.Uint16(msg[offOCRPCallID:])
		peer := be.Uint16(msg[offOCRPPeerCallID:])
		if call == 0 && *waitStdin {
			out.emit(event{Event: "call-up", Proto: "pptp", CallID: intp(int(*callID)), ServerCallID: intp(int(serverID))})
			if err := waitLine(ctx); err != nil {
				return fail(fmt.Errorf("waiting for stdin: %w", err))
			}
		}
		cr, err := sendCall(serverID, fmt.Sprintf("%s.%d", *marker, call))
		cr.PeerCallIDInReply = int(peer)
		if err != nil {
			res.Calls = append(res.Calls, cr)
			return fail(err)
		}
		if *doClear || call+1 < *calls {
			cdn, err := exchange(callClear(uint16(*callID)), pptpCDN)
			if err != nil {
				res.Calls = append(res.Calls, cr)
				return fail(fmt.Errorf("clear call %d: %w", call+1, err))
			}
			cr.Cleared, cr.CDNCallID = true, int(be.Uint16(cdn[offClearCallID:]))
		}
		res.Calls = append(res.Calls, cr)
		if peer != uint16(*callID) {
			return fail(fmt.Errorf("Outgoing-Call-Reply carries Peer's Call ID %d, want our %d", peer, *callID))
		}
	}
	if msg, err := exchange(echoRequest(0x1234abcd), pptpEchoP); err == nil {
		res.EchoOK = be.Uint32(msg[offEchoID:]) == 0x1234abcd && msg[offEchoResult] == 1
	}
	if *doClear {
		if _, err := exchange(stopRequest(), pptpStopP); err != nil {
			return fail(fmt.Errorf("stop control connection: %w", err))
		}
	}
	if err := finish(); err != nil {
		return fail(err)
	}
	if !res.EchoOK {
		res.OK = false
		return fail(errors.New("no valid Echo-Reply"))
	}
	return nil
}

// sleepCtx sleeps d and reports whether ctx is still live.
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

// sendThenWait sends count packets (send(i) for i = 1..count), interval
// apart, then waits up to wait for received() to reach the number sent. It
// returns how many were sent; a send error ends it early.
func sendThenWait(ctx context.Context, count int, interval, wait time.Duration, send func(i int) error, received func() int) (int, error) {
	sent := 0
	for i := 1; i <= count; i++ {
		if err := send(i); err != nil {
			return sent, err
		}
		sent++
		if !sleepCtx(ctx, interval) {
			break
		}
	}
	deadline := time.Now().Add(wait)
	for received() < sent && time.Now().Before(deadline) && sleepCtx(ctx, 10*time.Millisecond) {
	}
	return sent, nil
}

// waitLine waits for one line on stdin, bounded by ctx.
func waitLine(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(os.Stdin).ReadString('\n')
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
