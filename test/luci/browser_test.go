package luci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"golang.org/x/sys/unix"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
	"github.com/vpn-passthrough/vpn-passthrough/test/openwrt"
)

// shots is where the screenshots go ($LUCI_SHOTS, else test/luci/screenshots).
func shots(t *testing.T) string {
	d := os.Getenv("LUCI_SHOTS")
	if d == "" {
		d, _ = filepath.Abs("screenshots")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// startLuCI runs uhttpd with LuCI (ucode dispatcher) and the ubus JSON-RPC
// handler on 127.0.0.1:80 of the router's namespace, plus the netifd
// stand-in (LuCI's header asks `system board`), and procd as the service
// manager with the package's init script, so Save & Apply reaches the
// daemon the way it does on a router.
func (r *rig) startLuCI() {
	r.t.Helper()
	r.b.StartNetifd(r.t, openwrt.FW4MockDump, true)
	p := r.b.SpawnReady(r.t, "uhttpd", func() error {
		_, err := r.l.RouterExec("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80")
		return err
	}, "/usr/sbin/uhttpd", "-f", "-h", r.www, "-r", "OpenWrt", "-x", "/cgi-bin", "-u", "/ubus",
		"-o", "/cgi-bin/luci", "-O", "/usr/share/ucode/luci/uhttpd.uc", "-t", "60", "-T", "30", "-n", "4", "-p", "127.0.0.1:80")
	r.t.Cleanup(func() {
		if r.t.Failed() {
			done, err := p.Exited()
			r.t.Logf("uhttpd (exited %v: %v): %s", done, err, strings.Join(p.Stderr(), "\n"))
		}
	})
}

// proxy forwards connections to 127.0.0.1:port on the host's loopback to
// 127.0.0.1:80 in the router's namespace (where uhttpd listens), so that
// Chromium and its DevTools socket stay on the host's loopback. It
// returns the host-side address.
func (r *rig) proxy() string { return forwardInto(r.t, r.l.Router, "127.0.0.1:80") }

// forwardInto listens on the host's loopback and connects each client to
// addr inside the named network namespace (the browser runs on the host).
// It returns the host-side address; the listener closes with t.
func forwardInto(t testing.TB, netns, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := dialIn("/var/run/netns/"+netns, addr)
				if err != nil {
					t.Logf("proxy: %v", err)
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(u, c); done <- struct{}{} }()
				go func() { io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}

// dialIn opens a TCP connection from inside the network namespace at
// nsPath: a socket belongs to the namespace of the thread that made it. The
// thread goes back to its own namespace afterwards and lives on: a thread
// that dies would take with it the children it started (Pdeathsig).
func dialIn(nsPath, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer unix.Close(home)
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	c, derr := net.DialTimeout("tcp", addr, 10*time.Second)
	if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
		// Stuck in the wrong namespace: keep the thread locked, so it
		// ends with this goroutine rather than serve others.
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("back to the host namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return c, derr
}

// browser is headless Chromium on the host's loopback.
func (r *rig) browser() (context.Context, context.CancelFunc) {
	r.t.Helper()
	return newBrowser(r.t, 100*time.Second)
}

// newBrowser starts headless Chromium (Debian's) with a fresh profile; its
// context ends after limit. Without chromium the test skips, and fails
// under CI=true.
func newBrowser(t testing.TB, limit time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	bin := ""
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and chromium is missing (apt-get install chromium)")
		}
		t.Skip("chromium missing")
	}
	// Chromium may write its profile for a moment after it is told to
	// quit: removing it is retried, and a failure is not the test's.
	profile, err := os.MkdirTemp("", "vpnpt-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 1600), chromedp.CombinedOutput(os.Stderr))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp v0.12's protocol tables predate some events of today's
	// Chromium: those are logged and skipped, and only that noise is muted.
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, a ...any) {
		if !strings.HasPrefix(format, "could not unmarshal event") {
			t.Logf(format, a...)
		}
	}))
	// The first Run starts the browser and binds it to ctx: later Runs may
	// use shorter-lived contexts derived from it.
	if err := chromedp.Run(ctx); err != nil {
		cancel()
		acancel()
		t.Fatalf("chromium: %v", err)
	}
	ctx, tcancel := context.WithTimeout(ctx, limit)
	return ctx, func() { tcancel(); cancel(); acancel() }
}

