package pptp

import (
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// Call ID translation.
//
// A translated Call ID T must be unique per server (the server keys its GRE
// by it; uniqueness per server is stricter than per (WAN address, server)).
// T is random, so a spoofed GRE packet must guess it, and it is built so
// that every byte of a Call-ID field can be rewritten on its own: a field may
// be split across two TCP segments, and the first segment is gone (with its
// verdict) before the second one arrives.
//
//   - Low bytes need no special care: when the engine reaches a field's low
//     byte, it always has the whole original value.
//   - High bytes: within one control connection, original high byte and
//     translated high byte correspond one to one (calls whose Call IDs share
//     a high byte share the translated high byte; different ones get
//     different ones). So a lone high byte is enough to translate in either
//     direction. Only if the server's block for that high byte is full does
//     the engine give this up for a call (and count it).

// action is an effect of a complete control message, applied when the
// segment that completes it is accepted.
type action struct {
	kind actionKind
	cl   *call
	peer uint16
	why  string
}

type actionKind uint8

const (
	actEstablish actionKind = iota // set the server's Call ID, state connected
	actRemove                      // remove the call
	actCloseAll                    // remove every call of the connection
)

// segCtx is the translator for one segment of one control connection. It
// is reused (Engine.seg) so the control path does not allocate for it.
type segCtx struct {
	e       *tracker
	c       *ctrlConn
	now     time.Time
	added   []*call
	actions []action
}

func (sc *segCtx) begin(c *ctrlConn, now time.Time) {
	sc.c, sc.now = c, now
	sc.added = sc.added[:0]
	sc.actions = sc.actions[:0]
}

// commit applies the deferred effects of the segment's messages.
func (sc *segCtx) commit() {
	e := sc.e
	for _, cl := range sc.added {
		e.log.Info("pptp call mapped", "client", cl.client.String(), "server", cl.server.String(),
			"call_id", cl.orig, "translated", cl.trans)
	}
	for _, a := range sc.actions {
		switch a.kind {
		case actEstablish:
			if a.cl.conn != nil && e.byTrans[transKey{a.cl.conn.key.server, a.cl.trans}] == a.cl {
				e.setPeerLocked(a.cl, a.peer)
				a.cl.state = stateConnected
				e.greBothWaysLocked(a.cl)
			}
		case actRemove:
			if e.byTrans[transKey{a.cl.conn.key.server, a.cl.trans}] == a.cl {
				e.removeCallLocked(a.cl, a.why)
			}
		case actCloseAll:
			for len(sc.c.calls) > 0 {
				e.removeCallLocked(sc.c.calls[len(sc.c.calls)-1], a.why)
			}
		}
	}
	sc.added = sc.added[:0]
	sc.actions = sc.actions[:0]
}

// rollback undoes the calls a refused segment allocated.
func (sc *segCtx) rollback() {
	e := sc.e
	for _, cl := range sc.added {
		e.dropCallLocked(cl)
		e.cnt.callsOpened--
	}
	sc.added = sc.added[:0]
	sc.actions = sc.actions[:0]
}

// admit checks the limits before a new call is allocated.
func (sc *segCtx) admit() bool {
	e, c := sc.e, sc.c
	switch {
	case e.nCalls >= e.cfg.MaxSessions:
		e.cnt.callsRefused++
		e.limitLogLocked(c.key.client, sc.now, "pptp call refused: limit reached",
			"limit", "max_calls", "value", e.cfg.MaxSessions, "server", c.server.Addr().String())
		return false
	case e.perClient[c.key.client] >= e.cfg.MaxPerClient:
		e.cnt.callsRefused++
		e.limitLogLocked(c.key.client, sc.now, "pptp call refused: limit reached",
			"limit", "max_calls_per_client", "value", e.cfg.MaxPerClient, "server", c.server.Addr().String())
		return false
	}
	return true
}

// blockCap is how many Call IDs a high byte offers: 256, but 0 is never used.
func blockCap(hi byte) int {
	if hi == 0 {
		return 255
	}
	return 256
}

// allocHi picks the translated high byte for a new call whose original high
// byte is origHi on connection sc.c (see the comment at the top).
func (sc *segCtx) allocHi(origHi byte) (byte, bool) {
	e, c := sc.e, sc.c
	server := c.key.server
	for _, x := range c.calls {
		if byte(x.orig>>8) == origHi {
			h := byte(x.trans >> 8)
			if e.blocks[transKey{server, uint16(h) << 8}] < blockCap(h) {
				return h, true
			}
			break // that block is full: give up the correspondence
		}
	}
	start := byte(e.rand())
	for k := 0; k < 256; k++ {
		h := start + byte(k)
		if e.blocks[transKey{server, uint16(h) << 8}] >= blockCap(h) {
			continue
		}
		taken := false
		for _, x := range c.calls {
			if byte(x.trans>>8) == h && byte(x.orig>>8) != origHi {
				taken = true
				break
			}
		}
		if !taken {
			return h, true
		}
	}
	// Every usable high byte is taken on this connection or full: any
	// block with room will do.
	for k := 0; k < 256; k++ {
		h := start + byte(k)
		if e.blocks[transKey{server, uint16(h) << 8}] < blockCap(h) {
			return h, true
		}
	}
	return 0, false
}

// allocLo picks a free Call ID in the server's block hi.
func (sc *segCtx) allocLo(hi byte) (uint16, bool) {
	e := sc.e
	server := sc.c.key.server
	start := byte(e.rand())
	for k := 0; k < 256; k++ {
		id := uint16(hi)<<8 | uint16(start+byte(k))
		if id == 0 {
			continue
		}
		if _, used := e.byTrans[transKey{server, id}]; !used {
			return id, true
		}
	}
	return 0, false
}

func (sc *segCtx) byOrig(orig uint16) *call {
	cs := sc.c.calls
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].orig == orig {
			return cs[i]
		}
	}
	return nil
}

