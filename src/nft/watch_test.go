package nft

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// watcher runs Watch in the namespace and counts its signals the way the
// daemon consumes them (one Diff per signal received).
type watcher struct {
	signals atomic.Int64
	got     chan struct{}
}

func startWatch(t *testing.T, c *Conn, f WatchFilter) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan struct{}, 1)
	w := &watcher{got: make(chan struct{}, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Watch(ctx, f, gone, func(err error) { t.Errorf("watch: %v", err) })
	}()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-gone:
				w.signals.Add(1)
				w.got <- struct{}{}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("watch did not return within 5 s of its context ending")
		}
	})
	// The signal every (re)subscription sends: from here on it listens.
	if !w.wait(5 * time.Second) {
		t.Fatal("no signal after subscribing within 5 s")
	}
	return w
}

// wait reports whether a signal arrives within d.
func (w *watcher) wait(d time.Duration) bool {
	select {
	case <-w.got:
		return true
	case <-time.After(d):
		return false
	}
}

// quiet waits until no signal came for d (bounded), so the count settles.
func (w *watcher) settle(d time.Duration) {
	for i := 0; i < 50 && w.wait(d); i++ {
	}
}

// churn updates an engine map as the engines do: add and delete elements,
// every 100 ms for the duration.
func churn(t *testing.T, c *Conn, table, mapName string, dur time.Duration) {
	t.Helper()
	m := c.Maps(table)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i, end := 0, time.Now().Add(dur); time.Now().Before(end) && i < 1000; i++ {
		el := []engine.Element{{Key: []byte{203, 0, 113, byte(i % 250)}}}
		if err := m.Add(mapName, el); err != nil {
			t.Fatalf("engine map add: %v", err)
		}
		if i > 0 {
			if err := m.Delete(mapName, [][]byte{{203, 0, 113, byte((i - 1) % 250)}}); err != nil {
				t.Fatalf("engine map delete: %v", err)
			}
		}
		<-tick.C
	}
}

// TestWatchEngineMapsAreQuiet: the engines' own map updates must not make
// the daemon Diff its table (they did about once a second: the library's
// element events carry no table or set), while a foreign deletion of a
// wan_devs element, or any element change in the guard or our plain sets, is
// still seen. It measures signals per minute under the same churn with and
// without the filter.
func TestWatchEngineMapsAreQuiet(t *testing.T) {
	ns := newNetns(t)
	c := ns.conn(t)
	p := everyField()
	if err := c.Apply(p); err != nil {
		t.Fatal(err)
	}
	// Someone else's table with a set that changes too (banIP, say).
	ns.nft(t, "table inet other { set s { type ipv4_addr; }; }\n", "-f", "-")
	var maps []string
	for _, m := range p.Maps {
		maps = append(maps, m.Name)
	}
	quiet := func(table, set string) bool { return table == p.Table && slices.Contains(maps, set) }
	const dur = 3 * time.Second
	perMin := func(n int64) float64 { return float64(n) * float64(time.Minute) / float64(dur) }

	// Without the filter (what the watch did before): every update counts.
	before := startWatch(t, c, WatchFilter{Tables: []string{p.Table}})
	churn(t, c, p.Table, "m_addr", dur)
	before.settle(300 * time.Millisecond)
	nBefore := before.signals.Load() - 1

	after := startWatch(t, c, WatchFilter{Tables: []string{p.Table, plan.GuardTable}, Quiet: quiet})
	base := after.signals.Load()
	churn(t, c, p.Table, "m_addr", dur)
	for i := 0; i < 20; i++ {
		ns.nft(t, fmt.Sprintf("add element inet other s { 192.0.2.%d }\n", i+1), "-f", "-")
	}
	// An engine map element deleted by hand is the engine's business too.
	ns.nft(t, "add element inet "+p.Table+" m_addr { 192.0.2.77 }\ndelete element inet "+p.Table+" m_addr { 192.0.2.77 }\n", "-f", "-")
	after.settle(300 * time.Millisecond)
	nAfter := after.signals.Load() - base
	t.Logf("signals (= Diffs) under engine map churn every 100 ms: %.0f/min before, %.0f/min after", perMin(nBefore), perMin(nAfter))
	if nBefore < 10 {
		t.Errorf("the churn made only %d signals without the filter: it does not exercise the element events", nBefore)
	}
	if nAfter != 0 {
		t.Errorf("engine map and foreign-table element changes made %d signals, want 0", nAfter)
	}

	// A foreign deletion of a wan_devs element is seen, and fast.
	start := time.Now()
	ns.nft(t, "delete element inet "+p.Table+" "+plan.SetWAN+" { \"b0\" }\n", "-f", "-")
	if !after.wait(2 * time.Second) {
		t.Fatal("a foreign deletion of a wan_devs element was not signalled within 2 s")
	}
	t.Logf("foreign wan_devs deletion signalled after %v", time.Since(start).Round(time.Millisecond))
	after.settle(200 * time.Millisecond)
	if d := c.Diff(p); d == "" {
		t.Error("Diff does not see the deleted wan_devs element")
	}
	// An added element of a plain set counts as well.
	ns.nft(t, "add element inet "+p.Table+" servers { 192.0.2.9 }\n", "-f", "-")
	if !after.wait(2 * time.Second) {
		t.Fatal("a foreign element added to set servers was not signalled within 2 s")
	}
}

// TestParseEventIgnoresOthers: messages the watch must not mistake for ours.
func TestParseEventIgnoresOthers(t *testing.T) {
	f := WatchFilter{Tables: []string{"vpn_passthrough"}}
	for _, ev := range []event{
		{msg: 6, family: 2, table: "vpn_passthrough"},  // ip, not inet
		{msg: 6, family: 1, table: "vpn_passthrough2"}, // another name
		{msg: 6, family: 1, table: "fw4"},
	} {
		if f.selects(ev) {
			t.Errorf("%+v selected", ev)
		}
	}
	if !f.selects(event{msg: 14, family: 1, table: "vpn_passthrough", set: "wan_devs"}) {
		t.Error("a deleted wan_devs element is not selected")
	}
}
