package esp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// soNetnsCookie is SO_NETNS_COOKIE (uapi asm-generic/socket.h and the mips
// and arm variants alike; Linux 5.14+), not yet in our x/sys.
const soNetnsCookie = 71

// netnsID names the network namespace for as long as the machine runs: its
// cookie, which the kernel never reuses; on older kernels the namespace
// inode (reused once the namespace is gone, which only the lab does).
func netnsID() string {
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
		v, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, soNetnsCookie)
		unix.Close(fd)
		if err == nil {
			return "cookie:" + strconv.FormatUint(v, 10)
		}
	}
	if st, err := os.Stat("/proc/self/ns/net"); err == nil {
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			return "ino:" + strconv.FormatUint(uint64(s.Ino), 10)
		}
	}
	return ""
}

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
		return 0, nil // another boot: those SAs are gone
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
