package esp

import (
	"sort"
	"strconv"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// SA states as status shows them.
const (
	StateLearning    = "learning"    // one SPI of the pair is not known yet
	StateEstablished = "established" // both SPIs known, traffic both ways since
	StateOneWay      = "both SPIs, waiting for traffic both ways"
	// StateConfirming: both SPIs known, but another client could own the
	// inbound one; the timing evidence confirms or moves it (doc.go).
	StateConfirming = "both SPIs, confirming whose inbound SPI"
	StateRekeyed    = "rekeyed" // a newer SA replaced it; expires when idle
)

// Sessions returns one "esp" session per SA and one "ike" session per
// client-server pair with IKE seen, sorted by server, client and age.
func (t *Tracker) Sessions(now time.Duration) []status.Session {
	var out []status.Session
	for _, p := range t.pairs {
		for _, s := range p.sas {
			state := StateEstablished
			switch {
			case s.rekeyedAt != 0:
				state = StateRekeyed
			case s.in == 0 || s.out == 0:
				state = StateLearning
			case s.provisional:
				state = StateConfirming
			case !s.established():
				state = StateOneWay
			case s.silent(now) != "":
				state = "one way: nothing " + s.silent(now) + " for " +
					strconv.FormatInt(int64(now-min(s.lastIn, s.lastOut))/int64(time.Second), 10) + " s"
			}
			out = append(out, status.Session{
				Proto:       "esp",
				Client:      p.client.String(),
				Server:      p.server.String(),
				OrigID:      hexSPI(s.out), // SPIs are not translated
				TransID:     hexSPI(s.out),
				PeerID:      hexSPI(s.in),
				State:       state,
				PacketsOut:  s.pktsOut + s.kPktsOut,
				BytesOut:    s.bytesOut + s.kBytesOut,
				PacketsIn:   s.pktsIn + s.kPktsIn,
				BytesIn:     s.bytesIn + s.kBytesIn,
				AgeSeconds:  int64((now - s.created) / time.Second),
				IdleSeconds: int64((now - s.lastUsed()) / time.Second),
			})
		}
		if p.lastIKE == 0 {
			continue
		}
		out = append(out, status.Session{
			Proto:       "ike",
			Client:      p.client.String(),
			Server:      p.server.String(),
			OrigID:      portString(p.ikeClientPort),
			TransID:     portString(p.ikeWANPort),
			PeerID:      hexSPI64(p.ikeSPI),
			State:       t.ikeState(p),
			PacketsOut:  p.ikePktsOut,
			BytesOut:    p.ikeBytesOut,
			PacketsIn:   p.ikePktsIn,
			BytesIn:     p.ikeBytesIn,
			AgeSeconds:  int64((now - p.created) / time.Second),
			IdleSeconds: int64((now - p.lastIKE) / time.Second),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Server != b.Server {
			return a.Server < b.Server
		}
		if a.Client != b.Client {
			return a.Client < b.Client
		}
		if a.Proto != b.Proto {
			return a.Proto > b.Proto // ike first
		}
		return a.AgeSeconds > b.AgeSeconds
	})
	return out
}

// ikeState says how a pair's IKE crosses the NAT, in words.
func (t *Tracker) ikeState(p *pair) string {
	var s string
	switch {
	case p.ikeConflict:
		s = "SPI conflict: dropped"
	case p.ikeUserNAT:
		n := 0
		if sv := t.servers[p.server]; sv != nil {
			for _, q := range sv.pairs {
				if q.ikeUserNAT {
					n++
				}
			}
		}
		s = "port 500 kept"
		if n > 1 {
			s = "port 500 shared by " + strconv.Itoa(n) + " clients, demuxed by IKE SPI"
		}
	case p.ikeWANPort != 0 && p.ikeClientPort != 0 && p.ikeWANPort != p.ikeClientPort:
		s = "remapped by kernel NAT"
	default:
		s = "kernel NAT"
	}
	if p.ikeHeld > 0 {
		s += ", held " + strconv.FormatUint(p.ikeHeld, 10) + "x"
	}
	return s
}
