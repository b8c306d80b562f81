// Command soak runs everything that can go wrong at once, for a bounded
// time, in a network-namespace lab: legitimate PPTP and ESP sessions carry
// traffic through the userspace engines while the WAN floods a LAN host with
// unsolicited ESP, GRE, IKE and NAT-T, SIGHUP storms reload the daemon, our
// table is deleted, flushed and tampered with, and the daemon is SIGKILLed
// and restarted. L2TP is switched off and tried all along.
//
// Every few seconds it prints lost and delivered legit packets, packets let
// in (unsolicited ones that reached the LAN host, blocked L2TP that passed),
// the slowest restore of the blocks, and the daemon's RSS and open fds. It
// exits 1 on any breach: a packet let in, a block not back within 2 s, a
// legit run that got nothing back, RSS over 64 MiB, or fds growing by more
// than 32. Run as root: `make soak` (SOAK_DURATION, default 2m).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

const (
	maxRSS     = 64 << 20
	maxFDGrow  = 32
	blockLimit = 2 * time.Second
)

type soak struct {
	l    *lab.Lab
	peer string
	bin  string

	mu  sync.Mutex
	d   *lab.Daemon
	cfg string

	legitSent, legitRecv, legitDead atomic.Int64
	letIn, blockedPassed            atomic.Int64
	damages, kills, hups            atomic.Int64
	worstRestore                    atomic.Int64 // ns
	breaches                        []string
	bmu                             sync.Mutex
}

func (s *soak) breach(format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	s.bmu.Lock()
	s.breaches = append(s.breaches, line)
	s.bmu.Unlock()
	fmt.Println("  BREACH", line)
}

func (s *soak) daemon() *lab.Daemon {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d
}

func main() {
	dur := flag.Duration("duration", 2*time.Minute, "how long to soak (bounded to 30m)")
	flag.Parse()
	*dur = min(*dur, 30*time.Minute)
	os.Exit(run(*dur))
}

