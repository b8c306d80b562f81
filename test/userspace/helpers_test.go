package userspace

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// env is what every scenario gets: one topology with three LAN clients,
// the WAN servers and the daemon in mode userspace.
type env struct {
	t   *testing.T
	l   *lab.Lab
	srv *lab.Servers
	d   *lab.Daemon
	bin string
	cfg lab.UCI
}

// status is the part of `status --json` these tests read.
type status struct {
	Protocols []struct {
		Proto    string `json:"proto"`
		Datapath string `json:"datapath"`
		Reason   string `json:"reason"`
	} `json:"protocols"`
	QueueRules string                 `json:"queue_rules"`
	Counters   map[string]lab.Counter `json:"counters"`
	Sessions   []session              `json:"sessions"`
	LastError  string                 `json:"last_error"`
}

type session struct {
	Proto       string `json:"proto"`
	Client      string `json:"client"`
	Server      string `json:"server"`
	OrigID      string `json:"orig_id"`
	TransID     string `json:"trans_id"`
	PeerID      string `json:"peer_id"`
	State       string `json:"state"`
	PacketsOut  uint64 `json:"packets_out"`
	BytesOut    uint64 `json:"bytes_out"`
	PacketsIn   uint64 `json:"packets_in"`
	BytesIn     uint64 `json:"bytes_in"`
	AgeSeconds  int64  `json:"age_s"`
	IdleSeconds int64  `json:"idle_s"`
}

func (s status) datapath(proto string) string {
	for _, p := range s.Protocols {
		if p.Proto == proto {
			return p.Datapath
		}
	}
	return ""
}

// pptpSessions are the userspace engine's sessions (not the kernel's).
func (s status) pptpSessions() []session {
	var out []session
	for _, x := range s.Sessions {
		if x.Proto == "pptp" {
			out = append(out, x)
		}
	}
	return out
}

