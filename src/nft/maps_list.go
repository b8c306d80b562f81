package nft

import (
	"encoding/binary"
	"errors"
	"os"

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
	buf := make([]byte, 64<<10) // a dump message is at most 32 KiB
	// The deadline bounds the dump's time, this its datagrams.
	for range 1 << 20 {
		var n int
		var rerr error
		if err := c.SyscallConn().Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		}); err != nil {
			return nil, explain(err)
		}
		if rerr != nil {
			return nil, rerr
		}
		if n > len(buf) {
			return nil, errors.New("netlink: dump message truncated")
		}
		done, err := l.parse(buf[:n], seq)
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
func (l *elemLister) parse(b []byte, seq uint32) (bool, error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		size := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if size < unix.NLMSG_HDRLEN || size > len(b) {
			return false, errors.New("netlink: bad message length")
		}
		msg := b[unix.NLMSG_HDRLEN:size]
		mseq := binary.NativeEndian.Uint32(b[8:12])
		b = b[min(nl.Align(size), len(b)):]
		if mseq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(msg) < 4 {
				return false, errors.New("netlink: short error message")
			}
			if errno := int32(binary.NativeEndian.Uint32(msg[:4])); errno != 0 {
				err := unix.Errno(-errno)
				if err == unix.ENOENT {
					return false, &os.SyscallError{Syscall: "netlink receive", Err: err}
				}
				return false, err
			}
			continue
		case unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM:
		default:
			continue
		}
		if len(msg) < 4 {
			continue
		}
		if err := l.message(msg[4:]); err != nil {
			return false, err
		}
	}
	return false, nil
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
			isCounter = string(trimNUL(d)) == "counter"
		case unix.NFTA_EXPR_DATA:
			data = d
		}
		return nil
	})
	if !isCounter {
		return
	}
	_ = nl.Walk(data, func(typ uint16, d []byte) error {
		if len(d) != 8 {
			return nil
		}
		switch typ {
		case unix.NFTA_COUNTER_BYTES:
			e.Bytes = binary.BigEndian.Uint64(d)
		case unix.NFTA_COUNTER_PACKETS:
			e.Packets = binary.BigEndian.Uint64(d)
		}
		return nil
	})
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