// login posts LuCI's login form as user (password "test") and hands the
// session cookie to the browser.
func (r *rig) login(ctx context.Context, host, user string) {
	r.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm("http://"+host+"/cgi-bin/luci/", url.Values{"luci_username": {user}, "luci_password": {"test"}})
	if err != nil {
		r.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if strings.HasPrefix(ck.Name, "sysauth") {
			if err := chromedp.Run(ctx, network.SetCookie(ck.Name, ck.Value).WithDomain("127.0.0.1").WithPath("/cgi-bin/luci/")); err != nil {
				r.t.Fatal(err)
			}
			return
		}
	}
	r.t.Fatalf("LuCI login as %s: %s, no session cookie", user, resp.Status)
}

func (r *rig) shot(ctx context.Context, name string) {
	r.t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		r.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(shots(r.t), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		r.t.Error(err)
	}
	r.t.Logf("screenshot %s (%d bytes)", p, len(png))
}

// text is the page's visible text.
func text(ctx context.Context, sel string) (string, error) {
	var s string
	err := chromedp.Run(ctx, chromedp.Text(sel, &s, chromedp.ByQuery))
	return s, err
}

// waitText polls until the text of sel satisfies ok.
func waitText(ctx context.Context, sel string, timeout time.Duration, ok func(string) bool) (string, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := text(tctx, sel)
		cancel()
		if err == nil {
			last = s
			if ok(s) {
				return s, nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return last, errors.New("timed out waiting on " + sel)
}

// TestLuCIPage: the page in real LuCI with two clients' PPTP calls up. It
// leads with its title and the switches' state in words; the calls are in
// the live table with unknown ages and counts as "-"; dropping client 2's
// call from its row removes the row and stops that client's traffic while
// client 1's carries on; switching PPTP off with Save & Apply (procd turns
// LuCI's config.change into the daemon's reload) blocks it, and on again
// passes it; with the daemon stopped the page says so. Screenshots of each
// step go to test/luci/screenshots.
func TestLuCIPage(t *testing.T) {
	r := startRig(t, rigOptions{procd: true})
	r.startLuCI()
	ctx, cancel := r.browser()
	defer cancel()
	host := r.proxy()
	base := "http://" + host + "/cgi-bin/luci/"
	r.login(ctx, host, "root")

	// Two clients, same Call ID, GRE for about 40 s.
	started := time.Now()
	calls := []*lab.Proc{r.call(1, 400, 100*time.Millisecond), r.call(2, 400, 100*time.Millisecond)}
	c1, c2 := r.l.Client(1).Addr.String(), r.l.Client(2).Addr.String()

	wctx, wcancel := context.WithTimeout(ctx, 40*time.Second)
	defer wcancel()
	if err := chromedp.Run(wctx,
		chromedp.Navigate(base+"admin/network/firewall/vpn-passthrough"),
		chromedp.WaitVisible(`#vpnpt-sessions`, chromedp.ByQuery),
	); err != nil {
		r.shot(ctx, "error-page")
		t.Fatal(err)
	}
	if s, err := waitText(ctx, "#vpnpt-state", 30*time.Second, func(s string) bool { return strings.Contains(s, "PPTP: passing, through the kernel helper") }); err != nil {
		r.shot(ctx, "error-state")
		t.Fatalf("state %q: %v", s, err)
	}
	// The title leads the page: the first heading of the view, above the state.
	var order string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`(function() {
		const v = document.querySelector('#view'), h = v.querySelector('h2'), st = document.getElementById('vpnpt-state');
		return h.textContent + '|' + (h.getBoundingClientRect().top < st.getBoundingClientRect().top) + '|' +
			(v.querySelector('h2,h3') === h);
	})()`, &order)); err != nil || order != "VPN Passthrough|true|true" {
		t.Errorf("title: %q %v", order, err)
	}
	rows, err := waitText(ctx, "#vpnpt-sessions", 30*time.Second, func(s string) bool {
		return strings.Count(s, "PPTP data (GRE)") == 2 && strings.Contains(s, c1) && strings.Contains(s, c2)
	})
	if err != nil {
		r.shot(ctx, "error-sessions")
		t.Fatalf("live sessions %q: %v", rows, err)
	}
	r.shot(ctx, "1-two-calls")
	// The Status → Overview include, rendered as the Overview page does,
	// with the two calls up.
	r.checkOverview(ctx, base, "1b-overview-two-calls")
	// Kernel sessions: conntrack keeps no age, and with accounting off no
	// counts: "-", never "0s" or "0 / 0".
	var cells []string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`Array.from(document.querySelectorAll('#vpnpt-sessions .tr:not(.table-titles)')).map(function(tr) {
		return Array.from(tr.querySelectorAll('.td')).map(function(td) { return td.textContent; }).join(' | ');
	})`, &cells)); err != nil {
		t.Fatal(err)
	}
	for _, c := range cells {
		t.Logf("row: %s", c)
		if strings.Contains(c, "| 0s") || strings.Contains(c, "0 / 0") || strings.Contains(c, "| 0 s |") {
			t.Errorf("unknown shown as zero: %s", c)
		}
	}

	// Drop client 2's call from its row.
	id2 := r.greSessions()[c2]["id"].(string)
	sel := `button[data-session="` + id2 + `"]`
	if err := chromedp.Run(ctx, chromedp.Click(sel, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	dropped := time.Now()
	if err := openwrt.WaitFor(20*time.Second, func() error {
		var n int
		if err := chromedp.Run(ctx, chromedp.Evaluate(`document.querySelectorAll('`+sel+`').length`, &n)); err != nil {
			return err
		}
		if n != 0 {
			return errors.New("the dropped row is still there")
		}
		return nil
	}); err != nil {
		r.shot(ctx, "error-drop")
		t.Fatal(err)
	}
	r.shot(ctx, "2-dropped")
	res1, err1 := lab.WaitPPTPClient(calls[0], 120*time.Second)
	res2, _ := lab.WaitPPTPClient(calls[1], 120*time.Second)
	left := int(started.Add(40*time.Second).Sub(dropped) / (100 * time.Millisecond))
	if err1 != nil || !res1.OK {
		t.Errorf("client 1 suffered from client 2's drop: %v %+v", err1, res1)
	}
	if len(res2.Calls) != 1 || res2.Calls[0].Received > res2.Calls[0].Sent-left+5 {
		t.Errorf("client 2's traffic did not stop after the drop (about %d packets sent after it): %+v", left, res2)
	} else {
		t.Logf("GRE echoed: client 1 %d/%d, client 2 (dropped) %d/%d", res1.Calls[0].Received, res1.Calls[0].Sent,
			res2.Calls[0].Received, res2.Calls[0].Sent)
	}

	// PPTP off, Save & Apply: blocked; then on again.
	for _, step := range []struct {
		want, shot string
		datapath   string
	}{{"PPTP: blocked", "3-pptp-off", "blocked"}, {"PPTP: passing, through the kernel helper", "4-pptp-on", "kernel"}} {
		if err := chromedp.Run(ctx,
			chromedp.Evaluate(`document.querySelector('input[data-widget-id="widget.cbid.vpn-passthrough.globals.enabled_pptp"]').click()`, nil),
			chromedp.Click(`.cbi-page-actions .cbi-button-apply`, chromedp.ByQuery),
		); err != nil {
			t.Fatal(err)
		}
		if s, err := waitText(ctx, "#vpnpt-state", 60*time.Second, func(s string) bool { return strings.Contains(s, step.want) }); err != nil {
			r.shot(ctx, "error-"+step.shot)
			t.Fatalf("after Save & Apply: state %q, want %q: %v", s, step.want, err)
		}
		if dp := r.datapath("pptp"); dp != step.datapath {
			t.Errorf("daemon's pptp datapath %q, want %q", dp, step.datapath)
		}
		r.shot(ctx, step.shot)
	}

	// The daemon stops: the page says so in words, not as empty tables.
	if out, err := r.b.Run("", "/etc/init.d/vpn-passthrough", "stop"); err != nil {
		t.Fatalf("init script stop: %v %s", err, out)
	}
	if s, err := waitText(ctx, "#vpnpt-banners", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "The vpn-passthrough daemon is not running")
	}); err != nil {
		r.shot(ctx, "error-daemon-down")
		t.Errorf("banner with the daemon stopped: %q: %v", s, err)
	}
	r.shot(ctx, "5-daemon-down")
	// The Overview include with the daemon stopped says so, in words.
	if in := r.overview(ctx, base, "6-overview-daemon-down"); !strings.Contains(in.Text, "The vpn-passthrough daemon is not running.") {
		t.Errorf("Overview include with the daemon stopped: %q", in.Text)
	}
}

