package pptp

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// The kernel data plane (Config.Maps; plan.userspacePPTP with
// Caps.MapPayload). Inbound GRE of a call is demultiplexed by the kernel in
// raw prerouting from three map elements the engine programs when it
// translates the call's Outgoing-Call-Request (or Incoming-Call-Reply):
//
//	pptp_gre_calls  WAN address . server . translated Call ID  (the guard, with counters)
//	pptp_gre_dst    server . translated Call ID : client address
//	pptp_gre_key    server . translated Call ID : the client's own Call ID
//
// plus the WAN address in pptp_wan_addrs, where GRE whose Call ID no call
// holds is dropped silently. The guard goes in last and comes out first, so
// the rule never matches a call whose rewrites are not there. The elements
// stay in the kernel while the daemon is down: established calls keep
// flowing, and a restarted engine reads them back (adoptKernelLocked).

// multiMaps is what *nft.Maps adds to engine.Maps: several maps' elements
// in one transaction (one netlink round trip and one commit instead of two
// round trips and a commit per map).
type multiMaps interface {
	AddAll(names []string, in [][]engine.Element) error
	DeleteAll(names []string, keys [][][]byte) error
}

// callKeys are a call's element keys in the kernel's layout (each field of
// a concatenation padded to 4 bytes).
func callKeys(wan, server netip.Addr, trans uint16) (guard, byServer []byte) {
	w, s := wan.As4(), server.As4()
	guard = make([]byte, 12)
	copy(guard, w[:])
	copy(guard[4:], s[:])
	binary.BigEndian.PutUint16(guard[8:], trans)
	byServer = make([]byte, 8)
	copy(byServer, s[:])
	binary.BigEndian.PutUint16(byServer[4:], trans)
	return guard, byServer
}

// programLocked adds a call's elements. Calls whose control connection's
// WAN address is unknown (no conntrack view) cannot be keyed: counted.
func (e *tracker) programLocked(cl *call) {
	if e.maps == nil || cl.programmed {
		return
	}
	w := cl.conn.wan
	if !w.IsValid() && e.cfg.WANAddrsOnly {
		// The fallback without ctnetlink: the engine demultiplexes the
		// call itself; there is no router address to put in the set
		// (the plan says what that costs).
		return
	}
	if !w.IsValid() {
		e.cnt.mapErrors++
		e.log.Error("pptp call not programmed into the kernel maps: the router's address of its control connection is unknown (needs nf_conntrack_netlink)",
			"client", cl.client.String(), "server", cl.server.String())
		return
	}
	w4 := w.As4()
	if e.cfg.WANAddrsOnly {
		// Once per address: the call's request waits in the queue for
		// this, and syncWANAddrs puts the addresses back every second
		// should the set be emptied (a repaired table).
		if e.wanAdded[w] {
			return
		}
		if err := e.maps.Add(plan.MapPPTPWANAddrs, []engine.Element{{Key: w4[:]}}); err != nil {
			e.cnt.mapErrors++
			return
		}
		if e.wanAdded == nil {
			e.wanAdded = map[netip.Addr]bool{}
		}
		e.wanAdded[w] = true
		return
	}
	guard, bySrv := callKeys(w, cl.server, cl.trans)
	c4 := cl.client.As4()
	var orig [2]byte
	binary.BigEndian.PutUint16(orig[:], cl.orig)
	t0 := e.now()
	defer func() {
		// What the call's Outgoing-Call-Request waited for (status:
		// map_adds, map_add_us; test/bench/pptp prints the mean).
		e.cnt.mapAdds++
		e.cnt.mapAddMicros += uint64(e.now().Sub(t0).Microseconds())
	}()
	if mm, ok := e.maps.(multiMaps); ok {
		// One transaction: the call's Outgoing-Call-Request waits in
		// the queue for this (test/bench/pptp measures it), and the
		// elements appear together, so the order below does not matter.
		err := mm.AddAll([]string{plan.MapPPTPDst, plan.MapPPTPKey, plan.MapPPTPWANAddrs, plan.MapPPTPCalls},
			[][]engine.Element{{{Key: bySrv, Val: c4[:]}}, {{Key: bySrv, Val: orig[:]}}, {{Key: w4[:]}}, {{Key: guard}}})
		if err != nil {
			e.cnt.mapErrors++
			e.log.Warn("pptp map elements not added", "err", err)
			return
		}
		cl.programmed, cl.wan = true, w
		return
	}
	for _, op := range []struct {
		m  string
		el engine.Element
	}{
		{plan.MapPPTPDst, engine.Element{Key: bySrv, Val: c4[:]}},
		{plan.MapPPTPKey, engine.Element{Key: bySrv, Val: orig[:]}},
		{plan.MapPPTPWANAddrs, engine.Element{Key: w4[:]}},
		{plan.MapPPTPCalls, engine.Element{Key: guard}},
	} {
		if err := e.maps.Add(op.m, []engine.Element{op.el}); err != nil {
			e.cnt.mapErrors++
			e.log.Warn("pptp map element not added", "map", op.m, "err", err)
			return
		}
	}
	cl.programmed, cl.wan = true, w
}

