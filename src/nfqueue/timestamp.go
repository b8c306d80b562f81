package nfqueue

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// EnableTimestamps makes the kernel timestamp received packets, so queued
// ones carry NFQA_TIMESTAMP (Packet.Time): the moment they arrived or were
// queued, not the moment a busy reader got to them. The engines' timing
// evidence needs that (on a loaded router the reader can take a batch
// milliseconds late, which would make every packet in it look simultaneous).
//
// The kernel does it for every socket once any socket asks for receive
// timestamps (netstamp_needed); this socket asks and is never read. Close
// stops it. Costs one clock read per received packet.
func EnableTimestamps() (io.Closer, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt SO_TIMESTAMPNS", err)
	}
	return os.NewFile(uintptr(fd), "nfqueue-timestamps"), nil
}