// datapath is what the daemon says carries proto.
func (r *rig) datapath(proto string) string {
	for _, p := range r.status().Protocols {
		if p.Proto == proto {
			return p.Datapath
		}
	}
	return ""
}

// overviewJS renders every Status → Overview include the way LuCI's
// Overview page (luci-mod-status, not among the bed's sources) finds and
// shows them: list /www/.../view/status/include through rpcd's file
// object, L.require each .js there, call its load() and render(), and put
// the result in a section titled with its title. It returns JSON: the
// files listed and, per include, its title and rendered text.
const overviewJS = `(async function() {
	const fs = await L.require('fs');
	const entries = await fs.list('/www' + L.resource('view/status/include'));
	const files = entries.filter(function(e) { return e.type == 'file' && /\.js$/.test(e.name); })
		.map(function(e) { return e.name; }).sort();
	const out = { files: files, includes: [] };
	for (const f of files) {
		const inc = await L.require('view.status.include.' + f.replace(/\.js$/, ''));
		const node = await inc.render(await inc.load());
		const sec = E('div', { 'class': 'cbi-section', 'data-include': f }, [ E('h3', {}, [ inc.title ]), node ]);
		(document.querySelector('#view') || document.body).appendChild(sec);
		out.includes.push({ file: f, title: inc.title, text: sec.innerText });
	}
	return JSON.stringify(out);
})()`

