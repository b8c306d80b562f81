package openwrt

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// aclGrants reads our acl.d file (whatever the LuCI app grants today).
type aclGrants struct {
	Group string
	Ubus  map[string][]string // object -> methods, read and write together
	UCIR  []string
	UCIW  []string
}

type grant struct {
	Ubus map[string][]string `json:"ubus"`
	UCI  []string            `json:"uci"`
}

func readACL(t *testing.T) aclGrants {
	t.Helper()
	raw := mustRead(t, repoPath(t, "luci-app/root/usr/share/rpcd/acl.d/luci-app-vpn-passthrough.json"))
	var v map[string]struct {
		Read  grant `json:"read"`
		Write grant `json:"write"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatalf("our acl.d file: %v", err)
	}
	if len(v) != 1 {
		t.Fatalf("our acl.d file has %d groups, want 1", len(v))
	}
	var g aclGrants
	g.Ubus = map[string][]string{}
	for name, grp := range v {
		g.Group = name
		for _, gr := range []grant{grp.Read, grp.Write} {
			for o, ms := range gr.Ubus {
				g.Ubus[o] = append(g.Ubus[o], ms...)
			}
		}
		g.UCIR, g.UCIW = grp.Read.UCI, grp.Write.UCI
	}
	return g
}

// Our ubus surface through real ubusd, rpcd and uhttpd: a session holding only our ACL group
// reaches exactly what the ACL grants (every granted object/method through uhttpd's /ubus, our
// uci configs through rpcd's uci object) and nothing else (other methods of our object, other
// objects, other uci configs, writes where only reads are granted).
func TestACLSession(t *testing.T) {
	g := readACL(t)
	r := startRouterBed(t, false)
	r.WriteFile("/etc/config/rpcd", RpcdConfig+fmt.Sprintf(`
config login
	option username 'vpt'
	option password '$1$vpnpt$yuCAMnyb1pbF6aMULAeC91'
	list read '%s'
	list write '%s'
`, g.Group, g.Group), 0o644)
	r.configureFW4(t) // an /etc/config/network to be denied
	r.StartRpcd(t)
	r.MustRun(t, "/etc/init.d/vpn-passthrough", "start")
	r.StartUhttpd(t)
	var objs []string
	for o := range g.Ubus {
		objs = append(objs, o)
	}
	sort.Strings(objs)
	if err := WaitFor(30*time.Second, func() error {
		for _, o := range objs {
			if _, err := r.Run("", "ubus", "list", o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("our ubus objects %v are not on the bus: %v", objs, err)
	}

	sid := r.Login(t, "vpt", "test")
	access := func(scope, obj, fn string) bool {
		out := r.MustRun(t, "ubus", "call", "session", "access",
			fmt.Sprintf(`{"ubus_rpc_session":%q,"scope":%q,"object":%q,"function":%q}`, sid, scope, obj, fn))
		return strings.Contains(out, `"access": true`)
	}
	check := func(what string, got, want bool) {
		t.Helper()
		if got != want {
			t.Errorf("%s: access %v, ACL says %v", what, got, want)
		} else {
			t.Logf("%-60s %v", what, got)
		}
	}
	for _, o := range objs {
		for _, m := range g.Ubus[o] {
			check("session access ubus "+o+"."+m, access("ubus", o, m), true)
			res := r.UbusHTTP(t, sid, o, m, "{}")
			if res.denied() {
				t.Errorf("uhttpd /ubus %s.%s: access denied though granted: %s", o, m, res.raw)
			} else {
				t.Logf("uhttpd /ubus %s.%s reached (%s)", o, m, res.short())
			}
		}
		check("session access ubus "+o+".not_granted", access("ubus", o, "not_granted"), false)
	}
	for _, om := range [][2]string{{"file", "exec"}, {"file", "read"}, {"system", "reboot"}, {"uci", "set"}, {"session", "list"}, {"service", "list"}} {
		check("session access ubus "+om[0]+"."+om[1], access("ubus", om[0], om[1]), false)
		if res := r.UbusHTTP(t, sid, om[0], om[1], "{}"); !res.denied() {
			t.Errorf("uhttpd /ubus %s.%s with our session: not denied: %s", om[0], om[1], res.raw)
		}
	}
	in := func(l []string, s string) bool {
		for _, x := range l {
			if x == s {
				return true
			}
		}
		return false
	}
	for _, c := range []string{"vpn-passthrough", "firewall", "network", "rpcd", "system"} {
		check("session access uci "+c+" read", access("uci", c, "read"), in(g.UCIR, c))
		check("session access uci "+c+" write", access("uci", c, "write"), in(g.UCIW, c))
	}
	// rpcd's own uci object enforces the same grants on a real call.
	_, err := r.Run("", "ubus", "call", "uci", "get", fmt.Sprintf(`{"config":"vpn-passthrough","ubus_rpc_session":%q}`, sid))
	check("ubus call uci get vpn-passthrough", err == nil, in(g.UCIR, "vpn-passthrough"))
	_, err = r.Run("", "ubus", "call", "uci", "get", fmt.Sprintf(`{"config":"network","ubus_rpc_session":%q}`, sid))
	check("ubus call uci get network", err == nil, in(g.UCIR, "network"))
	// ... which root's session, holding every group, does reach.
	root := r.Login(t, "root", "test")
	if _, err := r.Run("", "ubus", "call", "uci", "get", fmt.Sprintf(`{"config":"network","ubus_rpc_session":%q}`, root)); err != nil {
		t.Errorf("root's session cannot read network either: the denial above proves nothing: %v", err)
	}
}
