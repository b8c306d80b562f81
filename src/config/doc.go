// Package config turns the UCI file /etc/config/vpn-passthrough into a typed,
// validated Config, and finds the router's LAN and WAN devices the way OpenWrt
// does (firewall zones -> networks -> devices).
//
// It is pure: it reads no files and makes no syscalls. Callers pass parsed UCI
// files and a snapshot of the system's links.
package config
