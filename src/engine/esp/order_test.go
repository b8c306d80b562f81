package esp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Issue 8: SPI learning must be right for every order in which two or
// three clients of one server negotiate (IKE) and send their first ESP,
// with the server answering each first packet at once or only after the
// other clients' first packets that follow it (deferred: the answers race
// them, and come in the order the packets were sent), and including
// libreswan's "A up, B up, then A sends first".

type orderEvent struct {
	kind   byte // 'I' IKE handshake, 'E' first outbound ESP
	client int
}

// interleavings returns every order of I1,E1,I2,E2,... with Ii before Ei.
func interleavings(n int) [][]orderEvent {
	var out [][]orderEvent
	var rec func(seq []orderEvent, done []int)
	rec = func(seq []orderEvent, done []int) {
		if len(seq) == 2*n {
			out = append(out, append([]orderEvent(nil), seq...))
			return
		}
		for i := 1; i <= n; i++ {
			if done[i] == 2 {
				continue
			}
			kind := byte('I')
			if done[i] == 1 {
				kind = 'E'
			}
			done[i]++
			rec(append(seq, orderEvent{kind, i}), done)
			done[i]--
		}
	}
	rec(nil, make([]int, n+1))
	return out
}

func orderName(seq []orderEvent) string {
	var b strings.Builder
	for _, e := range seq {
		fmt.Fprintf(&b, "%c%d", e.kind, e.client)
	}
	return b.String()
}

// handshakeRetry runs the IKE handshake, retransmitting a held request a
// second later as IKE does (RFC 7296 2.1), at most 20 times.
func (r *rig) handshakeRetry(client, srv netip.Addr, ispi, rspi uint64) {
	r.t.Helper()
	if v := r.ikeOut(client, srv, saInitReq(ispi)); v == Drop {
		r.t.Fatal("IKE_SA_INIT dropped")
	}
	r.ikeIn(srv, 500, saInitResp(ispi, rspi))
	for try := 0; ; try++ {
		if try == 20 {
			r.t.Fatalf("IKE_AUTH of %s held 20 times", client)
		}
		if v := r.ikeOut(client, srv, authReq(ispi, rspi)); v != Drop {
			break
		}
		r.advance(time.Second)
	}
	// The server answers within a millisecond (r.in's step), as it
	// answers ESP in these tests: the IKE round trip is the engine's
	// measure of how late an answer may come.
	r.ikeIn(srv, 500, authResp(ispi, rspi))
}

func TestLearningEveryOrder(t *testing.T) {
	for _, n := range []int{2, 3} {
		for _, deferred := range []bool{false, true} {
			for _, seq := range interleavings(n) {
				name := fmt.Sprintf("%d clients %s deferred=%v", n, orderName(seq), deferred)
				t.Run(name, func(t *testing.T) {
					r := newRig(t, Options{})
					client := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 10, byte(i), 2}) }
					out := func(i int) uint32 { return 0xc0000000 + uint32(i) }
					in := func(i int) uint32 { return 0xa0000000 + uint32(i) }
					// Deferred answers race the next clients' first
					// packets: the timing evidence may point elsewhere,
					// so they may be held back, but never misdelivered.
					var pending []int
					firstHeld := 0
					flush := func() {
						for _, i := range pending {
							r.advance(5 * time.Millisecond)
							r.inboundOrHeld(srvS, in(i), client(i))
						}
						pending = nil
					}
					for _, e := range seq {
						r.advance(200 * time.Millisecond)
						switch e.kind {
						case 'I':
							flush() // a server answers within a round trip

							r.handshakeRetry(client(e.client), srvS, uint64(e.client)<<32|1, uint64(e.client)<<32|2)
						case 'E':
							r.espOut(client(e.client), srvS, out(e.client))
							if deferred {
								pending = append(pending, e.client)
							} else {
								r.advance(5 * time.Millisecond)
								if !r.inboundOrHeld(srvS, in(e.client), client(e.client)) {
									firstHeld++
								}
							}
						}
					}
					flush()
					held := r.converse(n, client, out, in)
					// An answer came before the next first packet: a
					// guess is held only on its first vote, as the one
					// vote is not yet two in a row (relearn.go).
					if !deferred && (held > 0 || firstHeld > n-1) {
						t.Errorf("%d first answers and %d later ones held back, though each came before the next first packet", firstHeld, held)
					}
				})
			}
		}
	}
}
