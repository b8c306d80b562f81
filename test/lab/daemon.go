package lab

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Fixed names of the daemon's state (README "Fixed names").
const (
	Table       = "vpn_passthrough" // table inet vpn_passthrough
	TableFamily = "inet"
)

// DaemonBin returns the daemon binary named by $VPNPT_BIN, or skips the test
// with the reason. A relative path is taken from the repository root.
func DaemonBin(t testing.TB) string {
	t.Helper()
	bin, why := FindDaemonBin()
	if why != "" {
		t.Skip(why)
	}
	return bin
}

// FindDaemonBin resolves $VPNPT_BIN; why is non-empty when it cannot be used.
func FindDaemonBin() (bin, why string) {
	bin = os.Getenv("VPNPT_BIN")
	if bin == "" {
		return "", "VPNPT_BIN is not set: build the daemon (`make build`) and run `make lab`, or set VPNPT_BIN=/path/to/vpn-passthrough"
	}
	if !filepath.IsAbs(bin) {
		if _, err := os.Stat(bin); err != nil {
			if repo, rerr := RepoRoot(); rerr == nil {
				bin = filepath.Join(repo, bin)
			}
		}
		if abs, err := filepath.Abs(bin); err == nil {
			bin = abs
		}
	}
	st, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Sprintf("VPNPT_BIN=%s: %v (run `make build`)", os.Getenv("VPNPT_BIN"), err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Sprintf("VPNPT_BIN=%s is not an executable file", bin)
	}
	return bin, ""
}

// UCI is a /etc/config/vpn-passthrough for the lab.
type UCI struct {
	Enabled    bool
	Mode       string // auto, kernel or userspace
	LAN, WAN   []string
	LogBlocked bool
	PPTP       bool
	L2TP       bool
	IPsec      bool
	// Raw, if set, replaces the whole text (for invalid configs).
	Raw string
}

// KernelUCI is every protocol on, mode kernel, with the lab's devices.
func (l *Lab) KernelUCI() UCI {
	return UCI{Enabled: true, Mode: "kernel", LAN: append([]string(nil), l.LANDevs...), WAN: []string{l.WANDev},
		PPTP: true, L2TP: true, IPsec: true}
}

func (u UCI) String() string {
	if u.Raw != "" {
		return u.Raw
	}
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "config globals 'globals'\n\toption enabled '%s'\n", b(u.Enabled))
	if u.Mode != "" {
		fmt.Fprintf(&s, "\toption mode '%s'\n", u.Mode)
	}
	for _, d := range u.LAN {
		fmt.Fprintf(&s, "\tlist lan_device '%s'\n", d)
	}
	for _, d := range u.WAN {
		fmt.Fprintf(&s, "\tlist wan_device '%s'\n", d)
	}
	fmt.Fprintf(&s, "\toption log_blocked '%s'\n", b(u.LogBlocked))
	for _, p := range []struct {
		name string
		on   bool
	}{{"pptp", u.PPTP}, {"l2tp", u.L2TP}, {"ipsec", u.IPsec}} {
		fmt.Fprintf(&s, "\nconfig %s '%s'\n\toption enabled '%s'\n", p.name, p.name, b(p.on))
	}
	return s.String()
}

// Daemon is `vpn-passthrough daemon` running in the router namespace.
type Daemon struct {
	*Proc
	lab    *Lab
	Bin    string
	Config string // the UCI file it reads
	Socket string // its status socket
}

// DaemonDir is where StartDaemon puts the config; the daemon reads OpenWrt's
// firewall and network configs from the same directory if they exist.
func (l *Lab) DaemonDir() string { return l.Dir }

