package esp

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

// IKE exchanges that create Child SAs, and so new ESP SPIs: IKEv2 IKE_AUTH
// and CREATE_CHILD_SA (RFC 7296 sections 1.2 and 1.3), IKEv1 Quick Mode
// (RFC 2409 section 5.5). Everything that identifies them is in the
// cleartext IKE header; the SPIs themselves are inside the encrypted payload.
func childMsg(p *pair, h packet.IKEHeader) (child, request bool) {
	switch h.MajorVersion() {
	case 2:
		switch h.ExchangeType() {
		case packet.IKEv2ExchangeAuth, packet.IKEv2ExchangeCreateChildSA:
			return true, !h.IsResponse()
		}
	case 1:
		if h.ExchangeType() == packet.IKEv1ExchangeQuickMode {
			// Quick Mode has no response flag: its first message carries
			// a Message ID not seen before.
			return true, h.MessageID() != p.qmMsgID
		}
	}
	return false, false
}

// ike handles a UDP datagram queued because of port 500.
func (t *Tracker) ike(ip packet.IPv4, dir Dir, wan netip.Addr, now time.Duration) Verdict {
	userNATRule := dir == Outbound && t.opt.KeepIKEPort
	if ip.FragOffset() != 0 {
		// Never queued (a later fragment has no ports to match on).
		return Accept
	}
	u, err := packet.ParseUDP(ip.Payload())
	if err != nil {
		t.st.IKEMalformed++
		if userNATRule {
			// It may be untracked 500->500 traffic that must not leave
			// with its LAN source.
			return Drop
		}
		return Accept
	}
	if dir == Outbound {
		return t.ikeOut(ip, u, wan, now)
	}
	return t.ikeIn(ip, u, now)
}

func (t *Tracker) ikeOut(ip packet.IPv4, u packet.UDP, wan netip.Addr, now time.Duration) Verdict {
	sport, dport := u.SrcPort(), u.DstPort()
	// The plan untracks exactly this: LAN 500 -> WAN 500 with keep_ike_port.
	userNAT := t.opt.KeepIKEPort && sport == packet.PortIKE && dport == packet.PortIKE
	if dport != packet.PortIKE {
		return Accept
	}
	if userNAT && !wan.Is4() {
		t.st.NoWANAddress++
		return Drop
	}
	if ip.Src() == wan {
		return Accept // already translated (see outESP)
	}
	client, srv := ip4Of(ip.Src()), ip4Of(ip.Dst())
	var p *pair
	h, err := packet.ParseIKE(u.Payload())
	if err != nil {
		t.st.IKEMalformed++
	} else {
		t.st.IKESeen++
		p = t.getPair(client, srv, now)
	}
	if p != nil {
		child, req := childMsg(p, h)
		if child && req {
			if q := t.heldBy(p, now); q != nil {
				t.hold(p, q, h, "client")
				return Drop
			}
		}
		t.observe(p, h, child, true, now)
		p.ikeClientPort = sport
		p.ikePktsOut++
		p.ikeBytesOut += uint64(len(ip))
		conflict := t.registerIKE(p, h, now)
		if !userNAT && p.ikeUserNAT {
			// keep_ike_port was switched off: kernel NAT from now on.
			p.ikeUserNAT = false
			t.dirty = true
		}
		if userNAT {
			if conflict {
				// Its replies would reach the other client: refuse
				// rather than share a port we cannot demultiplex.
				p.ikeConflict = true
				return Drop
			}
			if !p.ikeUserNAT {
				p.ikeUserNAT = true
				t.dirty = true
			}
			p.ikeWANPort = sport
			p.wan = ip4Of(wan)
		}
	}
	if !userNAT {
		// Kernel NAT translates it; we only watched.
		return Accept
	}
	old := ip.Src()
	ip.SetSrc(wan)
	u.UpdateChecksumAddr(old, wan)
	t.st.IKEOutNAT++
	return Forward
}

func (t *Tracker) ikeIn(ip packet.IPv4, u packet.UDP, now time.Duration) Verdict {
	sport, dport := u.SrcPort(), u.DstPort()
	if sport != packet.PortIKE {
		return Accept
	}
	h, err := packet.ParseIKE(u.Payload())
	if err != nil {
		t.st.IKEMalformed++
		return Accept
	}
	t.st.IKESeen++
	srv, dst := ip4Of(ip.Src()), ip4Of(ip.Dst())
	e := t.ikeSPIs[ikeKey{srv, h.InitiatorSPI()}]
	if e == nil && h.ResponderSPI() != 0 {
		e = t.ikeSPIs[ikeKey{srv, h.ResponderSPI()}]
	}
	if e == nil {
		// No LAN client uses these IKE SPIs with this server: the
		// router's own IKE, or something conntrack will refuse.
		t.st.IKEInUnknown++
		return Accept
	}
	p := e.pair
	e.lastSeen = now
	child, req := childMsg(p, h)
	if child && req {
		if q := t.heldBy(p, now); q != nil {
			t.hold(p, q, h, "server")
			return Drop
		}
	}
	t.observe(p, h, child, false, now)
	p.ikePktsIn++
	p.ikeBytesIn += uint64(len(ip))
	if p.ikeUserNAT && t.opt.KeepIKEPort && dport == packet.PortIKE && dst == p.wan {
		c := p.client.Addr()
		old := ip.Dst()
		ip.SetDst(c)
		u.UpdateChecksumAddr(old, c)
		t.st.IKEInDemuxed++
		return Forward
	}
	if !p.ikeUserNAT {
		// Kernel NAT: the destination port is what the server sees.
		p.ikeWANPort = dport
		if p.wan == 0 {
			p.wan = dst
		}
		if p.ikeClientPort != 0 && dport != p.ikeClientPort && !p.remapLogged {
			p.remapLogged = true
			t.st.IKERemapped++
			args := []any{"client", p.client, "server", p.server, "client_port", p.ikeClientPort, "wan_port", dport}
			if p.ikeClientPort == packet.PortIKE {
				args = append(args, "hint", "another client holds port 500 to this server; peers that insist on source port 500 need ipsec.keep_ike_port")
			}
			t.opt.Log.Warn("ike source port remapped by kernel NAT", args...)
		}
	}
	return Accept
}