// unprogramLocked removes a call's elements (the guard first).
func (e *tracker) unprogramLocked(cl *call) {
	if e.maps == nil || !cl.programmed {
		return
	}
	guard, bySrv := callKeys(cl.wan, cl.server, cl.trans)
	if mm, ok := e.maps.(multiMaps); ok {
		if err := mm.DeleteAll([]string{plan.MapPPTPCalls, plan.MapPPTPDst, plan.MapPPTPKey},
			[][][]byte{{guard}, {bySrv}, {bySrv}}); err != nil {
			e.cnt.mapErrors++
		}
		cl.programmed = false
		return
	}
	if err := e.maps.Delete(plan.MapPPTPCalls, [][]byte{guard}); err != nil {
		e.cnt.mapErrors++
	}
	for _, m := range []string{plan.MapPPTPDst, plan.MapPPTPKey} {
		if err := e.maps.Delete(m, [][]byte{bySrv}); err != nil {
			e.cnt.mapErrors++
		}
	}
	cl.programmed = false
}

// orphan is a call the kernel carries that the engine's state file did not
// know (it was lost, or the call was made by another run): its elements
// keep forwarding until they are idle for IdleTimeout.
type orphan struct {
	wan, server netip.Addr
	trans       uint16
	pkts        uint64
	seen        time.Time
}

// adoptKernelLocked reads the calls' elements back on start: restored calls
// whose elements exist are marked programmed (no duplicates), restored calls
// without them are programmed again, and elements no restored call holds
// are kept as orphans. A map that does not exist yet (first start: the plan
// is applied after the engine binds its queue) holds nothing to adopt.
func (e *tracker) adoptKernelLocked(now time.Time) {
	if e.maps == nil || e.cfg.WANAddrsOnly {
		return
	}
	els, err := e.maps.List(plan.MapPPTPCalls)
	if err != nil {
		return
	}
	held := map[string]engine.Element{}
	for _, el := range els {
		held[string(el.Key)] = el
	}
	adopted := 0
	for _, c := range e.conns {
		for _, cl := range c.calls {
			if !c.wan.IsValid() {
				continue
			}
			guard, _ := callKeys(c.wan, cl.server, cl.trans)
			if el, ok := held[string(guard)]; ok {
				cl.programmed, cl.wan = true, c.wan
				// Only what the kernel forwards from now on shows the
				// restored call alive.
				cl.kernPkts, cl.kernBytes, cl.inBase = el.Packets, el.Bytes, el.Packets
				delete(held, string(guard))
				adopted++
			} else {
				e.programLocked(cl)
			}
		}
	}
	for _, el := range els {
		if _, ok := held[string(el.Key)]; !ok || len(el.Key) != 12 {
			continue
		}
		o := &orphan{wan: netip.AddrFrom4([4]byte(el.Key[0:4])), server: netip.AddrFrom4([4]byte(el.Key[4:8])),
			trans: binary.BigEndian.Uint16(el.Key[8:]), pkts: el.Packets, seen: now}
		e.orphans[string(el.Key)] = o
	}
	if adopted > 0 || len(e.orphans) > 0 {
		e.log.Info("pptp kernel map elements read back", "calls", adopted, "without_state", len(e.orphans))
	}
}

// syncKernel reads the per-call counters back: traffic the kernel forwarded
// for the session table, and what keeps such a call from expiring. Orphans
// idle for IdleTimeout lose their elements.
func (e *tracker) syncKernel(now time.Time) {
	if e.maps == nil {
		return
	}
	if e.cfg.WANAddrsOnly {
		e.syncWANAddrs()
		return
	}
	els, err := e.maps.List(plan.MapPPTPCalls)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.cnt.mapErrors++
		return
	}
	byKey := map[string]engine.Element{}
	for _, el := range els {
		byKey[string(el.Key)] = el
	}
	for _, c := range e.conns {
		for _, cl := range c.calls {
			if !cl.programmed {
				continue
			}
			guard, _ := callKeys(cl.wan, cl.server, cl.trans)
			el, ok := byKey[string(guard)]
			if !ok {
				// Someone deleted it (a flushed table is re-applied
				// without elements): put it back.
				cl.programmed = false
				e.programLocked(cl)
				cl.inBase = 0
				continue
			}
			if el.Packets > cl.kernPkts {
				cl.lastSeen = now
			}
			cl.kernPkts, cl.kernBytes = el.Packets, el.Bytes
			if !cl.seenIn && el.Packets > cl.inBase {
				cl.seenIn = true
				e.greBothWaysLocked(cl)
			}
		}
	}
	for k, o := range e.orphans {
		el, ok := byKey[k]
		if !ok {
			delete(e.orphans, k)
			continue
		}
		if el.Packets > o.pkts {
			o.pkts, o.seen = el.Packets, now
		}
		if now.Sub(o.seen) > e.cfg.IdleTimeout {
			_, bySrv := callKeys(o.wan, o.server, o.trans)
			_ = e.maps.Delete(plan.MapPPTPCalls, [][]byte{[]byte(k)})
			_ = e.maps.Delete(plan.MapPPTPDst, [][]byte{bySrv})
			_ = e.maps.Delete(plan.MapPPTPKey, [][]byte{bySrv})
			delete(e.orphans, k)
			e.cnt.callsExpired++
		}
	}
}

// syncWANAddrs puts the WAN addresses of the calls back into
// pptp_wan_addrs (fallback): a repaired table comes back with empty maps.
func (e *tracker) syncWANAddrs() {
	e.mu.Lock()
	seen := map[netip.Addr]bool{}
	var els []engine.Element
	for _, c := range e.conns {
		if w := c.wan; w.IsValid() && len(c.calls) > 0 && !seen[w] {
			seen[w] = true
			w4 := w.As4()
			els = append(els, engine.Element{Key: w4[:]})
		}
	}
	e.mu.Unlock()
	if len(els) > 0 {
		if err := e.maps.Add(plan.MapPPTPWANAddrs, els); err != nil {
			e.mu.Lock()
			e.cnt.mapErrors++
			e.mu.Unlock()
		}
	}
}
