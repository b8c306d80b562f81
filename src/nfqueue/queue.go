package nfqueue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Config configures a queue.
type Config struct {
	// Num is the queue number the rules send packets to.
	Num uint16
	// MaxLen is the kernel-side queue length (packets waiting for a
	// verdict); beyond it the kernel drops (fail-closed, see the package
	// doc). Default 1024, the kernel's own default.
	MaxLen uint32
	// Batch is the most packets read before verdicts are sent. Default 64.
	Batch int
	// Conntrack asks the kernel for each packet's conntrack entry
	// (NFQA_CFG_F_CONNTRACK; Packet.CT). Kernels without ctnetlink glue
	// accept the flag and send nothing.
	Conntrack bool
	// RcvBuf is the socket receive buffer in bytes (SO_RCVBUFFORCE, so the
	// system limit does not apply to root). Default 4 MiB.
	RcvBuf int
	// PollInterval bounds how long one blocking receive waits, and so how
	// fast Run sees its context end. Default 200ms.
	PollInterval time.Duration
	// Coalesce: after a batch smaller than half of Batch, wait this long
	// before the next receive, so that packets gather into bigger batches
	// and the kernel wakes the reader less often. 0 disables it.
	Coalesce time.Duration
}

func (c *Config) defaults() {
	if c.MaxLen == 0 {
		c.MaxLen = 1024
	}
	if c.Batch <= 0 {
		c.Batch = 64
	}
	if c.RcvBuf <= 0 {
		c.RcvBuf = 4 << 20
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 200 * time.Millisecond
	}
}

// Handler decides a batch of packets: for each one it sets Verdict, and
// Modified and SetMark where it changed the packet. HandleBatch must not keep
// the packets or their Data after it returns.
type Handler interface {
	HandleBatch(pkts []Packet)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(pkts []Packet)

// HandleBatch calls f.
func (f HandlerFunc) HandleBatch(pkts []Packet) { f(pkts) }

// Stats are the queue's counters since Open. They are read atomically.
type Stats struct {
	Packets   uint64 // packets received
	Batches   uint64 // batches handled
	Verdicts  uint64 // netlink verdict messages sent (a batch verdict counts once)
	Sends     uint64 // sendmsg calls
	ENOBUFS   uint64 // receive overflows: the kernel dropped packets it could not deliver
	NLErrors  uint64 // NLMSG_ERROR replies to verdicts
	BadMsgs   uint64 // messages that did not parse
	Truncated uint64 // modified packets dropped because only part of them was copied
	SendErrs  uint64 // failed verdict sends
}

type counters struct {
	packets, batches, verdicts, sends, enobufs, nlerrors, badmsgs, truncated, senderrs atomic.Uint64
	lastNLErr                                                                          atomic.Int32
}

// Queue is a bound NFQUEUE. Run must be called from one goroutine.
type Queue struct {
	cfg  Config
	fd   int
	pkts []Packet
	out  []byte
	lost []uint32 // IDs whose verdict could not be sent: dropped next round
	c    counters
	seq  uint32

	// Receive slots for recvmmsg: Batch slots of maxMsg bytes each, so no
	// packet is ever truncated. It is virtual memory: only the pages the
	// kernel writes to (a packet's worth per slot) become resident.
	slots []byte
	iov   []unix.Iovec
	mm    []mmsghdr
}

// mmsghdr is struct mmsghdr (recvmmsg(2)); Go pads it as C does on every
// architecture (a 4-byte length after struct msghdr).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// maxMsg is the most one packet message can take: a 64 KiB packet plus the
// attributes around it. A receive is only started with this much room left.
const maxMsg = 65536 + 1024

// Open binds queue cfg.Num in the current network namespace, in copy-packet
// mode with the whole packet copied. It fails if another socket has the queue.
func Open(cfg Config) (*Queue, error) {
	cfg.defaults()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("nfqueue: netlink socket: %w", err)
	}
	q := &Queue{cfg: cfg, fd: fd}
	if err := q.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// The verdict buffer holds a batch of modified typical packets (bigger
	// ones flush it early).
	q.pkts = make([]Packet, cfg.Batch)
	q.out = make([]byte, 0, maxMsg+cfg.Batch*2048)
	q.lost = make([]uint32, 0, cfg.Batch)
	q.slots = make([]byte, cfg.Batch*maxMsg)
	q.iov = make([]unix.Iovec, cfg.Batch)
	q.mm = make([]mmsghdr, cfg.Batch)
	for i := range q.mm {
		q.iov[i].Base = &q.slots[i*maxMsg]
		q.iov[i].SetLen(maxMsg)
		q.mm[i].hdr.Iov = &q.iov[i]
		q.mm[i].hdr.SetIovlen(1)
	}
	return q, nil
}

