package nft

import (
	"errors"
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

func errorf(format string, a ...any) error { return fmt.Errorf("nft: "+format, a...) }

// Conn applies plans to one network namespace's nftables. Every operation
// uses a fresh nftables.Conn: the library queues batch messages and keeps the
// first error in the Conn, so a failed apply must not leak into the next.
type Conn struct {
	opts []nftables.ConnOption
}

// Open connects to nftables in the current network namespace.
func Open() (*Conn, error) { return open() }

// OpenNetNS connects to nftables in the network namespace behind fd (an open
// /var/run/netns/NAME), for tests and tools that manage several namespaces.
func OpenNetNS(fd int) (*Conn, error) { return open(nftables.WithNetNSFd(fd)) }

func open(opts ...nftables.ConnOption) (*Conn, error) {
	n := &Conn{opts: opts}
	if _, err := n.nc(); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *Conn) nc() (*nftables.Conn, error) {
	c, err := nftables.New(n.opts...)
	if err != nil {
		return nil, errorf("netlink: %w", err)
	}
	return c, nil
}

func table(name string) *nftables.Table {
	return &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
}

// Exists reports whether our table is installed.
func (n *Conn) Exists(name string) (bool, error) {
	c, err := n.nc()
	if err != nil {
		return false, err
	}
	_, err = c.ListTableOfFamily(name, nftables.TableFamilyINet)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, errorf("list table inet %s: %w", name, err)
}

// Counters reads the named counters of our table.
func (n *Conn) Counters(name string) (map[string]Counter, error) {
	c, err := n.nc()
	if err != nil {
		return nil, err
	}
	objs, err := c.GetNamedObjects(table(name))
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return map[string]Counter{}, nil
		}
		return nil, errorf("list counters of inet %s: %w", name, err)
	}
	out := map[string]Counter{}
	for _, o := range objs {
		no, ok := o.(*nftables.NamedObj)
		if !ok || no.Type != nftables.ObjTypeCounter {
			continue
		}
		if c, ok := no.Obj.(*expr.Counter); ok {
			out[no.Name] = Counter{Packets: c.Packets, Bytes: c.Bytes}
		}
	}
	return out, nil
}

// Counter is one named counter's value.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Apply makes the kernel's table equal to the plan in one transaction: the
// table is deleted and rebuilt inside the same batch, so there is never a
// moment without it, and applying twice leaves exactly one copy. Counters keep
// their values across applies. If the kernel refuses the batch, nothing
// changes: the previous state stays in place.
func (n *Conn) Apply(p *plan.Plan) error {
	if p.Empty() {
		return n.Remove(p.Table)
	}
	old, err := n.Counters(p.Table)
	if err != nil {
		return err
	}
	nc, err := n.nc()
	if err != nil {
		return err
	}
	t := table(p.Table)
	// Add (no-op if present) then delete, so the delete never fails on a
	// missing table and the batch stays valid on first start.
	nc.AddTable(t)
	nc.DelTable(t)
	nc.AddTable(t)

	sets := map[string]*nftables.Set{}
	for i, s := range p.Sets {
		ns := &nftables.Set{Table: t, Name: s.Name, ID: uint32(i + 1)}
		var elems []nftables.SetElement
		switch s.Type {
		case "ifname":
			ns.KeyType = nftables.TypeIFName
			// nft prints string keys by the byte order in the set's userdata;
			// without it, names show up reversed (empty) in `nft list`.
			ns.KeyByteOrder = binaryutil.NativeEndian
			for _, e := range s.Elements {
				elems = append(elems, nftables.SetElement{Key: ifname(e)})
			}
		case "ipv4_addr":
			ns.KeyType = nftables.TypeIPAddr
			for _, e := range s.Elements {
				a, err := parseIPv4(e)
				if err != nil {
					return errorf("set %s: %w", s.Name, err)
				}
				elems = append(elems, nftables.SetElement{Key: a})
			}
		default:
			return errorf("set %s: unsupported type %q", s.Name, s.Type)
		}
		if err := nc.AddSet(ns, elems); err != nil {
			return errorf("add set %s: %w", s.Name, err)
		}
		sets[s.Name] = ns
	}
	for _, name := range p.Counters {
		nc.AddObj(&nftables.NamedObj{Table: t, Name: name, Type: nftables.ObjTypeCounter,
			Obj: &expr.Counter{Packets: old[name].Packets, Bytes: old[name].Bytes}})
	}
	for _, h := range p.Helpers {
		l3 := uint16(unix.NFPROTO_INET)
		if h.L3IPv4 {
			l3 = unix.NFPROTO_IPV4
		}
		nc.AddObj(&nftables.NamedObj{Table: t, Name: h.Name, Type: nftables.ObjTypeCtHelper,
			Obj: &expr.CtHelper{Name: h.Type, L3Proto: l3, L4Proto: uint8(h.L4)}})
	}
	lookup := func(name string) *nftables.Set { return sets[name] }
	for _, c := range p.Chains {
		hook, err := chainHook(c.Hook)
		if err != nil {
			return err
		}
		prio := nftables.ChainPriority(c.Priority)
		policy := nftables.ChainPolicyAccept
		ch := nc.AddChain(&nftables.Chain{Name: c.Name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: &prio, Policy: &policy})
		for i, r := range c.Rules {
			exprs, err := ruleExprs(r, lookup, p.QueueCompat)
			if err != nil {
				return fmt.Errorf("chain %s rule %d: %w", c.Name, i+1, err)
			}
			nc.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: comment(r.Comment)})
		}
	}
	if err := nc.Flush(); err != nil {
		return errorf("apply table inet %s: %w", p.Table, err)
	}
	return nil
}

