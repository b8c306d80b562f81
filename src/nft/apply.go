package nft

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

func errorf(format string, a ...any) error { return fmt.Errorf("nft: "+format, a...) }

// Conn applies plans to one network namespace's nftables. Every operation
// uses a fresh nftables.Conn: the library queues batch messages and keeps the
// first error in the Conn, so a failed apply must not leak into the next.
type Conn struct {
	opts  []nftables.ConnOption
	netns int // 0: the current namespace (for the watch's own socket)
}

// Open connects to nftables in the current network namespace.
func Open() (*Conn, error) { return open(0) }

// OpenNetNS connects to nftables in the network namespace behind fd (an open
// /var/run/netns/NAME), for tests and tools that manage several namespaces.
func OpenNetNS(fd int) (*Conn, error) { return open(fd, nftables.WithNetNSFd(fd)) }

func open(netns int, opts ...nftables.ConnOption) (*Conn, error) {
	n := &Conn{opts: opts, netns: netns}
	if _, err := n.nc(); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *Conn) nc() (*nftables.Conn, error) {
	// Every request gets a deadline: a kernel whose nf_tables does not
	// answer (module not loaded under qemu-user, say) must give an error,
	// not a hang. The monitor in watch.go dials its own connection.
	opts := append(append([]nftables.ConnOption(nil), n.opts...), nftables.WithSockOptions(func(c *netlink.Conn) error {
		return c.SetDeadline(time.Now().Add(netlinkTimeout))
	}))
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, errorf("netlink: %w", err)
	}
	return c, nil
}

// netlinkTimeout bounds one nftables request (a whole apply batch included).
const netlinkTimeout = 10 * time.Second

// explain adds what a netlink deadline means to an error that hit one.
func explain(err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (nf_tables did not answer within %s: is the nf_tables module loaded?)", err, netlinkTimeout)
	}
	return err
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

// Apply makes the kernel's table equal to the plan in one transaction, in
// place: every chain of ours is flushed and refilled, sets are refilled,
// what the plan no longer has is deleted, and named objects that stay
// (counters, helpers) are kept, so counters keep counting and base chains
// stay hooked (deleting one would drop the packets waiting in our NFQUEUEs).
// Applying twice leaves exactly one copy. If the kernel refuses the batch,
// nothing changes: the previous state stays in place.
func (n *Conn) Apply(p *plan.Plan) error { return explain(n.apply(p)) }

func (n *Conn) apply(p *plan.Plan) error {
	if p.Empty() {
		return n.Remove(p.Table)
	}
	cur, err := n.current(p.Table)
	if err != nil {
		return err
	}
	nc, err := n.nc()
	if err != nil {
		return err
	}
	t := table(p.Table)
	nc.AddTable(t) // no-op when it exists

	// 1. Empty every chain first: rules are what refer to sets and objects.
	want := map[string]plan.Chain{}
	for _, c := range p.Chains {
		want[c.Name] = c
	}
	for _, ch := range cur.chains {
		nc.FlushChain(ch)
		if c, ok := want[ch.Name]; !ok || !sameHook(ch, c) {
			nc.DelChain(ch) // gone from the plan, or hooked elsewhere now
		}
	}
	// 2. Sets: drop the stale ones, (re)fill the rest.
	wantSet := map[string]plan.Set{}
	for _, s := range p.Sets {
		wantSet[s.Name] = s
	}
	// Maps keep their elements (the engines' kernel state) unless their
	// type changed.
	wantMap := map[string]*nftables.Set{}
	for i, m := range p.Maps {
		ms, err := mapSet(t, m, uint32(len(p.Sets)+i+1))
		if err != nil {
			return err
		}
		wantMap[m.Name] = ms
	}
	for _, s := range cur.sets {
		if ms, ok := wantMap[s.Name]; ok {
			if !sameMap(s, ms) {
				nc.DelSet(s)
			}
			continue
		}
		if ws, ok := wantSet[s.Name]; !ok || ws.Type != s.KeyType.Name {
			nc.DelSet(s)
		}
	}
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
		if err := nc.AddSet(ns, nil); err != nil {
			return errorf("add set %s: %w", s.Name, err)
		}
		nc.FlushSet(ns)
		if len(elems) > 0 {
			if err := nc.SetAddElements(ns, elems); err != nil {
				return errorf("set %s elements: %w", s.Name, err)
			}
		}
		sets[s.Name] = ns
	}
	for _, m := range p.Maps {
		ms := wantMap[m.Name]
		if err := nc.AddSet(ms, nil); err != nil {
			return errorf("add map %s: %w", m.Name, err)
		}
		sets[m.Name] = ms
	}
	// 3. Named objects: delete the stale ones; adding one that exists
	// changes nothing (counters keep their values).
	wantObj := map[string]bool{}
	for _, name := range p.Counters {
		wantObj[objKey(nftables.ObjTypeCounter, name)] = true
	}
	for _, h := range p.Helpers {
		wantObj[objKey(nftables.ObjTypeCtHelper, h.Name)] = true
	}
	for _, o := range cur.objs {
		if !wantObj[objKey(o.Type, o.Name)] {
			nc.DeleteObject(o)
		}
	}
	for _, name := range p.Counters {
		nc.AddObj(&nftables.NamedObj{Table: t, Name: name, Type: nftables.ObjTypeCounter, Obj: &expr.Counter{}})
	}
	for _, h := range p.Helpers {
		l3 := uint16(unix.NFPROTO_INET)
		if h.L3IPv4 {
			l3 = unix.NFPROTO_IPV4
		}
		nc.AddObj(&nftables.NamedObj{Table: t, Name: h.Name, Type: nftables.ObjTypeCtHelper,
			Obj: &expr.CtHelper{Name: h.Type, L3Proto: l3, L4Proto: uint8(h.L4)}})
	}
	// 4. Chains and their rules.
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

// installed is what our table holds now (empty if it does not exist).
type installed struct {
	chains []*nftables.Chain
	sets   []*nftables.Set
	objs   []*nftables.NamedObj
}

func (n *Conn) current(name string) (installed, error) {
	var cur installed
	ok, err := n.Exists(name)
	if err != nil || !ok {
		return cur, err
	}
	c, err := n.nc()
	if err != nil {
		return cur, err
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return cur, errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == name {
			cur.chains = append(cur.chains, ch)
		}
	}
	t := table(name)
	if cur.sets, err = c.GetSets(t); err != nil {
		return cur, errorf("list sets of inet %s: %w", name, err)
	}
	objs, err := c.GetNamedObjects(t)
	if err != nil {
		return cur, errorf("list objects of inet %s: %w", name, err)
	}
	for _, o := range objs {
		if no, ok := o.(*nftables.NamedObj); ok {
			no.Table = t
			cur.objs = append(cur.objs, no)
		}
	}
	return cur, nil
}

// sameHook reports whether an installed base chain sits where the plan's
// chain wants to (a chain cannot be moved to another hook in place).
func sameHook(ch *nftables.Chain, c plan.Chain) bool {
	hook, err := chainHook(c.Hook)
	if err != nil || ch.Hooknum == nil || ch.Priority == nil || *ch.Hooknum != *hook {
		return false
	}
	return int32(*ch.Priority) == c.Priority
}

func objKey(t nftables.ObjType, name string) string { return fmt.Sprintf("%d/%s", t, name) }

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
	for _, pm := range p.Maps {
		if _, err := c.GetSetByName(t, pm.Name); err != nil {
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
func (n *Conn) Remove(name string) error { return explain(n.remove(name)) }

func (n *Conn) remove(name string) error {
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