// StartDaemon writes config and starts `BIN daemon --config F --socket S` in
// the router, then waits until its table exists.
func (l *Lab) StartDaemon(bin, config string) (*Daemon, error) {
	d := &Daemon{lab: l, Bin: bin,
		Config: filepath.Join(l.Dir, "vpn-passthrough"),
		Socket: filepath.Join(l.Dir, "vpn-passthrough.sock")}
	if err := d.WriteConfig(config); err != nil {
		return nil, err
	}
	p, err := l.Spawn(l.Router, "vpn-passthrough daemon", bin, "daemon", "--config", d.Config, "--socket", d.Socket,
		"--state-dir", filepath.Join(l.Dir, "state"))
	if err != nil {
		return nil, err
	}
	d.Proc = p
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if done, err := p.Exited(); done {
			return d, fmt.Errorf("daemon exited at start (%v):\n%s", err, d.Log())
		}
		// A killed predecessor leaves its table behind: ready means the
		// table is there and this daemon's status socket answers.
		if ok, _ := l.TableExists(TableFamily, Table); ok && socketAnswers(d.Socket) {
			return d, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d, fmt.Errorf("daemon: no table %s %s and status socket within 10s:\n%s", TableFamily, Table, d.Log())
}

// RunDaemon is StartDaemon for a test: the daemon is killed when t ends and
// its log printed if t failed; a failed start fails t.
func (l *Lab) RunDaemon(t testing.TB, bin, config string) *Daemon {
	t.Helper()
	d, err := l.StartDaemon(bin, config)
	if d != nil {
		t.Cleanup(func() {
			d.Kill()
			if t.Failed() {
				t.Logf("daemon log:\n%s", d.Log())
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// WriteConfig replaces the daemon's UCI file.
func (d *Daemon) WriteConfig(text string) error {
	return os.WriteFile(d.Config, []byte(text), 0o600)
}

// Log is the daemon's stderr so far.
func (d *Daemon) Log() string { return strings.Join(d.Stderr(), "\n") }

// Outcome matches the log line that ends a (re)load: applied, refused or an
// error.
func Outcome(line string) bool {
	return strings.Contains(line, "msg=applied") || strings.Contains(line, "refused") || strings.Contains(line, "level=ERROR")
}

// Reload sends SIGHUP and returns the first new log line that reports the
// outcome (see Outcome).
func (d *Daemon) Reload(timeout time.Duration) (string, error) {
	mark := d.StderrLen()
	if err := d.Signal(syscall.SIGHUP); err != nil {
		return "", err
	}
	return d.WaitStderr(mark, timeout, Outcome)
}

// Apply writes config, reloads and requires the "applied" outcome.
func (d *Daemon) Apply(config string) error {
	if err := d.WriteConfig(config); err != nil {
		return err
	}
	line, err := d.Reload(5 * time.Second)
	if err != nil {
		return err
	}
	if !strings.Contains(line, "msg=applied") {
		return fmt.Errorf("reload not applied: %s", line)
	}
	return nil
}

// CLI runs `BIN ARGS` in the router and returns stdout, stderr and the error.
func (d *Daemon) CLI(args ...string) (string, string, error) {
	return d.lab.ExecSplit(d.lab.Router, append([]string{d.Bin}, args...)...)
}

// Status is the part of `status --json` the tests read.
type Status struct {
	Enabled   bool `json:"enabled"`
	Protocols []struct {
		Proto    string `json:"proto"`
		Enabled  bool   `json:"enabled"`
		Datapath string `json:"datapath"`
		Reason   string `json:"reason"`
	} `json:"protocols"`
	Topology struct {
		LAN []string `json:"lan"`
		WAN []string `json:"wan"`
	} `json:"topology"`
	Counters  map[string]Counter `json:"counters"`
	Repairs   int                `json:"repairs"`
	LastError string             `json:"last_error"`
}

// Datapath returns the datapath status reports for proto, or "".
func (s Status) Datapath(proto string) string {
	for _, p := range s.Protocols {
		if p.Proto == proto {
			return p.Datapath
		}
	}
	return ""
}

// Status runs `status --json --socket S` and decodes it.
func (d *Daemon) Status() (Status, string, error) {
	var s Status
	out, _, err := d.CLI("status", "--json", "--socket", d.Socket)
	if err != nil {
		return s, out, err
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return s, out, fmt.Errorf("status --json: %w: %s", err, out)
	}
	return s, out, nil
}

// socketAnswers reports whether a unix socket at path accepts a connection.
func socketAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
