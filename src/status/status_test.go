package status

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

func TestServeAndFetch(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	want := Status{Schema: SchemaVersion, Version: "v1", PID: 42, Counters: map[string]Counter{"blocked_pptp": {Packets: 3, Bytes: 180}},
		Protocols: []Protocol{{Name: "pptp", Datapath: "blocked", Reason: "off"}}}
	go func() { done <- Serve(ctx, sock, func() Status { return want }) }()
	var got Status
	var err error
	for i := 0; i < 50; i++ { // the listener comes up asynchronously
		if got, err = Fetch(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "v1" || got.PID != 42 || got.Counters["blocked_pptp"].Packets != 3 || got.Protocols[0].Datapath != "blocked" {
		t.Errorf("fetched %+v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(sock); err == nil || !strings.Contains(err.Error(), "daemon running") {
		t.Errorf("fetch after stop: %v", err)
	}
}

var (
	a   = netip.MustParseAddr
	nat = uint32(ct.StatusSrcNAT | ct.StatusAssured | ct.StatusSeenReply)
	// A GRE call and an IKE flow the router NATs, plus two it must hide.
	flows = []ct.Flow{
		{Orig: ct.Tuple{Src: a("10.0.0.2"), Dst: a("198.51.100.2"), Proto: 47, SrcPort: 7, DstPort: 100},
			Reply:  ct.Tuple{Src: a("198.51.100.2"), Dst: a("198.51.100.1"), Proto: 47, SrcPort: 100, DstPort: 40001},
			Status: nat, Timeout: 100, Helper: "pptp"},
		{Orig: ct.Tuple{Src: a("10.0.0.3"), Dst: a("198.51.100.2"), Proto: 17, SrcPort: 500, DstPort: 500},
			Reply: ct.Tuple{Src: a("198.51.100.2"), Dst: a("198.51.100.1"), Proto: 17, SrcPort: 500, DstPort: 1}, Status: nat,
			PacketsOrig: 4, BytesOrig: 400},
		// Not NATed (router's own traffic): hidden.
		{Orig: ct.Tuple{Src: a("198.51.100.1"), Dst: a("198.51.100.2"), Proto: 17, DstPort: 1701}, Status: ct.StatusAssured},
		// Not a VPN protocol: hidden.
		{Orig: ct.Tuple{Src: a("10.0.0.2"), Dst: a("198.51.100.2"), Proto: 6, DstPort: 443}, Status: nat},
	}
)

func kernelPlan() *plan.Plan {
	return &plan.Plan{Decisions: []plan.Decision{
		{Proto: plan.PPTP, Enabled: true, Datapath: plan.PathKernel, Reason: "helper"},
		{Proto: plan.L2TP, Enabled: true, Datapath: plan.PathKernel},
		{Proto: plan.IPsec, Enabled: true, Datapath: plan.PathKernel},
	}}
}

func TestBuildKernelSessions(t *testing.T) {
	off, on := false, true
	in := Input{Plan: kernelPlan(), Enabled: true, Flows: flows, FlowsRead: true, Accounting: &off,
		Counters: map[string]Counter{"passed_pptp_out": {Packets: 64, Bytes: 6400}, "blocked_ipsec": {Packets: 2}}}
	s := Build(in)
	if s.Schema != SchemaVersion || s.State != StateRunning || len(s.Sessions) != 2 {
		t.Fatalf("status %+v", s)
	}
	g := s.Sessions[0]
	if g.Kind != "gre" || g.Protocol != "pptp" || g.Client != "10.0.0.2" || *g.IDOrig != "7" || *g.IDTrans != "40001" ||
		*g.IDPeer != "100" || g.ID != "gre/10.0.0.2/198.51.100.2/7" || *g.Expires != 100 || g.State != "kernel: established, pptp helper" {
		t.Errorf("gre session = %+v", g)
	}
	// Accounting off and no timestamps: counts and ages are unknown, and
	// the JSON says null, not 0.
	if g.PacketsOut != nil || g.BytesIn != nil || g.AgeSeconds != nil || g.IdleSeconds != nil {
		t.Errorf("unknown values not null: %+v", g)
	}
	js, _ := json.Marshal(g)
	for _, w := range []string{`"packets_out":null`, `"age_s":null`, `"idle_s":null`, `"expires_s":100`} {
		if !strings.Contains(string(js), w) {
			t.Errorf("JSON lacks %s: %s", w, js)
		}
	}
	if p := s.Protocols[0]; p.Name != "pptp" || p.Passed.Out.Bytes != 6400 || p.Datapath != "kernel" {
		t.Errorf("pptp protocol %+v", p)
	}
	if s.Protocols[2].Blocked.Packets != 2 {
		t.Errorf("ipsec blocked %+v", s.Protocols[2])
	}
	in.Accounting = &on
	if s := Build(in); *s.Sessions[1].PacketsOut != 4 || *s.Sessions[1].BytesOut != 400 || *s.Sessions[1].IDTrans != "port 1" {
		t.Errorf("ike with accounting: %+v", s.Sessions[1])
	}
	// A blocked protocol's flows are not shown as sessions.
	in.Plan.Decisions[2].Datapath = plan.PathBlocked
	if s := Build(in); len(s.Sessions) != 1 {
		t.Errorf("blocked ipsec still listed: %+v", s.Sessions)
	}
}

func TestBuildEnginesAndCaps(t *testing.T) {
	p := kernelPlan()
	p.Decisions[0].Datapath = plan.PathUserspace
	p.Offload = plan.Offload{State: plan.OffloadNotExempted, Detail: "lacks the exemption"}
	in := Input{Plan: p, Enabled: true,
		Caps: plan.Caps{NFTables: true, Notes: map[string]string{"nf_conntrack_pptp": "/sys/module/nf_conntrack_pptp missing"}},
		Engines: []EngineReport{{Name: "pptp", Counters: map[string]uint64{"calls": 1},
			Sessions: []Session{{Proto: "pptp", Client: "10.0.0.2", Server: "198.51.100.2", OrigID: "1", TransID: "44166", AgeSeconds: 0}}}}}
	s := Build(in)
	x := s.Sessions[0]
	if x.Datapath != "userspace" || x.AgeSeconds == nil || *x.AgeSeconds != 0 || x.IDPeer != nil || x.ID != "pptp/10.0.0.2/198.51.100.2/1" {
		t.Errorf("engine session %+v", x)
	}
	if s.Counters["pptp_calls"].Packets != 1 {
		t.Errorf("engine counters %+v", s.Counters)
	}
	if !s.Protocols[0].FlowOffload || s.Protocols[2].FlowOffload || s.Offload.State != "not_exempted" || s.Offload.Detail != "lacks the exemption" {
		t.Errorf("flow offload flags: %+v, %+v", s.Protocols, s.Offload)
	}
	// Exempted: offloading is on, but it no longer affects the engine.
	p.Offload.State = plan.OffloadExempted
	if s := Build(in); s.Protocols[0].FlowOffload || s.Offload.State != "exempted" {
		t.Errorf("exempted: %+v, %+v", s.Protocols[0], s.Offload)
	}
	var helper *Capability
	for i := range s.Capabilities {
		if s.Capabilities[i].Name == "nf_conntrack_pptp" {
			helper = &s.Capabilities[i]
		}
	}
	if helper == nil || helper.Present || helper.Package != "kmod-nf-nathelper-extra" || !strings.Contains(helper.How, "/sys/module") {
		t.Errorf("helper capability %+v", helper)
	}
	// Before any apply: state error, lists empty but not null.
	js, _ := json.Marshal(Build(Input{LastErr: "config: bad", LastErrAt: time.Unix(1, 0)}))
	for _, w := range []string{`"state":"error"`, `"sessions":[]`, `"protocols":[]`, `"applied_at":null`, `"last_error":"config: bad"`} {
		if !strings.Contains(string(js), w) {
			t.Errorf("JSON lacks %s: %s", w, js)
		}
	}
}

func TestText(t *testing.T) {
	off := false
	s := Build(Input{Plan: kernelPlan(), Enabled: true, Flows: flows, FlowsRead: true, Accounting: &off, LastErr: "config: x",
		Counters: map[string]Counter{"passed_pptp_out": {Packets: 64}, "passed_pptp_in": {Packets: 56}}})
	txt := s.Text()
	for _, w := range []string{"64/56", "7 > 40001", "-/-", "expires in 1 min 40 s", "last error: config: x"} {
		if !strings.Contains(txt, w) {
			t.Errorf("text lacks %q:\n%s", w, txt)
		}
	}
	if strings.Contains(txt, "0s") {
		t.Errorf("unknown age shown as 0s:\n%s", txt)
	}
}

func TestCheck(t *testing.T) {
	r := Check("/etc/config/vpn-passthrough", []byte("config pptp 'pptp'\n\toption enabled 'maybe'\n"))
	if r.Valid || len(r.Errors) != 1 {
		t.Fatalf("check: %+v", r)
	}
	if e := r.Errors[0]; e.Line != 2 || e.Section != "pptp" || e.Option != "enabled" || e.Value != "maybe" || e.File != "/etc/config/vpn-passthrough" {
		t.Errorf("error %+v", e)
	}
	if r := Check("x", []byte("config pptp 'pptp\n")); r.Valid || r.Errors[0].Line != 1 {
		t.Errorf("syntax error: %+v", r)
	}
	if r := Check("x", []byte("config globals 'globals'\n\toption enabled '1'\n")); !r.Valid {
		t.Errorf("valid config refused: %+v", r)
	}
}

func TestWatchSessions(t *testing.T) {
	var h Hub
	ev, cancel := h.Subscribe()
	defer cancel()
	cur := make(chan []SessionInfo, 1)
	cur <- []SessionInfo{{ID: "a"}}
	last := []SessionInfo{{ID: "a"}}
	get := func() []SessionInfo {
		select {
		case last = <-cur:
		default:
		}
		return last
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go WatchSessions(ctx, get, 10*time.Millisecond, &h)
	cur <- []SessionInfo{{ID: "b"}}
	got := map[string]string{}
	deadline := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case e := <-ev:
			got[e.Name] = e.Session.ID
		case <-deadline:
			t.Fatalf("events: %v", got)
		}
	}
	if got[EventSessionNew] != "b" || got[EventSessionEnd] != "a" {
		t.Errorf("events %v", got)
	}
}
