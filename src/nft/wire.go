package nft

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// Our encoding of a plan rule's expressions, byte for byte what
// google/nftables sent before netlink.go replaced it (TestWireMatchesLibrary
// compares the two on every rule of the system test's plans).

// wire is a run of netlink attributes being built.
type wire = nl.Attrs

// data is an NFTA_DATA_VALUE wrapped for a nested data attribute.
func data(v []byte) wire { return wire(nil).Add(unix.NFTA_DATA_VALUE, v) }

// wexpr is one expression: its name and, unless nil, its data.
func wexpr(name string, d wire) wire {
	a := wire(nil).Str(unix.NFTA_EXPR_NAME, name)
	if d != nil {
		a = a.Nest(unix.NFTA_EXPR_DATA, d)
	}
	return a
}

func wMeta(key, reg uint32) wire {
	return wexpr("meta", wire(nil).U32(unix.NFTA_META_KEY, key).U32(unix.NFTA_META_DREG, reg))
}

func wMetaSet(key, reg uint32) wire {
	return wexpr("meta", wire(nil).U32(unix.NFTA_META_KEY, key).U32(unix.NFTA_META_SREG, reg))
}

func wCmp(op uint32, v []byte) wire {
	return wexpr("cmp", wire(nil).U32(unix.NFTA_CMP_SREG, 1).U32(unix.NFTA_CMP_OP, op).Nest(unix.NFTA_CMP_DATA, data(v)))
}

func wPayload(base, offset, length, reg uint32) wire {
	return wexpr("payload", wire(nil).U32(unix.NFTA_PAYLOAD_DREG, reg).U32(unix.NFTA_PAYLOAD_BASE, base).
		U32(unix.NFTA_PAYLOAD_OFFSET, offset).U32(unix.NFTA_PAYLOAD_LEN, length))
}

func wBitwise(length uint32, mask, xor []byte) wire {
	return wexpr("bitwise", wire(nil).U32(unix.NFTA_BITWISE_SREG, 1).U32(unix.NFTA_BITWISE_DREG, 1).
		U32(unix.NFTA_BITWISE_LEN, length).Nest(unix.NFTA_BITWISE_MASK, data(mask)).Nest(unix.NFTA_BITWISE_XOR, data(xor)))
}

// wLookup tests register 1 against a set (dreg 0) or maps it into register
// 1 (dreg 1).
func wLookup(set string, id uint32, dreg bool, invert bool) wire {
	a := wire(nil).U32(unix.NFTA_LOOKUP_SREG, 1)
	if dreg {
		a = a.U32(unix.NFTA_LOOKUP_DREG, 1)
	}
	if invert {
		a = a.U32(unix.NFTA_LOOKUP_FLAGS, unix.NFT_LOOKUP_F_INV)
	}
	return wexpr("lookup", a.Str(unix.NFTA_LOOKUP_SET, set).U32(unix.NFTA_LOOKUP_SET_ID, id))
}

func wCt(key uint32) wire {
	return wexpr("ct", wire(nil).U32(unix.NFTA_CT_KEY, key).U32(unix.NFTA_CT_DREG, 1))
}

func wVerdict(code uint32) wire {
	v := wire(nil).Nest(unix.NFTA_DATA_VERDICT, wire(nil).U32(unix.NFTA_VERDICT_CODE, code))
	return wexpr("immediate", wire(nil).U32(unix.NFTA_IMMEDIATE_DREG, unix.NFT_REG_VERDICT).Nest(unix.NFTA_IMMEDIATE_DATA, v))
}

func wObjref(typ uint32, name string) wire {
	// The library sends the name without its NUL; the kernel takes both.
	return wexpr("objref", wire(nil).U32(unix.NFTA_OBJREF_IMM_TYPE, typ).Add(unix.NFTA_OBJREF_IMM_NAME, []byte(name)))
}

// ctStatusDNAT is IPS_DST_NAT (uapi nf_conntrack_common.h): a port forward.
const ctStatusDNAT = 1 << 5

// ctStatusSNAT is IPS_SRC_NAT: masqueraded (or otherwise source-NATed).
const ctStatusSNAT = 1 << 4

// Kernel constants for the xtables NFQUEUE target (uapi
// linux/netfilter/xt_NFQUEUE.h): revision 3 carries queuenum, queues_total
// and flags.
const (
	xtNFQueueRev        = 3
	xtNFQueueFlagBypass = 0x01
)

// Kernel constants x/sys/unix does not have (uapi nf_conntrack_common.h,
// netfilter.h).
const (
	ctStateUntracked = 1 << 6 // NF_CT_STATE_UNTRACKED_BIT
	nfDrop           = 0      // NF_DROP, a verdict code
)

// fieldWire loads one field into register reg.
func fieldWire(f plan.Field, reg uint32) (wire, error) {
	i := f.Info()
	switch i.Base {
	case "network":
		return wPayload(unix.NFT_PAYLOAD_NETWORK_HEADER, i.Offset, i.Len, reg), nil
	case "transport":
		return wPayload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, i.Offset, i.Len, reg), nil
	}
	if f == plan.FieldMetaOIF {
		return wMeta(unix.NFT_META_OIF, reg), nil
	}
	return nil, errorf("field %d cannot be loaded", f)
}