// Intact reports whether the installed table still has the plan's chains,
// rules, sets and counters (by name and count). The daemon uses it to skip
// re-applying an unchanged plan without missing a table someone damaged.
func (n *Conn) Intact(p *plan.Plan) bool {
	c, err := n.nc()
	if err != nil {
		return false
	}
	t := table(p.Table)
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false
	}
	have := map[string]*nftables.Chain{}
	for _, ch := range chains {
		if ch.Table.Name == p.Table {
			have[ch.Name] = ch
		}
	}
	if len(have) != len(p.Chains) {
		return false
	}
	for _, pc := range p.Chains {
		ch, ok := have[pc.Name]
		if !ok {
			return false
		}
		rules, err := c.GetRules(t, ch)
		if err != nil || len(rules) != len(pc.Rules) {
			return false
		}
	}
	for _, ps := range p.Sets {
		s, err := c.GetSetByName(t, ps.Name)
		if err != nil {
			return false
		}
		elems, err := c.GetSetElements(s)
		if err != nil || len(elems) != len(ps.Elements) {
			return false
		}
	}
	counters, err := n.Counters(p.Table)
	if err != nil {
		return false
	}
	for _, name := range p.Counters {
		if _, ok := counters[name]; !ok {
			return false
		}
	}
	return true
}

// Remove deletes our table if it exists.
func (n *Conn) Remove(name string) error {
	nc, err := n.nc()
	if err != nil {
		return err
	}
	t := table(name)
	nc.AddTable(t)
	nc.DelTable(t)
	if err := nc.Flush(); err != nil {
		return errorf("delete table inet %s: %w", name, err)
	}
	return nil
}

func chainHook(h plan.Hook) (*nftables.ChainHook, error) {
	switch h {
	case plan.HookPrerouting:
		return nftables.ChainHookPrerouting, nil
	case plan.HookForward:
		return nftables.ChainHookForward, nil
	case plan.HookPostrouting:
		return nftables.ChainHookPostrouting, nil
	case plan.HookOutput:
		return nftables.ChainHookOutput, nil
	}
	return nil, errorf("unknown hook %q", h)
}

// ifname pads a device name to IFNAMSIZ as the kernel stores it.
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}
