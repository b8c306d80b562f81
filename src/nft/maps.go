package nft

import (
	"errors"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// The engines' kernel data plane: named maps (plan.Map) whose elements the
// engines add at run time, read back with per-element counters.

func fieldType(f plan.Field) (nftables.SetDatatype, error) {
	switch f.Info().Datatype {
	case "ipv4_addr":
		return nftables.TypeIPAddr, nil
	case "inet_service":
		return nftables.TypeInetService, nil
	case "iface_index":
		return nftables.TypeIFIndex, nil
	}
	return nftables.SetDatatype{}, errorf("field %s: no set datatype", f)
}

// mapSet is the nftables set object for a plan map.
func mapSet(t *nftables.Table, m plan.Map, id uint32) (*nftables.Set, error) {
	s := &nftables.Set{Table: t, Name: m.Name, ID: id, IsMap: m.IsMap(), Counter: m.Counter}
	if len(m.Key) == 0 {
		return nil, errorf("map %s: no key", m.Name)
	}
	if len(m.Key) == 1 {
		kt, err := fieldType(m.Key[0])
		if err != nil {
			return nil, errorf("map %s: %w", m.Name, err)
		}
		s.KeyType = kt
	} else {
		var types []nftables.SetDatatype
		for _, f := range m.Key {
			ft, err := fieldType(f)
			if err != nil {
				return nil, errorf("map %s: %w", m.Name, err)
			}
			types = append(types, ft)
		}
		kt, err := nftables.ConcatSetType(types...)
		if err != nil {
			return nil, errorf("map %s: %w", m.Name, err)
		}
		s.KeyType = kt
	}
	if m.IsMap() {
		dt, err := fieldType(m.Data)
		if err != nil {
			return nil, errorf("map %s: %w", m.Name, err)
		}
		s.DataType = dt
	}
	return s, nil
}

// sameMap reports whether an installed set can stay as the plan's map
// (same key, value and counter): then its elements are kept.
func sameMap(cur *nftables.Set, want *nftables.Set) bool {
	return cur.IsMap == want.IsMap && cur.KeyType.Name == want.KeyType.Name && cur.KeyType.Bytes == want.KeyType.Bytes &&
		cur.DataType.Name == want.DataType.Name
}

// fieldLoad loads one field into register reg.
func fieldLoad(f plan.Field, reg uint32) (expr.Any, error) {
	i := f.Info()
	switch i.Base {
	case "network":
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: i.Offset, Len: i.Len}, nil
	case "transport":
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: i.Offset, Len: i.Len}, nil
	}
	if f == plan.FieldMetaOIF {
		return &expr.Meta{Key: expr.MetaKeyOIF, Register: reg}, nil
	}
	return nil, errorf("field %d cannot be loaded", f)
}

// keyLoad loads a (concatenated) key as nft does: the first field into
// register 1, the next ones into the following 32-bit registers.
func keyLoad(k plan.Key) ([]expr.Any, error) {
	var out []expr.Any
	words := uint32(0)
	for i, f := range k {
		reg := uint32(1)
		if i > 0 {
			reg = unix.NFT_REG32_00 + words
		}
		e, err := fieldLoad(f, reg)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		words += (f.Info().Len + 3) / 4
	}
	return out, nil
}

// mapWrite writes register 1 to a header field, fixing the IPv4 header
// checksum (and transport checksums that cover the pseudo-header), as nft
// encodes `ip daddr set ...`.
func mapWrite(f plan.Field) (expr.Any, error) {
	i := f.Info()
	if f == plan.FieldGREKey {
		// Enhanced GRE carries no checksum (RFC 2637 4.1: C is 0).
		return &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseTransportHeader,
			Offset: i.Offset, Len: i.Len}, nil
	}
	if i.Base != "network" {
		return nil, errorf("field %s cannot be written", f)
	}
	return &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader,
		Offset: i.Offset, Len: i.Len, CsumType: expr.CsumTypeInet, CsumOffset: 10,
		CsumFlags: unix.NFT_PAYLOAD_L4CSUM_PSEUDOHDR}, nil
}

// Maps is the engines' view of one table's maps (engine.Maps).
type Maps struct {
	c     *Conn
	table string
}

// Maps returns the data plane of table name.
func (n *Conn) Maps(name string) *Maps { return &Maps{c: n, table: name} }

var _ engine.Maps = (*Maps)(nil)

