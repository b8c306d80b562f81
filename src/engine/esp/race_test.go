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
// arrive, at most 40 rounds; then it requires exactly the right SAs
// programmed and established. It returns how many answers were held.
func (r *rig) converse(n int, client func(int) netip.Addr, out, in func(int) uint32) int {
	r.t.Helper()
	held, good := 0, 0
	for round := 0; round < 40 && good < 5; round++ {
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
	if good < 5 {
		r.t.Fatalf("still holding after 40 rounds (%d held): %+v", held, r.tr.Stats())
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
