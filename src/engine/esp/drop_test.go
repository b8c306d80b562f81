package esp

import "testing"

// drop_session's engine half: the SA goes from the table and its inbound
// SPI no longer reaches the client; the other client's SA stays.
func TestDropSA(t *testing.T) {
	r := newRig(t, Options{})
	r.espOut(clientA, srvS, 0xc0000001)
	r.wantIn(srvS, 0xa0000001, clientA)
	r.espOut(clientB, srvS, 0xc0000002)
	r.wantIn(srvS, 0xa0000002, clientB)
	if r.tr.DropSA(clientA.String(), srvS.String(), "0xc0000009") || r.tr.DropSA(clientB.String(), srvS.String(), "0xc0000001") {
		t.Fatal("dropped an SA that is not there")
	}
	if !r.tr.DropSA(clientA.String(), srvS.String(), "0xc0000001") {
		t.Fatal("did not drop client A's SA")
	}
	if ok, _ := r.session("esp", clientA.String(), "0xc0000001"); ok {
		t.Error("client A's SA still listed")
	}
	if ok, _ := r.session("esp", clientB.String(), "0xc0000002"); !ok {
		t.Error("client B's SA went too")
	}
	r.wantIn(srvS, 0xa0000002, clientB)
	if v, to := r.espIn(srvS, 0xa0000001); v == Forward {
		t.Errorf("client A's inbound SPI still forwarded (to %v)", to)
	}
	if r.tr.DropSA(clientA.String(), srvS.String(), "0xc0000001") {
		t.Error("dropped twice")
	}
}
