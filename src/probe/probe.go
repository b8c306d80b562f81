package probe

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/gunzip"
	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
	"github.com/vpn-passthrough/vpn-passthrough/src/nl"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// Root is the file system root to read /sys and /proc under ("/" in
// production; a fixture directory in tests).
type Root string

// module reports whether a kernel module is present: loaded (/sys/module),
// built in (modules.builtin), or compiled in per /proc/config.gz. Built-in
// modules without parameters have no /sys/module entry, hence the other two.
func (r Root) module(name, configSym string, cfg map[string]string) (bool, string) {
	p := filepath.Join(string(r), "sys/module", name)
	if _, err := os.Stat(p); err == nil {
		return true, "/sys/module/" + name
	}
	rel := r.release()
	if rel != "" {
		mb := filepath.Join(string(r), "lib/modules", rel, "modules.builtin")
		if data, err := os.ReadFile(mb); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if strings.TrimSuffix(filepath.Base(line), ".ko") == name {
					return true, mb
				}
			}
		}
	}
	if v, ok := cfg[configSym]; ok {
		if v == "y" {
			return true, "/proc/config.gz " + configSym + "=y"
		}
		return false, "/proc/config.gz " + configSym + "=" + v + " but not loaded"
	}
	return false, "not in /sys/module, modules.builtin or /proc/config.gz"
}

