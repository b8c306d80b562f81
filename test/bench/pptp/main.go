// Command pptp measures small-packet forwarding of PPTP's GRE through the
// lab router (`make bench-pptp`, part of `make bench`):
//
//	(a) plain:     the router forwards and masquerades the GRE like any
//	               other packet (fw4, conntrack by address pair, no daemon);
//	(b) kernel:    the daemon in mode kernel, a call set up through the
//	               kernel pptp helper, its GRE tracked by Call ID and NATed
//	               by the kernel;
//	(c) maps:      the daemon in mode userspace on the kernel data plane: the
//	               engine translates the call on the control connection and
//	               programs nftables maps; inbound GRE is demultiplexed by the
//	               kernel from them (untracked), outbound GRE masqueraded by
//	               the kernel (src/engine/pptp doc.go);
//	(d) fallback:  the same without the fast path (VPNPT_DISABLE_CAPS=
//	               nft_map_payload, as on kernels without it): inbound GRE
//	               demultiplexed by the engine, one NFQUEUE round trip per
//	               packet.
//
// Also the learning latency, as router transit times taken from kernel
// timestamps (AF_PACKET taps on the sending device and on the router's
// device that sends the packet on, tap.go), so neither starting the sender
// nor reading counters is in them:
//
//   - the first inbound GRE packet of a newly set-up call (server's eth0 to
//     the router's LAN device), and the one after it;
//   - the call's Outgoing-Call-Request (client's eth0 to the router's WAN
//     device): on the engine's datapaths it crosses NFQUEUE, and on the
//     kernel maps the engine programs the call's elements before its
//     verdict, so this is where a new call's learning costs time.
//
// (An earlier version polled the receiver's nft counter by starting `nft`
// every 0.2 ms and timed from before starting the sender: about 10 ms on
// every datapath, plain forwarding included, which was process start-up.)
//
// Every packet is the same: enhanced GRE (RFC 2637, key and sequence number)
// carrying PPP, IPv4 and UDP with a 64-byte payload: 124 bytes of IP. Both
// directions are measured: out (LAN client to server) and in (server to the
// router's WAN address, to the client). Each figure is the median packets/s
// of several runs, counted by an nft counter at the receiver (which drops
// the packets, so no socket reading limits the rate); modes alternate within
// each run so that machine noise hits them alike. The sender uses sendmmsg,
// 64 packets per call, as in ../shared/conventions/lab.md.
//
//	go run ./test/bench/pptp [-runs 5] [-seconds 2]   (root; VPNPT_BIN=bin/vpn-passthrough)
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
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/probe"
	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

func main() { benchutil.Main("bench-pptp", run, flood) }

type bench struct {
	taps *taps
	l    *lab.Lab
	srv  *lab.Servers
	self string
	bin  string
	d    *lab.Daemon
	dur  time.Duration
}

// call is a PPTP call held up by a peer client for a mode's measurement.
type call struct {
	p        *lab.Proc
	serverID int // the server's Call ID: key of outbound GRE
	wireID   int // the client's Call ID as the server sees it: key of inbound GRE
}

