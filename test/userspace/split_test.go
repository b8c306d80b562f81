package userspace

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// The control messages this test writes by hand (RFC 2637 section 2), so
// that it can cut them where it likes.
func ctrlMsg(typ uint16, size int, fields map[int]uint16) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint16(b[0:], uint16(size))
	binary.BigEndian.PutUint16(b[2:], 1)
	binary.BigEndian.PutUint32(b[4:], 0x1A2B3C4D)
	binary.BigEndian.PutUint16(b[8:], typ)
	for off, v := range fields {
		binary.BigEndian.PutUint16(b[off:], v)
	}
	return b
}

func msgSCCRQ() []byte { return ctrlMsg(1, 156, map[int]uint16{12: 0x0100}) }
func msgOCRQ(id uint16) []byte {
	return ctrlMsg(7, 168, map[int]uint16{12: id, 14: 1, 28: 0, 30: 3, 32: 64})
}
func msgEcho() []byte          { return ctrlMsg(5, 16, map[int]uint16{12: 0x55aa}) }
func msgCCRQ(id uint16) []byte { return ctrlMsg(12, 16, map[int]uint16{12: id}) }

// dialFrom opens a TCP connection from inside namespace ns with Nagle off,
// so every write goes out as a segment of its own. The thread is switched
// into ns and back; it must not simply exit while locked: the runtime would
// end the OS thread, and a child the lab spawned from that thread (the
// daemon) would get its PR_SET_PDEATHSIG.
func dialFrom(ns, addr string) (*net.TCPConn, error) {
	type res struct {
		c   *net.TCPConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		defer home.Close()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- res{nil, err}
			return
		}
		c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: stay locked, the thread ends with this goroutine
		if err != nil {
			ch <- res{nil, err}
			return
		}
		tc := c.(*net.TCPConn)
		_ = tc.SetNoDelay(true)
		ch <- res{tc, nil}
	}()
	r := <-ch
	return r.c, r.err
}

// writeParts writes b in pieces cut at the given offsets, with a pause
// between them so each is its own segment.
func writeParts(c *net.TCPConn, b []byte, cuts ...int) error {
	prev := 0
	for _, cut := range append(cuts, len(b)) {
		if _, err := c.Write(b[prev:cut]); err != nil {
			return err
		}
		prev = cut
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// readMsg reads one control message and returns its type.
func readMsg(r *bufio.Reader) ([]byte, uint16, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < 12 || n > 4096 {
		return nil, 0, fmt.Errorf("length %d", n)
	}
	b := make([]byte, n)
	copy(b, hdr[:])
	if _, err := io.ReadFull(r, b[2:]); err != nil {
		return nil, 0, err
	}
	return b, binary.BigEndian.Uint16(b[8:]), nil
}

// TestSplitAndCoalescedControl: one client cuts its messages across
// segments (the Outgoing-Call-Request and the Call-Clear-Request right
// between the two bytes of the Call ID), the other sends several messages in
// one segment; both use the same Call ID to the same server, and the
// server sees two different translations.
func TestSplitAndCoalescedControl(t *testing.T) {
	lab.Need(t)
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{Clients: 2})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	cfg := l.KernelUCI()
	cfg.Mode = "userspace"
	e := &env{t: t, l: l, srv: srv, bin: bin, cfg: cfg}
	e.startDaemon()
	t.Cleanup(func() {
		e.d.Kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", e.d.Log())
		}
		removeFiles(e.stateFiles())
	})
	mark := srv.Mark()
	server := l.Server.Addr.String() + ":1723"
	const callID = 0x0102

	c1, err := dialFrom(l.Client(1).NS, server)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := dialFrom(l.Client(2).NS, server)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c1.SetDeadline(time.Now().Add(15 * time.Second))
	_ = c2.SetDeadline(time.Now().Add(15 * time.Second))
	r1, r2 := bufio.NewReader(c1), bufio.NewReader(c2)
	expect := func(r *bufio.Reader, want uint16) []byte {
		t.Helper()
		m, typ, err := readMsg(r)
		if err != nil || typ != want {
			t.Fatalf("read: type %d, %v; want type %d", typ, err, want)
		}
		return m
	}

	// Client 1: SCCRQ in three segments, OCRQ cut between the Call ID's
	// two bytes.
	if err := writeParts(c1, msgSCCRQ(), 50, 100); err != nil {
		t.Fatal(err)
	}
	expect(r1, 2)
	if err := writeParts(c1, msgOCRQ(callID), 13); err != nil {
		t.Fatal(err)
	}
	ocrp1 := expect(r1, 8)
	// Client 2: SCCRQ, OCRQ and an Echo-Request in one segment.
	all := append(append(msgSCCRQ(), msgOCRQ(callID)...), msgEcho()...)
	if err := writeParts(c2, all); err != nil {
		t.Fatal(err)
	}
	expect(r2, 2)
	ocrp2 := expect(r2, 8)
	expect(r2, 6)

	for i, m := range [][]byte{ocrp1, ocrp2} {
		if peer := binary.BigEndian.Uint16(m[14:]); peer != callID {
			t.Errorf("client %d: Outgoing-Call-Reply Peer's Call ID %#x, want its own %#x", i+1, peer, callID)
		}
	}
	seen := map[int]bool{}
	for _, ev := range srv.Events(mark, "ocrq") {
		if ev.FromIP() != l.WANAddr.String() || seen[*ev.CallID] || *ev.CallID == 0 {
			t.Errorf("server's OCRQ event %+v (seen %v)", ev, seen)
		}
		seen[*ev.CallID] = true
	}
	if len(seen) != 2 {
		t.Errorf("server saw %d distinct Call IDs, want 2", len(seen))
	}
	// GRE of client 1's call comes back to client 1.
	sid := binary.BigEndian.Uint16(ocrp1[12:])
	if r, err := l.PPTPClient(1, "--gre-only", "--call-id", fmt.Sprint(callID), "--server-call-id", fmt.Sprint(sid), "--count", "5"); err != nil || !r.OK {
		t.Errorf("GRE of the split client's call: %v %+v", err, r)
	}
	// Call-Clear-Request cut between the Call ID's bytes: the server must
	// find the call (it knows it by the translated ID).
	if err := writeParts(c1, msgCCRQ(callID), 13); err != nil {
		t.Fatal(err)
	}
	cdn := expect(r1, 13)
	if got := binary.BigEndian.Uint16(cdn[12:]); got != sid {
		t.Errorf("Call-Disconnect-Notify for %#x, want the server's %#x", got, sid)
	}
	// The server reports the clear on its stdout after answering it: wait
	// for the line rather than racing the client's read of the CDN.
	clears := srv.Events(mark, "call-clear")
	for deadline := time.Now().Add(lab.Scale(3 * time.Second)); len(clears) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		clears = srv.Events(mark, "call-clear")
	}
	if len(clears) != 1 || clears[0].Error != "" {
		t.Errorf("server's Call-Clear-Request events %+v", clears)
	}
	if c := e.status().Counters; c["pptp_control_out_of_order"].Packets != 0 || c["pptp_control_bad_messages"].Packets != 0 {
		t.Errorf("engine counters %+v", c)
	}
	if n := len(e.status().pptpSessions()); n != 1 {
		t.Errorf("%d sessions after one of two calls was cleared", n)
	}
}
