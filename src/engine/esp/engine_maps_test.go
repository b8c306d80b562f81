package esp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// memMaps is an in-memory engine.Maps (Add replaces, as src/nft does).
type memMaps struct {
	mu sync.Mutex
	m  map[string]map[string]engine.Element
}

func (f *memMaps) Add(name string, in []engine.Element) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m[name] == nil {
		f.m[name] = map[string]engine.Element{}
	}
	for _, e := range in {
		f.m[name][string(e.Key)] = e
	}
	return nil
}

func (f *memMaps) Delete(name string, keys [][]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.m[name], string(k))
	}
	return nil
}

func (f *memMaps) List(name string) ([]engine.Element, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.Element
	for _, e := range f.m[name] {
		out = append(out, e)
	}
	return out, nil
}

// The WAN device's address changes: esp_wan_src must hold the new address
// after one pass (it used to be replaced and then deleted again, leaving the
// device without SNAT until the next pass), and the first pass of a new
// engine never deletes (an address unreadable for a moment at start-up
// must not take established SAs' SNAT away).
func TestSyncWANReplacesAndFirstPassOnlyAdds(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo:", err)
	}
	idx := uint32(lo.Index)
	key := binary.NativeEndian.AppendUint32(nil, idx)
	addr := netip.MustParseAddr("198.51.100.1")
	fail := false
	maps := &memMaps{m: map[string]map[string]engine.Element{}}
	old := netip.MustParseAddr("198.51.100.7").As4()
	_ = maps.Add(plan.MapESPWANSrc, []engine.Element{{Key: key, Val: old[:]}})
	_ = maps.Add(plan.MapESPWANAddrs, []engine.Element{{Key: old[:]}})
	e := &Engine{log: discardLog(), maps: maps, wanDevs: []string{"lo"}, wan: map[uint32]netip.Addr{},
		addr: func(uint32) (netip.Addr, error) {
			if fail {
				return netip.Addr{}, net.UnknownNetworkError("no address yet")
			}
			return addr, nil
		}}
	src := func() netip.Addr {
		t.Helper()
		els, _ := maps.List(plan.MapESPWANSrc)
		if len(els) != 1 {
			return netip.Addr{}
		}
		return netip.AddrFrom4([4]byte(els[0].Val))
	}
	// First pass while the address cannot be read: nothing deleted.
	fail = true
	e.syncWAN()
	if got := src(); got != netip.AddrFrom4(old) {
		t.Fatalf("first pass left esp_wan_src %v, want the old %v kept", got, netip.AddrFrom4(old))
	}
	// The address is readable and differs: one pass replaces it.
	fail = false
	e.syncWAN()
	if got := src(); got != addr {
		t.Fatalf("esp_wan_src %v after one pass, want %v", got, addr)
	}
	if els, _ := maps.List(plan.MapESPWANAddrs); len(els) != 1 || netip.AddrFrom4([4]byte(els[0].Key)) != addr {
		t.Fatalf("esp_wan_addrs %v, want only %v", els, addr)
	}
	// Later passes delete what is really gone.
	fail = true
	e.syncWAN()
	if got := src(); got.IsValid() {
		t.Fatalf("esp_wan_src %v after the address went, want none", got)
	}
}
