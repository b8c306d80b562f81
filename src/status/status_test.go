package status

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

func TestServeAndFetch(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	want := Status{Version: "v1", PID: 42, Counters: map[string]Counter{"blocked_pptp": {Packets: 3, Bytes: 180}},
		Protocols: []plan.Decision{{Proto: plan.PPTP, Datapath: plan.PathBlocked, Reason: "off"}}}
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
	if got.Version != "v1" || got.PID != 42 || got.Counters["blocked_pptp"].Packets != 3 || got.Protocols[0].Datapath != plan.PathBlocked {
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

func TestText(t *testing.T) {
	s := Status{
		Version:   "v1",
		Protocols: []plan.Decision{{Proto: plan.PPTP, Datapath: plan.PathKernel, Reason: "helper"}},
		Counters:  map[string]Counter{"passed_pptp_out": {Packets: 64}, "passed_pptp_in": {Packets: 56}},
		Sessions: []Session{{Proto: "gre", Client: "10.0.0.2", Server: "198.51.100.2", OrigID: "1", TransID: "44166",
			PeerID: "28674", State: "kernel assured", PacketsOut: 20, PacketsIn: 20}},
		LastError: "config: x",
	}
	txt := s.Text()
	for _, w := range []string{"64/56", "1 > 44166", "28674", "20/20", "last error: config: x"} {
		if !strings.Contains(txt, w) {
			t.Errorf("text lacks %q:\n%s", w, txt)
		}
	}
}
