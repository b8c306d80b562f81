package esp

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/packet"
)

func TestSnapshotRestore(t *testing.T) {
	r := newRig(t, Options{KeepIKEPort: true, IdleTimeout: time.Minute})
	r.handshake(clientA, srvS, 0xa1, 0xa2)
	r.espOut(clientA, srvS, 0xc1)
	r.wantIn(srvS, 0xa1, clientA)
	r.handshake(clientB, srvS, 0xb1, 0xb2)
	r.espOut(clientB, srvS, 0xc2)
	r.wantIn(srvS, 0xa2, clientB)
	r.espOut(clientC, srvS, 0xc3) // still learning
	if !r.tr.Dirty() {
		t.Fatal("not dirty after learning")
	}
	snap := r.tr.Snapshot(r.now, time.Now(), "boot")
	if r.tr.Dirty() {
		t.Fatal("dirty after Snapshot")
	}
	data, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}

	// A new tracker, 5 s later, with its own clock.
	r2 := newRig(t, Options{KeepIKEPort: true, IdleTimeout: time.Minute})
	if n := r2.tr.Restore(back, r2.now, 5*time.Second); n != 3 {
		t.Fatalf("restored %d SAs, want 3", n)
	}
	// Known SAs forward at once, both ways, to the right clients.
	r2.wantIn(srvS, 0xa2, clientB)
	r2.wantIn(srvS, 0xa1, clientA)
	r2.espOut(clientA, srvS, 0xc1)
	// The learning one is still the only candidate for a new SPI.
	r2.wantIn(srvS, 0xa3, clientC)
	if r2.tr.Stats().Ambiguous != 0 {
		t.Fatalf("stats %+v", r2.tr.Stats())
	}
	// IKE on the shared port still reaches its client.
	if v, ip := r2.ikeIn(srvS, 500, ikeMsg{ispi: 0xb1, rspi: 0xb2, exchange: packet.IKEv2ExchangeInformational}); v != Forward || ip.Dst() != clientB {
		t.Fatalf("IKE after restore: %v to %s", v, ip.Dst())
	}
	if _, st := r2.session("ike", "10.10.1.2", ""); st != "port 500 shared by 2 clients, demuxed by IKE SPI" {
		t.Fatalf("ike state %q", st)
	}

	// Restoring twice changes nothing; offline longer than the idle
	// timeout restores nothing.
	if n := r2.tr.Restore(back, r2.now, 5*time.Second); n != 0 {
		t.Fatalf("second restore added %d", n)
	}
	r3 := newRig(t, Options{IdleTimeout: time.Minute})
	if n := r3.tr.Restore(back, r3.now, 2*time.Minute); n != 0 || len(r3.tr.ikeSPIs) != 0 {
		t.Fatalf("restored %d SAs and %d IKE SPIs after the idle timeout", n, len(r3.tr.ikeSPIs))
	}
	r3.tr.Expire(r3.now + time.Second)
	if len(r3.tr.pairs) != 0 {
		t.Fatalf("%d pairs left", len(r3.tr.pairs))
	}
}
