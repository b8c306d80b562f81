package nft

import (
	"bytes"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
)

// TestMapsAddAllDeleteAll: several maps' elements in one transaction,
// again (existing elements are not an error), with a changed value (the
// batch is refused and each map's Add replaces it), and removed in one.
func TestMapsAddAllDeleteAll(t *testing.T) {
	_, c, p := appliedEveryField(t)
	m := c.Maps(p.Table)
	k := []byte{198, 51, 100, 2, 0, 0, 0, 0, 0x12, 0x34, 0, 0}
	addr := []byte{198, 51, 100, 1}
	names := []string{"m_in", "m_addr"}
	add := func(val byte) error {
		return m.AddAll(names, [][]engine.Element{{{Key: k, Val: []byte{10, 0, 0, val}}}, {{Key: addr}}})
	}
	for _, v := range []byte{2, 2, 3} {
		if err := add(v); err != nil {
			t.Fatalf("AddAll (value %d): %v", v, err)
		}
		in, err1 := m.List("m_in")
		as, err2 := m.List("m_addr")
		if err1 != nil || err2 != nil || len(in) != 1 || !bytes.Equal(in[0].Val, []byte{10, 0, 0, v}) || len(as) != 1 {
			t.Fatalf("after AddAll (value %d): %+v %+v %v %v", v, in, as, err1, err2)
		}
	}
	if err := m.AddAll([]string{"m_in", "no_such_map"}, [][]engine.Element{{{Key: k, Val: []byte{10, 0, 0, 3}}}, {{Key: addr}}}); err == nil {
		t.Error("AddAll into a missing map: no error")
	}
	if err := m.DeleteAll(names, [][][]byte{{k}, {addr, {203, 0, 113, 9}}}); err != nil {
		t.Fatalf("DeleteAll (one key not present): %v", err)
	}
	for _, n := range names {
		if got, _ := m.List(n); len(got) != 0 {
			t.Errorf("%s after DeleteAll: %+v", n, got)
		}
	}
}

// BenchmarkCallElements: what a new PPTP call's Outgoing-Call-Request waits
// for on the kernel data plane, four elements in four maps: one AddAll
// transaction against an Add per map (each a set lookup and a commit).
func BenchmarkCallElements(b *testing.B) {
	ns := newNetns(b)
	c := ns.conn(b)
	p := everyField()
	if err := c.Apply(p); err != nil {
		b.Fatal(err)
	}
	m := c.Maps(p.Table)
	names := []string{"m_in", "m_out", "m_addr", "m_in"}
	els := func(i int) [][]engine.Element {
		k := []byte{198, 51, 100, 2, 0, 0, byte(i >> 8), byte(i), 0x12, 0x34, 0, 0}
		ko := []byte{198, 51, 100, 2, 198, 51, 100, 1, 0, 0, byte(i >> 8), byte(i), 0x12, 0x34, 0, 0}
		k2 := append([]byte(nil), k...)
		k2[10] = 1
		return [][]engine.Element{{{Key: k, Val: []byte{10, 0, 0, 2}}}, {{Key: ko}}, {{Key: []byte{198, 51, 100, 1}}}, {{Key: k2, Val: []byte{10, 0, 0, 2}}}}
	}
	b.Run("AddAll", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := m.AddAll(names, els(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Add per map", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			e := els(i + 30000)
			for j, n := range names {
				if err := m.Add(n, e[j]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
