package status

import (
	"context"
	"errors"
	"sync"
	"time"
)

// API is what the daemon offers its front-ends (ubus, D-Bus). Every method
// is safe to call from any goroutine.
type API interface {
	Status() Status
	// Reload re-reads the config and applies it, as SIGHUP does; the error
	// is the refusal, and then the last good state stays.
	Reload() error
	// DropSession removes one session (protocol and Status's session id)
	// and its kernel state. ErrUnknownSession if there is none.
	DropSession(protocol, id string) error
	// Subscribe returns a channel of events until cancel is called.
	Subscribe() (events <-chan Event, cancel func())
}

// Errors front-ends map to their own error replies.
var (
	ErrUnknownSession = errors.New("no such session")
	ErrBadArgument    = errors.New("invalid argument")
	ErrNotSupported   = errors.New("not supported")
)

// Hub fans events out to subscribers. A subscriber that does not keep up
// loses events rather than stalling the daemon.
type Hub struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

// Publish sends e to every subscriber that has room.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case c <- e:
		default:
		}
	}
}

// Subscribe registers a subscriber.
func (h *Hub) Subscribe() (<-chan Event, func()) {
	c := make(chan Event, 64)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[chan Event]struct{}{}
	}
	h.subs[c] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return c, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, c)
			h.mu.Unlock()
		})
	}
}

// WatchSessions publishes session.new and session.end by comparing the
// session table every interval, until ctx ends. The first look only
// records what exists.
func WatchSessions(ctx context.Context, get func() []SessionInfo, every time.Duration, h *Hub) {
	known := map[string]SessionInfo{}
	for _, s := range get() {
		known[s.ID] = s
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := map[string]SessionInfo{}
		for _, s := range get() {
			now[s.ID] = s
			if _, ok := known[s.ID]; !ok {
				s := s
				h.Publish(Event{Name: EventSessionNew, Session: &s})
			}
		}
		for id, s := range known {
			if _, ok := now[id]; !ok {
				s := s
				h.Publish(Event{Name: EventSessionEnd, Session: &s})
			}
		}
		known = now
	}
}
