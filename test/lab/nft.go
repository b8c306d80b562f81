package lab

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// NftApply loads ruleset text into the router with `nft -f -`.
func (l *Lab) NftApply(ruleset string) error {
	_, err := runStdin(ruleset, "ip", "netns", "exec", l.Router, "nft", "-f", "-")
	return err
}

// Nft runs nft in the router.
func (l *Lab) Nft(args ...string) (string, error) {
	return l.RouterExec(append([]string{"nft"}, args...)...)
}

// NftListTable returns `nft list table FAMILY NAME` from the router.
func (l *Lab) NftListTable(family, name string) (string, error) {
	return l.Nft("list", "table", family, name)
}

// NftRuleset returns `nft list ruleset` from the router.
func (l *Lab) NftRuleset() (string, error) { return l.Nft("list", "ruleset") }

// TableExists reports whether the router has table FAMILY NAME.
func (l *Lab) TableExists(family, name string) (bool, error) {
	out, err := l.Nft("list", "tables", family)
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "table "+family+" "+name {
			return true, nil
		}
	}
	return false, nil
}

// Rule is one rule of `nft -j list table`.
type Rule struct {
	Family  string          `json:"family"`
	Table   string          `json:"table"`
	Chain   string          `json:"chain"`
	Handle  int             `json:"handle"`
	Comment string          `json:"comment"`
	Expr    json.RawMessage `json:"expr"`
}

// Key identifies what a rule does (chain, expressions, comment), not its
// handle or the values of its anonymous counters.
func (r Rule) Key() string {
	expr := reCounterValues.ReplaceAllString(string(r.Expr), `"counter": {}`)
	return r.Chain + "|" + expr + "|" + r.Comment
}

var reCounterValues = regexp.MustCompile(`"counter": \{"packets": \d+, "bytes": \d+\}`)

// TableObjects is a table as `nft -j list table` shows it.
type TableObjects struct {
	Chains   []string
	Rules    []Rule
	Counters map[string]Counter
	Helpers  []string // ct helper objects
	Sets     []string
}

// Counter is a named counter object.
type Counter struct {
	Name    string `json:"name"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// ListTable reads table FAMILY NAME with `nft -j`.
func (l *Lab) ListTable(family, name string) (*TableObjects, error) {
	out, err := l.Nft("-j", "list", "table", family, name)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("nft -j list table %s %s: %w", family, name, err)
	}
	t := &TableObjects{Counters: map[string]Counter{}}
	for _, obj := range doc.Nftables {
		for kind, raw := range obj {
			var named struct {
				Name string `json:"name"`
			}
			switch kind {
			case "chain":
				_ = json.Unmarshal(raw, &named)
				t.Chains = append(t.Chains, named.Name)
			case "rule":
				var r Rule
				if err := json.Unmarshal(raw, &r); err != nil {
					return nil, err
				}
				t.Rules = append(t.Rules, r)
			case "counter":
				var c Counter
				if err := json.Unmarshal(raw, &c); err != nil {
					return nil, err
				}
				t.Counters[c.Name] = c
			case "ct helper":
				_ = json.Unmarshal(raw, &named)
				t.Helpers = append(t.Helpers, named.Name)
			case "set":
				_ = json.Unmarshal(raw, &named)
				t.Sets = append(t.Sets, named.Name)
			}
		}
	}
	return t, nil
}

// Duplicates returns the keys of rules that occur more than once in a chain.
func (t *TableObjects) Duplicates() []string {
	seen := map[string]int{}
	var dups []string
	for _, r := range t.Rules {
		seen[r.Key()]++
		if seen[r.Key()] == 2 {
			dups = append(dups, r.Key())
		}
	}
	return dups
}

// ReadCounter reads named counter NAME of table FAMILY TABLE
// (`nft -j list counter`).
func (l *Lab) ReadCounter(family, table, name string) (Counter, error) {
	out, err := l.Nft("-j", "list", "counter", family, table, name)
	if err != nil {
		return Counter{}, err
	}
	var doc struct {
		Nftables []struct {
			Counter *Counter `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return Counter{}, fmt.Errorf("nft -j list counter %s %s %s: %w", family, table, name, err)
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			return *o.Counter, nil
		}
	}
	return Counter{}, fmt.Errorf("nft -j list counter %s %s %s: no counter in the output", family, table, name)
}

var reHandle = regexp.MustCompile(`# handle (\d+)$`)

// DeleteRules deletes the rules of chain FAMILY TABLE CHAIN whose text (as
// `nft -a list chain` prints it) contains substr, and returns how many.
func (l *Lab) DeleteRules(family, table, chain, substr string) (int, error) {
	out, err := l.Nft("-a", "list", "chain", family, table, chain)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		m := reHandle.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || !strings.Contains(line, substr) || strings.Contains(line, "chain "+chain+" {") {
			continue
		}
		if _, err := l.Nft("delete", "rule", family, table, chain, "handle", m[1]); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// DropFW4PPTPHelper deletes fw4's own `ct helper set "pptp"` rule from
// helper_lan. fw4 assigns helpers only on zones without masquerade and only
// when the helper's module exists; without its rule, whatever assigns the
// helper in a test is the daemon.
func (l *Lab) DropFW4PPTPHelper() error {
	n, err := l.DeleteRules("inet", "fw4", "helper_lan", `ct helper set "pptp"`)
	if err == nil && n != 1 {
		err = fmt.Errorf("fw4 helper_lan: %d pptp helper rules deleted, want 1", n)
	}
	return err
}

// ConntrackFlush empties the router's conntrack table and expectations.
func (l *Lab) ConntrackFlush() error {
	if _, err := l.RouterExec("conntrack", "-F"); err != nil {
		return err
	}
	_, err := l.RouterExec("conntrack", "-F", "expect")
	return err
}

// Expectation is one line of `conntrack -L expect`.
type Expectation struct {
	Raw     string
	Timeout int
	Proto   int               // the expected flow's protocol (47 for GRE)
	Fields  map[string]string // first value of each key=value
	Helper  string
}

// Expectations lists the router's conntrack expectations.
func (l *Lab) Expectations() ([]Expectation, error) {
	out, err := l.RouterExec("conntrack", "-L", "expect")
	if err != nil {
		return nil, err
	}
	var exps []Expectation
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(line, "conntrack v") {
			continue
		}
		to, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		e := Expectation{Raw: line, Timeout: to, Fields: map[string]string{}}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			if _, dup := e.Fields[k]; !dup {
				e.Fields[k] = v
			}
		}
		e.Proto, _ = strconv.Atoi(e.Fields["proto"])
		e.Helper = e.Fields["helper"]
		exps = append(exps, e)
	}
	return exps, nil
}

// Conntrack returns the router's `conntrack -L [args]` lines.
func (l *Lab) Conntrack(args ...string) ([]string, error) {
	out, err := l.RouterExec(append([]string{"conntrack", "-L"}, args...)...)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if line != "" && !strings.HasPrefix(line, "conntrack v") {
			lines = append(lines, line)
		}
	}
	return lines, nil
}
