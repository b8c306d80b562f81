package nft

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// libBatch runs f against a google/nftables connection that talks to no
// kernel and returns the messages its Flush sends, without the batch begin
// and end.
func libBatch(t *testing.T, f func(c *nftables.Conn)) []netlink.Message {
	t.Helper()
	var sent []netlink.Message
	c, err := nftables.New(nftables.WithTestDial(func(reqs []netlink.Message) ([]netlink.Message, error) {
		if len(reqs) == 0 {
			return nil, io.EOF
		}
		var acks []netlink.Message
		for _, r := range reqs {
			if r.Header.Type == netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN) || r.Header.Type == netlink.HeaderType(unix.NFNL_MSG_BATCH_END) {
				continue
			}
			sent = append(sent, r)
			acks = append(acks, netlink.Message{Header: netlink.Header{Type: netlink.Error, Sequence: r.Header.Sequence}, Data: make([]byte, 4)})
		}
		return acks, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	f(c)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	return sent
}

// sameMessages compares our batch with the library's message by message:
// type, flags (but NLM_F_ECHO, which we leave out of rule adds) and bytes.
func sameMessages(t *testing.T, where string, ours *batch, lib []netlink.Message) {
	t.Helper()
	if len(ours.msgs) != len(lib) {
		t.Fatalf("%s: %d messages, library %d", where, len(ours.msgs), len(lib))
	}
	for i, m := range ours.msgs {
		l := lib[i]
		if m.Type != uint16(l.Header.Type) || m.Flags != uint16(l.Header.Flags)&^unix.NLM_F_ECHO || !bytes.Equal(m.Data, l.Data) {
			t.Fatalf("%s: message %d:\n ours type %#x flags %#x %x\n  lib type %#x flags %#x %x", where, i+1,
				m.Type, m.Flags, m.Data, l.Header.Type, l.Header.Flags, l.Data)
		}
	}
}

// libApply is what Apply sent through google/nftables for p over cur.
func libApply(t *testing.T, p *plan.Plan, cur installed) []netlink.Message {
	return libBatch(t, func(nc *nftables.Conn) {
		tb := table(p.Table)
		nc.AddTable(tb)
		want := map[string]plan.Chain{}
		for _, c := range p.Chains {
			want[c.Name] = c
		}
		for _, ch := range cur.chains {
			lc := &nftables.Chain{Name: ch.name, Table: tb}
			nc.FlushChain(lc)
			if c, ok := want[ch.name]; !ok || !sameHook(ch, c) {
				nc.DelChain(lc)
			}
		}
		specs, _, err := setSpecs(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range cur.sets {
			if ws, ok := specs[s.name]; !ok || !sameSet(s, ws) {
				nc.DelSet(&nftables.Set{Table: tb, Name: s.name})
			}
		}
		sets := map[string]*nftables.Set{}
		for i, s := range p.Sets {
			ns := &nftables.Set{Table: tb, Name: s.Name, ID: uint32(i + 1)}
			var elems []nftables.SetElement
			switch s.Type {
			case "ifname":
				ns.KeyType, ns.KeyByteOrder = nftables.TypeIFName, binaryutil.NativeEndian
				for _, e := range s.Elements {
					elems = append(elems, nftables.SetElement{Key: ifname(e)})
				}
			case "ipv4_addr":
				ns.KeyType = nftables.TypeIPAddr
				for _, e := range s.Elements {
					a, err := parseIPv4(e)
					if err != nil {
						t.Fatal(err)
					}
					elems = append(elems, nftables.SetElement{Key: a})
				}
			}
			if err := nc.AddSet(ns, nil); err != nil {
				t.Fatal(err)
			}
			nc.FlushSet(ns)
			if len(elems) > 0 {
				if err := nc.SetAddElements(ns, elems); err != nil {
					t.Fatal(err)
				}
			}
			sets[s.Name] = ns
		}
		for i, m := range p.Maps {
			ms, err := libMapSet(tb, m, uint32(len(p.Sets)+i+1))
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.AddSet(ms, nil); err != nil {
				t.Fatal(err)
			}
			sets[m.Name] = ms
		}
		wantObj := map[string]bool{}
		for _, name := range p.Counters {
			wantObj[objKey(unix.NFT_OBJECT_COUNTER, name)] = true
		}
		for _, h := range p.Helpers {
			wantObj[objKey(unix.NFT_OBJECT_CT_HELPER, h.Name)] = true
		}
		for _, o := range cur.objs {
			if !wantObj[objKey(o.typ, o.name)] {
				nc.DeleteObject(&nftables.NamedObj{Table: tb, Name: o.name, Type: nftables.ObjType(o.typ)})
			}
		}
		for _, name := range p.Counters {
			nc.AddObj(&nftables.NamedObj{Table: tb, Name: name, Type: nftables.ObjTypeCounter, Obj: &expr.Counter{}})
		}
		for _, h := range p.Helpers {
			l3 := uint16(unix.NFPROTO_INET)
			if h.L3IPv4 {
				l3 = unix.NFPROTO_IPV4
			}
			nc.AddObj(&nftables.NamedObj{Table: tb, Name: h.Name, Type: nftables.ObjTypeCtHelper,
				Obj: &expr.CtHelper{Name: h.Type, L3Proto: l3, L4Proto: uint8(h.L4)}})
		}
		for _, c := range p.Chains {
			hook, err := chainHook(c.Hook)
			if err != nil {
				t.Fatal(err)
			}
			h := nftables.ChainHook(hook)
			prio := nftables.ChainPriority(c.Priority)
			policy := nftables.ChainPolicyAccept
			ch := nc.AddChain(&nftables.Chain{Name: c.Name, Table: tb, Type: nftables.ChainTypeFilter,
				Hooknum: &h, Priority: &prio, Policy: &policy})
			for _, r := range c.Rules {
				exprs, err := ruleExprs(r, func(name string) *nftables.Set { return sets[name] }, p.QueueCompat)
				if err != nil {
					t.Fatal(err)
				}
				nc.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: exprs, UserData: libComment(r.Comment)})
			}
		}
	})
}

// TestBatchMatchesLibrary: the apply batch of every plan of the system
// test (and its guard), over an empty table and over one with stale and
// moved objects, is the very bytes google/nftables sent for the same
// transaction (the encoding the kernel tests and the labs proved), but
// NLM_F_ECHO. So are element adds and deletes.
func TestBatchMatchesLibrary(t *testing.T) {
	stale := installed{
		chains: []chainInfo{{name: "gone", hooked: true, hook: unix.NF_INET_FORWARD}, {name: "forward", hooked: true, hook: unix.NF_INET_LOCAL_IN}},
		sets:   []setInfo{{name: "oldset", keyType: typeIPv4Addr, keyLen: 4}},
		objs:   []objInfo{{name: "oldcounter", typ: unix.NFT_OBJECT_COUNTER}, {name: "oldhelper", typ: unix.NFT_OBJECT_CT_HELPER}},
	}
	n := 0
	for name, p := range plans(t) {
		for _, pl := range []*plan.Plan{p, p.Guard()} {
			if pl == nil || pl.Empty() {
				continue
			}
			for i, cur := range []installed{{}, stale} {
				ours, err := planBatch(pl, cur)
				if err != nil {
					t.Fatal(err)
				}
				sameMessages(t, fmt.Sprintf("%s state %d", name, i), ours, libApply(t, pl, cur))
				n += len(ours.msgs)
			}
		}
	}
	if n < 200 {
		t.Fatalf("only %d messages compared", n)
	}
	t.Logf("%d messages compared", n)

	els := []engine.Element{{Key: []byte{10, 0, 0, 1, 0, 0, 0, 7}, Val: []byte{192, 0, 2, 9}}, {Key: []byte{10, 0, 0, 2, 0, 0, 0, 8}}}
	var ours batch
	ours.elements(unix.NFT_MSG_NEWSETELEM, "t", "m", 0, els)
	ours.elements(unix.NFT_MSG_DELSETELEM, "t", "m", 0, els)
	lib := libBatch(t, func(c *nftables.Conn) {
		s := &nftables.Set{Name: "m", Table: table("t")}
		var le []nftables.SetElement
		for _, e := range els {
			le = append(le, nftables.SetElement{Key: e.Key, Val: e.Val})
		}
		if err := c.SetAddElements(s, le); err != nil {
			t.Fatal(err)
		}
		if err := c.SetDeleteElements(s, le); err != nil {
			t.Fatal(err)
		}
	})
	sameMessages(t, "elements", &ours, lib)
}
