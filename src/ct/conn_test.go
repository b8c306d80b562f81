package ct

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The request names the connection by its original tuple and carries an
// empty helper name; the bytes are those nfqueue's earlier hand-written
// encoder produced (the kernel test below proves them against ctnetlink).
func TestClearHelperRequest(t *testing.T) {
	b, err := ClearHelperRequest(netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("198.51.100.2:1723"))
	if err != nil {
		t.Fatal(err)
	}
	want := "3400018014000180080001000a00000208000200c63364021c000280050001000600000006000200" +
		"9c4000000600030006bb0000" + "0c0005800500010000000000"
	if got := fmt.Sprintf("%x", b); got != want {
		t.Errorf("request\n got %s\nwant %s", got, want)
	}
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatal(err)
	}
	var types []uint16
	for ad.Next() {
		types = append(types, ad.Type())
	}
	if len(types) != 2 || types[0] != ctaTupleOrig || types[1] != ctaHelp {
		t.Errorf("attributes %v", types)
	}
	if _, err := ClearHelperRequest(netip.MustParseAddrPort("[::1]:1"), netip.MustParseAddrPort("10.0.0.1:1723")); err == nil {
		t.Error("IPv6 tuple accepted")
	}
}

// TestClearHelperKernel assigns the kernel pptp helper to a loopback TCP
// 1723 connection in a fresh namespace, removes it with ClearHelper and checks
// the entry through a dump (the work runs in TestClearHelperInNS, started
// inside the namespace).
func TestClearHelperKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft(8) to assign a helper in the test namespace")
	}
	name := fmt.Sprintf("vpt-cth-%d", os.Getpid())
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run("ip", "-n", name, "link", "set", "lo", "up")
	if out, err := exec.Command("ip", "netns", "exec", name, "nft",
		`add table ip t; add ct helper ip t pptp { type "pptp" protocol tcp; l3proto ip; }; `+
			`add chain ip t c { type filter hook output priority 0; }; add rule ip t c tcp dport 1723 ct helper set "pptp"`).CombinedOutput(); err != nil {
		t.Skipf("kernel has no pptp conntrack helper: %v: %s", err, out)
	}
	out, err := exec.Command("ip", "netns", "exec", name, "env", "VPT_CT_CLEAR=1", os.Args[0], "-test.run=^TestClearHelperInNS$", "-test.v").CombinedOutput()
	if err != nil {
		t.Fatalf("in the namespace: %v: %s", err, out)
	}
	t.Logf("%s", out)
}

func TestClearHelperInNS(t *testing.T) {
	if os.Getenv("VPT_CT_CLEAR") == "" {
		t.Skip("helper for TestClearHelperKernel")
	}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1723})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.DialTCP("tcp4", nil, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1723})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Available(); err != nil {
		t.Fatalf("Available: %v", err)
	}
	src := netip.MustParseAddrPort(conn.LocalAddr().String())
	dst := netip.MustParseAddrPort("127.0.0.1:1723")
	helper := func() string {
		flows, err := Dump()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flows {
			if f.Orig.Proto == 6 && f.Orig.SrcPort == src.Port() && f.Orig.DstPort == 1723 {
				if f.TCPState != TCPEstablished {
					t.Errorf("TCP state %d, want established (%d)", f.TCPState, TCPEstablished)
				}
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
	f, err := c.Get(Tuple{Src: src.Addr(), Dst: dst.Addr(), Proto: 6, SrcPort: src.Port(), DstPort: dst.Port()})
	if err != nil || f.TCPState != TCPEstablished || f.Status&StatusAssured == 0 || f.Reply.Dst != src.Addr() || f.Reply.DstPort != src.Port() {
		t.Errorf("Get: %+v, %v", f, err)
	}
	if _, err := c.Get(Tuple{Src: src.Addr(), Dst: dst.Addr(), Proto: 6, SrcPort: 1, DstPort: 1723}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Get of no connection: %v, want ENOENT", err)
	}
	if err := c.ClearHelper(src, dst); err != nil {
		t.Fatalf("ClearHelper: %v", err)
	}
	if h := helper(); h != "-" {
		t.Errorf("after: helper %q, want none", h)
	}
	err = c.ClearHelper(netip.MustParseAddrPort("127.0.0.1:1"), dst)
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("unknown connection: %v, want ENOENT", err)
	}
	// An enhanced GRE packet (what the kernel masquerades for a PPTP
	// client): without the helper's keymap its entry's original tuple has
	// source key 0 and the packet's key as destination key, which is how
	// the PPTP engine looks up a call's outbound GRE.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_GRE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	gre := []byte{0x20, 0x01, 0x88, 0x0b, 0, 0, 0x70, 0x01} // K, version 1, PPP, length 0, key 0x7001
	if err := unix.Sendto(fd, gre, 0, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	if f, err := c.Get(Tuple{Src: lo, Dst: lo, Proto: unix.IPPROTO_GRE, DstPort: 0x7001}); err != nil || f.Orig.SrcPort != 0 || f.Orig.DstPort != 0x7001 {
		t.Errorf("Get of the GRE entry by (0, key): %+v, %v", f, err)
	}
}
