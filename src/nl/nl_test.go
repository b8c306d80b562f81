package nl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func msg(typ, flags uint16, seq uint32, data []byte) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// parse reads a datagram as Receive does: its messages, and the first
// errno one of them carries as an error.
func parse(b []byte) ([]Message, error) {
	var out []Message
	err := Messages(b, func(m Message) error {
		out = append(out, m)
		return m.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func TestParseMessages(t *testing.T) {
	errno := func(e int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(-e)) }
	b := append(msg(16, unix.NLM_F_MULTI, 7, []byte{1, 2, 3}), msg(unix.NLMSG_ERROR, 0, 7, errno(0))...)
	ms, err := parse(b)
	if err != nil || len(ms) != 2 || ms[0].Type != 16 || ms[0].Seq != 7 || !bytes.Equal(ms[0].Data, []byte{1, 2, 3}) || ms[1].Type != unix.NLMSG_ERROR {
		t.Fatalf("%+v, %v", ms, err)
	}
	_, err = parse(msg(unix.NLMSG_ERROR, 0, 1, errno(int32(unix.ENOENT))))
	if !errors.Is(err, unix.ENOENT) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error message: %v, want ENOENT", err)
	}
	// A dump the kernel ends with an error says so in its NLMSG_DONE.
	if _, err := parse(msg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 1, errno(int32(unix.EINTR)))); !errors.Is(err, unix.EINTR) {
		t.Fatalf("DONE with an errno: %v", err)
	}
	if ms, err := parse(msg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 1, errno(0))); err != nil || len(ms) != 1 {
		t.Fatalf("plain DONE: %v %v", ms, err)
	}
	for _, bad := range [][]byte{msg(1, 0, 0, nil)[:15], {200, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, msg(unix.NLMSG_ERROR, 0, 0, []byte{1})} {
		if _, err := parse(bad); err == nil && len(bad) >= unix.NLMSG_HDRLEN {
			t.Errorf("%x parsed", bad)
		}
	}
}

func TestAttrsWalk(t *testing.T) {
	a := Attrs(nil).U8(1, 9).U16(2, 0x1234).U32(3, 7).U64(4, 1<<40).Str(5, "ab").Nest(6, Attrs(nil).U32(1, 5))
	want := map[uint16]uint64{1: 9, 2: 0x1234, 3: 7, 4: 1 << 40}
	var types []uint16
	err := Walk(a, func(typ uint16, d []byte) error {
		types = append(types, typ)
		switch typ {
		case 5:
			if String(d) != "ab" {
				t.Errorf("string %q", d)
			}
		case 6:
			return Walk(d, func(typ uint16, d []byte) error {
				if v, ok := Uint(d); typ != 1 || !ok || v != 5 {
					t.Errorf("nested %d %x", typ, d)
				}
				return nil
			})
		default:
			if v, ok := Uint(d); !ok || v != want[typ] {
				t.Errorf("attribute %d: %x, want %d", typ, d, want[typ])
			}
		}
		return nil
	})
	if err != nil || fmt.Sprint(types) != "[1 2 3 4 5 6]" {
		t.Fatalf("types %v, %v", types, err)
	}
	for _, bad := range [][]byte{{1}, {8, 0, 1, 0, 0}, {3, 0, 1, 0}, {0xff, 0xff, 1, 0}} {
		if err := Walk(bad, func(uint16, []byte) error { return nil }); err == nil {
			t.Errorf("%x walked", bad)
		}
	}
}

// FuzzParseMessages: any datagram parses or fails without a panic, and
// what parses fits in it.
func FuzzParseMessages(f *testing.F) {
	f.Add(msg(16, unix.NLM_F_MULTI, 7, []byte{1, 2, 3}))
	f.Add(msg(unix.NLMSG_ERROR, 0, 1, []byte{0xfe, 0xff, 0xff, 0xff}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := parse(b)
		if err != nil {
			return
		}
		n := 0
		for _, m := range ms {
			n += unix.NLMSG_HDRLEN + len(m.Data)
		}
		if n > len(b) {
			t.Fatalf("%d bytes of messages from %d", n, len(b))
		}
	})
}

