package pptp

import (
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// batchMaps is fakeMaps with *nft.Maps' one-transaction calls.
type batchMaps struct {
	*fakeMaps
	addAlls, deleteAlls int
}

func (b *batchMaps) AddAll(names []string, in [][]engine.Element) error {
	b.addAlls++
	for i, n := range names {
		if err := b.Add(n, in[i]); err != nil {
			return err
		}
	}
	return nil
}

func (b *batchMaps) DeleteAll(names []string, keys [][][]byte) error {
	b.deleteAlls++
	for i, n := range names {
		if err := b.Delete(n, keys[i]); err != nil {
			return err
		}
	}
	return nil
}

// TestKernelDataPlaneOneTransaction: with maps that take several maps'
// elements at once, a new call's four elements go in one transaction and
// its three come out in one.
func TestKernelDataPlaneOneTransaction(t *testing.T) {
	c, m := &fakeCT{flows: map[ct.Tuple]ct.Flow{}}, &batchMaps{fakeMaps: newFakeMaps()}
	cfg := Config{}
	cfg.Maps = m
	h := newHarnessWith(t, cfg, func(o *Options) { o.Conntrack = c })
	f := h.flow(1, 40000)
	viewCall(t, h, c, f, 0x0102, 0x7001)
	if m.addAlls != 1 {
		t.Errorf("%d AddAll calls for one call, want 1", m.addAlls)
	}
	for _, name := range []string{plan.MapPPTPCalls, plan.MapPPTPDst, plan.MapPPTPKey, plan.MapPPTPWANAddrs} {
		if got := m.dump(name); len(got) != 1 {
			t.Errorf("%s: %v, want one element", name, got)
		}
	}
	f.out(ccrq(0x0102))
	if m.deleteAlls != 1 {
		t.Errorf("%d DeleteAll calls for one Call-Clear-Request, want 1", m.deleteAlls)
	}
	for _, name := range []string{plan.MapPPTPCalls, plan.MapPPTPDst, plan.MapPPTPKey} {
		if got := m.dump(name); len(got) != 0 {
			t.Errorf("%s after Call-Clear-Request: %v", name, got)
		}
	}
}
