package nft

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
)

// Our own nftables netlink client: batches of the few object kinds a plan
// holds (table, chains, sets and maps, elements, named objects, rules) and
// the dumps that read them back. It replaced google/nftables (about 300 KB
// of the mipsel binary). The messages are the library's, byte for byte
// except where noted (TestBatchMatchesLibrary), and the kernel is the judge
// (system_test.go and the labs).

// nftMsg is a message type of the nf_tables subsystem.
func nftMsg(m uint16) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | m)
}

// nfgen is the nfgenmsg header of an inet message (family, version,
// resource id).
var nfgen = []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}

// dial opens a netfilter netlink socket in n's namespace. Every request gets
// a deadline: a kernel whose nf_tables does not answer (module not loaded
// under qemu-user, say) must give an error, not a hang.
func (n *Conn) dial() (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: n.netns})
	if err != nil {
		return nil, errorf("netlink: %w", err)
	}
	if err := c.SetDeadline(time.Now().Add(netlinkTimeout)); err != nil {
		c.Close()
		return nil, errorf("netlink: %w", err)
	}
	return c, nil
}

// dump sends a GET request with the dump flag (the kernel filters by the
// table, chain or set attributes given, where it can) and returns the
// attributes of every reply of type reply.
func (n *Conn) dump(get, reply uint16, a wire) ([][]byte, error) {
	return n.request(get, reply, netlink.Dump, a)
}

func (n *Conn) request(get, reply uint16, flags netlink.HeaderFlags, a wire) ([][]byte, error) {
	c, err := n.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: nftMsg(get), Flags: netlink.Request | flags},
		Data:   append(append([]byte(nil), nfgen...), a...),
	})
	if err != nil {
		return nil, explain(err)
	}
	var out [][]byte
	for _, m := range msgs {
		if m.Header.Type == nftMsg(reply) && len(m.Data) >= 4 {
			out = append(out, m.Data[4:])
		}
	}
	return out, nil
}

// batch is one nf_tables transaction: the kernel applies all of its
// messages or none.
type batch struct {
	msgs []netlink.Message
}

// add queues a message; every one asks for an acknowledgement, which commit
// counts.
func (b *batch) add(m uint16, flags netlink.HeaderFlags, a wire) {
	b.msgs = append(b.msgs, netlink.Message{
		Header: netlink.Header{Type: nftMsg(m), Flags: netlink.Request | netlink.Acknowledge | flags},
		Data:   append(append([]byte(nil), nfgen...), a...),
	})
}

func (b *batch) addTable(t string) {
	b.add(unix.NFT_MSG_NEWTABLE, netlink.Create, wire(nil).str(unix.NFTA_TABLE_NAME, t).u32(unix.NFTA_TABLE_FLAGS, 0))
}

func (b *batch) delTable(t string) {
	b.add(unix.NFT_MSG_DELTABLE, 0, wire(nil).str(unix.NFTA_TABLE_NAME, t).u32(unix.NFTA_TABLE_FLAGS, 0))
}

// addChain adds a base chain of type filter with policy accept.
func (b *batch) addChain(t, name string, hook, prio uint32) {
	b.add(unix.NFT_MSG_NEWCHAIN, netlink.Create, wire(nil).str(unix.NFTA_CHAIN_TABLE, t).str(unix.NFTA_CHAIN_NAME, name).
		nest(unix.NFTA_CHAIN_HOOK, wire(nil).u32(unix.NFTA_HOOK_HOOKNUM, hook).u32(unix.NFTA_HOOK_PRIORITY, prio)).
		u32(unix.NFTA_CHAIN_POLICY, nfAccept).str(unix.NFTA_CHAIN_TYPE, "filter"))
}

func (b *batch) delChain(t, name string) {
	b.add(unix.NFT_MSG_DELCHAIN, 0, wire(nil).str(unix.NFTA_CHAIN_TABLE, t).str(unix.NFTA_CHAIN_NAME, name))
}

// flushChain deletes a chain's rules.
func (b *batch) flushChain(t, name string) {
	b.add(unix.NFT_MSG_DELRULE, 0, wire(nil).str(unix.NFTA_RULE_TABLE, t).str(unix.NFTA_RULE_CHAIN, name))
}

// addRule appends a rule. The library also sets NLM_F_ECHO, which makes
// the kernel send every rule back after the commit; nothing here reads it.
func (b *batch) addRule(t, chain string, exprs wire, udata []byte) {
	a := wire(nil).str(unix.NFTA_RULE_TABLE, t).str(unix.NFTA_RULE_CHAIN, chain).nest(unix.NFTA_RULE_EXPRESSIONS, exprs)
	if udata != nil {
		a = a.add(unix.NFTA_RULE_USERDATA, udata)
	}
	b.add(unix.NFT_MSG_NEWRULE, netlink.Create|unix.NLM_F_APPEND, a)
}

// setSpec is a set or map as the kernel stores it.
type setSpec struct {
	name              string
	id                uint32 // batch-local, for rules and elements in the same batch
	flags             uint32 // NFT_SET_MAP
	keyType, keyLen   uint32 // nft's datatype number (concatenations packed 6 bits each)
	dataType, dataLen uint32 // maps only
	counter           bool   // per-element counters
	hostOrderKey      bool   // string keys: nft prints them by this userdata
}

// nftaSetExpr is NFTA_SET_EXPR (Linux 5.7), absent from x/sys: one
// expression every element of the set gets.
const nftaSetExpr = 0x11

