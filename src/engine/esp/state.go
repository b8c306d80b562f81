package esp

import (
	"net/netip"
	"time"
)

// Surviving a restart. Nothing in the kernel describes the engine's SAs (the
// flows are untracked), and relearning them from traffic after a restart is
// exactly the ambiguous case: every client of a server is "learning" at once
// and no IKE is exchanged to tell them apart. So the engine saves its tables
// (never per packet: at most once a second, and only after a learning,
// expiry or new IKE SPI) and a new engine restores them before it binds its
// queue.

// StateVersion is the version of Snapshot's format.
const StateVersion = 1

// Snapshot is the tables in a form that survives the process.
type Snapshot struct {
	Version int         `json:"version"`
	BootID  string      `json:"boot_id"` // a snapshot of another boot is ignored
	NetNS   string      `json:"netns"`   // and one of another network namespace
	Saved   time.Time   `json:"saved"`
	SAs     []SavedSA   `json:"sas"`
	IKE     []SavedIKE  `json:"ike"`
	Pairs   []SavedPair `json:"pairs"`
}

// SavedSA is one SA; a zero SPI is one not learned yet.
type SavedSA struct {
	Client string `json:"client"`
	Server string `json:"server"`
	WAN    string `json:"wan"`
	Out    uint32 `json:"spi_out"`
	In     uint32 `json:"spi_in"`
	Age    int64  `json:"age_s"`
	Idle   int64  `json:"idle_s"`
	// Rekeyed: a newer SA of the same pair replaced it.
	Rekeyed bool `json:"rekeyed,omitempty"`
	// Provisional: its inbound SPI awaits the timing evidence (doc.go).
	Provisional bool `json:"provisional,omitempty"`
}

// SavedIKE maps an IKE SPI with a server to a client.
type SavedIKE struct {
	Client string `json:"client"`
	Server string `json:"server"`
	SPI    uint64 `json:"spi"`
	Idle   int64  `json:"idle_s"`
}

// SavedPair is what the IKE NAT needs of a client-server pair.
type SavedPair struct {
	Client     string `json:"client"`
	Server     string `json:"server"`
	WAN        string `json:"wan,omitempty"`
	ClientPort uint16 `json:"ike_client_port,omitempty"`
	WANPort    uint16 `json:"ike_wan_port,omitempty"`
	UserNAT    bool   `json:"ike_user_nat,omitempty"`
}

// Dirty reports whether the tables changed in a way worth saving since the
// last Snapshot.
func (t *Tracker) Dirty() bool { return t.dirty }

// Snapshot returns the tables and clears Dirty.
func (t *Tracker) Snapshot(now time.Duration, wall time.Time, bootID string) Snapshot {
	t.dirty = false
	s := Snapshot{Version: StateVersion, BootID: bootID, Saved: wall.UTC(), SAs: []SavedSA{}, IKE: []SavedIKE{}, Pairs: []SavedPair{}}
	for _, p := range t.pairs {
		sp := SavedPair{Client: p.client.String(), Server: p.server.String(), ClientPort: p.ikeClientPort,
			WANPort: p.ikeWANPort, UserNAT: p.ikeUserNAT}
		if p.wan != 0 {
			sp.WAN = p.wan.String()
		}
		s.Pairs = append(s.Pairs, sp)
		for _, a := range p.sas {
			s.SAs = append(s.SAs, SavedSA{Client: p.client.String(), Server: p.server.String(), WAN: a.wan.String(),
				Out: a.out, In: a.in, Age: int64((now - a.created) / time.Second),
				Idle: int64((now - a.lastUsed()) / time.Second), Rekeyed: a.rekeyedAt != 0, Provisional: a.provisional})
		}
	}
	for k, e := range t.ikeSPIs {
		s.IKE = append(s.IKE, SavedIKE{Client: e.pair.client.String(), Server: k.server.String(), SPI: k.spi,
			Idle: int64((now - e.lastSeen) / time.Second)})
	}
	return s
}

