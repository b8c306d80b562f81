package esp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// The Engine's netlink side of the kernel data plane (kernel.go has the
// pure part): it keeps the plan's maps equal to the tracker's complete SAs,
// reads the element counters back, adopts what a previous run left, and
// keeps the WAN maps (esp_wan_src, esp_wan_addrs) equal to the WAN
// devices' addresses, following rtnetlink address and link events.

// syncMaps reconciles esp_in and esp_out with the tracker. The first
// successful pass adopts elements the tracker does not know; later passes
// delete them (SAs that ended).
func (e *Engine) syncMaps() {
	if e.maps == nil {
		return
	}
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if e.setsOnly {
		e.mu.Lock()
		servers := e.tr.Servers()
		e.mu.Unlock()
		e.syncServers(servers)
		return
	}
	inEl, err1 := e.maps.List(plan.MapESPIn)
	if len(inEl) > bigTable {
		// Collect the first listing's garbage before the second one:
		// it halves the peak RSS of a pass over a big table.
		runtime.GC()
	}
	outEl, err2 := e.maps.List(plan.MapESPOut)
	if err1 != nil || err2 != nil {
		// Before the first apply the maps do not exist yet: retried on
		// the next pass (not an error then).
		if e.adopted {
			e.mapErr(err1, err2)
		}
		return
	}
	ins := make([]KernelIn, 0, len(inEl))
	inHave := make(map[string]netip.Addr, len(inEl))
	for _, el := range inEl {
		if k, ok := ParseInElem(el.Key, el.Val); ok {
			k.Packets, k.Bytes = el.Packets, el.Bytes
			ins = append(ins, k)
			inHave[string(el.Key)] = k.Client
		}
	}
	outs := make([]KernelOut, 0, len(outEl))
	outHave := make(map[string]bool, len(outEl))
	for _, el := range outEl {
		if k, ok := ParseOutElem(el.Key); ok {
			k.Packets, k.Bytes = el.Packets, el.Bytes
			outs = append(outs, k)
			outHave[string(el.Key)] = true
		}
	}
	e.mu.Lock()
	adopt := !e.adopted
	staleIn, staleOut := e.tr.KernelSync(ins, outs, adopt, e.primaryWANLocked(), e.now())
	want := e.tr.Desired()
	servers := e.tr.Servers()
	e.mu.Unlock()
	e.syncServers(servers)
	if adopt {
		e.adopted = true
		e.log.Info("esp engine: kernel maps read back", "esp_in", len(ins), "esp_out", len(outs),
			"not adopted", len(staleIn)+len(staleOut))
	}
	var delIn, delOut [][]byte
	for _, s := range staleIn {
		delIn = append(delIn, InElemKey(s.Server, s.SPI))
	}
	for _, s := range staleOut {
		delOut = append(delOut, OutElemKey(s.Client, s.Server, s.SPI))
	}
	var addIn, addOut []engine.Element
	for _, w := range want {
		k := InElemKey(w.Server, w.In)
		if c, ok := inHave[string(k)]; !ok || c != w.Client {
			c4 := w.Client.As4()
			addIn = append(addIn, engine.Element{Key: k, Val: c4[:]})
		}
		if k := OutElemKey(w.Client, w.Server, w.Out); !outHave[string(k)] {
			addOut = append(addOut, engine.Element{Key: k})
		}
	}
	e.mapErr(e.maps.Delete(plan.MapESPIn, delIn), e.maps.Delete(plan.MapESPOut, delOut))
	e.mapErr(e.maps.Add(plan.MapESPIn, addIn), e.maps.Add(plan.MapESPOut, addOut))
}

// syncServers makes esp_servers hold the servers LAN clients use. Adds go
// first: a new server's stray ESP is dropped as soon as possible.
func (e *Engine) syncServers(want []netip.Addr) {
	have, err := e.maps.List(plan.MapESPServers)
	if err != nil {
		e.mapErr(err)
		return
	}
	wantSet := make(map[netip.Addr]bool, len(want))
	for _, a := range want {
		wantSet[a] = true
	}
	haveSet := make(map[netip.Addr]bool, len(have))
	var del [][]byte
	for _, el := range have {
		if len(el.Key) != 4 {
			continue
		}
		a := netip.AddrFrom4([4]byte(el.Key))
		if !wantSet[a] {
			del = append(del, el.Key)
		}
		haveSet[a] = true
	}
	var add []engine.Element
	for _, a := range want {
		if !haveSet[a] {
			v := a.As4()
			add = append(add, engine.Element{Key: v[:]})
		}
	}
	e.mapErr(e.maps.Add(plan.MapESPServers, add), e.maps.Delete(plan.MapESPServers, del))
}

func (e *Engine) mapErr(errs ...error) {
	for _, err := range errs {
		if err == nil {
			continue
		}
		e.mu.Lock()
		e.mapErrors++
		logIt := time.Since(e.mapErrLogged) > 10*time.Second
		if logIt {
			e.mapErrLogged = time.Now()
		}
		e.mu.Unlock()
		if logIt {
			e.log.Warn("esp engine: kernel map update failed (retried every second)", "err", err)
		}
	}
}

