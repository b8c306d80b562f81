package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// UDP protocols: IKE on 500, NAT-T (IKE after a non-ESP marker) on 4500, and
// L2TPv2 control messages on 1701.

var udpPorts = map[string]int{"ike": 500, "natt": 4500, "l2tp": 1701}

const (
	serverIKESPI    = 0x5e4e5e4e00000001
	serverTunnelID  = 0x5001
	serverNATTESPID = 0xe5e5000a
)

type udpServer struct {
	out *emitter
	mu  sync.Mutex
	in  map[string]int
	bad map[string]int
}

func runUDPServer(ctx context.Context, out *emitter, args []string) error {
	fs := flag.NewFlagSet("udp-server", flag.ContinueOnError)
	dur := fs.Duration("duration", 5*time.Minute, "maximum lifetime")
	protos := fs.String("protos", "ike,natt,l2tp", "comma-separated: ike, natt, l2tp")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := serverCtx(ctx, *dur)
	defer cancel()
	s := &udpServer{out: out, in: map[string]int{}, bad: map[string]int{}}
	if err := s.start(ctx, strings.Split(*protos, ",")); err != nil {
		return err
	}
	out.emit(event{Event: "ready", Proto: "udp"})
	<-ctx.Done()
	s.summary()
	return nil
}

func (s *udpServer) start(ctx context.Context, protos []string) error {
	var conns []*net.UDPConn
	for _, p := range protos {
		port, ok := udpPorts[p]
		if !ok {
			return fmt.Errorf("unknown protocol %q", p)
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return err
		}
		conns = append(conns, c)
		go s.serve(p, c)
	}
	go func() {
		<-ctx.Done()
		for _, c := range conns {
			c.Close()
		}
	}()
	return nil
}

func (s *udpServer) serve(proto string, c *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		n, addr, err := c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		reply, ev, err := udpAnswer(proto, buf[:n])
		ev.Proto, ev.From = proto, addr.String()
		s.mu.Lock()
		if err != nil {
			s.bad[proto]++
		} else {
			s.in[proto]++
		}
		s.mu.Unlock()
		if err != nil {
			ev.Event, ev.Error = "bad", err.Error()
			s.out.emit(ev)
			continue
		}
		s.out.emit(ev)
		if reply != nil {
			_, _ = c.WriteToUDP(reply, addr)
		}
	}
}

// udpAnswer validates one datagram and builds the reply.
func udpAnswer(proto string, b []byte) ([]byte, event, error) {
	switch proto {
	case "ike":
		m, err := parseIKE(b)
		if err != nil {
			return nil, event{}, err
		}
		return ikeReply(m), ikeEvent("ike", m), nil
	case "natt":
		if len(b) == 1 && b[0] == 0xff {
			return nil, event{Event: "keepalive"}, nil
		}
		if len(b) < nonESPMarkerLen {
			return nil, event{}, fmt.Errorf("natt: %d bytes", len(b))
		}
		if be.Uint32(b) != 0 { // ESP in UDP (RFC 3948 2.1)
			spi, seq, pl, err := parseESP(b)
			if err != nil {
				return nil, event{}, err
			}
			marker, _, _ := parsePayload(pl)
			return esp(serverNATTESPID, seq, pl), event{Event: "esp-in-udp", SPI: fmt.Sprintf("%#08x", spi), Seq: int64p(int64(seq)), Marker: marker}, nil
		}
		m, err := parseIKE(b[nonESPMarkerLen:])
		if err != nil {
			return nil, event{}, err
		}
		return append(make([]byte, nonESPMarkerLen), ikeReply(m)...), ikeEvent("natt", m), nil
	case "l2tp":
		m, err := parseL2TP(b)
		if err != nil {
			return nil, event{}, err
		}
		if m.Type != l2tpSCCRQ || m.TunnelID != 0 || m.AssignedTunnel == 0 {
			return nil, event{}, fmt.Errorf("l2tp: want SCCRQ on tunnel 0 with an Assigned Tunnel ID, got type %d tunnel %d assigned %d", m.Type, m.TunnelID, m.AssignedTunnel)
		}
		marker, seq, _ := parsePayload([]byte(m.HostName))
		reply := l2tpControl(l2tpMsg{TunnelID: m.AssignedTunnel, Ns: 0, Nr: m.Ns + 1, Type: l2tpSCCRP,
			AssignedTunnel: serverTunnelID, HostName: m.HostName})
		return reply, event{Event: "l2tp", CallID: intp(int(m.AssignedTunnel)), Seq: int64p(int64(seq)), Marker: marker}, nil
	}
	return nil, event{}, fmt.Errorf("unknown protocol %q", proto)
}

func ikeReply(m ikeMsg) []byte {
	return ikeMessage(ikeMsg{ISPI: m.ISPI, RSPI: serverIKESPI, Flags: ikeFlagResponse, MsgID: m.MsgID, Nonce: m.Nonce})
}

func ikeEvent(name string, m ikeMsg) event {
	marker, _, _ := parsePayload(m.Nonce)
	return event{Event: name, SPI: fmt.Sprintf("%#016x", m.ISPI), Seq: int64p(int64(m.MsgID)), Marker: marker}
}

func (s *udpServer) summary() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out.emit(struct {
		Event string         `json:"event"`
		Proto string         `json:"proto"`
		In    map[string]int `json:"in"`
		Bad   map[string]int `json:"bad"`
	}{"summary", "udp", s.in, s.bad})
}

