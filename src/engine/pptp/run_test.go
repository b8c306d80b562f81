package pptp

import (
	"context"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/nfqueue"
)

// fakeQueue hands the engine a scripted stream of batches.
type fakeQueue struct {
	mu      sync.Mutex
	batches [][]nfqueue.Packet
	handled int
	closed  bool
}

func (q *fakeQueue) Step(h nfqueue.Handler) (int, error) {
	q.mu.Lock()
	if len(q.batches) == 0 {
		q.mu.Unlock()
		time.Sleep(time.Millisecond)
		return 0, nil
	}
	b := q.batches[0]
	q.batches = q.batches[1:]
	q.mu.Unlock()
	h.HandleBatch(b)
	q.mu.Lock()
	q.handled += len(b)
	q.mu.Unlock()
	return len(b), nil
}

func (q *fakeQueue) Stats() nfqueue.Stats { return nfqueue.Stats{} }
func (q *fakeQueue) Close() error {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	return nil
}

// TestRun drives Run through a fake queue while status readers and a reload
// run concurrently (go test -race), and checks that the state file follows
// the calls and is removed on a clean stop.
func TestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, Config{Common: engine.Common{StatePath: path}})
	// The call is set up before Run; then Run carries its GRE.
	tr, _ := setupCall(t, h.flow(1, 48000), 1, 0x7001)
	q := &fakeQueue{}
	for i := 0; i < 50; i++ {
		q.batches = append(q.batches, []nfqueue.Packet{{Hook: hookPrerouting, Data: greV1(server, wanAddr, tr, uint32(i), nil)}})
	}
	h.e.q = q
	h.e.now = time.Now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.e.Run(ctx) }()
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				h.e.Sessions()
				h.e.Counters()
				h.e.Update(Config{Common: engine.Common{MaxSessions: 10 + j}})
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		n := q.handled
		q.mu.Unlock()
		if n == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run handled %d of 50 packets", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("no state file while a call is up: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !q.closed {
		t.Error("queue not closed")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("state file left after a clean stop: %v", err)
	}
	if s := h.e.Sessions(); len(s) != 1 || s[0].PacketsIn != 50 {
		t.Errorf("sessions %+v", s)
	}
}
