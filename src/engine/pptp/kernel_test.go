package pptp

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// fakeMaps is the kernel's maps (engine.Maps) as plain data.
type fakeMaps struct {
	mu   sync.Mutex
	m    map[string]map[string]engine.Element
	adds int
	fail int // refuse this many more Adds (a table being repaired)
}

func newFakeMaps() *fakeMaps { return &fakeMaps{m: map[string]map[string]engine.Element{}} }

func (f *fakeMaps) Add(name string, els []engine.Element) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return fmt.Errorf("map %s: no such file or directory", name)
	}
	if f.m[name] == nil {
		f.m[name] = map[string]engine.Element{}
	}
	for _, e := range els {
		f.m[name][string(e.Key)] = e
		f.adds++
	}
	return nil
}

func (f *fakeMaps) Delete(name string, keys [][]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.m[name], string(k))
	}
	return nil
}

func (f *fakeMaps) List(name string) ([]engine.Element, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.Element
	for _, e := range f.m[name] {
		out = append(out, e)
	}
	return out, nil
}

// dump is a map's elements as sorted "key=val" hex strings.
func (f *fakeMaps) dump(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.m[name] {
		out = append(out, hex.EncodeToString(e.Key)+"="+hex.EncodeToString(e.Val))
	}
	sort.Strings(out)
	return out
}

// count sets the kernel counter of a call's guard element.
func (f *fakeMaps) count(key []byte, pkts uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.m[plan.MapPPTPCalls][string(key)]
	e.Packets, e.Bytes = pkts, 100*pkts
	f.m[plan.MapPPTPCalls][string(key)] = e
}

func newKernelHarness(t *testing.T, path string, c *fakeCT, m *fakeMaps) *harness {
	cfg := Config{}
	cfg.StatePath, cfg.Maps, cfg.IdleTimeout = path, m, time.Minute
	return newHarnessWith(t, cfg, func(o *Options) { o.Conntrack = c })
}

func TestKernelDataPlane(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pptp.json")
	c, m := &fakeCT{flows: map[ct.Tuple]ct.Flow{}}, newFakeMaps()
	h := newKernelHarness(t, path, c, m)
	f := h.flow(1, 40000)
	trans := viewCall(t, h, c, f, 0x0102, 0x7001)
	// 198.51.100.1 . 198.51.100.2 . trans, and the rewrites keyed by
	// server . trans: the client's address and its own Call ID.
	guard := fmt.Sprintf("c6336401c6336402%04x0000", trans)
	bySrv := fmt.Sprintf("c6336402%04x0000", trans)
	for name, want := range map[string]string{
		plan.MapPPTPCalls:    guard + "=",
		plan.MapPPTPDst:      bySrv + "=0a0a0102",
		plan.MapPPTPKey:      bySrv + "=0102",
		plan.MapPPTPWANAddrs: "c6336401=",
	} {
		if got := m.dump(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %v, want [%s]", name, got, want)
		}
	}
	// The kernel forwards: its counters reach the session table and keep
	// the call from expiring.
	key, _ := hex.DecodeString(guard)
	m.count(key, 5)
	h.now = h.now.Add(50 * time.Second)
	h.e.housekeeping()
	h.now = h.now.Add(50 * time.Second)
	m.count(key, 9)
	h.e.housekeeping()
	ss := h.e.Sessions()
	if len(ss) != 1 || ss[0].PacketsIn != 9 || ss[0].BytesIn != 900 {
		t.Fatalf("sessions %+v", ss)
	}
	if st := h.e.Stats(); st.KernelIn != 9 || st.Elements != 3 {
		t.Errorf("stats %+v", st)
	}
	// "SIGKILL": a new engine on the same state file and kernel maps
	// adopts the elements without adding them again.
	adds := m.adds
	h2 := newKernelHarness(t, path, c, m)
	if m.adds != adds {
		t.Errorf("restart added %d elements again", m.adds-adds)
	}
	if st := h2.e.Stats(); st.Elements != 3 || st.Detail["map_orphans"] != 0 {
		t.Errorf("stats after restart %+v", st)
	}
	// The call ends: its elements go.
	f.h = h2
	f.out(echoRq())
	f.out(ccrq(0x0102))
	for _, name := range []string{plan.MapPPTPCalls, plan.MapPPTPDst, plan.MapPPTPKey} {
		if got := m.dump(name); len(got) != 0 {
			t.Errorf("%s after Call-Clear-Request: %v", name, got)
		}
	}
}