func (q *Queue) setup() error {
	if err := unix.Bind(q.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("nfqueue: bind netlink socket: %w", err)
	}
	// Error replies to verdicts must not echo the (large) verdict back.
	_ = unix.SetsockoptInt(q.fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	if err := unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, q.cfg.RcvBuf); err != nil {
		_ = unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, q.cfg.RcvBuf)
	}
	if err := unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 2*maxMsg+q.cfg.Batch*2048); err != nil {
		_ = unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 2*maxMsg+q.cfg.Batch*2048)
	}
	tv := unix.NsecToTimeval(int64(q.cfg.PollInterval))
	if err := unix.SetsockoptTimeval(q.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("nfqueue: SO_RCVTIMEO: %w", err)
	}
	// Bind, copy the whole packet (the kernel caps 0xffff to its maximum),
	// queue length: one message, so the queue never exists half-configured
	// for long. Packets that slip in before the parameters take effect are
	// re-queued (NF_REPEAT) by request.
	if err := q.request(configMsg(q.cfg.Num, q.nextSeq(), 0xffff, q.cfg.MaxLen)); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("nfqueue: queue %d is bound by another process: %w", q.cfg.Num, err)
		}
		return fmt.Errorf("nfqueue: bind queue %d: %w", q.cfg.Num, err)
	}
	// Flags: no FAIL_OPEN (fail-closed when full, see doc.go), no GSO
	// (complete checksums), conntrack info if asked.
	var flags uint32
	if q.cfg.Conntrack {
		flags |= flagConntrack
	}
	mask := uint32(flagFailOpen | flagGSO | flagConntrack)
	if err := q.request(flagsMsg(q.cfg.Num, q.nextSeq(), flags, mask)); err != nil {
		if !q.cfg.Conntrack {
			return fmt.Errorf("nfqueue: queue %d flags: %w", q.cfg.Num, err)
		}
		// Old kernels refuse the conntrack flag: run without it.
		q.cfg.Conntrack = false
		if err := q.request(flagsMsg(q.cfg.Num, q.nextSeq(), 0, flagFailOpen|flagGSO)); err != nil {
			return fmt.Errorf("nfqueue: queue %d flags: %w", q.cfg.Num, err)
		}
	}
	return nil
}

func (q *Queue) nextSeq() uint32 {
	q.seq++
	return q.seq
}

// request sends one configuration message and waits for its ACK.
func (q *Queue) request(msg []byte) error {
	seq := ne.Uint32(msg[8:])
	if _, err := unix.Write(q.fd, msg); err != nil {
		return err
	}
	buf := make([]byte, maxMsg)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := recv(q.fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR || err == unix.ENOBUFS {
			continue
		}
		if err != nil {
			return err
		}
		b := buf[:n]
		for {
			m, rest, ok, err := nextMsg(b)
			if err != nil || !ok {
				break
			}
			b = rest
			switch m.typ {
			case nlmsgError:
				errno, s, ok := parseError(m.body)
				if !ok || s != seq {
					continue
				}
				if errno != 0 {
					return unix.Errno(-errno)
				}
				return nil
			case msgPacket:
				// Arrived before the queue was fully set up: queue it
				// again so it comes back with the final parameters.
				var p Packet
				if parsePacket(m.body, &p) == nil {
					v := appendVerdict(nil, q.cfg.Num, p.ID, nfRepeat, nil, nil)
					_, _ = unix.Write(q.fd, v)
				}
			}
		}
	}
	return fmt.Errorf("nfqueue: no answer from the kernel within 5s")
}

// Close releases the queue; the kernel unbinds it with the socket.
func (q *Queue) Close() error { return unix.Close(q.fd) }

