package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/jsondec"
	"github.com/vpn-passthrough/vpn-passthrough/src/jsonenc"
	"github.com/vpn-passthrough/vpn-passthrough/src/unixsock"
)

// DefaultSocket is where the daemon listens.
const DefaultSocket = "/var/run/vpn-passthrough.sock"

// Serve answers every connection on the unix socket at path with the JSON of
// get(), until ctx ends. The socket is created mode 0600: status shows LAN
// addresses, so it is root's.
func Serve(ctx context.Context, path string, get func() Status) error {
	if Answering(path) {
		return fmt.Errorf("status: another daemon answers on %s", path)
	}
	_ = os.Remove(path) // a stale socket from a killed daemon
	// The umask makes the socket 0600 from birth: a chmod after listen would
	// leave a moment where others could connect.
	old := syscall.Umask(0o177)
	l, err := unixsock.Listen(path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("status: listen %s: %w", path, err)
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	defer os.Remove(path)
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			time.Sleep(100 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		jsonenc.Encode(c, get())
		c.Close()
	}
}

// Answering reports whether a daemon already serves on path, so a second one
// neither steals nor deletes its socket.
func Answering(path string) bool {
	c, err := DialUnix(path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Fetch asks the daemon at path for its status.
func Fetch(path string) (Status, error) {
	var s Status
	c, err := DialUnix(path)
	if err != nil {
		return s, fmt.Errorf("status: is the daemon running? %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// The daemon closes the connection after its answer.
	data, err := io.ReadAll(io.LimitReader(c, 16<<20))
	if err == nil {
		err = jsondec.Unmarshal(data, &s)
	}
	if err != nil {
		return s, fmt.Errorf("status: read from %s: %w", path, err)
	}
	return s, nil
}

// DialUnix connects to a unix socket (src/unixsock: package net's sockets
// cost ~35 KB of the mipsel binary, and net.Dial links the DNS resolver,
// 260 KB).
func DialUnix(path string) (*os.File, error) { return unixsock.Dial(path) }
