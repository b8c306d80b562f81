package esp

import "time"

// Re-learning (doc.go): an inbound SPI bound while another client of the
// server could have owned it is provisional. Its packets, and the
// outbound packets of its client, keep reaching the engine (the SA stays out
// of the kernel maps), and each inbound packet is judged by the timing
// evidence: which client just sent ESP to that server.

// confirmVotes is how many agreeing pieces of evidence in a row confirm a
// provisional binding, and how many naming one other client in a row move
// it there.
const confirmVotes = 3

// votes is a provisional SA's evidence so far.
type votes struct {
	at      time.Duration // the send time the last vote used (each send explains one answer)
	confirm int           // votes in a row for the SA's own client
	against int           // votes in a row for who
	who     *pair
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

// voter is the client of sv whose ESP to the server clearly preceded now:
// among the clients with a provisional or half-learned SA to it, the one
// that sent last, within the reply window, and at most half as long ago as
// any other of them. A server answers within a round trip, so that client
// is the one being answered. nil when the timing says nothing clearly.
func (t *Tracker) voter(sv *server, now time.Duration) (*pair, time.Duration) {
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
		return nil, 0
	}
	ago := now - best.lastESPOut
	if ago >= t.opt.ReplyWindow || (second >= 0 && 2*ago >= now-second) {
		return nil, 0
	}
	return best, best.lastESPOut
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
	w, at := t.voter(sv, now)
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
		case s.votes.confirm > 0:
			return s
		case s.votes.against > 0 || t.sending(sv, now):
			return nil
		}
		return s
	}
	s.votes.at = at
	sv.vote = lastVote{who: w, at: at, spi: s.in}
	if w == s.pair {
		s.votes.against, s.votes.who = 0, nil
		if s.votes.confirm++; s.votes.confirm >= confirmVotes {
			s.provisional = false
			s.votes = votes{}
			t.st.Confirmed++
			t.dirty = true
			t.opt.Log.Info("esp inbound SPI confirmed by timing", "client", s.pair.client, "server", s.pair.server,
				"spi_in", hexSPI(s.in), "spi_out", hexSPI(s.out))
		}
		return s
	}
	s.votes.confirm = 0
	if s.votes.who != w {
		s.votes.who, s.votes.against = w, 0
	}
	if s.votes.against++; s.votes.against < confirmVotes {
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
		s.votes.against = 0
		return nil
	}
	t.in[inKey{old.server, spi}] = r
	r.votes, r.inAfter, r.outAfter = votes{}, 0, 0
	r.votes.at = at // that send explained this answer already
	r.votes.confirm = 1
	t.st.Relearned++
	t.dirty = true
	t.opt.Log.Warn("esp inbound SPI re-learned: the timing evidence names another client", "server", old.server,
		"spi_in", hexSPI(spi), "from", old.client, "to", w.client)
	return r
}