func TestKernelOrphansExpire(t *testing.T) {
	c, m := &fakeCT{flows: map[ct.Tuple]ct.Flow{}}, newFakeMaps()
	// Elements of a call no state file knows (a lost file).
	key, _ := hex.DecodeString("c6336401c633640212340000")
	bySrv, _ := hex.DecodeString("c633640212340000")
	_ = m.Add(plan.MapPPTPCalls, []engine.Element{{Key: key}})
	_ = m.Add(plan.MapPPTPDst, []engine.Element{{Key: bySrv, Val: []byte{10, 10, 1, 2}}})
	_ = m.Add(plan.MapPPTPKey, []engine.Element{{Key: bySrv, Val: []byte{0, 1}}})
	h := newKernelHarness(t, "", c, m)
	if st := h.e.Stats(); st.Detail["map_orphans"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Traffic keeps it; a minute without ends it.
	h.now = h.now.Add(50 * time.Second)
	m.count(key, 3)
	h.e.housekeeping()
	h.now = h.now.Add(50 * time.Second)
	h.e.housekeeping()
	if len(m.dump(plan.MapPPTPCalls)) != 1 {
		t.Fatal("an orphan with traffic was removed")
	}
	h.now = h.now.Add(20 * time.Second)
	h.e.housekeeping()
	for _, name := range []string{plan.MapPPTPCalls, plan.MapPPTPDst, plan.MapPPTPKey} {
		if got := m.dump(name); len(got) != 0 {
			t.Errorf("%s after the orphan's idle timeout: %v", name, got)
		}
	}
}

func TestFallbackWANAddrsOnly(t *testing.T) {
	c, m := &fakeCT{flows: map[ct.Tuple]ct.Flow{}}, newFakeMaps()
	cfg := Config{WANAddrsOnly: true}
	cfg.Maps = m
	h := newHarnessWith(t, cfg, func(o *Options) { o.Conntrack = c })
	f := h.flow(1, 40000)
	viewCall(t, h, c, f, 1, 0x7001)
	if got := m.dump(plan.MapPPTPWANAddrs); len(got) != 1 || got[0] != "c6336401=" {
		t.Errorf("pptp_wan_addrs %v", got)
	}
	if got := m.dump(plan.MapPPTPCalls); len(got) != 0 {
		t.Errorf("GRE elements on the fallback: %v", got)
	}
	// A reload keeps the datapath; a repaired (emptied) set is refilled.
	if err := h.e.Update(Config{}); err != nil {
		t.Fatal(err)
	}
	_ = m.Delete(plan.MapPPTPWANAddrs, [][]byte{{198, 51, 100, 1}})
	h.now = h.now.Add(2 * time.Second)
	h.e.housekeeping()
	if got := m.dump(plan.MapPPTPWANAddrs); len(got) != 1 {
		t.Errorf("pptp_wan_addrs after a repair %v", got)
	}
	if got := m.dump(plan.MapPPTPCalls); len(got) != 0 || h.e.Stats().MapErrors != 0 {
		t.Errorf("after a reload: GRE elements %v, map errors %d", got, h.e.Stats().MapErrors)
	}
}

// TestKernelRetriesRefusedElements: a call whose elements were refused (our
// table deleted and not yet repaired when its Outgoing-Call-Reply came) is
// programmed at the next housekeeping, not left without GRE for good.
func TestKernelRetriesRefusedElements(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pptp.json")
	c, m := &fakeCT{flows: map[ct.Tuple]ct.Flow{}}, newFakeMaps()
	h := newKernelHarness(t, path, c, m)
	m.fail = 1
	f := h.flow(1, 40000)
	trans := viewCall(t, h, c, f, 0x0102, 0x7001)
	if got := m.dump(plan.MapPPTPCalls); len(got) != 0 {
		t.Fatalf("elements although the kernel refused them: %v", got)
	}
	h.now = h.now.Add(2 * time.Second)
	h.e.housekeeping()
	guard := fmt.Sprintf("c6336401c6336402%04x0000=", trans)
	if got := m.dump(plan.MapPPTPCalls); len(got) != 1 || got[0] != guard {
		t.Errorf("after housekeeping: %v, want [%s]", got, guard)
	}
}