func (b *batch) addSet(t string, s setSpec) {
	a := wire(nil).str(unix.NFTA_SET_TABLE, t).str(unix.NFTA_SET_NAME, s.name).u32(unix.NFTA_SET_FLAGS, s.flags).
		u32(unix.NFTA_SET_KEY_TYPE, s.keyType).u32(unix.NFTA_SET_KEY_LEN, s.keyLen).u32(unix.NFTA_SET_ID, s.id)
	if s.flags&unix.NFT_SET_MAP != 0 {
		a = a.u32(unix.NFTA_SET_DATA_TYPE, s.dataType).u32(unix.NFTA_SET_DATA_LEN, s.dataLen)
	}
	if s.hostOrderKey {
		// libnftnl's NFTNL_UDATA_SET_KEYBYTEORDER (type 0), 1: host order,
		// as a host-order u32 (the library writes it little-endian).
		a = a.add(unix.NFTA_SET_USERDATA, binary.NativeEndian.AppendUint32([]byte{0, 4}, 1))
	}
	if s.counter {
		// A counter expression (its name, and an empty attribute the
		// library adds and the kernel ignores).
		a = a.nest(nftaSetExpr, wire(nil).str(unix.NFTA_EXPR_NAME, "counter").add(unix.NFTA_SET_ELEM_PAD|unix.NFTA_SET_ELEM_DATA, nil))
	}
	b.add(unix.NFT_MSG_NEWSET, netlink.Create, a)
}

func (b *batch) delSet(t, name string) {
	b.add(unix.NFT_MSG_DELSET, 0, wire(nil).str(unix.NFTA_SET_TABLE, t).str(unix.NFTA_SET_NAME, name))
}

// flushSet deletes all of a set's elements.
func (b *batch) flushSet(t, name string) {
	b.add(unix.NFT_MSG_DELSETELEM, 0, wire(nil).str(unix.NFTA_SET_TABLE, t).str(unix.NFTA_SET_NAME, name))
}

// elements adds (NEWSETELEM) or deletes (DELSETELEM) elements of a set,
// found by name, or by id when it is added in the same batch.
func (b *batch) elements(m uint16, t, set string, id uint32, els []engine.Element) {
	var list wire
	for i, e := range els {
		item := wire(nil).nest(unix.NFTA_SET_ELEM_KEY, data(e.Key))
		if len(e.Val) > 0 {
			item = item.nest(unix.NFTA_SET_ELEM_DATA, data(e.Val))
		}
		list = list.nest(uint16(i+1), item)
	}
	b.add(m, netlink.Create, wire(nil).str(unix.NFTA_SET_ELEM_LIST_SET, set).u32(unix.NFTA_SET_ELEM_LIST_SET_ID, id).
		str(unix.NFTA_SET_ELEM_LIST_TABLE, t).nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS, list))
}

func (b *batch) addObj(t, name string, typ uint32, d wire) {
	b.add(unix.NFT_MSG_NEWOBJ, netlink.Create, wire(nil).str(unix.NFTA_OBJ_TABLE, t).str(unix.NFTA_OBJ_NAME, name).
		u32(unix.NFTA_OBJ_TYPE, typ).nest(unix.NFTA_OBJ_DATA, d))
}

func (b *batch) delObj(t, name string, typ uint32) {
	b.add(unix.NFT_MSG_DELOBJ, 0, wire(nil).str(unix.NFTA_OBJ_TABLE, t).str(unix.NFTA_OBJ_NAME, name).
		u32(unix.NFTA_OBJ_TYPE, typ).nest(unix.NFTA_OBJ_DATA, nil))
}

// counterObj is a named counter's data, starting at zero. Adding one that
// exists changes nothing: it keeps counting.
func counterObj() wire {
	return wire(nil).u64(unix.NFTA_COUNTER_BYTES, 0).u64(unix.NFTA_COUNTER_PACKETS, 0)
}

func helperObj(name string, l3 uint16, l4 uint8) wire {
	return wire(nil).add(unix.NFTA_CT_HELPER_NAME, []byte(name)).u16(unix.NFTA_CT_HELPER_L3PROTO, l3).
		add(unix.NFTA_CT_HELPER_L4PROTO, []byte{l4})
}

// batchMessages wraps b's messages in the batch begin and end messages.
func batchMessages(b *batch) []netlink.Message {
	mark := func(t uint16) netlink.Message {
		return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request},
			Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}}
	}
	out := make([]netlink.Message, 0, len(b.msgs)+2)
	out = append(out, mark(unix.NFNL_MSG_BATCH_BEGIN))
	out = append(out, b.msgs...)
	return append(out, mark(unix.NFNL_MSG_BATCH_END))
}

// commit sends a batch and reads one acknowledgement per message. The
// kernel answers only after it has committed or aborted the whole batch, so
// the first error means nothing changed.
func (n *Conn) commit(b *batch) error {
	if len(b.msgs) == 0 {
		return nil
	}
	c, err := n.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.SendMessages(batchMessages(b)); err != nil {
		return explain(err)
	}
	// Each acknowledgement is its own datagram; the deadline bounds the
	// wait, the count the loop.
	for acked := 0; acked < len(b.msgs); {
		msgs, err := c.Receive()
		if err != nil {
			return explain(err)
		}
		if len(msgs) == 0 {
			return errors.New("netlink: empty reply")
		}
		for _, m := range msgs {
			if m.Header.Type == netlink.Error {
				acked++
			}
		}
	}
	return nil
}
