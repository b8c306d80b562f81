// Package nl is the netlink the daemon needs on raw sockets: nf_tables and
// ctnetlink requests, dumps, batches and the nf_tables event group, and the
// rtnetlink link and address lookups. It replaced github.com/mdlayher/netlink
// and package net's interface lookups, which with mdlayher/socket and
// package net cost about 200 KB of the mipsel binary.
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
	// Acknowledgements without a copy of the request: an error for a
	// large request then still fits the buffer (Linux 4.2).
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	// A non-blocking descriptor joins Go's poller: deadlines and Close
	// from another goroutine work.
	f := os.NewFile(uintptr(fd), "netlink")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, &OpError{Op: "dial", Err: err}
	}
	return &Conn{f: f, rc: rc, seq: uint32(time.Now().UnixNano())}, nil
}

// socketIn creates the socket inside namespace netns: a socket stays in the
// namespace it was created in. A goroutine of its own does it on a locked
// thread, so a thread that fails to return to its namespace is never
// reused (it exits with that goroutine) and the caller's is never moved.
func socketIn(netns, proto int) (int, error) {
	mk := func() (int, error) {
		return unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	}
	if netns == 0 {
		return mk()
	}
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, err}
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(netns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{-1, fmt.Errorf("setns: %w", err)}
			return
		}
		fd, err := mk()
		if rerr := unix.Setns(self, unix.CLONE_NEWNET); rerr != nil {
			if err == nil {
				unix.Close(fd)
			}
			done <- result{-1, fmt.Errorf("setns back: %w", rerr)} // the thread stays locked and exits
			return
		}
		runtime.UnlockOSThread()
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

// Close closes the socket; a Receive blocked on it returns.
func (c *Conn) Close() error { return c.f.Close() }

// SetDeadline bounds every later send and receive.
func (c *Conn) SetDeadline(t time.Time) error { return c.f.SetDeadline(t) }

// JoinGroup subscribes to a multicast group.
func (c *Conn) JoinGroup(group int) error {
	return c.control(func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, group)
	})
}

// SetReadBuffer sets the receive buffer to n bytes: past net.core.rmem_max
// with CAP_NET_ADMIN (SO_RCVBUFFORCE), else up to it.
func (c *Conn) SetReadBuffer(n int) error { return c.setBuffer(unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, n) }

// SetWriteBuffer is SetReadBuffer for the send buffer.
func (c *Conn) SetWriteBuffer(n int) error {
	return c.setBuffer(unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, n)
}

func (c *Conn) setBuffer(force, plain, n int) error {
	return c.control(func(fd int) error {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, n) == nil {
			return nil
		}
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, n)
	})
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

// Receive reads one datagram's messages. An error message with an errno
// (NLMSG_ERROR, or NLMSG_DONE ending a dump the kernel could not finish)
// is returned as an *OpError; acknowledgements (errno 0) are returned as
// messages of type unix.NLMSG_ERROR.
func (c *Conn) Receive() ([]Message, error) {
	msgs, err := c.receive()
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if err := m.Err(); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// receive reads one datagram's messages, error messages included (their
// data in the datagram's own buffer).
func (c *Conn) receive() ([]Message, error) {
	b, err := c.ReadDatagram()
	if err != nil {
		return nil, err
	}
	var out []Message
	err = Messages(b, func(m Message) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

// ReadDatagram reads one datagram into a buffer of its size (learnt by
// peeking first): the daemon opens a socket per nf_tables request, and a
// large buffer for each would be garbage the heap grows by.
func (c *Conn) ReadDatagram() ([]byte, error) {
	var one [1]byte
	n, err := c.recv(one[:], unix.MSG_PEEK|unix.MSG_TRUNC)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	m, err := c.recv(b, unix.MSG_TRUNC)
	if err != nil {
		return nil, err
	}
	if m > len(b) {
		return nil, &OpError{Op: "receive", Err: errors.New("message truncated")}
	}
	return b[:m], nil
}

func (c *Conn) recv(b []byte, flags int) (int, error) {
	var n int
	var rerr error
	for range 100 { // EINTR: read again at once (the data is there)
		err := c.rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), b, flags)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &OpError{Op: "receive", Err: err}
		}
		return n, nil
	}
	return 0, &OpError{Op: "receive", Err: unix.EINTR}
}

