package nft

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
)

// listElements dumps a map's elements with their counters, parsing each
// netlink read as it arrives. google/nftables' GetSetElements holds the
// whole dump and decodes every element into a large SetElement through
// attribute decoders: some 3 KiB of garbage per element, which at 10,000
// elements read back every few seconds was most of the daemon's RSS (the
// heap grows to twice what a pass leaves live). Here an element costs its
// engine.Element and its key and value bytes, carved from one arena.
func (m *Maps) listElements(name string) ([]engine.Element, error) {
	return listSetElements(m.c.netns, m.table, name)
}

// listSetElements dumps the elements of set name of inet table in netns
// (0: the current one).
func listSetElements(netns int, table, name string) ([]engine.Element, error) {
	c, err := (&Conn{netns: netns}).dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	seq, err := c.Send(nl.Message{
		Type:  uint16(nftMsg(unix.NFT_MSG_GETSETELEM)),
		Flags: nl.Request | nl.Dump,
		Data: append(append([]byte(nil), nfgen...), wire(nil).Str(unix.NFTA_SET_ELEM_LIST_TABLE, table).
			Str(unix.NFTA_SET_ELEM_LIST_SET, name)...),
	})
	if err != nil {
		return nil, explain(err)
	}
	var l elemLister
	// The deadline bounds the dump's time, this its datagrams.
	for range 1 << 20 {
		b, err := c.ReadDatagram()
		if err != nil {
			return nil, explain(err)
		}
		done, err := l.parse(b, seq)
		if err != nil {
			return nil, err
		}
		if done {
			return l.out, nil
		}
	}
	return nil, errors.New("netlink: endless dump")
}

// elemLister collects the elements of one dump.
type elemLister struct {
	out   []engine.Element
	arena []byte
}

// Attribute types of NFTA_SET_ELEM_* and NFTA_EXPR_* not in x/sys.
const setElemExpressions = 0xb // NFTA_SET_ELEM_EXPRESSIONS

// parse reads one datagram of the dump (messages of request seq); it
// reports whether the dump ended.
func (l *elemLister) parse(b []byte, seq uint32) (done bool, err error) {
	err = nl.Messages(b, func(m nl.Message) error {
		if m.Seq != seq || done {
			return nil
		}
		if err := m.Err(); err != nil {
			return err // an error, or a dump the kernel ended with one
		}
		switch {
		case m.Type == unix.NLMSG_DONE:
			done = true
		case m.Type == nftMsg(unix.NFT_MSG_NEWSETELEM) && len(m.Data) >= 4:
			return l.message(m.Data[4:])
		}
		return nil
	})
	return done, err
}

func (l *elemLister) message(b []byte) error {
	return nl.Walk(b, func(typ uint16, data []byte) error {
		if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			return nil
		}
		return nl.Walk(data, func(typ uint16, data []byte) error {
			if typ != unix.NFTA_LIST_ELEM {
				return nil
			}
			return l.element(data)
		})
	})
}

func (l *elemLister) element(b []byte) error {
	var e engine.Element
	err := nl.Walk(b, func(typ uint16, data []byte) error {
		switch typ {
		case unix.NFTA_SET_ELEM_KEY:
			e.Key = l.value(data)
		case unix.NFTA_SET_ELEM_DATA:
			e.Val = l.value(data)
		case unix.NFTA_SET_ELEM_EXPR:
			l.expr(data, &e)
		case setElemExpressions:
			return nl.Walk(data, func(typ uint16, data []byte) error {
				if typ == unix.NFTA_LIST_ELEM {
					l.expr(data, &e)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.out = append(l.out, e)
	return nil
}

// value copies the NFTA_DATA_VALUE inside b into the arena.
func (l *elemLister) value(b []byte) []byte {
	var v []byte
	_ = nl.Walk(b, func(typ uint16, data []byte) error {
		if typ == unix.NFTA_DATA_VALUE {
			v = l.copy(data)
		}
		return nil
	})
	return v
}

func (l *elemLister) copy(b []byte) []byte {
	if len(l.arena)+len(b) > cap(l.arena) {
		l.arena = make([]byte, 0, max(4096, len(b)))
	}
	start := len(l.arena)
	l.arena = append(l.arena, b...)
	return l.arena[start:len(l.arena):len(l.arena)]
}

// expr reads a counter expression's packets and bytes into e.
func (l *elemLister) expr(b []byte, e *engine.Element) {
	var isCounter bool
	var data []byte
	_ = nl.Walk(b, func(typ uint16, d []byte) error {
		switch typ {
		case unix.NFTA_EXPR_NAME:
			isCounter = nl.String(d) == "counter"
		case unix.NFTA_EXPR_DATA:
			data = d
		}
		return nil
	})
	if !isCounter {
		return
	}
	e.Packets, e.Bytes = counterValues(data)
}

// counterValues reads a counter's data (NFTA_COUNTER_*), an element's or a
// named counter's.
func counterValues(b []byte) (packets, bytes uint64) {
	_ = nl.Walk(b, func(typ uint16, d []byte) error {
		if len(d) != 8 {
			return nil
		}
		switch typ {
		case unix.NFTA_COUNTER_BYTES:
			bytes = binary.BigEndian.Uint64(d)
		case unix.NFTA_COUNTER_PACKETS:
			packets = binary.BigEndian.Uint64(d)
		}
		return nil
	})
	return packets, bytes
}
