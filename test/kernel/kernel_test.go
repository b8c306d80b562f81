// Package kernel holds the namespace-lab scenarios of issue 2 item 8: the
// daemon ($VPNPT_BIN) in kernel mode, in a router running fw4's default
// ruleset, with PPTP, IPsec and L2TP peers on both sides.
//
// The scenarios share one topology and one daemon and run in order; each
// starts with an empty conntrack table in the router.
package kernel

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

func TestMain(m *testing.M) {
	code := m.Run()
	lab.RemovePeerCache()
	os.Exit(code)
}

// env is what every scenario gets.
type env struct {
	l   *lab.Lab
	srv *lab.Servers
	d   *lab.Daemon
}

func TestKernelMode(t *testing.T) {
	lab.Need(t)
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	fw4Before, err := l.ListTable("inet", "fw4")
	if err != nil {
		t.Fatal(err)
	}
	all := l.KernelUCI()
	d := l.RunDaemon(t, bin, all.String())
	e := &env{l: l, srv: srv, d: d}
	step := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			if ok, _ := d.Exited(); ok {
				t.Fatalf("the daemon is not running:\n%s", d.Log())
			}
			if err := l.ConntrackFlush(); err != nil {
				t.Fatal(err)
			}
			f(t)
		})
	}

	var rulesAllOn *lab.TableObjects
	step("applied", func(t *testing.T) {
		tbl := e.l.OurTable(t)
		rulesAllOn = tbl
		if !contains(tbl.Helpers, "pptp") {
			t.Errorf("no ct helper object pptp in table inet %s (helpers %v)", lab.Table, tbl.Helpers)
		}
		for _, name := range []string{"blocked_pptp", "blocked_ipsec", "blocked_l2tp"} {
			if _, ok := tbl.Counters[name]; ok {
				t.Errorf("counter %s exists while everything is on", name)
			}
		}
		s, raw, err := d.Status()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"pptp", "ipsec", "l2tp"} {
			if dp := s.Datapath(p); dp != "kernel" {
				t.Errorf("status: %s datapath %q, want kernel\n%s", p, dp, raw)
			}
		}
	})

	// fw4's own helper_lan assigns the pptp helper too (zone lan has no
	// masquerade). First with it in place: the daemon must not conflict.
	step("pptp on, fw4 helper also present: same Call ID from two clients", func(t *testing.T) {
		e.pptpSameCallID(t)
	})
	if err := l.DropFW4PPTPHelper(); err != nil {
		t.Fatal(err)
	}
	// Then without it, as on a masquerading LAN zone or with auto_helper
	// off: the daemon alone assigns the helper.
	step("pptp on: same Call ID from two clients", func(t *testing.T) {
		e.pptpSameCallID(t)
	})

	step("ipsec on: IKE, NAT-T, ESP and AH pass", func(t *testing.T) {
		mark := srv.Mark()
		for _, proto := range []string{"ike", "natt"} {
			if r, err := l.UDPClient(1, proto, "--count", "5"); err != nil || !r.OK || r.Received != 5 {
				t.Errorf("%s: %+v, %v", proto, r, err)
			}
		}
		for _, proto := range []string{"esp", "ah"} {
			if r, err := l.RawClient(1, proto, "--count", "5", "--spi", "0x2001"); err != nil || !r.OK || r.Received != 5 {
				t.Errorf("%s: %+v, %v", proto, r, err)
			}
		}
		for _, kind := range []string{"ike", "natt", "esp", "ah"} {
			evs := srv.Events(mark, kind)
			if len(evs) != 5 {
				t.Errorf("server saw %d %s packets, want 5", len(evs), kind)
			}
			for _, ev := range evs {
				if ev.FromIP() != l.WANAddr.String() {
					t.Errorf("server saw %s from %s, want the router's WAN address %s", kind, ev.From, l.WANAddr)
					break
				}
			}
		}
	})

	step("l2tp on: passes", func(t *testing.T) {
		if r, err := l.UDPClient(1, "l2tp", "--count", "5"); err != nil || !r.OK || r.Received != 5 {
			t.Errorf("l2tp: %+v, %v", r, err)
		}
	})

	step("reload with the same config duplicates nothing", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			line, err := d.Reload(5 * time.Second)
			if err != nil || !strings.Contains(line, "msg=applied") {
				t.Fatalf("SIGHUP: %q, %v", line, err)
			}
		}
		lab.SameRules(t, rulesAllOn, e.l.OurTable(t))
	})

	pptpOff := all
	pptpOff.PPTP = false
	step("pptp off: control and GRE blocked, counted", func(t *testing.T) {
		if err := d.Apply(pptpOff.String()); err != nil {
			t.Fatal(err)
		}
		e.pptpBlocked(t)
		// The other protocols are untouched.
		if r, err := l.UDPClient(1, "ike", "--count", "3"); err != nil || !r.OK {
			t.Errorf("ike while only pptp is off: %+v, %v", r, err)
		}
		if r, err := l.UDPClient(1, "l2tp", "--count", "3"); err != nil || !r.OK {
			t.Errorf("l2tp while only pptp is off: %+v, %v", r, err)
		}
	})

	ipsecOff := all
	ipsecOff.IPsec = false
	step("ipsec off: ESP, AH, UDP 500 and 4500 blocked, counted", func(t *testing.T) {
		if err := d.Apply(ipsecOff.String()); err != nil {
			t.Fatal(err)
		}
		e.ipsecBlocked(t)
		if r, err := l.UDPClient(1, "l2tp", "--count", "3"); err != nil || !r.OK {
			t.Errorf("l2tp while only ipsec is off: %+v, %v", r, err)
		}
		// PPTP was switched back on by this config.
		e.pptpSameCallID(t)
	})

	var rulesIPsecOff *lab.TableObjects
	step("repair: table deleted under the daemon is back within 2s", func(t *testing.T) {
		before := e.l.OurTable(t)
		rulesIPsecOff = before
		took := l.DeleteOurTableAndWait(t, 2*time.Second)
		t.Logf("restored after %v", took.Round(time.Millisecond))
		// The whole table, not just its name: give a non-atomic re-create a
		// moment before comparing.
		time.Sleep(200 * time.Millisecond)
		lab.SameRules(t, before, e.l.OurTable(t))
		e.ipsecBlocked(t)
		if s, _, err := d.Status(); err != nil || s.Repairs < 1 {
			t.Errorf("status after a repair: repairs %d, %v", s.Repairs, err)
		}
	})

	step("repair: a flushed chain is refilled within 2s", func(t *testing.T) {
		before := e.l.OurTable(t)
		if _, err := l.Nft("flush", "chain", lab.TableFamily, lab.Table, "forward"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for len(e.l.OurTable(t).Rules) != len(before.Rules) {
			if time.Now().After(deadline) {
				t.Fatalf("forward chain still flushed after 2s:\n%s", d.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
		lab.SameRules(t, before, e.l.OurTable(t))
		e.ipsecBlocked(t)
	})

	l2tpOff := all
	l2tpOff.L2TP = false
	step("l2tp off: UDP 1701 blocked, counted", func(t *testing.T) {
		if err := d.Apply(l2tpOff.String()); err != nil {
			t.Fatal(err)
		}
		mark := srv.Mark()
		c0 := e.counter(t, "blocked_l2tp")
		r, err := l.UDPClient(1, "l2tp", "--count", "4", "--wait", "300ms")
		if err == nil || r.Received != 0 || r.Sent != 4 {
			t.Errorf("l2tp while off: %+v, %v; want 4 sent, 0 received", r, err)
		}
		if evs := srv.Events(mark, "l2tp"); len(evs) != 0 {
			t.Errorf("server saw %d L2TP datagrams while l2tp is off", len(evs))
		}
		if c := e.counter(t, "blocked_l2tp"); c.Packets < c0.Packets+4 {
			t.Errorf("blocked_l2tp went from %d to %d packets, want +4", c0.Packets, c.Packets)
		}
		if r, err := l.UDPClient(1, "ike", "--count", "3"); err != nil || !r.OK {
			t.Errorf("ike while only l2tp is off: %+v, %v", r, err)
		}
	})

	step("log_blocked: block rules log only when asked", func(t *testing.T) {
		logged := func(tbl *lab.TableObjects) int {
			n := 0
			for _, r := range tbl.Rules {
				if strings.Contains(string(r.Expr), `{"log":`) {
					n++
				}
			}
			return n
		}
		if n := logged(e.l.OurTable(t)); n != 0 {
			t.Errorf("%d rules log with log_blocked '0'", n)
		}
		withLog := l2tpOff
		withLog.LogBlocked = true
		if err := d.Apply(withLog.String()); err != nil {
			t.Fatal(err)
		}
		if n := logged(e.l.OurTable(t)); n == 0 {
			t.Errorf("no rule logs with log_blocked '1' and l2tp off")
		}
		// Logging must not change what is blocked.
		r, err := l.UDPClient(1, "l2tp", "--count", "2", "--wait", "300ms")
		if err == nil || r.Received != 0 {
			t.Errorf("l2tp with log_blocked: %+v, %v", r, err)
		}
	})

	step("reload back and forth: same rules for the same config", func(t *testing.T) {
		if err := d.Apply(ipsecOff.String()); err != nil {
			t.Fatal(err)
		}
		lab.SameRules(t, rulesIPsecOff, e.l.OurTable(t))
		if err := d.Apply(all.String()); err != nil {
			t.Fatal(err)
		}
		lab.SameRules(t, rulesAllOn, e.l.OurTable(t))
		if err := d.Apply(all.String()); err != nil {
			t.Fatal(err)
		}
		lab.SameRules(t, rulesAllOn, e.l.OurTable(t))
	})

	step("bad config: refused by name, previous state kept", func(t *testing.T) {
		if err := d.Apply(ipsecOff.String()); err != nil {
			t.Fatal(err)
		}
		before := e.l.OurTable(t)
		bad := strings.Replace(ipsecOff.String(), "config pptp 'pptp'\n\toption enabled '1'", "config pptp 'pptp'\n\toption enabled 'maybe'", 1)
		if bad == ipsecOff.String() {
			t.Fatal("could not make the config invalid")
		}
		if err := d.WriteConfig(bad); err != nil {
			t.Fatal(err)
		}
		line, err := d.Reload(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, "msg=applied") {
			t.Fatalf("an invalid config was applied: %s", line)
		}
		for _, name := range []string{"maybe", "enabled", "pptp"} {
			if !strings.Contains(line, name) {
				t.Errorf("the refusal does not name %q: %s", name, line)
			}
		}
		lab.SameRules(t, before, e.l.OurTable(t))
		e.ipsecBlocked(t)
		e.pptpSameCallID(t)
		if s, _, err := d.Status(); err != nil || !strings.Contains(s.LastError, "maybe") {
			t.Errorf("status last_error %q (%v), want the refusal", s.LastError, err)
		}
		// `check` refuses the same file with the same names.
		_, stderr, err := d.CLI("check", "--config", d.Config)
		if err == nil {
			t.Errorf("check accepted the invalid config")
		}
		for _, name := range []string{"maybe", "enabled", "pptp"} {
			if !strings.Contains(stderr, name) {
				t.Errorf("check's error does not name %q: %s", name, stderr)
			}
		}
		if err := d.Apply(ipsecOff.String()); err != nil {
			t.Fatal(err)
		}
	})

	step("cli: check and apply --dry-run", func(t *testing.T) {
		out, stderr, err := d.CLI("check", "--config", d.Config)
		if err != nil {
			t.Errorf("check on the running config: %v\n%s", err, stderr)
		}
		if !strings.Contains(out, "valid") {
			t.Errorf("check output:\n%s", out)
		}
		out, stderr, err = d.CLI("apply", "--dry-run", "--config", d.Config)
		if err != nil {
			t.Fatalf("apply --dry-run: %v\n%s", err, stderr)
		}
		for _, want := range []string{"table inet " + lab.Table, "blocked_ipsec", `ct helper set "pptp"`} {
			if !strings.Contains(out, want) {
				t.Errorf("apply --dry-run lacks %q:\n%s", want, out)
			}
		}
		// nft must accept it as it stands: load it into a scratch namespace.
		if err := e.nftCheck(out); err != nil {
			t.Errorf("nft -c rejects the dry-run output: %v", err)
		}
	})

	step("shutdown: SIGTERM removes everything of ours", func(t *testing.T) {
		if err := d.Stop(5 * time.Second); err != nil {
			t.Errorf("daemon exit: %v\n%s", err, d.Log())
		}
		if ok, err := l.TableExists(lab.TableFamily, lab.Table); err != nil || ok {
			t.Errorf("table inet %s still exists after SIGTERM (%v)", lab.Table, err)
		}
		rs, err := l.NftRuleset()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(rs, "\n") {
			// Table headers only: rule comments may say "flowtable".
			if l := strings.TrimSpace(line); strings.HasPrefix(l, "table ") && !strings.HasPrefix(l, "table inet fw4 ") {
				t.Errorf("a table other than fw4 is left: %s", strings.TrimSpace(line))
			}
		}
		after, err := l.ListTable("inet", "fw4")
		if err != nil {
			t.Fatal(err)
		}
		// fw4 is as the lab loaded it, minus the helper rule the test removed.
		want := map[string]int{}
		for _, r := range fw4Before.Rules {
			if !(r.Chain == "helper_lan" && strings.Contains(string(r.Expr), `"pptp"`)) {
				want[r.Key()]++
			}
		}
		got := map[string]int{}
		for _, r := range after.Rules {
			got[r.Key()]++
		}
		if diff := lab.MapDiff(want, got); diff != "" {
			t.Errorf("fw4's table changed:\n%s", diff)
		}
	})
}

// counter reads a named counter of our table plus the guard table's copy
// (whichever table drops a packet first counts it; status sums them too).
func (e *env) counter(t *testing.T, name string) lab.Counter {
	t.Helper()
	c, err := e.l.ReadCounter(lab.TableFamily, lab.Table, name)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := e.l.ReadCounter(lab.TableFamily, guardTable, name); err == nil {
		c.Packets += g.Packets
		c.Bytes += g.Bytes
	}
	return c
}

// guardTable is plan.GuardTable (the lab tests read nft, not our packages).
const guardTable = "vpnpt_guard"

// pptpSameCallID: two LAN clients open a call with Call ID 1 to the same
// server. The router must hold GRE expectations before the first GRE packet;
// each client must get exactly its own 20 GRE replies; the server must see two
// distinct (translated) Call IDs from the router's WAN address.
func (e *env) pptpSameCallID(t *testing.T) {
	t.Helper()
	l, srv := e.l, e.srv
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	mark := srv.Mark()
	var procs []*lab.Proc
	for i := 1; i <= 2; i++ {
		p, err := l.StartPPTPClient(i, "--call-id", "1", "--count", "20", "--wait-stdin", "--marker", fmt.Sprintf("lan%d", i))
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	up := true
	for _, p := range procs {
		if _, err := p.WaitStdout(0, 10*time.Second, lab.Contains(`"call-up"`)); err != nil {
			t.Errorf("%v: stdout %q stderr %q", err, p.Stdout(), p.Stderr())
			up = false
		}
	}
	if up {
		exps, err := l.Expectations()
		if err != nil {
			t.Fatal(err)
		}
		perClient := map[string]int{}
		for _, x := range exps {
			if x.Proto == 47 && x.Helper == "pptp" {
				perClient[x.Fields["master-src"]]++
			}
		}
		for _, c := range l.Clients[:2] {
			if perClient[c.Addr.String()] == 0 {
				var raw []string
				for _, x := range exps {
					raw = append(raw, x.Raw)
				}
				t.Errorf("no GRE expectation for %s before the first GRE packet; expectations:\n%s", c.Addr, strings.Join(raw, "\n"))
			}
		}
	}
	for _, p := range procs {
		_ = p.WriteLine("go")
	}
	for i, p := range procs {
		r, err := lab.WaitPPTPClient(p, 20*time.Second)
		if err != nil || !r.OK || r.Received != 20 || r.Foreign != 0 || r.WrongKey != 0 {
			t.Errorf("lan%d: %v; result %+v", i+1, err, r)
			continue
		}
		if got := r.Calls[0].PeerCallIDInReply; got != 1 {
			t.Errorf("lan%d: Outgoing-Call-Reply carried Peer's Call ID %d, want its own 1", i+1, got)
		}
	}
	ids, errs := srv.OutgoingCallIDs(mark, l.WANAddr.String())
	for _, err := range errs {
		t.Error(err)
	}
	if len(ids) != 2 {
		t.Errorf("server saw %d distinct Call IDs (%v), want 2", len(ids), ids)
	}
	if evs := srv.Events(mark, "gre"); len(evs) != 40 {
		t.Errorf("server saw %d GRE packets, want 40", len(evs))
	}
}

// pptpBlocked: with PPTP off, neither the control connection nor GRE get
// through, and blocked_pptp counts them.
func (e *env) pptpBlocked(t *testing.T) {
	t.Helper()
	l, srv := e.l, e.srv
	mark := srv.Mark()
	c0 := e.counter(t, "blocked_pptp")
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
	if c := e.counter(t, "blocked_pptp"); c.Packets < c0.Packets+6 {
		t.Errorf("blocked_pptp went from %d to %d packets, want at least +6 (a SYN and 5 GRE)", c0.Packets, c.Packets)
	}
}

// ipsecBlocked: with IPsec off, ESP, AH, IKE and NAT-T are blocked and
// blocked_ipsec counts them.
func (e *env) ipsecBlocked(t *testing.T) {
	t.Helper()
	l, srv := e.l, e.srv
	mark := srv.Mark()
	c0 := e.counter(t, "blocked_ipsec")
	for _, proto := range []string{"ike", "natt"} {
		r, err := l.UDPClient(1, proto, "--count", "3", "--wait", "300ms")
		if err == nil || r.Received != 0 || r.Sent != 3 {
			t.Errorf("%s while ipsec is off: %+v, %v; want 3 sent, 0 received", proto, r, err)
		}
	}
	for _, proto := range []string{"esp", "ah"} {
		r, err := l.RawClient(1, proto, "--count", "3", "--wait", "300ms", "--spi", "0x3001")
		if err == nil || r.Received != 0 || r.Sent != 3 {
			t.Errorf("%s while ipsec is off: %+v, %v; want 3 sent, 0 received", proto, r, err)
		}
	}
	if evs := srv.Events(mark, "ike", "natt", "esp", "ah", "bad"); len(evs) != 0 {
		t.Errorf("server saw %d IPsec packets while ipsec is off", len(evs))
	}
	if c := e.counter(t, "blocked_ipsec"); c.Packets < c0.Packets+12 {
		t.Errorf("blocked_ipsec went from %d to %d packets, want +12", c0.Packets, c.Packets)
	}
}

// nftCheck loads ruleset text with `nft -c -f -` in a scratch namespace.
func (e *env) nftCheck(ruleset string) error {
	ns, err := e.l.NewNamespace("chk")
	if err != nil {
		return err
	}
	defer func() { _ = e.l.DeleteNamespace(ns) }()
	_, err = e.l.ExecStdin(ns, ruleset, "nft", "-c", "-f", "-")
	return err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
