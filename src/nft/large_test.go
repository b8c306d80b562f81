package nft

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// TestLargeTransactions: transactions past netlink's limits of one
// attribute (64 KiB), one socket buffer's worth of acknowledgements and
// the default send buffer do what they say. Before, 1900 map elements in
// one Add installed 79 and said yes (the element list's length wrapped),
// and a batch of 300 rules was installed but reported ENOBUFS.
func TestLargeTransactions(t *testing.T) {
	_, c, p := appliedEveryField(t)
	m := c.Maps(p.Table)
	const n = 6000 // m_in: 12-byte keys, 4-byte values: about 250 KB of elements
	els := make([]engine.Element, n)
	keys := make([][]byte, n)
	for i := range els {
		k := []byte{198, 51, 100, 2, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(k[4:], uint16(i>>16))
		binary.BigEndian.PutUint16(k[8:], uint16(i))
		els[i] = engine.Element{Key: k, Val: []byte{10, 0, byte(i >> 8), byte(i)}}
		keys[i] = k
	}
	if err := m.Add("m_in", els); err != nil {
		t.Fatalf("add %d elements: %v", n, err)
	}
	got, err := m.List("m_in")
	if err != nil || len(got) != n {
		t.Fatalf("listed %d of %d elements (%v)", len(got), n, err)
	}
	if err := m.Delete("m_in", keys); err != nil {
		t.Fatalf("delete %d elements: %v", n, err)
	}
	if got, err := m.List("m_in"); err != nil || len(got) != 0 {
		t.Fatalf("%d elements left after deleting all (%v)", len(got), err)
	}

	rules := func(table string, extra plan.Rule, withExtra bool) *batch {
		b := &batch{}
		b.addTable(table)
		b.addChain(table, "c", unix.NF_INET_FORWARD, 0)
		r, err := ruleWire(plan.Rule{L4: 255, Verdict: plan.VerdictDrop}, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		for range 1500 {
			b.addRule(table, "c", r, comment("a rule that matches nothing"))
		}
		if withExtra {
			x, err := ruleWire(extra, func(string) (uint32, bool) { return 0, true }, false)
			if err != nil {
				t.Fatal(err)
			}
			b.addRule(table, "c", x, nil)
		}
		return b
	}
	if err := c.commit(rules("big", plan.Rule{}, false)); err != nil {
		t.Fatalf("1500 rules: %v", err)
	}
	if rs, err := c.rules("big", "c"); err != nil || len(rs) != 1500 {
		t.Fatalf("%d rules installed of 1500 (%v)", len(rs), err)
	}
	// The same with a rule at the end that refers to a set the table lacks:
	// the kernel's own error, and nothing of the batch is left.
	err = c.commit(rules("big2", plan.Rule{IIFSet: "nosuch"}, true))
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("1500 rules and a bad one: %v, want ENOENT", err)
	}
	if ok, err := c.Exists("big2"); err != nil || ok {
		t.Fatalf("refused batch left its table behind (%v, %v)", ok, err)
	}
}

// TestDumpEndedByError: a dump the kernel ends with an error in its
// NLMSG_DONE (the set went away half-way) is an error, not a short list.
func TestDumpEndedByError(t *testing.T) {
	done := make([]byte, 20)
	binary.NativeEndian.PutUint32(done[0:], 20)
	binary.NativeEndian.PutUint16(done[4:], unix.NLMSG_DONE)
	binary.NativeEndian.PutUint32(done[8:], 5)
	errno := -int32(unix.ENOENT)
	binary.NativeEndian.PutUint32(done[16:], uint32(errno))
	var l elemLister
	if _, err := l.parse(done, 5); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("DONE with ENOENT: %v", err)
	}
	binary.NativeEndian.PutUint32(done[16:], 0)
	if ok, err := l.parse(done, 5); !ok || err != nil {
		t.Fatalf("plain DONE: %v %v", ok, err)
	}
}
