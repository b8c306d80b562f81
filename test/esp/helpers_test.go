package esp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/status"
	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// peerBin is test/esp/ipsecpeer, built once by TestMain.
var peerBin string

func TestMain(m *testing.M) {
	code := func() int {
		if lab.Requirements() == "" {
			dir, err := os.MkdirTemp("", "vpt-ipsecpeer-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			repo, err := lab.RepoRoot()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			peerBin = filepath.Join(dir, "ipsecpeer")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", "build", "-o", peerBin, "./test/esp/ipsecpeer")
			cmd.Dir = repo
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build ipsecpeer: %v\n%s", err, out)
				return 1
			}
		}
		defer lab.RemovePeerCache()
		return m.Run()
	}()
	os.Exit(code)
}

// env is one lab with the daemon and the IPsec server running.
type env struct {
	t   *testing.T
	l   *lab.Lab
	d   *lab.Daemon
	srv *lab.Proc
}

// ipsecOpts are extra options of the daemon's `config ipsec` section.
type ipsecOpts map[string]string

// config is the lab's UCI file: every protocol on, mode auto (so IPsec uses
// the ESP multiplexer: the kernel has NFQUEUE), the lab's devices, plus
// ipsec options.
func config(l *lab.Lab, o ipsecOpts) string {
	u := l.KernelUCI()
	u.Mode = "auto"
	s := u.String() // the ipsec section comes last
	if !strings.HasSuffix(s, "config ipsec 'ipsec'\n\toption enabled '1'\n") {
		panic("lab.UCI changed shape: " + s)
	}
	for k, v := range o {
		s += fmt.Sprintf("\toption %s '%s'\n", k, v)
	}
	return s
}

// start builds a lab with n clients, starts the daemon and the IPsec server.
func start(t *testing.T, n int, o ipsecOpts) *env {
	t.Helper()
	e := startDaemon(t, n, o)
	e.startServer()
	return e
}

// startDaemon is start without the IPsec server.
func startDaemon(t *testing.T, n int, o ipsecOpts) *env {
	t.Helper()
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{Clients: n})
	d, err := l.StartDaemon(bin, config(l, o))
	if d != nil {
		t.Cleanup(func() {
			d.Kill()
			removeState(l)
			if t.Failed() {
				t.Logf("daemon log:\n%s", d.Log())
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, l: l, d: d}
}

func (e *env) startServer(args ...string) {
	e.t.Helper()
	p, err := e.l.Spawn(e.l.Server.NS, "ipsecpeer server", append([]string{peerBin, "server", "--duration", "10m"}, args...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := p.WaitStdout(0, 10*time.Second, lab.Contains(`"event":"ready"`)); err != nil {
		e.t.Fatalf("ipsecpeer server: %v (stderr %v)", err, p.Stderr())
	}
	e.srv = p
	e.t.Cleanup(func() {
		if e.t.Failed() {
			p.Kill()
			e.t.Logf("server events:\n%s", strings.Join(p.Stdout(), "\n"))
		}
	})
}

// result is what `ipsecpeer client` prints.
type result struct {
	OK          bool   `json:"ok"`
	SPort       int    `json:"sport"`
	ISPI        string `json:"ispi"`
	Retransmits int    `json:"ike_retransmits"`
	Phases      []struct {
		SPIIn    string `json:"spi_in"`
		SPIOut   string `json:"spi_out"`
		Sent     int    `json:"sent"`
		Received int    `json:"received"`
	} `json:"phases"`
	Foreign int    `json:"foreign"`
	Error   string `json:"error"`
}

// client starts `ipsecpeer client` on LAN client i.
func (e *env) client(i int, args ...string) *lab.Proc {
	e.t.Helper()
	c := e.l.Client(i)
	argv := append([]string{peerBin, "client", "--server", e.l.Server.Addr.String(), "--marker", c.Name}, args...)
	p, err := e.l.Spawn(c.NS, "ipsecpeer client@"+c.Name, argv...)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// wait collects a client's result.
func wait(t *testing.T, p *lab.Proc) result {
	t.Helper()
	var r result
	err := p.Wait(60 * time.Second)
	if perr := lab.ParseResult(p.Stdout(), &r); perr != nil {
		t.Fatalf("%s: %v, %v (stderr %v)", p.Name, err, perr, p.Stderr())
	}
	return r
}

// clients runs clients concurrently (args per client, 1-based) and returns
// their results.
func (e *env) clients(args map[int][]string) map[int]result {
	e.t.Helper()
	procs := map[int]*lab.Proc{}
	for i, a := range args {
		procs[i] = e.client(i, a...)
	}
	out := map[int]result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func(i int, p *lab.Proc) {
			defer wg.Done()
			var r result
			_ = p.Wait(60 * time.Second)
			_ = lab.ParseResult(p.Stdout(), &r)
			mu.Lock()
			out[i] = r
			mu.Unlock()
		}(i, p)
	}
	wg.Wait()
	return out
}

// requireOK fails unless every client got every reply on its own SPIs and
// nothing foreign.
func requireOK(t *testing.T, rs map[int]result, phases int) {
	t.Helper()
	for i, r := range rs {
		if !r.OK || len(r.Phases) != phases || r.Foreign != 0 {
			t.Errorf("client %d: %+v", i, r)
		}
	}
}

// espStatus is the part of `status --json` these tests read (status.Session
// decodes the wire model's session rows).
type espStatus struct {
	Counters  map[string]status.Counter `json:"counters"`
	Sessions  []status.Session          `json:"sessions"`
	Protocols []status.Protocol         `json:"protocols"`
}

// status reads the daemon's status.
func (e *env) status() espStatus {
	e.t.Helper()
	out, stderr, err := e.d.CLI("status", "--json", "--socket", e.d.Socket)
	if err != nil {
		e.t.Fatalf("status: %v %s", err, stderr)
	}
	var s espStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return s
}

func (e *env) counter(name string) uint64 {
	e.t.Helper()
	return e.status().Counters[name].Packets
}

// sessions returns the status sessions of proto (esp or ike).
func (e *env) sessions(proto string) []status.Session {
	var out []status.Session
	for _, s := range e.status().Sessions {
		if s.Proto == proto {
			out = append(out, s)
		}
	}
	return out
}

// untrackedESP reports conntrack entries for ESP in the router (the engine's
// flows must have none).
func (e *env) conntrackESP() []string {
	e.t.Helper()
	lines, err := e.l.Conntrack("-p", "esp")
	if err != nil {
		e.t.Fatal(err)
	}
	return lines
}

// removeState deletes the engines' state of the lab's daemon (lab.StartDaemon
// gives it --state-dir <lab dir>/state).
func removeState(l *lab.Lab) {
	_ = os.RemoveAll(filepath.Join(l.DaemonDir(), "state"))
}
