package lab

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// OurTable lists the daemon's table and fails t if a rule appears twice (an
// apply that duplicated state).
func (l *Lab) OurTable(t testing.TB) *TableObjects {
	t.Helper()
	tbl, err := l.ListTable(TableFamily, Table)
	if err != nil {
		t.Fatal(err)
	}
	if d := tbl.Duplicates(); len(d) > 0 {
		t.Errorf("duplicated rules in table inet %s:\n%s", Table, strings.Join(d, "\n"))
	}
	return tbl
}

// SameRules compares two snapshots of our table: rules, chains, counters and
// helpers, not handles or counter values.
func SameRules(t testing.TB, want, got *TableObjects) {
	t.Helper()
	if len(want.Rules) != len(got.Rules) {
		t.Errorf("%d rules, want %d", len(got.Rules), len(want.Rules))
	}
	count := func(tb *TableObjects) map[string]int {
		m := map[string]int{}
		for _, r := range tb.Rules {
			m["rule "+r.Key()]++
		}
		for _, c := range tb.Chains {
			m["chain "+c]++
		}
		for n := range tb.Counters {
			m["counter "+n]++
		}
		for _, h := range tb.Helpers {
			m["ct helper "+h]++
		}
		return m
	}
	if diff := MapDiff(count(want), count(got)); diff != "" {
		t.Errorf("table inet %s differs:\n%s", Table, diff)
	}
}

// MapDiff lists, sorted, the keys whose counts differ ("" if none).
func MapDiff(want, got map[string]int) string {
	var lines []string
	for k, n := range want {
		if got[k] != n {
			lines = append(lines, fmt.Sprintf("want %d, got %d: %s", n, got[k], k))
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("want 0, got %d: %s", n, k))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// DeleteOurTableAndWait deletes the daemon's table, as `fw4 flush` would, and
// waits up to limit for the daemon to put it back; it fails t otherwise and
// returns how long the repair took.
func (l *Lab) DeleteOurTableAndWait(t testing.TB, limit time.Duration) time.Duration {
	t.Helper()
	if _, err := l.Nft("delete", "table", TableFamily, Table); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if ok, _ := l.TableExists(TableFamily, Table); ok {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("table inet %s not restored within %v", Table, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
