package pptp

import (
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
)

// drop_session's engine half: two clients' calls with the same Call ID;
// dropping client 2's removes it, and its inbound GRE is no longer
// translated; client 1's call is untouched.
func TestDropSession(t *testing.T) {
	h := newHarness(t, Config{})
	tr1, _ := setupCall(t, h.flow(1, 40000), 1, 0x7001)
	tr2, _ := setupCall(t, h.flow(2, 40000), 1, 0x7002)
	c1, c2, srv := clientAddr(1).String(), clientAddr(2).String(), server.String()
	for _, bad := range [][4]string{{"pptp", c2, srv, "9"}, {"pptp", c2, srv, "x"}, {"gre", c2, srv, "1"}, {"pptp", c2, "192.0.2.1", "1"}} {
		if h.e.DropSession(bad[0], bad[1], bad[2], bad[3]) {
			t.Errorf("dropped %v", bad)
		}
	}
	if !h.e.DropSession("pptp", c2, srv, "1") {
		t.Fatal("client 2's call not dropped")
	}
	h.checkInvariants()
	if p := h.handle(hookPrerouting, 0, greV1(server, wanAddr, tr2, 1, []byte("ppp"))); p.Modified || p.SetMark || p.Verdict != nfqueue.Accept {
		t.Errorf("GRE for the dropped call still translated: modified %v mark %v", p.Modified, p.SetMark)
	}
	p := h.handle(hookPrerouting, 0, greV1(server, wanAddr, tr1, 1, []byte("ppp")))
	if src, dst, key := gre(t, p.Data); !p.Modified || dst != clientAddr(1) || key != 1 || src != server {
		t.Errorf("client 1's GRE after the drop: modified %v to %s key %d", p.Modified, dst, key)
	}
	var left []string
	for _, s := range h.e.Sessions() {
		left = append(left, s.Client)
	}
	if len(left) != 1 || left[0] != c1 {
		t.Errorf("sessions after the drop: %v", left)
	}
	if h.e.DropSession("pptp", c2, srv, "1") {
		t.Error("dropped twice")
	}
}