// Stats returns the counters.
func (q *Queue) Stats() Stats {
	return Stats{
		Packets: q.c.packets.Load(), Batches: q.c.batches.Load(), Verdicts: q.c.verdicts.Load(),
		Sends: q.c.sends.Load(), ENOBUFS: q.c.enobufs.Load(), NLErrors: q.c.nlerrors.Load(),
		BadMsgs: q.c.badmsgs.Load(), Truncated: q.c.truncated.Load(), SendErrs: q.c.senderrs.Load(),
	}
}

// LastNetlinkError is the errno of the most recent NLMSG_ERROR reply, or 0.
func (q *Queue) LastNetlinkError() unix.Errno { return unix.Errno(q.c.lastNLErr.Load()) }

// Conntrack reports whether the queue delivers conntrack information.
func (q *Queue) Conntrack() bool { return q.cfg.Conntrack }

// Run reads batches and hands them to h until ctx ends. It returns nil when
// ctx ends and an error when the socket fails.
func (q *Queue) Run(ctx context.Context, h Handler) error {
	for ctx.Err() == nil {
		n, err := q.receive()
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		q.c.batches.Add(1)
		h.HandleBatch(q.pkts[:n])
		q.sendVerdicts(q.pkts[:n])
		if q.cfg.Coalesce > 0 && n < len(q.pkts)/2 {
			ts := unix.NsecToTimespec(int64(q.cfg.Coalesce))
			_ = unix.Nanosleep(&ts, nil)
		}
	}
	return nil
}

// Step receives one batch (waiting at most PollInterval), hands it to h and
// sends the verdicts. It returns the batch size. For tests and benchmarks
// that drive the loop themselves.
func (q *Queue) Step(h Handler) (int, error) {
	n, err := q.receive()
	if err != nil || n == 0 {
		return n, err
	}
	q.c.batches.Add(1)
	h.HandleBatch(q.pkts[:n])
	q.sendVerdicts(q.pkts[:n])
	return n, nil
}

// receive fills q.pkts with one batch: one recvmmsg that waits (up to
// PollInterval) for the first message and then takes whatever else is
// queued, up to Batch messages (MSG_WAITFORONE).
func (q *Queue) receive() (int, error) {
	var got int
	for tries := 0; ; tries++ {
		r, err := recvmmsg(q.fd, q.mm, unix.MSG_WAITFORONE)
		switch err {
		case nil:
		case unix.EAGAIN, unix.EINTR:
			return 0, nil
		case unix.ENOBUFS:
			// The kernel dropped messages that did not fit; the ones
			// still queued follow.
			q.c.enobufs.Add(1)
			if tries < 2 {
				continue
			}
			return 0, nil
		default:
			return 0, fmt.Errorf("nfqueue: receive on queue %d: %w", q.cfg.Num, err)
		}
		got = r
		break
	}
	n := 0
	for i := 0; i < got; i++ {
		b := q.slots[i*maxMsg : i*maxMsg+int(q.mm[i].len)]
		for n < len(q.pkts) {
			m, rest, ok, err := nextMsg(b)
			if err != nil {
				q.c.badmsgs.Add(1)
				break
			}
			if !ok {
				break
			}
			b = rest
			switch m.typ {
			case msgPacket:
				if err := parsePacket(m.body, &q.pkts[n]); err != nil {
					q.c.badmsgs.Add(1)
					continue
				}
				q.c.packets.Add(1)
				n++
			case nlmsgError:
				if errno, _, ok := parseError(m.body); ok && errno != 0 {
					q.c.nlerrors.Add(1)
					q.c.lastNLErr.Store(-errno)
				}
			case nlmsgNoop, nlmsgDone:
			default:
				q.c.badmsgs.Add(1)
			}
		}
	}
	return n, nil
}

