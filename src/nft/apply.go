package nft

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/engine"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

func errorf(format string, a ...any) error { return fmt.Errorf("nft: "+format, a...) }

// Conn applies plans to one network namespace's nftables. Every operation
// opens its own netlink socket, so a failed request leaves nothing behind
// for the next.
type Conn struct {
	netns int // 0: the current namespace
}

// Open connects to nftables in the current network namespace.
func Open() (*Conn, error) { return open(0) }

// OpenNetNS connects to nftables in the network namespace behind fd (an open
// /var/run/netns/NAME), for tests and tools that manage several namespaces.
func OpenNetNS(fd int) (*Conn, error) { return open(fd) }

func open(netns int) (*Conn, error) {
	n := &Conn{netns: netns}
	c, err := n.dial()
	if err != nil {
		return nil, err
	}
	c.Close()
	return n, nil
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

// Counters reads the named counters of our table.
func (n *Conn) Counters(name string) (map[string]Counter, error) {
	objs, err := n.objects(name)
	if err != nil {
		if notFound(err) {
			return map[string]Counter{}, nil
		}
		return nil, errorf("list counters of inet %s: %w", name, err)
	}
	out := map[string]Counter{}
	for _, o := range objs {
		if o.typ == unix.NFT_OBJECT_COUNTER {
			out[o.name] = Counter{Packets: o.packets, Bytes: o.bytes}
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
	b, err := planBatch(p, cur)
	if err != nil {
		return err
	}
	if err := n.commit(b); err != nil {
		return errorf("apply table inet %s: %w", p.Table, err)
	}
	return nil
}

// planBatch is the transaction that turns the installed state cur into p.
func planBatch(p *plan.Plan, cur installed) (*batch, error) {
	t := p.Table
	b := &batch{}
	b.addTable(t) // no-op when it exists

	// 1. Empty every chain first: rules are what refer to sets and objects.
	want := map[string]plan.Chain{}
	for _, c := range p.Chains {
		want[c.Name] = c
	}
	for _, ch := range cur.chains {
		b.flushChain(t, ch.name)
		if c, ok := want[ch.name]; !ok || !sameHook(ch, c) {
			b.delChain(t, ch.name) // gone from the plan, or hooked elsewhere now
		}
	}
	// 2. Sets: drop the stale ones, (re)fill the rest. Maps keep their
	// elements (the engines' kernel state) unless their type changed.
	specs, ids, err := setSpecs(p)
	if err != nil {
		return nil, err
	}
	for _, s := range cur.sets {
		if ws, ok := specs[s.name]; !ok || !sameSet(s, ws) {
			b.delSet(t, s.name)
		}
	}
	for _, s := range p.Sets {
		b.addSet(t, specs[s.Name])
		b.flushSet(t, s.Name)
		elems, err := setElements(s)
		if err != nil {
			return nil, err
		}
		if len(elems) > 0 {
			b.elements(unix.NFT_MSG_NEWSETELEM, t, s.Name, ids[s.Name], elems)
		}
	}
	for _, m := range p.Maps {
		b.addSet(t, specs[m.Name])
	}
	// 3. Named objects: delete the stale ones; adding one that exists
	// changes nothing (counters keep their values).
	wantObj := map[string]bool{}
	for _, name := range p.Counters {
		wantObj[objKey(unix.NFT_OBJECT_COUNTER, name)] = true
	}
	for _, h := range p.Helpers {
		wantObj[objKey(unix.NFT_OBJECT_CT_HELPER, h.Name)] = true
	}
	for _, o := range cur.objs {
		if !wantObj[objKey(o.typ, o.name)] {
			b.delObj(t, o.name, o.typ)
		}
	}
	for _, name := range p.Counters {
		b.addObj(t, name, unix.NFT_OBJECT_COUNTER, counterObj())
	}
	for _, h := range p.Helpers {
		l3 := uint16(unix.NFPROTO_INET)
		if h.L3IPv4 {
			l3 = unix.NFPROTO_IPV4
		}
		b.addObj(t, h.Name, unix.NFT_OBJECT_CT_HELPER, helperObj(h.Type, l3, uint8(h.L4)))
	}
	// 4. Chains and their rules.
	setID := func(name string) (uint32, bool) { id, ok := ids[name]; return id, ok }
	for _, c := range p.Chains {
		hook, err := chainHook(c.Hook)
		if err != nil {
			return nil, err
		}
		b.addChain(t, c.Name, hook, uint32(c.Priority))
		for i, r := range c.Rules {
			exprs, err := ruleWire(r, setID, p.QueueCompat)
			if err != nil {
				return nil, fmt.Errorf("chain %s rule %d: %w", c.Name, i+1, err)
			}
			b.addRule(t, c.Name, exprs, comment(r.Comment))
		}
	}
	return b, nil
}

// setSpecs is every set and map of the plan as the kernel stores it, by
// name, with the batch IDs rules refer to them by (sets first, then maps).
func setSpecs(p *plan.Plan) (map[string]setSpec, map[string]uint32, error) {
	specs, ids := map[string]setSpec{}, map[string]uint32{}
	for i, s := range p.Sets {
		spec, err := plainSet(s)
		if err != nil {
			return nil, nil, err
		}
		spec.id = uint32(i + 1)
		specs[s.Name], ids[s.Name] = spec, spec.id
	}
	for i, m := range p.Maps {
		spec, err := mapSpec(m, uint32(len(p.Sets)+i+1))
		if err != nil {
			return nil, nil, err
		}
		specs[m.Name], ids[m.Name] = spec, spec.id
	}
	return specs, ids, nil
}

// nft's datatype numbers (nftables' include/datatype.h) and sizes.
const (
	typeIPv4Addr    = 7
	typeInetService = 13
	typeIfIndex     = 20
	typeIfName      = 41
)

func plainSet(s plan.Set) (setSpec, error) {
	switch s.Type {
	case "ifname":
		// nft prints string keys by the byte order in the set's userdata;
		// without it, names show up reversed (empty) in `nft list`.
		return setSpec{name: s.Name, keyType: typeIfName, keyLen: unix.IFNAMSIZ, hostOrderKey: true}, nil
	case "ipv4_addr":
		return setSpec{name: s.Name, keyType: typeIPv4Addr, keyLen: 4}, nil
	}
	return setSpec{}, errorf("set %s: unsupported type %q", s.Name, s.Type)
}

// setElements is a plan set's elements as keys.
func setElements(s plan.Set) ([]engine.Element, error) {
	var out []engine.Element
	for _, e := range s.Elements {
		switch s.Type {
		case "ifname":
			out = append(out, engine.Element{Key: ifname(e)})
		case "ipv4_addr":
			a, err := parseIPv4(e)
			if err != nil {
				return nil, errorf("set %s: %w", s.Name, err)
			}
			out = append(out, engine.Element{Key: a})
		default:
			return nil, errorf("set %s: unsupported type %q", s.Name, s.Type)
		}
	}
	return out, nil
}

// sameSet reports whether an installed set can stay as the plan's set or
// map (same kind, key, value and counters; a map then keeps its elements).
// The kernel refuses to re-add a set with other properties (EEXIST), so any
// difference means delete and add.
func sameSet(cur setInfo, want setSpec) bool {
	return cur.flags&unix.NFT_SET_MAP == want.flags&unix.NFT_SET_MAP && cur.keyType == want.keyType &&
		cur.keyLen == want.keyLen && cur.dataType == want.dataType && cur.dataLen == want.dataLen && cur.counter == want.counter
}

// installed is what our table holds now (empty if it does not exist).
type installed struct {
	chains []chainInfo
	sets   []setInfo
	objs   []objInfo
}

func (n *Conn) current(name string) (installed, error) {
	var cur installed
	ok, err := n.Exists(name)
	if err != nil || !ok {
		return cur, err
	}
	if cur.chains, err = n.chains(name); err != nil {
		return cur, errorf("list chains: %w", err)
	}
	if cur.sets, err = n.sets(name); err != nil {
		return cur, errorf("list sets of inet %s: %w", name, err)
	}
	if cur.objs, err = n.objects(name); err != nil {
		return cur, errorf("list objects of inet %s: %w", name, err)
	}
	return cur, nil
}

// sameHook reports whether an installed base chain sits where the plan's
// chain wants to (a chain cannot be moved to another hook in place).
func sameHook(ch chainInfo, c plan.Chain) bool {
	hook, err := chainHook(c.Hook)
	return err == nil && ch.hooked && ch.hook == hook && int32(ch.prio) == c.Priority
}

func objKey(t uint32, name string) string { return fmt.Sprintf("%d/%s", t, name) }

// Intact reports whether the installed table still has the plan's chains,
// rules, sets and counters (by name and count). The daemon uses it to skip
// re-applying an unchanged plan without missing a table someone damaged.
func (n *Conn) Intact(p *plan.Plan) bool {
	chains, err := n.chains(p.Table)
	if err != nil || len(chains) != len(p.Chains) {
		return false
	}
	have := map[string]bool{}
	for _, ch := range chains {
		have[ch.name] = true
	}
	for _, pc := range p.Chains {
		if !have[pc.Name] {
			return false
		}
		rules, err := n.rules(p.Table, pc.Name)
		if err != nil || len(rules) != len(pc.Rules) {
			return false
		}
	}
	sets, err := n.sets(p.Table)
	if err != nil {
		return false
	}
	haveSet := map[string]bool{}
	for _, s := range sets {
		haveSet[s.name] = true
	}
	for _, ps := range p.Sets {
		if !haveSet[ps.Name] {
			return false
		}
		elems, err := listSetElements(n.netns, p.Table, ps.Name)
		if err != nil || len(elems) != len(ps.Elements) {
			return false
		}
	}
	for _, pm := range p.Maps {
		if !haveSet[pm.Name] {
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
	// Adding the table first makes deleting it succeed when it is absent.
	var b batch
	b.addTable(name)
	b.delTable(name)
	if err := n.commit(&b); err != nil {
		return errorf("delete table inet %s: %w", name, err)
	}
	return nil
}

func chainHook(h plan.Hook) (uint32, error) {
	switch h {
	case plan.HookPrerouting:
		return unix.NF_INET_PRE_ROUTING, nil
	case plan.HookForward:
		return unix.NF_INET_FORWARD, nil
	case plan.HookPostrouting:
		return unix.NF_INET_POST_ROUTING, nil
	case plan.HookOutput:
		return unix.NF_INET_LOCAL_OUT, nil
	}
	return 0, errorf("unknown hook %q", h)
}

// ifname pads a device name to IFNAMSIZ as the kernel stores it.
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// comment is a rule's comment as nft stores it in the rule's userdata: a
// TLV of type 0 (NFTNL_UDATA_RULE_COMMENT) holding the NUL-terminated text.
func comment(c string) []byte {
	if c == "" {
		return nil
	}
	if len(c) > 254 { // the TLV's length is a byte, NUL included
		c = c[:254]
	}
	return append(append([]byte{0, byte(len(c) + 1)}, c...), 0)
}
