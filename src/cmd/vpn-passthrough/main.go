// Command vpn-passthrough is the daemon and its CLI: check, apply, daemon,
// status. It only wires packages together; the logic lives under src/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/vpn-passthrough/vpn-passthrough/src/daemon"
	"github.com/vpn-passthrough/vpn-passthrough/src/engine/statefile"
	"github.com/vpn-passthrough/vpn-passthrough/src/jsonenc"
	"github.com/vpn-passthrough/vpn-passthrough/src/kvlog"
	"github.com/vpn-passthrough/vpn-passthrough/src/loader"
	"github.com/vpn-passthrough/vpn-passthrough/src/nft"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
	"github.com/vpn-passthrough/vpn-passthrough/src/status"
	"github.com/vpn-passthrough/vpn-passthrough/src/ubus"
)

// version is set by the build (-X main.version=...).
var version = "dev"

const defaultConfig = "/etc/config/vpn-passthrough"

// The other flags' defaults.
const (
	defaultSocket   = status.DefaultSocket
	defaultStateDir = statefile.Dir
	defaultUbus     = ubus.DefaultSocket
)

const usage = `usage: vpn-passthrough <command> [flags]

commands:
  daemon  [--config FILE] [--socket PATH] [--state-dir DIR] [--ubus SOCK|off] [--dbus system|ADDR|off]
                                            apply, reload on SIGHUP, repair, clean up on SIGTERM;
                                            serves the ubus object vpn-passthrough (and D-Bus)
  check   [--config FILE]                   validate the config, print capabilities and the plan
  apply   [--dry-run] [--config FILE]       print (--dry-run) or install the ruleset once
  remove                                    delete the ruleset
  status  [--json] [--socket PATH]          ask the running daemon
  version | --version                       print the package version
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "vpn-passthrough: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command"}
	}
	cmd, args := args[0], args[1:]
	if cmd == "--version" || cmd == "version" {
		// openwrt/packages CI greps the package version out of --version.
		fmt.Fprintln(stdout, "vpn-passthrough", version)
		return nil
	}
	fl, err := parseFlags(cmd, args, stderr)
	if err == errHelp {
		return nil
	} else if err != nil {
		return err
	}
	log := kvlog.New(stderr, kvlog.LevelInfo)
	switch cmd {
	case "daemon":
		// Netlink needs CAP_NET_ADMIN only: drop the rest first (privs.go).
		if err := dropPrivileges(); errors.Is(err, syscall.ENOTSUP) {
			log.Warn("running with the capabilities it was given: cannot change them in a cgo build", "err", err)
		} else if err != nil {
			return fmt.Errorf("dropping privileges: %w", err)
		}
		return daemon.Run(ctx, daemon.Options{ConfigPath: fl.config, SocketPath: fl.socket, StateDir: fl.stateDir, Root: "/", Version: version, Log: log,
			Frontends: frontends(fl.ubus, fl.dbus, log)})
	case "check":
		l, err := load(fl.config, false)
		if err != nil {
			return err
		}
		if fl.json {
			var cw []string
			for _, w := range l.Warnings {
				cw = append(cw, w.String())
			}
			return jsonenc.Encode(stdout, map[string]any{
				"capabilities": l.Caps, "protocols": l.Plan.Decisions, "topology": l.Plan.Topology, "offload": l.Plan.Offload,
				"warnings": l.Plan.Warnings, "config_warnings": cw})
		}
		for _, w := range l.Warnings {
			fmt.Fprintf(stderr, "warning: %s: %s\n", fl.config, w)
		}
		fmt.Fprintf(stdout, "config %s: valid\n\n", fl.config)
		fmt.Fprint(stdout, capsText(l))
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, l.Plan.Summary())
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, l.Plan.Render())
		return nil
	case "apply":
		// A one-shot apply has no engines behind it: queue rules would
		// untrack traffic nobody NATs. Plan the kernel datapaths only
		// (the dry run shows what the daemon would install).
		l, err := load(fl.config, !fl.dryRun)
		if err != nil {
			return err
		}
		if fl.dryRun {
			fmt.Fprint(stdout, l.Plan.Render())
			return nil
		}
		for _, d := range l.Plan.Decisions {
			fmt.Fprintf(stderr, "%s: %s (%s)\n", d.Proto, d.Datapath, d.Reason)
		}
		n, err := nft.Open()
		if err != nil {
			return err
		}
		if err := n.Apply(l.Plan); err != nil {
			return err
		}
		return n.Apply(l.Plan.Guard()) // the second copy of the drops
	case "remove":
		n, err := nft.Open()
		if err != nil {
			return err
		}
		if err := n.Remove(plan.TableName); err != nil {
			return err
		}
		return n.Remove(plan.GuardTable)
	case "status":
		s, err := status.Fetch(fl.socket)
		if errors.Is(err, os.ErrPermission) {
			// The socket is root-only by design; "is the daemon running?"
			// would send the user looking in the wrong place.
			return fmt.Errorf("status: permission denied on %s: the socket is root-only (mode 0600); run as root", fl.socket)
		}
		if err != nil {
			return err
		}
		if fl.json {
			b, err := jsonenc.MarshalIndent(s, "", "  ")
			if err != nil {
				return err
			}
			_, err = stdout.Write(append(b, '\n'))
			return err
		}
		fmt.Fprint(stdout, s.Text())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

// load runs the same pipeline as the daemon. Without netlink access (not
// root) it still validates and plans, with the capabilities it could read.
// kernelOnly plans without userspace engines, for a one-shot apply.
func load(path string, kernelOnly bool) (*loader.Loaded, error) {
	n, err := nft.Open()
	if err != nil {
		n = nil
	}
	if kernelOnly {
		return loader.LoadKernelOnly(path, "/", n)
	}
	return loader.Load(path, "/", n)
}

func capsText(l *loader.Loaded) string {
	c := l.Caps
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	rows := []struct {
		name string
		ok   bool
		key  string
	}{
		{"nf_tables", c.NFTables, "nftables"},
		{"conntrack", c.Conntrack, "conntrack"},
		{"nf_conntrack_pptp", c.PPTPHelper, "nf_conntrack_pptp"},
		{"nf_nat_pptp", c.PPTPNAT, "nf_nat_pptp"},
		{"GRE tracking", c.GRETracking, "gre_tracking"},
		{"nfnetlink_queue", c.NFQueue, "nfnetlink_queue"},
		{"nft queue expression", c.NFTQueueExpr, "nft_queue_expr"},
		{"xt NFQUEUE (compat)", c.XTNFQueue, "xt_nfqueue_compat"},
		{"nft map payload", c.MapPayload, "nft_map_payload"},
		{"nf_conntrack_netlink", c.Ctnetlink, "nf_conntrack_netlink"},
	}
	s := fmt.Sprintf("kernel %s capabilities:\n", c.KernelRelease)
	for _, r := range rows {
		s += fmt.Sprintf("  %-22s %-4s %s\n", r.name, yes(r.ok), c.Notes[r.key])
	}
	return s
}
