package luci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
	"github.com/vpn-passthrough/vpn-passthrough/test/openwrt"
)

// ourPage finds our page in our menu.d JSON: the one entry whose action is a view of ours.
func ourPage(t *testing.T, repo string) (path, title string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repo, "luci-app/root/usr/share/luci/menu.d/*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]struct {
			Title  string `json:"title"`
			Action struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"action"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var keys []string
		for k, e := range m {
			if e.Action.Type == "view" && strings.HasPrefix(e.Action.Path, "vpn-passthrough/") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			return keys[0], m[keys[0]].Title
		}
	}
	t.Fatalf("no menu.d entry of ours with a vpn-passthrough view in %v", files)
	return "", ""
}

// findToggle (in the page) returns a CSS selector for the checkbox of UCI option sec.opt: the
// form option whose UCI section and option are those (LuCI binds each option's instance to its
// node), else the plain widget id LuCI gives a Flag named after its UCI option.
const findToggle = `(function(sec, opt) {
	const nodes = Array.from(document.querySelectorAll('.cbi-value'));
	for (const el of nodes) {
		let o = null;
		try { o = L.dom.findClassInstance(el); } catch (e) {}
		if (!o || !o.section) continue;
		const s = o.ucisection || o.section.section, n = o.ucioption || o.option;
		if (s === sec && n === opt) {
			const cb = el.querySelector('input[type="checkbox"]');
			if (cb) { cb.setAttribute('data-vpt-toggle', sec + '.' + opt); return '[data-vpt-toggle="' + sec + '.' + opt + '"]'; }
		}
	}
	const id = 'widget.cbid.vpn-passthrough.' + sec + '.' + opt;
	return document.getElementById(id) ? '[id="' + id + '"]' : '';
})(%q, %q)`

type browser struct {
	ctx    context.Context
	t      *testing.T
	shots  string
	n      int
	mu     sync.Mutex
	errors []string
}

func (b *browser) shot(name string) {
	var buf []byte
	if err := chromedp.Run(b.ctx, chromedp.FullScreenshot(&buf, 100)); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.n++
	p := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// run runs actions with a time limit; on failure it saves a screenshot and fails t with the
// page's text.
func (b *browser) run(what string, limit time.Duration, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, limit)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		var text, url string
		chromedp.Run(b.ctx, chromedp.Location(&url), chromedp.Evaluate(`document.body ? document.body.innerText : ''`, &text))
		b.t.Fatalf("%s: %v\nat %s; page errors %q; page text:\n%s", what, err, url, b.pageErrors(), lastN(text, 1500))
	}
}

