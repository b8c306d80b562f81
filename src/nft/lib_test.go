package nft

import (
	"encoding/binary"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// setLookup resolves a set name to the set object added in the same batch.
type setLookup func(name string) *nftables.Set

// This file is google/nftables' encoding of our rules and maps, which the
// daemon used until src/nft/netlink.go replaced the library: the reference
// the tests compare our own encoding and listings with (wire_test.go,
// maps_list_test.go).

// ruleExprs encodes a plan rule as nftables expressions, in the order the
// plan.Rule fields promise. It must stay in step with plan.Rule.String; the
// system test compares the two through the kernel.
func ruleExprs(r plan.Rule, sets setLookup, queueCompat bool) ([]expr.Any, error) {
	var e []expr.Any
	cmp := func(data []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }
	lookup := func(name string) (expr.Any, error) {
		s := sets(name)
		if s == nil {
			return nil, errorf("rule refers to unknown set %q", name)
		}
		return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID}, nil
	}
	if r.IPv4Only || r.SAddrSet != "" || r.DAddrSet != "" || r.GREv1 {
		e = append(e, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, cmp([]byte{unix.NFPROTO_IPV4}))
	}
	for _, a := range []struct {
		set    string
		offset uint32
	}{{r.SAddrSet, 12}, {r.DAddrSet, 16}} {
		if a.set == "" {
			continue
		}
		l, err := lookup(a.set)
		if err != nil {
			return nil, err
		}
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: a.offset, Len: 4}, l)
	}
	if r.GREv1 {
		// ip protocol gre, then the version bits of the GRE header's
		// second byte (RFC 2784 / RFC 2637 4.1).
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1},
			cmp([]byte{byte(plan.ProtoGRE)}),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 1, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x07}, Xor: []byte{0x00}},
			cmp([]byte{0x01}))
	}
	if r.GREPPTP {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{0xef, 0x7f, 0xff, 0xff}, Xor: make([]byte, 4)},
			cmp([]byte{0x20, 0x01, 0x88, 0x0b}))
	}
	if r.L4 != plan.ProtoAny {
		e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmp([]byte{byte(r.L4)}))
	}
	if r.SPort != 0 {
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			cmp(binaryutil.BigEndian.PutUint16(r.SPort)))
	}
	if r.DPort != 0 {
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			cmp(binaryutil.BigEndian.PutUint16(r.DPort)))
	}
	// Device-set lookups come after the cheap protocol and port compares:
	// most forwarded packets are not VPN traffic and fail those first.
	if r.IIFSet != "" {
		l, err := lookup(r.IIFSet)
		if err != nil {
			return nil, err
		}
		e = append(e, &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, l)
	}
	if r.OIFSet != "" {
		l, err := lookup(r.OIFSet)
		if err != nil {
			return nil, err
		}
		l.(*expr.Lookup).Invert = r.OIFNot
		e = append(e, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, l)
	}
	if r.KeyMatch != nil {
		l, err := lookup(r.KeyMatch.Set)
		if err != nil {
			return nil, err
		}
		k, err := keyLoad(r.KeyMatch.Key)
		if err != nil {
			return nil, err
		}
		e = append(append(e, k...), l)
	}
	if r.Untracked {
		// ct state is a host-order bitmask; nft tests the bit is set.
		e = append(e,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitUNTRACKED), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)})
	}
	if r.CtState != 0 {
		e = append(e,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(r.CtState), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)})
	}
	if r.NotNAT {
		e = append(e,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(ctStatusSNAT | ctStatusDNAT), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)})
	}
	if r.NotDNAT {
		// ct status is host order too; the port-forward bit is clear.
		e = append(e,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(ctStatusDNAT), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)})
	}
	if r.MarkMask != 0 {
		// meta mark is in host byte order, as nft encodes it.
		markCmp := &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(r.Mark)}
		if r.MarkNot {
			markCmp.Op = expr.CmpOpNeq
		}
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(r.MarkMask), Xor: make([]byte, 4)},
			markCmp)
	}
	for _, ms := range []*plan.MapStmt{r.MapSet, r.MapSet2} {
		if ms == nil {
			continue
		}
		m := sets(ms.Map)
		if m == nil {
			return nil, errorf("rule refers to unknown map %q", ms.Map)
		}
		k, err := keyLoad(ms.Key)
		if err != nil {
			return nil, err
		}
		w, err := mapWrite(ms.Dst)
		if err != nil {
			return nil, err
		}
		e = append(append(e, k...),
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID}, w)
	}
	if r.Limit != nil {
		e = append(e, &expr.Limit{Type: expr.LimitTypePkts, Rate: r.Limit.PerSecond, Unit: expr.LimitTimeSecond, Burst: r.Limit.Burst})
	}
	if r.Log != "" {
		e = append(e, &expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte(r.Log)})
	}
	if r.Counter != "" {
		e = append(e, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: r.Counter})
	}
	if r.CtHelper != "" {
		e = append(e, &expr.Objref{Type: int(nftables.ObjTypeCtHelper), Name: r.CtHelper})
	}
	if r.Notrack {
		e = append(e, &expr.Notrack{})
	}
	if r.SetMark {
		mark, mask := r.SetMarkValues()
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(^mask),
				Xor:  binaryutil.NativeEndian.PutUint32(mark)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	}
	if r.Queue != nil {
		e = append(e, queueExpr(*r.Queue, queueCompat))
	}
	switch r.Verdict {
	case plan.VerdictAccept:
		e = append(e, &expr.Verdict{Kind: expr.VerdictAccept})
	case plan.VerdictDrop:
		e = append(e, &expr.Verdict{Kind: expr.VerdictDrop})
	}
	return e, nil
}

