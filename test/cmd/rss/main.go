// Command rss measures the daemon's resident memory in the lab router
// (`make size`): idle after start, and under load, with the init script's
// GOMEMLIMIT and GOGC: raw ESP from a LAN client with a new SPI every few
// packets, so the ESP multiplexer learns SAs up to its max_sas and
// expires none, plus a packet flood through its queue.
//
//	go run ./test/cmd/rss [-seconds 5] [-spis 4096]   (root; VPNPT_BIN=bin/vpn-passthrough)
//
// The daemon is the host build (x86_64); 32-bit routers use somewhat less
// (smaller pointers). It prints figures; nothing passes or fails.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/test/bench/benchutil"
	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

func main() { benchutil.Main("rss", run, flood) }

// rss reads VmRSS and VmHWM of pid, in KiB.
func rss(pid int) (cur, peak int, err error) {
	v, err := status(pid)
	return v["VmRSS"], v["VmHWM"], err
}

// status reads the kB figures of /proc/<pid>/status (VmRSS, RssAnon,
// RssFile, ...).
func status(pid int) (map[string]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	v := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[2] == "kB" {
			n, _ := strconv.Atoi(f[1])
			v[strings.TrimSuffix(f[0], ":")] = n
		}
	}
	return v, nil
}

// anonMaps lists the resident KiB of pid's largest anonymous mappings
// (/proc/<pid>/smaps): Go's heap arenas, stacks and the binary's bss.
func anonMaps(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return err.Error()
	}
	var sizes []int
	anon := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			anon = len(f) == 5 || strings.HasPrefix(f[5], "[heap") || strings.HasPrefix(f[5], "[stack")
		case anon && len(f) == 3 && f[0] == "Anonymous:":
			if n, _ := strconv.Atoi(f[1]); n > 0 {
				sizes = append(sizes, n)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(sizes)))
	var out []string
	for i, n := range sizes {
		if i == 6 {
			out = append(out, fmt.Sprintf("+%d more", len(sizes)-i))
			break
		}
		out = append(out, strconv.Itoa(n))
	}
	return strings.Join(out, ", ")
}

func mib(kib int) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func run() error {
	secs := flag.Float64("seconds", 5, "seconds of load (at most 60)")
	spis := flag.Int("spis", 4096, "distinct outbound SPIs in the load")
	memLimit := flag.String("gomemlimit", "20MiB", "GOMEMLIMIT for the daemon (the init script's default)")
	gogc := flag.String("gogc", "50", "GOGC for the daemon (the init script's default)")
	label := flag.String("label", "host build", "what VPNPT_BIN is, for the report")
	settle := flag.Duration("settle", 20*time.Second, "how much longer to wait for the settled idle figure (at most 5m)")
	flag.Parse()
	if *secs <= 0 || *secs > 60 || *spis < 1 || *spis > 1<<20 || *settle < 0 || *settle > 5*time.Minute {
		return errors.New("-seconds in (0,60], -spis in [1,1048576], -settle in [0,5m]")
	}
	// The daemon inherits them, as from procd.
	os.Setenv("GOMEMLIMIT", *memLimit)
	os.Setenv("GOGC", *gogc)
	l, bin, self, err := benchutil.Setup("rss", lab.Config{Clients: 1})
	if err != nil || l == nil {
		return err
	}
	defer l.Close()
	u := l.KernelUCI()
	u.Mode = "auto" // the ESP multiplexer runs
	d, err := l.StartDaemon(bin, u.String())
	if err != nil {
		return err
	}
	defer d.Kill()
	// Idle twice: soon after start, when start-up garbage may not be
	// collected and returned yet, and settled, as a router runs.
	time.Sleep(3 * time.Second)
	idleStatus, err := status(d.Pid())
	if err != nil {
		return err
	}
	idle := idleStatus["VmRSS"]
	time.Sleep(*settle)
	settled, err := status(d.Pid())
	if err != nil {
		return err
	}
	maps := anonMaps(d.Pid())

	done := make(chan error, 1)
	go func() {
		_, err := l.Exec(l.Client(1).NS, self, "flood", "--dst", l.Server.Addr.String(), "--spis", strconv.Itoa(*spis),
			"--seconds", strconv.FormatFloat(*secs, 'f', -1, 64))
		done <- err
	}()
	maxRSS := 0
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Duration(*secs*float64(time.Second)) + 30*time.Second)
wait:
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("flood: %w", err)
			}
			break wait
		case <-tick.C:
			if cur, _, err := rss(d.Pid()); err == nil && cur > maxRSS {
				maxRSS = cur
			}
		case <-deadline:
			return errors.New("flood did not end")
		}
	}
	after, peak, err := rss(d.Pid())
	if err != nil {
		return err
	}
	sas := "?"
	if out, serr, err := d.CLI("status", "--json", "--socket", d.Socket); err == nil {
		sas = strconv.Itoa(strings.Count(out, `"orig_id"`))
	} else {
		fmt.Fprintf(os.Stderr, "rss: status --json: %v: %s\n", err, serr)
	}
	fmt.Printf("daemon RSS (%s, GOMEMLIMIT=%s GOGC=%s):\n", *label, *memLimit, *gogc)
	fmt.Printf("  idle (3 s after start)        %s (anonymous %s, file-backed: the binary's pages %s)\n",
		mib(idle), mib(idleStatus["RssAnon"]), mib(idleStatus["RssFile"]))
	fmt.Printf("  idle, settled (%v later)      %s (anonymous %s, file-backed %s)\n",
		*settle, mib(settled["VmRSS"]), mib(settled["RssAnon"]), mib(settled["RssFile"]))
	fmt.Printf("  settled anonymous mappings, largest first (KiB resident): %s\n", maps)
	fmt.Printf("  under load (max of 100 ms samples) %s, peak (VmHWM) %s: %.0f s of raw ESP, %d SPIs (%s sessions in status)\n",
		mib(maxRSS), mib(peak), *secs, *spis, sas)
	fmt.Printf("  after load                    %s\n", mib(after))
	return nil
}

// flood sends raw ESP to dst, cycling through --spis outbound SPIs.
func flood(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	dst := fs.String("dst", "", "destination IPv4")
	spis := fs.Int("spis", 4096, "distinct SPIs")
	secs := fs.Float64("seconds", 5, "how long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := netip.ParseAddr(*dst)
	if err != nil || !a.Is4() {
		return errors.New("need --dst IPv4")
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ESP)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: a.As4()}); err != nil {
		return err
	}
	n := uint32(*spis)
	return benchutil.Flood(fd, 64, *secs, 0, func(b []byte) {}, func(b []byte, seq uint32) {
		binary.BigEndian.PutUint32(b[0:], 0xc0000000+seq%n)
		binary.BigEndian.PutUint32(b[4:], seq/n+1)
	})
}
