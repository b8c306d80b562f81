package ct

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
)

const (
	ipctnlMsgCtNew      = 0
	ipctnlMsgCtGetStats = 5 // IPCTNL_MSG_CT_GET_STATS
)

// Conn is a ctnetlink socket for the changes the engines make to conntrack
// entries (removing a helper) and for asking whether ctnetlink exists.
type Conn struct {
	c *nl.Conn
}

// Open opens ctnetlink in the current network namespace.
func Open() (*Conn, error) {
	c, err := nl.Dial(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return nil, fmt.Errorf("ct: dial: %w", err)
	}
	return &Conn{c: c}, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.c.Close() }

func (c *Conn) execute(typ uint16, flags uint16, body []byte) ([]nl.Message, error) {
	_ = c.c.SetDeadline(time.Now().Add(2 * time.Second))
	return c.c.Execute(nl.Message{Type: unix.NFNL_SUBSYS_CTNETLINK<<8 | typ, Flags: flags,
		Data: append([]byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0}, body...)})
}

// Available reports whether the kernel speaks ctnetlink
// (nf_conntrack_netlink, kmod-nf-conntrack-netlink on OpenWrt): the engines'
// conntrack view of queued packets (NFQA_CT) needs it too.
func (c *Conn) Available() error {
	if _, err := c.execute(ipctnlMsgCtGetStats, nl.Request|nl.Acknowledge, nil); err != nil {
		return fmt.Errorf("ct: ctnetlink: %w", err)
	}
	return nil
}

// Probe reports whether the kernel speaks ctnetlink in the current network
// namespace (the probe's nf_conntrack_netlink capability): it opens a socket,
// asks for the statistics and closes it again.
func Probe() error {
	c, err := Open()
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Available()
}

// ClearHelper removes the conntrack helper from the TCP connection whose
// original-direction tuple is src -> dst (IPCTNL_MSG_CT_NEW without
// NLM_F_CREATE, CTA_HELP with an empty name: ctnetlink_change_helper then
// drops the helper and its expectations). The error wraps unix.ENOENT while
// the connection is not (yet) in the table.
//
// The helper is gone for every later packet; one that is being processed on
// another CPU at the same moment may still see it.
func (c *Conn) ClearHelper(src, dst netip.AddrPort) error {
	b, err := ClearHelperRequest(src, dst)
	if err != nil {
		return err
	}
	if _, err := c.execute(ipctnlMsgCtNew, nl.Request|nl.Acknowledge, b); err != nil {
		return fmt.Errorf("ct: clear helper %v -> %v: %w", src, dst, err)
	}
	return nil
}

// ClearHelperRequest is the attribute part of ClearHelper's request.
func ClearHelperRequest(src, dst netip.AddrPort) ([]byte, error) {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return nil, fmt.Errorf("ct: only IPv4 tuples: %v -> %v", src, dst)
	}
	tuple, err := encodeOrigTuple(Tuple{Src: src.Addr(), Dst: dst.Addr(), Proto: unix.IPPROTO_TCP,
		SrcPort: src.Port(), DstPort: dst.Port()})
	if err != nil {
		return nil, err
	}
	return append(tuple, nl.Attrs(nil).Nest(ctaHelp, nl.Attrs(nil).Str(ctaHelpName, ""))...), nil
}

// Get returns the conntrack entry whose original tuple is t. The error wraps
// unix.ENOENT when there is none; an entry the kernel has not confirmed yet
// (the packet that created it is still on its way through the hooks) is not
// found either.
func (c *Conn) Get(t Tuple) (Flow, error) {
	body, err := encodeOrigTuple(t)
	if err != nil {
		return Flow{}, err
	}
	msgs, err := c.execute(ipctnlMsgCtGet, nl.Request|nl.Acknowledge, body)
	if err != nil {
		return Flow{}, fmt.Errorf("ct: get %v: %w", t, err)
	}
	for _, m := range msgs {
		if len(m.Data) >= 4 {
			return ParseFlow(m.Data[4:])
		}
	}
	return Flow{}, fmt.Errorf("ct: get %v: empty answer", t)
}
