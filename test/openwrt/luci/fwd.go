// Package luci tests the LuCI app in headless Chromium against the real uhttpd, LuCI dispatcher,
// rpcd, procd and fw4 of the test bed (test/openwrt), in a lab router.
package luci

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// forward listens on the host's loopback and connects each client to addr inside the named
// network namespace (the lab router's, where uhttpd listens): the browser runs on the host.
func forward(netnsName, addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u, err := dialIn(netnsName, addr)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(u, c); done <- struct{}{} }()
				go func() { io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }, nil
}

// dialIn dials addr from inside the network namespace: a socket belongs to the namespace of the
// thread that created it, so one locked thread enters, dials and returns.
func dialIn(netnsName, addr string) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: if switching back failed it must not serve other goroutines.
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + netnsName)
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{nil, err}
			return
		}
		c, err := net.Dial("tcp", addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{c, fmt.Errorf("back to the host namespace: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- res{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
