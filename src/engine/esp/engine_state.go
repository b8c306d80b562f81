package esp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loadState restores the tables a previous engine saved at path. A missing
// file, one from another boot or of another version restores nothing.
func (e *Engine) loadState(path string) (int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if s.Version != StateVersion {
		return 0, fmt.Errorf("%s: version %d, want %d", path, s.Version, StateVersion)
	}
	if id := bootID(); id != "" && s.BootID != id {
		return 0, nil
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
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