func lastN(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (b *browser) pageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// LuCI in headless Chromium through the real uhttpd and LuCI dispatcher: log in, open our page
// (found through our menu.d JSON), no page or console errors; PPTP off + Save & Apply: the UCI
// file changes, procd reloads the daemon, PPTP from a LAN client is blocked through the same
// router; on again: two clients' calls show in the page's session table within the poll interval.
func TestLuCI(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and chromium is not installed (apt-get install chromium)")
		}
		t.Skip("chromium is not installed")
	}
	openwrt.Require(t)
	repo, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	pagePath, title := ourPage(t, repo)
	l := lab.Start(t, lab.Config{})
	b := openwrt.Start(t, openwrt.Options{NetNS: l.Router})
	b.StartUbusd(t)
	b.InstallFiles(t)
	b.StartRpcd(t)
	if err := b.WriteFile("/tmp/lab-ifaces.json", openwrt.LabInterfaceDump(l), 0o644); err != nil {
		t.Fatal(err)
	}
	b.StartNetifd(t, "/tmp/lab-ifaces.json", true)
	b.StartProcd(t)
	openwrt.ConfigureFW4(t, b, l)
	if err := b.WriteFile("/etc/config/vpn-passthrough", openwrt.BedConfig(l), 0o600); err != nil {
		t.Fatal(err)
	}
	b.MustSh(t, "sh /etc/uci-defaults/vpn-passthrough && fw4 -q restart && /etc/init.d/vpn-passthrough start")
	b.StartLuCI(t)
	if _, err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	if p, err := l.PPTPClient(1, "--call-id", "7", "--count", "5"); err != nil || !p.OK {
		t.Fatalf("PPTP before the test: %+v %v", p, err)
	}

	addr, stop, err := forward(l.Router, fmt.Sprintf("127.0.0.1:%d", openwrt.HTTPPort))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	shots := os.Getenv("VPNPT_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "vpt-luci-screenshots-"+time.Now().UTC().Format("20060102-150405"))
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", shots)
	fmt.Printf("LuCI screenshots: %s\n", shots)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(1280, 1600), chromedp.Flag("disable-gpu", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	// Start the browser on the long-lived context: a derived context that ends closes the
	// browser if it was the first to run.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	br := &browser{ctx: ctx, t: t, shots: shots}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			br.mu.Lock()
			br.errors = append(br.errors, "exception: "+e.ExceptionDetails.Error())
			br.mu.Unlock()
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError {
				var args []string
				for _, a := range e.Args {
					args = append(args, strings.Trim(string(a.Value), `"`)+a.Description)
				}
				br.mu.Lock()
				br.errors = append(br.errors, "console.error: "+strings.Join(args, " "))
				br.mu.Unlock()
			}
		}
	})

	base := "http://" + addr + "/cgi-bin/luci"
	br.run("login page", 60*time.Second,
		chromedp.Navigate(base),
		chromedp.WaitVisible(`input[name="luci_username"]`, chromedp.ByQuery),
		chromedp.SetValue(`input[name="luci_username"]`, "root", chromedp.ByQuery),
		chromedp.SetValue(`input[name="luci_password"]`, "test", chromedp.ByQuery),
	)
	br.shot("login")
	br.run("login", 60*time.Second,
		chromedp.Submit(`input[name="luci_password"]`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`input[name="luci_password"]`, chromedp.ByQuery),
	)
	url := base + "/" + pagePath
	var toggle string
	br.run("open our page", 60*time.Second,
		chromedp.Navigate(url),
		chromedp.WaitVisible(`.cbi-map`, chromedp.ByQuery),
		chromedp.Sleep(2*time.Second), // the view's first poll and rendering
		chromedp.Evaluate(fmt.Sprintf(findToggle, "pptp", "enabled"), &toggle),
	)
	br.shot("page")
	var heading string
	chromedp.Run(ctx, chromedp.Evaluate(`(document.querySelector('h2') || {}).textContent || ''`, &heading))
	t.Logf("our page %s (menu title %q, heading %q)", url, title, heading)
	if errs := br.pageErrors(); len(errs) > 0 {
		t.Fatalf("page errors on our page:\n%s", strings.Join(errs, "\n"))
	}
	if toggle == "" {
		t.Fatal("no checkbox for UCI option pptp.enabled on our page")
	}

	// PPTP off, Save & Apply.
	pid := procdPid(t, b)
	saveApply := func(want string) {
		t.Helper()
		var checked bool
		if err := chromedp.Run(ctx,
			chromedp.Evaluate(`document.querySelector('`+toggle+`').checked`, &checked),
		); err != nil {
			t.Fatal(err)
		}
		if (want == "0") == !checked {
			t.Fatalf("pptp toggle already %v", checked)
		}
		var now bool
		br.run("toggle pptp", 20*time.Second,
			chromedp.Evaluate(`(function(){ const c = document.querySelector('`+toggle+`'); c.click(); return c.checked; })()`, &now))
		if now != (want == "1") {
			t.Fatalf("clicking the pptp toggle left it checked=%v", now)
		}
		br.run("Save & Apply", 20*time.Second, chromedp.Click(`.cbi-page-actions .cbi-button-apply`, chromedp.ByQuery))
		t0 := time.Now()
		if err := openwrt.WaitFor(90*time.Second, func() error {
			got, err := b.Run("", "uci", "-q", "get", "vpn-passthrough.pptp.enabled")
			if err != nil || strings.TrimSpace(got) != want {
				return fmt.Errorf("pptp.enabled = %q (%v), want %s", strings.TrimSpace(got), err, want)
			}
			return nil
		}); err != nil {
			br.shot("apply-failed")
			t.Fatalf("Save & Apply did not reach /etc/config/vpn-passthrough: %v", err)
		}
		t.Logf("Save & Apply: /etc/config/vpn-passthrough has pptp.enabled=%s after %v", want, time.Since(t0).Round(time.Millisecond))
		if err := openwrt.WaitFor(30*time.Second, func() error {
			out, err := b.Run("", "nft", "list", "table", "inet", "vpn_passthrough")
			if err != nil {
				return err
			}
			if strings.Contains(out, "vpn-passthrough: pptp off") != (want == "0") {
				return fmt.Errorf("our table does not show pptp enabled=%s yet", want)
			}
			return nil
		}); err != nil {
			t.Fatalf("procd did not reload the daemon: %v", err)
		}
		// LuCI confirms the apply (rpcd rolls it back otherwise) and then closes its modal.
		// The page reloads itself at the end, so poll through navigations.
		if err := openwrt.WaitFor(60*time.Second, func() error {
			var done bool
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			err := chromedp.Run(c, chromedp.Evaluate(`document.readyState == 'complete' && !!document.querySelector('.cbi-map') &&
				!document.body.classList.contains('modal-overlay-active')`, &done))
			if err == nil && !done {
				err = fmt.Errorf("LuCI's apply is still in progress")
			}
			return err
		}); err != nil {
			br.shot("apply-unconfirmed")
			t.Fatalf("LuCI did not finish the apply: %v", err)
		}
		t.Logf("LuCI confirmed the apply and closed its dialog after %v", time.Since(t0).Round(time.Millisecond))
		if p := procdPid(t, b); p != pid {
			t.Fatalf("the daemon was restarted (pid %d -> %d), not reloaded", pid, p)
		}
		t.Logf("procd reloaded the daemon (pid %d): pptp enabled=%s in force after %v", pid, want, time.Since(t0).Round(time.Millisecond))
	}
	saveApply("0")
	br.shot("pptp-off-applied")
	if p, err := l.PPTPClient(1, "--call-id", "7", "--count", "3", "--connect-timeout", "1s", "--timeout", "4s"); err == nil && p.OK {
		t.Fatalf("PPTP passed with PPTP switched off in LuCI: %+v", p)
	} else {
		t.Logf("PPTP from lan1 blocked: connected=%v received=%d", p.Connected, p.Received)
	}

	// On again; two clients open calls; both show in the session table.
	if err := chromedp.Run(ctx, chromedp.Navigate(url), chromedp.WaitVisible(`.cbi-map`, chromedp.ByQuery),
		chromedp.Sleep(time.Second), chromedp.Evaluate(fmt.Sprintf(findToggle, "pptp", "enabled"), &toggle)); err != nil {
		t.Fatal(err)
	}
	saveApply("1")
	var clients []*lab.Proc
	for i := 1; i <= 2; i++ {
		p, err := l.StartPPTPClient(i, "--call-id", "7", "--count", "600", "--interval", "100ms", "--timeout", "90s")
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, p)
	}
	defer func() {
		for _, p := range clients {
			p.Kill()
		}
	}()
	if err := chromedp.Run(ctx, chromedp.Navigate(url), chromedp.WaitVisible(`.cbi-map`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var text string
	if err := openwrt.WaitFor(30*time.Second, func() error {
		if err := chromedp.Run(ctx, chromedp.Evaluate(`document.body.innerText`, &text)); err != nil {
			return err
		}
		for _, c := range l.Clients[:2] {
			if !strings.Contains(text, c.Addr.String()) {
				return fmt.Errorf("%s not in the page yet", c.Addr)
			}
		}
		return nil
	}); err != nil {
		br.shot("sessions-missing")
		t.Fatalf("the two clients' calls do not show: %v", err)
	}
	br.shot("two-sessions")
	t.Logf("both clients' PPTP calls (%s, %s) show on the page after %v", l.Clients[0].Addr, l.Clients[1].Addr, time.Since(t0).Round(time.Millisecond))
	if errs := br.pageErrors(); len(errs) > 0 {
		t.Fatalf("page errors:\n%s", strings.Join(errs, "\n"))
	}
}

func procdPid(t *testing.T, b *openwrt.Bed) int {
	t.Helper()
	out := b.MustRun(t, "ubus", "call", "service", "list", `{"name":"vpn-passthrough"}`)
	var v map[string]struct {
		Instances map[string]struct {
			Pid int `json:"pid"`
		} `json:"instances"`
	}
	json.Unmarshal([]byte(out), &v)
	for _, in := range v["vpn-passthrough"].Instances {
		return in.Pid
	}
	t.Fatalf("no instance: %s", out)
	return 0
}
