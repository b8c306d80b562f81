package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// tap sees the packets a device of a lab namespace sends, with the kernel's
// timestamp of the moment it sent each one (AF_PACKET, SO_TIMESTAMPNS:
// dev_queue_xmit_nit stamps every outgoing copy when it hands it to the
// tap). Two taps on the same kernel share its clock, so the difference of
// two stamps is the time a packet took between two devices, without the
// cost of starting the sender or reading counters.
type tap struct {
	fd  int
	dev string
}

// openTap opens a tap on device dev of network namespace ns (a name under
// /run/netns, as the lab makes them).
func openTap(ns, dev string) (*tap, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("setns %s: %w", ns, err)
	}
	// Back to the bench's own namespace before the thread is released; if
	// that fails the thread must not run anything else.
	defer func() {
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			panic("tap: setns back: " + err.Error())
		}
	}()
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		return nil, err
	}
	// ETH_P_ALL: only such taps get outgoing packets.
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, err
	}
	t := &tap{fd: fd, dev: ns + "/" + dev}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifc.Index}); err != nil {
		t.close()
		return nil, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		t.close()
		return nil, err
	}
	tv := unix.NsecToTimeval(int64(20 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (t *tap) close() { unix.Close(t.fd) }

// drain discards what the tap holds.
func (t *tap) drain() {
	buf := make([]byte, 2048)
	for i := 0; i < 10000; i++ {
		if _, _, err := unix.Recvfrom(t.fd, buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// find returns the send time of the first outgoing packet (an IPv4 packet)
// that match accepts, waiting at most within.
func (t *tap) find(match func(ip []byte) bool, within time.Duration) (time.Time, error) {
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		n, oobn, _, from, err := unix.Recvmsg(t.fd, buf, oob, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return time.Time{}, err
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype != unix.PACKET_OUTGOING || ll.Protocol != htons(unix.ETH_P_IP) || !match(buf[:n]) {
			continue
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return time.Time{}, err
		}
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
				return time.Unix(sec, nsec), nil
			}
		}
		return time.Time{}, errors.New("no kernel timestamp on a tapped packet")
	}
	return time.Time{}, fmt.Errorf("tap %s: no matching packet within %v", t.dev, within)
}

// isGRE matches enhanced GRE with key.
func isGRE(key int) func(ip []byte) bool {
	return func(ip []byte) bool {
		if len(ip) < 20 || ip[9] != unix.IPPROTO_GRE {
			return false
		}
		hl := int(ip[0]&15) * 4
		g := ip[hl:]
		return len(g) >= 8 && g[1]&7 == 1 && int(binary.BigEndian.Uint16(g[6:])) == key
	}
}

// isOCRQ matches a TCP segment to port 1723 that starts with a PPTP
// Outgoing-Call-Request (control message type 7).
func isOCRQ(ip []byte) bool {
	if len(ip) < 20 || ip[9] != unix.IPPROTO_TCP {
		return false
	}
	hl := int(ip[0]&15) * 4
	tcp := ip[hl:]
	if len(tcp) < 20 || binary.BigEndian.Uint16(tcp[2:]) != 1723 {
		return false
	}
	p := tcp[int(tcp[12]>>4)*4:]
	return len(p) >= 10 && binary.BigEndian.Uint16(p[2:]) == 1 && binary.BigEndian.Uint16(p[8:]) == 7
}

// transit measures how long one packet took from the tap from (where it was
// sent) to the tap to (where the router sent it on): send starts it.
func transit(from, to *tap, matchFrom, matchTo func([]byte) bool, send func() error) (time.Duration, error) {
	from.drain()
	to.drain()
	if err := send(); err != nil {
		return 0, err
	}
	t0, err := from.find(matchFrom, 5*time.Second)
	if err != nil {
		return 0, err
	}
	t1, err := to.find(matchTo, 2*time.Second)
	if err != nil {
		return 0, err
	}
	return t1.Sub(t0), nil
}