// Restore loads a snapshot taken offline seconds ago into the tables,
// skipping what has expired meanwhile and anything that conflicts with an
// entry already present. It returns the number of SAs restored.
func (t *Tracker) Restore(s Snapshot, now time.Duration, offline time.Duration) int {
	if offline < 0 {
		offline = 0
	}
	addr := func(s string) (ip4, bool) {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return 0, false
		}
		return ip4Of(a), true
	}
	pairOf := func(client, server string) *pair {
		c, ok1 := addr(client)
		v, ok2 := addr(server)
		if !ok1 || !ok2 {
			return nil
		}
		return t.getPair(c, v, now)
	}
	// An idle time on the saved clock, moved to ours.
	at := func(idle int64) (time.Duration, bool) {
		d := time.Duration(idle)*time.Second + offline
		return now - d, d <= t.opt.IdleTimeout
	}
	n := 0
	for _, sa0 := range s.SAs {
		last, fresh := at(sa0.Idle)
		if !fresh || (sa0.Out == 0 && sa0.In == 0) {
			continue
		}
		p := pairOf(sa0.Client, sa0.Server)
		w, okW := addr(sa0.WAN)
		if p == nil || !okW {
			continue
		}
		if sa0.Out != 0 && t.out[outKey{p.client, p.server, sa0.Out}] != nil {
			continue
		}
		if sa0.In != 0 && t.in[inKey{p.server, sa0.In}] != nil {
			continue
		}
		if !t.roomSA(p.client, now) {
			break
		}
		a := &sa{pair: p, out: sa0.Out, in: sa0.In, wan: w, created: now - time.Duration(sa0.Age)*time.Second - offline,
			lastOut: last, lastIn: last}
		if a.created > last {
			a.created = last
		}
		if a.out != 0 && a.in != 0 {
			a.complete = last
		}
		if sa0.Rekeyed {
			a.rekeyedAt = last
		}
		a.provisional = sa0.Provisional && a.in != 0 && a.out != 0
		p.sas = append(p.sas, a)
		if a.out != 0 {
			t.out[outKey{p.client, p.server, a.out}] = a
			if a.in == 0 {
				t.listPending(p)
			}
		}
		if a.in != 0 {
			t.in[inKey{p.server, a.in}] = a
		}
		t.countSA(p.client, 1)
		p.wan = w
		p.lastSeen = max(p.lastSeen, last)
		// What it had learned before stays learned: only a new exchange
		// or SPI makes the pair a candidate again.
		p.learnedAt = now
		n++
	}
	for _, sp := range s.Pairs {
		p := t.pairs[pairKeyOf(sp.Client, sp.Server)]
		if p == nil {
			continue
		}
		p.ikeClientPort, p.ikeWANPort, p.ikeUserNAT = sp.ClientPort, sp.WANPort, sp.UserNAT
		if w, ok := addr(sp.WAN); ok && p.wan == 0 {
			p.wan = w
		}
	}
	for _, e := range s.IKE {
		last, fresh := at(e.Idle)
		v, ok := addr(e.Server)
		if !fresh || !ok || e.SPI == 0 {
			continue
		}
		k := ikeKey{v, e.SPI}
		if t.ikeSPIs[k] != nil || len(t.ikeSPIs) >= 2*t.opt.MaxSAs {
			continue
		}
		p := pairOf(e.Client, e.Server)
		if p == nil {
			continue
		}
		t.ikeSPIs[k] = &ikeEntry{pair: p, lastSeen: last}
		p.ikeSPIs++
		p.lastSeen = max(p.lastSeen, last)
		p.lastIKE = max(p.lastIKE, last)
		if p.ikeSPI == 0 {
			p.ikeSPI = e.SPI
		}
	}
	// Pairs created for entries that were then skipped go with the next
	// expiry; nothing else refers to them.
	t.dirty = false
	return n
}

func pairKeyOf(client, server string) pairKey {
	c, err1 := netip.ParseAddr(client)
	s, err2 := netip.ParseAddr(server)
	if err1 != nil || err2 != nil || !c.Is4() || !s.Is4() {
		return pairKey{}
	}
	return pairKey{ip4Of(c), ip4Of(s)}
}