// queueExpr sends a packet to NFQUEUE: the native `queue` expression where
// the kernel has nft_queue (OpenWrt's kmod-nft-queue), or else the xtables
// NFQUEUE target through nft_compat (what iptables-nft emits).
func queueExpr(q plan.QueueStmt, compat bool) expr.Any {
	if !compat {
		e := &expr.Queue{Num: q.Num, Total: 1}
		if q.Bypass {
			e.Flag = expr.QueueFlagBypass
		}
		return e
	}
	// struct xt_NFQ_info_v3 { __u16 queuenum; __u16 queues_total; __u16 flags; }
	// in host byte order, padded to 8 bytes as XT_ALIGN wants.
	info := make([]byte, 8)
	binary.NativeEndian.PutUint16(info[0:], q.Num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	if q.Bypass {
		binary.NativeEndian.PutUint16(info[4:], xtNFQueueFlagBypass)
	}
	u := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: xtNFQueueRev, Info: &u}
}

func libFieldType(f plan.Field) (nftables.SetDatatype, error) {
	switch f.Info().Datatype {
	case "ipv4_addr":
		return nftables.TypeIPAddr, nil
	case "inet_service":
		return nftables.TypeInetService, nil
	case "iface_index":
		return nftables.TypeIFIndex, nil
	}
	return nftables.SetDatatype{}, errorf("field %s: no set datatype", f)
}

// libMapSet is the nftables set object for a plan map.
func libMapSet(t *nftables.Table, m plan.Map, id uint32) (*nftables.Set, error) {
	s := &nftables.Set{Table: t, Name: m.Name, ID: id, IsMap: m.IsMap(), Counter: m.Counter}
	if len(m.Key) == 0 {
		return nil, errorf("map %s: no key", m.Name)
	}
	if len(m.Key) == 1 {
		kt, err := libFieldType(m.Key[0])
		if err != nil {
			return nil, errorf("map %s: %w", m.Name, err)
		}
		s.KeyType = kt
	} else {
		var types []nftables.SetDatatype
		for _, f := range m.Key {
			ft, err := libFieldType(f)
			if err != nil {
				return nil, errorf("map %s: %w", m.Name, err)
			}
			types = append(types, ft)
		}
		kt, err := nftables.ConcatSetType(types...)
		if err != nil {
			return nil, errorf("map %s: %w", m.Name, err)
		}
		s.KeyType = kt
	}
	if m.IsMap() {
		dt, err := libFieldType(m.Data)
		if err != nil {
			return nil, errorf("map %s: %w", m.Name, err)
		}
		s.DataType = dt
	}
	return s, nil
}

