package esp

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestElemKeysRoundTrip(t *testing.T) {
	k := InElemKey(srvS, 0x12345678)
	want := []byte{198, 51, 100, 2, 0x12, 0x34, 0, 0, 0x56, 0x78, 0, 0}
	if !bytes.Equal(k, want) {
		t.Fatalf("esp_in key % x, want % x", k, want)
	}
	c := clientA.As4()
	e, ok := ParseInElem(k, c[:])
	if !ok || e.Server != srvS || e.SPI != 0x12345678 || e.Client != clientA {
		t.Fatalf("parsed %+v %v", e, ok)
	}
	o, ok := ParseOutElem(OutElemKey(clientA, srvS, 0xdeadbeef))
	if !ok || o.Client != clientA || o.Server != srvS || o.SPI != 0xdeadbeef {
		t.Fatalf("parsed %+v %v", o, ok)
	}
	if _, ok := ParseInElem(k[:8], c[:]); ok {
		t.Fatal("short key parsed")
	}
}

// Only complete SAs are programmed; element counters keep an SA alive and
// count in its session; a restarted tracker adopts what the kernel holds
// (no duplicates with what it restored), and elements of ended SAs are
// reported stale.
func TestKernelSyncAdoptAndExpire(t *testing.T) {
	r := newRig(t, Options{IdleTimeout: time.Minute})
	r.espOut(clientA, srvS, 0xc1)
	if d := r.tr.Desired(); len(d) != 0 {
		t.Fatalf("half-learned SA programmed: %+v", d)
	}
	r.wantIn(srvS, 0xa1, clientA)
	d := r.tr.Desired()
	if len(d) != 1 || d[0].In != 0xa1 || d[0].Out != 0xc1 || d[0].Client != clientA {
		t.Fatalf("desired %+v", d)
	}
	ins := []KernelIn{{Server: srvS, Client: clientA, SPI: 0xa1, Packets: 50, Bytes: 5000}}
	outs := []KernelOut{{Client: clientA, Server: srvS, SPI: 0xc1, Packets: 40, Bytes: 4000}}
	// Traffic in the kernel for longer than the idle timeout: still alive.
	for i := 0; i < 3; i++ {
		r.advance(40 * time.Second)
		ins[0].Packets += 10
		outs[0].Packets += 10
		if si, so := r.tr.KernelSync(ins, outs, false, wanA, r.now); len(si)+len(so) != 0 {
			t.Fatalf("stale %v %v", si, so)
		}
		r.tr.Expire(r.now)
	}
	if ok, st := r.session("esp", "10.10.1.2", ""); !ok || st != StateEstablished {
		t.Fatalf("kernel-forwarded SA: %v %q", ok, st)
	}
	s := r.tr.Sessions(r.now)
	if s[0].PacketsIn != 80+1 || s[0].PacketsOut != 70+1 {
		t.Fatalf("session counts %+v", s[0])
	}
	// A new tracker (restart) adopts both elements as one SA.
	r2 := newRig(t, Options{})
	r2.tr.KernelSync(ins, outs, true, wanA, r2.now)
	if r2.tr.Len() != 1 || len(r2.tr.Desired()) != 1 {
		t.Fatalf("adopted %d SAs, desired %+v", r2.tr.Len(), r2.tr.Desired())
	}
	r2.tr.KernelSync(ins, outs, true, wanA, r2.now)
	if r2.tr.Len() != 1 {
		t.Fatalf("a second read-back duplicated: %d SAs", r2.tr.Len())
	}
	r2.wantIn(srvS, 0xa1, clientA) // the queue path knows it too
	// Idle in the kernel too: it expires, and its elements are stale.
	r.advance(2 * time.Minute)
	r.tr.Expire(r.now)
	if si, so := r.tr.KernelSync(ins, outs, false, wanA, r.now); len(si) != 1 || len(so) != 1 {
		t.Fatalf("after expiry: stale %v %v", si, so)
	}
}

// Issue 8: "established" in status means the SA really carries traffic
// both ways: the kernel maps' per-element counters count, and one direction
// going silent while the other flows (a dead peer, a broken return path)
// is shown as one way.
func TestEstablishedFollowsTheMapsCounters(t *testing.T) {
	r := newRig(t, Options{})
	r.handshake(clientA, srvS, 0xa1, 0xa2)
	r.espOut(clientA, srvS, 0xc1)
	r.wantIn(srvS, 0xd1, clientA)
	state := func() string {
		t.Helper()
		_, st := r.session("esp", clientA.String(), hexSPI(0xc1))
		return st
	}
	// Outbound went before the SA was complete: not both ways yet.
	if st := state(); st != StateOneWay {
		t.Fatalf("state %q, want %q", st, StateOneWay)
	}
	sync := func(in, out uint64) {
		t.Helper()
		stale, staleOut := r.tr.KernelSync([]KernelIn{{Server: srvS, Client: clientA, SPI: 0xd1, Packets: in}},
			[]KernelOut{{Client: clientA, Server: srvS, SPI: 0xc1, Packets: out}}, false, wanA, r.now)
		if len(stale)+len(staleOut) != 0 {
			t.Fatalf("stale elements %v %v", stale, staleOut)
		}
	}
	sync(0, 5) // the kernel forwarded outbound packets
	if st := state(); st != StateEstablished {
		t.Fatalf("state %q after the kernel forwarded both ways, want %q", st, StateEstablished)
	}
	// Outbound keeps flowing in the kernel, nothing comes back.
	for i := uint64(1); i <= 8; i++ {
		r.advance(5 * time.Second)
		sync(0, 5+10*i)
	}
	if st := state(); !strings.HasPrefix(st, "one way: nothing inbound for ") {
		t.Fatalf("state %q after 40 s without inbound, want one way", st)
	}
	r.advance(time.Second)
	sync(3, 100)
	if st := state(); st != StateEstablished {
		t.Fatalf("state %q once inbound flows again, want %q", st, StateEstablished)
	}
	// Both idle: still established (an idle tunnel is not a broken one).
	r.advance(2 * OneWayAfter)
	if st := state(); st != StateEstablished {
		t.Fatalf("state %q when idle, want %q", st, StateEstablished)
	}
}
