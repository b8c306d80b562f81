package nfqueue

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// These tests run a real kernel queue inside a network namespace they create
// (root only): nft rules made by src/nft send loopback UDP to the queue, and
// the handler's verdicts decide what the receiving socket gets.

type testNS struct {
	name string
	fd   *os.File
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace, nftables rules and an NFQUEUE")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) (iproute2)")
	}
	name := fmt.Sprintf("vpt-nfq-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	f, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &testNS{name: name, fd: f}
}

// do runs f on a thread switched into the namespace. Sockets made in f stay
// in the namespace.
func (n *testNS) do(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			t.Errorf("own namespace: %v", err)
			return
		}
		defer home.Close()
		if err := unix.Setns(int(n.fd.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			t.Errorf("setns: %v", err)
			return
		}
		f()
		// Back home and unlocked; if that fails the thread stays locked
		// and ends with this goroutine, so nobody inherits the namespace.
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}

// queueRules returns a plan that queues loopback UDP to port to queue num
// (output hook), and to port+1 when it arrives (prerouting), and counts packets carrying mark 0x56 in the low byte.
func queueRules(num uint16, port uint16, compat bool) *plan.Plan {
	return &plan.Plan{
		Table:       "nfq_test",
		Counters:    []string{"marked"},
		QueueCompat: compat,
		Chains: []plan.Chain{
			{Name: "out", Hook: plan.HookOutput, Priority: 0, Rules: []plan.Rule{
				{L4: plan.ProtoUDP, DPort: port, Queue: &plan.QueueStmt{Num: num, Bypass: true}},
			}},
			// The kernel timestamps queued packets only up to forward:
			// T packets to port+1 are queued when they arrive.
			{Name: "in", Hook: plan.HookPrerouting, Priority: 0, Rules: []plan.Rule{
				{L4: plan.ProtoUDP, DPort: port + 1, Queue: &plan.QueueStmt{Num: num, Bypass: true}},
			}},
			{Name: "after", Hook: plan.HookOutput, Priority: 10, Rules: []plan.Rule{
				{L4: plan.ProtoUDP, DPort: port, MarkMask: 0xff, Mark: 0x56, Counter: "marked"},
			}},
		},
	}
}

// handler acts on the first payload byte of UDP packets: D drops, M rewrites
// the second byte to 'X', K sets mark 0x56 on top of the existing mark.
type handler struct {
	mu      sync.Mutex
	seen    int
	batches []int
	times   []time.Time // Packet.Time of the T packets
}

func (h *handler) HandleBatch(pkts []Packet) {
	h.mu.Lock()
	h.seen += len(pkts)
	h.batches = append(h.batches, len(pkts))
	h.mu.Unlock()
	for i := range pkts {
		p := &pkts[i]
		if len(p.Data) < 30 {
			continue
		}
		ihl := int(p.Data[0]&0x0f) * 4
		udp := p.Data[ihl:]
		payload := udp[8:]
		switch payload[0] {
		case 'D':
			p.Verdict = Drop
		case 'M':
			payload[1] = 'X'
			udp[6], udp[7] = 0, 0 // no UDP checksum: the receiver accepts it
			p.Modified = true
		case 'K':
			p.SetMark, p.NewMark = true, p.Mark&^0xff|0x56
		case 'T':
			h.mu.Lock()
			h.times = append(h.times, p.Time)
			h.mu.Unlock()
		}
	}
}

