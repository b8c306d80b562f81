// Package userspace holds the namespace-lab scenarios of the userspace PPTP
// engine (issue 3): every PPTP scenario of the kernel-mode lab, now with
// `option mode 'userspace'` (forced, so it runs on this kernel even though
// the kernel has the helper), plus three clients with the same Call ID,
// teardown and re-open, SIGKILL and restart mid-call, and unsolicited GRE.
//
// The scenarios share one topology (three LAN clients, fw4's default
// ruleset, the WAN servers) and run in order against $VPNPT_BIN; each starts
// with an empty conntrack table in the router.
package userspace

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/probe"
	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

func TestMain(m *testing.M) {
	code := m.Run()
	lab.RemovePeerCache()
	os.Exit(code)
}

// TestUserspaceMode runs on the NFQUEUE fallback (every GRE packet crosses
// the engine); TestKernelDataPlane and TestAttacks cover the kernel maps.
func TestUserspaceMode(t *testing.T) {
	lab.Need(t)
	t.Setenv(probe.DisableEnv, "nft_map_payload")
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{Clients: 3})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	// Per-flow accounting, as OpenWrt enables it: the session table's
	// outbound counts come from conntrack.
	if _, err := l.RouterExec("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1"); err != nil {
		t.Fatal(err)
	}
	cfg := l.KernelUCI()
	cfg.Mode = "userspace"
	e := &env{t: t, l: l, srv: srv, bin: bin, cfg: cfg}
	e.startDaemon()
	var logs []string
	t.Cleanup(func() {
		if e.d != nil {
			e.d.Kill()
			logs = append(logs, e.d.Log())
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", strings.Join(logs, "\n--- restarted ---\n"))
		}
		removeFiles(e.stateFiles())
	})
	step := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = nil }()
			if ok, _ := e.d.Exited(); ok {
				t.Fatalf("the daemon is not running:\n%s", e.d.Log())
			}
			if err := l.ConntrackFlush(); err != nil {
				t.Fatal(err)
			}
			f(t)
		})
	}

	var rulesOn *lab.TableObjects
	step("applied: userspace datapath through the compat queue target, no helper", func(t *testing.T) {
		s := e.status()
		if dp := s.datapath("pptp"); dp != "userspace" {
			t.Errorf("pptp datapath %q, want userspace", dp)
		}
		if !strings.Contains(s.QueueRules, "compat") && !strings.Contains(s.QueueRules, "native") {
			t.Errorf("status does not say which queue rules are in use: %q", s.QueueRules)
		}
		t.Logf("queue rules: %s", s.QueueRules)
		tbl := e.l.OurTable(t)
		rulesOn = tbl
		// The kernel's helper only for the router's own PPTP control
		// connections (output); LAN calls are the engine's.
		if len(tbl.Helpers) > 1 || len(tbl.Helpers) == 1 && !contains(tbl.Chains, "output") {
			t.Errorf("ct helper objects in userspace mode: %v (chains %v)", tbl.Helpers, tbl.Chains)
		}
		for _, c := range []string{"pptp_raw", "pptp_untrack"} {
			if !contains(tbl.Chains, c) {
				t.Errorf("no chain %s (chains %v)", c, tbl.Chains)
			}
		}
		text, _, err := e.d.CLI("status", "--socket", e.d.Socket)
		if err != nil || !strings.Contains(text, "queue rules:") {
			t.Errorf("status text (%v):\n%s", err, text)
		}
	})

	// fw4's helper_lan assigns the kernel pptp helper (zone lan has no
	// masquerade, and this kernel has the helper): the realistic case of
	// mode userspace on a kernel with the helper. The engine must take the
	// helper off each control connection, or the kernel would translate
	// the Call IDs a second time.
	step("pptp, fw4 helper present: same Call ID from two clients", func(t *testing.T) {
		before := e.counter("kernel_helper_removed")
		e.sameCallID(t, 2)
		if got := e.counter("kernel_helper_removed") - before; got < 2 {
			t.Errorf("kernel helper removed from %d control connections, want 2", got)
		}
		tcp, gre := e.conntrackPPTP()
		for _, line := range tcp {
			if strings.Contains(line, "helper=pptp") {
				t.Errorf("a control connection still has the kernel helper: %s", line)
			}
		}
		// Outbound GRE is masqueraded by the kernel: one entry per call,
		// keyed by the server's Call ID. Inbound GRE, which the engine
		// translates, must have none.
		out := 0
		for _, line := range gre {
			origSrc := ""
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "src=") {
					origSrc = strings.TrimPrefix(f, "src=")
					break
				}
			}
			switch {
			case origSrc == l.Server.Addr.String():
				t.Errorf("conntrack tracks inbound GRE (the engine's must be untracked): %s", line)
			case strings.HasPrefix(origSrc, "10.10."):
				out++
			}
		}
		if out != 2 {
			t.Errorf("%d outbound GRE entries, want one per call (2):\n%s", out, strings.Join(gre, "\n"))
		}
		if exps, err := l.Expectations(); err == nil && len(exps) != 0 {
			t.Errorf("conntrack expectations exist: %+v", exps)
		}
	})

	step("three clients, same Call ID, one server", func(t *testing.T) {
		e.sameCallID(t, 3)
	})

	// Emulate a kernel without the module, as far as fw4 is concerned.
	if err := l.DropFW4PPTPHelper(); err != nil {
		t.Fatal(err)
	}
	step("pptp, no fw4 helper: same Call ID from two clients", func(t *testing.T) {
		e.sameCallID(t, 2)
	})

	step("teardown and re-open: three calls in turn on each of two connections, same Call ID", func(t *testing.T) {
		mark := srv.Mark()
		var procs []*lab.Proc
		for i := 1; i <= 2; i++ {
			p, err := l.StartPPTPClient(i, "--call-id", "7", "--calls", "3", "--count", "10", "--marker", fmt.Sprintf("reopen%d", i))
			if err != nil {
				t.Fatal(err)
			}
			procs = append(procs, p)
		}
		for i, p := range procs {
			r, err := lab.WaitPPTPClient(p, 30*time.Second)
			if err != nil || !r.OK || len(r.Calls) != 3 {
				t.Errorf("lan%d: %v; %+v", i+1, err, r)
				continue
			}
			for j, c := range r.Calls {
				if c.Received != 10 || c.PeerCallIDInReply != 7 || !c.Cleared {
					t.Errorf("lan%d call %d: %+v", i+1, j+1, c)
				}
			}
		}
		if n := len(srv.Events(mark, "ocrq")); n != 6 {
			t.Errorf("server saw %d Outgoing-Call-Requests, want 6", n)
		}
		for _, ev := range srv.Events(mark, "call-clear") {
			if ev.Error != "" {
				t.Errorf("server: %+v", ev)
			}
		}
		if n := len(srv.Events(mark, "call-clear")); n != 6 {
			t.Errorf("server saw %d Call-Clear-Requests, want 6", n)
		}
		e.noSessions(t)
	})

	step("session table: status shows each call with counters, age and idle time", func(t *testing.T) {
		// The call must outlive the status reads below, also under TCG.
		p, _ := e.callUp(1, "--call-id", "4242", "--count", "20", "--interval", lab.Scale(100*time.Millisecond).String(), "--marker", "table")
		_ = p.WriteLine("go")
		time.Sleep(lab.Scale(600 * time.Millisecond))
		s := e.status()
		ss := s.pptpSessions()
		if len(ss) != 1 {
			t.Fatalf("sessions %+v", ss)
		}
		x := ss[0]
		if x.Client != l.Client(1).Addr.String() || x.Server != l.Server.Addr.String() || x.OrigID != "4242" ||
			x.TransID == "" || x.PeerID == "" || x.PacketsOut == 0 || x.PacketsIn == 0 || x.BytesOut == 0 || x.BytesIn == 0 ||
			x.AgeSeconds < 0 || x.IdleSeconds < 0 || x.IdleSeconds > 1 {
			t.Errorf("session %+v", x)
		}
		text, _, err := e.d.CLI("status", "--socket", e.d.Socket)
		if err != nil || !strings.Contains(text, "4242 > "+x.TransID) || !strings.Contains(text, l.Client(1).Addr.String()) {
			t.Errorf("status text (%v) lacks the session:\n%s", err, text)
		}
		if r, err := lab.WaitPPTPClient(p, 20*time.Second); err != nil || !r.OK {
			t.Errorf("client: %v %+v", err, r)
		}
	})

	step("unsolicited GRE from the WAN with guessed Call IDs is not forwarded", func(t *testing.T) {
		p, _ := e.callUp(1, "--call-id", "1", "--count", "20", "--marker", "victim")
		ss := e.status().pptpSessions()
		if len(ss) != 1 {
			t.Fatalf("sessions %+v", ss)
		}
		trans, _ := strconv.Atoi(ss[0].TransID)
		// Guesses: the client's own Call ID, small numbers, the server's
		// range, and the neighbours of the real translation.
		var guesses []int
		for _, g := range []int{1, 2, 3, 0x7001, 0x7002, trans - 1, trans + 1, 0xffff} {
			if g != trans && g > 0 && g <= 0xffff {
				guesses = append(guesses, g)
			}
		}
		inBefore := e.nftCounter("passed_pptp_in")
		unknownBefore := e.counter("gre_in_unknown_call")
		greInBefore := e.counter("gre_in")
		peer, err := l.PeerBin()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range guesses {
			// From the server's namespace, to the router's WAN address.
			_, _, _ = l.ExecSplit(l.Server.NS, peer, "pptp-client", "--server", l.WANAddr.String(), "--gre-only",
				"--call-id", "9", "--server-call-id", fmt.Sprint(g), "--count", "3", "--interval", "1ms", "--wait", "100ms", "--marker", "attacker")
		}
		if got := e.counter("gre_in_unknown_call") - unknownBefore; got != uint64(3*len(guesses)) {
			t.Errorf("gre_in_unknown_call rose by %d, want %d", got, 3*len(guesses))
		}
		if got := e.nftCounter("passed_pptp_in"); got != inBefore {
			t.Errorf("passed_pptp_in went from %d to %d: GRE was forwarded to the LAN", inBefore, got)
		}
		_ = p.WriteLine("go")
		r, err := lab.WaitPPTPClient(p, 20*time.Second)
		if err != nil || !r.OK || r.Received != 20 || r.Foreign != 0 || r.WrongKey != 0 {
			t.Errorf("the victim's call: %v %+v", err, r)
		}
		if got := e.counter("gre_in") - greInBefore; got != 20 {
			t.Errorf("the engine demultiplexed %d inbound GRE packets, want the call's 20", got)
		}
	})

	step("SIGKILL mid-call and restart: GRE flows again within 5 s", func(t *testing.T) {
		p, sid := e.callUp(1, "--call-id", "1", "--count", "20", "--marker", "survivor")
		ss := e.status().pptpSessions()
		if len(ss) != 1 {
			t.Fatalf("sessions %+v", ss)
		}
		trans := ss[0].TransID
		// Probes use the call's key from the same client; their marker
		// shares the held client's prefix, so it does not count their
		// replies as foreign.
		probe := func(wait string) bool {
			r, err := l.PPTPClient(1, "--gre-only", "--call-id", "1", "--server-call-id", fmt.Sprint(sid),
				"--count", "2", "--interval", "1ms", "--wait", wait, "--marker", "survivor-probe")
			return err == nil && r.OK && r.Received == 2
		}
		if !probe("500ms") {
			t.Fatal("GRE does not flow before the kill")
		}
		old := e.d
		killed := time.Now()
		old.Kill()
		logs = append(logs, old.Log())
		e.startDaemon()
		restarted := time.Since(killed)
		var flowing time.Duration
		for time.Since(killed) < lab.Scale(8*time.Second) {
			if probe("300ms") {
				flowing = time.Since(killed)
				break
			}
		}
		t.Logf("SIGKILL -> daemon applied again: %v; -> GRE round trip through the restored call: %v", restarted.Round(time.Millisecond), flowing.Round(time.Millisecond))
		if bound := lab.Scale(5 * time.Second); flowing == 0 || flowing > bound {
			t.Fatalf("GRE did not flow again within %v of the kill (after %v)\n%s", bound, flowing, e.d.Log())
		}
		// The probes' GRE went both ways through the restored call since
		// the restart: established again (the engine looks once a second).
		if st := e.waitState(trans, "established", lab.Scale(2*time.Second)); st != "established" {
			t.Errorf("the restored call after GRE both ways: state %q, want established", st)
		}
		if ss = e.status().pptpSessions(); len(ss) != 1 || ss[0].TransID != trans {
			t.Errorf("sessions after restart %+v, want the call with translated ID %s", ss, trans)
		}
		// The held client now sends its GRE and clears the call: the new
		// engine translates the Call-Clear-Request again.
		mark := srv.Mark()
		_ = p.WriteLine("go")
		r, err := lab.WaitPPTPClient(p, 20*time.Second)
		if err != nil || !r.OK || r.Received != 20 || !r.Calls[0].Cleared {
			t.Errorf("the call after the restart: %v %+v", err, r)
		}
		for _, ev := range srv.Events(mark, "call-clear") {
			if ev.Error != "" || fmt.Sprint(*ev.CallID) != trans {
				t.Errorf("server's Call-Clear-Request after the restart: %+v (want Call ID %s)", ev, trans)
			}
		}
		e.noSessions(t)
	})

	step("reload keeps calls and duplicates nothing", func(t *testing.T) {
		p, _ := e.callUp(2, "--call-id", "1", "--count", "20", "--marker", "reload")
		for i := 0; i < 2; i++ {
			line, err := e.d.Reload(lab.Scale(5 * time.Second))
			if err != nil || !strings.Contains(line, "msg=applied") {
				t.Fatalf("SIGHUP: %q, %v", line, err)
			}
		}
		lab.SameRules(t, rulesOn, e.l.OurTable(t))
		if n := len(e.status().pptpSessions()); n != 1 {
			t.Errorf("%d sessions after two reloads, want 1", n)
		}
		_ = p.WriteLine("go")
		if r, err := lab.WaitPPTPClient(p, 20*time.Second); err != nil || !r.OK || r.Received != 20 {
			t.Errorf("call across reloads: %v %+v", err, r)
		}
	})

	step("queue_base moved by one: the engines swap queue numbers without a restart", func(t *testing.T) {
		// PPTP moves to 4201, which the ESP engine holds until it moves to
		// 4202: stale engines must let go before new ones bind.
		moved := cfg.String() + "\nconfig globals 'globals'\n\toption queue_base '4201'\n"
		if err := e.d.Apply(moved); err != nil {
			t.Fatalf("%v\n%s", err, e.d.Log())
		}
		if le := e.status().LastError; le != "" {
			t.Fatalf("last_error after moving queue_base: %s", le)
		}
		e.sameCallID(t, 2)
		if err := e.d.Apply(cfg.String()); err != nil {
			t.Fatal(err)
		}
		lab.SameRules(t, rulesOn, e.l.OurTable(t))
	})

	pptpOff := cfg
	pptpOff.PPTP = false
	step("pptp off: control and GRE blocked, counted; back on: works", func(t *testing.T) {
		if err := e.d.Apply(pptpOff.String()); err != nil {
			t.Fatal(err)
		}
		e.pptpBlocked(t)
		if err := e.d.Apply(cfg.String()); err != nil {
			t.Fatal(err)
		}
		lab.SameRules(t, rulesOn, e.l.OurTable(t))
		e.sameCallID(t, 2)
	})

	step("repair: table deleted under the daemon is back within 2 s, PPTP works", func(t *testing.T) {
		l.DeleteOurTableAndWait(t, 2*time.Second)
		time.Sleep(200 * time.Millisecond)
		lab.SameRules(t, rulesOn, e.l.OurTable(t))
		e.sameCallID(t, 2)
	})

	step("bad config: refused by name, userspace PPTP keeps working", func(t *testing.T) {
		bad := strings.Replace(cfg.String(), "option mode 'userspace'", "option mode 'user-space'", 1)
		if bad == cfg.String() {
			t.Fatal("could not make the config invalid")
		}
		if err := e.d.WriteConfig(bad); err != nil {
			t.Fatal(err)
		}
		line, err := e.d.Reload(5 * time.Second)
		if err != nil || strings.Contains(line, "msg=applied") || !strings.Contains(line, "user-space") {
			t.Errorf("invalid mode: %q, %v", line, err)
		}
		e.sameCallID(t, 2)
		if err := e.d.Apply(cfg.String()); err != nil {
			t.Fatal(err)
		}
	})

	step("shutdown: SIGTERM removes the table and the state file", func(t *testing.T) {
		files := e.stateFiles()
		if err := e.d.Stop(5 * time.Second); err != nil {
			t.Errorf("daemon exit: %v", err)
		}
		if ok, err := l.TableExists(lab.TableFamily, lab.Table); err != nil || ok {
			t.Errorf("table inet %s still exists after SIGTERM (%v)", lab.Table, err)
		}
		for _, f := range files {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("state file %s left after a clean stop", f)
			}
		}
	})
}

