package nft

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestListMatchesLibrary: List's own dump parser reads what google/nftables
// reads (keys, values, counters), over a dump of many netlink messages, for a
// map with values and counters and a plain set; a missing map is an error.
func TestListMatchesLibrary(t *testing.T) {
	ns, c, p := appliedEveryField(t)
	var sb strings.Builder
	for k := 0; k < 3000; k += 500 {
		var in, addr []string
		for i := k; i < k+500; i++ {
			in = append(in, fmt.Sprintf("198.51.%d.%d . %d . %d counter packets %d bytes %d : 10.0.%d.%d",
				i/250, i%250+1, i>>4, i&0xffff, i*3, i*300+7, i/250, i%250+1))
			addr = append(addr, fmt.Sprintf("10.%d.%d.%d", 1+i/62500, i/250%250, i%250+1))
		}
		fmt.Fprintf(&sb, "add element inet %s m_in { %s }\n", p.Table, strings.Join(in, ", "))
		fmt.Fprintf(&sb, "add element inet %s m_addr { %s }\n", p.Table, strings.Join(addr, ", "))
	}
	ns.nft(t, sb.String(), "-f", "-")
	m := c.Maps(p.Table)
	for _, name := range []string{"m_in", "m_addr"} {
		got, err := m.List(name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.listLibrary(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3000 || len(got) != len(want) {
			t.Fatalf("%s: List %d elements, library %d, want 3000", name, len(got), len(want))
		}
		byKey := map[string]int{}
		for i, e := range want {
			byKey[string(e.Key)] = i
		}
		counted := 0
		for _, e := range got {
			i, ok := byKey[string(e.Key)]
			if !ok {
				t.Fatalf("%s: List has key %x, the library not", name, e.Key)
			}
			w := want[i]
			if !bytes.Equal(e.Val, w.Val) || e.Packets != w.Packets || e.Bytes != w.Bytes {
				t.Fatalf("%s: key %x: List %x %d/%d, library %x %d/%d", name, e.Key, e.Val, e.Packets, e.Bytes, w.Val, w.Packets, w.Bytes)
			}
			if e.Bytes != 0 {
				counted++
			}
		}
		if name == "m_in" && counted != 3000 {
			t.Fatalf("m_in: %d elements with counters, want 3000", counted)
		}
	}
	if _, err := m.List("no_such_map"); err == nil {
		t.Fatal("List of a missing map: no error")
	}
}
