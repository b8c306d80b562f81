package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Config selects what New builds.
type Config struct {
	// Clients is the number of LAN clients: 2 (default) or 3.
	Clients int
	// NoFW4 replaces fw4's ruleset by a bare masquerade table.
	NoFW4 bool
	// FW4Sample, if set, is an fw4-rendered ruleset (fw4-default-ruleset.nft) the lab adapts
	// with the emulation in fw4.go. Unset, the router loads what REAL fw4 renders for it
	// (test/openwrt/fw4-render.sh); if that cannot run, the emulation on
	// ../shared/openwrt-samples/fw4-default-ruleset.nft is the fallback (not under CI=true).
	FW4Sample string
	// Includes is the directory fw4 would read as /usr/share/nftables.d;
	// default <repo>/files/usr/share/nftables.d. "-" renders no includes.
	Includes string
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// Host is one end of a veth pair: a LAN client or the WAN server.
type Host struct {
	Name      string       // lan1, lan2, lan3 or wan
	NS        string       // its network namespace
	Dev       string       // its device ("eth0")
	Addr      netip.Addr   // its address
	Prefix    netip.Prefix // its subnet
	RouterDev string       // the router's device facing it
	Gateway   netip.Addr   // the router's address on that subnet
}

// Lab is a built topology. Its methods are safe for concurrent use.
type Lab struct {
	cfg     Config
	Prefix  string // unique name prefix of this lab
	Router  string // the router's namespace
	Server  Host   // the WAN server
	Clients []Host // the LAN clients
	LANDevs []string
	WANDev  string
	WANAddr netip.Addr // the router's WAN address (what the server sees)
	Repo    string     // repository root
	Dir     string     // scratch directory, removed by Close

	mu         sync.Mutex
	namespaces []string
	procs      []*Proc
	closed     bool
	realFW4    bool // the router runs real fw4's rendering (fw4.go)
}

const (
	wanDev = "r-wan"
	// DefaultTimeout bounds every command the lab runs.
	DefaultTimeout = 30 * time.Second
)

var reModule = regexp.MustCompile(`(?m)^module github\.com/vpn-passthrough/vpn-passthrough\s*$`)

// RepoRoot finds the repository root: the nearest directory upwards from
// the working directory whose go.mod declares our module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		// The exact module line, not a prefix: a module of its own below it must not match.
		if err == nil && reModule.Match(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("lab: no go.mod of github.com/vpn-passthrough/vpn-passthrough above the working directory")
		}
		dir = parent
	}
}

// SharedDir is <repo>/../shared, or $VPNPT_SHARED if set.
func SharedDir(repo string) string {
	if d := os.Getenv("VPNPT_SHARED"); d != "" {
		return d
	}
	return filepath.Join(filepath.Dir(repo), "shared")
}

// Requirements returns why the lab cannot run here, or "" if it can.
func Requirements() string {
	if os.Geteuid() != 0 {
		return "the lab needs root (network namespaces, nftables, raw sockets); run the tests as root, e.g. `sudo -E make lab`"
	}
	for _, tool := range []string{"ip", "nft", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("the lab needs %s(8) (`apt-get install -y iproute2 nftables conntrack`)", tool)
		}
	}
	if _, err := os.Stat("/proc/sys/net/netfilter"); err != nil {
		return "the kernel has no netfilter conntrack (/proc/sys/net/netfilter missing)"
	}
	return ""
}

// Need skips a test that needs the lab where it cannot run here, saying why;
// under CI=true it fails instead, naming what is missing.
func Need(t testing.TB) {
	t.Helper()
	if why := Requirements(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s", why)
		}
		t.Skip(why)
	}
}

// Start builds a lab for a test: it skips the test when the lab cannot run
// here (under CI=true it fails, naming what is missing), fails it when
// building fails, and registers Close as cleanup.
func Start(t testing.TB, cfg Config) *Lab {
	t.Helper()
	Need(t)
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	l, err := New(cfg)
	if l != nil {
		t.Cleanup(l.Close)
	}
	if errors.Is(err, ErrNoFW4) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	return l
}

