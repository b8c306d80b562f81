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
	"github.com/vpn-passthrough/vpn-passthrough/test/bench/benchutil"

	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

func main() { benchutil.Main("bench-esp", run, flood) }

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
			pps, err := benchutil.Measure(l, self, m.from, m.at, m.count, dur, m.args...)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			m.results = append(m.results, pps)
		}
	}
	med := map[string]float64{}
	fmt.Printf("ESP multiplexer, 64-byte payloads, median of %d runs of %v (packets/s at the receiver):\n", *runs, dur)
	for _, m := range modes {
		med[m.name] = benchutil.Median(m.results)
		fmt.Printf("  %-10s %10.0f pps   runs %s\n", m.name, med[m.name], benchutil.List(m.results))
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

// flood sends 64-byte payloads (UDP, or ESP header + 56 bytes) on a
// connected socket, for --seconds or --count.
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
	if err != nil || !a.Is4() {
		return errors.New("need --dst IPv4")
	}
	spi, err := strconv.ParseUint(*spiS, 0, 32)
	if err != nil || spi == 0 {
		return fmt.Errorf("--spi %q", *spiS)
	}
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
	fill := func(b []byte) {}
	var stamp func(b []byte, seq uint32)
	if *proto == "esp" {
		fill = func(b []byte) { binary.BigEndian.PutUint32(b[0:], uint32(spi)) }
		stamp = func(b []byte, seq uint32) { binary.BigEndian.PutUint32(b[4:], seq) }
	}
	return benchutil.Flood(fd, 64, *secs, *count, fill, stamp)
}
