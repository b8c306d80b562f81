package nft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// FW4AcceptMark reads the mark that fw4's forward chain accepts for us: the
// rule our include puts there (its comment names vpn-passthrough), as
// `meta mark & mask == mark`. found is false if fw4 has no such rule (no
// fw4, or the include not loaded).
//
// It dumps the chain's rules itself and reads only what it needs (comment,
// then meta, bitwise and cmp expressions): google/nftables v0.3.0 fails the
// whole listing on expressions it decodes wrongly (`ct original proto-dst`,
// in our own ruleset-post include and in users' rules), and then the check
// would silently find nothing.
func (n *Conn) FW4AcceptMark() (mark, mask uint32, found bool, err error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: n.netns})
	if err != nil {
		return 0, 0, false, errorf("netlink: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(netlinkTimeout)); err != nil {
		return 0, 0, false, errorf("netlink: %w", err)
	}
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_RULE_TABLE, "fw4")
	ae.String(unix.NFTA_RULE_CHAIN, "forward")
	attrs, err := ae.Encode()
	if err != nil {
		return 0, 0, false, errorf("encode: %w", err)
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, 0, false, nil // no fw4 table or chain
		}
		return 0, 0, false, errorf("list inet fw4 forward: %w", explain(err))
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		if mark, mask, ok := acceptMark(m.Data[4:]); ok {
			return mark, mask, true, nil
		}
	}
	return 0, 0, false, nil
}

// acceptMark reads one rule's attributes: if its comment names
// vpn-passthrough and it holds meta mark, bitwise, cmp eq in a row, the
// mask and mark (host byte order, as nft stores them).
func acceptMark(rule []byte) (mark, mask uint32, ok bool) {
	ad, err := netlink.NewAttributeDecoder(rule)
	if err != nil {
		return 0, 0, false
	}
	var ours bool
	var exprs []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_USERDATA:
			ours = bytes.Contains(ad.Bytes(), []byte("vpn-passthrough"))
		case unix.NFTA_RULE_EXPRESSIONS:
			exprs = ad.Bytes()
		}
	}
	if ad.Err() != nil || !ours {
		return 0, 0, false
	}
	type ex struct {
		name string
		attr map[uint16][]byte
	}
	var list []ex
	ld, err := netlink.NewAttributeDecoder(exprs)
	if err != nil {
		return 0, 0, false
	}
	for ld.Next() {
		ed, err := netlink.NewAttributeDecoder(ld.Bytes())
		if err != nil {
			return 0, 0, false
		}
		e := ex{attr: map[uint16][]byte{}}
		for ed.Next() {
			switch ed.Type() {
			case unix.NFTA_EXPR_NAME:
				e.name = ed.String()
			case unix.NFTA_EXPR_DATA:
				dd, err := netlink.NewAttributeDecoder(ed.Bytes())
				if err != nil {
					return 0, 0, false
				}
				for dd.Next() {
					e.attr[dd.Type()] = dd.Bytes()
				}
			}
		}
		list = append(list, e)
	}
	// value reads NFTA_DATA_VALUE out of a nested data attribute.
	value := func(b []byte) []byte {
		vd, err := netlink.NewAttributeDecoder(b)
		if err != nil {
			return nil
		}
		for vd.Next() {
			if vd.Type() == unix.NFTA_DATA_VALUE {
				return vd.Bytes()
			}
		}
		return nil
	}
	for i := 0; i+2 < len(list); i++ {
		m, b, c := list[i], list[i+1], list[i+2]
		if m.name != "meta" || b.name != "bitwise" || c.name != "cmp" {
			continue
		}
		key, op := m.attr[unix.NFTA_META_KEY], c.attr[unix.NFTA_CMP_OP]
		mk, data := value(b.attr[unix.NFTA_BITWISE_MASK]), value(c.attr[unix.NFTA_CMP_DATA])
		if len(key) == 4 && binary.BigEndian.Uint32(key) == unix.NFT_META_MARK && len(op) == 4 &&
			binary.BigEndian.Uint32(op) == unix.NFT_CMP_EQ && len(mk) == 4 && len(data) == 4 {
			return binary.NativeEndian.Uint32(data), binary.NativeEndian.Uint32(mk), true
		}
	}
	return 0, 0, false
}