// pptpBlocked: with PPTP off, neither the control connection nor GRE get
// through, and blocked_pptp counts them.
func (e *env) pptpBlocked(t *testing.T) {
	t.Helper()
	l, srv := e.l, e.srv
	mark := srv.Mark()
	c0 := e.nftCounter("blocked_pptp")
	r, err := l.PPTPClient(1, "--call-id", "1", "--connect-timeout", "1s", "--timeout", "3s")
	if err == nil || r.Connected {
		t.Errorf("PPTP control connection while pptp is off: %+v, %v", r, err)
	}
	g, err := l.PPTPClient(1, "--gre-only", "--call-id", "1", "--server-call-id", "28673", "--count", "5", "--wait", "300ms")
	if err == nil || g.Received != 0 || g.Sent != 5 {
		t.Errorf("GRE while pptp is off: %+v, %v; want 5 sent, 0 received", g, err)
	}
	if evs := srv.Events(mark, "control-open", "gre", "gre-bad"); len(evs) != 0 {
		t.Errorf("server saw %d PPTP events while pptp is off: %+v", len(evs), evs)
	}
	if c := e.nftCounter("blocked_pptp"); c < c0+6 {
		t.Errorf("blocked_pptp went from %d to %d packets, want at least +6 (a SYN and 5 GRE)", c0, c)
	}
	if n := len(e.status().pptpSessions()); n != 0 {
		t.Errorf("%d pptp sessions while pptp is off", n)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