func run(dur time.Duration) int {
	if why := lab.Requirements(); why != "" {
		fmt.Fprintln(os.Stderr, "soak:", why)
		return 1
	}
	bin, why := lab.FindDaemonBin()
	if why != "" {
		fmt.Fprintln(os.Stderr, "soak:", why)
		return 1
	}
	l, err := lab.New(lab.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	defer lab.RemovePeerCache()
	defer l.Close()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		l.Close()
		lab.RemovePeerCache()
		os.Exit(130)
	}()
	s := &soak{l: l, bin: bin}
	if err := s.setup(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	return s.run(dur)
}

func (s *soak) setup() error {
	l := s.l
	var err error
	if s.peer, err = l.PeerBin(); err != nil {
		return err
	}
	if _, err := l.StartServers(); err != nil {
		return err
	}
	if _, err := l.Exec(l.Server.NS, "ip", "route", "add", "10.10.0.0/16", "via", l.WANAddr.String()); err != nil {
		return err
	}
	cfg := l.KernelUCI()
	cfg.Mode, cfg.L2TP = "userspace", false
	s.cfg = cfg.String()
	d, err := l.StartDaemon(s.bin, s.cfg)
	if err != nil {
		return err
	}
	s.d = d
	return nil
}

// result is the part of a peer client's result line the soak reads.
type result struct {
	Sent, Received int
}

func (s *soak) peerRun(ns string, args ...string) result {
	var r result
	out, _, _ := s.l.ExecSplit(ns, append([]string{s.peer}, args...)...)
	_ = lab.ParseResult(strings.Split(out, "\n"), &r)
	return r
}

func (s *soak) run(dur time.Duration) int {
	l := s.l
	victim := l.Client(2)
	vsrv, err := l.Spawn(victim.NS, "servers@victim", s.peer, "servers", "--duration", (dur + time.Minute).String())
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	if _, err := vsrv.WaitStdout(0, 10*time.Second, lab.Contains(`"event":"ready"`)); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	loop := func(every time.Duration, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				f()
				select {
				case <-ctx.Done():
				case <-time.After(every):
				}
			}
		}()
	}
	c1 := l.Client(1).NS
	// Legit sessions: each run is one PPTP call / one ESP SA, ~4 s long.
	loop(0, func() {
		r := s.peerRun(c1, "pptp-client", "--server", l.Server.Addr.String(), "--call-id", "7",
			"--count", "200", "--interval", "20ms", "--wait", "1s", "--timeout", "20s")
		s.legit(r, "pptp")
	})
	spi := atomic.Int64{}
	loop(0, func() {
		r := s.peerRun(c1, "esp-client", "--server", l.Server.Addr.String(),
			"--spi", fmt.Sprintf("0x%x", 0x51000000+spi.Add(1)), "--count", "200", "--interval", "20ms", "--wait", "1s", "--timeout", "20s")
		s.legit(r, "esp")
	})
	// Floods from the WAN to the LAN host, and blocked L2TP from the LAN.
	floods := [][]string{
		{"esp-client", "--spi", "0x66000001"},
		{"pptp-client", "--gre-only", "--call-id", "1", "--server-call-id", "9"},
		{"udp-client", "--proto", "ike", "--sport", "41500"},
		{"udp-client", "--proto", "natt", "--sport", "44500"},
	}
	fi := 0
	loop(100*time.Millisecond, func() {
		a := append(append([]string{}, floods[fi%len(floods)]...), "--server", victim.Addr.String(),
			"--count", "500", "--interval", "0s", "--wait", "200ms")
		fi++
		s.peerRun(l.Server.NS, a...)
	})
	loop(500*time.Millisecond, func() {
		r := s.peerRun(c1, "udp-client", "--server", l.Server.Addr.String(), "--proto", "l2tp",
			"--count", "5", "--wait", "300ms")
		if r.Received > 0 {
			s.blockedPassed.Add(int64(r.Received))
			s.breach("blocked L2TP: %d replies came back", r.Received)
		}
	})
	// Reload storms.
	loop(5*time.Second, func() {
		for i := 0; i < 20; i++ {
			if d := s.daemon(); d != nil {
				_ = d.Signal(syscall.SIGHUP)
				s.hups.Add(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	// Table damage, each followed by a check that L2TP's block is back.
	tbl := lab.TableFamily + " " + lab.Table
	damages := []string{
		"delete table " + tbl,
		"flush chain " + tbl + " forward",
		fmt.Sprintf("delete element %s wan_devs { %q }", tbl, l.WANDev),
		"insert rule " + tbl + " forward accept",
	}
	di := 0
	loop(1500*time.Millisecond, func() {
		if _, err := l.ExecStdin(l.Router, damages[di%len(damages)]+"\n", "nft", "-f", "-"); err != nil {
			return // e.g. the table is away during a restart
		}
		di++
		s.damages.Add(1)
		start := time.Now()
		for !s.blocksHeld() {
			if time.Since(start) > blockLimit {
				if ctx.Err() == nil {
					s.breach("after %q the L2TP block was not back within %s", damages[(di-1)%len(damages)], blockLimit)
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d := time.Since(start); int64(d) > s.worstRestore.Load() {
			s.worstRestore.Store(int64(d))
		}
	})
	// SIGKILL and restart, as procd would respawn it.
	loop(20*time.Second, func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = s.d.Signal(syscall.SIGKILL)
		_ = s.d.Wait(5 * time.Second)
		s.kills.Add(1)
		d, err := l.StartDaemon(s.bin, s.cfg)
		if err != nil {
			s.breach("restart after SIGKILL: %v", err)
			return
		}
		s.d = d
	})

	// Report every 10 s; count what reached the LAN host.
	start := time.Now()
	var fd0 int
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	fmt.Printf("soak: %s; columns: elapsed, legit sent/received/lost, dead runs, let in, blocked passed, damages, worst restore, SIGHUPs, kills, daemon RSS, fds\n", dur)
	report := func() {
		if evs := (&lab.Servers{Proc: vsrv}).Events(0, "esp", "ah", "gre", "gre-bad", "ike", "natt", "l2tp", "control-open"); int64(len(evs)) > s.letIn.Load() {
			s.breach("%d unsolicited packets reached the LAN host", int64(len(evs))-s.letIn.Load())
			s.letIn.Store(int64(len(evs)))
		}
		rss, fds := procStats(s.daemon().Pid())
		if fd0 == 0 {
			fd0 = fds
		}
		sent, recv := s.legitSent.Load(), s.legitRecv.Load()
		fmt.Printf("%6s  legit %d/%d/%d  dead %d  let-in %d  blocked-passed %d  damages %d  worst %s  hups %d  kills %d  rss %.1f MiB  fds %d\n",
			time.Since(start).Round(time.Second), sent, recv, sent-recv, s.legitDead.Load(), s.letIn.Load(), s.blockedPassed.Load(),
			s.damages.Load(), time.Duration(s.worstRestore.Load()).Round(time.Millisecond), s.hups.Load(), s.kills.Load(),
			float64(rss)/(1<<20), fds)
		if rss > maxRSS {
			s.breach("daemon RSS %.1f MiB over %d MiB", float64(rss)/(1<<20), maxRSS>>20)
		}
		if fd0 > 0 && fds > fd0+maxFDGrow {
			s.breach("daemon fds grew from %d to %d", fd0, fds)
		}
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			report()
		}
	}
	wg.Wait()
	report()
	if s.damages.Load() == 0 || s.kills.Load() == 0 || s.legitSent.Load() == 0 {
		s.breach("the soak did not exercise everything (damages %d, kills %d, legit packets %d)",
			s.damages.Load(), s.kills.Load(), s.legitSent.Load())
	}
	if len(s.breaches) > 0 {
		fmt.Printf("soak: FAIL, %d breaches\n", len(s.breaches))
		return 1
	}
	fmt.Println("soak: PASS, no breach")
	return 0
}

func (s *soak) legit(r result, what string) {
	s.legitSent.Add(int64(r.Sent))
	s.legitRecv.Add(int64(r.Received))
	if r.Sent > 0 && r.Received == 0 {
		s.legitDead.Add(1)
		s.breach("a legit %s run got nothing back (%d sent)", what, r.Sent)
	}
}

// blocksHeld: our table has the drop of LAN->WAN UDP 1701, the WAN device
// in wan_devs, and no accept rule of anyone else.
func (s *soak) blocksHeld() bool {
	out, err := s.l.Nft("list", "table", lab.TableFamily, lab.Table)
	if err != nil {
		return false
	}
	return strings.Contains(out, `udp dport 1701 iifname @lan_devs oifname @wan_devs ct status ! dnat counter name "blocked_l2tp" drop`) &&
		strings.Contains(out, fmt.Sprintf("%q", s.l.WANDev)) && !strings.Contains(out, "\t\taccept\n")
}

// procStats reads a process's resident set size (bytes) and open fds.
func procStats(pid int) (rss int64, fds int) {
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		fds = len(ents)
	}
	return rss, fds
}