// primaryWANLocked is the address adopted SAs are taken to use: the first
// WAN device's.
func (e *Engine) primaryWANLocked() netip.Addr {
	for _, name := range e.wanDevs {
		if l, err := nl.LinkByName(name); err == nil {
			if a, ok := e.wan[l.Index]; ok && a.Is4() {
				return a
			}
		}
	}
	return netip.Addr{}
}

// syncWAN makes esp_wan_src (device index : address) and esp_wan_addrs
// hold the WAN devices' current IPv4 addresses, and refreshes the packet
// path's address cache. It returns whether anything changed.
func (e *Engine) syncWAN() bool {
	want := map[uint32]netip.Addr{}
	e.mu.Lock()
	devs := e.wanDevs
	e.mu.Unlock()
	for _, name := range devs {
		l, err := nl.LinkByName(name)
		if err != nil {
			continue
		}
		if a, err := e.addr(l.Index); err == nil && a.Is4() {
			want[l.Index] = a
		}
	}
	e.mu.Lock()
	changed := false
	for i, a := range want {
		if e.wan[i] != a {
			e.wan[i] = a
			changed = true
		}
	}
	for i := range e.wan {
		if _, ok := want[i]; !ok && e.wan[i].IsValid() && e.isWANLocked(i) {
			e.wan[i] = netip.Addr{}
			changed = true
		}
	}
	e.mu.Unlock()
	if e.maps == nil {
		return changed
	}
	var src []engine.Element
	var err1 error
	if !e.setsOnly {
		src, err1 = e.maps.List(plan.MapESPWANSrc)
	}
	addrs, err2 := e.maps.List(plan.MapESPWANAddrs)
	if err1 != nil || err2 != nil {
		if e.wanReady {
			e.mapErr(err1, err2)
		}
		return changed
	}
	// The first pass (a new engine, before its queue is bound) only adds:
	// an address that cannot be read this instant (a device still coming
	// up) must not take the SNAT of established SAs from the kernel while
	// the maps are all that forwards them; the next pass, a second later,
	// deletes what is really gone.
	first := !e.wanReady
	e.wanReady = true
	wantAddr := map[netip.Addr]bool{}
	for _, a := range want {
		wantAddr[a] = true
	}
	var delSrc, delAddr [][]byte
	haveSrc := map[uint32]netip.Addr{}
	for _, el := range src {
		if len(el.Key) != 4 || len(el.Val) != 4 {
			continue
		}
		i := binary.NativeEndian.Uint32(el.Key)
		a := netip.AddrFrom4([4]byte(el.Val))
		if want[i] != a {
			if _, ok := want[i]; !ok {
				// Gone. A device with a new address is not deleted:
				// Add replaces its element (deleting the key after
				// that would take the new address away again).
				delSrc = append(delSrc, el.Key)
			}
			continue
		}
		haveSrc[i] = a
	}
	haveAddr := map[netip.Addr]bool{}
	for _, el := range addrs {
		if len(el.Key) != 4 {
			continue
		}
		a := netip.AddrFrom4([4]byte(el.Key))
		if !wantAddr[a] {
			delAddr = append(delAddr, el.Key)
			continue
		}
		haveAddr[a] = true
	}
	var addSrc, addAddr []engine.Element
	for i, a := range want {
		if haveSrc[i] != a {
			k := make([]byte, 4)
			binary.NativeEndian.PutUint32(k, i) // meta oif is host byte order
			v := a.As4()
			addSrc = append(addSrc, engine.Element{Key: k, Val: v[:]})
		}
		if !haveAddr[a] {
			v := a.As4()
			addAddr = append(addAddr, engine.Element{Key: v[:]})
		}
	}
	if e.setsOnly {
		addSrc, delSrc = nil, nil // no SNAT map on the fallback
	}
	if len(delSrc)+len(delAddr)+len(addSrc)+len(addAddr) > 0 {
		changed = true
		e.log.Info("esp engine: WAN addresses in the kernel maps", "addresses", len(want))
	}
	// Add before delete: a new address is usable before the old one goes.
	e.mapErr(e.maps.Add(plan.MapESPWANSrc, addSrc), e.maps.Add(plan.MapESPWANAddrs, addAddr))
	if first {
		return changed
	}
	e.mapErr(e.maps.Delete(plan.MapESPWANSrc, delSrc), e.maps.Delete(plan.MapESPWANAddrs, delAddr))
	return changed
}

func (e *Engine) isWANLocked(idx uint32) bool {
	for _, name := range e.wanDevs {
		if l, err := nl.LinkByName(name); err == nil && l.Index == idx {
			return true
		}
	}
	return false
}

// watchAddrs signals on ch whenever rtnetlink reports an IPv4 address or
// link change, until done is closed. It returns at once (no signals) if
// the socket cannot be opened; the once-a-second refresh still runs.
func watchAddrs(done <-chan struct{}, ch chan<- struct{}) error {
	c, err := nl.Dial(unix.NETLINK_ROUTE, 0)
	if err != nil {
		return err
	}
	for _, g := range []int{unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_LINK} {
		if err := c.JoinGroup(g); err != nil {
			c.Close()
			return err
		}
	}
	go func() { <-done; c.Close() }() // ends the blocked Receive below
	go func() {
		for {
			// ENOBUFS: events were lost; refresh all the same.
			if _, err := c.Receive(); err != nil && !errors.Is(err, unix.ENOBUFS) {
				return // closed, or broken: the once-a-second refresh runs on
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return nil
}
