package status

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Text renders a status for people (the CLI's `status`).
func (s Status) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "vpn-passthrough %s (pid %d), config %s: %s\n", s.Version, s.PID, s.Config, s.State)
	if s.AppliedAt != nil {
		fmt.Fprintf(&b, "applied: %s, repairs: %d\n", s.AppliedAt.Format(time.RFC3339), s.Repairs)
	}
	fmt.Fprintf(&b, "LAN: %s (%s)   WAN: %s (%s)\n", strings.Join(s.Topology.LAN, " "), s.Topology.LANFrom,
		strings.Join(s.Topology.WAN, " "), s.Topology.WANFrom)
	b.WriteString("\nPROTO  DATAPATH   PASSED OUT/IN (pkts)   BLOCKED (pkts)   WHY\n")
	for _, p := range s.Protocols {
		fmt.Fprintf(&b, "%-6s %-10s %10d/%-10d  %14d   %s\n", p.Name, p.Datapath, p.Passed.Out.Packets, p.Passed.In.Packets,
			p.Blocked.Packets, p.Reason)
		if p.Limitation != "" {
			fmt.Fprintf(&b, "%-6s %-10s limitation: %s\n", "", "", p.Limitation)
		}
	}
	var have, missing []string
	for _, c := range s.Capabilities {
		if c.Present {
			have = append(have, c.Name)
		} else {
			missing = append(missing, c.Name)
		}
	}
	fmt.Fprintf(&b, "\nKERNEL: has %s; lacks %s\n", orNone(have), orNone(missing))
	if s.QueueRules != "" {
		fmt.Fprintf(&b, "queue rules: %s\n", s.QueueRules)
	}
	if s.Offload.State != "" {
		fmt.Fprintf(&b, "flow offload: %s (%s)\n", s.Offload.State, s.Offload.Detail)
	}
	if len(s.Sessions) > 0 {
		b.WriteString("\nSESSIONS\n")
		rows := [][]string{{"PROTO", "CLIENT", "SERVER", "ID (orig > trans)", "PEER ID", "PKTS OUT/IN", "BYTES OUT/IN", "AGE/IDLE", "STATE"}}
		for _, x := range s.Sessions {
			ids := ""
			if x.IDOrig != nil || x.IDTrans != nil {
				ids = str(x.IDOrig) + " > " + str(x.IDTrans)
			}
			rows = append(rows, []string{x.Kind, x.Client, x.Server, ids, str(x.IDPeer),
				num(x.PacketsOut) + "/" + num(x.PacketsIn), num(x.BytesOut) + "/" + num(x.BytesIn),
				Duration(x.AgeSeconds) + "/" + Duration(x.IdleSeconds), stateText(x)})
		}
		writeColumns(&b, rows)
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	if s.LastError != "" {
		fmt.Fprintf(&b, "last error: %s\n", s.LastError)
	}
	return b.String()
}

func stateText(x SessionInfo) string {
	if x.Expires != nil {
		return x.State + ", expires in " + Duration(x.Expires)
	}
	return x.State
}

func orNone(v []string) string {
	if len(v) == 0 {
		return "none"
	}
	return strings.Join(v, " ")
}

func str(p *string) string {
	if p == nil {
		return "-"
	}
	return *p
}

func num(p *uint64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatUint(*p, 10)
}

// Duration writes seconds the way a person reads them ("3 h 12 min"); "-"
// when unknown.
func Duration(p *int64) string {
	if p == nil {
		return "-"
	}
	d := *p
	switch {
	case d < 60:
		return fmt.Sprintf("%d s", d)
	case d < 3600:
		return fmt.Sprintf("%d min %d s", d/60, d%60)
	case d < 86400:
		return fmt.Sprintf("%d h %d min", d/3600, d%3600/60)
	}
	return fmt.Sprintf("%d d %d h", d/86400, d%86400/3600)
}

// writeColumns writes rows as columns two spaces apart, the last one
// unpadded: what text/tabwriter (padding 2, no flags) does with rows of the
// same length, without its ~12 KB in the router binary. Widths count runes,
// as tabwriter does.
func writeColumns(b *strings.Builder, rows [][]string) {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)+2))
			}
		}
		b.WriteByte('\n')
	}
}
