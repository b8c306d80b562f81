package nft

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestWireMatchesLibrary: ruleWire encodes every rule of the system test's
// plans (and their guard tables), with the native queue expression and the
// xtables NFQUEUE target, to the very bytes google/nftables sends for
// ruleExprs' expressions: the kernel-tested encoding, so the library can
// be replaced without a change on the wire.
func TestWireMatchesLibrary(t *testing.T) {
	rules := 0
	for name, p := range plans(t) {
		for _, q := range []*struct{ p, guard bool }{{p: true}, {guard: true}} {
			pl := p
			if q.guard {
				pl = p.Guard()
				if pl == nil {
					continue
				}
			}
			ids := map[string]uint32{}
			for i, s := range pl.Sets {
				ids[s.Name] = uint32(i + 1)
			}
			for i, m := range pl.Maps {
				ids[m.Name] = uint32(len(pl.Sets) + i + 1)
			}
			lib := func(n string) *nftables.Set {
				id, ok := ids[n]
				if !ok {
					return nil
				}
				return &nftables.Set{Name: n, ID: id}
			}
			ours := func(n string) (uint32, bool) { id, ok := ids[n]; return id, ok }
			for _, compat := range []bool{false, true} {
				for _, c := range pl.Chains {
					for i, r := range c.Rules {
						where := fmt.Sprintf("%s guard=%v compat=%v chain %s rule %d (%s)", name, q.guard, compat, c.Name, i+1, r)
						exprs, err := ruleExprs(r, lib, compat)
						if err != nil {
							t.Fatalf("%s: ruleExprs: %v", where, err)
						}
						var want []byte
						for _, e := range exprs {
							b, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
							if err != nil {
								t.Fatalf("%s: marshal %T: %v", where, e, err)
							}
							elem, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b}})
							if err != nil {
								t.Fatal(err)
							}
							want = append(want, elem...)
						}
						got, err := ruleWire(r, ours, compat)
						if err != nil {
							t.Fatalf("%s: ruleWire: %v", where, err)
						}
						if !bytes.Equal(got, want) {
							t.Errorf("%s:\n got %x\nwant %x", where, []byte(got), want)
						}
						rules++
					}
				}
			}
		}
	}
	if rules < 100 {
		t.Errorf("only %d rules compared", rules)
	}
	t.Logf("%d rules compared", rules)
}

func TestWireUnknownSet(t *testing.T) {
	for name, p := range plans(t) {
		for _, c := range p.Chains {
			for _, r := range c.Rules {
				if r.IIFSet == "" && r.KeyMatch == nil && r.MapSet == nil {
					continue
				}
				if _, err := ruleWire(r, func(string) (uint32, bool) { return 0, false }, false); err == nil {
					t.Errorf("%s %s: %s: no error for an unknown set", name, c.Name, r)
				}
				return
			}
		}
	}
}
