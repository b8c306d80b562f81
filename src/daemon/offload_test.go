package daemon

import (
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
)

// TestOffloadFollowsFW4: with fw4 offloading, status says whether the
// package's exemption is ahead of `flow offload` in fw4's forward chain,
// warns prominently while it is not, and follows fw4 reloading with and
// without it (a change of fw4's table, no SIGHUP).
func TestOffloadFollowsFW4(t *testing.T) {
	r := newRig(t, config.Default())
	r.caps.PPTPHelper, r.caps.PPTPNAT = false, false // auto: the PPTP engine
	r.flowOffload = true
	r.fw.fw4 = true
	missing := plan.FW4Chain{Read: true, Chain: true, Offload: true, Flowtable: "ft", Exempt: plan.ExemptMissing}
	exempted := missing
	exempted.Exempt = plan.ExemptBefore
	r.fw.fw4Chain = missing
	if err := r.d.Start(); err != nil {
		t.Fatal(err)
	}
	warned := func(st status.Status) bool {
		for _, w := range st.Warnings {
			if strings.HasPrefix(w, "fw4: flow offloading is on and fw4's forward chain lacks the package's exemption") {
				return true
			}
		}
		return false
	}
	st := r.d.Status()
	if st.Offload.State != "not_exempted" || !warned(st) || !st.Protocols[0].FlowOffload || st.Protocols[0].Datapath != "userspace" ||
		!strings.Contains(st.Protocols[0].Limitation, "calls fail") {
		t.Fatalf("include missing: offload %+v, pptp %+v, warnings %q", st.Offload, st.Protocols[0], st.Warnings)
	}
	r.runLoop(t)
	ev, unsub := r.d.hub.Subscribe()
	defer unsub()
	// fw4 reloads with the include: the daemon plans again by itself.
	r.fw.setFW4Chain(exempted)
	if e := <-ev; e.Name != status.EventApplied || e.Trigger != "fw4" || e.Error != "" {
		t.Fatalf("event %+v", e)
	}
	st = r.d.Status()
	if st.Offload.State != "exempted" || warned(st) || st.Protocols[0].FlowOffload || strings.Contains(st.Protocols[0].Limitation, "offloads") ||
		!strings.Contains(st.Offload.Detail, "before `flow offload @ft`") {
		t.Errorf("include present: offload %+v, pptp %+v, warnings %q", st.Offload, st.Protocols[0], st.Warnings)
	}
	if txt := st.Text(); !strings.Contains(txt, "flow offload: exempted (flow offloading is on; PPTP control (TCP 1723) and IKE (UDP 500) are exempted") {
		t.Errorf("status text:\n%s", txt)
	}
	// And without it again (a later fw4 reload with the file gone).
	r.fw.setFW4Chain(missing)
	if e := <-ev; e.Trigger != "fw4" {
		t.Fatalf("event %+v", e)
	}
	if st = r.d.Status(); st.Offload.State != "not_exempted" || !warned(st) {
		t.Errorf("include gone again: %+v", st.Offload)
	}
}
