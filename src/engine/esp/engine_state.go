package esp

import (
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/statefile"
	"github.com/vpn-passthrough/vpn-passthrough/src/jsonenc"

	"time"
)

// loadState restores the tables a previous engine saved at path. A missing
// file, one from another boot or of another version restores nothing.
func (e *Engine) loadState(path string) (int, error) {
	var s Snapshot
	if ok, err := statefile.Load(path, StateVersion, &s); !ok {
		return 0, err
	}
	if s.NetNS != e.netns {
		return 0, nil // another network namespace (the lab makes many)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tr.Restore(s, e.now(), time.Since(s.Saved)), nil
}

// saveState writes the tables to path if they changed (or if force), by
// replacing the file atomically. It never runs on the packet path.
func (e *Engine) saveState(path string, force bool) error {
	if path == "" {
		return nil
	}
	e.mu.Lock()
	if !force && !e.tr.Dirty() {
		e.mu.Unlock()
		return nil
	}
	s := e.tr.Snapshot(e.now(), time.Now(), e.boot)
	e.mu.Unlock()
	s.NetNS = e.netns
	data, err := jsonenc.Marshal(s)
	if err != nil {
		return err
	}
	return statefile.Write(path, data)
}

// StateHeader implements statefile.Versioned.
func (s *Snapshot) StateHeader() (int, string) { return s.Version, s.BootID }