type overviewInclude struct {
	File, Title, Text string
}

// overview opens a LuCI page (luci-app-firewall's zones) in a tab of its
// own, renders the Overview includes there with overviewJS, screenshots the
// result as name and returns our include.
func (r *rig) overview(ctx context.Context, base, name string) overviewInclude {
	r.t.Helper()
	tctx, cancel := chromedp.NewContext(ctx)
	defer cancel()
	var raw string
	if err := chromedp.Run(tctx,
		chromedp.Navigate(base+"admin/network/firewall"),
		chromedp.WaitReady(`#view`, chromedp.ByQuery),
		chromedp.Evaluate(overviewJS, &raw, func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams {
			return p.WithAwaitPromise(true)
		}),
	); err != nil {
		r.shot(tctx, "error-"+name)
		r.t.Fatalf("rendering the Overview includes: %v", err)
	}
	var got struct {
		Files    []string
		Includes []overviewInclude
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		r.t.Fatalf("overview: %v: %s", err, raw)
	}
	r.shot(tctx, name)
	for _, in := range got.Includes {
		if in.File == "70_vpn-passthrough.js" {
			r.t.Logf("Overview include %s (of %v): %q: %q", in.File, got.Files, in.Title, in.Text)
			return in
		}
	}
	r.t.Fatalf("our include is not among the Overview includes LuCI lists: %v", got.Files)
	return overviewInclude{}
}

// overviewWords is what the include says for a datapath.
func overviewWords(proto, datapath string) string {
	switch datapath {
	case "kernel":
		if proto == "pptp" {
			return "passing, through the kernel helper"
		}
		return "passing, through the kernel's NAT"
	case "userspace":
		return "passing, through the userspace engine"
	case "blocked":
		return "blocked"
	case "untouched":
		return "not handled (vpn-passthrough is disabled)"
	}
	return "unknown"
}

// checkOverview renders the include and compares each protocol's line
// with the daemon's status read just before and after.
func (r *rig) checkOverview(ctx context.Context, base, name string) {
	r.t.Helper()
	before := r.status()
	in := r.overview(ctx, base, name)
	after := r.status()
	if in.Title != "VPN Passthrough" {
		r.t.Errorf("include title %q", in.Title)
	}
	label := map[string]string{"pptp": "PPTP", "l2tp": "L2TP", "ipsec": "IPsec"}
	count := func(s wireStatus, proto string) int {
		n := 0
		for _, x := range s.Sessions {
			if x["protocol"] == proto {
				n++
			}
		}
		return n
	}
	lines := strings.Split(in.Text, "\n")
	for _, p := range before.Protocols {
		n := count(before, p.Proto)
		if count(after, p.Proto) != n {
			r.t.Logf("%s sessions changed while rendering: not compared", p.Proto)
			continue
		}
		want := overviewWords(p.Proto, p.Datapath)
		if n == 1 {
			want += fmt.Sprintf(" — %d session", n)
		} else if n > 1 {
			want += fmt.Sprintf(" — %d sessions", n)
		}
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, label[p.Proto]) && strings.TrimSpace(strings.TrimPrefix(l, label[p.Proto])) == want {
				found = true
			}
		}
		if !found {
			r.t.Errorf("Overview include: no line %q %q in:\n%s", label[p.Proto], want, in.Text)
		}
	}
}
