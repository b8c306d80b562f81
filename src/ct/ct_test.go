package ct

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"testing"

	"github.com/mdlayher/netlink"
)

// encodeFlow builds a ctnetlink message body as the kernel sends it.
func encodeFlow(t testing.TB, f Flow) []byte {
	t.Helper()
	tuple := func(ae *netlink.AttributeEncoder, tu Tuple) error {
		ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
			s, d := tu.Src.As4(), tu.Dst.As4()
			ae.Bytes(ctaIPv4Src, s[:])
			ae.Bytes(ctaIPv4Dst, d[:])
			return nil
		})
		ae.Nested(ctaTupleProto, func(ae *netlink.AttributeEncoder) error {
			ae.Uint8(ctaProtoNum, tu.Proto)
			ae.Uint16(ctaProtoSrcPort, tu.SrcPort)
			ae.Uint16(ctaProtoDstPort, tu.DstPort)
			return nil
		})
		return nil
	}
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Nested(ctaTupleOrig, func(n *netlink.AttributeEncoder) error { n.ByteOrder = binary.BigEndian; return tuple(n, f.Orig) })
	ae.Nested(ctaTupleReply, func(n *netlink.AttributeEncoder) error { n.ByteOrder = binary.BigEndian; return tuple(n, f.Reply) })
	ae.Uint32(ctaStatus, f.Status)
	ae.Uint32(ctaTimeout, f.Timeout)
	ae.Nested(ctaHelp, func(n *netlink.AttributeEncoder) error { n.String(ctaHelpName, f.Helper); return nil })
	if f.TCPState != 0 || f.TCPFlags != [2]uint8{} {
		ae.Nested(ctaProtoinfo, func(n *netlink.AttributeEncoder) error {
			n.Nested(ctaProtoinfoTCP, func(n *netlink.AttributeEncoder) error {
				n.Uint8(ctaProtoinfoTCPState, f.TCPState)
				n.Bytes(ctaProtoinfoTCPFlagsOrig, []byte{f.TCPFlags[0], 0xff})
				n.Bytes(ctaProtoinfoTCPFlagsReply, []byte{f.TCPFlags[1], 0xff})
				return nil
			})
			return nil
		})
	}
	ae.Nested(ctaCountersOrig, func(n *netlink.AttributeEncoder) error {
		n.ByteOrder = binary.BigEndian
		n.Uint64(ctaCountersPackets, f.PacketsOrig)
		n.Uint64(ctaCountersBytes, f.BytesOrig)
		return nil
	})
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func greFlow() Flow {
	return Flow{
		Orig: Tuple{Src: netip.MustParseAddr("10.10.1.2"), Dst: netip.MustParseAddr("198.51.100.2"), Proto: 47,
			SrcPort: 0x1234, DstPort: 0x0001},
		Reply: Tuple{Src: netip.MustParseAddr("198.51.100.2"), Dst: netip.MustParseAddr("198.51.100.1"), Proto: 47,
			SrcPort: 0x0001, DstPort: 0x8001},
		Status: StatusSeenReply | StatusAssured | StatusSrcNAT, Timeout: 1799, Helper: "pptp",
		PacketsOrig: 5, BytesOrig: 500,
	}
}

func tcpFlow() Flow {
	return Flow{
		Orig: Tuple{Src: netip.MustParseAddr("10.10.1.2"), Dst: netip.MustParseAddr("198.51.100.2"), Proto: 6,
			SrcPort: 40000, DstPort: 1723},
		Reply: Tuple{Src: netip.MustParseAddr("198.51.100.2"), Dst: netip.MustParseAddr("198.51.100.1"), Proto: 6,
			SrcPort: 1723, DstPort: 40000},
		Status: StatusSeenReply | StatusAssured | StatusSrcNAT, Timeout: 431999, TCPState: TCPEstablished,
		TCPFlags: [2]uint8{0x08 | 0x20, 0x08},
	}
}

func TestParseFlowRoundTrip(t *testing.T) {
	for _, want := range []Flow{greFlow(), tcpFlow()} {
		got, err := ParseFlow(encodeFlow(t, want))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	}
}

func TestParseFlowMalformed(t *testing.T) {
	for _, b := range [][]byte{{1}, {0xff, 0xff, 1, 0}, {8, 0, 1, 0x80, 4, 0}} {
		if _, err := ParseFlow(b); err == nil {
			t.Errorf("%x parsed", b)
		}
	}
}

func FuzzParseFlow(f *testing.F) {
	f.Add(encodeFlow(f, greFlow()))
	f.Add(encodeFlow(f, tcpFlow()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := ParseFlow(b)
		if err != nil {
			return
		}
		// Whatever parses must re-encode and parse to the same flow when its
		// addresses are IPv4 (or absent, which we fill in).
		if !fl.Orig.Src.IsValid() || !fl.Orig.Dst.IsValid() || !fl.Reply.Src.IsValid() || !fl.Reply.Dst.IsValid() {
			return
		}
		again, err := ParseFlow(encodeFlow(t, fl))
		if err != nil || again != fl {
			t.Fatalf("re-encode: %+v -> %+v (%v)", fl, again, err)
		}
	})
}

// TestDumpKernel sends one UDP datagram to port 1701 inside a fresh
// namespace with conntrack enabled and expects to find its flow.
func TestDumpKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft(8) to enable conntrack in the test namespace")
	}
	name := fmt.Sprintf("vpt-ct-%d", os.Getpid())
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run("ip", "-n", name, "link", "set", "lo", "up")
	// A ct expression makes the kernel track this namespace's packets.
	run("ip", "netns", "exec", name, "nft", "add table ip t; add chain ip t c { type filter hook output priority 0; ct state new counter; }")
	run("ip", "netns", "exec", name, "bash", "-c", "echo hello > /dev/udp/127.0.0.1/1701")
	fd, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	flows, err := DumpNetNS(int(fd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	is1701 := func(f Flow) bool {
		return f.Orig.Proto == 17 && f.Orig.DstPort == 1701 && f.Orig.Dst == netip.MustParseAddr("127.0.0.1")
	}
	found := false
	for _, f := range flows {
		found = found || is1701(f)
	}
	if !found {
		t.Fatalf("UDP 1701 flow not in dump: %+v", flows)
	}
	// Delete it from inside the namespace (DeleteMatching works on the
	// current one), then it must be gone.
	out, err := exec.Command("ip", "netns", "exec", name, "env", "VPT_CT_DELETE=1", os.Args[0], "-test.run=^TestDeleteHelper$").CombinedOutput()
	if err != nil {
		t.Fatalf("delete helper: %v: %s", err, out)
	}
	flows, err = DumpNetNS(int(fd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if is1701(f) {
			t.Fatalf("flow still there after DeleteMatching: %+v", f)
		}
	}
}

// TestDeleteHelper runs inside the test namespace, started by TestDumpKernel
// through `ip netns exec`; on its own it has nothing to do.
func TestDeleteHelper(t *testing.T) {
	if os.Getenv("VPT_CT_DELETE") == "" {
		t.Skip("helper for TestDumpKernel")
	}
	n, err := DeleteMatching(func(f Flow) bool { return f.Orig.DstPort == 1701 && f.Orig.Proto == 17 })
	if err != nil || n != 1 {
		t.Fatalf("deleted %d, err %v", n, err)
	}
}
