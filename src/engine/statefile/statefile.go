// Package statefile keeps a userspace engine's tables across a crash of the
// daemon (SIGKILL, OOM kill) in small JSON files on tmpfs, named after the
// engine, its queue and the network namespace, and tagged with the boot so a
// file from an earlier boot restores nothing. Files are written off the
// packet path and replaced atomically.
package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/jsondec"
)

// Dir is the default directory: tmpfs on OpenWrt, so state survives a
// daemon restart, not a reboot.
const Dir = "/var/run/vpn-passthrough"

// Path is the state file of one engine on one queue in this namespace, so
// daemons in different namespaces (the lab runs many) never share one.
func Path(dir, engine string, queue uint16) string {
	return filepath.Join(dir, fmt.Sprintf("%s-q%d-%s.json", engine, queue, strings.ReplaceAll(NetNS(), ":", "")))
}

// soNetnsCookie is SO_NETNS_COOKIE (uapi asm-generic/socket.h; the same on
// mips and arm; Linux 5.14+), not yet in our x/sys.
const soNetnsCookie = 71

// NetNS names the current network namespace for as long as the machine
// runs: its cookie, which the kernel never reuses; on older kernels the
// namespace inode (reused once the namespace is gone, which only labs do).
func NetNS() string {
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

// BootID identifies this boot ("" if the kernel does not say).
func BootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Write replaces path atomically (write a temporary file, rename it), so a
// crash mid-write leaves the previous state, never half of one.
func Write(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Versioned is a state file's content: its format version and the boot it
// was written in.
type Versioned interface {
	StateHeader() (version int, bootID string)
}

// Load reads the state file at path into v. It reports false (and no error)
// when there is no file or it was written in another boot: those tunnels
// are gone. A file that does not parse or has another version is an error
// naming path.
func Load(path string, version int, v Versioned) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := jsondec.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	got, boot := v.StateHeader()
	if got != version {
		return false, fmt.Errorf("%s: version %d, want %d", path, got, version)
	}
	if id := BootID(); id != "" && boot != id {
		return false, nil
	}
	return true, nil
}
