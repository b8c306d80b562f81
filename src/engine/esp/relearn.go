package esp

import "time"

// Re-learning (doc.go): an inbound SPI bound while another client of the
// server could have owned it is provisional. Its packets, and the
// outbound packets of its client, keep reaching the engine (the SA stays out
// of the kernel maps), and each inbound packet is judged by the timing
// evidence: which client just sent ESP to that server.

// Thresholds of the timing evidence. Confirming takes more than moving:
// a wrong confirmation would be programmed into the maps and stay, while a
// wrong move is still provisional. Both need a run of agreeing votes and a
// clear majority, so votes that are noise (clients sending in lock-step
// faster than the round trip) settle nothing.
const (
	confirmVotes  = 6 // votes for the SA's own client, at least 6x those against
	confirmStreak = 4 // the last ones in a row
	moveVotes     = 3 // votes in a row for one other client, a 2:1 majority and 3 more
	deliverStreak = 2 // votes in a row for the SA's own client before its answers are delivered
)

// votes is a provisional SA's evidence so far.
type votes struct {
	at  time.Duration // the send time the last vote used (each send explains one answer)
	pro int           // votes for the SA's own client
	con int           // votes for other clients
	// who is the other client most votes named (a majority vote count:
	// whoN is its lead), streak the run of the last votes: > 0 for the
	// SA's own client, < 0 for who.
	who    *pair
	whoN   int
	streak int
}

// hasProvisional reports whether an SA of sv is provisional.
func (t *Tracker) hasProvisional(sv *server) bool {
	for _, p := range sv.pairs {
		for _, s := range p.sas {
			if s.provisional {
				return true
			}
		}
	}
	return false
}

// sampleRTT takes one IKE request-response time. The estimate follows a
// slower answer at once and a faster one slowly: it bounds how late an
// answer may come, so it errs long.
func (sv *server) sampleRTT(d time.Duration) {
	if d > sv.rtt {
		sv.rtt = d
	} else {
		sv.rtt = (3*sv.rtt + d) / 4
	}
}

// minIsolation is the least time a vote needs between its client's send
// and any other client's (scheduling noise on the router and the server).
const minIsolation = time.Millisecond

// voter is the client of sv whose ESP to the server clearly preceded now:
// among the clients with a provisional or half-learned SA to it, the one
// that sent last, within the reply window, and at most half as long ago as
// any other of them. A server answers within a round trip, so that client
// is the one being answered. nil when the timing says nothing clearly.
func (t *Tracker) voter(sv *server, now time.Duration) (w *pair, at time.Duration, alone bool) {
	var best *pair
	second := time.Duration(-1)
	for _, p := range sv.pairs {
		if p.lastESPOut == 0 || !p.learning() {
			continue
		}
		if best == nil || p.lastESPOut > best.lastESPOut {
			if best != nil {
				second = best.lastESPOut
			}
			best = p
		} else if p.lastESPOut > second {
			second = p.lastESPOut
		}
	}
	if best == nil {
		return nil, 0, false
	}
	// The answer may be to another client's packet if that one went out
	// within the server's answer time: such a send is no evidence (on a
	// loaded router or server, answers come after the next client's
	// packet, and the most recent sender is the wrong one).
	ago := now - best.lastESPOut
	if ago >= t.opt.ReplyWindow || (second >= 0 && (2*ago >= now-second || now-second < max(2*sv.rtt, minIsolation))) {
		return nil, 0, false
	}
	return best, best.lastESPOut, second < 0 || now-second >= t.opt.ReplyWindow
}

// sending reports whether a learning client of sv sent ESP to it within
// the reply window.
func (t *Tracker) sending(sv *server, now time.Duration) bool {
	for _, p := range sv.pairs {
		if p.lastESPOut != 0 && now-p.lastESPOut < t.opt.ReplyWindow && p.learning() {
			return true
		}
	}
	return false
}

// learning: p has a provisional or a half-learned (outbound only) SA.
func (p *pair) learning() bool {
	for _, s := range p.sas {
		if s.provisional || s.outOnly() {
			return true
		}
	}
	return false
}