// Err is the errno an error message (or a dump's final NLMSG_DONE) carries,
// as an *OpError; nil for other messages and for acknowledgements.
func (m Message) Err() error {
	if m.Type != unix.NLMSG_ERROR && m.Type != unix.NLMSG_DONE {
		return nil
	}
	if len(m.Data) < 4 {
		if m.Type == unix.NLMSG_DONE {
			return nil // a DONE without its int
		}
		return &OpError{Op: "receive", Err: errors.New("short error message")}
	}
	if errno := int32(binary.NativeEndian.Uint32(m.Data[:4])); errno < 0 {
		return &OpError{Op: "receive", Err: unix.Errno(-errno)}
	}
	return nil
}

// Messages calls f on each message of a datagram (Data pointing into b).
func Messages(b []byte, f func(Message) error) error {
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return &OpError{Op: "receive", Err: errors.New("short message")}
		}
		size := int(binary.NativeEndian.Uint32(b[0:4]))
		if size < unix.NLMSG_HDRLEN || size > len(b) {
			return &OpError{Op: "receive", Err: errors.New("bad message length")}
		}
		m := Message{
			Type:  binary.NativeEndian.Uint16(b[4:6]),
			Flags: binary.NativeEndian.Uint16(b[6:8]),
			Seq:   binary.NativeEndian.Uint32(b[8:12]),
			PID:   binary.NativeEndian.Uint32(b[12:16]),
			Data:  b[unix.NLMSG_HDRLEN:size],
		}
		if err := f(m); err != nil {
			return err
		}
		b = b[min(Align(size), len(b)):]
	}
	return nil
}

// Align rounds a length up to netlink's 4-byte alignment.
func Align(n int) int { return (n + 3) &^ 3 }

// maxReplies bounds the datagrams one Execute reads (a dump of 10,000
// conntrack entries is about 400 datagrams); the deadline bounds its time.
const maxReplies = 1 << 20

// Execute sends one request and returns its replies: for a dump, every
// message up to NLMSG_DONE; with Acknowledge, every message up to the
// acknowledgement; else the first datagram that answers it. Messages left
// from earlier requests (a sequence number not this one's), errors
// included, are skipped.
func (c *Conn) Execute(m Message) ([]Message, error) {
	seq, err := c.Send(m)
	if err != nil {
		return nil, err
	}
	var out []Message
	for range maxReplies {
		msgs, err := c.receive()
		if err != nil {
			return nil, err
		}
		answered := false
		for _, r := range msgs {
			if r.Seq != seq {
				continue
			}
			if err := r.Err(); err != nil {
				return nil, err
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

// Transact sends messages in one datagram (a batch) and reads until each
// that asks for one (Acknowledge) has its acknowledgement or error; it
// returns the first error. The buffers are sized for the batch and its
// acknowledgements first: the kernel queues them all before the first is
// read, and drops what does not fit.
func (c *Conn) Transact(msgs []Message) error {
	size := 0
	n := 0
	for _, m := range msgs {
		size += unix.NLMSG_HDRLEN + Align(len(m.Data))
		if m.Flags&Acknowledge != 0 {
			n++
		}
	}
	if size > 64<<10 {
		_ = c.SetWriteBuffer(size + 64<<10)
	}
	if n > 64 {
		// An acknowledgement is a small datagram, but the kernel charges
		// each about 1 KiB (its buffer's true size) to the receive buffer.
		_ = c.SetReadBuffer(n<<10 + 64<<10)
	}
	first, err := c.Send(msgs...)
	if err != nil {
		return err
	}
	pending := map[uint32]bool{}
	for i, m := range msgs {
		if m.Flags&Acknowledge != 0 {
			pending[first+uint32(i)] = true
		}
	}
	var firstErr error
	for range maxReplies {
		if len(pending) == 0 {
			return firstErr
		}
		got, err := c.receive()
		if err != nil {
			if firstErr != nil {
				return firstErr
			}
			return err
		}
		for _, r := range got {
			if r.Type != unix.NLMSG_ERROR || r.Seq-first >= uint32(len(msgs)) {
				continue
			}
			delete(pending, r.Seq)
			err := r.Err()
			if err == nil {
				continue
			}
			// An error on the batch's first message (no CAP_NET_ADMIN,
			// say) or a lost acknowledgement: nothing more will come.
			if r.Seq == first || errors.Is(err, unix.ENOBUFS) {
				return err
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return &OpError{Op: "receive", Err: errors.New("too many replies")}
}
