// Command demo shows vpn-passthrough working in a network-namespace lab:
// two LAN clients, a masquerading router running fw4's default ruleset and
// the daemon ($VPNPT_BIN) with the shipped default config, and a WAN server.
// It runs two PPTP clients with the same Call ID and the IPsec and L2TP
// peers, prints what passed and `vpn-passthrough status`, and removes
// everything it made, also on Ctrl-C. Run as root: `make demo`.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

func main() {
	os.Exit(run())
}

type demo struct {
	// stopping is set on Ctrl-C: results of peers killed by the cleanup are
	// not worth printing.
	stopping atomic.Bool
	l        *lab.Lab
	srv      *lab.Servers
	d        *lab.Daemon
	passed   []string
	failed   []string
}

func (m *demo) check(ok bool, format string, args ...any) {
	if m.stopping.Load() {
		return
	}
	line := fmt.Sprintf(format, args...)
	if ok {
		m.passed = append(m.passed, line)
		fmt.Printf("  PASS  %s\n", line)
	} else {
		m.failed = append(m.failed, line)
		fmt.Printf("  FAIL  %s\n", line)
	}
}

func run() int {
	if why := lab.Requirements(); why != "" {
		fmt.Fprintln(os.Stderr, "demo:", why)
		return 1
	}
	bin, why := lab.FindDaemonBin()
	if why != "" {
		fmt.Fprintln(os.Stderr, "demo:", why)
		return 1
	}
	fmt.Println("== building the lab (network namespaces)")
	l, err := lab.New(lab.Config{Logf: func(f string, a ...any) { fmt.Printf("  "+f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	defer lab.RemovePeerCache()
	defer l.Close()
	m := &demo{l: l}
	// Ctrl-C: remove namespaces and processes, then exit.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		m.stopping.Store(true)
		fmt.Println("\n== interrupted: removing the lab")
		l.Close()
		lab.RemovePeerCache()
		os.Exit(130)
	}()

	if code := m.run(bin); code != 0 {
		return code
	}
	fmt.Println()
	fmt.Printf("== %d passed, %d failed\n", len(m.passed), len(m.failed))
	if len(m.failed) > 0 {
		return 1
	}
	return 0
}

func (m *demo) run(bin string) int {
	l := m.l
	for _, c := range l.Clients {
		fmt.Printf("  %s %s via %s  ->  router %s (fw4 + masquerade on %s %s)  ->  server %s\n",
			c.Name, c.Addr, c.RouterDev, l.Router, l.WANDev, l.WANAddr, l.Server.Addr)
	}

	// fw4 assigns the pptp helper itself on zones without masquerade; take
	// that rule out so that what makes PPTP work here is the daemon.
	if err := l.DropFW4PPTPHelper(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	fmt.Println("  removed fw4's own `ct helper set \"pptp\"` rule: the daemon has to assign the helper")

	srv, err := l.StartServers()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	m.srv = srv

	cfgPath := filepath.Join(l.Repo, "files", "etc", "config", "vpn-passthrough")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	fmt.Printf("\n== starting %s daemon with %s:\n", bin, cfgPath)
	fmt.Print(indent(string(cfg)))
	d, err := l.StartDaemon(bin, string(cfg))
	if d != nil {
		m.d = d
		defer d.Kill()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	fmt.Println("  daemon log:")
	fmt.Print(indent(d.Log()))

	fmt.Println("\n== PPTP: lan1 and lan2 both use Call ID 1 towards the same server")
	m.pptp()

	fmt.Println("\n== IPsec from lan1: IKE (UDP 500), NAT-T (UDP 4500), raw ESP")
	_ = l.ConntrackFlush()
	for _, p := range []string{"ike", "natt"} {
		r, err := l.UDPClient(1, p, "--count", "10")
		m.check(err == nil && r.OK, "%-5s %d/%d replies (source port %d)%s", p, r.Received, r.Sent, r.SPort, errText(err))
	}
	r, err := l.RawClient(1, "esp", "--count", "10", "--spi", "0x1001")
	m.check(err == nil && r.OK, "esp   %d/%d replies (our SPI %s, server's %s)%s", r.Received, r.Sent, r.SPI, r.ReplySPI, errText(err))

	fmt.Println("\n== L2TP from lan2: UDP 1701 control messages")
	u, err := l.UDPClient(2, "l2tp", "--count", "10")
	m.check(err == nil && u.OK, "l2tp  %d/%d replies%s", u.Received, u.Sent, errText(err))

	fmt.Println("\n== vpn-passthrough status")
	out, stderr, err := d.CLI("status", "--socket", d.Socket)
	if err != nil {
		fmt.Printf("  status failed: %v %s\n", err, stderr)
	}
	fmt.Print(indent(out))

	fmt.Println("\n== stopping the daemon (SIGTERM)")
	if err := d.Stop(5 * time.Second); err != nil {
		fmt.Printf("  daemon exit: %v\n", err)
	}
	ok, _ := l.TableExists(lab.TableFamily, lab.Table)
	m.check(!ok, "table inet %s removed on SIGTERM", lab.Table)
	return 0
}

func (m *demo) pptp() {
	l, srv := m.l, m.srv
	_ = l.ConntrackFlush()
	mark := srv.Mark()
	var procs []*lab.Proc
	for i := 1; i <= 2; i++ {
		p, err := l.StartPPTPClient(i, "--call-id", "1", "--count", "20", "--wait-stdin", "--marker", fmt.Sprintf("lan%d", i))
		if err != nil {
			m.check(false, "start pptp client %d: %v", i, err)
			return
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if _, err := p.WaitStdout(0, 10*time.Second, lab.Contains(`"call-up"`)); err != nil {
			m.check(false, "%s: control connection: %v %s", p.Name, err, strings.Join(p.Stderr(), " "))
		}
	}
	exps, _ := l.Expectations()
	gre := 0
	for _, e := range exps {
		if e.Proto == 47 {
			gre++
		}
	}
	m.check(gre >= 2, "router holds %d GRE expectations (pptp helper) before the first GRE packet", gre)
	for _, p := range procs {
		_ = p.WriteLine("go")
	}
	for i, p := range procs {
		r, err := lab.WaitPPTPClient(p, 20*time.Second)
		server := 0
		if len(r.Calls) > 0 {
			server = r.Calls[0].ServerCallID
		}
		m.check(err == nil && r.OK, "lan%d: Call ID 1, server's Call ID %#x: %d/%d GRE replies, %d meant for the other client%s",
			i+1, server, r.Received, r.Sent, r.Foreign, errText(err))
	}
	seen := map[int]bool{}
	var ids []string
	for _, e := range srv.Events(mark, "ocrq") {
		seen[*e.CallID] = true
		ids = append(ids, fmt.Sprintf("%d (from %s)", *e.CallID, e.From))
	}
	m.check(len(seen) == 2, "server saw distinct translated Call IDs: %s", strings.Join(ids, ", "))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return " — " + err.Error()
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}
