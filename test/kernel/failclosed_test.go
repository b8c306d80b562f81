package kernel

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// TestBlocksFailClosed attacks our table the ways a router's other software
// (or a user) does, many more times than the repair burst, and requires the
// blocks of the switched-off protocols back within 2 s every time: the whole
// table while full repairs are allowed, at least the drops while they back
// off. Between rounds PPTP and IPsec are tried for real and must not pass.
// Last, `nft flush ruleset` takes fw4 with it: status must say so.
func TestBlocksFailClosed(t *testing.T) {
	lab.Need(t)
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	cfg := l.KernelUCI()
	cfg.PPTP, cfg.IPsec = false, false
	d := l.RunDaemon(t, bin, cfg.String())
	e := &env{l: l, srv: srv, d: d}
	full := tableText(t, l)
	tbl := lab.TableFamily + " " + lab.Table
	damages := []struct{ name, nft string }{
		{"delete table", "delete table " + tbl},
		{"flush chain forward", "flush chain " + tbl + " forward"},
		{"delete element wan_devs", fmt.Sprintf("delete element %s wan_devs { %q }", tbl, l.WANDev)},
		{"insert foreign accept", "insert rule " + tbl + " forward accept"},
		{"flush table", "flush table " + tbl},
	}
	// held reports what is missing for the drops to hold, "" if nothing.
	held := func() string {
		out, err := l.Nft("list", "table", lab.TableFamily, lab.Table)
		if err != nil {
			return "table absent"
		}
		if strings.Contains(out, "\t\taccept\n") {
			return "a foreign accept rule"
		}
		if !strings.Contains(out, fmt.Sprintf("%q", l.WANDev)) {
			return "wan_devs lacks " + l.WANDev
		}
		for _, m := range []string{"tcp dport 1723", "meta l4proto gre", "meta l4proto esp", "meta l4proto ah", "udp dport 500", "udp dport 4500"} {
			if !regexp.MustCompile(`(?m)^\s*` + m + ` iifname @lan_devs oifname @wan_devs (ct status ! dnat )?counter name "blocked_(pptp|ipsec)" drop`).MatchString(out) {
				return "no drop for " + m
			}
		}
		return ""
	}
	if m := held(); m != "" {
		t.Fatalf("before any damage: %s:\n%s", m, full)
	}
	const rounds = 25
	var worst time.Duration
	for i := 0; i < rounds; i++ {
		dm := damages[i%len(damages)]
		if _, err := l.ExecStdin(l.Router, dm.nft+"\n", "nft", "-f", "-"); err != nil {
			t.Fatalf("round %d: %s: %v", i, dm.name, err)
		}
		start := time.Now()
		for {
			m := held()
			if m == "" {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("round %d: after %s the blocks were not back within 2 s: %s", i, dm.name, m)
			}
			time.Sleep(10 * time.Millisecond)
		}
		worst = max(worst, time.Since(start))
		if i == 7 || i == rounds-1 {
			// Past the repair burst: try for real.
			e.pptpBlocked(t)
			e.ipsecBlocked(t)
		}
	}
	t.Logf("%d damages: blocks back within %v at worst", rounds, worst.Round(time.Millisecond))
	// The storm is over: the full table comes back.
	deadline := time.Now().Add(5 * time.Second)
	for tableText(t, l) != full {
		if time.Now().After(deadline) {
			t.Fatalf("full table not back 5 s after the storm:\n%s\nwant:\n%s", tableText(t, l), full)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// nft flush ruleset: fw4 goes too. Our table comes back; status warns.
	if _, err := l.Nft("flush", "ruleset"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		s, raw, err := d.Status()
		if err == nil && strings.Contains(raw, "table inet fw4 is gone") && held() == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after nft flush ruleset: blocks %q, status %v:\n%s", held(), err, raw)
		}
		_ = s
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(d.Log(), "table inet fw4 is gone") {
		t.Errorf("the log does not say fw4 is gone")
	}
	if err := l.LoadFW4(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, raw, err := d.Status()
		if err == nil && !strings.Contains(raw, "table inet fw4 is gone") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fw4 back, status still warns:\n%s", raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.pptpBlocked(t)
}

var reCounterValue = regexp.MustCompile(`packets \d+ bytes \d+`)

// tableText is our table as nft lists it, counter values blanked, its lines
// sorted: objects re-created after a damage may list in another order.
func tableText(t *testing.T, l *lab.Lab) string {
	t.Helper()
	out, err := l.Nft("list", "table", lab.TableFamily, lab.Table)
	if err != nil {
		return "absent: " + err.Error()
	}
	lines := strings.Split(reCounterValue.ReplaceAllString(out, "packets N bytes M"), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
