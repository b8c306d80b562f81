package nft

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func encAttrs(t testing.TB, as ...netlink.Attribute) []byte {
	t.Helper()
	b, err := netlink.MarshalAttributes(as)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// limitRuleAttrs is a rule dump's attributes for `limit rate 3/second burst
// 4 packets counter`, as the kernel sends it: with padded set, the way a
// MIPS kernel pads (an empty NFTA_*_PAD before each 64-bit value); with
// limitPads false, without the pads inside the limit (what stripping leaves).
func limitRuleAttrs(t testing.TB, padded, limitPads bool) []byte {
	t.Helper()
	pad := func(typ uint16) []netlink.Attribute {
		if padded {
			return []netlink.Attribute{{Type: typ}}
		}
		return nil
	}
	lpad := func() []netlink.Attribute {
		if limitPads {
			return pad(unix.NFTA_LIMIT_PAD)
		}
		return nil
	}
	var limit []netlink.Attribute
	limit = append(limit, lpad()...)
	limit = append(limit, netlink.Attribute{Type: unix.NFTA_LIMIT_RATE, Data: be64(3)})
	limit = append(limit, lpad()...)
	limit = append(limit,
		netlink.Attribute{Type: unix.NFTA_LIMIT_UNIT, Data: be64(1)},
		netlink.Attribute{Type: unix.NFTA_LIMIT_BURST, Data: be32(4)},
		netlink.Attribute{Type: unix.NFTA_LIMIT_TYPE, Data: be32(unix.NFT_LIMIT_PKTS)},
		netlink.Attribute{Type: unix.NFTA_LIMIT_FLAGS, Data: be32(0)})
	var counter []netlink.Attribute
	counter = append(counter, pad(unix.NFTA_COUNTER_PAD)...)
	counter = append(counter, netlink.Attribute{Type: unix.NFTA_COUNTER_BYTES, Data: be64(0)})
	counter = append(counter, pad(unix.NFTA_COUNTER_PAD)...)
	counter = append(counter, netlink.Attribute{Type: unix.NFTA_COUNTER_PACKETS, Data: be64(0)})
	elem := func(name string, data []netlink.Attribute) netlink.Attribute {
		return netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: encAttrs(t,
			netlink.Attribute{Type: unix.NFTA_EXPR_NAME, Data: []byte(name + "\x00")},
			netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_EXPR_DATA, Data: encAttrs(t, data...)})}
	}
	rule := []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(plan.TableName + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte("forward\x00")},
	}
	rule = append(rule, pad(unix.NFTA_RULE_PAD)...)
	rule = append(rule,
		netlink.Attribute{Type: unix.NFTA_RULE_HANDLE, Data: be64(7)},
		netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: encAttrs(t,
			elem("limit", limit), elem("counter", counter))})
	return encAttrs(t, rule...)
}

// TestRulesReadMIPSLimitPads: a MIPS kernel's rule dump (pads before every
// 64-bit value) reads as the same expressions as an x86 one. google/nftables
// v0.3.0 failed the whole listing on the limit's pads.
func TestRulesReadMIPSLimitPads(t *testing.T) {
	plain, ok := parseRule(limitRuleAttrs(t, false, false))
	if !ok {
		t.Fatal("unpadded rule unreadable")
	}
	padded, ok := parseRule(limitRuleAttrs(t, true, true))
	if !ok {
		t.Fatal("padded rule unreadable")
	}
	if len(plain.exprs) != 2 || plain.exprs[0].name != "limit" || plain.exprs[1].name != "counter" {
		t.Fatalf("exprs %+v, want limit and counter", plain.exprs)
	}
	if !sameExprs(padded.exprs, plain.exprs) {
		t.Fatalf("padded %+v, unpadded %+v", padded.exprs, plain.exprs)
	}
	for _, typ := range []uint16{unix.NFTA_LIMIT_RATE, unix.NFTA_LIMIT_UNIT, unix.NFTA_LIMIT_BURST} {
		if !bytes.Equal(padded.exprs[0].attr[typ], plain.exprs[0].attr[typ]) {
			t.Errorf("limit attribute %d: padded %x, unpadded %x", typ, padded.exprs[0].attr[typ], plain.exprs[0].attr[typ])
		}
	}
	if r, _ := u64be(plain.exprs[0].attr[unix.NFTA_LIMIT_RATE]); r != 3 {
		t.Errorf("rate %d, want 3", r)
	}
	if _, ok := parseRule([]byte{200, 0, 1, 0}); ok {
		t.Error("an attribute longer than its message read as a rule")
	}
}

func u64be(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

// hasLimitPad reports whether a rule's attributes still hold a pad inside
// a limit expression.
func hasLimitPad(b []byte) bool {
	rule, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		return false
	}
	for _, r := range rule {
		if attrType(r) != unix.NFTA_RULE_EXPRESSIONS {
			continue
		}
		elems, _ := netlink.UnmarshalAttributes(r.Data)
		for _, e := range elems {
			ex, _ := netlink.UnmarshalAttributes(e.Data)
			isLimit := false
			for _, a := range ex {
				isLimit = isLimit || attrType(a) == unix.NFTA_EXPR_NAME && string(bytes.TrimRight(a.Data, "\x00")) == "limit"
			}
			for _, a := range ex {
				if !isLimit || attrType(a) != unix.NFTA_EXPR_DATA {
					continue
				}
				data, _ := netlink.UnmarshalAttributes(a.Data)
				for _, d := range data {
					if attrType(d) == unix.NFTA_LIMIT_PAD {
						return true
					}
				}
			}
		}
	}
	return false
}

