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
	table      string
}

// setInfo is an installed set or map.
type setInfo struct {
	name, table            string
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

// chains lists the chains of an inet table.
func (n *Conn) chains(table string) ([]chainInfo, error) {
	msgs, err := n.dump(unix.NFT_MSG_GETCHAIN, unix.NFT_MSG_NEWCHAIN, wire(nil).Str(unix.NFTA_CHAIN_TABLE, table))
	if err != nil {
		return nil, err
	}
	var out []chainInfo
	for _, m := range msgs {
		var c chainInfo
		err := nl.Walk(m, func(typ uint16, d []byte) error {
			switch typ {
			case unix.NFTA_CHAIN_TABLE:
				c.table = nl.String(d)
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
		if err != nil {
			return nil, errorf("list chains of inet %s: %w", table, err)
		}
		// Older kernels dump every table's chains.
		if c.table == table {
			out = append(out, c)
		}
	}
	return out, nil
}

// sets lists the sets and maps of an inet table.
func (n *Conn) sets(table string) ([]setInfo, error) {
	msgs, err := n.dump(unix.NFT_MSG_GETSET, unix.NFT_MSG_NEWSET, wire(nil).Str(unix.NFTA_SET_TABLE, table))
	if err != nil {
		return nil, err
	}
	var out []setInfo
	for _, m := range msgs {
		var s setInfo
		err := nl.Walk(m, func(typ uint16, d []byte) error {
			switch typ {
			case unix.NFTA_SET_TABLE:
				s.table = nl.String(d)
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
		if err != nil {
			return nil, errorf("list sets of inet %s: %w", table, err)
		}
		if s.table == table {
			out = append(out, s)
		}
	}
	return out, nil
}

// objects lists the named objects of an inet table, with counters' values.
func (n *Conn) objects(table string) ([]objInfo, error) {
	msgs, err := n.dump(unix.NFT_MSG_GETOBJ, unix.NFT_MSG_NEWOBJ, wire(nil).Str(unix.NFTA_OBJ_TABLE, table))
	if err != nil {
		return nil, err
	}
	var out []objInfo
	for _, m := range msgs {
		var o objInfo
		var tbl string
		err := nl.Walk(m, func(typ uint16, d []byte) error {
			switch typ {
			case unix.NFTA_OBJ_TABLE:
				tbl = nl.String(d)
			case unix.NFTA_OBJ_NAME:
				o.name = nl.String(d)
			case unix.NFTA_OBJ_TYPE:
				o.typ, _ = u32be(d)
			case unix.NFTA_OBJ_DATA:
				o.packets, o.bytes = counterValues(d)
			}
			return nil
		})
		if err != nil {
			return nil, errorf("list objects of inet %s: %w", table, err)
		}
		if tbl == table {
			out = append(out, o)
		}
	}
	return out, nil
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
