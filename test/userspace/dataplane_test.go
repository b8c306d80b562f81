package userspace

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/probe"
	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// TestDaemonKilledMidCall: an established call sends GRE steadily while the
// daemon is killed (SIGKILL), stays down for a second and is started again.
// On the kernel data plane the kernel keeps forwarding the call from its
// maps: no GRE packet may be lost. On the NFQUEUE fallback the GRE sent
// while no engine runs is lost, but silently: neither datapath may send an
// ICMP error to the server (a real pptpd tears the call down on one), and on
// both the call goes on and is cleared normally afterwards.
func TestDaemonKilledMidCall(t *testing.T) {
	lab.Need(t)
	for _, dp := range datapaths {
		t.Run(dp.name, func(t *testing.T) {
			t.Setenv(probe.DisableEnv, dp.disable)
			killedMidCall(t, dp.disable == "")
		})
	}
}

var reElements = regexp.MustCompile(`counter packets (\d+)`)

func killedMidCall(t *testing.T, kernel bool) {
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{Clients: 2})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	// ICMP errors the server receives from the router.
	if _, err := l.ExecStdin(l.Server.NS, "table ip icmpcount {\n chain in { type filter hook input priority 0; icmp type { destination-unreachable, parameter-problem } counter; }\n}\n",
		"nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	icmpErrors := func() int {
		out, err := l.Exec(l.Server.NS, "nft", "list", "table", "ip", "icmpcount")
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no counter in %s", out)
		}
		n, _ := strconv.Atoi(m[1])
		return n
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
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	const count = 250 // 5 s of GRE at 20 ms
	p, _ := e.callUp(1, "--call-id", "1", "--count", fmt.Sprint(count), "--interval", "20ms", "--timeout", "60s", "--marker", "survivor")
	calls := func() []string {
		out, err := l.Nft("list", "set", lab.TableFamily, lab.Table, "pptp_gre_calls")
		if err != nil {
			t.Fatal(err)
		}
		return reElements.FindAllString(out, -1)
	}
	if kernel {
		if n := len(calls()); n != 1 {
			t.Fatalf("%d pptp_gre_calls elements while one call is up", n)
		}
	}
	icmpBefore := icmpErrors()
	// Accepted by the server, but no GRE yet: not established.
	if st := e.waitState("", "connected", time.Second); st != "connected" {
		t.Errorf("call up, no GRE yet: state %q, want connected", st)
	}
	_ = p.WriteLine("go")
	// GRE flows both ways: established, within the engine's once-a-second
	// look at the counters.
	if st := e.waitState("", "established", lab.Scale(2500*time.Millisecond)); st != "established" {
		t.Errorf("GRE flowing both ways: state %q, want established", st)
	}
	old := e.d
	old.Kill()
	logs = append(logs, old.Log())
	down := time.Now()
	time.Sleep(time.Second)
	e.startDaemon()
	back := time.Now()
	// Restored from the state file; established again only once GRE has
	// flowed both ways since the restart.
	if st := e.waitState("", "established", lab.Scale(1500*time.Millisecond)); st != "established" {
		t.Errorf("after the restart, GRE flowing both ways: state %q, want established", st)
	}
	r, err := lab.WaitPPTPClient(p, 30*time.Second)
	lost := count - r.Received
	t.Logf("GRE replies lost across SIGKILL, 1 s down and restart: %d of %d (kernel maps: %v)", lost, r.Sent, kernel)
	if r.Sent != count || r.Foreign != 0 || r.WrongKey != 0 || len(r.Calls) != 1 || !r.Calls[0].Cleared {
		t.Errorf("the call across the restart: %v %+v", err, r)
	}
	if kernel && lost != 0 {
		t.Errorf("%d GRE replies lost on the kernel data plane, want 0", lost)
	}
	// On the fallback the GRE replies sent while no engine runs are lost
	// (the queue's bypass lets them through unhandled, and the plan drops
	// them silently); none after the restart: at most one per 20 ms of the
	// outage from the kill until the daemon applied again, plus two for
	// replies in flight.
	if bound := int(back.Sub(down)/(20*time.Millisecond)) + 2; !kernel && lost > bound {
		t.Errorf("%d GRE replies lost on the fallback, more than the %d the %v outage explains", lost, bound, back.Sub(down).Round(time.Millisecond))
	}
	if n := icmpErrors() - icmpBefore; n != 0 {
		t.Errorf("the router sent %d ICMP errors to the server while the daemon was down", n)
	}
	if kernel {
		if n := len(calls()); n != 0 {
			t.Errorf("%d pptp_gre_calls elements after the call was cleared", n)
		}
	}
	e.noSessions(t)
}