func TestQueueInNetns(t *testing.T) {
	for _, mode := range []string{"native", "compat"} {
		t.Run(mode, func(t *testing.T) {
			ns := newTestNS(t)
			nc, err := nft.OpenNetNS(int(ns.fd.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			compat := mode == "compat"
			if err := nc.ProbeQueue(compat); err != nil {
				t.Skipf("this kernel has no %s queue rule: %v", mode, err)
			}
			const num, port = 4242, 9999
			if err := nc.Apply(queueRules(num, port, compat)); err != nil {
				t.Fatal(err)
			}
			var q *Queue
			var rx, tx, trx, ttx *net.UDPConn
			ns.do(t, func() {
				if q, err = Open(Config{Num: num, Batch: 64}); err != nil {
					return
				}
				if rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
					return
				}
				if tx, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
					return
				}
				if trx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1}); err != nil {
					return
				}
				ttx, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
			})
			if err != nil {
				t.Fatal(err)
			}
			defer rx.Close()
			defer tx.Close()
			defer trx.Close()
			defer ttx.Close()
			h := &handler{}
			ctx, cancel := context.WithCancel(context.Background())
			runDone := make(chan error, 1)
			go func() { runDone <- q.Run(ctx, h) }()
			stopped := false
			stop := func() {
				if !stopped {
					cancel()
					if err := <-runDone; err != nil {
						t.Errorf("Run: %v", err)
					}
					q.Close()
					stopped = true
				}
			}
			defer stop()

			recvFrom := func(rx *net.UDPConn, want int, wait time.Duration) []string {
				var got []string
				buf := make([]byte, 2048)
				deadline := time.Now().Add(wait)
				for len(got) < want && time.Now().Before(deadline) {
					rx.SetReadDeadline(deadline)
					n, err := rx.Read(buf)
					if err != nil {
						break
					}
					got = append(got, string(buf[:n]))
				}
				return got
			}
			recvAll := func(want int, wait time.Duration) []string { return recvFrom(rx, want, wait) }

			// Bursts: every packet comes back, in batches. Bursts of 100
			// stay below the receiving socket's default buffer.
			const burst = 500
			for b := 0; b < burst/100; b++ {
				for i := 0; i < 100; i++ {
					if _, err := tx.Write([]byte(fmt.Sprintf("A%04d", b*100+i))); err != nil {
						t.Fatal(err)
					}
				}
				if got := recvAll(100, 5*time.Second); len(got) != 100 {
					t.Fatalf("burst %d: received %d of 100; queue stats %+v", b, len(got), q.Stats())
				}
			}

			// Drop.
			tx.Write([]byte("Dxxxx"))
			tx.Write([]byte("Afterdrop"))
			if got := recvAll(2, 500*time.Millisecond); len(got) != 1 || got[0] != "Afterdrop" {
				t.Errorf("drop: received %q, want only Afterdrop", got)
			}

			// Modify.
			tx.Write([]byte("Mabc"))
			if got := recvAll(1, 2*time.Second); len(got) != 1 || got[0] != "MXbc" {
				t.Errorf("modify: received %q, want MXbc", got)
			}

			// Mark: a later chain sees it.
			for i := 0; i < 3; i++ {
				tx.Write([]byte("Kmark"))
			}
			if got := recvAll(3, 2*time.Second); len(got) != 3 {
				t.Errorf("mark: received %d of 3", len(got))
			}
			cs, err := nc.Counters("nfq_test")
			if err != nil {
				t.Fatal(err)
			}
			if cs["marked"].Packets != 3 {
				t.Errorf("marked counter = %d, want 3", cs["marked"].Packets)
			}

			// Timestamps: with the kernel timestamping, a packet says
			// when it was queued, before the reader got it.
			ts, err := EnableTimestamps()
			if err != nil {
				t.Fatal(err)
			}
			// The kernel turns timestamping on from a work item: the
			// first packets after the switch may still have none.
			var sent, stamped time.Time
			for i := 0; i < 50 && stamped.IsZero(); i++ {
				h.mu.Lock()
				h.times = h.times[:0]
				h.mu.Unlock()
				sent = time.Now()
				ttx.Write([]byte("Tstamp"))
				if got := recvFrom(trx, 1, 2*time.Second); len(got) != 1 {
					t.Fatalf("timestamp: received %q", got)
				}
				h.mu.Lock()
				if len(h.times) == 1 {
					stamped = h.times[0]
				}
				h.mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
			ts.Close()
			if stamped.IsZero() {
				t.Errorf("no NFQA_TIMESTAMP on queued packets with timestamping on")
			} else if d := stamped.Sub(sent); d < -time.Millisecond || d > time.Second {
				t.Errorf("queued packet stamped %s after it was sent", d)
			}

			st := q.Stats()
			h.mu.Lock()
			t.Logf("stats %+v; %d batches, largest %d", st, len(h.batches), maxInt(h.batches))
			h.mu.Unlock()
			if st.Packets < burst+6 || st.NLErrors != 0 || st.BadMsgs != 0 {
				t.Errorf("stats %+v", st)
			}
			if st.Sends >= st.Packets {
				t.Errorf("%d sends for %d packets: verdicts were not batched", st.Sends, st.Packets)
			}

			// Bypass: with the queue gone, packets pass unprocessed.
			stop()
			tx.Write([]byte("Dbypass"))
			if got := recvAll(1, 2*time.Second); len(got) != 1 || got[0] != "Dbypass" {
				t.Errorf("bypass after close: received %q", got)
			}
		})
	}
}

func maxInt(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// TestQueueBusy: a second socket cannot bind a queue that is in use.
func TestQueueBusy(t *testing.T) {
	ns := newTestNS(t)
	var err1, err2 error
	var q1, q2 *Queue
	ns.do(t, func() {
		q1, err1 = Open(Config{Num: 4243})
		q2, err2 = Open(Config{Num: 4243})
	})
	if err1 != nil {
		t.Fatal(err1)
	}
	defer q1.Close()
	if err2 == nil {
		q2.Close()
		t.Fatal("second bind of the same queue succeeded")
	}
	if !strings.Contains(err2.Error(), "4243") {
		t.Errorf("error does not name the queue: %v", err2)
	}
}

// TestRunNoAllocs: the receive-handle-verdict loop does not allocate per
// packet once running.
func TestRunNoAllocs(t *testing.T) {
	ns := newTestNS(t)
	nc, err := nft.OpenNetNS(int(ns.fd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	compat := nc.ProbeQueue(false) != nil
	if err := nc.Apply(queueRules(4244, 9998, compat)); err != nil {
		t.Fatal(err)
	}
	var q *Queue
	var tx, rx *net.UDPConn
	ns.do(t, func() {
		if q, err = Open(Config{Num: 4244}); err != nil {
			return
		}
		if rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9998}); err != nil {
			return
		}
		tx, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9998})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	defer tx.Close()
	defer rx.Close()
	h := HandlerFunc(func(pkts []Packet) {
		for i := range pkts {
			pkts[i].Modified = true // exercise the payload path
		}
	})
	msg := []byte("Apayload")
	var total int
	allocs := testing.AllocsPerRun(50, func() {
		tx.Write(msg)
		n, _ := q.Step(h)
		total += n
	})
	if total < 40 {
		t.Fatalf("only %d packets handled", total)
	}
	// tx.Write itself may allocate in the net package; the queue's part is
	// what matters, so measure Step alone on a prefilled queue too.
	for i := 0; i < 64; i++ {
		tx.Write(msg)
	}
	time.Sleep(50 * time.Millisecond)
	allocs = testing.AllocsPerRun(1, func() { q.Step(h) })
	if allocs != 0 {
		t.Errorf("Step allocated %v times", allocs)
	}
}
