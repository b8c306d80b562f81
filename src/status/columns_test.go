package status

import (
	"strings"
	"testing"
	"text/tabwriter"
)

// TestWriteColumnsAsTabwriter: the session table is laid out exactly as
// text/tabwriter laid it out before it was replaced.
func TestWriteColumnsAsTabwriter(t *testing.T) {
	tables := [][][]string{
		{{"PROTO", "CLIENT", "ID (orig > trans)", "STATE"}},
		{
			{"PROTO", "CLIENT", "SERVER", "ID (orig > trans)", "PEER ID", "PKTS OUT/IN", "STATE"},
			{"pptp", "192.168.1.20", "203.0.113.5", "1 > 40961", "-", "12/-", "established, expires in 9 min 59 s"},
			{"esp", "192.168.1.21", "203.0.113.5", "", "0x0000beef", "-/-", ""},
			{"l2tp", "ä", "", "x", "", "", "restored"},
		},
	}
	for _, rows := range tables {
		var want strings.Builder
		tw := tabwriter.NewWriter(&want, 0, 0, 2, ' ', 0)
		for _, r := range rows {
			tw.Write([]byte(strings.Join(r, "\t") + "\n"))
		}
		tw.Flush()
		var got strings.Builder
		writeColumns(&got, rows)
		if got.String() != want.String() {
			t.Errorf("writeColumns:\n%s\ntabwriter:\n%s", got.String(), want.String())
		}
	}
}
