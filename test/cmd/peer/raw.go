package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"sync"
	"time"
)

// Raw IPsec protocols: ESP (IP protocol 50) and AH (51). Without kernel ESP
// support nothing else consumes them, so raw sockets see every packet.

type rawProto struct {
	name    string
	network string
	spi     uint32 // the server's default SPI
	build   func(spi, seq uint32, payload []byte) []byte
	parse   func(b []byte) (spi, seq uint32, payload []byte, err error)
}

func rawProtoFor(name string) rawProto {
	if name == "ah" {
		return rawProto{"ah", "ip4:51", 0xa4a40001, ah, parseAH}
	}
	return rawProto{"esp", "ip4:50", 0xe5e50001, esp, parseESP}
}

type rawServer struct {
	p   rawProto
	spi uint32
	out *emitter

	mu    sync.Mutex
	in    int
	bad   int
	froms map[string]int
}

func rawServerFunc(name string) func(context.Context, *emitter, []string) error {
	return func(ctx context.Context, out *emitter, args []string) error {
		p := rawProtoFor(name)
		fs := flag.NewFlagSet(name+"-server", flag.ContinueOnError)
		dur := fs.Duration("duration", 5*time.Minute, "maximum lifetime")
		spi := fs.Uint("spi", uint(p.spi), "the server's own SPI, used in replies")
		if err := fs.Parse(args); err != nil {
			return err
		}
		ctx, cancel := serverCtx(ctx, *dur)
		defer cancel()
		s := &rawServer{p: p, spi: uint32(*spi), out: out, froms: map[string]int{}}
		if err := s.start(ctx); err != nil {
			return err
		}
		out.emit(event{Event: "ready", Proto: name})
		<-ctx.Done()
		s.summary()
		return nil
	}
}

func (s *rawServer) start(ctx context.Context) error {
	conn, err := net.ListenIP(s.p.network, &net.IPAddr{})
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, addr, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			spi, seq, pl, err := s.p.parse(buf[:n])
			if err != nil {
				s.mu.Lock()
				s.bad++
				s.mu.Unlock()
				s.out.emit(event{Event: "bad", Proto: s.p.name, From: addr.String(), Error: err.Error()})
				continue
			}
			marker, _, _ := parsePayload(pl)
			s.mu.Lock()
			s.in++
			s.froms[addr.String()]++
			s.mu.Unlock()
			s.out.emit(event{Event: s.p.name, Proto: s.p.name, From: addr.String(), SPI: fmt.Sprintf("%#08x", spi), Seq: int64p(int64(seq)), Marker: marker})
			_, _ = conn.WriteTo(s.p.build(s.spi, seq, pl), addr)
		}
	}()
	return nil
}

func (s *rawServer) summary() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out.emit(struct {
		Event string         `json:"event"`
		Proto string         `json:"proto"`
		In    int            `json:"in"`
		Bad   int            `json:"bad"`
		Froms map[string]int `json:"froms"`
	}{"summary", s.p.name, s.in, s.bad, s.froms})
}

// rawResult is what esp-client and ah-client print.
type rawResult struct {
	Event    string `json:"event"` // "result"
	Proto    string `json:"proto"`
	OK       bool   `json:"ok"`
	SPI      string `json:"spi"`
	Sent     int    `json:"sent"`
	Received int    `json:"received"`
	ReplySPI string `json:"reply_spi,omitempty"`
	Foreign  int    `json:"foreign"`
	Error    string `json:"error,omitempty"`
}

func rawClientFunc(name string) func(context.Context, *emitter, []string) error {
	return func(ctx context.Context, out *emitter, args []string) error {
		p := rawProtoFor(name)
		fs := flag.NewFlagSet(name+"-client", flag.ContinueOnError)
		server := fs.String("server", "", "server IPv4 address")
		spi := fs.Uint("spi", 0x100, "our SPI")
		count := fs.Int("count", 10, "packets to send")
		interval := fs.Duration("interval", 10*time.Millisecond, "between packets")
		wait := fs.Duration("wait", 2*time.Second, "how long to wait for the last replies")
		timeout := fs.Duration("timeout", 10*time.Second, "overall time limit")
		marker := fs.String("marker", defaultMarker(name), "payload marker (no spaces)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		scaled(wait, timeout)
		srv := net.ParseIP(*server).To4()
		if srv == nil || *spi == 0 || *spi > 0xffffffff || *count < 0 || *count > 10000 {
			return fmt.Errorf("need --server IPv4, 0 < --spi < 2^32, 0 <= --count <= 10000")
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		res := rawResult{Event: "result", Proto: name, SPI: fmt.Sprintf("%#08x", *spi)}
		defer func() { out.emit(res) }()

		conn, err := net.ListenIP(p.network, &net.IPAddr{})
		if err != nil {
			res.Error = err.Error()
			return err
		}
		defer conn.Close()
		go func() {
			<-ctx.Done()
			conn.Close()
		}()
		rep := newReplies()
		var replySPI string // under rep's lock
		go func() {
			buf := make([]byte, 65536)
			for {
				n, _, err := conn.ReadFrom(buf)
				if err != nil {
					return
				}
				rspi, seq, pl, err := p.parse(buf[:n])
				if err != nil {
					continue
				}
				m, _, ok := parsePayload(pl)
				if !ok {
					continue
				}
				if m == *marker && rspi != uint32(*spi) {
					rep.with(func() {
						rep.got[int(seq)] = true
						replySPI = fmt.Sprintf("%#08x", rspi)
					})
				} else if m != *marker {
					rep.alien()
				}
			}
		}()
		dst := &net.IPAddr{IP: srv}
		send := func(i int) error {
			_, err := conn.WriteTo(p.build(uint32(*spi), uint32(i), payload(*marker, i)), dst)
			return err
		}
		sent, err := rep.exchange(ctx, *count, *interval, *wait, send)
		res.Sent = sent
		if err != nil {
			res.Error = err.Error()
			return err
		}
		res.Received, res.Foreign, _ = rep.counts()
		rep.with(func() { res.ReplySPI = replySPI })
		res.OK = res.Received == res.Sent && res.Foreign == 0
		if !res.OK {
			res.Error = fmt.Sprintf("received %d of %d %s replies (%d foreign)", res.Received, res.Sent, name, res.Foreign)
			return fmt.Errorf("%s", res.Error)
		}
		return nil
	}
}
