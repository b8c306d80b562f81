package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// spoof sends hand-built IPv4 packets with any source (a raw socket with
// IP_HDRINCL), for the attack scenarios: TCP segments with chosen flags and
// sequence numbers (RST sweeps, SYNs from another host's address, SYN floods
// from random sources, malformed control messages) and GRE with any key
// and destination. Every run is bounded by --count and --timeout.
type spoofResult struct {
	Event string `json:"event"`
	Sent  int    `json:"sent"`
	Error string `json:"error,omitempty"`
}

func runSpoof(ctx context.Context, out *emitter, args []string) error {
	fs := flag.NewFlagSet("spoof", flag.ContinueOnError)
	proto := fs.String("proto", "tcp", "tcp | gre")
	src := fs.String("src", "", "source IPv4 address")
	srcNet := fs.String("src-net", "", "instead of --src: a random source in this IPv4 prefix for each packet (and a random port)")
	dst := fs.String("dst", "", "destination IPv4 address")
	sport := fs.Uint("sport", 0, "TCP source port")
	dport := fs.Uint("dport", 1723, "TCP destination port")
	flags := fs.String("flags", "R", "TCP flags, letters of FSRPAU")
	seq := fs.Uint("seq", 0, "TCP sequence number of the first packet")
	seqStep := fs.Uint("seq-step", 0, "added to the sequence number for each packet")
	randSeq := fs.Bool("rand-seq", false, "a random sequence number for each packet")
	ack := fs.Uint("ack", 0, "TCP acknowledgement number")
	key := fs.Uint("key", 0, "GRE: the Call ID in the key")
	marker := fs.String("marker", "spoof", "GRE payload marker")
	payloadHex := fs.String("payload-hex", "", "payload bytes (TCP or, with --raw-gre, the whole GRE header and payload)")
	rawGRE := fs.Bool("raw-gre", false, "GRE: --payload-hex is the whole GRE packet (malformed headers)")
	count := fs.Int("count", 1, "packets")
	timeout := fs.Duration("timeout", 30*time.Second, "overall time limit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res := spoofResult{Event: "result"}
	defer func() { out.emit(res) }()
	fail := func(err error) error {
		res.Error = err.Error()
		return err
	}
	d, err := netip.ParseAddr(*dst)
	if err != nil || !d.Is4() {
		return fail(fmt.Errorf("--dst %q: need an IPv4 address", *dst))
	}
	var s netip.Addr
	var pfx netip.Prefix
	if *srcNet != "" {
		if pfx, err = netip.ParsePrefix(*srcNet); err != nil || !pfx.Addr().Is4() || pfx.Bits() < 8 {
			return fail(fmt.Errorf("--src-net %q: need an IPv4 prefix of at least /8", *srcNet))
		}
		pfx = pfx.Masked()
	} else if s, err = netip.ParseAddr(*src); err != nil || !s.Is4() {
		return fail(fmt.Errorf("--src %q: need an IPv4 address", *src))
	}
	if *count < 1 || *count > 200000 || *sport > 0xffff || *dport > 0xffff || *key > 0xffff || *seq > 0xffffffff || *ack > 0xffffffff {
		return fail(fmt.Errorf("need 1 <= --count <= 200000 and ports, keys, sequence numbers in range"))
	}
	pl, err := hex.DecodeString(*payloadHex)
	if err != nil {
		return fail(fmt.Errorf("--payload-hex: %w", err))
	}
	var tcpFlags byte
	for _, c := range strings.ToUpper(*flags) {
		i := strings.IndexRune("FSRPAU", c)
		if i < 0 {
			return fail(fmt.Errorf("--flags %q: letters of FSRPAU only", *flags))
		}
		tcpFlags |= 1 << i
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return fail(fmt.Errorf("raw socket: %w", err))
	}
	defer unix.Close(fd)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	sa := &unix.SockaddrInet4{Addr: d.As4()}
	sq := uint32(*seq)
	for i := 0; i < *count && ctx.Err() == nil; i++ {
		from, fromPort := s, uint16(*sport)
		if pfx.IsValid() {
			base := binary.BigEndian.Uint32(pfx.Addr().AsSlice())
			host := rand.Uint32() & (1<<(32-pfx.Bits()) - 1)
			if host == 0 {
				host = 1
			}
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], base|host)
			from, fromPort = netip.AddrFrom4(b), uint16(1024+rand.IntN(60000))
		}
		if *randSeq {
			sq = rand.Uint32()
		}
		var pkt []byte
		switch *proto {
		case "tcp":
			pkt = ipv4Packet(from, d, unix.IPPROTO_TCP, tcpSegment(from, d, fromPort, uint16(*dport), sq, uint32(*ack), tcpFlags, pl))
		case "gre":
			g := pl
			if !*rawGRE {
				g = greV1(uint16(*key), uint32(i+1), payload(*marker, i+1))
			}
			pkt = ipv4Packet(from, d, unix.IPPROTO_GRE, g)
		default:
			return fail(fmt.Errorf("--proto %q: tcp or gre", *proto))
		}
		if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
			if err == unix.ENOBUFS || err == unix.EAGAIN {
				time.Sleep(time.Millisecond)
				i--
				continue
			}
			return fail(fmt.Errorf("send: %w", err))
		}
		res.Sent++
		sq += uint32(*seqStep)
	}
	return nil
}

func csumFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func csumAdd(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func ipv4Packet(src, dst netip.Addr, proto byte, body []byte) []byte {
	b := make([]byte, 20+len(body))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], uint16(rand.Uint32()))
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], csumFold(csumAdd(0, b[:20])))
	copy(b[20:], body)
	return b
}

func tcpSegment(src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags byte, pl []byte) []byte {
	b := make([]byte, 20+len(pl))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	copy(b[20:], pl)
	s, d := src.As4(), dst.As4()
	sum := csumAdd(0, s[:])
	sum = csumAdd(sum, d[:])
	sum += uint32(unix.IPPROTO_TCP) + uint32(len(b))
	binary.BigEndian.PutUint16(b[16:], csumFold(csumAdd(sum, b)))
	return b
}
