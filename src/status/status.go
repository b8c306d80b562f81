package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/config"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// DefaultSocket is where the daemon listens.
const DefaultSocket = "/var/run/vpn-passthrough.sock"

// Counter is one named nftables counter.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Session is one tunnel a userspace engine (or the kernel) carries.
type Session struct {
	Proto       string `json:"proto"`  // "pptp", "esp", "ike"
	Client      string `json:"client"` // LAN address
	Server      string `json:"server"`
	OrigID      string `json:"orig_id,omitempty"` // Call ID or SPI as the client uses it
	TransID     string `json:"trans_id,omitempty"`
	PeerID      string `json:"peer_id,omitempty"` // server's Call ID or inbound SPI
	State       string `json:"state,omitempty"`
	PacketsOut  uint64 `json:"packets_out"`
	BytesOut    uint64 `json:"bytes_out"`
	PacketsIn   uint64 `json:"packets_in"`
	BytesIn     uint64 `json:"bytes_in"`
	AgeSeconds  int64  `json:"age_s"`
	IdleSeconds int64  `json:"idle_s"`
}

// Status is the daemon's state as shown to users.
type Status struct {
	Version     string             `json:"version"`
	PID         int                `json:"pid"`
	Config      string             `json:"config"`
	Enabled     bool               `json:"enabled"`
	AppliedAt   time.Time          `json:"applied_at"`
	Protocols   []plan.Decision    `json:"protocols"`
	Topology    config.Topology    `json:"topology"`
	Caps        plan.Caps          `json:"capabilities"`
	QueueRules  string             `json:"queue_rules,omitempty"` // "native", "compat" or ""
	Counters    map[string]Counter `json:"counters"`
	Sessions    []Session          `json:"sessions"`
	Warnings    []string           `json:"warnings,omitempty"`
	Repairs     int                `json:"repairs"`
	LastError   string             `json:"last_error,omitempty"`
	LastErrorAt *time.Time         `json:"last_error_at,omitempty"`
}

// Serve answers every connection on the unix socket at path with the JSON of
// get(), until ctx ends. The socket is created mode 0600: status shows LAN
// addresses, so it is root's.
func Serve(ctx context.Context, path string, get func() Status) error {
	if Answering(path) {
		return fmt.Errorf("status: another daemon answers on %s", path)
	}
	_ = os.Remove(path) // a stale socket from a killed daemon
	// The umask makes the socket 0600 from birth: a chmod after listen would
	// leave a moment where others could connect.
	old := syscall.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("status: listen %s: %w", path, err)
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	defer os.Remove(path)
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			time.Sleep(100 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		json.NewEncoder(c).Encode(get())
		c.Close()
	}
}

// Answering reports whether a daemon already serves on path, so a second one
// neither steals nor deletes its socket.
func Answering(path string) bool {
	c, err := dialUnix(path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Fetch asks the daemon at path for its status.
func Fetch(path string) (Status, error) {
	var s Status
	c, err := dialUnix(path)
	if err != nil {
		return s, fmt.Errorf("status: is the daemon running? %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := json.NewDecoder(io.LimitReader(c, 16<<20)).Decode(&s); err != nil {
		return s, fmt.Errorf("status: read from %s: %w", path, err)
	}
	return s, nil
}

// Text renders a status for people.
func (s Status) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "vpn-passthrough %s (pid %d), config %s\n", s.Version, s.PID, s.Config)
	if !s.AppliedAt.IsZero() {
		fmt.Fprintf(&b, "applied: %s, repairs: %d\n", s.AppliedAt.Format(time.RFC3339), s.Repairs)
	}
	fmt.Fprintf(&b, "LAN: %s (%s)   WAN: %s (%s)\n", strings.Join(s.Topology.LAN, " "), s.Topology.LANFrom,
		strings.Join(s.Topology.WAN, " "), s.Topology.WANFrom)
	b.WriteString("\nPROTO  DATAPATH   PASSED OUT/IN (pkts)   BLOCKED (pkts)   WHY\n")
	for _, d := range s.Protocols {
		out := s.Counters[plan.PassedCounter(d.Proto, "out")]
		in := s.Counters[plan.PassedCounter(d.Proto, "in")]
		blk := s.Counters[plan.BlockedCounter(d.Proto)]
		fmt.Fprintf(&b, "%-6s %-10s %10d/%-10d  %14d   %s\n", d.Proto, d.Datapath, out.Packets, in.Packets, blk.Packets, d.Reason)
		if d.Degraded != "" {
			fmt.Fprintf(&b, "%-6s %-10s limitation: %s\n", "", "", d.Degraded)
		}
	}
	b.WriteString("\nKERNEL: ")
	b.WriteString(capsLine(s.Caps))
	if s.QueueRules != "" {
		fmt.Fprintf(&b, "\nqueue rules: %s", s.QueueRules)
	}
	b.WriteString("\n")
	if len(s.Sessions) > 0 {
		b.WriteString("\nSESSIONS\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PROTO\tCLIENT\tSERVER\tID (orig > trans)\tPEER ID\tPKTS OUT/IN\tAGE/IDLE\tSTATE")
		for _, x := range s.Sessions {
			ids := ""
			if x.OrigID != "" || x.TransID != "" {
				ids = x.OrigID + " > " + x.TransID
			}
			age := "-"
			if x.AgeSeconds > 0 || x.IdleSeconds > 0 {
				age = fmt.Sprintf("%ds/%ds", x.AgeSeconds, x.IdleSeconds)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", x.Proto, x.Client, x.Server, ids, x.PeerID,
				x.PacketsOut, x.PacketsIn, age, x.State)
		}
		tw.Flush()
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	if s.LastError != "" {
		fmt.Fprintf(&b, "last error: %s\n", s.LastError)
	}
	return b.String()
}

func capsLine(c plan.Caps) string {
	items := map[string]bool{
		"nf_tables": c.NFTables, "conntrack": c.Conntrack, "nf_conntrack_pptp": c.PPTPHelper,
		"nf_nat_pptp": c.PPTPNAT, "gre_tracking": c.GRETracking, "nfnetlink_queue": c.NFQueue,
		"nft_queue": c.NFTQueueExpr, "xt_NFQUEUE": c.XTNFQueue,
	}
	keys := make([]string, 0, len(items))
	for k := range items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		mark := "no"
		if items[k] {
			mark = "yes"
		}
		parts = append(parts, k+"="+mark)
	}
	return strings.Join(parts, " ")
}

// dialUnix connects to a unix socket. A unix connect does not wait for the
// peer to accept (a full backlog fails it at once), so it needs no timeout;
// and net.DialUnix, unlike net.Dial, keeps the DNS resolver out of the
// binary (260 KB on mipsel).
func dialUnix(path string) (*net.UnixConn, error) {
	return net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
}
