package nft

import (
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
)

// Reading our table back: what Apply needs to know of the installed state,
// and what Intact and Diff compare with the plan. Each reader takes only the
// attributes it needs and skips the rest (pads included: on MIPS the kernel
// puts an NFTA_LIMIT_PAD before a limit's 64-bit values, which once made a
// library decoder fail the whole listing).

// chainInfo is an installed chain.
type chainInfo struct {
	name       string
	hooked     bool // a base chain
	hook, prio uint32
	hasPolicy  bool
	policy     uint32
}

// setInfo is an installed set or map.
type setInfo struct {
	name                   string
	flags, keyType, keyLen uint32
	dataType, dataLen      uint32
	counter                bool // its elements carry an expression (ours: a counter)
}

// objInfo is an installed named object (counter or ct helper).
type objInfo struct {
	name           string
	typ            uint32
	packets, bytes uint64
}

// Exists reports whether our table is installed.
func (n *Conn) Exists(name string) (bool, error) {
	_, err := n.request(unix.NFT_MSG_GETTABLE, unix.NFT_MSG_NEWTABLE, 0, wire(nil).Str(unix.NFTA_TABLE_NAME, name))
	if err == nil {
		return true, nil
	}
	if notFound(err) {
		return false, nil
	}
	return false, errorf("list table inet %s: %w", name, err)
}

// attrTable is the table's name attribute, type 1 for chains, sets and
// objects alike (NFTA_CHAIN_TABLE, NFTA_SET_TABLE, NFTA_OBJ_TABLE).
const attrTable = 1

// eachInTable calls f on the attributes of each object of one kind
// (chains, sets, objects) of an inet table. Objects of other tables are
// left out: older kernels dump every table's chains.
func (n *Conn) eachInTable(get, reply uint16, table, what string, f func(attrs []byte) error) error {
	msgs, err := n.dump(get, reply, wire(nil).Str(attrTable, table))
	if err != nil {
		return err
	}
	for _, m := range msgs {
		var tbl string
		err := nl.Walk(m, func(typ uint16, d []byte) error {
			if typ == attrTable {
				tbl = nl.String(d)
			}
			return nil
		})
		if err == nil && tbl == table {
			err = f(m)
		}
		if err != nil {
			return errorf("list %s of inet %s: %w", what, table, err)
		}
	}
	return nil
}

// chains lists the chains of an inet table.
func (n *Conn) chains(table string) ([]chainInfo, error) {
	var out []chainInfo
	err := n.eachInTable(unix.NFT_MSG_GETCHAIN, unix.NFT_MSG_NEWCHAIN, table, "chains", func(m []byte) error {
		var c chainInfo
		err := nl.Walk(m, func(typ uint16, d []byte) error {
			switch typ {
			case unix.NFTA_CHAIN_NAME:
				c.name = nl.String(d)
			case unix.NFTA_CHAIN_POLICY:
				c.policy, c.hasPolicy = u32be(d)
			case unix.NFTA_CHAIN_HOOK:
				var okH, okP bool
				err := nl.Walk(d, func(typ uint16, d []byte) error {
					switch typ {
					case unix.NFTA_HOOK_HOOKNUM:
						c.hook, okH = u32be(d)
					case unix.NFTA_HOOK_PRIORITY:
						c.prio, okP = u32be(d)
					}
					return nil
				})
				c.hooked = okH && okP
				return err
			}
			return nil
		})
		out = append(out, c)
		return err
	})
	return out, err
}

// sets lists the sets and maps of an inet table.
func (n *Conn) sets(table string) ([]setInfo, error) {
	var out []setInfo
	err := n.eachInTable(unix.NFT_MSG_GETSET, unix.NFT_MSG_NEWSET, table, "sets", func(m []byte) error {
		var s setInfo
		err := nl.Walk(m, func(typ uint16, d []byte) error {
			switch typ {
			case unix.NFTA_SET_NAME:
				s.name = nl.String(d)
			case unix.NFTA_SET_FLAGS:
				s.flags, _ = u32be(d)
			case unix.NFTA_SET_KEY_TYPE:
				s.keyType, _ = u32be(d)
			case unix.NFTA_SET_KEY_LEN:
				s.keyLen, _ = u32be(d)
			case unix.NFTA_SET_DATA_TYPE:
				s.dataType, _ = u32be(d)
			case unix.NFTA_SET_DATA_LEN:
				s.dataLen, _ = u32be(d)
			case nftaSetExpr, nftaSetExpr + 1: // NFTA_SET_EXPR, NFTA_SET_EXPRESSIONS
				s.counter = true
			}
			return nil
		})
		out = append(out, s)
		return err
	})
	return out, err
}

// objects lists the named objects of an inet table, with counters' values.
func (n *Conn) objects(table string) ([]objInfo, error) {
	var out []objInfo
	err := n.eachInTable(unix.NFT_MSG_GETOBJ, unix.NFT_MSG_NEWOBJ, table, "objects", func(m []byte) error {
		var o objInfo
		err := nl.Walk(m, func(typ uint16, d []byte) error {
			switch typ {
			case unix.NFTA_OBJ_NAME:
				o.name = nl.String(d)
			case unix.NFTA_OBJ_TYPE:
				o.typ, _ = u32be(d)
			case unix.NFTA_OBJ_DATA:
				o.packets, o.bytes = counterValues(d)
			}
			return nil
		})
		out = append(out, o)
		return err
	})
	return out, err
}

// rules lists a chain's rules, in order.
func (n *Conn) rules(table, chain string) ([]rawRule, error) {
	msgs, err := n.dump(unix.NFT_MSG_GETRULE, unix.NFT_MSG_NEWRULE, wire(nil).Str(unix.NFTA_RULE_TABLE, table).Str(unix.NFTA_RULE_CHAIN, chain))
	if err != nil {
		return nil, err
	}
	out := make([]rawRule, 0, len(msgs))
	for _, m := range msgs {
		r, ok := parseRule(m)
		if !ok {
			return nil, errorf("chain %s of inet %s: malformed rule", chain, table)
		}
		out = append(out, r)
	}
	return out, nil
}
