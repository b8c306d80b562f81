package nft

import (
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// The probes below ask the kernel itself whether it can do something, by
// sending a batch that creates a scratch table with the object in question
// and deletes it again. The kernel validates every object (and autoloads its
// module) before committing, so an error means "not available", and success
// leaves nothing behind.

func scratchTable() *nftables.Table {
	return &nftables.Table{Name: fmt.Sprintf("vpnpt_probe_%d", os.Getpid()), Family: nftables.TableFamilyINet}
}

// ProbeCtHelper reports whether the kernel has the named conntrack helper.
func (n *Conn) ProbeCtHelper(name string, l4 uint8) error {
	nc, err := n.nc()
	if err != nil {
		return err
	}
	t := scratchTable()
	nc.AddTable(t)
	nc.AddObj(&nftables.NamedObj{Table: t, Name: "probe", Type: nftables.ObjTypeCtHelper,
		Obj: &expr.CtHelper{Name: name, L3Proto: unix.NFPROTO_IPV4, L4Proto: l4}})
	nc.DelTable(t)
	return nc.Flush()
}

// ProbeQueue reports whether a rule with the native queue expression
// (compat=false) or the xtables NFQUEUE target (compat=true) is accepted.
func (n *Conn) ProbeQueue(compat bool) error {
	nc, err := n.nc()
	if err != nil {
		return err
	}
	t := scratchTable()
	nc.AddTable(t)
	prio := nftables.ChainPriority(0)
	ch := nc.AddChain(&nftables.Chain{Name: "probe", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: &prio})
	// A rule that can never match keeps the probe harmless even if the
	// delete below were lost.
	nc.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{255}},
		queueExpr(plan.QueueStmt{Num: 65535, Bypass: true}, compat),
	}})
	nc.DelTable(t)
	return nc.Flush()
}