// FuzzWalk: any attribute run walks or fails without a panic, every
// attribute inside the input.
func FuzzWalk(f *testing.F) {
	f.Add([]byte(Attrs(nil).U32(1, 2).Nest(2, Attrs(nil).Str(1, "x"))))
	f.Add([]byte{4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		_ = Walk(b, func(_ uint16, d []byte) error {
			n += 4 + len(d)
			return nil
		})
		if n > len(b) {
			t.Fatalf("%d bytes of attributes from %d", n, len(b))
		}
	})
}

// TestKernel talks to this kernel: links and addresses of a namespace it
// creates (through a child in it, as Links works on the current one), and
// requests, errors and deadlines on nf_tables in it.
func TestKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	if os.Getenv("VPT_NL_CHILD") != "" {
		child(t)
		return
	}
	name := fmt.Sprintf("vpt-nl-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run("ip", "-n", name, "link", "set", "lo", "up")
	run("ip", "-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	run("ip", "-n", name, "addr", "add", "192.0.2.7/24", "dev", "d0")
	run("ip", "-n", name, "addr", "add", "192.0.2.8/24", "dev", "d0")
	out, err := exec.Command("ip", "netns", "exec", name, "env", "VPT_NL_CHILD=1", os.Args[0], "-test.run=^TestKernel$", "-test.v").CombinedOutput()
	if err != nil {
		t.Fatalf("in the namespace: %v\n%s", err, out)
	}
	t.Logf("%s", out)

	// From outside, through the namespace's fd: a request that fails
	// with ENOENT (no such table) and one that succeeds.
	fd, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	c, err := Dial(unix.NETLINK_NETFILTER, int(fd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	get := func(table string) ([]Message, error) {
		return c.Execute(Message{Type: unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETTABLE, Flags: Request,
			Data: append([]byte{unix.NFPROTO_INET, 0, 0, 0}, Attrs(nil).Str(unix.NFTA_TABLE_NAME, table)...)})
	}
	if _, err := get("nosuch"); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("absent table: %v, want ENOENT", err)
	}
	run("ip", "netns", "exec", name, "nft", "add table inet here")
	ms, err := get("here")
	if err != nil || len(ms) != 1 {
		t.Fatalf("table here: %v %+v", err, ms)
	}
	// Nothing answers an empty receive: the deadline ends it.
	if err := c.SetDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Receive(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("receive with nothing to read: %v, want a deadline error", err)
	}
}

func child(t *testing.T) {
	links, err := Links()
	if err != nil {
		t.Fatal(err)
	}
	var d0 Link
	for _, l := range links {
		if l.Name == "d0" {
			d0 = l
		}
	}
	lo, err := LinkByName("lo")
	if err != nil || lo.Flags&unix.IFF_LOOPBACK == 0 || lo.Flags&unix.IFF_UP == 0 {
		t.Fatalf("lo: %+v %v", lo, err)
	}
	if d0.Index == 0 || d0.Index == lo.Index {
		t.Fatalf("links %+v: no d0", links)
	}
	if l, err := LinkByIndex(d0.Index); err != nil || l.Name != "d0" {
		t.Fatalf("index %d: %+v %v", d0.Index, l, err)
	}
	if _, err := LinkByName("nosuch0"); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("absent link: %v, want ENODEV", err)
	}
	addrs, err := IPv4Addrs(d0.Index)
	if err != nil || fmt.Sprint(addrs) != "[192.0.2.7 192.0.2.8]" {
		t.Fatalf("d0's addresses %v %v, want the primary first", addrs, err)
	}
	if a, err := IPv4Addrs(lo.Index); err != nil || len(a) != 1 || a[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("lo's addresses %v %v", a, err)
	}
}
