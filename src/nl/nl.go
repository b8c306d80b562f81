// Package nl is the netlink the daemon needs (nf_tables and ctnetlink
// requests, dumps, batches and the nf_tables event group) on raw sockets.
// It replaced github.com/mdlayher/netlink, which with its socket package
// and the net package it pulls in cost about 160 KB of the mipsel binary.
package nl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Header flags (linux/netlink.h).
const (
	Request     = unix.NLM_F_REQUEST
	Multi       = unix.NLM_F_MULTI
	Acknowledge = unix.NLM_F_ACK
	Dump        = unix.NLM_F_DUMP
	Create      = unix.NLM_F_CREATE
	Append      = unix.NLM_F_APPEND
)

// Message is one netlink message: its header fields and its payload.
type Message struct {
	Type, Flags uint16
	Seq, PID    uint32
	Data        []byte
}

// OpError is a netlink operation that failed; Err is the kernel's errno
// (errors.Is(err, unix.ENOENT) and os.ErrNotExist work through it) or the
// socket's error.
type OpError struct {
	Op  string
	Err error
}

func (e *OpError) Error() string { return "netlink " + e.Op + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// Conn is a netlink socket. Its methods are safe for one goroutine at a
// time, but Close, which may be called from another to end a blocked
// Receive.
type Conn struct {
	f   *os.File
	rc  syscall.RawConn
	mu  sync.Mutex
	seq uint32
	buf []byte
}

// Dial opens a netlink socket of protocol proto in the network namespace
// behind netns (an open /var/run/netns file; 0: the current namespace).
func Dial(proto int, netns int) (*Conn, error) {
	fd, err := socketIn(netns, proto)
	if err != nil {
		return nil, &OpError{Op: "dial", Err: err}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, &OpError{Op: "bind", Err: err}
	}
	// A non-blocking descriptor joins Go's poller: deadlines and Close
	// from another goroutine work.
	f := os.NewFile(uintptr(fd), "netlink")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, &OpError{Op: "dial", Err: err}
	}
	return &Conn{f: f, rc: rc, seq: uint32(time.Now().UnixNano()), buf: make([]byte, 64<<10)}, nil
}

// socketIn creates the socket inside namespace netns: a socket stays in the
// namespace it was created in. The thread returns to its own namespace, or
// is never reused (it stays locked and exits with the goroutine).
func socketIn(netns, proto int) (int, error) {
	mk := func() (int, error) {
		return unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	}
	if netns == 0 {
		return mk()
	}
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer unix.Close(self)
	if err := unix.Setns(netns, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("setns: %w", err)
	}
	fd, err := mk()
	if rerr := unix.Setns(self, unix.CLONE_NEWNET); rerr != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("setns back: %w", rerr)
	}
	runtime.UnlockOSThread()
	return fd, err
}

// Close closes the socket; a Receive blocked on it returns.
func (c *Conn) Close() error { return c.f.Close() }

// SetDeadline bounds every later send and receive.
func (c *Conn) SetDeadline(t time.Time) error { return c.f.SetDeadline(t) }

// SyscallConn gives the socket for socket options.
func (c *Conn) SyscallConn() syscall.RawConn { return c.rc }

// JoinGroup subscribes to a multicast group.
func (c *Conn) JoinGroup(group int) error {
	return c.control(func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, group)
	})
}

// SetReadBuffer sets SO_RCVBUF.
func (c *Conn) SetReadBuffer(n int) error {
	return c.control(func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n) })
}

func (c *Conn) control(f func(fd int) error) error {
	var err error
	if cerr := c.rc.Control(func(fd uintptr) { err = f(int(fd)) }); cerr != nil {
		return cerr
	}
	return err
}

// Send sends messages in one datagram, numbering them; it returns the first
// sequence number.
func (c *Conn) Send(msgs ...Message) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := c.seq + 1
	var b []byte
	for _, m := range msgs {
		c.seq++
		b = binary.NativeEndian.AppendUint32(b, uint32(unix.NLMSG_HDRLEN+len(m.Data)))
		b = binary.NativeEndian.AppendUint16(b, m.Type)
		b = binary.NativeEndian.AppendUint16(b, m.Flags)
		b = binary.NativeEndian.AppendUint32(b, c.seq)
		b = binary.NativeEndian.AppendUint32(b, 0)
		b = append(b, m.Data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, &OpError{Op: "send", Err: err}
	}
	return first, nil
}

// Receive reads one datagram's messages. An error message with an errno is
// returned as an *OpError; acknowledgements (errno 0) are returned as
// messages of type unix.NLMSG_ERROR.
func (c *Conn) Receive() ([]Message, error) {
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), c.buf, unix.MSG_TRUNC)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, &OpError{Op: "receive", Err: err}
	}
	if n > len(c.buf) {
		return nil, &OpError{Op: "receive", Err: errors.New("message truncated")}
	}
	return ParseMessages(c.buf[:n])
}

// ParseMessages splits a datagram into messages (their data copied out of
// b) and turns the first error message with an errno into an error.
func ParseMessages(b []byte) ([]Message, error) {
	var out []Message
	for len(b) >= unix.NLMSG_HDRLEN {
		size := int(binary.NativeEndian.Uint32(b[0:4]))
		if size < unix.NLMSG_HDRLEN || size > len(b) {
			return nil, &OpError{Op: "receive", Err: errors.New("bad message length")}
		}
		m := Message{
			Type:  binary.NativeEndian.Uint16(b[4:6]),
			Flags: binary.NativeEndian.Uint16(b[6:8]),
			Seq:   binary.NativeEndian.Uint32(b[8:12]),
			PID:   binary.NativeEndian.Uint32(b[12:16]),
			Data:  append([]byte(nil), b[unix.NLMSG_HDRLEN:size]...),
		}
		if m.Type == unix.NLMSG_ERROR {
			if len(m.Data) < 4 {
				return nil, &OpError{Op: "receive", Err: errors.New("short error message")}
			}
			if errno := int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
				return nil, &OpError{Op: "receive", Err: unix.Errno(-errno)}
			}
		}
		out = append(out, m)
		b = b[min(Align(size), len(b)):]
	}
	return out, nil
}

// Align rounds a length up to netlink's 4-byte alignment.
func Align(n int) int { return (n + 3) &^ 3 }

// maxReplies bounds the datagrams one Execute reads (a dump of 10,000
// conntrack entries is about 400 datagrams); the deadline bounds its time.
const maxReplies = 1 << 20

// Execute sends one request and returns its replies: for a dump, every
// message up to NLMSG_DONE; with Acknowledge, every message up to the
// acknowledgement; else the first datagram that answers it. Messages left
// from earlier requests (a sequence number not this one's) are skipped.
func (c *Conn) Execute(m Message) ([]Message, error) {
	seq, err := c.Send(m)
	if err != nil {
		return nil, err
	}
	var out []Message
	for range maxReplies {
		msgs, err := c.Receive()
		if err != nil {
			return nil, err
		}
		answered := false
		for _, r := range msgs {
			if r.Seq != seq {
				continue
			}
			switch {
			case r.Type == unix.NLMSG_DONE || r.Type == unix.NLMSG_ERROR:
				return out, nil
			case m.Flags&Dump == 0 && m.Flags&Acknowledge == 0:
				answered = true
			}
			out = append(out, r)
		}
		if answered {
			return out, nil
		}
	}
	return nil, &OpError{Op: "receive", Err: errors.New("too many replies")}
}
