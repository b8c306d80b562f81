package nft

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// TestMapsMatchKernel: the kernel holds the same map (key type and length,
// value type, flags) whether it was made from the rendered text by nft or
// through netlink; TestEncodingMatchesNft compares the listings.
func TestMapsMatchKernel(t *testing.T) {
	p := everyField()
	a, b := newNetns(t), newNetns(t)
	if err := a.conn(t).Apply(p); err != nil {
		t.Fatal(err)
	}
	b.nft(t, p.Render(), "-f", "-")
	read := func(ns *netns) map[string]*nftables.Set {
		c, err := nftables.New(nftables.WithNetNSFd(int(ns.fd.Fd())))
		if err != nil {
			t.Fatal(err)
		}
		sets, err := c.GetSets(table(p.Table))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*nftables.Set{}
		for _, s := range sets {
			out[s.Name] = s
		}
		return out
	}
	sa, sb := read(a), read(b)
	for _, m := range p.Maps {
		x, y := sa[m.Name], sb[m.Name]
		if x == nil || y == nil {
			t.Fatalf("map %s: netlink %v, nft %v", m.Name, x != nil, y != nil)
		}
		if x.KeyType != y.KeyType || x.DataType != y.DataType || x.IsMap != y.IsMap || x.Concatenation != y.Concatenation {
			t.Errorf("map %s differs:\nnetlink %+v %+v map=%v concat=%v\nnft     %+v %+v map=%v concat=%v", m.Name,
				x.KeyType, x.DataType, x.IsMap, x.Concatenation, y.KeyType, y.DataType, y.IsMap, y.Concatenation)
		}
	}
}

func TestMapElementsAddListDeleteAndSurviveApply(t *testing.T) {
	ns, c, p := appliedEveryField(t)
	m := c.Maps(p.Table)
	k1 := []byte{198, 51, 100, 2, 0, 0, 0, 0, 0x12, 0x34, 0, 0} // SPI 0x00001234 in two padded halves
	k2 := []byte{198, 51, 100, 2, 0x12, 0x34, 0, 0, 0x56, 0x78, 0, 0}
	if err := m.Add("m_in", []engine.Element{{Key: k1, Val: []byte{10, 0, 0, 2}}, {Key: k2, Val: []byte{10, 0, 0, 3}}}); err != nil {
		t.Fatal(err)
	}
	// Adding again, and replacing a value, are not errors.
	if err := m.Add("m_in", []engine.Element{{Key: k1, Val: []byte{10, 0, 0, 2}}, {Key: k2, Val: []byte{10, 0, 0, 4}}}); err != nil {
		t.Fatal(err)
	}
	listed := ns.nft(t, "", "list", "map", "inet", p.Table, "m_in")
	if !strings.Contains(listed, "198.51.100.2 . 0 . 4660 counter packets 0 bytes 0 : 10.0.0.2") ||
		!strings.Contains(listed, "198.51.100.2 . 4660 . 22136 counter packets 0 bytes 0 : 10.0.0.4") {
		t.Fatalf("nft lists:\n%s", listed)
	}
	// Another apply of the same plan (a reload) keeps the elements.
	if err := c.Apply(p); err != nil {
		t.Fatal(err)
	}
	got, err := m.List("m_in")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("after re-apply: %d elements, want 2", len(got))
	}
	for _, e := range got {
		if bytes.Equal(e.Key, k2) && !bytes.Equal(e.Val, []byte{10, 0, 0, 4}) {
			t.Errorf("replaced element reads back %v", e.Val)
		}
	}
	if err := m.Delete("m_in", [][]byte{k1, {198, 51, 100, 9, 0, 0, 0, 0, 0, 1, 0, 0}}); err != nil {
		t.Fatalf("delete with a missing key: %v", err)
	}
	if got, _ := m.List("m_in"); len(got) != 1 || !bytes.Equal(got[0].Key, k2) {
		t.Fatalf("after delete: %+v", got)
	}
	// A changed map type replaces the map (its elements cannot stay).
	q := *p
	q.Maps = append([]plan.Map(nil), p.Maps...)
	q.Maps[0].Key = plan.Key{plan.FieldIPSaddr, plan.FieldIPDaddr, plan.FieldSPIHi, plan.FieldSPILo}
	if err := c.Apply(&q); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.List("m_in"); len(got) != 0 {
		t.Errorf("map with a new type kept %d old elements", len(got))
	}
}

func TestProbeMapPayload(t *testing.T) {
	ns := newNetns(t)
	if err := ns.conn(t).ProbeMapPayload(); err != nil {
		t.Fatalf("this kernel has the fast path (GUIDE: payload set with map lookups works): %v", err)
	}
	if out := ns.nft(t, "", "list", "tables"); strings.TrimSpace(out) != "" {
		t.Errorf("probe left tables behind: %s", out)
	}
}
