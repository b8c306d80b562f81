package esp

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// The kernel data plane's side of the tracker (pure: the Engine does the
// netlink I/O). A complete SA (both SPIs known) is programmed as one element
// in each of the plan's maps (src/plan userspace_esp.go):
//
//	esp_in:  server . SPI-in  : client   (inbound demultiplexing)
//	esp_out: client . server . SPI-out   (outbound SNAT to the WAN address)
//
// Half-learned SAs stay out of the maps, so their packets keep reaching the
// engine: that is the evidence learning needs. The element counters are the
// SA's kernel traffic; a counter that moved keeps the SA from expiring.

// Key layouts in the kernel: each concatenated field takes 4 bytes, and the
// SPI is two 16-bit halves (plan.FieldSPIHi/Lo), each padded to 4 bytes.
const (
	inKeyLen  = 12
	outKeyLen = 16
)

func putSPI(b []byte, spi uint32) {
	binary.BigEndian.PutUint16(b[0:], uint16(spi>>16))
	binary.BigEndian.PutUint16(b[4:], uint16(spi))
}

func getSPI(b []byte) uint32 {
	return uint32(binary.BigEndian.Uint16(b[0:]))<<16 | uint32(binary.BigEndian.Uint16(b[4:]))
}

// InElemKey is the esp_in key of (server, spi).
func InElemKey(server netip.Addr, spi uint32) []byte {
	b := make([]byte, inKeyLen)
	a := server.As4()
	copy(b, a[:])
	putSPI(b[4:], spi)
	return b
}

// OutElemKey is the esp_out key of (client, server, spi).
func OutElemKey(client, server netip.Addr, spi uint32) []byte {
	b := make([]byte, outKeyLen)
	c, s := client.As4(), server.As4()
	copy(b, c[:])
	copy(b[4:], s[:])
	putSPI(b[8:], spi)
	return b
}

// KernelIn is one esp_in element as read back.
type KernelIn struct {
	Server, Client netip.Addr
	SPI            uint32
	Packets, Bytes uint64
}

// KernelOut is one esp_out element as read back.
type KernelOut struct {
	Client, Server netip.Addr
	SPI            uint32
	Packets, Bytes uint64
}

// ParseInElem decodes an esp_in element; ok is false for a malformed one.
func ParseInElem(key, val []byte) (KernelIn, bool) {
	if len(key) != inKeyLen || len(val) != 4 {
		return KernelIn{}, false
	}
	return KernelIn{Server: netip.AddrFrom4([4]byte(key[:4])), SPI: getSPI(key[4:]),
		Client: netip.AddrFrom4([4]byte(val))}, true
}

// ParseOutElem decodes an esp_out element.
func ParseOutElem(key []byte) (KernelOut, bool) {
	if len(key) != outKeyLen {
		return KernelOut{}, false
	}
	return KernelOut{Client: netip.AddrFrom4([4]byte(key[:4])), Server: netip.AddrFrom4([4]byte(key[4:8])),
		SPI: getSPI(key[8:])}, true
}

// Programmed is what the maps should hold: one entry per complete SA.
type Programmed struct {
	Client, Server netip.Addr
	In, Out        uint32
}

// Desired lists the elements the maps should hold now. Provisional SAs
// stay out: their packets are the evidence that confirms or moves them.
func (t *Tracker) Desired() []Programmed {
	out := make([]Programmed, 0, t.nsa)
	for _, p := range t.pairs {
		for _, s := range p.sas {
			if s.in != 0 && s.out != 0 && !s.provisional {
				out = append(out, Programmed{Client: p.client.Addr(), Server: p.server.Addr(), In: s.in, Out: s.out})
			}
		}
	}
	return out
}

// Servers lists the servers LAN clients use (esp_servers): the kernel drops
// unmarked ESP from them to a WAN address, which the engine would drop as
// an unknown SPI, also while no engine runs.
func (t *Tracker) Servers() []netip.Addr {
	out := make([]netip.Addr, 0, len(t.servers))
	for a := range t.servers {
		out = append(out, a.Addr())
	}
	return out
}

// KernelSync takes the maps' contents as read back (wan: the address adopted
// SAs use, the engine's WAN address). Elements of SAs the
// tracker knows update their counters (a counter that moved is traffic:
// the SA is in use); with adopt, elements the tracker does not know (a
// previous run's, after a crash or an upgrade) become SAs, so the kernel,
// which kept forwarding them, stays the source of truth. It returns the
// elements that belong to no SA (to delete when not adopting).
func (t *Tracker) KernelSync(ins []KernelIn, outs []KernelOut, adopt bool, wan netip.Addr, now time.Duration) (staleIn []KernelIn, staleOut []KernelOut) {
	var kin, kout, kbin, kbout uint64
	for _, e := range ins {
		s := t.in[inKey{ip4Of(e.Server), e.SPI}]
		if s == nil && adopt {
			s = t.adopt(e.Client, e.Server, e.SPI, 0, wan, now)
		}
		if s == nil || s.pair.client != ip4Of(e.Client) {
			staleIn = append(staleIn, e)
			continue
		}
		if e.Packets > s.kPktsIn {
			s.lastIn = now
		}
		s.kPktsIn, s.kBytesIn = e.Packets, e.Bytes
		kin += e.Packets
		kbin += e.Bytes
	}
	for _, e := range outs {
		s := t.out[outKey{ip4Of(e.Client), ip4Of(e.Server), e.SPI}]
		if s == nil && adopt {
			s = t.adopt(e.Client, e.Server, 0, e.SPI, wan, now)
		}
		if s == nil {
			staleOut = append(staleOut, e)
			continue
		}
		if e.Packets > s.kPktsOut {
			s.lastOut = now
		}
		s.kPktsOut, s.kBytesOut = e.Packets, e.Bytes
		kout += e.Packets
		kbout += e.Bytes
	}
	t.st.KernelIn, t.st.KernelOut = kin, kout
	t.st.KernelBytesIn, t.st.KernelBytesOut = kbin, kbout
	t.st.Elements = uint64(len(ins) + len(outs))
	return staleIn, staleOut
}

// adopt makes an SA from a kernel element: it completes the pair's SA that
// lacks this half (the other element of the same SA, adopted just before)
// or starts one. Adopted SAs count as established by the kernel's word.
func (t *Tracker) adopt(client, server netip.Addr, in, out uint32, wan netip.Addr, now time.Duration) *sa {
	if !client.Is4() || !server.Is4() {
		return nil
	}
	p := t.getPair(ip4Of(client), ip4Of(server), now)
	if p == nil {
		return nil
	}
	var s *sa
	if in != 0 {
		s = p.newest(func(s *sa) bool { return s.in == 0 && s.adopted })
	} else {
		s = p.newest(func(s *sa) bool { return s.out == 0 && s.adopted })
	}
	if s == nil {
		if !t.roomSA(p.client, now) {
			return nil
		}
		s = &sa{pair: p, created: now, lastIn: now, lastOut: now, adopted: true}
		if wan.Is4() {
			s.wan = ip4Of(wan)
			p.wan = s.wan
		}
		p.sas = append(p.sas, s)
		t.countSA(p.client, 1)
	}
	if in != 0 {
		s.in = in
		t.in[inKey{p.server, in}] = s
	} else {
		s.out = out
		t.out[outKey{p.client, p.server, out}] = s
	}
	if s.in != 0 && s.out != 0 {
		s.complete = now
	}
	p.learnedAt = now
	p.lastSeen = now
	t.dirty = true
	t.st.Adopted++
	return s
}