// observe updates p's IKE timing with a message that was let through
// (out: from the client).
func (t *Tracker) observe(p *pair, h packet.IKEHeader, child, out bool, now time.Duration) {
	if h.MajorVersion() == 2 {
		// The server's answer time, from the client's requests and their
		// responses: how long a server's ESP answer may take too, which
		// re-learning needs (relearn.go).
		switch {
		case out && !h.IsResponse():
			p.ikeReqAt, p.ikeReqID = now, h.MessageID()
		case !out && h.IsResponse() && p.ikeReqAt != 0 && h.MessageID() == p.ikeReqID:
			if sv := t.servers[p.server]; sv != nil {
				sv.sampleRTT(now - p.ikeReqAt)
			}
			p.ikeReqAt = 0
		}
	}
	p.lastIKE = now
	p.lastSeen = now
	p.ikeSPI = h.InitiatorSPI()
	if !child {
		return
	}
	// A new exchange starts after a pause or after an inbound SPI was
	// learned; rounds of one exchange (EAP) keep its start, so HoldMax
	// bounds how long it can hold other clients.
	if p.childStart == 0 || p.learnedAt >= p.childStart || now-p.childLast >= t.opt.HoldWindow {
		p.childStart = now
	}
	p.childLast = now
	t.listPending(p)
	if h.MajorVersion() == 1 {
		p.qmMsgID = h.MessageID()
	}
}

// negotiating reports whether p is inside a child-SA exchange whose
// inbound SPI has not been learned yet, within the hold limits.
func (t *Tracker) negotiating(p *pair, now time.Duration) bool {
	return p.childStart != 0 && p.learnedAt < p.childStart &&
		now-p.childLast < t.opt.HoldWindow && now-p.childStart < t.opt.HoldMax
}

// heldBy returns another client negotiating with the same server, whose
// exchange p's new child-SA request has to wait for (doc.go, "Two clients
// at the same moment").
//
// A client waits at most HoldMax in all, however the others' exchanges
// follow one another: otherwise a LAN host using several addresses could
// chain negotiations and keep another client's child SA out for good.
func (t *Tracker) heldBy(p *pair, now time.Duration) *pair {
	sv := t.servers[p.server]
	if sv == nil || (p.waiting && now-p.waitingSince >= t.opt.HoldMax) {
		p.waiting = false
		return nil
	}
	for _, q := range sv.pairs {
		if q != p && t.negotiating(q, now) {
			if !p.waiting {
				p.waiting, p.waitingSince = true, now
			}
			return q
		}
	}
	p.waiting = false
	return nil
}

func (t *Tracker) hold(p, q *pair, h packet.IKEHeader, from string) {
	p.ikeHeld++
	t.st.IKEHeld++
	t.opt.Log.Info("ike child-SA request held back while another client negotiates with the same server",
		"client", p.client, "server", p.server, "from", from, "exchange", int(h.ExchangeType()),
		"waiting_for", q.client)
}

// registerIKE maps p's IKE SPIs with its server to p, for demultiplexing
// inbound IKE and for joining the pre- and post-NAT views. It reports a
// conflict when another client already uses one of them with that server.
func (t *Tracker) registerIKE(p *pair, h packet.IKEHeader, now time.Duration) (conflict bool) {
	for _, spi := range [2]uint64{h.InitiatorSPI(), h.ResponderSPI()} {
		if spi == 0 {
			continue
		}
		k := ikeKey{p.server, spi}
		e := t.ikeSPIs[k]
		switch {
		case e == nil:
			if len(t.ikeSPIs) >= 2*t.opt.MaxSAs {
				t.st.TableFull++
				continue
			}
			t.ikeSPIs[k] = &ikeEntry{pair: p, lastSeen: now}
			p.ikeSPIs++
			t.dirty = true
		case e.pair == p:
			e.lastSeen = now
		default:
			conflict = true
			t.st.IKESPIConflicts++
			t.opt.Log.Warn("ike SPI already used by another client with this server",
				"client", p.client, "other_client", e.pair.client, "server", p.server, "spi", hexSPI64(spi))
		}
	}
	return conflict
}

func portString(p uint16) string {
	if p == 0 {
		return "?"
	}
	return strconv.Itoa(int(p))
}
