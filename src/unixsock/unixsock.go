// Package unixsock is what the daemon needs of unix stream sockets (the
// status socket, ubusd), on x/sys/unix and os.File instead of package net:
// its socket machinery costs ~35 KB of the mipsel binary for two sockets.
// The descriptors are non-blocking and go through Go's poller as os.Files,
// so deadlines work and Close wakes a blocked Read or Accept.
package unixsock

import (
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Dial connects to the unix stream socket at path. A unix connect does not
// wait for the peer to accept (a full backlog fails it at once), so it needs
// no timeout. Errors are *os.SyscallError: errors.Is(err,
// os.ErrPermission) and the like work.
func Dial(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "dial", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), "unix:"+path), nil
}

// Listener is a listening unix stream socket.
type Listener struct {
	f      *os.File
	closed atomic.Bool
}

// Listen creates a unix stream socket at path (with the process's umask)
// and listens on it.
func Listen(path string) (*Listener, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "bind", Path: path, Err: err}
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	return &Listener{f: os.NewFile(uintptr(fd), "unix:"+path)}, nil
}

// Accept waits for the next connection. After Close it returns an error
// that errors.Is os.ErrClosed.
func (l *Listener) Accept() (*os.File, error) {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return aerr != unix.EAGAIN // else wait until readable
	})
	if err != nil {
		if l.closed.Load() {
			return nil, os.ErrClosed
		}
		return nil, err
	}
	if aerr != nil {
		return nil, os.NewSyscallError("accept", aerr)
	}
	return os.NewFile(uintptr(nfd), l.f.Name()), nil
}

// Close stops listening (it does not remove the socket file).
func (l *Listener) Close() error {
	l.closed.Store(true)
	return l.f.Close()
}
