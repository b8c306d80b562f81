package nft

import (
	"encoding/binary"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// FW4AcceptMark reads the mark that fw4's forward chain accepts for us: the
// rule our include puts there (its comment names vpn-passthrough), as
// `meta mark & mask == mark`. found is false if fw4 has no such rule (no
// fw4, or the include not loaded).
//
// It reads each rule with parseRule, which skips what it does not need:
// fw4's chain holds expressions of every kind (`ct original proto-dst` in
// our own ruleset-post include, and users' rules).
func (n *Conn) FW4AcceptMark() (mark, mask uint32, found bool, err error) {
	rules, err := n.fw4ForwardRules()
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, false, nil // no fw4 table or chain
	}
	if err != nil {
		return 0, 0, false, err
	}
	for _, b := range rules {
		if mark, mask, ok := acceptMark(b); ok {
			return mark, mask, true, nil
		}
	}
	return 0, 0, false, nil
}

// acceptMark reads one rule's attributes: if its comment names
// vpn-passthrough and it holds meta mark, bitwise, cmp eq in a row, the
// mask and mark (host byte order, as nft stores them).
func acceptMark(b []byte) (mark, mask uint32, ok bool) {
	r, ok := parseRule(b)
	if !ok || !r.ours {
		return 0, 0, false
	}
	for i := 0; i+2 < len(r.exprs); i++ {
		m, bw, c := r.exprs[i], r.exprs[i+1], r.exprs[i+2]
		if m.name != "meta" || bw.name != "bitwise" || c.name != "cmp" {
			continue
		}
		key, _ := u32be(m.attr[unix.NFTA_META_KEY])
		op, _ := u32be(c.attr[unix.NFTA_CMP_OP])
		mk, data := dataValue(bw.attr[unix.NFTA_BITWISE_MASK]), dataValue(c.attr[unix.NFTA_CMP_DATA])
		if key == unix.NFT_META_MARK && op == unix.NFT_CMP_EQ && len(mk) == 4 && len(data) == 4 {
			return binary.NativeEndian.Uint32(data), binary.NativeEndian.Uint32(mk), true
		}
	}
	return 0, 0, false
}
