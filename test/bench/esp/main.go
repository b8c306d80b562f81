// Command esp measures small-packet forwarding through the lab router for
// the ESP multiplexer (`make bench-esp`, part of `make bench`):
//
//   - plain: UDP with a 64-byte payload, kernel forwarding and NAT;
//   - esp:   raw ESP with a 64-byte payload (SPI and sequence number plus 56
//     bytes) through the daemon's ESP engine (one NFQUEUE trip per packet).
//
// Both directions: out (LAN client to WAN server; the engine rewrites the
// source after routing) and in (server to client; the engine demultiplexes
// by SPI in raw prerouting). Each figure is the median packets/s of several
// runs, counted by an nft counter at the receiver (which drops the packets,
// so no socket reading limits the rate). Senders use sendmmsg in batches.
//
//	go run ./test/bench/esp [-runs 5] [-seconds 3]   (root; VPNPT_BIN=bin/vpn-passthrough)
//
// It prints figures; it is not a pass/fail test.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "flood" {
		if err := flood(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "flood:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-esp:", err)
		os.Exit(1)
	}
}

func run() error {
	runs := flag.Int("runs", 5, "runs per mode (the median is printed)")
	secs := flag.Float64("seconds", 3, "seconds per run")
	flag.Parse()
	if why := lab.Requirements(); why != "" {
		fmt.Println("bench-esp: skipped:", why)
		return nil
	}
	bin, why := lab.FindDaemonBin()
	if why != "" {
		fmt.Println("bench-esp: skipped:", why)
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	l, err := lab.New(lab.Config{Clients: 1})
	if err != nil {
		return err
	}
	defer l.Close()
	u := l.KernelUCI()
	u.Mode = "auto" // IPsec through the ESP multiplexer
	d, err := l.StartDaemon(bin, u.String())
	if err != nil {
		return err
	}
	defer d.Kill()
	client, server := l.Client(1), l.Server
	for _, ns := range []string{client.NS, server.NS} {
		if err := counters(l, ns); err != nil {
			return err
		}
	}
	dur := time.Duration(*secs * float64(time.Second))
	wan := l.WANAddr.String()

	// Prime the paths: a conntrack entry for plain UDP in, an SA for ESP in.
	if _, err := l.Exec(client.NS, self, "flood", "--proto", "udp", "--dst", server.Addr.String(), "--port", "9", "--sport", "9999", "--count", "1"); err != nil {
		return err
	}
	if _, err := l.Exec(client.NS, self, "flood", "--proto", "esp", "--dst", server.Addr.String(), "--spi", "0xc0000001", "--count", "1"); err != nil {
		return err
	}
	type mode struct {
		name    string
		from    string
		count   string // counter name at the receiver
		at      string // receiver namespace
		args    []string
		results []float64
	}
	modes := []*mode{
		{name: "plain out", from: client.NS, at: server.NS, count: "udp_in",
			args: []string{"--proto", "udp", "--dst", server.Addr.String(), "--port", "9"}},
		{name: "esp out", from: client.NS, at: server.NS, count: "esp_in",
			args: []string{"--proto", "esp", "--dst", server.Addr.String(), "--spi", "0xc0000001"}},
		{name: "plain in", from: server.NS, at: client.NS, count: "udp_in",
			args: []string{"--proto", "udp", "--dst", wan, "--port", "9999", "--sport", "9"}},
		{name: "esp in", from: server.NS, at: client.NS, count: "esp_in",
			args: []string{"--proto", "esp", "--dst", wan, "--spi", "0xa0000001"}},
	}
	for r := 0; r < *runs; r++ {
		for _, m := range modes {
			pps, err := measure(l, self, m.from, m.at, m.count, m.args, dur)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			m.results = append(m.results, pps)
		}
	}
	med := map[string]float64{}
	fmt.Printf("ESP multiplexer, 64-byte payloads, median of %d runs of %v (packets/s at the receiver):\n", *runs, dur)
	for _, m := range modes {
		med[m.name] = median(m.results)
		fmt.Printf("  %-10s %10.0f pps   runs %s\n", m.name, med[m.name], list(m.results))
	}
	for _, dir := range []string{"out", "in"} {
		p, e := med["plain "+dir], med["esp "+dir]
		ratio := 0.0
		if p > 0 {
			ratio = e / p
		}
		fmt.Printf("  esp/plain %-3s %.2f\n", dir, ratio)
	}
	st, _, err := d.CLI("status", "--json", "--socket", d.Socket)
	if err == nil {
		var s struct {
			Counters map[string]struct{ Packets uint64 } `json:"counters"`
		}
		if json.Unmarshal([]byte(st), &s) == nil {
			fmt.Printf("  engine: forwarded out %d, in %d; queue overflows %d\n", s.Counters["esp_out_forwarded"].Packets,
				s.Counters["esp_in_forwarded"].Packets, s.Counters["esp_queue_enobufs"].Packets)
		}
	}
	return nil
}

// counters installs counting-and-dropping rules in a host namespace.
func counters(l *lab.Lab, ns string) error {
	_, err := l.ExecStdin(ns, `table inet bench {
	counter esp_in {
	}
	counter udp_in {
	}
	chain pre {
		type filter hook prerouting priority -400; policy accept;
		meta l4proto esp counter name "esp_in" drop
		udp dport { 9, 9999 } counter name "udp_in" drop
	}
}
`, "nft", "-f", "-")
	return err
}

func readCounter(l *lab.Lab, ns, name string) (uint64, error) {
	out, err := l.Exec(ns, "nft", "-j", "list", "counter", "inet", "bench", name)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return 0, err
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			return o.Counter.Packets, nil
		}
	}
	return 0, errors.New("no counter in nft output")
}