// sameMap reports whether an installed set can stay as the plan's map
// (same key, value and counter): then its elements are kept.
func libSameMap(cur *nftables.Set, want *nftables.Set) bool {
	return cur.IsMap == want.IsMap && cur.KeyType.Name == want.KeyType.Name && cur.KeyType.Bytes == want.KeyType.Bytes &&
		cur.DataType.Name == want.DataType.Name
}

// fieldLoad loads one field into register reg.
func fieldLoad(f plan.Field, reg uint32) (expr.Any, error) {
	i := f.Info()
	switch i.Base {
	case "network":
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: i.Offset, Len: i.Len}, nil
	case "transport":
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: i.Offset, Len: i.Len}, nil
	}
	if f == plan.FieldMetaOIF {
		return &expr.Meta{Key: expr.MetaKeyOIF, Register: reg}, nil
	}
	return nil, errorf("field %d cannot be loaded", f)
}

// keyLoad loads a (concatenated) key as nft does: the first field into
// register 1, the next ones into the following 32-bit registers.
func keyLoad(k plan.Key) ([]expr.Any, error) {
	var out []expr.Any
	words := uint32(0)
	for i, f := range k {
		reg := uint32(1)
		if i > 0 {
			reg = unix.NFT_REG32_00 + words
		}
		e, err := fieldLoad(f, reg)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		words += (f.Info().Len + 3) / 4
	}
	return out, nil
}

// mapWrite writes register 1 to a header field, fixing the IPv4 header
// checksum (and transport checksums that cover the pseudo-header), as nft
// encodes `ip daddr set ...`.
func mapWrite(f plan.Field) (expr.Any, error) {
	i := f.Info()
	if f == plan.FieldGREKey {
		// Enhanced GRE carries no checksum (RFC 2637 4.1: C is 0).
		return &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseTransportHeader,
			Offset: i.Offset, Len: i.Len}, nil
	}
	if i.Base != "network" {
		return nil, errorf("field %s cannot be written", f)
	}
	return &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader,
		Offset: i.Offset, Len: i.Len, CsumType: expr.CsumTypeInet, CsumOffset: 10,
		CsumFlags: unix.NFT_PAYLOAD_L4CSUM_PSEUDOHDR}, nil
}

func (m *Maps) set(nc *nftables.Conn, name string) (*nftables.Set, error) {
	s, err := nc.GetSetByName(table(m.table), name)
	if err != nil {
		return nil, errorf("map %s of inet %s: %w", name, m.table, err)
	}
	s.Table = table(m.table)
	return s, nil
}

func elems(in []engine.Element) []nftables.SetElement {
	out := make([]nftables.SetElement, len(in))
	for i, e := range in {
		out[i] = nftables.SetElement{Key: e.Key, Val: e.Val}
	}
	return out
}

// listLibrary is List through google/nftables, which the tests compare
// listElements with.
func (m *Maps) listLibrary(name string) ([]engine.Element, error) {
	nc, err := m.c.nc()
	if err != nil {
		return nil, err
	}
	s, err := m.set(nc, name)
	if err != nil {
		return nil, err
	}
	got, err := nc.GetSetElements(s)
	if err != nil {
		return nil, errorf("list map %s: %w", name, err)
	}
	out := make([]engine.Element, len(got))
	for i, e := range got {
		out[i] = engine.Element{Key: e.Key, Val: e.Val}
		if e.Counter != nil {
			out[i].Packets, out[i].Bytes = e.Counter.Packets, e.Counter.Bytes
		}
	}
	return out, nil
}

func table(name string) *nftables.Table {
	return &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
}

// nc is a google/nftables connection to n's namespace, for the tests'
// cross-checks.
func (n *Conn) nc() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if n.netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(n.netns))
	}
	return nftables.New(opts...)
}

func libComment(c string) []byte {
	if c == "" {
		return nil
	}
	return userdata.AppendString(nil, userdata.TypeComment, c)
}