func run() error {
	runs := flag.Int("runs", 5, "runs per mode (the median is printed)")
	secs := flag.Float64("seconds", 2, "seconds per measurement")
	only := flag.String("modes", "plain,kernel,maps,fallback", "modes to measure, comma-separated")
	flag.Parse()
	if *runs < 1 || *runs > 50 || *secs <= 0 || *secs > 30 {
		return errors.New("need 1 <= -runs <= 50 and 0 < -seconds <= 30")
	}
	l, bin, self, err := benchutil.Setup("bench-pptp", lab.Config{Clients: 1})
	if err != nil || l == nil {
		return err
	}
	defer l.Close()
	defer lab.RemovePeerCache()
	b := &bench{l: l, self: self, bin: bin, dur: time.Duration(*secs * float64(time.Second))}
	defer b.stopDaemon()
	if b.srv, err = l.StartServers(); err != nil {
		return err
	}
	for _, ns := range []string{l.Client(1).NS, l.Server.NS} {
		if _, err := l.ExecStdin(ns, counterRules, "nft", "-f", "-"); err != nil {
			return err
		}
	}
	modes := strings.Split(*only, ",")
	for _, m := range modes {
		if m != "plain" && m != "kernel" && m != "maps" && m != "fallback" {
			return fmt.Errorf("-modes: unknown mode %q", m)
		}
	}
	if b.taps, err = openTaps(l); err != nil {
		return err
	}
	defer b.taps.close()
	res := map[string][]float64{}
	engine := map[string]string{}
	for r := 0; r < *runs; r++ {
		for _, m := range modes {
			out, in, lat, st, err := b.mode(m)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", r+1, m, err)
			}
			res[m+" out"] = append(res[m+" out"], out)
			res[m+" in"] = append(res[m+" in"], in)
			for k, v := range lat {
				res[m+" "+k] = append(res[m+" "+k], v)
			}
			if st != "" {
				engine[m] = st
			}
		}
		fmt.Fprintf(os.Stderr, "bench-pptp: run %d of %d done\n", r+1, *runs)
	}
	med := map[string]float64{}
	for k, v := range res {
		med[k] = benchutil.Median(v)
	}
	fmt.Printf("PPTP GRE forwarding through the lab router: enhanced GRE carrying PPP/IPv4/UDP with a 64-byte payload\n")
	fmt.Printf("(124-byte IP packets); median packets/s at the receiver of %d runs of %v; sender: sendmmsg, 64 per call\n", *runs, b.dur)
	label := map[string]string{"plain": "(a) plain forwarding", "kernel": "(b) kernel helper",
		"maps": "(c) engine, kernel maps", "fallback": "(d) engine, NFQUEUE"}
	for _, m := range modes {
		if len(res[m+" out"]) == 0 {
			continue
		}
		fmt.Printf("  %-24s out %9.0f pps  in %9.0f pps   runs out %s  in %s\n", label[m],
			med[m+" out"], med[m+" in"], benchutil.List(res[m+" out"]), benchutil.List(res[m+" in"]))
	}
	fmt.Printf("  router transit from kernel timestamps, median µs (runs):\n")
	for _, k := range []struct{ key, what string }{
		{"ocrq", "Outgoing-Call-Request (the call is learned)"},
		{"gre1", "first inbound GRE of the new call"},
		{"gre2", "the inbound GRE packet after it"},
	} {
		fmt.Printf("    %-44s", k.what)
		for _, m := range modes {
			if v := res[m+" "+k.key]; len(v) > 0 {
				fmt.Printf("  %s %.0f (%s)", m, med[m+" "+k.key], micros(v))
			}
		}
		fmt.Println()
	}
	ratio := func(x, y string) string {
		var parts []string
		for _, dir := range []string{"out", "in"} {
			a, c := med[y+" "+dir], med[x+" "+dir]
			if a > 0 {
				parts = append(parts, fmt.Sprintf("%s %.2f", dir, c/a))
			}
		}
		both := (med[x+" out"] + med[x+" in"]) / (med[y+" out"] + med[y+" in"])
		return strings.Join(parts, ", ") + fmt.Sprintf(", both %.2f", both)
	}
	fmt.Printf("  c/a (kernel maps/plain): %s\n", ratio("maps", "plain"))
	fmt.Printf("  d/a (NFQUEUE/plain):     %s\n", ratio("fallback", "plain"))
	fmt.Printf("  b/a (kernel helper/plain): %s\n", ratio("kernel", "plain"))
	for _, m := range modes {
		if engine[m] != "" {
			fmt.Printf("  %s\n", engine[m])
		}
	}
	return nil
}

// counterRules count and drop GRE at a receiver, before anything else.
const counterRules = `table inet bench {
	counter gre_in {
	}
	chain pre {
		type filter hook prerouting priority -400; policy accept;
		ip protocol gre counter name "gre_in" drop
	}
}
`

// micros lists latencies (µs) for the runs column.
func micros(v []float64) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, strconv.FormatFloat(x, 'f', 0, 64))
	}
	return strings.Join(parts, " ")
}

// taps are the four devices the latency figures are taken at.
type taps struct {
	client, server, routerWAN, routerLAN *tap
}

func openTaps(l *lab.Lab) (*taps, error) {
	var t taps
	var err error
	for _, x := range []struct {
		p       **tap
		ns, dev string
	}{
		{&t.client, l.Client(1).NS, l.Client(1).Dev},
		{&t.server, l.Server.NS, l.Server.Dev},
		{&t.routerWAN, l.Router, l.WANDev},
		{&t.routerLAN, l.Router, l.Client(1).RouterDev},
	} {
		if *x.p, err = openTap(x.ns, x.dev); err != nil {
			t.close()
			return nil, err
		}
	}
	return &t, nil
}