// measure floods for dur plus a second and counts the middle dur at the
// receiver.
func measure(l *lab.Lab, self, from, at, counter string, args []string, dur time.Duration) (float64, error) {
	total := dur + time.Second
	argv := append([]string{self, "flood", "--seconds", strconv.FormatFloat(total.Seconds(), 'f', 3, 64)}, args...)
	p, err := l.Spawn(from, "flood", argv...)
	if err != nil {
		return 0, err
	}
	defer p.Kill()
	time.Sleep(500 * time.Millisecond)
	c0, err := readCounter(l, at, counter)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(dur)
	c1, err := readCounter(l, at, counter)
	if err != nil {
		return 0, err
	}
	el := time.Since(t0)
	if err := p.Wait(total + 10*time.Second); err != nil {
		return 0, fmt.Errorf("%v (stderr %v)", err, p.Stderr())
	}
	return float64(c1-c0) / el.Seconds(), nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func list(v []float64) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, strconv.FormatFloat(x/1000, 'f', 0, 64)+"k")
	}
	return strings.Join(parts, " ")
}

// flood sends 64-byte payloads (UDP, or ESP header + 56 bytes) on a
// connected socket with sendmmsg, 64 at a time, for --seconds or --count.
func flood(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	proto := fs.String("proto", "udp", "udp or esp")
	dst := fs.String("dst", "", "destination IPv4")
	port := fs.Int("port", 9, "udp destination port")
	sport := fs.Int("sport", 0, "udp source port")
	spiS := fs.String("spi", "0x1", "esp SPI")
	secs := fs.Float64("seconds", 0, "how long")
	count := fs.Int("count", 0, "or how many packets")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := netip.ParseAddr(*dst)
	if err != nil || !a.Is4() || (*secs <= 0) == (*count <= 0) || *secs > 120 || *count > 1_000_000 {
		return errors.New("need --dst IPv4 and one of --seconds (<= 120) or --count (<= 1e6)")
	}
	spi, err := strconv.ParseUint(*spiS, 0, 32)
	if err != nil || spi == 0 {
		return fmt.Errorf("--spi %q", *spiS)
	}
	const payload = 64
	var fd int
	sa := &unix.SockaddrInet4{Addr: a.As4()}
	if *proto == "esp" {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ESP)
	} else {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_UDP)
		sa.Port = *port
		if err == nil && *sport != 0 {
			err = unix.Bind(fd, &unix.SockaddrInet4{Port: *sport})
		}
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return err
	}
	const batch = 64
	bufs := make([][payload]byte, batch)
	iovs := make([]unix.Iovec, batch)
	msgs := make([]mmsghdr, batch)
	for i := range bufs {
		if *proto == "esp" {
			bufs[i][0], bufs[i][1], bufs[i][2], bufs[i][3] = byte(spi>>24), byte(spi>>16), byte(spi>>8), byte(spi)
		}
		iovs[i].Base = &bufs[i][0]
		iovs[i].SetLen(payload)
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.SetIovlen(1)
	}
	ctx := context.Background()
	var cancel context.CancelFunc
	if *secs > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*secs*float64(time.Second)))
		defer cancel()
	}
	sent, seq := 0, uint32(0)
	for ctx.Err() == nil && (*count == 0 || sent < *count) {
		n := batch
		if *count > 0 && *count-sent < n {
			n = *count - sent
		}
		if *proto == "esp" {
			for i := 0; i < n; i++ {
				seq++
				bufs[i][4], bufs[i][5], bufs[i][6], bufs[i][7] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
			}
		}
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(n), 0, 0, 0)
		if e != 0 {
			if e == unix.ENOBUFS || e == unix.EAGAIN || e == unix.ECONNREFUSED || e == unix.EPERM {
				continue // a full queue or an ICMP error: keep flooding
			}
			return e
		}
		sent += int(r)
	}
	return nil
}

// mmsghdr is struct mmsghdr (sendmmsg(2)); Go pads it like C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}
