package nft

import (
	"context"
	"time"

	"github.com/google/nftables"
)

// Watch signals on gone whenever any of the inet tables named, or a chain,
// rule, set or object in them, is added, changed or deleted by anyone (`nft
// delete table`, `fw4 flush`, `/etc/init.d/firewall restart`, `nft flush
// chain`, `nft insert rule`), and on every set-element change (the kernel's
// element events do not say which table they concern). It listens to
// nftables netlink events rather than polling. It also signals
// right after (re)subscribing, because events sent while it was not listening
// (start-up, a receive-buffer overrun) are lost; the receiver then checks
// whether the table exists. Our own applies delete and re-add the table in one
// batch, so the receiver must check, not assume. Errors go to onErr and the
// watch retries with backoff; it returns when ctx ends.
func Watch(ctx context.Context, names []string, gone chan<- struct{}, onErr func(error)) {
	notify := func() {
		select {
		case gone <- struct{}{}:
		default: // one pending signal is enough
		}
	}
	const minBackoff, maxBackoff = 100 * time.Millisecond, 30 * time.Second
	backoff := minBackoff
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
		return true
	}
	for ctx.Err() == nil {
		c, err := nftables.New()
		if err != nil {
			onErr(errorf("watch: %w", err))
			if !wait() {
				return
			}
			continue
		}
		mon := nftables.NewMonitor(
			// Any/Any, filtered below: google/nftables v0.3.0 tests its
			// flags as (flags&1)<<type, so a set without the NEWTABLE bit
			// drops every event, including the NEWGEN that flushes them.
			nftables.WithMonitorAction(nftables.MonitorActionAny),
			nftables.WithMonitorObject(nftables.MonitorObjectAny),
			nftables.WithMonitorEventBuffer(256))
		events, err := c.AddMonitor(mon)
		if err != nil {
			onErr(errorf("watch: subscribe to nftables events: %w", err))
			if !wait() {
				return
			}
			continue
		}
		backoff = minBackoff
		notify()
		resubscribe := false
		for !resubscribe {
			select {
			case <-ctx.Done():
				mon.Close()
				drain(events)
				return
			case ev, ok := <-events:
				switch {
				case !ok:
					mon.Close() // the library leaves the socket open
					resubscribe = true
				case ev.Type == nftables.MonitorEventTypeOOB:
					// Usually ENOBUFS after an event storm: start over.
					mon.Close()
					drain(events)
					resubscribe = true
				case concerns(ev, names):
					notify()
				}
			}
		}
		if !wait() {
			return
		}
	}
}

// drain empties an event channel until the monitor closes it, so its
// goroutines end; bounded in time in case it never closes.
func drain(events <-chan *nftables.MonitorEvent) {
	deadline := time.After(2 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			return
		}
	}
}

// concerns reports whether an event may change one of the tables named.
func concerns(ev *nftables.MonitorEvent, names []string) bool {
	switch ev.Type {
	case nftables.MonitorEventTypeNewSetElem, nftables.MonitorEventTypeDelSetElem:
		return true
	}
	for _, n := range names {
		if ours(ev.Data, n) {
			return true
		}
	}
	return false
}

// ours reports whether an event concerns table inet <name>.
func ours(data any, name string) bool {
	var t *nftables.Table
	switch d := data.(type) {
	case *nftables.Table:
		t = d
	case *nftables.Chain:
		t = d.Table
	case *nftables.Rule:
		t = d.Table
	case *nftables.Set:
		t = d.Table
	case *nftables.NamedObj:
		t = d.Table
	}
	return t != nil && t.Name == name && (t.Family == nftables.TableFamilyINet || t.Family == nftables.TableFamilyUnspecified)
}
