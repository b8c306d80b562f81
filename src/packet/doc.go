// Package packet gives allocation-free accessors for the wire formats that
// vpn-passthrough reads and rewrites on its hot path: IPv4, TCP, UDP, GRE
// (RFC 2784 and the enhanced GRE of RFC 2637), PPTP control messages
// (RFC 2637), ESP (RFC 4303), IKE headers (RFC 7296, RFC 2408), the UDP 4500
// demultiplexing rules of RFC 3948, and L2TPv2 headers (RFC 2661), plus the
// Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// Each header is a byte-slice type (IPv4, TCP, UDP, GRE, PPTPCtrl, ESP,
// IKEHeader, L2TP) over the caller's buffer. A ParseX function validates the
// lengths and fixed fields once and returns the view; after that, getters
// index without further checks and setters rewrite the buffer in place.
// Setters that change a checksummed field keep the checksum right
// incrementally, so an engine can rewrite an NFQUEUE buffer and hand it back.
//
// Rules this package keeps, and callers may rely on:
//   - No allocation: parsers, getters and setters never allocate (tests assert
//     it with testing.AllocsPerRun). Addresses are netip.Addr, errors are the
//     sentinel values in errors.go.
//   - Byte order is explicit: every multi-byte field goes through
//     encoding/binary.BigEndian, never unsafe casts, so the code is correct on
//     big-endian MIPS (ath79) as well as on little-endian hosts.
//   - Pure: no syscalls, no netlink, no clock, no logging, no global state.
//     Only the standard library is imported.
package packet
