// Package ubus speaks OpenWrt's ubus protocol natively, so the daemon
// registers its own `vpn-passthrough` object on ubusd instead of rpcd
// fork-executing the binary on every call. No Go ubus client builds with Go
// 1.23, so this is written from the wire format of libubox and ubus:
//
//   - blob.go: libubox blob attributes (4-byte big-endian header: bit 31
//     "extended", bits 24-30 the id, bits 0-23 the length including the
//     header; payload padded to 4 bytes) and blobmsg, the named, typed
//     attributes (extended blobs whose id is the blobmsg type, with a
//     2-byte name length, the NUL-terminated name, padding, then the
//     value; integers big-endian).
//   - msg.go: ubus messages (8-byte header: version, type, be16 sequence,
//     be32 peer; then one blob holding ubus attributes).
//   - conn.go: a connection to ubusd that registers an object, answers its
//     invocations, sends events, and reconnects when ubusd restarts.
//   - object.go: the vpn-passthrough object over status.API.
//
// Every parser here has a fuzz target (fuzz_test.go).
package ubus