// sendVerdicts answers a handled batch with as few messages and syscalls as
// possible (see the package doc).
func (q *Queue) sendVerdicts(pkts []Packet) {
	out := q.out[:0]
	var lastPlain uint32
	havePlain := false
	// Packets whose own verdict could not be sent last time are dropped
	// now, before anything else: a later batch verdict would otherwise
	// accept them unmodified (an un-NATed source, a packet meant to die).
	for _, id := range q.lost {
		out = appendVerdict(out, q.cfg.Num, id, nfDrop, nil, nil)
		q.c.verdicts.Add(1)
	}
	q.lost = q.lost[:0]
	failed := false
	for i := range pkts {
		p := &pkts[i]
		if p.plain() {
			lastPlain, havePlain = p.ID, true
			continue
		}
		verdict := uint32(nfAccept)
		var payload []byte
		var mark *uint32
		switch {
		case p.Verdict == Drop:
			verdict = nfDrop
		case p.Verdict == repeat:
			verdict = nfRepeat
		case p.Modified && p.Truncated():
			q.c.truncated.Add(1)
			verdict = nfDrop
		default:
			if p.Modified {
				payload = p.Data
				if payload == nil {
					payload = []byte{}
				}
			}
			if p.SetMark {
				mark = &p.NewMark
			}
		}
		if len(out)+verdictSize(len(payload)) > cap(out) {
			if !q.send(out) {
				failed = true
				q.rememberLost(out)
			}
			out = out[:0]
		}
		out = appendVerdict(out, q.cfg.Num, p.ID, verdict, mark, payload)
		q.c.verdicts.Add(1)
	}
	if havePlain && failed {
		// The batch verdict would also accept the packets whose verdicts
		// were lost; answer the plain ones one by one instead.
		for i := range pkts {
			if p := &pkts[i]; p.plain() {
				if len(out)+verdictSize(0) > cap(out) {
					if !q.send(out) {
						q.rememberLost(out)
					}
					out = out[:0]
				}
				out = appendVerdict(out, q.cfg.Num, p.ID, nfAccept, nil, nil)
			}
		}
		havePlain = false
	}
	if havePlain {
		if len(out)+verdictSize(0) > cap(out) {
			if !q.send(out) {
				q.rememberLost(out)
			}
			out = out[:0]
		}
		out = appendBatchVerdict(out, q.cfg.Num, lastPlain, nfAccept)
		q.c.verdicts.Add(1)
	}
	if !q.send(out) {
		q.rememberLost(out)
	}
}

// rememberLost records the packet IDs of single verdicts that could not be
// sent, so the next round drops them (bounded by cap(q.lost); beyond it they
// stay queued in the kernel, counted against the queue length). A lost batch
// verdict needs nothing: the next batch verdict covers its packets.
func (q *Queue) rememberLost(b []byte) {
	for {
		m, rest, ok, err := nextMsg(b)
		if !ok || err != nil {
			return
		}
		b = rest
		if m.typ != msgVerdict || len(m.body) < nfgenLen+nlaHdrLen+8 {
			continue
		}
		if len(q.lost) < cap(q.lost) {
			q.lost = append(q.lost, be.Uint32(m.body[nfgenLen+nlaHdrLen+4:]))
		}
	}
}

// send writes verdict messages; it reports false when they could not be
// sent. Transient errors are retried briefly (bounded).
func (q *Queue) send(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	q.c.sends.Add(1)
	for tries := 0; tries < 4; tries++ {
		_, err := unix.Write(q.fd, b)
		if err == nil {
			return true
		}
		if err != unix.EINTR && err != unix.ENOBUFS && err != unix.EAGAIN {
			break
		}
		if tries > 0 {
			time.Sleep(time.Duration(tries) * 100 * time.Microsecond)
		}
	}
	q.c.senderrs.Add(1)
	return false
}

// recvmmsg is recvmmsg(2) into the prepared headers; it does not allocate.
func recvmmsg(fd int, mm []mmsghdr, flags int) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&mm[0])), uintptr(len(mm)), uintptr(flags), 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}

// recv is recvfrom(2) without a source address, so it does not allocate.
func recv(fd int, b []byte, flags int) (int, error) {
	if len(b) == 0 {
		return 0, unix.EINVAL
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(flags), 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}

// errnoErr returns common errnos as values that need no allocation.
func errnoErr(e unix.Errno) error {
	switch e {
	case unix.EAGAIN:
		return unix.EAGAIN
	case unix.EINTR:
		return unix.EINTR
	case unix.ENOBUFS:
		return unix.ENOBUFS
	}
	return e
}
