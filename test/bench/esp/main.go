// Command esp measures the ESP multiplexer through the lab router (`make
// bench-esp`, part of `make bench`), and prints figures (not pass/fail):
//
//   - forwarding: small packets (64-byte payloads) per second at the
//     receiver, out (LAN client to WAN server) and in, for plain UDP
//     (kernel forwarding and NAT) and raw ESP, on the kernel data plane
//     (nftables maps) and on the NFQUEUE fallback, each against plain
//     forwarding measured in the same phase; the median of -runs runs,
//     counted by an nft counter at the receiver (which drops the packets,
//     so no socket reading limits the rate); senders use sendmmsg;
//
//   - lookup cost: the kernel data plane again with 10,000 map elements
//     (5,000 SAs adopted from the maps) instead of 10;
//
//   - learning latency: the round trip of a new SA's first packet (learned
//     by the engine in both directions) against the next one on the same
//     SA (the kernel maps), over -probes new SAs;
//
//   - memory: the daemon's RSS and the kernel's slab growth with 10,000
//     elements (slab is system-wide here: a noisy figure on a shared box),
//     with the Go runtime's defaults and with the init script's GOMEMLIMIT
//     and GOGC;
//
//     go run ./test/bench/esp [-runs 5] [-seconds 3] [-probes 20] [-only small]   (root; VPNPT_BIN=bin/vpn-passthrough)
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
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/probe"
	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

func main() {
	if len(os.Args) > 1 {
		sub := map[string]func([]string) error{"echo": echo, "rtt": rtt}[os.Args[1]]
		if sub != nil {
			if err := sub(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
				os.Exit(1)
			}
			return
		}
	}
	benchutil.Main("bench-esp", run, flood)
}

func run() error {
	runs := flag.Int("runs", 5, "runs per mode (the median is printed)")
	secs := flag.Float64("seconds", 3, "seconds per run")
	probes := flag.Int("probes", 20, "new SAs for the learning latency")
	only := flag.String("only", "", "\"small\": only the kernel maps with 10 elements (a quick look at the per-packet cost); \"memory\": only the memory with 10,000 elements")
	flag.Parse()
	l, bin, self, err := benchutil.Setup("bench-esp", lab.Config{Clients: 1})
	if err != nil || l == nil {
		return err
	}
	defer l.Close()
	b := &bench{l: l, bin: bin, self: self, runs: *runs, dur: time.Duration(*secs * float64(time.Second))}
	defer b.stop()
	fmt.Printf("ESP multiplexer, 64-byte payloads, median of %d runs of %v (packets/s at the receiver):\n", b.runs, b.dur)

	// 1. Kernel data plane with 10 elements: 4 filler SAs adopted from
	// the maps, plus the SA the flows use.
	if err := b.start(""); err != nil {
		return err
	}
	b.kill()
	if err := b.fill(4); err != nil {
		return err
	}
	if err := b.start(""); err != nil {
		return err
	}
	var small map[string]float64
	if *only != "memory" {
		if small, err = b.forwarding("kernel maps, 10 elements"); err != nil {
			return err
		}
		if *only == "small" {
			return nil
		}
		// 2. Learning latency on the kernel data plane.
		if err := b.latency(*probes); err != nil {
			return err
		}
	}
	// 3. 10,000 elements: memory, adoption time and lookup cost.
	rss0, _ := b.rss()
	b.kill()
	slab0 := slabKiB()
	if err := b.fill(4995); err != nil {
		return err
	}
	slab1 := slabKiB()
	t0 := time.Now()
	if err := b.start(""); err != nil {
		return err
	}
	adoptTook := time.Since(t0)
	time.Sleep(6 * time.Second) // a few read-back passes over 10,000 elements
	rss1, _ := b.rss()
	hwm1, _ := b.hwm()
	fmt.Printf("  memory: daemon RSS %.1f MiB with 10 elements, %.1f MiB with 10,000 (peak %.1f MiB; 5,000 SAs adopted, restart and adopt %v);"+
		" kernel slab +%d KiB for 9,990 elements (%.0f bytes each; system-wide, noisy)\n",
		rss0/1024, rss1/1024, hwm1/1024, adoptTook.Round(time.Millisecond), slab1-slab0, float64(slab1-slab0)*1024/9990)
	if n := b.counter("esp_map_elements"); n < 10000 {
		fmt.Printf("  warning: the engine holds %d map elements, not 10,000\n", n)
	}
	// The same with the Go runtime limits the init script sets (its
	// defaults memory_limit 20MiB, gogc 50), as on a router.
	b.kill()
	os.Setenv("GOMEMLIMIT", initMemoryLimit)
	os.Setenv("GOGC", initGOGC)
	err = b.start("")
	os.Unsetenv("GOMEMLIMIT")
	os.Unsetenv("GOGC")
	if err != nil {
		return err
	}
	time.Sleep(6 * time.Second)
	rss2, _ := b.rss()
	hwm2, _ := b.hwm()
	fmt.Printf("  memory with the init script's GOMEMLIMIT=%s GOGC=%s: daemon RSS %.1f MiB with 10,000 elements (peak %.1f MiB)\n",
		initMemoryLimit, initGOGC, rss2/1024, hwm2/1024)
	if *only == "memory" {
		return nil
	}
	if err := b.restart(""); err != nil { // the runtime's defaults again
		return err
	}
	big, err := b.forwarding("kernel maps, 10,000 elements")
	if err != nil {
		return err
	}
	for _, dir := range []string{"out", "in"} {
		fmt.Printf("  lookup cost %s: esp at 10,000 elements / at 10 = %.2f\n", dir, ratio(big["esp "+dir], small["esp "+dir]))
	}
	// 4. The NFQUEUE fallback (kernels without the fast path).
	if err := b.restart("nft_map_payload"); err != nil {
		return err
	}
	if _, err := b.forwarding("NFQUEUE fallback"); err != nil {
		return err
	}
	return nil
}

