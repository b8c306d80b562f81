package nft

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// TestDiffSeesEveryDamage applies each plan, requires Diff to find nothing,
// then damages the table the ways other programs do (with nft(8), in a
// namespace of its own) and requires Diff to notice each, even those that
// keep every count the same.
func TestDiffSeesEveryDamage(t *testing.T) {
	ps := plans(t)
	names := make([]string, 0, len(ps))
	for n := range ps {
		names = append(names, n)
	}
	sort.Strings(names)
	tbl := "inet " + plan.TableName
	damages := []struct {
		name string
		cmds []string // nft -f input
	}{
		{"delete table", []string{"delete table " + tbl}},
		{"flush chain", []string{"flush chain " + tbl + " forward"}},
		{"delete element", []string{"delete element " + tbl + " wan_devs { \"r-wan\" }"}},
		{"add element", []string{"add element " + tbl + " lan_devs { \"evil0\" }"}},
		{"insert foreign accept", []string{"insert rule " + tbl + " forward accept"}},
		{"swap first rule for a foreign one", []string{"insert rule " + tbl + " forward accept", "DELETE-SECOND"}},
		{"policy drop", []string{"chain " + tbl + " forward { policy drop; }"}},
	}
	for _, name := range names {
		p := ps[name]
		if name == "every-field" { // other chains and devices: no damage, just no false alarm
			ns := newNetns(t)
			c := ns.conn(t)
			if err := c.Apply(p); err != nil {
				t.Fatal(err)
			}
			if d := c.Diff(p); d != "" {
				t.Errorf("every-field right after an apply: %s", d)
			}
			continue
		}
		for _, dm := range damages {
			t.Run(name+"/"+dm.name, func(t *testing.T) {
				ns := newNetns(t)
				c := ns.conn(t)
				if err := c.Apply(p); err != nil {
					t.Fatal(err)
				}
				if d := c.Diff(p); d != "" {
					t.Fatalf("right after an apply: %s", d)
				}
				for _, cmd := range dm.cmds {
					if cmd == "DELETE-SECOND" {
						h := secondHandle(t, ns)
						cmd = "delete rule " + tbl + " forward handle " + h
					}
					ns.nft(t, cmd+"\n", "-f", "-")
				}
				if d := c.Diff(p); d == "" {
					t.Fatalf("Diff misses %s:\n%s", dm.name, ns.nft(t, "", "list", "ruleset"))
				} else {
					t.Logf("%s: %s", dm.name, d)
				}
				if err := c.Apply(p); err != nil {
					t.Fatal(err)
				}
				if d := c.Diff(p); d != "" {
					t.Fatalf("after re-applying: %s", d)
				}
			})
		}
	}
}

// secondHandle is the handle of the forward chain's second rule.
func secondHandle(t *testing.T, ns *netns) string {
	out := ns.nft(t, "", "-a", "list", "chain", "inet", plan.TableName, "forward")
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "# handle "); i >= 0 && !strings.Contains(line, "chain forward") {
			n++
			if n == 2 {
				return strings.TrimSpace(line[i+len("# handle "):])
			}
		}
	}
	t.Fatalf("no second rule in:\n%s", out)
	return ""
}

// TestNetlinkDeadlineExplained: a request that hit its deadline says what it
// means instead of hanging or saying only "i/o timeout".
func TestNetlinkDeadlineExplained(t *testing.T) {
	err := explain(fmt.Errorf("nft: apply: %w", os.ErrDeadlineExceeded))
	if !strings.Contains(err.Error(), "nf_tables did not answer within 10s") || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("explained: %v", err)
	}
	if explain(nil) != nil {
		t.Error("explain(nil) is not nil")
	}
	plain := errors.New("x")
	if explain(plain) != plain {
		t.Error("explain changed an unrelated error")
	}
}
