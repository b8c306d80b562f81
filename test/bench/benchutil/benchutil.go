// Package benchutil is what the `make bench` programs share: a sendmmsg
// flooder, counter reading at the receiver, and medians. The programs print
// figures; nothing here passes or fails.
package benchutil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// Main runs a bench program: `<prog> flood ...` is the sender half, which
// the program spawns in a lab namespace; anything else is the bench itself.
func Main(name string, run func() error, flood func(args []string) error) {
	if len(os.Args) > 1 && os.Args[1] == "flood" {
		if err := flood(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "flood:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Setup is what a bench program needs before it measures: the lab's
// requirements, the daemon binary, its own executable (it runs its flood
// half in a lab namespace) and a lab of cfg. When the machine lacks a
// requirement it prints "<name>: skipped: <why>" and returns a nil lab and
// no error: benches print figures, they do not fail for that.
func Setup(name string, cfg lab.Config) (l *lab.Lab, bin, self string, err error) {
	if why := lab.Requirements(); why != "" {
		fmt.Println(name+": skipped:", why)
		return nil, "", "", nil
	}
	bin, why := lab.FindDaemonBin()
	if why != "" {
		fmt.Println(name+": skipped:", why)
		return nil, "", "", nil
	}
	if self, err = os.Executable(); err != nil {
		return nil, "", "", err
	}
	l, err = lab.New(cfg)
	return l, bin, self, err
}

// ReadCounter reads the packets of counter name in table inet bench, which
// the program installs at its receiver.
func ReadCounter(l *lab.Lab, ns, name string) (uint64, error) {
	out, err := l.Exec(ns, "nft", "-j", "list", "counter", "inet", "bench", name)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return 0, err
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			return o.Counter.Packets, nil
		}
	}
	return 0, errors.New("no counter in nft output")
}

// Measure runs `self flood --seconds <dur+1s> floodArgs...` in namespace
// from and returns the packets per second counter saw at namespace at over
// the middle dur (the first half second warms up).
func Measure(l *lab.Lab, self, from, at, counter string, dur time.Duration, floodArgs ...string) (float64, error) {
	total := dur + time.Second
	argv := append([]string{self, "flood", "--seconds", strconv.FormatFloat(total.Seconds(), 'f', 3, 64)}, floodArgs...)
	p, err := l.Spawn(from, "flood", argv...)
	if err != nil {
		return 0, err
	}
	defer p.Kill()
	time.Sleep(500 * time.Millisecond)
	c0, err := ReadCounter(l, at, counter)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(dur)
	c1, err := ReadCounter(l, at, counter)
	if err != nil {
		return 0, err
	}
	el := time.Since(t0)
	if err := p.Wait(total + 10*time.Second); err != nil {
		return 0, fmt.Errorf("%v (stderr %v)", err, p.Stderr())
	}
	return float64(c1-c0) / el.Seconds(), nil
}

// Median of v (the upper one for an even count).
func Median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// List prints rates in thousands, for the runs column.
func List(v []float64) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, strconv.FormatFloat(x/1000, 'f', 0, 64)+"k")
	}
	return strings.Join(parts, " ")
}

// Flood sends size-byte packets on the connected socket fd with sendmmsg,
// 64 at a time, for secs seconds or count packets (exactly one of them set;
// both bounded by the callers' flags). fill prepares each buffer once; stamp,
// if set, writes a sequence number before each send.
func Flood(fd, size int, secs float64, count int, fill func(b []byte), stamp func(b []byte, seq uint32)) error {
	if (secs <= 0) == (count <= 0) || secs > 120 || count > 1_000_000 {
		return errors.New("need one of --seconds (<= 120) or --count (<= 1e6)")
	}
	const batch = 64
	bufs := make([][]byte, batch)
	iovs := make([]unix.Iovec, batch)
	msgs := make([]mmsghdr, batch)
	for i := range bufs {
		bufs[i] = make([]byte, size)
		fill(bufs[i])
		iovs[i].Base = &bufs[i][0]
		iovs[i].SetLen(size)
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.SetIovlen(1)
	}
	ctx := context.Background()
	if secs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(secs*float64(time.Second)))
		defer cancel()
	}
	sent, seq := 0, uint32(0)
	for ctx.Err() == nil && (count == 0 || sent < count) {
		n := batch
		if count > 0 && count-sent < n {
			n = count - sent
		}
		if stamp != nil {
			for i := 0; i < n; i++ {
				seq++
				stamp(bufs[i], seq)
			}
		}
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(n), 0, 0, 0)
		if e != 0 {
			switch e {
			case unix.ENOBUFS, unix.EAGAIN, unix.ECONNREFUSED, unix.EPERM, unix.EHOSTUNREACH:
				continue // a full queue or an ICMP error: keep flooding
			}
			return e
		}
		sent += int(r)
	}
	return nil
}

// mmsghdr is struct mmsghdr (sendmmsg(2)); Go pads it like C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}
