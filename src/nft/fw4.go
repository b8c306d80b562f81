package nft

import (
	"bytes"
	"encoding/binary"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// FW4AcceptMark reads the mark that fw4's forward chain accepts for us: the
// rule our include puts there (its comment names vpn-passthrough), as
// `meta mark & mask == mark`. found is false if fw4 has no such rule (no
// fw4, or the include not loaded).
func (n *Conn) FW4AcceptMark() (mark, mask uint32, found bool, err error) {
	c, err := n.nc()
	if err != nil {
		return 0, 0, false, err
	}
	t := &nftables.Table{Name: "fw4", Family: nftables.TableFamilyINet}
	rules, err := c.GetRules(t, &nftables.Chain{Name: "forward", Table: t})
	if err != nil {
		if notFound(err) {
			return 0, 0, false, nil
		}
		return 0, 0, false, errorf("list inet fw4 forward: %w", err)
	}
	for _, r := range rules {
		if !bytes.Contains(r.UserData, []byte("vpn-passthrough")) {
			continue
		}
		for i := 0; i+2 < len(r.Exprs); i++ {
			m, ok1 := r.Exprs[i].(*expr.Meta)
			b, ok2 := r.Exprs[i+1].(*expr.Bitwise)
			cmp, ok3 := r.Exprs[i+2].(*expr.Cmp)
			if ok1 && ok2 && ok3 && m.Key == expr.MetaKeyMARK && len(b.Mask) == 4 && len(cmp.Data) == 4 && cmp.Op == expr.CmpOpEq {
				return binary.NativeEndian.Uint32(cmp.Data), binary.NativeEndian.Uint32(b.Mask), true, nil
			}
		}
	}
	return 0, 0, false, nil
}
