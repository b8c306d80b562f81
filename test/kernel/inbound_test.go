package kernel

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// TestOnlyWhatTheLANOpenedComesIn attacks a LAN host from the WAN with every
// VPN protocol while fw4's stock Allow-IPSec-ESP and Allow-ISAKMP accept ESP
// and IKE to the LAN: with a protocol on (kernel and userspace modes) none
// of it arrives and each kind is counted as unsolicited_<kind>; with it off
// none arrives either. A port-forwarded LAN IPsec server still gets its
// traffic, with IPsec on and off: the port forward wins.
func TestOnlyWhatTheLANOpenedComesIn(t *testing.T) {
	lab.Need(t)
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{})
	peer, err := l.PeerBin()
	if err != nil {
		t.Fatal(err)
	}
	// The WAN host can address the LAN directly, as an upstream router or a
	// neighbour on the WAN segment can.
	if _, err := l.Exec(l.Server.NS, "ip", "route", "add", "10.10.0.0/16", "via", l.WANAddr.String()); err != nil {
		t.Fatal(err)
	}
	wanSrv, err := l.StartServers() // for the LAN's own, legitimate flows
	if err != nil {
		t.Fatal(err)
	}
	// LAN client 2 runs every server: what reaches it is what came in.
	victim := l.Client(2)
	lanSrv, err := l.Spawn(victim.NS, "servers@"+victim.Name, peer, "servers", "--duration", "10m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lanSrv.WaitStdout(0, 10*time.Second, lab.Contains(`"event":"ready"`)); err != nil {
		t.Fatal(err)
	}
	lanEvents := (&lab.Servers{Proc: lanSrv}).Events
	cfg := l.KernelUCI()
	d := l.RunDaemon(t, bin, cfg.String())
	e := &env{l: l, d: d}
	fromWAN := func(to string, args ...string) (sent, received int) {
		var r struct {
			Sent, Received int
		}
		stdout, _, _ := l.ExecSplit(l.Server.NS, append([]string{peer}, args...)...)
		_ = lab.ParseResult(strings.Split(stdout, "\n"), &r)
		return r.Sent, r.Received
	}
	const n = 20
	attacks := []struct {
		kind, counter string
		events        []string
		args          []string
	}{
		{"esp", "unsolicited_esp", []string{"esp"}, []string{"esp-client", "--spi", "0x4001"}},
		{"ah", "unsolicited_ah", []string{"ah"}, []string{"ah-client", "--spi", "0x4002"}},
		{"ike", "unsolicited_ike", []string{"ike"}, []string{"udp-client", "--proto", "ike", "--sport", "41500"}},
		{"nat-t", "unsolicited_natt", []string{"natt"}, []string{"udp-client", "--proto", "natt", "--sport", "44500"}},
		{"l2tp", "unsolicited_l2tp", []string{"l2tp"}, []string{"udp-client", "--proto", "l2tp", "--sport", "41701"}},
		{"gre", "unsolicited_gre", []string{"gre", "gre-bad"}, []string{"pptp-client", "--gre-only", "--call-id", "1", "--server-call-id", "9"}},
	}
	attack := func(t *testing.T, counted func(kind string) string) {
		t.Helper()
		for _, a := range attacks {
			mark := lanSrv.StdoutLen()
			var c0 lab.Counter
			name := ""
			if counted != nil {
				name = counted(a.counter)
			}
			if name != "" {
				c0 = e.counter(t, name)
			}
			args := append(append([]string{}, a.args...), "--server", victim.Addr.String(), "--count", fmt.Sprint(n), "--wait", "300ms")
			sent, got := fromWAN(victim.Addr.String(), args...)
			if sent != n {
				t.Errorf("%s: the attacker sent %d, want %d", a.kind, sent, n)
			}
			if evs := lanEvents(mark, a.events...); len(evs) != 0 || got != 0 {
				t.Errorf("unsolicited %s: %d packets reached the LAN host, %d replies came back", a.kind, len(evs), got)
			}
			if name != "" {
				if c := e.counter(t, name); c.Packets < c0.Packets+n {
					t.Errorf("%s went from %d to %d, want +%d", name, c0.Packets, c.Packets, n)
				}
			}
		}
		// A PPTP control connection to the LAN host.
		mark := lanSrv.StdoutLen()
		var r lab.PPTPResult
		stdout, _, _ := l.ExecSplit(l.Server.NS, peer, "pptp-client", "--server", victim.Addr.String(), "--call-id", "1",
			"--connect-timeout", "1s", "--timeout", "2s")
		_ = lab.ParseResult(strings.Split(stdout, "\n"), &r)
		if r.Connected || len(lanEvents(mark, "control-open")) != 0 {
			t.Errorf("an unsolicited PPTP control connection reached the LAN host: %+v", r)
		}
	}

	t.Run("kernel mode, everything on", func(t *testing.T) {
		attack(t, func(c string) string { return c })
		// What a LAN client opens still comes back.
		for _, proto := range []string{"ike", "natt", "l2tp"} {
			if r, err := l.UDPClient(1, proto, "--count", "3"); err != nil || !r.OK {
				t.Errorf("%s from the LAN: %+v, %v", proto, r, err)
			}
		}
		if r, err := l.RawClient(1, "esp", "--count", "3", "--spi", "0x5001"); err != nil || !r.OK {
			t.Errorf("esp from the LAN: %+v, %v", r, err)
		}
		if r, err := l.PPTPClient(1, "--call-id", "1", "--count", "3"); err != nil || !r.OK {
			t.Errorf("pptp from the LAN: %+v, %v", r, err)
		}
		// passed_*_in counted only what came back, not the attack.
		for _, c := range []string{"passed_ipsec_in", "passed_pptp_in", "passed_l2tp_in"} {
			if got := e.counter(t, c).Packets; got > 20 {
				t.Errorf("%s = %d after %d attack packets and a few replies: it counts what fw4 drops", c, got, n)
			}
		}
	})
	off := cfg
	off.PPTP, off.L2TP, off.IPsec = false, false, false
	t.Run("everything off: neither direction", func(t *testing.T) {
		if err := d.Apply(off.String()); err != nil {
			t.Fatal(err)
		}
		attack(t, func(c string) string {
			switch c {
			case "unsolicited_gre":
				return "blocked_pptp"
			case "unsolicited_l2tp":
				return "blocked_l2tp"
			}
			return "blocked_ipsec"
		})
	})
	us := cfg
	us.Mode = "userspace"
	t.Run("userspace mode, everything on", func(t *testing.T) {
		if err := d.Apply(us.String()); err != nil {
			t.Fatal(err)
		}
		// ESP and GRE from the WAN meet the engines first (they drop what
		// they do not know, counted as theirs); the rest is ours.
		attack(t, func(c string) string {
			switch c {
			case "unsolicited_esp", "unsolicited_gre":
				return ""
			}
			return c
		})
	})

	// The WAN's echo servers would answer the LAN host's echoes: a loop.
	wanSrv.Kill()
	// Port forward: the WAN's UDP 500 and ESP go to the LAN host, as fw4
	// renders a redirect (DNAT in prerouting, ct status dnat accepted in
	// forward_wan).
	if err := l.NftApply(fmt.Sprintf(`table ip lab_pf {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		iifname %q udp dport 500 dnat to %s
		iifname %q meta l4proto esp dnat to %s
	}
}
`, l.WANDev, victim.Addr, l.WANDev, victim.Addr)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Nft("insert", "rule", "inet", "fw4", "forward_wan", "ct", "status", "dnat", "accept"); err != nil {
		t.Fatal(err)
	}
	portForward := func(t *testing.T) {
		t.Helper()
		if err := l.ConntrackFlush(); err != nil {
			t.Fatal(err)
		}
		for _, a := range [][]string{
			{"udp-client", "--proto", "ike"},
			{"esp-client", "--spi", "0x6001"},
		} {
			mark := lanSrv.StdoutLen()
			args := append(append([]string{}, a...), "--server", l.WANAddr.String(), "--count", "5", "--wait", "1s")
			sent, got := fromWAN(l.WANAddr.String(), args...)
			if evs := lanEvents(mark, "ike", "esp"); sent != 5 || got != 5 || len(evs) != 5 {
				t.Errorf("port-forwarded %s: sent %d, LAN host saw %d, %d replies; want 5 each", a[0], sent, len(evs), got)
			}
		}
	}
	t.Run("port forward wins, ipsec on", func(t *testing.T) {
		if err := d.Apply(cfg.String()); err != nil {
			t.Fatal(err)
		}
		portForward(t)
	})
	t.Run("port forward wins, ipsec off", func(t *testing.T) {
		if err := d.Apply(off.String()); err != nil {
			t.Fatal(err)
		}
		portForward(t)
	})
}
