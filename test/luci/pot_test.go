// Package luci tests the LuCI app: its translation template here, and the
// page in real LuCI (uhttpd, rpcd, luci-base) in headless Chromium in
// browser_test.go.
package luci

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const app = "../../luci-app"

// jsString matches one single-quoted JS string literal.
const jsString = `'((?:[^'\\]|\\.)*)'`

var (
	reSingular = regexp.MustCompile(`\b_\(\s*` + jsString + `\s*\)`)
	rePlural   = regexp.MustCompile(`\bN_\(\s*[^,]+,\s*` + jsString + `\s*,\s*` + jsString + `\s*\)`)
	reAnyCall  = regexp.MustCompile(`\bN?_\(`)
)

func unquote(s string) string {
	return strings.NewReplacer(`\'`, `'`, `\"`, `"`, `\\`, `\`, `\n`, "\n").Replace(s)
}

type msg struct{ id, plural string }

// strings collects every translatable string of the app's JS files and
// menu titles, and fails on a _() call this scanner cannot read (a
// concatenation, a variable): those would be missing from the template.
func collect(t *testing.T) []msg {
	seen := map[msg]bool{}
	err := filepath.Walk(filepath.Join(app, "htdocs"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		src := string(b)
		n := 0
		for _, m := range reSingular.FindAllStringSubmatch(src, -1) {
			seen[msg{id: unquote(m[1])}] = true
			n++
		}
		for _, m := range rePlural.FindAllStringSubmatch(src, -1) {
			seen[msg{id: unquote(m[1]), plural: unquote(m[2])}] = true
			n++
		}
		if calls := len(reAnyCall.FindAllString(src, -1)); calls != n {
			t.Errorf("%s: %d _()/N_() calls, %d readable: every translatable string must be one literal", p, calls, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	menus, _ := filepath.Glob(filepath.Join(app, "root/usr/share/luci/menu.d/*.json"))
	for _, f := range menus {
		b, _ := os.ReadFile(f)
		var m map[string]struct{ Title string }
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, e := range m {
			if e.Title != "" {
				seen[msg{id: e.Title}] = true
			}
		}
	}
	var out []msg
	for m := range seen {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func poQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

func template(ms []msg) string {
	var b strings.Builder
	b.WriteString("msgid \"\"\nmsgstr \"Content-Type: text/plain; charset=UTF-8\"\n")
	for _, m := range ms {
		if m.plural != "" {
			fmt.Fprintf(&b, "\nmsgid %s\nmsgid_plural %s\nmsgstr[0] \"\"\nmsgstr[1] \"\"\n", poQuote(m.id), poQuote(m.plural))
			continue
		}
		fmt.Fprintf(&b, "\nmsgid %s\nmsgstr \"\"\n", poQuote(m.id))
	}
	return b.String()
}

// TestPotComplete: the .pot holds exactly the app's strings. Regenerate it
// with UPDATE_POT=1 go test -run TestPotComplete ./test/luci.
func TestPotComplete(t *testing.T) {
	want := template(collect(t))
	pot := filepath.Join(app, "po/templates/vpn-passthrough.pot")
	if os.Getenv("UPDATE_POT") == "1" {
		if err := os.WriteFile(pot, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(pot)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is not the app's strings; run UPDATE_POT=1 go test -run TestPotComplete ./test/luci", pot)
	}
	if !strings.Contains(want, `msgid "Off blocks PPTP: TCP port 1723 and GRE, from the LAN to the WAN."`) {
		t.Error("scanner missed a known string")
	}
}
