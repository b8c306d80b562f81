package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// peerCache holds the peer binary built for this process: building it takes
// seconds on a busy machine, so labs share one. RemovePeerCache deletes it.
var peerCache struct {
	sync.Mutex
	dir, bin string
}

// PeerBin returns test/cmd/peer built for this process (once).
func (l *Lab) PeerBin() (string, error) {
	peerCache.Lock()
	defer peerCache.Unlock()
	if peerCache.bin != "" {
		return peerCache.bin, nil
	}
	// A prebuilt peer: the QEMU guests (test/qemu) have no Go toolchain.
	if p := os.Getenv("VPNPT_PEER"); p != "" {
		peerCache.bin = p
		return p, nil
	}
	// Named like a lab's scratch directory, so CleanStale can remove it
	// after a killed run.
	dir, err := os.MkdirTemp("", fmt.Sprintf("vpt%d-%04x-", os.Getpid(), 0))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "peer")
	if err := BuildPeer(l.Repo, bin); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	peerCache.dir, peerCache.bin = dir, bin
	return bin, nil
}

// RemovePeerCache deletes the peer binary PeerBin built; call it from
// TestMain after m.Run (or at the end of a program using the lab).
func RemovePeerCache() {
	peerCache.Lock()
	defer peerCache.Unlock()
	if peerCache.dir != "" {
		os.RemoveAll(peerCache.dir)
	}
	peerCache.dir, peerCache.bin = "", ""
}

// BuildPeer builds test/cmd/peer of repo into bin.
func BuildPeer(repo, bin string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", bin, "./test/cmd/peer")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build test/cmd/peer: %w: %s", err, out)
	}
	return nil
}

// Event is one JSON line a peer server prints.
type Event struct {
	Event        string `json:"event"`
	Proto        string `json:"proto"`
	From         string `json:"from"`
	CallID       *int   `json:"call_id"`
	ServerCallID *int   `json:"server_call_id"`
	SPI          string `json:"spi"`
	Seq          *int64 `json:"seq"`
	Marker       string `json:"marker"`
	Error        string `json:"error"`
	Detail       string `json:"detail"`
}

// FromIP is the address part of From.
func (e Event) FromIP() string {
	if i := strings.LastIndexByte(e.From, ':'); i >= 0 {
		return e.From[:i]
	}
	return e.From
}

// Servers is `peer servers` running on the WAN host: PPTP control and GRE,
// raw ESP and AH echo, and UDP echo for IKE (500), NAT-T (4500), L2TP (1701).
type Servers struct{ *Proc }

// StartServers starts the WAN servers and waits until they listen.
func (l *Lab) StartServers() (*Servers, error) {
	bin, err := l.PeerBin()
	if err != nil {
		return nil, err
	}
	p, err := l.Spawn(l.Server.NS, "servers", bin, "servers", "--duration", "15m")
	if err != nil {
		return nil, err
	}
	if _, err := p.WaitStdout(0, 10*time.Second, Contains(`"event":"ready"`)); err != nil {
		p.Kill()
		return nil, fmt.Errorf("peer servers: %w (stderr: %s)", err, strings.Join(p.Stderr(), " | "))
	}
	return &Servers{p}, nil
}

// Mark returns a position in the event stream for Events.
func (s *Servers) Mark() int { return s.StdoutLen() }

// Events returns the events since mark, optionally only those named in kinds.
func (s *Servers) Events(mark int, kinds ...string) []Event {
	lines := s.Stdout()
	var evs []Event
	for _, line := range lines[min(mark, len(lines)):] {
		var e Event
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if len(kinds) == 0 || contains(kinds, e.Event) {
			evs = append(evs, e)
		}
	}
	return evs
}

