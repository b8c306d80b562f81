package main

import (
	"context"
	"sync"
	"time"
)

// replies counts what an echo client's reader goroutine sees: the distinct sequence numbers
// answered, foreign replies (another client's marker) and invalid ones (ours, but malformed).
type replies struct {
	mu               sync.Mutex
	got              map[int]bool
	foreign, invalid int
}

func newReplies() *replies { return &replies{got: map[int]bool{}} }

// with runs f under the lock (for what a client records beside the counts).
func (r *replies) with(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

func (r *replies) answered(seq int) { r.with(func() { r.got[seq] = true }) }
func (r *replies) alien()           { r.with(func() { r.foreign++ }) }
func (r *replies) malformed()       { r.with(func() { r.invalid++ }) }

func (r *replies) received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *replies) counts() (received, foreign, invalid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got), r.foreign, r.invalid
}

// exchange sends count packets with send and waits for their replies (sendThenWait).
func (r *replies) exchange(ctx context.Context, count int, interval, wait time.Duration, send func(i int) error) (int, error) {
	return sendThenWait(ctx, count, interval, wait, send, r.received)
}
