// Package plan is the pure core of vpn-passthrough: it maps a validated
// config, the kernel's capabilities and the LAN/WAN topology to the desired
// firewall state (a Plan), and renders that state as nft text.
//
// It must stay pure: no syscalls, no netlink, no clock, no files. The nft
// package applies a Plan; the probe package measures Caps.
package plan
