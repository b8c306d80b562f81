package nft

import (
	"bytes"
	"io"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rules lists a chain's rules like nftables.Conn.GetRules, but survives the
// padding attributes some kernels add. On architectures without efficient
// unaligned access (MIPS) the kernel puts an empty NFTA_LIMIT_PAD before the
// 64-bit rate and unit of a `limit` expression (nla_put_be64 with a pad
// attribute), and google/nftables v0.3.0 fails the whole listing with "expr:
// unhandled limit netlink attribute". The daemon would then take its own
// good table for damaged and restore it over and over.
//
// So the library talks to a test dialer that forwards each request over a
// real netlink socket in our namespace (with the usual deadline) and drops
// those pads from the rules before the library decodes them. Replies without
// pads reach the library byte for byte.
func (n *Conn) rules(t *nftables.Table, ch *nftables.Chain) ([]*nftables.Rule, error) {
	return getRules(t, ch, n.execute)
}

// execute sends one request over a fresh netlink socket in n's namespace and
// returns its whole (multipart) reply, without the final done message.
func (n *Conn) execute(req netlink.Message) ([]netlink.Message, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: n.netns})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(netlinkTimeout)); err != nil {
		return nil, err
	}
	// The test connection numbered the request; this socket numbers its own.
	req.Header.Sequence, req.Header.PID = 0, 0
	return c.Execute(req)
}

var ruleMsgType = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE)

// getRules runs the library's GetRules against exec, stripping limit pads
// from every rule in the reply.
func getRules(t *nftables.Table, ch *nftables.Chain, exec func(netlink.Message) ([]netlink.Message, error)) ([]*nftables.Rule, error) {
	c, err := nftables.New(nftables.WithTestDial(func(reqs []netlink.Message) ([]netlink.Message, error) {
		if len(reqs) == 0 {
			// nltest asks for multicast messages when it has no reply
			// queued: there are none (io.EOF means "nothing, no error").
			return nil, io.EOF
		}
		var out []netlink.Message
		for _, req := range reqs {
			msgs, err := exec(req)
			if err != nil {
				return nil, err
			}
			for _, m := range msgs {
				if m.Header.Type == ruleMsgType && len(m.Data) >= 4 {
					m.Data = append(m.Data[:4:4], stripLimitPad(m.Data[4:])...)
				}
				m.Header.Flags |= netlink.Multi
				out = append(out, m)
			}
		}
		// Close the multipart reply the way the kernel does, so that the
		// library's receive loop ends (and an empty chain gives no rules).
		return append(out, netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi}}), nil
	}))
	if err != nil {
		return nil, errorf("netlink: %w", err)
	}
	return c.GetRules(t, ch)
}

// attrType is an attribute's type without the nested and byte-order flags.
func attrType(a netlink.Attribute) uint16 {
	return a.Type &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
}

// stripLimitPad takes a rule message's attributes (after the nfgenmsg
// header) and returns them without NFTA_LIMIT_PAD attributes inside `limit`
// expressions (NFTA_RULE_EXPRESSIONS > NFTA_LIST_ELEM > NFTA_EXPR_DATA of an
// expression named "limit"). Everything else is kept as it is; input it
// cannot parse, or without such pads, comes back unchanged (the same slice),
// for the library to judge.
//
// Attributes from UnmarshalAttributes keep their length, which
// MarshalAttributes writes back as it is: whoever replaces an attribute's
// data below zeroes its Length so that it is worked out anew.
func stripLimitPad(b []byte) []byte {
	attrs, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		return b
	}
	changed := false
	for i, a := range attrs {
		if attrType(a) != unix.NFTA_RULE_EXPRESSIONS {
			continue
		}
		if s, ok := stripList(a.Data); ok {
			attrs[i].Data, attrs[i].Length, changed = s, 0, true
		}
	}
	if !changed {
		return b
	}
	out, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return b
	}
	return out
}

// stripList strips the limit pads of an NFTA_RULE_EXPRESSIONS list; ok says
// whether it removed any.
func stripList(b []byte) ([]byte, bool) {
	elems, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		return nil, false
	}
	changed := false
	for i, e := range elems {
		if attrType(e) != unix.NFTA_LIST_ELEM {
			continue
		}
		if s, ok := stripExpr(e.Data); ok {
			elems[i].Data, elems[i].Length, changed = s, 0, true
		}
	}
	if !changed {
		return nil, false
	}
	out, err := netlink.MarshalAttributes(elems)
	return out, err == nil
}

// stripExpr strips the pads of one expression if it is a limit.
func stripExpr(b []byte) ([]byte, bool) {
	attrs, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		return nil, false
	}
	limit := false
	for _, a := range attrs {
		if attrType(a) == unix.NFTA_EXPR_NAME && bytes.Equal(bytes.TrimRight(a.Data, "\x00"), []byte("limit")) {
			limit = true
		}
	}
	if !limit {
		return nil, false
	}
	changed := false
	for i, a := range attrs {
		if attrType(a) != unix.NFTA_EXPR_DATA {
			continue
		}
		data, err := netlink.UnmarshalAttributes(a.Data)
		if err != nil {
			continue
		}
		kept := data[:0]
		for _, d := range data {
			if attrType(d) != unix.NFTA_LIMIT_PAD {
				kept = append(kept, d)
			}
		}
		if len(kept) == len(data) {
			continue
		}
		s, err := netlink.MarshalAttributes(kept)
		if err != nil {
			continue
		}
		attrs[i].Data, attrs[i].Length, changed = s, 0, true
	}
	if !changed {
		return nil, false
	}
	out, err := netlink.MarshalAttributes(attrs)
	return out, err == nil
}
