package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// daemonCaps are the only capabilities the daemon keeps. Everything it does
// to the kernel goes through netlink (nf_tables, ctnetlink,
// nfnetlink_queue), which checks CAP_NET_ADMIN and nothing else; its files
// (/etc/config, /var/run/vpn-passthrough, the status socket) are root's, so
// uid 0 reaches them without CAP_DAC_OVERRIDE. Same list as
// files/etc/capabilities/vpn-passthrough.json (a test checks).
var daemonCaps = []uintptr{unix.CAP_NET_ADMIN}

// dropPrivileges limits the whole process, every thread, to daemonCaps and
// sets no_new_privs, before the daemon starts. procd applies the init
// script's capabilities and no_new_privs only when ujail runs the service;
// this gives the same result with or without it. A set already narrowed
// from outside (procd+ujail, setpriv) is narrowed further or left alone,
// never widened.
func dropPrivileges() error {
	all := func(trap, a1, a2, a3 uintptr) error {
		if _, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3); e != 0 {
			return e
		}
		return nil
	}
	if err := all(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	keep := uint64(0)
	for _, c := range daemonCaps {
		keep |= 1 << c
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	permitted := uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	// The bounding set needs CAP_SETPCAP to shrink; without it, whoever
	// started us has already limited it.
	if permitted&(1<<unix.CAP_SETPCAP) != 0 {
		for c := uintptr(0); c <= lastCap(); c++ {
			if keep&(1<<c) == 0 {
				if err := all(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); err != nil {
					return fmt.Errorf("bounding set, capability %d: %w", c, err)
				}
			}
		}
	}
	if err := all(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("ambient set: %w", err)
	}
	set := permitted & keep
	for i := range data {
		data[i] = unix.CapUserData{Effective: uint32(set >> (32 * i)), Permitted: uint32(set >> (32 * i))}
	}
	hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := all(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// lastCap is the kernel's highest capability number.
func lastCap() uintptr {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if n, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && n > 0 && n < 64 {
		return uintptr(n)
	}
	return unix.CAP_LAST_CAP
}
