package luci

import (
	"context"
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
	p, err := r.b.Spawn("uhttpd", "/usr/sbin/uhttpd", "-f", "-h", r.www, "-r", "OpenWrt", "-x", "/cgi-bin", "-u", "/ubus",
		"-o", "/cgi-bin/luci", "-O", "/usr/share/ucode/luci/uhttpd.uc", "-t", "60", "-T", "30", "-n", "4", "-p", "127.0.0.1:80")
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		if r.t.Failed() {
			done, err := p.Exited()
			r.t.Logf("uhttpd (exited %v: %v): %s", done, err, strings.Join(p.Stderr(), "\n"))
		}
	})
	if err := openwrt.WaitFor(20*time.Second, func() error {
		if done, err := p.Exited(); done {
			return fmt.Errorf("uhttpd exited: %v: %s", err, strings.Join(p.Stderr(), "\n"))
		}
		_, err := r.l.RouterExec("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80")
		return err
	}); err != nil {
		r.t.Fatal(err)
	}
}

// proxy forwards connections to 127.0.0.1:port on the host's loopback to
// 127.0.0.1:80 in the router's namespace (where uhttpd listens), so that
// Chromium and its DevTools socket stay on the host's loopback. It
// returns the host-side address.
func (r *rig) proxy() string {
	r.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := dialIn("/var/run/netns/"+r.l.Router, "127.0.0.1:80")
				if err != nil {
					r.t.Logf("proxy: %v", err)
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
	bin := ""
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			r.t.Fatal("CI=true and chromium is missing (apt-get install chromium)")
		}
		r.t.Skip("chromium missing")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(r.t.TempDir()), chromedp.WindowSize(1280, 1600), chromedp.CombinedOutput(os.Stderr))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// The first Run starts the browser and binds it to ctx: later Runs may
	// use shorter-lived contexts derived from it.
	if err := chromedp.Run(ctx); err != nil {
		cancel()
		acancel()
		r.t.Fatalf("chromium: %v", err)
	}
	ctx, tcancel := context.WithTimeout(ctx, 100*time.Second)
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

func TestLuCIPage(t *testing.T) {
	r := startRig(t, rigOptions{})
	r.startLuCI()
	ctx, cancel := r.browser()
	defer cancel()
	host := r.proxy()
	base := "http://" + host + "/cgi-bin/luci/"
	r.login(ctx, host, "root")
	wctx, wcancel := context.WithTimeout(ctx, 40*time.Second)
	defer wcancel()
	if err := chromedp.Run(wctx,
		chromedp.Navigate(base+"admin/network/firewall/vpn-passthrough"),
		chromedp.WaitVisible(`#vpnpt-sessions`, chromedp.ByQuery),
	); err != nil {
		r.shot(ctx, "error-page")
		t.Fatal(err)
	}
	if s, err := waitText(ctx, "#vpnpt-state", 30*time.Second, func(s string) bool { return strings.Contains(s, "PPTP: passing") }); err != nil {
		r.shot(ctx, "error-state")
		t.Fatalf("state %q: %v", s, err)
	}
	r.shot(ctx, "1-page")
	_ = lab.Contains
}