// OutgoingCallIDs checks the PPTP server's Outgoing-Call-Requests of run mark, as NAT must leave
// them: every one from the router's WAN address wan, no Call ID twice (two LAN clients' calls
// must reach the server apart). It reports what breaks that as errors and returns the Call IDs
// the server saw, with who sent each.
func (s *Servers) OutgoingCallIDs(mark int, wan string) (map[int]string, []error) {
	ids := map[int]string{}
	var errs []error
	for _, ev := range s.Events(mark, "ocrq") {
		if ev.FromIP() != wan {
			errs = append(errs, fmt.Errorf("server saw a call from %s, want the router's %s", ev.From, wan))
		}
		if ev.CallID == nil {
			errs = append(errs, fmt.Errorf("server saw a call without a Call ID from %s", ev.From))
			continue
		}
		if prev, dup := ids[*ev.CallID]; dup {
			errs = append(errs, fmt.Errorf("server saw Call ID %d from both %s and %s", *ev.CallID, prev, ev.From))
		}
		ids[*ev.CallID] = ev.From
	}
	return ids, errs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// PPTPCall is one call of a PPTP client's result.
type PPTPCall struct {
	ServerCallID      int  `json:"server_call_id"`
	PeerCallIDInReply int  `json:"peer_call_id_in_reply"`
	Sent              int  `json:"sent"`
	Received          int  `json:"received"`
	Cleared           bool `json:"cleared"`
	CDNCallID         int  `json:"cdn_call_id"`
}

// PPTPResult is what `peer pptp-client` reports.
type PPTPResult struct {
	OK        bool       `json:"ok"`
	Connected bool       `json:"connected"`
	CallID    int        `json:"call_id"`
	Calls     []PPTPCall `json:"calls"`
	Sent      int        `json:"sent"`
	Received  int        `json:"received"`
	Foreign   int        `json:"foreign"`
	WrongKey  int        `json:"wrong_key"`
	EchoOK    bool       `json:"echo_ok"`
	Error     string     `json:"error"`
}

// RawResult is what `peer esp-client` and `peer ah-client` report.
type RawResult struct {
	Proto    string `json:"proto"`
	OK       bool   `json:"ok"`
	SPI      string `json:"spi"`
	Sent     int    `json:"sent"`
	Received int    `json:"received"`
	ReplySPI string `json:"reply_spi"`
	Foreign  int    `json:"foreign"`
	Error    string `json:"error"`
}

// UDPResult is what `peer udp-client` reports.
type UDPResult struct {
	Proto    string `json:"proto"`
	OK       bool   `json:"ok"`
	SPort    int    `json:"sport"`
	Sent     int    `json:"sent"`
	Received int    `json:"received"`
	Foreign  int    `json:"foreign"`
	Invalid  int    `json:"invalid"`
	Error    string `json:"error"`
}

// ParseResult finds the "result" line among a client's stdout lines.
func ParseResult(lines []string, v any) error {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], `"event":"result"`) {
			return json.Unmarshal([]byte(lines[i]), v)
		}
	}
	return errors.New("no result line in the client's output")
}

// runClient runs a peer client to completion on LAN client i (1-based) and
// parses its result into v. The error is non-nil when the client failed
// (exit status 1) or printed no result; v is filled whenever it can be.
func (l *Lab) runClient(i int, v any, args ...string) error {
	bin, err := l.PeerBin()
	if err != nil {
		return err
	}
	stdout, _, runErr := l.ExecSplit(l.Client(i).NS, append([]string{bin}, args...)...)
	perr := ParseResult(strings.Split(stdout, "\n"), v)
	if runErr != nil {
		return runErr
	}
	return perr
}

// PPTPClient runs `peer pptp-client --server <WAN server> ARGS` on client i.
func (l *Lab) PPTPClient(i int, args ...string) (PPTPResult, error) {
	var r PPTPResult
	err := l.runClient(i, &r, append([]string{"pptp-client", "--server", l.Server.Addr.String()}, args...)...)
	return r, err
}

// StartPPTPClient starts a pptp-client on client i without waiting; with
// --wait-stdin it stops after the first Outgoing-Call-Reply until
// Proc.WriteLine is called. Collect the result with WaitPPTPClient.
func (l *Lab) StartPPTPClient(i int, args ...string) (*Proc, error) {
	bin, err := l.PeerBin()
	if err != nil {
		return nil, err
	}
	c := l.Client(i)
	return l.Spawn(c.NS, "pptp-client@"+c.Name, append([]string{bin, "pptp-client", "--server", l.Server.Addr.String()}, args...)...)
}

// WaitPPTPClient waits for a client started by StartPPTPClient.
func WaitPPTPClient(p *Proc, timeout time.Duration) (PPTPResult, error) {
	var r PPTPResult
	err := p.Wait(timeout)
	if perr := ParseResult(p.Stdout(), &r); err == nil {
		err = perr
	}
	if err != nil {
		err = fmt.Errorf("%s: %w (stderr: %s)", p.Name, err, strings.Join(p.Stderr(), " | "))
	}
	return r, err
}

// RawClient runs `peer esp-client` or `peer ah-client` (proto "esp"/"ah").
func (l *Lab) RawClient(i int, proto string, args ...string) (RawResult, error) {
	var r RawResult
	err := l.runClient(i, &r, append([]string{proto + "-client", "--server", l.Server.Addr.String()}, args...)...)
	return r, err
}

// UDPClient runs `peer udp-client --proto PROTO` (ike, natt or l2tp).
func (l *Lab) UDPClient(i int, proto string, args ...string) (UDPResult, error) {
	var r UDPResult
	err := l.runClient(i, &r, append([]string{"udp-client", "--server", l.Server.Addr.String(), "--proto", proto}, args...)...)
	return r, err
}