func (sc *segCtx) byTrans(trans uint16) *call {
	for _, x := range sc.c.calls {
		if x.trans == trans {
			return x
		}
	}
	return nil
}

// translateHi implements translator.
func (sc *segCtx) translateHi(d int, kind fieldKind, origHi byte) (byte, bool) {
	switch kind {
	case fieldAlloc:
		if !sc.admit() {
			return 0, false
		}
		return sc.allocHi(origHi)
	case fieldOwn:
		for _, x := range sc.c.calls {
			if byte(x.orig>>8) == origHi {
				return byte(x.trans >> 8), true
			}
		}
	case fieldPeer:
		for _, x := range sc.c.calls {
			if byte(x.trans>>8) == origHi {
				return byte(x.orig >> 8), true
			}
		}
	}
	return origHi, true
}

// translate implements translator.
func (sc *segCtx) translate(d int, kind fieldKind, orig uint16, newHi int16) (uint16, bool) {
	e := sc.e
	switch kind {
	case fieldAlloc:
		var hi byte
		// Limits hold however the Call ID arrived: its high byte may have
		// been rewritten in an earlier segment (newHi >= 0), and calls can
		// have been admitted on other connections since.
		if !sc.admit() {
			return 0, false
		}
		if newHi >= 0 {
			hi = byte(newHi)
		} else {
			h, ok := sc.allocHi(byte(orig >> 8))
			if !ok {
				return sc.full(orig)
			}
			hi = h
		}
		id, ok := sc.allocLo(hi)
		if !ok {
			return sc.full(orig)
		}
		// The client reuses a Call ID of this connection: the old call
		// is over.
		if old := sc.byOrig(orig); old != nil {
			sc.actions = append(sc.actions, action{kind: actRemove, cl: old, why: "Call ID reused by the client"})
		}
		cl := e.addCallLocked(sc.c, orig, id, sc.now)
		e.programLocked(cl)
		sc.added = append(sc.added, cl)
		return id, true
	case fieldOwn:
		if cl := sc.byOrig(orig); cl != nil {
			cl.lastSeen = sc.now
			return cl.trans, true
		}
	case fieldPeer:
		if cl := sc.byTrans(orig); cl != nil {
			cl.lastSeen = sc.now
			return cl.orig, true
		}
	}
	return orig, true
}

// full refuses a call because the server has no free Call ID left.
func (sc *segCtx) full(orig uint16) (uint16, bool) {
	e := sc.e
	e.cnt.callsRefused++
	e.limitLogLocked(sc.c.key.client, sc.now, "pptp call refused: no free Call ID for this server",
		"server", sc.c.server.Addr().String(), "call_id", orig)
	return 0, false
}

// message implements translator: the lifecycle effects of a complete
// control message (original bytes).
func (sc *segCtx) message(d int, m packet.PPTPCtrl) {
	t := m.Type()
	switch {
	case d == dirOut && t == packet.PPTPIncomingCallReply:
		c, _ := m.CallID()
		s, _ := m.PeerCallID()
		if cl := sc.byOrig(c); cl != nil {
			sc.actions = append(sc.actions, action{kind: actEstablish, cl: cl, peer: s})
		}
	case d == dirIn && t == packet.PPTPOutgoingCallReply:
		tr, _ := m.PeerCallID()
		s, _ := m.CallID()
		cl := sc.byTrans(tr)
		if cl == nil {
			return
		}
		if r, _ := m.ResultCode(); r != 1 { // 1 = Connected (RFC 2637 2.8)
			sc.actions = append(sc.actions, action{kind: actRemove, cl: cl, why: "server refused the call"})
			return
		}
		sc.actions = append(sc.actions, action{kind: actEstablish, cl: cl, peer: s})
	case d == dirIn && t == packet.PPTPIncomingCallConn:
		tr, _ := m.PeerCallID()
		if cl := sc.byTrans(tr); cl != nil && cl.state == stateRequested {
			cl.state = stateConnected
			sc.e.greBothWaysLocked(cl)
		}
	case d == dirOut && t == packet.PPTPCallClearRequest:
		c, _ := m.CallID()
		if cl := sc.byOrig(c); cl != nil {
			sc.actions = append(sc.actions, action{kind: actRemove, cl: cl, why: "Call-Clear-Request"})
		}
	case d == dirIn && t == packet.PPTPCallDisconnectNotify:
		s, _ := m.CallID() // the server's own Call ID (RFC 2637 2.13)
		for _, cl := range sc.c.calls {
			if cl.havePeer && cl.peer == s {
				sc.actions = append(sc.actions, action{kind: actRemove, cl: cl, why: "Call-Disconnect-Notify"})
				break
			}
		}
	case t == packet.PPTPStopCtrlConnRequest:
		sc.actions = append(sc.actions, action{kind: actCloseAll, why: "Stop-Control-Connection-Request"})
	}
}

// bad implements translator.
func (sc *segCtx) bad(d int, lost bool) {
	if lost {
		sc.e.cnt.ctrlLostSync++
	} else {
		sc.e.cnt.ctrlBad++
	}
}
