package nfqueue

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// TestClearHelper assigns the kernel pptp helper to a loopback TCP 1723
// connection in a fresh namespace, removes it with ClearHelper and checks the
// conntrack entry through a ctnetlink dump.
func TestClearHelper(t *testing.T) {
	ns := newTestNS(t)
	nc, err := nft.OpenNetNS(int(ns.fd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.ProbeCtHelper("pptp", 6); err != nil {
		t.Skipf("kernel has no pptp conntrack helper: %v", err)
	}
	p := &plan.Plan{Table: "cthelper_test",
		Helpers: []plan.Helper{{Name: "pptp", Type: "pptp", L4: plan.ProtoTCP, L3IPv4: true}},
		Chains: []plan.Chain{{Name: "out", Hook: plan.HookOutput, Priority: 0, Rules: []plan.Rule{
			{IPv4Only: true, L4: plan.ProtoTCP, DPort: 1723, CtHelper: "pptp"},
		}}}}
	if err := nc.Apply(p); err != nil {
		t.Fatal(err)
	}
	var c *Conntrack
	var ln *net.TCPListener
	var conn *net.TCPConn
	ns.do(t, func() {
		if ln, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1723}); err != nil {
			return
		}
		if conn, err = net.DialTCP("tcp4", nil, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1723}); err != nil {
			return
		}
		c, err = OpenConntrack()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	defer conn.Close()
	defer c.Close()
	src := netip.MustParseAddrPort(conn.LocalAddr().String())
	dst := netip.MustParseAddrPort("127.0.0.1:1723")

	helper := func() string {
		flows, err := ct.DumpNetNS(int(ns.fd.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flows {
			if f.Orig.Proto == 6 && f.Orig.SrcPort == src.Port() && f.Orig.DstPort == 1723 {
				if f.Helper == "" {
					return "-"
				}
				return f.Helper
			}
		}
		return "missing"
	}
	if h := helper(); h != "pptp" {
		t.Fatalf("before: helper %q, want pptp", h)
	}
	if err := c.ClearHelper(src, dst); err != nil {
		t.Fatalf("ClearHelper: %v", err)
	}
	if h := helper(); h != "-" {
		t.Errorf("after: helper %q, want none", h)
	}
	// A connection that does not exist.
	err = c.ClearHelper(netip.MustParseAddrPort("127.0.0.1:1"), dst)
	if err != unix.ENOENT {
		t.Errorf("unknown connection: %v, want ENOENT", err)
	}
}

func TestClearHelperMsg(t *testing.T) {
	b := clearHelperMsg(3, netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("198.51.100.2:1723"))
	m, rest, ok, err := nextMsg(b)
	if err != nil || !ok || len(rest) != 0 {
		t.Fatal(ok, err)
	}
	if m.typ != 1<<8 || m.flags != nlmFRequest|nlmFAck || m.seq != 3 || m.body[0] != unix.AF_INET {
		t.Errorf("header %+v", m)
	}
	var types []uint16
	for a := m.body[nfgenLen:]; ; {
		typ, _, r, ok, err := nextAttr(a)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		types = append(types, typ)
		a = r
	}
	if len(types) != 2 || types[0] != ctaTupleOrig || types[1] != ctaHelp {
		t.Errorf("attributes %v", types)
	}
}
