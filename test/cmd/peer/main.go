// Command peer speaks the VPN wire formats the lab needs, inside network
// namespaces (run it with `ip netns exec NS peer SUBCOMMAND ...`).
//
// Servers run until SIGTERM/SIGINT or --duration and print one JSON object per
// event on stdout, then a "summary" event. Clients send a bounded number of
// packets, wait a bounded time for replies, print one JSON "result" object and
// exit 1 if not every packet came back as expected.
//
//	peer servers      [--duration D]   all servers below in one process
//	peer pptp-server  [--duration D]   TCP 1723 control + GRE echo (raw IP proto 47)
//	peer pptp-client  --server IP --call-id N [--count N] [--wait-stdin] [--calls N] [--gre-only --server-call-id N]
//	peer esp-server   [--spi N]        raw ESP (proto 50) echo; ah-server: AH (proto 51)
//	peer esp-client   --server IP --spi N [--count N];   ah-client likewise
//	peer udp-server                    IKE on 500, NAT-T on 4500, L2TP on 1701
//	peer udp-client   --server IP --proto ike|natt|l2tp [--sport N] [--count N]
//	peer spoof        --proto tcp|gre --src IP|--src-net P --dst IP [--flags R --seq N --seq-step N | --key N] [--count N]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

type command struct {
	run  func(ctx context.Context, out *emitter, args []string) error
	help string
}

func commands() map[string]command {
	return map[string]command{
		"servers":     {runServers, "PPTP, GRE, ESP, AH and UDP (IKE, NAT-T, L2TP) servers in one process"},
		"pptp-server": {runPPTPServer, "PPTP control on TCP 1723 and enhanced GRE echo"},
		"pptp-client": {runPPTPClient, "PPTP control connection, one call, GRE packets"},
		"esp-server":  {rawServerFunc("esp"), "raw ESP echo"},
		"ah-server":   {rawServerFunc("ah"), "raw AH echo"},
		"esp-client":  {rawClientFunc("esp"), "raw ESP sender"},
		"ah-client":   {rawClientFunc("ah"), "raw AH sender"},
		"udp-server":  {runUDPServer, "IKE (500), NAT-T (4500) and L2TP (1701) echo"},
		"udp-client":  {runUDPClient, "IKE, NAT-T or L2TP sender"},
		"spoof":       {runSpoof, "hand-built TCP or GRE packets with any source (attack scenarios)"},
	}
}

func main() {
	cmds := commands()
	if len(os.Args) < 2 {
		usage(cmds)
		os.Exit(2)
	}
	c, ok := cmds[os.Args[1]]
	if !ok {
		usage(cmds)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := &emitter{enc: json.NewEncoder(os.Stdout)}
	if err := c.run(ctx, out, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "peer %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage(cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: peer SUBCOMMAND [flags]")
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, cmds[n].help)
	}
}

// emitter writes one JSON object per line to stdout; safe for concurrent use.
type emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *emitter) emit(v any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(v)
}

// event is what servers print for each thing they see.
type event struct {
	Event  string `json:"event"`
	Proto  string `json:"proto,omitempty"`
	From   string `json:"from,omitempty"`
	CallID *int   `json:"call_id,omitempty"`
	// ServerCallID is the Call ID the PPTP server assigned to the call.
	ServerCallID *int   `json:"server_call_id,omitempty"`
	SPI          string `json:"spi,omitempty"`
	Seq          *int64 `json:"seq,omitempty"`
	Marker       string `json:"marker,omitempty"`
	Error        string `json:"error,omitempty"`
	Detail       string `json:"detail,omitempty"`
}

func intp(v int) *int       { return &v }
func int64p(v int64) *int64 { return &v }

// scaled stretches the clients' time limits (never their send intervals) by
// $VPNPT_TIME_SCALE, as test/lab's Scale does for the tests, so that the
// emulated guests (TCG, several times slower) run the same bounds honestly.
// Unset, or outside 1..20, it changes nothing.
func scaled(ds ...*time.Duration) {
	f, err := strconv.ParseFloat(os.Getenv("VPNPT_TIME_SCALE"), 64)
	if err != nil || f <= 1 || f > 20 {
		return
	}
	for _, d := range ds {
		*d = time.Duration(float64(*d) * f)
	}
}

// serverCtx bounds a server's life by --duration as well as by signals.
func serverCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = 10 * time.Minute
	}
	return context.WithTimeout(ctx, d)
}

// payload builds the marker-carrying payload every client sends:
// "VPNPT <marker> <seq>".
func payload(marker string, seq int) []byte {
	return []byte(fmt.Sprintf("VPNPT %s %d", marker, seq))
}

// parsePayload returns the marker and sequence of a payload built by payload.
func parsePayload(b []byte) (marker string, seq int, ok bool) {
	var m string
	var s int
	if n, err := fmt.Sscanf(string(trimZero(b)), "VPNPT %s %d", &m, &s); err != nil || n != 2 {
		return "", 0, false
	}
	return m, s, true
}

func trimZero(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// defaultMarker is unique per process; markers contain no spaces.
func defaultMarker(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, os.Getpid())
}