// New builds the topology. On error it has already cleaned up.
func New(cfg Config) (l *Lab, err error) {
	if why := Requirements(); why != "" {
		return nil, errors.New(why)
	}
	if cfg.Clients == 0 {
		cfg.Clients = 2
	}
	if cfg.Clients < 1 || cfg.Clients > 3 {
		return nil, fmt.Errorf("lab: %d LAN clients; 1 to 3 are supported", cfg.Clients)
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	repo, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if cfg.Includes == "" {
		cfg.Includes = filepath.Join(repo, "files", "usr", "share", "nftables.d")
	}
	var rnd [2]byte
	_, _ = rand.Read(rnd[:])
	CleanStale(cfg.Logf)
	prefix := fmt.Sprintf("vpt%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return nil, err
	}
	l = &Lab{
		cfg:     cfg,
		Prefix:  prefix,
		Router:  prefix + "-r",
		WANDev:  wanDev,
		WANAddr: netip.MustParseAddr("198.51.100.1"),
		Repo:    repo,
		Dir:     dir,
		Server: Host{Name: "wan", NS: prefix + "-wan", Dev: "eth0",
			Addr: netip.MustParseAddr("198.51.100.2"), Prefix: netip.MustParsePrefix("198.51.100.0/24"),
			RouterDev: wanDev, Gateway: netip.MustParseAddr("198.51.100.1")},
	}
	for i := 1; i <= cfg.Clients; i++ {
		h := Host{
			Name:      fmt.Sprintf("lan%d", i),
			NS:        fmt.Sprintf("%s-lan%d", prefix, i),
			Dev:       "eth0",
			Addr:      netip.MustParseAddr(fmt.Sprintf("10.10.%d.2", i)),
			Prefix:    netip.MustParsePrefix(fmt.Sprintf("10.10.%d.0/24", i)),
			RouterDev: fmt.Sprintf("r-lan%d", i),
			Gateway:   netip.MustParseAddr(fmt.Sprintf("10.10.%d.1", i)),
		}
		l.Clients = append(l.Clients, h)
		l.LANDevs = append(l.LANDevs, h.RouterDev)
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if err := l.buildTopology(); err != nil {
		return l, err
	}
	if cfg.NoFW4 {
		err = l.loadMasquerade()
	} else {
		err = l.LoadFW4()
	}
	if err != nil {
		return l, err
	}
	return l, nil
}

func (l *Lab) logf(format string, args ...any) { l.cfg.Logf("lab: "+format, args...) }

func (l *Lab) addNS(name string) error {
	if _, err := run(context.Background(), "ip", "netns", "add", name); err != nil {
		return err
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, name)
	l.mu.Unlock()
	// No IPv6: it only adds router solicitations and MLD noise here.
	err := l.Sysctl(name, map[string]string{"net/ipv6/conf/all/disable_ipv6": "1", "net/ipv6/conf/default/disable_ipv6": "1"})
	if err != nil {
		return err
	}
	_, err = run(context.Background(), "ip", "-n", name, "link", "set", "lo", "up")
	return err
}

func (l *Lab) buildTopology() error {
	if err := l.addNS(l.Router); err != nil {
		return err
	}
	hosts := append([]Host{l.Server}, l.Clients...)
	for _, h := range hosts {
		if err := l.addNS(h.NS); err != nil {
			return err
		}
		ip := func(ns string, args ...string) error {
			_, err := run(context.Background(), "ip", append([]string{"-n", ns}, args...)...)
			return err
		}
		steps := [][]string{
			{"", "link", "add", h.RouterDev, "netns", l.Router, "type", "veth", "peer", "name", h.Dev, "netns", h.NS},
			{l.Router, "addr", "add", netip.PrefixFrom(h.Gateway, h.Prefix.Bits()).String(), "dev", h.RouterDev},
			{l.Router, "link", "set", h.RouterDev, "up"},
			{h.NS, "addr", "add", netip.PrefixFrom(h.Addr, h.Prefix.Bits()).String(), "dev", h.Dev},
			{h.NS, "link", "set", h.Dev, "up"},
		}
		if h.Name != "wan" {
			// LAN clients route everything via the router; the server has
			// only its connected /24 and no way back to the LAN subnets.
			steps = append(steps, []string{h.NS, "route", "add", "default", "via", h.Gateway.String()})
		}
		for _, s := range steps {
			var err error
			if s[0] == "" {
				_, err = run(context.Background(), "ip", s[1:]...)
			} else {
				err = ip(s[0], s[1:]...)
			}
			if err != nil {
				return err
			}
		}
	}
	// The router's default route points out the WAN device, as on a real
	// router; a daemon that detects its WAN by the default route finds r-wan.
	if _, err := run(context.Background(), "ip", "-n", l.Router, "route", "add", "default", "via", l.Server.Addr.String(), "dev", wanDev); err != nil {
		return err
	}
	if err := l.Sysctl(l.Router, map[string]string{"net/ipv4/ip_forward": "1"}); err != nil {
		return err
	}
	l.logf("topology %s: router %s, server %s (%s), clients %s", l.Prefix, l.Router, l.Server.NS, l.Server.Addr, l.clientList())
	return nil
}

func (l *Lab) clientList() string {
	var s []string
	for _, c := range l.Clients {
		s = append(s, fmt.Sprintf("%s=%s", c.NS, c.Addr))
	}
	return strings.Join(s, " ")
}

func (l *Lab) loadMasquerade() error {
	rules := fmt.Sprintf(`table ip lab_nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname %q masquerade
	}
}
`, wanDev)
	return l.NftApply(rules)
}

// Close kills every process the lab started and deletes its namespaces and
// scratch directory. It is idempotent.
func (l *Lab) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	procs := append([]*Proc(nil), l.procs...)
	nss := append([]string(nil), l.namespaces...)
	l.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	for _, ns := range nss {
		// Anything still inside (e.g. a child a process left behind) goes
		// too: these namespaces are ours alone.
		if out, err := run(context.Background(), "ip", "netns", "pids", ns); err == nil {
			killPids(out)
		}
		if _, err := run(context.Background(), "ip", "netns", "del", ns); err != nil {
			l.logf("cleanup: %v", err)
		}
	}
	if l.Dir != "" {
		_ = os.RemoveAll(l.Dir)
	}
}

// Exec runs a command inside namespace ns and returns its stdout; the error
// includes its stderr.
func (l *Lab) Exec(ns string, args ...string) (string, error) {
	return l.ExecContext(context.Background(), ns, args...)
}

// ExecContext is Exec with a context; DefaultTimeout applies as well.
func (l *Lab) ExecContext(ctx context.Context, ns string, args ...string) (string, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// RouterExec runs a command in the router namespace.
func (l *Lab) RouterExec(args ...string) (string, error) { return l.Exec(l.Router, args...) }

// run runs a command with DefaultTimeout and returns its stdout; the error
// quotes the command, its stderr and its stdout.
func run(ctx context.Context, name string, args ...string) (string, error) {
	stdout, _, err := runSplit(ctx, "", name, args...)
	return stdout, err
}

// runStdin is run with stdin.
func runStdin(stdin string, name string, args ...string) (string, error) {
	stdout, _, err := runSplit(context.Background(), stdin, name, args...)
	return stdout, err
}

func runSplit(ctx context.Context, stdin, name string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(errb.String() + "\n" + out.String())
		return out.String(), errb.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out.String(), errb.String(), nil
}

// ExecSplit runs a command inside namespace ns and returns its stdout and
// stderr separately; a non-zero exit is an error of type *exec.ExitError
// wrapped with the command and its output.
func (l *Lab) ExecSplit(ns string, args ...string) (stdout, stderr string, err error) {
	return runSplit(context.Background(), "", "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// Client returns LAN client i (1-based).
func (l *Lab) Client(i int) Host { return l.Clients[i-1] }

// ExecStdin is Exec with stdin.
func (l *Lab) ExecStdin(ns, stdin string, args ...string) (string, error) {
	return runStdin(stdin, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// NewNamespace adds an empty namespace named <prefix>-<suffix>, deleted by
// Close at the latest (or by DeleteNamespace).
func (l *Lab) NewNamespace(suffix string) (string, error) {
	ns := l.Prefix + "-" + suffix
	return ns, l.addNS(ns)
}

// DeleteNamespace deletes a namespace made by NewNamespace.
func (l *Lab) DeleteNamespace(ns string) error {
	l.mu.Lock()
	for i, n := range l.namespaces {
		if n == ns {
			l.namespaces = append(l.namespaces[:i], l.namespaces[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	_, err := run(context.Background(), "ip", "netns", "del", ns)
	return err
}

// Sysctl writes /proc/sys/<key> = value inside namespace ns (keys use
// slashes). It needs only sh(1), not procps.
func (l *Lab) Sysctl(ns string, kv map[string]string) error {
	var script strings.Builder
	for k, v := range kv {
		fmt.Fprintf(&script, "echo %s > /proc/sys/%s && ", v, k)
	}
	script.WriteString("true")
	_, err := l.Exec(ns, "sh", "-c", script.String())
	return err
}

// killPids SIGKILLs the pids listed (whitespace-separated) in s.
func killPids(s string) {
	for _, f := range strings.Fields(s) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// reStale matches what New names: namespaces "vpt<pid>-<4 hex>-<role>" and
// scratch directories "vpt<pid>-<4 hex>-<digits>".
var reStale = regexp.MustCompile(`^vpt(\d+)-[0-9a-f]{4}-`)

// CleanStale removes namespaces and scratch directories a lab of an earlier,
// killed test process left behind (its pid is gone). Labs of live processes
// are left alone.
func CleanStale(logf func(string, ...any)) {
	dead := func(name string) bool {
		m := reStale.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		_, err := os.Stat("/proc/" + m[1])
		return os.IsNotExist(err)
	}
	if out, err := run(context.Background(), "ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !dead(f[0]) {
				continue
			}
			if pids, err := run(context.Background(), "ip", "netns", "pids", f[0]); err == nil {
				killPids(pids)
			}
			if _, err := run(context.Background(), "ip", "netns", "del", f[0]); err == nil && logf != nil {
				logf("lab: removed stale namespace %s", f[0])
			}
		}
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range ents {
			if e.IsDir() && dead(e.Name()) {
				_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
}
