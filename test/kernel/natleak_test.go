package kernel

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// TestNoLANSourceWithoutFW4: `nft flush ruleset` takes fw4's masquerade
// with it, and the router then forwards LAN traffic with its LAN source
// address. Where OpenWrt's firewall config masquerades the WAN, the VPN
// traffic this package passes (PPTP control and GRE, L2TP, IKE, NAT-T, ESP)
// must not leave that way: the server, counting arrivals from LAN
// addresses, sees none of it, and nat_leak_dropped counts what was held
// back. Plain ICMP, not ours, does arrive with its LAN source: the
// observer works, and the guard is specific.
func TestNoLANSourceWithoutFW4(t *testing.T) {
	lab.Need(t)
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{})
	if _, err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	// OpenWrt's default: zone wan masquerades (the devices come from our
	// config's lan_device/wan_device; the zones only say masq).
	fw := "config zone\n\toption name 'lan'\n\tlist network 'lan'\n\nconfig zone\n\toption name 'wan'\n\tlist network 'wan'\n\toption masq '1'\n"
	if err := os.WriteFile(filepath.Join(l.DaemonDir(), "firewall"), []byte(fw), 0o644); err != nil {
		t.Fatal(err)
	}
	d := l.RunDaemon(t, bin, l.KernelUCI().String())
	// With fw4: everything passes the guard, masqueraded (or rewritten
	// by the engines, in userspace mode).
	for i, mode := range []string{"userspace", "kernel"} {
		cfg := l.KernelUCI()
		cfg.Mode = mode
		if err := d.Apply(cfg.String()); err != nil {
			t.Fatal(err)
		}
		if out, err := l.Nft("list", "chain", lab.TableFamily, lab.Table, "nat_leak_guard"); err != nil {
			t.Fatalf("%s: no nat_leak_guard with a masquerading firewall config: %v\n%s", mode, err, out)
		}
		if r, err := l.PPTPClient(1, "--call-id", strconv.Itoa(21+i), "--count", "5"); err != nil || !r.OK {
			t.Errorf("%s: PPTP with fw4 and the guard: %+v, %v", mode, r, err)
		}
		for _, proto := range []string{"l2tp", "ike", "natt"} {
			if r, err := l.UDPClient(1, proto, "--count", "5"); err != nil || !r.OK || r.Received != 5 {
				t.Errorf("%s: %s with fw4 and the guard: %+v, %v", mode, proto, r, err)
			}
		}
		if r, err := l.RawClient(1, "esp", "--count", "5", "--spi", "0x910"+strconv.Itoa(i)); err != nil || !r.OK || r.Received != 5 {
			t.Errorf("%s: ESP with fw4 and the guard: %+v, %v", mode, r, err)
		}
	}
	// The server counts what arrives from LAN addresses, per kind.
	obs := `table inet obs {
	chain pre {
		type filter hook prerouting priority -400; policy accept;
		ip saddr 10.10.0.0/16 meta l4proto icmp counter
		ip saddr 10.10.0.0/16 meta l4proto != icmp counter
	}
}
`
	if _, err := l.ExecStdin(l.Server.NS, obs, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	leaked := func() (icmp, vpn int) {
		out, err := l.Exec(l.Server.NS, "nft", "list", "chain", "inet", "obs", "pre")
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`counter packets (\d+)`).FindAllStringSubmatch(out, -1)
		if len(m) != 2 {
			t.Fatalf("observer:\n%s", out)
		}
		icmp, _ = strconv.Atoi(m[0][1])
		vpn, _ = strconv.Atoi(m[1][1])
		return icmp, vpn
	}
	if i, v := leaked(); i != 0 || v != 0 {
		t.Fatalf("LAN sources arrived with fw4 in place: icmp %d, vpn %d", i, v)
	}

	if _, err := l.Nft("flush", "ruleset"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(lab.Scale(5 * time.Second))
	for {
		_, raw, err := d.Status()
		out, lerr := l.Nft("list", "chain", lab.TableFamily, lab.Table, "nat_leak_guard")
		if err == nil && strings.Contains(raw, "table inet fw4 is gone") && lerr == nil && strings.Contains(out, "drop") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after nft flush ruleset: status %v, guard %v:\n%s\n%s", err, lerr, raw, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	// Nothing answers a LAN source (no route back), so every client
	// fails; what matters is what the server saw.
	_, _ = l.PPTPClient(1, "--call-id", "25", "--count", "3", "--timeout", "3s")
	_, _ = l.PPTPClient(1, "--call-id", "26", "--count", "3", "--gre-only", "--server-call-id", "99", "--timeout", "2s")
	for _, proto := range []string{"l2tp", "ike", "natt"} {
		_, _ = l.UDPClient(1, proto, "--count", "3", "--timeout", "2s")
	}
	_, _ = l.RawClient(1, "esp", "--count", "3", "--spi", "0x9001", "--timeout", "2s")
	_, _ = l.Exec(l.Client(1).NS, "busybox", "ping", "-c", "2", "-W", "1", l.Server.Addr.String())
	icmp, vpn := leaked()
	if vpn != 0 {
		t.Errorf("without fw4, %d VPN packets reached the server with a LAN source address", vpn)
	}
	if icmp == 0 {
		t.Errorf("plain ICMP did not arrive with its LAN source either: the observer or the lab is broken")
	}
	st, _, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	held := st.Counters["nat_leak_dropped"].Packets
	if held == 0 {
		t.Errorf("nat_leak_dropped is 0")
	}
	t.Logf("without fw4: %d VPN packets with a LAN source reached the server (%d held back, nat_leak_dropped); ICMP, not ours, %d", vpn, held, icmp)

	// fw4 back: PPTP works again through the guard.
	if err := l.LoadFW4(); err != nil {
		t.Fatal(err)
	}
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	if r, err := l.PPTPClient(1, "--call-id", "27", "--count", "5"); err != nil || !r.OK {
		t.Errorf("PPTP with fw4 back: %+v, %v", r, err)
	}
}