// The init script's defaults for the Go runtime (files/etc/init.d).
const (
	initMemoryLimit = "20MiB"
	initGOGC        = "50"
)

type bench struct {
	l         *lab.Lab
	d         *lab.Daemon
	bin, self string
	runs      int
	dur       time.Duration
}

func (b *bench) stop() {
	if b.d != nil {
		b.d.Kill()
	}
}

// config: max_sas large enough for the 10,000-element phase.
func (b *bench) config() string {
	u := b.l.KernelUCI()
	u.Mode = "auto" // IPsec through the ESP multiplexer
	return u.String() + "\toption max_sas '20000'\n"
}

func (b *bench) start(disable string) error {
	os.Setenv(probe.DisableEnv, disable)
	d, err := b.l.StartDaemon(b.bin, b.config())
	b.d = d
	if err != nil {
		return err
	}
	_, err = d.WaitStderr(0, 10*time.Second, lab.Contains("msg=applied"))
	return err
}

// kill stops the daemon with SIGKILL: its maps stay in the kernel.
func (b *bench) kill() {
	if b.d != nil {
		_ = b.d.Signal(syscall.SIGKILL)
		_ = b.d.Wait(5 * time.Second)
		b.d = nil
	}
}

// restart kills the daemon and starts it again.
func (b *bench) restart(disable string) error {
	b.kill()
	return b.start(disable)
}

func (b *bench) rss() (float64, error) { return b.status("VmRSS:") }

// hwm is the daemon's peak RSS.
func (b *bench) hwm() (float64, error) { return b.status("VmHWM:") }

func (b *bench) status(field string) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.d.Pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err // KiB
		}
	}
	return 0, errors.New("no " + field)
}

