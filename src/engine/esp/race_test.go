package esp

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// permutations returns every order of 1..n.
func permutations(n int) [][]int {
	var out [][]int
	var rec func(seq []int, used []bool)
	rec = func(seq []int, used []bool) {
		if len(seq) == n {
			out = append(out, append([]int(nil), seq...))
			return
		}
		for i := 1; i <= n; i++ {
			if !used[i] {
				used[i] = true
				rec(append(seq, i), used)
				used[i] = false
			}
		}
	}
	rec(nil, make([]bool, n+1))
	return out
}

// Issue 8: two or three clients whose first ESP packets race, with the
// server's answers coming back in any order (the first answer of one SA
// delayed behind another client's). The first-sender rule then guesses
// wrong for some orders; the engine must hold back or re-learn, never
// deliver a packet to the wrong client, and end with every SA right. Each
// client then keeps talking as tunnels do (a request, the server's answer a
// millisecond later), which is the timing evidence the engine re-learns by.
func TestFirstPacketsRaceAnswersInAnyOrder(t *testing.T) {
	for _, n := range []int{2, 3} {
		for _, answers := range permutations(n) {
			t.Run(fmt.Sprintf("%d clients answers %v", n, answers), func(t *testing.T) {
				r := newRig(t, Options{})
				client := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 10, byte(i), 2}) }
				out := func(i int) uint32 { return 0xc0000000 + uint32(i) }
				in := func(i int) uint32 { return 0xa0000000 + uint32(i) }
				for i := 1; i <= n; i++ {
					r.handshakeRetry(client(i), srvS, uint64(i)<<32|1, uint64(i)<<32|2)
				}
				// Every client is up with a half-learned SA to come; the
				// first packets go out 5 ms apart.
				for i := 1; i <= n; i++ {
					r.advance(5 * time.Millisecond)
					r.espOut(client(i), srvS, out(i))
				}
				held := 0
				for _, i := range answers {
					r.advance(2 * time.Millisecond)
					if !r.inboundOrHeld(srvS, in(i), client(i)) {
						held++
					}
				}
				held += r.converse(n, client, out, in)
				if held > 8*n {
					t.Errorf("%d answers held back", held)
				}
				t.Logf("%d held, %+v", held, r.tr.Stats())
			})
		}
	}
}

// inboundOrHeld sends srv's ESP on spi: it must reach want or be held back
// (dropped), never reach another client. It reports whether it arrived.
func (r *rig) inboundOrHeld(srv netip.Addr, spi uint32, want netip.Addr) bool {
	r.t.Helper()
	v, to := r.espIn(srv, spi)
	switch {
	case v == Forward && to == want:
		return true
	case v == Forward:
		r.t.Fatalf("answer on %s's SPI %#x forwarded to %s", want, spi, to)
	case v != Drop:
		r.t.Fatalf("answer on %s's SPI %#x: verdict %v", want, spi, v)
	}
	return false
}

// converse has clients 1..n talk to srvS as tunnels do (each sends, the
// server answers at once; turns 10 ms apart) until five rounds in a row
// arrive and every SA is confirmed, at most 40 rounds; then it requires
// exactly the right SAs programmed and established. It returns how many
// answers were held.
func (r *rig) converse(n int, client func(int) netip.Addr, out, in func(int) uint32) int {
	r.t.Helper()
	held, good := 0, 0
	for round := 0; round < 40 && (good < 5 || len(r.tr.Desired()) < n); round++ {
		all := true
		for i := 1; i <= n; i++ {
			r.advance(10 * time.Millisecond)
			r.espOut(client(i), srvS, out(i))
			if !r.inboundOrHeld(srvS, in(i), client(i)) {
				all = false
				held++
			}
		}
		if all {
			good++
		} else {
			good = 0
		}
	}
	if good < 5 || len(r.tr.Desired()) < n {
		r.t.Fatalf("still holding or unconfirmed after 40 rounds (%d held): %+v", held, r.tr.Stats())
	}
	want := map[Programmed]bool{}
	for i := 1; i <= n; i++ {
		want[Programmed{Client: client(i), Server: srvS, In: in(i), Out: out(i)}] = true
	}
	got := r.tr.Desired()
	if len(got) != n {
		r.t.Fatalf("programmed %+v, want %d SAs", got, n)
	}
	for _, g := range got {
		if !want[g] {
			r.t.Fatalf("programmed %+v, want %+v", got, want)
		}
	}
	for _, s := range r.tr.Sessions(r.now) {
		if s.Proto == "esp" && s.State != StateEstablished {
			r.t.Errorf("session %+v", s)
		}
	}
	return held
}

// The timing can be noise: two clients sending in lock-step faster than
// the server's round trip (each answer arrives after both clients' next
// packets). The votes are noise then, and answers may reach the wrong
// client (which drops them: ESP integrity), but no crossed binding may be
// confirmed (programmed into the maps); once the traffic gives clear
// evidence (a client alone sending, answered within the round trip), every
// SA ends right.
func TestNoisyTimingNeverConfirmsACross(t *testing.T) {
	for _, answers := range [][]int{{1, 2}, {2, 1}} {
		t.Run(fmt.Sprintf("answers %v", answers), func(t *testing.T) {
			r := newRig(t, Options{})
			client := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 10, byte(i), 2}) }
			out := func(i int) uint32 { return 0xc0000000 + uint32(i) }
			in := func(i int) uint32 { return 0xa0000000 + uint32(i) }
			for i := 1; i <= 2; i++ {
				r.handshakeRetry(client(i), srvS, uint64(i)<<32|1, uint64(i)<<32|2)
			}
			for i := 1; i <= 2; i++ {
				r.advance(time.Millisecond)
				r.espOut(client(i), srvS, out(i))
			}
			for _, i := range answers {
				r.inboundOrHeld(srvS, in(i), client(i))
			}
			// Lock-step: both send every 2 ms; the server's answers come
			// 3 ms (and some jitter) later, after the other's next packet.
			misdelivered := 0
			var queue []struct {
				at time.Duration
				i  int
			}
			for k := 0; k < 400; k++ {
				for i := 1; i <= 2; i++ {
					r.advance(time.Millisecond)
					r.espOut(client(i), srvS, out(i))
					queue = append(queue, struct {
						at time.Duration
						i  int
					}{r.now + 3*time.Millisecond + time.Duration(k*7%3)*time.Millisecond/2, i})
				}
				for len(queue) > 0 && queue[0].at <= r.now {
					if v, to := r.espIn(srvS, in(queue[0].i)); v == Forward && to != client(queue[0].i) {
						misdelivered++
					}
					queue = queue[1:]
				}
				for _, d := range r.tr.Desired() {
					if d.In != in(int(d.Client.As4()[2])) {
						t.Fatalf("round %d: a crossed SA was confirmed: %+v", k, d)
					}
				}
			}
			t.Logf("%d of 800 answers misdelivered in the noise, %+v", misdelivered, r.tr.Stats())
			r.advance(time.Second)
			r.converse(2, client, out, in)
		})
	}
}