func (m *Maps) set(nc *nftables.Conn, name string) (*nftables.Set, error) {
	s, err := nc.GetSetByName(table(m.table), name)
	if err != nil {
		return nil, errorf("map %s of inet %s: %w", name, m.table, err)
	}
	s.Table = table(m.table)
	return s, nil
}

func elems(in []engine.Element) []nftables.SetElement {
	out := make([]nftables.SetElement, len(in))
	for i, e := range in {
		out[i] = nftables.SetElement{Key: e.Key, Val: e.Val}
	}
	return out
}

// Add inserts elements in one transaction. An element whose key is there
// already with another value is replaced (delete and add in one batch).
func (m *Maps) Add(name string, in []engine.Element) error {
	if len(in) == 0 {
		return nil
	}
	if err := m.batch(name, func(nc *nftables.Conn, s *nftables.Set) error {
		return nc.SetAddElements(s, elems(in))
	}); err == nil {
		return nil
	}
	// Some element exists with another value (or the batch was refused
	// for another reason, which the retries below report).
	for _, e := range in {
		one := []engine.Element{e}
		err := m.batch(name, func(nc *nftables.Conn, s *nftables.Set) error {
			if err := nc.SetDeleteElements(s, elems(one)); err != nil {
				return err
			}
			return nc.SetAddElements(s, elems(one))
		})
		if err != nil && notFound(err) {
			err = m.batch(name, func(nc *nftables.Conn, s *nftables.Set) error { return nc.SetAddElements(s, elems(one)) })
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
	if err := m.batch(name, func(nc *nftables.Conn, s *nftables.Set) error {
		return nc.SetDeleteElements(s, elems(in))
	}); err == nil {
		return nil
	}
	for _, e := range in {
		one := []engine.Element{e}
		err := m.batch(name, func(nc *nftables.Conn, s *nftables.Set) error { return nc.SetDeleteElements(s, elems(one)) })
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

// listLibrary is List through google/nftables, which the tests compare
// listElements with.
func (m *Maps) listLibrary(name string) ([]engine.Element, error) {
	nc, err := m.c.nc()
	if err != nil {
		return nil, err
	}
	s, err := m.set(nc, name)
	if err != nil {
		return nil, err
	}
	got, err := nc.GetSetElements(s)
	if err != nil {
		return nil, errorf("list map %s: %w", name, err)
	}
	out := make([]engine.Element, len(got))
	for i, e := range got {
		out[i] = engine.Element{Key: e.Key, Val: e.Val}
		if e.Counter != nil {
			out[i].Packets, out[i].Bytes = e.Counter.Packets, e.Counter.Bytes
		}
	}
	return out, nil
}

func (m *Maps) batch(name string, f func(*nftables.Conn, *nftables.Set) error) error {
	nc, err := m.c.nc()
	if err != nil {
		return err
	}
	s, err := m.set(nc, name)
	if err != nil {
		return err
	}
	if err := f(nc, s); err != nil {
		return err
	}
	return nc.Flush()
}

func notFound(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist)
}

// AddAll inserts the elements of several maps in one transaction: one
// netlink round trip and one commit, where Add costs two round trips (the
// set's lookup and the batch) and a commit per map. The PPTP engine adds a
// new call's four elements this way while the call's Outgoing-Call-Request
// waits in the queue (test/bench/pptp measures that wait). The kernel finds
// each set by its name. If the batch is refused (an element exists with
// another value, a map is missing), each map goes through Add, which
// replaces elements and names the map that failed.
func (m *Maps) AddAll(names []string, in [][]engine.Element) error {
	if len(names) != len(in) {
		return errorf("AddAll: %d maps, %d element lists", len(names), len(in))
	}
	nc, err := m.c.nc()
	if err != nil {
		return err
	}
	err = func() error {
		for i, name := range names {
			if len(in[i]) == 0 {
				continue
			}
			s := &nftables.Set{Name: name, Table: table(m.table)}
			if err := nc.SetAddElements(s, elems(in[i])); err != nil {
				return err
			}
		}
		return nc.Flush()
	}()
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
	nc, err := m.c.nc()
	if err != nil {
		return err
	}
	err = func() error {
		for i, name := range names {
			if len(keys[i]) == 0 {
				continue
			}
			els := make([]engine.Element, len(keys[i]))
			for j, k := range keys[i] {
				els[j].Key = k
			}
			if err := nc.SetDeleteElements(&nftables.Set{Name: name, Table: table(m.table)}, elems(els)); err != nil {
				return err
			}
		}
		return nc.Flush()
	}()
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