func slabKiB() int64 {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Slab:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// fill adds n SAs (an esp_in and an esp_out element each) for made-up
// clients and servers to the maps, as a previous run would have left them;
// the next start adopts them.
func (b *bench) fill(n int) error {
	var sb strings.Builder
	for k := 0; k < n; k += 500 {
		var in, out []string
		for i := k; i < min(k+500, n); i++ {
			client := fmt.Sprintf("10.99.%d.%d", i/250, i%250+1)
			server := fmt.Sprintf("192.0.2.%d", i%250+1)
			spi := 0x70000000 + i
			in = append(in, fmt.Sprintf("%s . %d . %d : %s", server, spi>>16, spi&0xffff, client))
			out = append(out, fmt.Sprintf("%s . %s . %d . %d", client, server, (spi+1)>>16, (spi+1)&0xffff))
		}
		fmt.Fprintf(&sb, "add element inet %s %s { %s }\n", lab.Table, plan.MapESPIn, strings.Join(in, ", "))
		fmt.Fprintf(&sb, "add element inet %s %s { %s }\n", lab.Table, plan.MapESPOut, strings.Join(out, ", "))
	}
	// The daemon is down (a running engine would delete them as not its
	// own): the next start adopts them.
	_, err := b.l.ExecStdin(b.l.Router, sb.String(), "nft", "-f", "-")
	return err
}

func (b *bench) counter(name string) uint64 {
	st, _, err := b.d.CLI("status", "--json", "--socket", b.d.Socket)
	if err != nil {
		return 0
	}
	var s struct {
		Counters map[string]struct{ Packets uint64 } `json:"counters"`
	}
	_ = json.Unmarshal([]byte(st), &s)
	return s.Counters[name].Packets
}

// forwarding measures plain and ESP each way (the median of runs) and
// prints the figures and the ratios to plain forwarding.
func (b *bench) forwarding(label string) (map[string]float64, error) {
	l := b.l
	client, server := l.Client(1), l.Server
	for _, ns := range []string{client.NS, server.NS} {
		_, _ = l.Exec(ns, "nft", "delete", "table", "inet", "bench")
		if err := counters(l, ns); err != nil {
			return nil, err
		}
	}
	wan := l.WANAddr.String()
	// Prime the paths: a conntrack entry for plain UDP in, an SA for ESP.
	if _, err := l.Exec(client.NS, b.self, "flood", "--proto", "udp", "--dst", server.Addr.String(), "--port", "9", "--sport", "9999", "--count", "1"); err != nil {
		return nil, err
	}
	if _, err := l.Exec(client.NS, b.self, "flood", "--proto", "esp", "--dst", server.Addr.String(), "--spi", "0xc0000001", "--count", "1"); err != nil {
		return nil, err
	}
	if _, err := l.Exec(server.NS, b.self, "flood", "--proto", "esp", "--dst", wan, "--spi", "0xa0000001", "--count", "1"); err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond) // the engine programs the SA's elements
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
	for r := 0; r < b.runs; r++ {
		for _, m := range modes {
			pps, err := benchutil.Measure(l, b.self, m.from, m.at, m.count, b.dur, m.args...)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.name, err)
			}
			m.results = append(m.results, pps)
		}
	}
	med := map[string]float64{}
	fmt.Printf(" %s:\n", label)
	for _, m := range modes {
		med[m.name] = benchutil.Median(m.results)
		fmt.Printf("  %-10s %10.0f pps   runs %s\n", m.name, med[m.name], benchutil.List(m.results))
	}
	// Also the median of each run's own ratio: plain and ESP of one
	// direction are measured back to back, so a load swing on a shared
	// machine moves both, and this figure is steadier than the ratio of
	// the medians.
	byName := map[string]*mode{}
	for _, m := range modes {
		byName[m.name] = m
	}
	for _, dir := range []string{"out", "in"} {
		var per []float64
		for r := range byName["esp "+dir].results {
			per = append(per, ratio(byName["esp "+dir].results[r], byName["plain "+dir].results[r]))
		}
		fmt.Printf("  esp/plain %-3s %.2f (median of the runs' own ratios %.2f)\n", dir,
			ratio(med["esp "+dir], med["plain "+dir]), benchutil.Median(per))
		med["ratio "+dir] = benchutil.Median(per)
	}
	st, _, err := b.d.CLI("status", "--json", "--socket", b.d.Socket)
	if err == nil {
		var s struct {
			Counters map[string]struct{ Packets uint64 } `json:"counters"`
		}
		if json.Unmarshal([]byte(st), &s) == nil {
			c := func(k string) uint64 { return s.Counters[k].Packets }
			fmt.Printf("  engine: forwarded itself out %d, in %d; kernel maps out %d, in %d; queue overflows %d\n",
				c("esp_out_forwarded"), c("esp_in_forwarded"), c("esp_kernel_out"), c("esp_kernel_in"), c("esp_queue_enobufs"))
		}
	}
	return med, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// latency: an echo at the server answers each ESP packet on the SPI with
