package plan

import (
	"fmt"
	"strings"
)

// Field is one packet or meta field that map keys and values are built
// from. Each has a fixed width, the nft datatype the kernel stores it as,
// and the nft expression that loads it (src/nft encodes the same load).
type Field uint8

const (
	FieldNone    Field = iota
	FieldIPSaddr       // ip saddr
	FieldIPDaddr       // ip daddr
	// FieldSPIHi and FieldSPILo are the two halves of the ESP SPI (RFC
	// 4303: the first 4 bytes of ESP), loaded as `th sport` and `th
	// dport`: nft (1.0.6) can list a concatenated key only if every field
	// has a named type of known size, and for 16-bit transport fields that
	// is inet_service. A 32-bit `esp spi` is a plain integer: a map made
	// through netlink with it makes `nft list` abort.
	FieldSPIHi
	FieldSPILo
	FieldMetaOIF // meta oif (interface index)
	// FieldGREKey is the low half of an enhanced GRE key (RFC 2637 4.1:
	// the peer's Call ID), bytes 6-7 of the GRE header, as `@th,48,16`
	// (nft has no name for it). Typed inet_service in maps: a 16-bit type
	// nft can list in a concatenation.
	FieldGREKey
)

// FieldInfo describes a Field for the renderer and the encoder.
type FieldInfo struct {
	Expr     string // nft expression
	Datatype string // nft datatype name (map type lines)
	Len      uint32 // bytes
	// Base and Offset locate a payload field: "network" or "transport"
	// header; Base "" is a meta key (FieldMetaOIF).
	Base   string
	Offset uint32
}

var fields = map[Field]FieldInfo{
	FieldIPSaddr: {Expr: "ip saddr", Datatype: "ipv4_addr", Len: 4, Base: "network", Offset: 12},
	FieldIPDaddr: {Expr: "ip daddr", Datatype: "ipv4_addr", Len: 4, Base: "network", Offset: 16},
	FieldSPIHi:   {Expr: "th sport", Datatype: "inet_service", Len: 2, Base: "transport", Offset: 0},
	FieldSPILo:   {Expr: "th dport", Datatype: "inet_service", Len: 2, Base: "transport", Offset: 2},
	FieldMetaOIF: {Expr: "meta oif", Datatype: "iface_index", Len: 4},
	FieldGREKey:  {Expr: "@th,48,16", Datatype: "inet_service", Len: 2, Base: "transport", Offset: 6},
}

// Info returns what the renderer and encoder need to know about f.
func (f Field) Info() FieldInfo { return fields[f] }

func (f Field) String() string { return fields[f].Expr }

// Key is a concatenation of fields (one field: no concatenation).
type Key []Field

func (k Key) String() string {
	s := make([]string, len(k))
	for i, f := range k {
		s[i] = f.String()
	}
	return strings.Join(s, " . ")
}

func (k Key) datatypes() string {
	s := make([]string, len(k))
	for i, f := range k {
		s[i] = f.Info().Datatype
	}
	return strings.Join(s, " . ")
}

// Map is a named nftables map (Data set) or set (Data FieldNone) whose
// elements an engine adds and deletes at run time: the kernel data plane.
// Apply creates it empty and never flushes it, so what an engine
// programmed survives reloads and daemon restarts (the kernel is the source
// of truth; the engine reads it back on start).
type Map struct {
	Name    string
	Engine  string // the engine that owns the elements ("esp", "pptp", "wan")
	Key     Key
	Data    Field
	Counter bool // per-element packet and byte counters
}

// IsMap reports whether elements carry a value.
func (m Map) IsMap() bool { return m.Data != FieldNone }

// Type is the map's type line, as the renderer writes it and nft lists it.
func (m Map) Type() string {
	s := "type " + m.Key.datatypes()
	if m.IsMap() {
		s += " : " + m.Data.Info().Datatype
	}
	return s
}

// KeyLen is the key's length in the kernel: each field takes a whole
// number of 32-bit registers.
func (k Key) KeyLen() uint32 {
	var n uint32
	for _, f := range k {
		n += (f.Info().Len + 3) &^ 3
	}
	return n
}

// KeyMatch is a rule's set lookup on a (concatenated) key:
// `ip saddr . ip daddr . esp spi @set`.
type KeyMatch struct {
	Key Key
	Set string
}

func (m KeyMatch) String() string { return fmt.Sprintf("%s @%s", m.Key, m.Set) }

// MapStmt writes a field from a map lookup: `ip daddr set ip saddr . esp
// spi map @m` (the SPI as its two halves, see FieldSPIHi). If the map has no element for the key, the rule stops there
// (no later statement runs), so the next rule sees the packet untouched.
type MapStmt struct {
	Dst Field // FieldIPSaddr or FieldIPDaddr (checksums fixed by the kernel)
	Key Key
	Map string
}

func (m MapStmt) String() string { return fmt.Sprintf("%s set %s map @%s", m.Dst, m.Key, m.Map) }

// Decl is the map's declaration line as the renderer writes it: its Type,
// or where a field has no nft datatype of its own (FieldGREKey, a raw
// payload field nft reads as a plain integer) a typeof line, which nft
// accepts from text. The kernel object is the same either way except for
// nft's userdata: nft lists a map made through netlink by its Type.
func (m Map) Decl() string {
	raw := false
	for _, f := range append(append(Key{}, m.Key...), m.Data) {
		raw = raw || f == FieldGREKey
	}
	if !raw {
		return m.Type()
	}
	s := "typeof " + m.Key.String()
	if m.IsMap() {
		s += " : " + m.Data.String()
	}
	return s
}

// Map returns the plan's map by name.
func (p *Plan) Map(name string) (Map, bool) {
	for _, m := range p.Maps {
		if m.Name == name {
			return m, true
		}
	}
	return Map{}, false
}