// judge decides about an inbound packet on the provisional SA s: it returns
// the SA to deliver it on (s, or the SA the SPI moved to), or nil to hold
// it back (drop: the evidence names another client). Each outbound packet
// counts as evidence for one answer per SA, and for one new SPI of the
// server; an answer without new evidence follows the last vote, and is held
// before the first one.
func (t *Tracker) judge(s *sa, now time.Duration) *sa {
	sv := t.servers[s.pair.server]
	if sv == nil {
		return s
	}
	w, at, alone := t.voter(sv, now)
	if w != nil && sv.vote.who == w && sv.vote.at == at && sv.vote.spi != s.in {
		// That send was already taken as the answer on another new SPI:
		// one client cannot be answered on two, so it proves nothing.
		w = nil
	}
	if w == nil || at == s.votes.at {
		// No new evidence: the last vote stands. Before any, the guess
		// is held back while clients are sending (their timing will
		// tell), and delivered when none is (no evidence will come
		// before the answer; it stays provisional).
		switch {
		case s.votes.streak >= deliverStreak:
			return s
		case s.votes.streak != 0 || s.votes.pro > 0 || s.votes.con > 0 || t.sending(sv, now):
			return nil
		}
		return s
	}
	s.votes.at = at
	sv.vote = lastVote{who: w, at: at, spi: s.in}
	v := &s.votes
	if w == s.pair {
		v.pro++
		v.streak = max(v.streak, 0) + 1
		if v.pro >= confirmVotes && v.pro >= 6*v.con && v.streak >= confirmStreak {
			s.provisional = false
			s.votes = votes{}
			t.st.Confirmed++
			t.dirty = true
			t.opt.Log.Info("esp inbound SPI confirmed by timing", "client", s.pair.client, "server", s.pair.server,
				"spi_in", hexSPI(s.in), "spi_out", hexSPI(s.out))
		}
		if v.streak < deliverStreak && !alone && s.provisional {
			// One vote while other clients are sending too can be a
			// coincidence (a burst of delayed answers arriving just
			// before their client's next send, after another
			// client's): delivering on it would hand the burst to that
			// client.
			return nil
		}
		return s
	}
	v.con++
	switch {
	case v.who == w:
		v.whoN++
	case v.whoN == 0:
		v.who, v.whoN = w, 1
	default:
		v.whoN--
	}
	if v.who == w {
		v.streak = min(v.streak, 0) - 1
	} else {
		v.streak = 0
	}
	if v.streak > -moveVotes || v.con < 2*v.pro+moveVotes {
		return nil
	}
	return t.rebind(s, w, now)
}

// lastVote is the evidence a server's last vote used.
type lastVote struct {
	who *pair
	at  time.Duration
	spi uint32
}

// rebind moves s's inbound SPI to client w, which the evidence named: it
// swaps with w's provisional SA, or completes w's half-learned one (s then
// learns again). It returns the SA now owning the SPI, or nil if w has
// neither (the packet is held).
func (t *Tracker) rebind(s *sa, w *pair, now time.Duration) *sa {
	old := s.pair
	spi, at := s.in, s.votes.at
	r := w.newest(func(x *sa) bool { return x.provisional && x.in != 0 && x.out != 0 })
	switch {
	case r != nil:
		s.in, r.in = r.in, spi
		t.in[inKey{old.server, s.in}] = s
		s.votes, s.inAfter, s.outAfter = votes{}, 0, 0
	case w.newest((*sa).outOnly) != nil:
		r = w.newest((*sa).outOnly)
		r.in = spi
		r.provisional = true
		t.completed(w, r, now)
		w.learnedAt = now
		delete(t.in, inKey{old.server, spi})
		s.in, s.complete, s.provisional = 0, 0, false
		s.votes, s.inAfter, s.outAfter = votes{}, 0, 0
		t.listPending(old)
	default:
		s.votes.streak = 0
		return nil
	}
	t.in[inKey{old.server, spi}] = r
	r.votes, r.inAfter, r.outAfter = votes{}, 0, 0
	r.votes.at = at // that send explained this answer already
	r.votes.pro, r.votes.streak = 1, 1
	t.st.Relearned++
	t.dirty = true
	t.opt.Log.Warn("esp inbound SPI re-learned: the timing evidence names another client", "server", old.server,
		"spi_in", hexSPI(spi), "from", old.client, "to", w.client)
	return r
}