func (t *taps) close() {
	for _, x := range []*tap{t.client, t.server, t.routerWAN, t.routerLAN} {
		if x != nil {
			x.close()
		}
	}
}

// mode sets the router up for m, measures both directions and tears down.
// lat holds router transit times in µs: "ocrq" (not for plain), "gre1" and
// "gre2".
func (b *bench) mode(m string) (out, in float64, lat map[string]float64, engine string, err error) {
	l := b.l
	client, server := l.Client(1), l.Server
	var c *call
	lat = map[string]float64{}
	clientKey := 1 // the Call ID inbound GRE reaches the client with
	switch m {
	case "plain":
		clientKey = 0
		b.stopDaemon()
		if err := l.ConntrackFlush(); err != nil {
			return 0, 0, nil, "", err
		}
		// Without a helper the kernel tracks GRE by addresses, and a
		// version 1 tuple also holds the key (nf_conntrack_proto_gre): key
		// 0 both ways is what matches the reply to the request. One packet
		// out first, so the reply direction is NATed back to the client.
		c = &call{serverID: 0, wireID: 0}
		if _, err := l.Exec(client.NS, b.self, "flood", "--dst", server.Addr.String(), "--key", "0", "--count", "1"); err != nil {
			return 0, 0, nil, "", err
		}
	case "kernel", "maps", "fallback":
		if err := b.startDaemon(m); err != nil {
			return 0, 0, nil, "", err
		}
		if err := l.ConntrackFlush(); err != nil {
			return 0, 0, nil, "", err
		}
		d, err := transit(b.taps.client, b.taps.routerWAN, isOCRQ, isOCRQ, func() (err error) {
			c, err = b.holdCall()
			return err
		})
		if c != nil {
			defer c.p.Kill()
		}
		if err != nil {
			return 0, 0, nil, "", fmt.Errorf("call: %w", err)
		}
		lat["ocrq"] = float64(d.Microseconds())
	}
	// The first inbound packet of the call, right after it was set up,
	// and the next one.
	for _, k := range []string{"gre1", "gre2"} {
		d, err := transit(b.taps.server, b.taps.routerLAN, isGRE(c.wireID), isGRE(clientKey), func() error {
			_, err := l.Exec(server.NS, b.self, "flood", "--dst", l.WANAddr.String(), "--key", strconv.Itoa(c.wireID), "--count", "1")
			return err
		})
		if err != nil {
			return 0, 0, nil, "", fmt.Errorf("latency %s: %w", k, err)
		}
		lat[k] = float64(d.Microseconds())
	}
	out, err = b.measure(client.NS, server.NS, server.Addr.String(), c.serverID)
	if err != nil {
		return 0, 0, nil, "", fmt.Errorf("out: %w", err)
	}
	in, err = b.measure(server.NS, client.NS, l.WANAddr.String(), c.wireID)
	if err != nil {
		return 0, 0, nil, "", fmt.Errorf("in: %w", err)
	}
	if m == "maps" || m == "fallback" {
		engine = m + ": " + b.engineLine()
	}
	return out, in, lat, engine, nil
}

func (b *bench) startDaemon(mode string) error {
	u := b.l.KernelUCI()
	u.Mode = mode
	disable := ""
	if mode == "maps" || mode == "fallback" {
		u.Mode = "userspace"
		if mode == "fallback" {
			disable = "nft_map_payload"
		}
		// The probe reads the variable at start: a daemon of the other
		// datapath must go.
		if b.d != nil && os.Getenv(probe.DisableEnv) != disable {
			b.stopDaemon()
		}
		os.Setenv(probe.DisableEnv, disable)
	}
	u.IPsec, u.L2TP = false, false // only PPTP in the table
	if b.d != nil {
		return b.d.Apply(u.String())
	}
	d, err := b.l.StartDaemon(b.bin, u.String())
	if d != nil {
		b.d = d
	}
	return err
}

func (b *bench) stopDaemon() {
	if b.d != nil {
		_ = b.d.Stop(5 * time.Second)
		b.d = nil
	}
}