// FuzzParseRule: any dump a kernel (or anyone who can write to the socket)
// sends reads without a panic, and a rule that reads is compared with
// itself as equal.
func FuzzParseRule(f *testing.F) {
	f.Add(limitRuleAttrs(f, true, true))
	f.Add(limitRuleAttrs(f, false, false))
	f.Add([]byte{})
	f.Add([]byte{4, 0, 4, 0, 8, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := parseRule(b)
		if !ok {
			return
		}
		if len(r.exprs) > len(b)/4 {
			t.Fatalf("%d expressions from %d bytes", len(r.exprs), len(b))
		}
		if !sameExprs(r.exprs, r.exprs) {
			t.Fatalf("a rule differs from itself: %+v", r.exprs)
		}
	})
}

// TestRulesReadBackOnThisKernel applies a plan with limit rules and reads
// every chain back: as many rules as the plan and as google/nftables lists,
// with the same expressions, limits included, and the same once padded the
// way a MIPS kernel pads them.
func TestRulesReadBackOnThisKernel(t *testing.T) {
	_, c, p := appliedEveryField(t)
	lib, err := c.nc()
	if err != nil {
		t.Fatal(err)
	}
	limits, paddedRules := 0, 0
	for _, pc := range p.Chains {
		got, err := c.rules(p.Table, pc.Name)
		if err != nil {
			t.Fatalf("%s: %v", pc.Name, err)
		}
		want, err := lib.GetRules(table(p.Table), &nftables.Chain{Name: pc.Name, Table: table(p.Table)})
		if err != nil {
			t.Fatalf("%s by the library: %v", pc.Name, err)
		}
		if len(got) != len(pc.Rules) || len(want) != len(got) {
			t.Fatalf("%s: %d rules, library %d, plan %d", pc.Name, len(got), len(want), len(pc.Rules))
		}
		for i := range got {
			if len(got[i].exprs) != len(want[i].Exprs) {
				t.Fatalf("%s rule %d: %d expressions, library %d", pc.Name, i+1, len(got[i].exprs), len(want[i].Exprs))
			}
		}
		raw, err := c.dump(unix.NFT_MSG_GETRULE, unix.NFT_MSG_NEWRULE, wire(nil).Str(unix.NFTA_RULE_TABLE, p.Table).Str(unix.NFTA_RULE_CHAIN, pc.Name))
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range raw {
			pm := padLimits(t, m)
			if hasLimitPad(pm) {
				paddedRules++
			}
			r, ok := parseRule(pm)
			if !ok || !sameExprs(r.exprs, got[i].exprs) {
				t.Fatalf("%s rule %d padded as on MIPS reads %+v, want %+v", pc.Name, i+1, r.exprs, got[i].exprs)
			}
			for _, e := range r.exprs {
				if e.name == "limit" {
					limits++
				}
			}
		}
	}
	if limits == 0 || paddedRules != limits {
		t.Fatalf("%d limits read back, %d rules padded: everyField needs a limit rule (one per rule)", limits, paddedRules)
	}
	if d := c.Diff(p); d != "" {
		t.Fatalf("Diff right after the apply: %s", d)
	}
	// An empty chain lists no rules and no error, and so does an absent one
	// (the kernel's dump filter just matches nothing): Intact and Diff
	// look the chains up first.
	var b batch
	b.addChain(p.Table, "empty", unix.NF_INET_FORWARD, 7)
	if err := c.commit(&b); err != nil {
		t.Fatal(err)
	}
	if rs, err := c.rules(p.Table, "empty"); err != nil || len(rs) != 0 {
		t.Fatalf("empty chain: %d rules, %v", len(rs), err)
	}
	if rs, err := c.rules(p.Table, "nosuch"); err != nil || len(rs) != 0 {
		t.Fatalf("absent chain: %d rules, %v", len(rs), err)
	}
	b = batch{}
	b.delChain(p.Table, "empty")
	if err := c.commit(&b); err != nil {
		t.Fatal(err)
	}
	if !c.Intact(p) {
		t.Fatal("Intact false right after the apply")
	}
}

// padLimits puts an empty NFTA_LIMIT_PAD before the 64-bit attributes of
// every limit expression in a rule's attributes, as a MIPS kernel does.
func padLimits(t *testing.T, b []byte) []byte {
	t.Helper()
	rule, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rule {
		if attrType(r) != unix.NFTA_RULE_EXPRESSIONS {
			continue
		}
		elems, err := netlink.UnmarshalAttributes(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range elems {
			ex, err := netlink.UnmarshalAttributes(e.Data)
			if err != nil {
				t.Fatal(err)
			}
			if len(ex) < 2 || string(bytes.TrimRight(ex[0].Data, "\x00")) != "limit" {
				continue
			}
			for k, a := range ex {
				if attrType(a) != unix.NFTA_EXPR_DATA {
					continue
				}
				data, err := netlink.UnmarshalAttributes(a.Data)
				if err != nil {
					t.Fatal(err)
				}
				var out []netlink.Attribute
				for _, d := range data {
					if len(d.Data) == 8 {
						out = append(out, netlink.Attribute{Type: unix.NFTA_LIMIT_PAD})
					}
					out = append(out, d)
				}
				ex[k].Data, ex[k].Length = encAttrs(t, out...), 0
			}
			elems[j].Data, elems[j].Length = encAttrs(t, ex...), 0
		}
		rule[i].Data, rule[i].Length = encAttrs(t, elems...), 0
	}
	return encAttrs(t, rule...)
}

// attrType is an attribute's type without the nested and byte-order flags.
func attrType(a netlink.Attribute) uint16 {
	return a.Type &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
}