// mapWriteWire writes register 1 to a header field, fixing the IPv4 header
// checksum (and transport checksums that cover the pseudo-header), as nft
// encodes `ip daddr set ...`; enhanced GRE carries no checksum (RFC 2637
// 4.1: C is 0).
func mapWriteWire(f plan.Field) (wire, error) {
	i := f.Info()
	a := wire(nil).U32(unix.NFTA_PAYLOAD_SREG, 1)
	if f == plan.FieldGREKey {
		return wexpr("payload", a.U32(unix.NFTA_PAYLOAD_BASE, unix.NFT_PAYLOAD_TRANSPORT_HEADER).
			U32(unix.NFTA_PAYLOAD_OFFSET, i.Offset).U32(unix.NFTA_PAYLOAD_LEN, i.Len)), nil
	}
	if i.Base != "network" {
		return nil, errorf("field %s cannot be written", f)
	}
	return wexpr("payload", a.U32(unix.NFTA_PAYLOAD_BASE, unix.NFT_PAYLOAD_NETWORK_HEADER).
		U32(unix.NFTA_PAYLOAD_OFFSET, i.Offset).U32(unix.NFTA_PAYLOAD_LEN, i.Len).
		U32(unix.NFTA_PAYLOAD_CSUM_TYPE, unix.NFT_PAYLOAD_CSUM_INET).U32(unix.NFTA_PAYLOAD_CSUM_OFFSET, 10).
		U32(unix.NFTA_PAYLOAD_CSUM_FLAGS, unix.NFT_PAYLOAD_L4CSUM_PSEUDOHDR)), nil
}

