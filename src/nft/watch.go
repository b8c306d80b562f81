package nft

import (
	"context"
	"errors"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
)

// WatchFilter says which nftables changes Watch signals.
type WatchFilter struct {
	// Tables are the inet tables watched: adding, changing or deleting
	// one of them, or a chain, rule, set, object or set element in it.
	Tables []string
	// Quiet reports set-element changes that are not a change of the
	// table: the engines' own map updates (several a second under load)
	// and the sets of a table watched only for its rules (fw4's). Nil:
	// every element change in a watched table counts.
	Quiet func(table, set string) bool
}

// Watch signals on gone whenever a change that WatchFilter selects happens
// (`nft delete table`, `fw4 flush`, `/etc/init.d/firewall restart`, `nft
// flush chain`, `nft insert rule`, `nft delete element`). It listens to
// nftables netlink events rather than polling, and reads each event's table
// (and, for elements, set) name from the raw message itself: google/nftables'
// monitor drops both for element events, which made every map update of the
// engines look like a change of ours.
//
// It also signals right after (re)subscribing, because events sent while it
// was not listening (start-up, a receive-buffer overrun) are lost; the
// receiver then checks whether the table is intact. Our own applies delete
// and re-add the table in one batch, so the receiver must check, not assume.
// Errors go to onErr and the watch retries with backoff; it returns when ctx
// ends.
func (n *Conn) Watch(ctx context.Context, f WatchFilter, gone chan<- struct{}, onErr func(error)) {
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
		c, err := n.subscribe()
		if err != nil {
			onErr(err)
			if !wait() {
				return
			}
			continue
		}
		backoff = minBackoff
		notify()
		stop := context.AfterFunc(ctx, func() { c.Close() }) // unblocks Receive
		for {
			msgs, err := c.Receive()
			if err != nil {
				// Closed by ctx, or ENOBUFS after an event storm
				// (events were lost): start over, which signals.
				if ctx.Err() == nil && !errors.Is(err, unix.ENOBUFS) {
					onErr(errorf("watch: receive: %w", err))
				}
				break
			}
			for _, m := range msgs {
				if ev, ok := parseEvent(m); ok && f.selects(ev) {
					notify()
				}
			}
		}
		stop()
		c.Close()
		if !wait() {
			return
		}
	}
}

// watchReadBuffer is the monitor socket's receive buffer: room for bursts of
// element events (every one is read, most are quiet) before the kernel
// drops events and the watch must start over.
const watchReadBuffer = 1 << 20

// subscribe opens a netlink socket on the nftables multicast group in the
// Conn's network namespace.
func (n *Conn) subscribe() (*nl.Conn, error) {
	c, err := nl.Dial(unix.NETLINK_NETFILTER, n.netns)
	if err != nil {
		return nil, errorf("watch: netlink: %w", err)
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.Close()
		return nil, errorf("watch: subscribe to nftables events: %w", err)
	}
	// Past net.core.rmem_max with CAP_NET_ADMIN, which the daemon keeps.
	_ = c.SetReadBuffer(watchReadBuffer)
	return c, nil
}

// event is what Watch reads of one nftables notification.
type event struct {
	msg    uint16 // NFT_MSG_*
	family uint8
	table  string
	set    string // element events only
}

// nftMsgDestroySetElem is NFT_MSG_DESTROYSETELEM (Linux 6.3), absent from
// x/sys; kernels report destroys as deletions, but be safe.
const nftMsgDestroySetElem = 30

func (e event) element() bool {
	return e.msg == unix.NFT_MSG_NEWSETELEM || e.msg == unix.NFT_MSG_DELSETELEM || e.msg == nftMsgDestroySetElem
}

// parseEvent reads an nftables notification: nfgenmsg (family, version,
// resource id), then attributes, where type 1 is the table's name for every
// object kind (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE,
// NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE,
// NFTA_FLOWTABLE_TABLE) and, in element lists, type 2 the set's
// (NFTA_SET_ELEM_LIST_SET). ok is false for other messages (NEWGEN, TRACE,
// other subsystems) and for malformed ones.
func parseEvent(m nl.Message) (ev event, ok bool) {
	if m.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return event{}, false
	}
	ev.msg = m.Type & 0xff
	switch ev.msg {
	case unix.NFT_MSG_NEWGEN, unix.NFT_MSG_TRACE:
		return event{}, false
	}
	ev.family = m.Data[0]
	err := nl.Walk(m.Data[4:], func(typ uint16, d []byte) error {
		switch typ {
		case 1:
			ev.table = nl.String(d)
		case 2:
			if ev.element() {
				ev.set = nl.String(d)
			}
		}
		return nil
	})
	if err != nil || ev.table == "" {
		return event{}, false
	}
	return ev, true
}

// selects reports whether an event may change one of the watched tables.
func (f WatchFilter) selects(ev event) bool {
	if ev.family != unix.NFPROTO_INET || !slices.Contains(f.Tables, ev.table) {
		return false
	}
	return !ev.element() || f.Quiet == nil || !f.Quiet(ev.table, ev.set)
}