type udpResult struct {
	Event    string `json:"event"` // "result"
	Proto    string `json:"proto"`
	OK       bool   `json:"ok"`
	SPort    int    `json:"sport"`
	Sent     int    `json:"sent"`
	Received int    `json:"received"`
	Foreign  int    `json:"foreign"`
	Invalid  int    `json:"invalid"`
	Error    string `json:"error,omitempty"`
}

func runUDPClient(ctx context.Context, out *emitter, args []string) error {
	fs := flag.NewFlagSet("udp-client", flag.ContinueOnError)
	server := fs.String("server", "", "server IPv4 address")
	proto := fs.String("proto", "ike", "ike, natt or l2tp")
	sport := fs.Int("sport", -1, "source port (default: the protocol's port; 0: any)")
	count := fs.Int("count", 10, "datagrams to send")
	interval := fs.Duration("interval", 10*time.Millisecond, "between datagrams")
	wait := fs.Duration("wait", 2*time.Second, "how long to wait for the last replies")
	timeout := fs.Duration("timeout", 10*time.Second, "overall time limit")
	marker := fs.String("marker", "", "payload marker (no spaces)")
	tunnelID := fs.Uint("tunnel-id", 0x1001, "l2tp: our Assigned Tunnel ID")
	if err := fs.Parse(args); err != nil {
		return err
	}
	scaled(wait, timeout)
	port, ok := udpPorts[*proto]
	srv := net.ParseIP(*server).To4()
	if !ok || srv == nil || *count < 0 || *count > 10000 || *tunnelID == 0 || *tunnelID > 0xffff {
		return fmt.Errorf("need --server IPv4, --proto ike|natt|l2tp, 0 <= --count <= 10000, 0 < --tunnel-id <= 65535")
	}
	if *sport < 0 {
		*sport = port
	}
	if *marker == "" {
		*marker = defaultMarker(*proto)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res := udpResult{Event: "result", Proto: *proto, SPort: *sport}
	defer func() { out.emit(res) }()

	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: *sport})
	if err != nil {
		res.Error = err.Error()
		return err
	}
	defer c.Close()
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	var spiBuf [8]byte
	if _, err := rand.Read(spiBuf[:]); err != nil {
		return err
	}
	ispi := be.Uint64(spiBuf[:]) | 1

	build := func(seq int) []byte {
		pl := payload(*marker, seq)
		switch *proto {
		case "ike":
			return ikeMessage(ikeMsg{ISPI: ispi, Flags: ikeFlagInitiator, MsgID: uint32(seq), Nonce: pl})
		case "natt":
			return append(make([]byte, nonESPMarkerLen), ikeMessage(ikeMsg{ISPI: ispi, Flags: ikeFlagInitiator, MsgID: uint32(seq), Nonce: pl})...)
		default:
			return l2tpControl(l2tpMsg{Ns: uint16(seq), Type: l2tpSCCRQ, AssignedTunnel: uint16(*tunnelID), HostName: string(pl)})
		}
	}
	// check returns the sequence number a valid reply answers.
	check := func(b []byte) (int, string, error) {
		switch *proto {
		case "ike", "natt":
			if *proto == "natt" {
				if len(b) < nonESPMarkerLen || be.Uint32(b) != 0 {
					return 0, "", errors.New("no non-ESP marker")
				}
				b = b[nonESPMarkerLen:]
			}
			m, err := parseIKE(b)
			if err != nil {
				return 0, "", err
			}
			if m.ISPI != ispi || m.RSPI == 0 || m.Flags&ikeFlagResponse == 0 {
				return 0, "", fmt.Errorf("ike reply: SPIs %#x/%#x flags %#x", m.ISPI, m.RSPI, m.Flags)
			}
			mk, seq, _ := parsePayload(m.Nonce)
			if seq != int(m.MsgID) {
				return 0, mk, fmt.Errorf("ike reply: message ID %d for payload %d", m.MsgID, seq)
			}
			return seq, mk, nil
		default:
			m, err := parseL2TP(b)
			if err != nil {
				return 0, "", err
			}
			mk, seq, _ := parsePayload([]byte(m.HostName))
			if m.Type != l2tpSCCRP || m.TunnelID != uint16(*tunnelID) || m.AssignedTunnel == 0 {
				return 0, mk, fmt.Errorf("l2tp reply: type %d tunnel %d assigned %d", m.Type, m.TunnelID, m.AssignedTunnel)
			}
			return seq, mk, nil
		}
	}

	rep := newReplies()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			seq, mk, err := check(buf[:n])
			switch {
			case err != nil && mk == *marker:
				rep.malformed()
			case err != nil || mk != *marker:
				rep.alien()
			default:
				rep.answered(seq)
			}
		}
	}()
	dst := &net.UDPAddr{IP: srv, Port: port}
	send := func(i int) error {
		_, err := c.WriteToUDP(build(i), dst)
		return err
	}
	sent, err := rep.exchange(ctx, *count, *interval, *wait, send)
	res.Sent = sent
	if err != nil {
		res.Error = err.Error()
		return err
	}
	res.Received, res.Foreign, res.Invalid = rep.counts()
	res.OK = res.Received == res.Sent && res.Foreign == 0 && res.Invalid == 0
	if !res.OK {
		res.Error = fmt.Sprintf("received %d of %d %s replies (%d foreign, %d invalid)", res.Received, res.Sent, *proto, res.Foreign, res.Invalid)
		return errors.New(res.Error)
	}
	return nil
}