// ruleWire encodes a plan rule's expressions as the NFTA_RULE_EXPRESSIONS
// list (each an NFTA_LIST_ELEM), in ruleExprs' order. setID gives the batch
// ID of a set or map added in the same batch.
func ruleWire(r plan.Rule, setID func(name string) (uint32, bool), queueCompat bool) (wire, error) {
	var list wire
	emit := func(es ...wire) {
		for _, e := range es {
			list = list.Nest(unix.NFTA_LIST_ELEM, e)
		}
	}
	// Expressions are built as runs and split into list elements: each
	// w* helper returns exactly one expression, so keep them apart.
	lookup := func(name string, dreg, invert bool) (wire, error) {
		id, ok := setID(name)
		if !ok {
			return nil, errorf("rule refers to unknown set %q", name)
		}
		return wLookup(name, id, dreg, invert), nil
	}
	eq := func(v []byte) wire { return wCmp(unix.NFT_CMP_EQ, v) }
	if r.IPv4Only || r.SAddrSet != "" || r.DAddrSet != "" || r.GREv1 {
		emit(wMeta(unix.NFT_META_NFPROTO, 1), eq([]byte{unix.NFPROTO_IPV4}))
	}
	for _, a := range []struct {
		set    string
		offset uint32
	}{{r.SAddrSet, 12}, {r.DAddrSet, 16}} {
		if a.set == "" {
			continue
		}
		l, err := lookup(a.set, false, false)
		if err != nil {
			return nil, err
		}
		emit(wPayload(unix.NFT_PAYLOAD_NETWORK_HEADER, a.offset, 4, 1), l)
	}
	if r.GREv1 {
		emit(wPayload(unix.NFT_PAYLOAD_NETWORK_HEADER, 9, 1, 1), eq([]byte{byte(plan.ProtoGRE)}),
			wPayload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 1, 1, 1), wBitwise(1, []byte{0x07}, []byte{0x00}), eq([]byte{0x01}))
	}
	if r.GREPPTP {
		emit(wPayload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 0, 4, 1), wBitwise(4, []byte{0xef, 0x7f, 0xff, 0xff}, make([]byte, 4)),
			eq([]byte{0x20, 0x01, 0x88, 0x0b}))
	}
	if r.L4 != plan.ProtoAny {
		emit(wMeta(unix.NFT_META_L4PROTO, 1), eq([]byte{byte(r.L4)}))
	}
	if r.SPort != 0 {
		emit(wPayload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, 1), eq(binary.BigEndian.AppendUint16(nil, r.SPort)))
	}
	if r.DPort != 0 {
		emit(wPayload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, 1), eq(binary.BigEndian.AppendUint16(nil, r.DPort)))
	}
	if r.IIFSet != "" {
		l, err := lookup(r.IIFSet, false, false)
		if err != nil {
			return nil, err
		}
		emit(wMeta(unix.NFT_META_IIFNAME, 1), l)
	}
	if r.OIFSet != "" {
		l, err := lookup(r.OIFSet, false, r.OIFNot)
		if err != nil {
			return nil, err
		}
		emit(wMeta(unix.NFT_META_OIFNAME, 1), l)
	}
	if r.KeyMatch != nil {
		l, err := lookup(r.KeyMatch.Set, false, false)
		if err != nil {
			return nil, err
		}
		if err := emitKey(&list, r.KeyMatch.Key); err != nil {
			return nil, err
		}
		emit(l)
	}
	bits := func(load wire, mask uint32, op uint32) {
		emit(load, wBitwise(4, binary.NativeEndian.AppendUint32(nil, mask), make([]byte, 4)), wCmp(op, make([]byte, 4)))
	}
	if r.Untracked {
		bits(wCt(unix.NFT_CT_STATE), ctStateUntracked, unix.NFT_CMP_NEQ)
	}
	if r.CtState != 0 {
		bits(wCt(unix.NFT_CT_STATE), r.CtState, unix.NFT_CMP_NEQ)
	}
	if r.NotNAT {
		bits(wCt(unix.NFT_CT_STATUS), ctStatusSNAT|ctStatusDNAT, unix.NFT_CMP_EQ)
	}
	if r.NotDNAT {
		bits(wCt(unix.NFT_CT_STATUS), ctStatusDNAT, unix.NFT_CMP_EQ)
	}
	if r.MarkMask != 0 {
		op := uint32(unix.NFT_CMP_EQ)
		if r.MarkNot {
			op = unix.NFT_CMP_NEQ
		}
		emit(wMeta(unix.NFT_META_MARK, 1), wBitwise(4, binary.NativeEndian.AppendUint32(nil, r.MarkMask), make([]byte, 4)),
			wCmp(op, binary.NativeEndian.AppendUint32(nil, r.Mark)))
	}
	for _, ms := range []*plan.MapStmt{r.MapSet, r.MapSet2} {
		if ms == nil {
			continue
		}
		id, ok := setID(ms.Map)
		if !ok {
			return nil, errorf("rule refers to unknown map %q", ms.Map)
		}
		w, err := mapWriteWire(ms.Dst)
		if err != nil {
			return nil, err
		}
		if err := emitKey(&list, ms.Key); err != nil {
			return nil, err
		}
		emit(wLookup(ms.Map, id, true, false), w)
	}
	if r.Limit != nil {
		emit(wexpr("limit", wire(nil).U64(unix.NFTA_LIMIT_RATE, r.Limit.PerSecond).U64(unix.NFTA_LIMIT_UNIT, 1).
			U32(unix.NFTA_LIMIT_BURST, r.Limit.Burst).U32(unix.NFTA_LIMIT_TYPE, unix.NFT_LIMIT_PKTS).U32(unix.NFTA_LIMIT_FLAGS, 0)))
	}
	if r.Log != "" {
		emit(wexpr("log", wire(nil).Str(unix.NFTA_LOG_PREFIX, r.Log)))
	}
	if r.Counter != "" {
		emit(wObjref(unix.NFT_OBJECT_COUNTER, r.Counter))
	}
	if r.CtHelper != "" {
		emit(wObjref(unix.NFT_OBJECT_CT_HELPER, r.CtHelper))
	}
	if r.Notrack {
		emit(wexpr("notrack", nil))
	}
	if r.SetMark {
		mark, mask := r.SetMarkValues()
		emit(wMeta(unix.NFT_META_MARK, 1), wBitwise(4, binary.NativeEndian.AppendUint32(nil, ^mask), binary.NativeEndian.AppendUint32(nil, mark)),
			wMetaSet(unix.NFT_META_MARK, 1))
	}
	if q := r.Queue; q != nil {
		if !queueCompat {
			flags := uint16(0)
			if q.Bypass {
				flags = unix.NFT_QUEUE_FLAG_BYPASS
			}
			emit(wexpr("queue", wire(nil).U16(unix.NFTA_QUEUE_NUM, q.Num).U16(unix.NFTA_QUEUE_TOTAL, 1).U16(unix.NFTA_QUEUE_FLAGS, flags)))
		} else {
			info := make([]byte, 8)
			binary.NativeEndian.PutUint16(info[0:], q.Num)
			binary.NativeEndian.PutUint16(info[2:], 1)
			if q.Bypass {
				binary.NativeEndian.PutUint16(info[4:], xtNFQueueFlagBypass)
			}
			emit(wexpr("target", wire(nil).Str(unix.NFTA_TARGET_NAME, "NFQUEUE").U32(unix.NFTA_TARGET_REV, xtNFQueueRev).
				Add(unix.NFTA_TARGET_INFO, info)))
		}
	}
	switch r.Verdict {
	case plan.VerdictAccept:
		emit(wVerdict(nfAccept))
	case plan.VerdictDrop:
		emit(wVerdict(nfDrop))
	}
	return list, nil
}

// emitKey appends a key's loads to list, one list element each.
func emitKey(list *wire, k plan.Key) error {
	for i, f := range k {
		reg := uint32(1)
		if i > 0 {
			words := uint32(0)
			for _, g := range k[:i] {
				words += (g.Info().Len + 3) / 4
			}
			reg = unix.NFT_REG32_00 + words
		}
		e, err := fieldWire(f, reg)
		if err != nil {
			return err
		}
		*list = list.Nest(unix.NFTA_LIST_ELEM, e)
	}
	return nil
}
