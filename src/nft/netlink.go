package nft

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
)

// Our own nftables netlink client: batches of the few object kinds a plan
// holds (table, chains, sets and maps, elements, named objects, rules) and
// the dumps that read them back. It replaced google/nftables (about 300 KB
// of the mipsel binary). The messages are the library's, byte for byte
// except where noted (TestBatchMatchesLibrary), and the kernel is the judge
// (system_test.go and the labs).

// nftMsg is a message type of the nf_tables subsystem.
func nftMsg(m uint16) uint16 { return unix.NFNL_SUBSYS_NFTABLES<<8 | m }

// nfgen is the nfgenmsg header of an inet message (family, version,
// resource id).
var nfgen = []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}

// dial opens a netfilter netlink socket in n's namespace. Every request gets
// a deadline: a kernel whose nf_tables does not answer (module not loaded
// under qemu-user, say) must give an error, not a hang.
func (n *Conn) dial() (*nl.Conn, error) {
	c, err := nl.Dial(unix.NETLINK_NETFILTER, n.netns)
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
	return n.request(get, reply, nl.Dump, a)
}

func (n *Conn) request(get, reply uint16, flags uint16, a wire) ([][]byte, error) {
	c, err := n.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msgs, err := c.Execute(nl.Message{Type: nftMsg(get), Flags: nl.Request | flags, Data: append(append([]byte(nil), nfgen...), a...)})
	if err != nil {
		return nil, explain(err)
	}
	var out [][]byte
	for _, m := range msgs {
		if m.Type == nftMsg(reply) && len(m.Data) >= 4 {
			out = append(out, m.Data[4:])
		}
	}
	return out, nil
}

// batch is one nf_tables transaction: the kernel applies all of its
// messages or none.
type batch struct {
	msgs []nl.Message
}

// put queues a message; every one asks for an acknowledgement, which
// commit waits for.
func (b *batch) put(m uint16, flags uint16, a wire) {
	b.msgs = append(b.msgs, nl.Message{Type: nftMsg(m), Flags: nl.Request | nl.Acknowledge | flags,
		Data: append(append([]byte(nil), nfgen...), a...)})
}

func (b *batch) addTable(t string) {
	b.put(unix.NFT_MSG_NEWTABLE, nl.Create, wire(nil).Str(unix.NFTA_TABLE_NAME, t).U32(unix.NFTA_TABLE_FLAGS, 0))
}

func (b *batch) delTable(t string) {
	b.put(unix.NFT_MSG_DELTABLE, 0, wire(nil).Str(unix.NFTA_TABLE_NAME, t).U32(unix.NFTA_TABLE_FLAGS, 0))
}

// addChain adds a base chain of type filter with policy accept.
func (b *batch) addChain(t, name string, hook, prio uint32) {
	b.put(unix.NFT_MSG_NEWCHAIN, nl.Create, wire(nil).Str(unix.NFTA_CHAIN_TABLE, t).Str(unix.NFTA_CHAIN_NAME, name).
		Nest(unix.NFTA_CHAIN_HOOK, wire(nil).U32(unix.NFTA_HOOK_HOOKNUM, hook).U32(unix.NFTA_HOOK_PRIORITY, prio)).
		U32(unix.NFTA_CHAIN_POLICY, nfAccept).Str(unix.NFTA_CHAIN_TYPE, "filter"))
}

func (b *batch) delChain(t, name string) {
	b.put(unix.NFT_MSG_DELCHAIN, 0, wire(nil).Str(unix.NFTA_CHAIN_TABLE, t).Str(unix.NFTA_CHAIN_NAME, name))
}

// flushChain deletes a chain's rules.
func (b *batch) flushChain(t, name string) {
	b.put(unix.NFT_MSG_DELRULE, 0, wire(nil).Str(unix.NFTA_RULE_TABLE, t).Str(unix.NFTA_RULE_CHAIN, name))
}

// addRule appends a rule. The library also sets NLM_F_ECHO, which makes
// the kernel send every rule back after the commit; nothing here reads it.
func (b *batch) addRule(t, chain string, exprs wire, udata []byte) {
	a := wire(nil).Str(unix.NFTA_RULE_TABLE, t).Str(unix.NFTA_RULE_CHAIN, chain).Nest(unix.NFTA_RULE_EXPRESSIONS, exprs)
	if udata != nil {
		a = a.Add(unix.NFTA_RULE_USERDATA, udata)
	}
	b.put(unix.NFT_MSG_NEWRULE, nl.Create|nl.Append, a)
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
	a := wire(nil).Str(unix.NFTA_SET_TABLE, t).Str(unix.NFTA_SET_NAME, s.name).U32(unix.NFTA_SET_FLAGS, s.flags).
		U32(unix.NFTA_SET_KEY_TYPE, s.keyType).U32(unix.NFTA_SET_KEY_LEN, s.keyLen).U32(unix.NFTA_SET_ID, s.id)
	if s.flags&unix.NFT_SET_MAP != 0 {
		a = a.U32(unix.NFTA_SET_DATA_TYPE, s.dataType).U32(unix.NFTA_SET_DATA_LEN, s.dataLen)
	}
	if s.hostOrderKey {
		// libnftnl's NFTNL_UDATA_SET_KEYBYTEORDER (type 0), 1: host order,
		// as a host-order u32 (the library writes it little-endian).
		a = a.Add(unix.NFTA_SET_USERDATA, binary.NativeEndian.AppendUint32([]byte{0, 4}, 1))
	}
	if s.counter {
		// A counter expression (its name, and an empty attribute the
		// library adds and the kernel ignores).
		a = a.Nest(nftaSetExpr, wire(nil).Str(unix.NFTA_EXPR_NAME, "counter").Add(unix.NFTA_SET_ELEM_PAD|unix.NFTA_SET_ELEM_DATA, nil))
	}
	b.put(unix.NFT_MSG_NEWSET, nl.Create, a)
}