// holdCall opens a call from the client and keeps it up.
func (b *bench) holdCall() (*call, error) {
	mark := b.srv.Mark()
	p, err := b.l.StartPPTPClient(1, "--call-id", "1", "--wait-stdin", "--timeout", "2m", "--marker", "bench")
	if err != nil {
		return nil, err
	}
	line, err := p.WaitStdout(0, 10*time.Second, lab.Contains(`"call-up"`))
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("call: %w (%v)", err, p.Stderr())
	}
	var ev lab.Event
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.ServerCallID == nil {
		p.Kill()
		return nil, fmt.Errorf("call-up event %q", line)
	}
	c := &call{p: p, serverID: *ev.ServerCallID}
	// The server's event and the client's may come through their pipes in
	// either order.
	for deadline := time.Now().Add(3 * time.Second); c.wireID == 0 && time.Now().Before(deadline); {
		for _, o := range b.srv.Events(mark, "ocrq") {
			if o.ServerCallID != nil && *o.ServerCallID == c.serverID && o.CallID != nil {
				c.wireID = *o.CallID
			}
		}
		if c.wireID == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if c.wireID == 0 {
		p.Kill()
		return nil, errors.New("the server saw no Outgoing-Call-Request for the call")
	}
	return c, nil
}

func (b *bench) engineLine() string {
	if b.d == nil {
		return ""
	}
	st, _, err := b.d.CLI("status", "--json", "--socket", b.d.Socket)
	if err != nil {
		return ""
	}
	var s struct {
		Counters map[string]struct{ Packets uint64 } `json:"counters"`
	}
	if json.Unmarshal([]byte(st), &s) != nil {
		return ""
	}
	c := s.Counters
	line := fmt.Sprintf("engine (last run): inbound GRE demultiplexed by the engine %d, by the kernel maps %d; queue batches %d for %d packets; socket overflows %d",
		c["pptp_gre_in"].Packets, c["pptp_kernel_in"].Packets, c["pptp_queue_batches"].Packets, c["pptp_queue_packets"].Packets, c["pptp_queue_enobufs"].Packets)
	if n := c["pptp_map_adds"].Packets; n > 0 {
		line += fmt.Sprintf("; a call's map elements added in %d µs on average (%d calls)", c["pptp_map_add_us"].Packets/n, n)
	}
	return line
}

// measure floods GRE keyed with key from one namespace and counts it at
// another.
func (b *bench) measure(from, at, dst string, key int) (float64, error) {
	return benchutil.Measure(b.l, b.self, from, at, "gre_in", b.dur, "--dst", dst, "--key", strconv.Itoa(key))
}

// greLen is the GRE packet the flood sends: enhanced GRE header with key
// and sequence number (12), PPP address/control and protocol (4), IPv4 (20),
// UDP (8) and a 64-byte payload.
const greLen = 12 + 4 + 20 + 8 + 64

// flood sends GRE packets keyed with --key to --dst on a raw socket, for
// --seconds or --count.
func flood(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	dst := fs.String("dst", "", "destination IPv4")
	key := fs.Int("key", 1, "GRE key (Call ID)")
	secs := fs.Float64("seconds", 0, "how long")
	count := fs.Int("count", 0, "or how many packets")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := netip.ParseAddr(*dst)
	if err != nil || !a.Is4() || *key < 0 || *key > 0xffff {
		return errors.New("need --dst IPv4 and --key <= 65535")
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_GRE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: a.As4()}); err != nil {
		return err
	}
	fill := func(g []byte) {
		binary.BigEndian.PutUint16(g[0:], 0x3001) // K and S set, version 1
		binary.BigEndian.PutUint16(g[2:], 0x880B) // PPP
		binary.BigEndian.PutUint16(g[4:], greLen-12)
		binary.BigEndian.PutUint16(g[6:], uint16(*key))
		copy(g[12:], []byte{0xff, 0x03, 0x00, 0x21}) // PPP: IPv4
		ip := g[16:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], 20+8+64)
		ip[8], ip[9] = 64, 17
		copy(ip[12:], []byte{192, 168, 0, 2, 192, 168, 0, 1}) // inside the tunnel
		binary.BigEndian.PutUint16(ip[20:], 5000)
		binary.BigEndian.PutUint16(ip[22:], 9)
		binary.BigEndian.PutUint16(ip[24:], 8+64)
	}
	stamp := func(g []byte, seq uint32) { binary.BigEndian.PutUint32(g[8:], seq) }
	return benchutil.Flood(fd, greLen, *secs, *count, fill, stamp)
}
