package nfqueue

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// ctnetlink constants (uapi linux/netfilter/nfnetlink_conntrack.h).
const (
	nfnlSubsysCtnetlink = 1
	ipctnlMsgCtNew      = 0
	ctaTupleOrig        = 1
	ctaHelp             = 5
	ctaTupleIP          = 1
	ctaTupleProto       = 2
	ctaIPv4Src          = 1
	ctaIPv4Dst          = 2
	ctaProtoNum         = 1
	ctaProtoSrcPort     = 2
	ctaProtoDstPort     = 3
	ctaHelpName         = 1
)

// Conntrack is a ctnetlink socket for the one change the engines make to
// conntrack entries: removing a conntrack helper from a connection.
type Conntrack struct {
	fd  int
	seq uint32
	buf []byte
}

// OpenConntrack opens ctnetlink in the current network namespace.
func OpenConntrack() (*Conntrack, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("ctnetlink: socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ctnetlink: bind: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	tv := unix.NsecToTimeval(int64(time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return &Conntrack{fd: fd, buf: make([]byte, 8192)}, nil
}

// Close closes the socket.
func (c *Conntrack) Close() error { return unix.Close(c.fd) }

// ClearHelper removes the conntrack helper from the TCP connection whose
// original-direction tuple is src -> dst (IPCTNL_MSG_CT_NEW without
// NLM_F_CREATE, CTA_HELP with an empty name: ctnetlink_change_helper then
// drops the helper and its expectations). It returns unix.ENOENT while the
// connection is not (yet) in the table, e.g. before its first packet has
// left the router.
//
// The helper is gone for every later packet; one that is being processed on
// another CPU at the same moment may still see it.
func (c *Conntrack) ClearHelper(src, dst netip.AddrPort) error {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return fmt.Errorf("ctnetlink: only IPv4 tuples: %v -> %v", src, dst)
	}
	c.seq++
	seq := c.seq
	b := clearHelperMsg(seq, src, dst)
	if _, err := unix.Write(c.fd, b); err != nil {
		return fmt.Errorf("ctnetlink: send: %w", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		n, err := recv(c.fd, c.buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("ctnetlink: receive: %w", err)
		}
		rb := c.buf[:n]
		for {
			m, rest, ok, err := nextMsg(rb)
			if err != nil || !ok {
				break
			}
			rb = rest
			if m.typ != nlmsgError {
				continue
			}
			errno, s, ok := parseError(m.body)
			if !ok || s != seq {
				continue
			}
			if errno != 0 {
				return unix.Errno(-errno)
			}
			return nil
		}
	}
	return fmt.Errorf("ctnetlink: no answer within 2s")
}

// clearHelperMsg builds the update request for ClearHelper.
func clearHelperMsg(seq uint32, src, dst netip.AddrPort) []byte {
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	var ip []byte
	ip = putAttr(ip, ctaIPv4Src, s4[:])
	ip = putAttr(ip, ctaIPv4Dst, d4[:])
	var sp, dp [2]byte
	be.PutUint16(sp[:], src.Port())
	be.PutUint16(dp[:], dst.Port())
	var proto []byte
	proto = putAttr(proto, ctaProtoNum, []byte{unix.IPPROTO_TCP})
	proto = putAttr(proto, ctaProtoSrcPort, sp[:])
	proto = putAttr(proto, ctaProtoDstPort, dp[:])
	var tuple []byte
	tuple = putAttr(tuple, ctaTupleIP|nlaFNested, ip)
	tuple = putAttr(tuple, ctaTupleProto|nlaFNested, proto)
	help := putAttr(nil, ctaHelpName, []byte{0}) // "" as a NUL-terminated string

	b := putMsgHdr(nil, nfnlSubsysCtnetlink<<8|ipctnlMsgCtNew, nlmFRequest|nlmFAck, seq, 0, unix.AF_INET)
	b = putAttr(b, ctaTupleOrig|nlaFNested, tuple)
	b = putAttr(b, ctaHelp|nlaFNested, help)
	return endMsg(b, 0)
}