func (b *batch) delSet(t, name string) {
	b.put(unix.NFT_MSG_DELSET, 0, wire(nil).Str(unix.NFTA_SET_TABLE, t).Str(unix.NFTA_SET_NAME, name))
}

// flushSet deletes all of a set's elements.
func (b *batch) flushSet(t, name string) {
	b.put(unix.NFT_MSG_DELSETELEM, 0, wire(nil).Str(unix.NFTA_SET_TABLE, t).Str(unix.NFTA_SET_NAME, name))
}

// elemChunk bounds the element list of one message: an attribute's length
// is 16 bits, and a list past it would wrap (the kernel then reads a
// shorter list and says yes).
const elemChunk = 32 << 10

// elements adds (NEWSETELEM) or deletes (DELSETELEM) elements of a set,
// found by name, or by id when it is added in the same batch: as many
// messages as the list needs, all in the batch's one transaction.
func (b *batch) elements(m uint16, t, set string, id uint32, els []engine.Element) {
	var list wire
	n := 0
	flush := func() {
		b.put(m, nl.Create, wire(nil).Str(unix.NFTA_SET_ELEM_LIST_SET, set).U32(unix.NFTA_SET_ELEM_LIST_SET_ID, id).
			Str(unix.NFTA_SET_ELEM_LIST_TABLE, t).Nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS, list))
		list, n = nil, 0
	}
	for _, e := range els {
		item := wire(nil).Nest(unix.NFTA_SET_ELEM_KEY, data(e.Key))
		if len(e.Val) > 0 {
			item = item.Nest(unix.NFTA_SET_ELEM_DATA, data(e.Val))
		}
		if len(list)+len(item) > elemChunk {
			flush()
		}
		n++
		list = list.Nest(uint16(n), item)
	}
	if n > 0 || len(els) == 0 {
		flush()
	}
}

func (b *batch) addObj(t, name string, typ uint32, d wire) {
	b.put(unix.NFT_MSG_NEWOBJ, nl.Create, wire(nil).Str(unix.NFTA_OBJ_TABLE, t).Str(unix.NFTA_OBJ_NAME, name).
		U32(unix.NFTA_OBJ_TYPE, typ).Nest(unix.NFTA_OBJ_DATA, d))
}

func (b *batch) delObj(t, name string, typ uint32) {
	b.put(unix.NFT_MSG_DELOBJ, 0, wire(nil).Str(unix.NFTA_OBJ_TABLE, t).Str(unix.NFTA_OBJ_NAME, name).
		U32(unix.NFTA_OBJ_TYPE, typ).Nest(unix.NFTA_OBJ_DATA, nil))
}

// counterObj is a named counter's data, starting at zero. Adding one that
// exists changes nothing: it keeps counting.
func counterObj() wire {
	return wire(nil).U64(unix.NFTA_COUNTER_BYTES, 0).U64(unix.NFTA_COUNTER_PACKETS, 0)
}

func helperObj(name string, l3 uint16, l4 uint8) wire {
	return wire(nil).Add(unix.NFTA_CT_HELPER_NAME, []byte(name)).U16(unix.NFTA_CT_HELPER_L3PROTO, l3).
		Add(unix.NFTA_CT_HELPER_L4PROTO, []byte{l4})
}

// batchMessages wraps b's messages in the batch begin and end messages.
func batchMessages(b *batch) []nl.Message {
	mark := func(t uint16) nl.Message {
		return nl.Message{Type: t, Flags: nl.Request, Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}}
	}
	out := make([]nl.Message, 0, len(b.msgs)+2)
	out = append(out, mark(unix.NFNL_MSG_BATCH_BEGIN))
	out = append(out, b.msgs...)
	return append(out, mark(unix.NFNL_MSG_BATCH_END))
}

// commit sends a batch and reads one acknowledgement per message. The
// kernel answers only after it has committed or aborted the whole batch, so
// an error from the kernel means nothing changed; a socket error (a
// deadline, say) leaves the outcome unknown, which the daemon's next check
// of the table settles.
func (n *Conn) commit(b *batch) error {
	if len(b.msgs) == 0 {
		return nil
	}
	c, err := n.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return explain(c.Transact(batchMessages(b)))
}
