package nft

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// The engines' kernel data plane: named maps (plan.Map) whose elements the
// engines add at run time, read back with per-element counters.

// fieldType is a field's nft datatype number and size.
func fieldType(f plan.Field) (typ, size uint32, err error) {
	switch f.Info().Datatype {
	case "ipv4_addr":
		return typeIPv4Addr, 4, nil
	case "inet_service":
		return typeInetService, 2, nil
	case "iface_index":
		return typeIfIndex, 4, nil
	}
	return 0, 0, errorf("field %s: no set datatype", f)
}

// mapSpec is the set object for a plan map. A concatenated key's type packs
// each field's type into 6 bits, and its length pads each field to the
// 4-byte register (as nft does).
func mapSpec(m plan.Map, id uint32) (setSpec, error) {
	s := setSpec{name: m.Name, id: id, counter: m.Counter}
	if len(m.Key) == 0 {
		return s, errorf("map %s: no key", m.Name)
	}
	if len(m.Key) > 32/6 {
		return s, errorf("map %s: %d key fields, at most 5", m.Name, len(m.Key))
	}
	for _, f := range m.Key {
		typ, size, err := fieldType(f)
		if err != nil {
			return s, errorf("map %s: %w", m.Name, err)
		}
		if len(m.Key) == 1 {
			s.keyType, s.keyLen = typ, size
			break
		}
		s.keyType = s.keyType<<6 | typ
		s.keyLen += (size + 3) &^ 3
	}
	if m.IsMap() {
		typ, size, err := fieldType(m.Data)
		if err != nil {
			return s, errorf("map %s: %w", m.Name, err)
		}
		s.flags, s.dataType, s.dataLen = unix.NFT_SET_MAP, typ, size
	}
	return s, nil
}

// Maps is the engines' view of one table's maps (engine.Maps).
type Maps struct {
	c     *Conn
	table string
}

// Maps returns the data plane of table name.
func (n *Conn) Maps(name string) *Maps { return &Maps{c: n, table: name} }

var _ engine.Maps = (*Maps)(nil)

// Add inserts elements in one transaction. An element whose key is there
// already with another value is replaced (delete and add in one batch).
func (m *Maps) Add(name string, in []engine.Element) error {
	if len(in) == 0 {
		return nil
	}
	if err := m.batch(func(b *batch) { b.elements(unix.NFT_MSG_NEWSETELEM, m.table, name, 0, in) }); err == nil {
		return nil
	}
	// Some element exists with another value (or the batch was refused
	// for another reason, which the retries below report).
	for _, e := range in {
		one := []engine.Element{e}
		err := m.batch(func(b *batch) {
			b.elements(unix.NFT_MSG_DELSETELEM, m.table, name, 0, one)
			b.elements(unix.NFT_MSG_NEWSETELEM, m.table, name, 0, one)
		})
		if err != nil && notFound(err) {
			err = m.batch(func(b *batch) { b.elements(unix.NFT_MSG_NEWSETELEM, m.table, name, 0, one) })
		}
		if err != nil {
			return errorf("map %s: add element: %w", name, err)
		}
	}
	return nil
}

// Delete removes elements by key; keys not present are ignored.
func (m *Maps) Delete(name string, keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	in := make([]engine.Element, len(keys))
	for i, k := range keys {
		in[i].Key = k
	}
	if err := m.batch(func(b *batch) { b.elements(unix.NFT_MSG_DELSETELEM, m.table, name, 0, in) }); err == nil {
		return nil
	}
	for _, e := range in {
		one := []engine.Element{e}
		err := m.batch(func(b *batch) { b.elements(unix.NFT_MSG_DELSETELEM, m.table, name, 0, one) })
		if err != nil && !notFound(err) {
			return errorf("map %s: delete element: %w", name, err)
		}
	}
	return nil
}

// List reads a map's elements back with their counters (maps_list.go).
func (m *Maps) List(name string) ([]engine.Element, error) {
	out, err := m.listElements(name)
	if err != nil {
		return nil, errorf("list map %s of inet %s: %w", name, m.table, err)
	}
	return out, nil
}

// batch commits the elements f adds to a batch.
func (m *Maps) batch(f func(*batch)) error {
	var b batch
	f(&b)
	return m.c.commit(&b)
}

func notFound(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist)
}

// AddAll inserts the elements of several maps in one transaction: one
// netlink round trip and one commit, where Add costs one of each per map. The PPTP engine adds a
// new call's four elements this way while the call's Outgoing-Call-Request
// waits in the queue (test/bench/pptp measures that wait). The kernel finds
// each set by its name. If the batch is refused (an element exists with
// another value, a map is missing), each map goes through Add, which
// replaces elements and names the map that failed.
func (m *Maps) AddAll(names []string, in [][]engine.Element) error {
	if len(names) != len(in) {
		return errorf("AddAll: %d maps, %d element lists", len(names), len(in))
	}
	err := m.batch(func(b *batch) {
		for i, name := range names {
			if len(in[i]) > 0 {
				b.elements(unix.NFT_MSG_NEWSETELEM, m.table, name, 0, in[i])
			}
		}
	})
	if err == nil {
		return nil
	}
	for i, name := range names {
		if err := m.Add(name, in[i]); err != nil {
			return err
		}
	}
	return nil
}

// DeleteAll removes keys of several maps in one transaction (keys not
// present are ignored, as by Delete, which it falls back to per map).
func (m *Maps) DeleteAll(names []string, keys [][][]byte) error {
	if len(names) != len(keys) {
		return errorf("DeleteAll: %d maps, %d key lists", len(names), len(keys))
	}
	err := m.batch(func(b *batch) {
		for i, name := range names {
			if len(keys[i]) == 0 {
				continue
			}
			els := make([]engine.Element, len(keys[i]))
			for j, k := range keys[i] {
				els[j].Key = k
			}
			b.elements(unix.NFT_MSG_DELSETELEM, m.table, name, 0, els)
		}
	})
	if err == nil {
		return nil
	}
	for i, name := range names {
		if err := m.Delete(name, keys[i]); err != nil {
			return err
		}
	}
	return nil
}
