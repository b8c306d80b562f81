// Package probe measures what the running kernel offers (plan.Caps) and the
// system's links and default route (config.System). It reads /sys, /proc and
// asks nftables through netlink; it never guesses from the kernel version.
package probe