func (r Root) release() string {
	b, err := os.ReadFile(filepath.Join(string(r), "proc/sys/kernel/osrelease"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// kconfig reads /proc/config.gz when the kernel exposes it (OpenWrt usually
// does not; Debian does), as a fallback for built-in modules.
func (r Root) kconfig() map[string]string {
	out := map[string]string{}
	gz, err := os.ReadFile(filepath.Join(string(r), "proc/config.gz"))
	if err != nil {
		return out
	}
	// src/gunzip, not compress/gzip (~70 KB of the mipsel binary). As a
	// streaming reader would, damage keeps the lines decoded before it.
	text, err := gunzip.Gunzip(gz, 8<<20)
	if err != nil && text == nil {
		return out
	}
	// Line by line, without bufio (4 KB here for one loop).
	for len(text) > 0 {
		line, rest, _ := bytes.Cut(text, []byte("\n"))
		text = rest
		k, v, ok := strings.Cut(string(bytes.TrimSuffix(line, []byte("\r"))), "=")
		if ok && strings.HasPrefix(k, "CONFIG_") {
			out[k] = v
		}
	}
	return out
}

func (r Root) exists(p string) bool {
	_, err := os.Stat(filepath.Join(string(r), p))
	return err == nil
}

// Caps measures the kernel. n may be nil (no netlink access, e.g. not root):
// then the nftables probes report false with the reason.
func Caps(r Root, n *nft.Conn) plan.Caps {
	c := plan.Caps{Notes: map[string]string{}, KernelRelease: r.release()}
	// Netlink probes first: creating a ct helper object makes the kernel
	// load nf_conntrack_pptp (and with it nf_nat_pptp on most builds), so
	// the module checks below see what the daemon will actually get.
	helperProbe := errNotProbed
	if n != nil {
		if _, err := n.Exists(plan.TableName); err != nil {
			if errors.Is(err, unix.EPERM) {
				// Not root (check, apply --dry-run): nf_tables is
				// assumed so the config can still be validated and
				// planned; the queue probes stay unknown (false).
				c.NFTables = true
				c.Notes["nftables"] = "assumed: netlink probes need root"
				c.Ctnetlink = true
				c.Notes["nf_conntrack_netlink"] = "assumed: netlink probes need root"
			} else {
				c.Notes["nftables"] = err.Error()
			}
		} else {
			c.NFTables = true
			c.Notes["nftables"] = "netlink"
			helperProbe = n.ProbeCtHelper("pptp", 6)
			if err := n.ProbeQueue(false); err != nil {
				c.Notes["nft_queue_expr"] = fmt.Sprintf("netlink probe: %v", err)
			} else {
				c.NFTQueueExpr = true
				c.Notes["nft_queue_expr"] = "netlink probe"
			}
			if err := n.ProbeMapPayload(); err != nil {
				c.Notes["nft_map_payload"] = fmt.Sprintf("netlink probe: %v", err)
			} else {
				c.MapPayload = true
				c.Notes["nft_map_payload"] = "netlink probe"
			}
			// The PPTP engine's conntrack view (its control connections,
			// and the router address each call's GRE map elements are
			// keyed by) speaks ctnetlink.
			if err := ct.Probe(); err != nil {
				c.Notes["nf_conntrack_netlink"] = fmt.Sprintf("netlink probe: %v", err)
			} else {
				c.Ctnetlink = true
				c.Notes["nf_conntrack_netlink"] = "netlink probe"
			}
			if err := n.ProbeQueue(true); err != nil {
				c.Notes["xt_nfqueue_compat"] = fmt.Sprintf("netlink probe: %v", err)
			} else {
				c.XTNFQueue = true
				c.Notes["xt_nfqueue_compat"] = "netlink probe"
			}
		}
	} else {
		c.Notes["nftables"] = "no netlink connection"
		c.Notes["nf_conntrack_netlink"] = "no netlink connection"
	}
	cfg := r.kconfig()
	var helperNote string
	c.PPTPHelper, helperNote = r.module("nf_conntrack_pptp", "CONFIG_NF_CONNTRACK_PPTP", cfg)
	c.Notes["nf_conntrack_pptp"] = helperNote
	// The netlink probe is authoritative for the conntrack helper: it is
	// exactly what `ct helper set "pptp"` needs.
	switch {
	case helperProbe == errNotProbed:
	case helperProbe != nil:
		c.PPTPHelper = false
		c.Notes["nf_conntrack_pptp"] = fmt.Sprintf("netlink ct helper probe: %v", helperProbe)
	default:
		c.PPTPHelper = true
		c.Notes["nf_conntrack_pptp"] = "netlink ct helper probe (" + helperNote + ")"
	}
	c.PPTPNAT, c.Notes["nf_nat_pptp"] = r.module("nf_nat_pptp", "CONFIG_NF_NAT_PPTP", cfg)
	c.Conntrack = r.exists("proc/sys/net/netfilter/nf_conntrack_max")
	c.Notes["conntrack"] = "/proc/sys/net/netfilter/nf_conntrack_max"
	// GRE tracking is part of nf_conntrack since Linux 5.1; its sysctl is
	// the reliable sign either way.
	c.GRETracking = r.exists("proc/sys/net/netfilter/nf_conntrack_gre_timeout")
	c.Notes["gre_tracking"] = "/proc/sys/net/netfilter/nf_conntrack_gre_timeout"
	c.NFQueue = r.exists("proc/net/netfilter/nfnetlink_queue")
	c.Notes["nfnetlink_queue"] = "/proc/net/netfilter/nfnetlink_queue"
	disable(&c, os.Getenv(DisableEnv))
	return c
}

// DisableEnv names capabilities (JSON names, comma-separated) to report as
// missing whatever the kernel has: how the labs run the fallback datapath
// of an older kernel on this one (e.g. VPNPT_DISABLE_CAPS=nft_map_payload).
const DisableEnv = "VPNPT_DISABLE_CAPS"

func disable(c *plan.Caps, list string) {
	for _, name := range strings.Split(list, ",") {
		var f *bool
		switch strings.TrimSpace(name) {
		case "nft_map_payload":
			f = &c.MapPayload
		case "nf_conntrack_pptp":
			f = &c.PPTPHelper
		case "nft_queue_expr":
			f = &c.NFTQueueExpr
		case "nf_conntrack_netlink":
			f = &c.Ctnetlink
		default:
			continue
		}
		*f = false
		c.Notes[strings.TrimSpace(name)] = "disabled by " + DisableEnv
	}
}

var errNotProbed = errors.New("not probed")

// System lists links and the IPv4 default route's device.
func System(r Root) (config.System, error) {
	var s config.System
	links, err := nl.Links()
	if err != nil {
		return s, fmt.Errorf("probe: list links: %w", err)
	}
	for _, l := range links {
		s.Links = append(s.Links, config.Link{Name: l.Name, Up: l.Flags&unix.IFF_UP != 0, Loopback: l.Flags&unix.IFF_LOOPBACK != 0})
	}
	// Without /proc/net/route there is no default route to find; topology
	// resolution then says so if it needs one.
	if data, err := os.ReadFile(filepath.Join(string(r), "proc/net/route")); err == nil {
		s.DefaultRouteDev = parseRoutes(string(data))
	}
	return s, nil
}

func parseRoutes(text string) string {
	best, bestMetric := "", -1
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 8 {
			continue
		}
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		// strconv, not fmt.Sscan: fmt's scanner costs ~50 KB on mipsel.
		// The kernel writes the metric in decimal; garbage reads as 0, as before.
		metric, _ := strconv.Atoi(f[6])
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	return best
}
