package userspace

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/probe"
	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// TestAttacks: spoofed and malformed packets against live calls of the
// userspace PPTP engine (issue 8). Control-connection state follows what
// conntrack and the endpoints accept, so none of these may end a call, lose
// its GRE, or lock other clients out; inbound GRE reaches a call's client
// only when it was sent to the router's WAN address.
func TestAttacks(t *testing.T) {
	lab.Need(t)
	for _, dp := range datapaths {
		t.Run(dp.name, func(t *testing.T) {
			t.Setenv(probe.DisableEnv, dp.disable)
			attacks(t, dp.disable == "")
		})
	}
}

// datapaths are the two ways the PPTP engine runs: with the kernel data
// plane (this kernel has it) and the NFQUEUE fallback of kernels without it,
// forced through the probe's VPNPT_DISABLE_CAPS.
var datapaths = []struct {
	name    string
	disable string
}{{"kernel maps", ""}, {"nfqueue fallback", "nft_map_payload"}}

func attacks(t *testing.T, kernel bool) {
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{Clients: 3})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	peer, err := l.PeerBin()
	if err != nil {
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
	spoof := func(ns string, args ...string) {
		t.Helper()
		out, stderr, err := l.ExecSplit(ns, append([]string{peer, "spoof"}, args...)...)
		if err != nil || !strings.Contains(out, `"sent"`) {
			e.t.Fatalf("spoof %v: %v\n%s%s", args, err, out, stderr)
		}
	}
	// victim opens a held call on lan1 and returns it with its session.
	victim := func(marker string) (*lab.Proc, session) {
		p, _ := e.callUp(1, "--call-id", "1", "--count", "20", "--timeout", "90s", "--marker", marker)
		ss := e.status().pptpSessions()
		if len(ss) != 1 {
			e.t.Fatalf("sessions %+v", ss)
		}
		return p, ss[0]
	}
	// alive checks that the victim's call is still in the table and that
	// all its GRE still comes back, only its own.
	alive := func(p *lab.Proc, trans string) {
		t := e.t
		t.Helper()
		ss := e.status().pptpSessions()
		if len(ss) != 1 || ss[0].TransID != trans {
			t.Errorf("sessions after the attack %+v, want the victim's call (translated %s)", ss, trans)
		}
		_ = p.WriteLine("go")
		r, err := lab.WaitPPTPClient(p, 30*time.Second)
		if err != nil || !r.OK || r.Received != 20 || r.Foreign != 0 || r.WrongKey != 0 || len(r.Calls) != 1 || !r.Calls[0].Cleared {
			t.Errorf("the victim's call after the attack: %v %+v", err, r)
		}
		e.noSessions(t)
	}
	// ports returns the victim's control connection: the client's port
	// and the router's masqueraded (NAT) port.
	ports := func(client int) (cport, natport string) {
		tcp, _ := e.conntrackPPTP()
		for _, line := range tcp {
			if !strings.Contains(line, "src="+l.Client(client).Addr.String()+" ") {
				continue
			}
			var sports, dports []string
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "sport="); ok {
					sports = append(sports, v)
				}
				if v, ok := strings.CutPrefix(f, "dport="); ok {
					dports = append(dports, v)
				}
			}
			if len(sports) == 2 && len(dports) == 2 {
				return sports[0], dports[1]
			}
		}
		e.t.Fatalf("no control connection of lan%d in conntrack: %v", client, tcp)
		return "", ""
	}
	server, wan := l.Server.Addr.String(), l.WANAddr.String()
	// rstSweep: RSTs spoofed as the server to the router's WAN address and
	// the NAT port, stepping the sequence number by 65,536 over the whole
	// space, so that some land in the receive window.
	rstSweep := func(natport string) {
		spoof(l.Server.NS, "--src", server, "--sport", "1723", "--dst", wan, "--dport", natport,
			"--flags", "R", "--rand-seq", "--count", "1", "--timeout", "60s")
		spoof(l.Server.NS, "--src", server, "--sport", "1723", "--dst", wan, "--dport", natport,
			"--flags", "R", "--seq", fmt.Sprint(time.Now().UnixNano()&0xffff), "--seq-step", "65536", "--count", "65536", "--timeout", "60s")
	}

	step("WAN: 65,536 RSTs spoofed as the server to the NAT port do not end a live call", func(t *testing.T) {
		p, s := victim("rst-sweep")
		_, natport := ports(1)
		rstSweep(natport)
		alive(p, s.TransID)
	})

	step("LAN: another host spoofing a client's address and port sends a SYN, the call stays", func(t *testing.T) {
		p, s := victim("syn-spoof")
		cport, _ := ports(1)
		synBefore, rstBefore, invBefore := e.counter("control_syn_ignored"), e.counter("control_rst_ignored"), e.nftCounter("invalid_pptp_control")
		spoof(l.Client(2).NS, "--src", l.Client(1).Addr.String(), "--sport", cport, "--dst", server, "--dport", "1723",
			"--flags", "S", "--rand-seq", "--count", "3")
		spoof(l.Client(2).NS, "--src", l.Client(1).Addr.String(), "--sport", cport, "--dst", server, "--dport", "1723",
			"--flags", "R", "--rand-seq", "--count", "3")
		// conntrack ignores a SYN on an established connection (the
		// engine drops it); the RSTs it does not close the connection on
		// are dropped by the plan (invalid) or the engine.
		if got := e.counter("control_syn_ignored") - synBefore; got != 3 {
			t.Errorf("control_syn_ignored rose by %d, want the 3 spoofed SYNs", got)
		}
		if got := e.counter("control_rst_ignored") - rstBefore + e.nftCounter("invalid_pptp_control") - invBefore; got != 3 {
			t.Errorf("control_rst_ignored + invalid_pptp_control rose by %d, want the 3 spoofed RSTs", got)
		}
		alive(p, s.TransID)
	})

	step("LAN: forged and malformed control messages on another client's connection change nothing", func(t *testing.T) {
		p, s := victim("forged-ctrl")
		cport, _ := ports(1)
		before := e.nftCounter("invalid_pptp_control") + e.counter("control_out_of_window")
		// A Call-Clear-Request for the victim's Call ID (1), and a
		// Stop-Control-Connection-Request, each at ten sequence numbers
		// far from the stream's; then a message with a bad magic cookie.
		ccrq := fmt.Sprintf("%x", msgCCRQ(1))
		stop := fmt.Sprintf("%x", ctrlMsg(3, 16, map[int]uint16{12: 1}))
		bad := fmt.Sprintf("%x", ctrlMsg(7, 168, map[int]uint16{4: 0xdead, 12: 1}))
		for _, pl := range []string{ccrq, stop, bad} {
			spoof(l.Client(2).NS, "--src", l.Client(1).Addr.String(), "--sport", cport, "--dst", server, "--dport", "1723",
				"--flags", "PA", "--rand-seq", "--payload-hex", pl, "--count", "10")
		}
		if got := e.nftCounter("invalid_pptp_control") + e.counter("control_out_of_window") - before; got != 30 {
			t.Errorf("invalid_pptp_control + control_out_of_window rose by %d, want the 30 forged segments", got)
		}
		alive(p, s.TransID)
	})

	step("LAN: malformed control messages in a client's own stream are counted and change no other client's call", func(t *testing.T) {
		p, s := victim("own-malformed")
		badBefore, lostBefore := e.counter("control_bad_messages"), e.counter("control_lost_sync")
		c, err := dialFrom(l.Client(2).NS, net.JoinHostPort(server, "1723"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(lab.Scale(10 * time.Second)))
		// A real start, so the engine follows the stream from a message
		// boundary.
		if _, err := c.Write(msgSCCRQ()); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 156)); err != nil {
			t.Fatalf("no Start-Control-Connection-Reply: %v", err)
		}
		// Then, in one segment: a Call-Clear-Request for the victim's
		// Call ID with a bad magic cookie, a Stop-Control-Connection-
		// Request too short for its type, an unknown type, and a Length
		// below the header's, after which the framing is lost.
		var bad []byte
		bad = append(bad, ctrlMsg(12, 16, map[int]uint16{4: 0xdead, 12: 1})...)
		bad = append(bad, ctrlMsg(3, 12, nil)...)
		bad = append(bad, ctrlMsg(99, 16, map[int]uint16{12: 1})...)
		bad = append(bad, 0, 5, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 12, 0, 1)
		if _, err := c.Write(bad); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(lab.Scale(5 * time.Second))
		for time.Now().Before(deadline) && (e.counter("control_bad_messages")-badBefore < 3 || e.counter("control_lost_sync") == lostBefore) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := e.counter("control_bad_messages") - badBefore; got < 3 {
			t.Errorf("control_bad_messages rose by %d, want the 3 malformed messages", got)
		}
		if e.counter("control_lost_sync") == lostBefore {
			t.Errorf("control_lost_sync did not count the Length below the header's")
		}
		alive(p, s.TransID)
	})

	step("WAN: malformed GRE is counted and dropped", func(t *testing.T) {
		p, s := victim("bad-gre")
		trans, _ := strconv.Atoi(s.TransID)
		// The engine drops what its queue sees; the kernel data plane
		// matches only well-formed enhanced GRE and drops the rest sent
		// to the WAN address silently (pptp_gre_unknown_call).
		dropped := func() uint64 {
			n := e.counter("gre_malformed")
			if kernel {
				n += e.nftCounter("pptp_gre_unknown_call")
			}
			return n
		}
		before := dropped()
		inBefore := e.nftCounter("passed_pptp_in")
		for _, pl := range []string{
			"2001",                                           // version 1, 2 bytes
			fmt.Sprintf("2001880b0010%04x", trans),           // payload length 16, no payload
			fmt.Sprintf("0001880b0000%04x", trans),           // version 1 without the key flag
			fmt.Sprintf("3081880b0004%04x0000000141", trans), // sequence and ack flags, no room for them
		} {
			spoof(l.Server.NS, "--proto", "gre", "--src", server, "--dst", wan, "--raw-gre", "--payload-hex", pl, "--count", "2")
		}
		// The kernel data plane checks the header (key present, no
		// checksum or routing, protocol PPP) but not lengths: the two
		// kinds with a valid header and the call's key but an impossible
		// length go to the call's own client, as with the kernel's pptp
		// helper, whose GRE stack drops them. Nothing reaches anyone else.
		wantDropped, wantPassed := uint64(8), uint64(0)
		if kernel {
			wantDropped, wantPassed = 4, 4
		}
		if got := dropped() - before; got != wantDropped {
			t.Errorf("malformed GRE dropped and counted: %d, want %d", got, wantDropped)
		}
		if got := e.nftCounter("passed_pptp_in") - inBefore; got != wantPassed {
			t.Errorf("passed_pptp_in rose by %d, want %d", got, wantPassed)
		}
		alive(p, s.TransID)
	})

	step("WAN: GRE with a call's key reaches its client only when sent to the router's WAN address", func(t *testing.T) {
		p, s := victim("gre-dst")
		// The attacker on the WAN routes the LAN prefix through the router.
		if _, err := l.Exec(l.Server.NS, "ip", "route", "add", "10.10.0.0/16", "via", wan); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = l.Exec(l.Server.NS, "ip", "route", "del", "10.10.0.0/16") }()
		greBefore := e.counter("gre_in")
		for _, dst := range []string{l.Client(2).Addr.String(), l.Client(1).Gateway.String(), "10.10.1.99"} {
			spoof(l.Server.NS, "--proto", "gre", "--src", server, "--dst", dst, "--key", s.TransID, "--marker", "attacker", "--count", "5")
		}
		if got := e.counter("gre_in") - greBefore; got != 0 {
			t.Errorf("the engine demultiplexed %d GRE packets not sent to the WAN address", got)
		}
		alive(p, s.TransID)
	})

	step("after SIGKILL and restart: single random RSTs and another sweep do not end the restored call", func(t *testing.T) {
		p, s := victim("restart-rst")
		cport, natport := ports(1)
		old := e.d
		old.Kill()
		logs = append(logs, old.Log())
		e.startDaemon()
		// The call must be the one from before the kill (its translated
		// ID). What it is called may have moved on from restored: GRE seen
		// both ways makes it established, and an Outgoing-Call-Reply the
		// server's TCP sends again (the kill lost the queued copy) makes it
		// connected (CI saw this once).
		if ss := e.status().pptpSessions(); len(ss) != 1 || ss[0].TransID != s.TransID ||
			(ss[0].State != "restored" && ss[0].State != "established" && ss[0].State != "connected") {
			t.Fatalf("sessions after the restart %+v, want the call with translated ID %v, restored", ss, s.TransID)
		}
		spoof(l.Server.NS, "--src", server, "--sport", "1723", "--dst", wan, "--dport", natport, "--flags", "R", "--rand-seq")
		spoof(l.Client(2).NS, "--src", l.Client(1).Addr.String(), "--sport", cport, "--dst", server, "--dport", "1723",
			"--flags", "R", "--rand-seq")
		rstSweep(natport)
		alive(p, s.TransID)
	})

	step("LAN: 2,200 SYNs from spoofed sources do not lock the control-connection table", func(t *testing.T) {
		start := time.Now()
		spoof(l.Client(2).NS, "--src-net", l.Client(2).Prefix.String(), "--dst", server, "--dport", "1723",
			"--flags", "S", "--rand-seq", "--count", "2200")
		t.Logf("2,200 SYNs sent in %v", time.Since(start).Round(time.Millisecond))
		if n := e.status().Counters["pptp_control_connections"].Packets; n > 4 {
			t.Errorf("%d control connections after the SYN flood, want none of them", n)
		}
		// Another client places a call at once.
		r, err := l.PPTPClient(3, "--call-id", "5", "--count", "10", "--marker", "after-flood")
		if err != nil || !r.OK || r.Received != 10 {
			t.Errorf("a call after the SYN flood: %v %+v", err, r)
		}
		if got := e.counter("connections_refused"); got != 0 {
			t.Errorf("connections_refused = %d", got)
		}
	})
}