func (e *env) status() status {
	e.t.Helper()
	var s status
	out, stderr, err := e.d.CLI("status", "--json", "--socket", e.d.Socket)
	if err != nil {
		e.t.Fatalf("status: %v\n%s", err, stderr)
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return s
}

// counter reads an engine counter from status ("pptp_" + name).
func (e *env) counter(name string) uint64 {
	e.t.Helper()
	return e.status().Counters["pptp_"+name].Packets
}

// nftCounter reads a named counter of our table.
func (e *env) nftCounter(name string) uint64 {
	e.t.Helper()
	c, err := e.l.ReadCounter(lab.TableFamily, lab.Table, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.Packets
}

var reStateFile = regexp.MustCompile(`state_file=(\S+)`)

// stateFiles are the PPTP state files the daemons of this test announced.
func (e *env) stateFiles() []string {
	var out []string
	for _, m := range reStateFile.FindAllStringSubmatch(e.d.Log(), -1) {
		out = append(out, m[1])
	}
	return out
}

// startDaemon starts the daemon with e.cfg and waits until it has applied.
func (e *env) startDaemon() {
	e.t.Helper()
	d, err := e.l.StartDaemon(e.bin, e.cfg.String())
	if d != nil {
		e.d = d
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := d.WaitStderr(0, 10*time.Second, lab.Outcome); err != nil {
		e.t.Fatalf("%v\n%s", err, d.Log())
	}
	if !strings.Contains(d.Log(), "msg=applied") {
		e.t.Fatalf("daemon did not apply:\n%s", d.Log())
	}
}

// callUp starts a pptp-client on LAN client i that holds its first call
// (--wait-stdin) and returns it with the server Call ID, once the call is up.
func (e *env) callUp(i int, args ...string) (*lab.Proc, int) {
	e.t.Helper()
	p, err := e.l.StartPPTPClient(i, append([]string{"--wait-stdin"}, args...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	line, err := p.WaitStdout(0, 10*time.Second, lab.Contains(`"call-up"`))
	if err != nil {
		e.t.Fatalf("client %d: %v: stdout %q stderr %q", i, err, p.Stdout(), p.Stderr())
	}
	var ev lab.Event
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.ServerCallID == nil {
		e.t.Fatalf("call-up event %q: %v", line, err)
	}
	return p, *ev.ServerCallID
}

// sameCallID: n LAN clients open a call with Call ID 1 to the same server at
// the same time; each gets exactly its own GRE replies and the Outgoing-Call-
// Reply with its own Call ID; the server sees n distinct Call IDs, all from
// the router's WAN address.
func (e *env) sameCallID(t *testing.T, n int) {
	t.Helper()
	l, srv := e.l, e.srv
	mark := srv.Mark()
	var procs []*lab.Proc
	for i := 1; i <= n; i++ {
		p, err := l.StartPPTPClient(i, "--call-id", "1", "--count", "20", "--wait-stdin", "--marker", fmt.Sprintf("lan%d", i))
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if _, err := p.WaitStdout(0, 10*time.Second, lab.Contains(`"call-up"`)); err != nil {
			t.Errorf("%v: stdout %q stderr %q", err, p.Stdout(), p.Stderr())
		}
	}
	// While the calls are up, the session table lists them: connected
	// (the server accepted them), not established: no GRE has flowed yet.
	ss := e.status().pptpSessions()
	if len(ss) != n {
		t.Errorf("%d pptp sessions while %d calls are up: %+v", len(ss), n, ss)
	}
	trans := map[string]bool{}
	for _, s := range ss {
		if s.OrigID != "1" || s.Server != l.Server.Addr.String() || s.State != "connected" || s.PeerID == "" || trans[s.TransID] {
			t.Errorf("session %+v", s)
		}
		trans[s.TransID] = true
	}
	for _, p := range procs {
		_ = p.WriteLine("go")
	}
	for i, p := range procs {
		r, err := lab.WaitPPTPClient(p, 20*time.Second)
		if err != nil || !r.OK || r.Received != 20 || r.Foreign != 0 || r.WrongKey != 0 {
			t.Errorf("lan%d: %v; result %+v", i+1, err, r)
			continue
		}
		if got := r.Calls[0].PeerCallIDInReply; got != 1 {
			t.Errorf("lan%d: Outgoing-Call-Reply carried Peer's Call ID %d, want its own 1", i+1, got)
		}
		if !r.Calls[0].Cleared {
			t.Errorf("lan%d: call not cleared (Call-Disconnect-Notify)", i+1)
		}
	}
	ids, errs := srv.OutgoingCallIDs(mark, l.WANAddr.String())
	for _, err := range errs {
		t.Error(err)
	}
	for id := range ids {
		if !trans[fmt.Sprint(id)] {
			t.Errorf("server saw Call ID %d, not a translation status listed (%v)", id, trans)
		}
	}
	if len(ids) != n {
		t.Errorf("server saw %d distinct Call IDs (%v), want %d", len(ids), ids, n)
	}
	gre := srv.Events(mark, "gre")
	if len(gre) != 20*n {
		t.Errorf("server saw %d GRE packets, want %d", len(gre), 20*n)
	}
	for _, ev := range gre {
		if ev.FromIP() != l.WANAddr.String() || ev.Error != "" {
			t.Errorf("server GRE event %+v", ev)
			break
		}
	}
	for _, ev := range srv.Events(mark, "call-clear") {
		if ev.Error != "" {
			t.Errorf("server: Call-Clear-Request for an unknown call: %+v", ev)
		}
	}
	e.noSessions(t)
}

// waitState polls the session table until the call translated to trans
// (or, with trans "", the only PPTP call) is in state want; it returns the
// last state seen.
func (e *env) waitState(trans, want string, within time.Duration) string {
	e.t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for {
		for _, s := range e.status().pptpSessions() {
			if trans == "" || s.TransID == trans {
				last = s.State
			}
		}
		if last == want || time.Now().After(deadline) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noSessions waits briefly for the engine's table to empty (clients gone).
func (e *env) noSessions(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		ss := e.status().pptpSessions()
		if len(ss) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("sessions left after the clients closed: %+v", ss)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// conntrackPPTP lists the router's conntrack entries of TCP 1723 and GRE.
func (e *env) conntrackPPTP() (tcp, gre []string) {
	e.t.Helper()
	tcp, err := e.l.Conntrack("-p", "tcp", "--dport", "1723")
	if err != nil {
		e.t.Fatal(err)
	}
	gre, err = e.l.Conntrack("-p", "gre")
	if err != nil && !strings.Contains(err.Error(), "0 flow entries") {
		e.t.Fatal(err)
	}
	return tcp, gre
}

func removeFiles(paths []string) {
	for _, p := range paths {
		_ = os.Remove(p)
	}
}