// the top bit flipped; the client opens probes new SAs one after another
// and times the first round trip (both SPIs learned by the engine) and the
// second (the kernel maps).
func (b *bench) latency(probes int) error {
	l := b.l
	client, server := l.Client(1), l.Server
	for _, ns := range []string{client.NS, server.NS} {
		_, _ = l.Exec(ns, "nft", "delete", "table", "inet", "bench")
	}
	e, err := l.Spawn(server.NS, "echo", b.self, "echo", "--seconds", "60")
	if err != nil {
		return err
	}
	defer e.Kill()
	time.Sleep(200 * time.Millisecond)
	out, err := l.Exec(client.NS, b.self, "rtt", "--dst", server.Addr.String(), "--count", strconv.Itoa(probes))
	if err != nil {
		return fmt.Errorf("rtt: %v: %s", err, out)
	}
	var first, next []float64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct{ First, Next float64 }
		if json.Unmarshal([]byte(line), &r) == nil && r.First > 0 && r.Next > 0 {
			first = append(first, r.First)
			next = append(next, r.Next)
		}
	}
	if len(first) == 0 {
		return fmt.Errorf("rtt: no answers: %s", out)
	}
	f, n := benchutil.Median(first), benchutil.Median(next)
	fmt.Printf("  learning latency (kernel maps): first round trip of a new SA %.0f us, next %.0f us: learning costs %.0f us for both directions (median of %d new SAs)\n",
		f, n, f-n, len(first))
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

// echo answers each ESP packet it receives with the same payload on the
// SPI with the top bit flipped (a new inbound SPI per SA).
func echo(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	secs := fs.Float64("seconds", 60, "how long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ESP)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	end := time.Now().Add(time.Duration(*secs * float64(time.Second)))
	buf := make([]byte, 2048)
	for time.Now().Before(end) {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n < 20+8 {
			continue
		}
		hl := int(buf[0]&0xf) * 4
		p := append([]byte(nil), buf[hl:n]...)
		binary.BigEndian.PutUint32(p, binary.BigEndian.Uint32(p)^0x80000000)
		_ = unix.Sendto(fd, p, 0, from)
	}
	return nil
}

// rtt opens count new SAs to dst one after another: for each, it sends one
// ESP packet on a new SPI and waits for the echo, then a second one; it
// prints the two round trips in microseconds.
func rtt(args []string) error {
	fs := flag.NewFlagSet("rtt", flag.ContinueOnError)
	dst := fs.String("dst", "", "server IPv4")
	count := fs.Int("count", 20, "new SAs (at most 1000)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := netip.ParseAddr(*dst)
	if err != nil || !a.Is4() || *count < 1 || *count > 1000 {
		return errors.New("need --dst IPv4 and 1 <= --count <= 1000")
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ESP)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	sa := &unix.SockaddrInet4{Addr: a.As4()}
	buf := make([]byte, 2048)
	once := func(spi, seq uint32) float64 {
		p := make([]byte, 64)
		binary.BigEndian.PutUint32(p[0:], spi)
		binary.BigEndian.PutUint32(p[4:], seq)
		t0 := time.Now()
		if err := unix.Sendto(fd, p, 0, sa); err != nil {
			return 0
		}
		for time.Since(t0) < time.Second {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				return 0
			}
			hl := int(buf[0]&0xf) * 4
			if n >= hl+8 && binary.BigEndian.Uint32(buf[hl:]) == spi^0x80000000 && binary.BigEndian.Uint32(buf[hl+4:]) == seq {
				return float64(time.Since(t0).Microseconds())
			}
		}
		return 0
	}
	for i := 0; i < *count; i++ {
		spi := uint32(0x31000000 + i)
		f := once(spi, 1)
		n := once(spi, 2)
		fmt.Printf("{\"first\": %.0f, \"next\": %.0f}\n", f, n)
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
