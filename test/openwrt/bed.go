// Package openwrt runs OpenWrt's real userland (built from the pinned sources by build.sh) inside a
// private mount + network namespace: overlays on /etc and /usr with the host as the lower layer and
// tmpfs on /run and /tmp, so the real absolute paths (/etc/config, /sbin/fw4, /lib/functions.sh,
// /var/run/ubus/ubus.sock) exist only inside and no host file changes.
//
// Other tests use it as:
//
//	b := openwrt.Start(t, openwrt.Options{})   // skips without root, fails under CI=true
//	b.StartUbusd(t); b.StartRpcd(t)
//	out := b.MustRun(t, "ubus", "list")
package openwrt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// UbusSock is where ubusd listens inside the bed (OpenWrt's default).
const UbusSock = "/var/run/ubus/ubus.sock"

// CommandTimeout bounds every command Run starts.
const CommandTimeout = 60 * time.Second

var (
	buildOnce sync.Once
	buildRoot string
	buildErr  error
	buildTook time.Duration
)

// Userland returns the install root of the built userland, building it on first use
// (test/openwrt/build.sh; cached while sources and recipe are unchanged).
func Userland() (string, error) {
	buildOnce.Do(func() {
		t0 := time.Now()
		repo, err := lab.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		var stderr bytes.Buffer
		cmd := exec.Command("nice", "-n", "10", filepath.Join(repo, "test/openwrt/build.sh"))
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		buildTook = time.Since(t0)
		if err != nil {
			buildErr = fmt.Errorf("test/openwrt/build.sh: %v\n%s", err, lastLines(stderr.String(), 30))
			return
		}
		buildRoot = strings.TrimSpace(string(out))
		if fi, err := os.Stat(filepath.Join(buildRoot, "usr/sbin/ubusd")); err != nil || fi.IsDir() {
			buildErr = fmt.Errorf("test/openwrt/build.sh printed %q, which holds no usr/sbin/ubusd", buildRoot)
		}
	})
	return buildRoot, buildErr
}

// BuildTime is how long Userland took in this process (near zero on a cache hit).
func BuildTime() time.Duration { return buildTook }

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Unavailable says why the bed cannot run, or "". Under CI=true the caller fails instead of skipping.
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "the OpenWrt test bed needs root (mount and network namespaces)"
	}
	for _, tool := range []string{"unshare", "nsenter", "ip", "nft", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("the OpenWrt test bed needs %s (apt-get install util-linux iproute2 nftables busybox-static)", tool)
		}
	}
	return ""
}

// Require skips (or, under CI=true, fails) t when the bed cannot run here, naming what is missing,
// and returns the userland root.
func Require(t testing.TB) string {
	t.Helper()
	if why := Unavailable(); why != "" {
		missing(t, why)
	}
	root, err := Userland()
	if err != nil {
		missing(t, "the OpenWrt userland did not build: "+err.Error())
	}
	return root
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skip(why)
}

// Options configure a bed.
type Options struct {
	// NetNS, if set, is a named network namespace (ip netns) the bed joins instead of a new one:
	// the lab's router, so that fw4 and the daemon act on the lab's traffic.
	NetNS string
	// Logf receives progress lines (default t.Logf).
	Logf func(string, ...any)
}

// Bed is one running namespace. Files inside are reached through /proc/<holder>/root.
type Bed struct {
	Root string // the userland install root (read-only lower layer)
	Dir  string // scratch on the host: overlay upper layers, logs
	opts Options

	holder *lab.Proc
	mu     sync.Mutex
	procs  []*lab.Proc
}

// Start builds (or reuses) the userland and starts a bed for t, closed by t.Cleanup.
func Start(t testing.TB, opts Options) *Bed {
	t.Helper()
	root := Require(t)
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	b, err := New(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// New starts a bed on the userland at root.
func New(root string, opts Options) (*Bed, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	dir, err := os.MkdirTemp("/var/tmp", "vpt-openwrt-")
	if err != nil {
		return nil, err
	}
	b := &Bed{Root: root, Dir: dir, opts: opts}
	argv := []string{"unshare", "--mount", "--propagation", "private"}
	if opts.NetNS == "" {
		argv = append(argv, "--net")
	} else {
		argv = append([]string{"ip", "netns", "exec", opts.NetNS}, argv...)
	}
	repo, err := lab.RepoRoot()
	if err != nil {
		return nil, err
	}
	argv = append(argv, "--", "/bin/dash", filepath.Join(repo, "test/openwrt/bed-setup.sh"), root, dir)
	h, err := lab.StartProcess("bed", argv...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b.holder = h
	if _, err := h.WaitStdout(0, 30*time.Second, func(s string) bool { return s == "ready" }); err != nil {
		b.Close()
		return nil, fmt.Errorf("openwrt bed: namespace setup failed: %v: %s", err, strings.Join(h.Stderr(), "\n"))
	}
	opts.Logf("openwrt bed: holder pid %d, scratch %s, userland %s", h.Pid(), dir, root)
	return b, nil
}

// Pid is the holder process: nsenter -t Pid -m -n -r -w enters the bed.
func (b *Bed) Pid() int { return b.holder.Pid() }

// Path maps a path inside the bed to one the host can open (through the holder's /proc root).
func (b *Bed) Path(p string) string {
	return filepath.Join("/proc", strconv.Itoa(b.Pid()), "root", p)
}

// ReadFile reads a file inside the bed.
func (b *Bed) ReadFile(p string) (string, error) {
	data, err := os.ReadFile(b.Path(p))
	return string(data), err
}

// WriteFile writes a file inside the bed, creating its folder.
func (b *Bed) WriteFile(p, data string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(b.Path(p)), 0o755); err != nil {
		return err
	}
	return os.WriteFile(b.Path(p), []byte(data), mode)
}

// Argv is argv prefixed so that it runs inside the bed.
func (b *Bed) Argv(argv ...string) []string {
	return append([]string{"nsenter", "-t", strconv.Itoa(b.Pid()), "-m", "-n", "-r", "-w", "--"}, argv...)
}

// Run runs argv inside the bed with stdin (may be empty) and returns stdout, and stderr
// folded into the error.
func (b *Bed) Run(stdin string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	a := b.Argv(argv...)
	cmd := exec.CommandContext(ctx, a[0], a[1:]...)
	cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, lastLines(strings.TrimSpace(stdout.String()+"\n"+stderr.String()), 40))
	}
	return stdout.String(), err
}

// Sh runs a busybox ash script inside the bed.
func (b *Bed) Sh(script string) (string, error) { return b.Run("", "/bin/sh", "-c", script) }

// MustRun is Run that fails t.
func (b *Bed) MustRun(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := b.Run("", argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MustSh is Sh that fails t.
func (b *Bed) MustSh(t testing.TB, script string) string {
	t.Helper()
	out, err := b.Sh(script)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Spawn starts a long-running process inside the bed; Close stops it at the latest.
func (b *Bed) Spawn(name string, argv ...string) (*lab.Proc, error) {
	p, err := lab.StartProcess(name, b.Argv(argv...)...)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	return p, nil
}

// WaitFor polls cond every 50 ms until it returns nil or timeout passes, and returns its last error.
func WaitFor(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartUbusd starts the real ubusd and waits until `ubus list` answers.
func (b *Bed) StartUbusd(t testing.TB) *lab.Proc {
	t.Helper()
	return b.SpawnReady(t, "ubusd", func() error {
		_, err := b.Run("", "ubus", "-s", UbusSock, "list")
		return err
	}, "/usr/sbin/ubusd", "-s", UbusSock)
}

// SpawnReady spawns argv in the bed as name (Spawn) and waits up to 20 s until ready returns
// nil; it fails t, with the process's stderr, if the process exits first or ready never holds.
func (b *Bed) SpawnReady(t testing.TB, name string, ready func() error, argv ...string) *lab.Proc {
	t.Helper()
	p, err := b.Spawn(name, argv...)
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(20*time.Second, func() error {
		if ok, err := p.Exited(); ok {
			return fmt.Errorf("%s exited: %v: %s", name, err, strings.Join(p.Stderr(), "\n"))
		}
		return ready()
	}); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// RpcdConfig is a minimal /etc/config/rpcd: root logs in with password "test" (md5-crypt,
// `openssl passwd -1 -salt vpnpt test`), holding every ACL group.
const RpcdConfig = `config rpcd
	option socket /var/run/ubus/ubus.sock
	option timeout 30

config login
	option username 'root'
	option password '$1$vpnpt$yuCAMnyb1pbF6aMULAeC91'
	list read '*'
	list write '*'
`

// StartRpcd starts the real rpcd on the bed's ubusd and waits for its session object.
func (b *Bed) StartRpcd(t testing.TB) *lab.Proc {
	t.Helper()
	if _, err := os.Stat(b.Path("/etc/config/rpcd")); err != nil {
		if err := b.WriteFile("/etc/config/rpcd", RpcdConfig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return b.SpawnReady(t, "rpcd", func() error {
		out, err := b.Run("", "ubus", "-s", UbusSock, "list", "session")
		if err == nil && !strings.Contains(out, "session") {
			err = errors.New("no session object yet")
		}
		return err
	}, "/usr/sbin/rpcd", "-s", UbusSock)
}

// Close stops every process of the bed (the namespace goes with the last one) and removes the
// scratch folder.
func (b *Bed) Close() {
	b.mu.Lock()
	procs := b.procs
	b.procs = nil
	b.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		_ = procs[i].Stop(5 * time.Second)
	}
	if b.holder != nil {
		// Anything else still inside (a daemon an init script started) dies with the holder's
		// namespace only if killed: find processes sharing the bed's mount namespace.
		b.killInside()
		b.holder.Kill()
	}
	// The overlays' upper layers may hold busy files for a moment after the last process.
	for i := 0; i < 20; i++ {
		if err := os.RemoveAll(b.Dir); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killInside kills every process in the bed's mount namespace except the holder.
func (b *Bed) killInside() {
	self, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(b.Pid()), "ns/mnt"))
	if err != nil {
		return
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == b.Pid() {
			continue
		}
		if ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/mnt")); err == nil && ns == self {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// repoPath is a path inside the repository.
func repoPath(t testing.TB, rel string) string {
	t.Helper()
	repo, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(repo, rel)
}

// StartNetifd starts the netifd stand-in (netifd.uc, on the real ubusd) serving dump, a file in
// `network.interface dump` format; board also serves `system board`/`system info`.
func (b *Bed) StartNetifd(t testing.TB, dump string, board bool) *lab.Proc {
	t.Helper()
	// A copy inside the bed: the repository may sit where the bed has its own tmpfs (/tmp).
	script, err := os.ReadFile(repoPath(t, "test/openwrt/netifd.uc"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFile("/tmp/vpt-netifd.uc", string(script), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := []string{"/usr/bin/ucode", "/tmp/vpt-netifd.uc", dump}
	if board {
		argv = append(argv, "board")
	}
	return b.SpawnReady(t, "netifd stand-in", func() error {
		_, err := b.Run("", "ubus", "list", "network.interface")
		return err
	}, argv...)
}

// FW4MockDump is firewall4's own mocked `network.interface dump` inside the bed.
const FW4MockDump = "/usr/share/openwrt-src/firewall4-tests/mocks/ubus/network.interface~dump.json"

// builds are the daemon binaries built for this test run, by build tags.
var builds = struct {
	sync.Mutex
	m map[string]*build
}{m: map[string]*build{}}

type build struct {
	once sync.Once
	dir  string // removed by RemoveBinaries ("" for $VPNPT_BIN)
	path string
	err  error
}

// Binary is $VPNPT_BIN, else bin/vpn-passthrough built once from this tree for the test run.
func Binary(t testing.TB) string { return BinaryWithTags(t, "") }

// BinaryWithTags is the daemon built once for the test run with Go build tags (comma-separated,
// e.g. "dbus"); "" is Binary, which $VPNPT_BIN overrides.
func BinaryWithTags(t testing.TB, tags string) string {
	t.Helper()
	builds.Lock()
	b := builds.m[tags]
	if b == nil {
		b = &build{}
		builds.m[tags] = b
	}
	builds.Unlock()
	b.once.Do(func() {
		if p := os.Getenv("VPNPT_BIN"); p != "" && tags == "" {
			b.path = p
			return
		}
		if b.dir, b.err = os.MkdirTemp("", "vpt-openwrt-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "vpn-passthrough")
		cmd := exec.Command("go", "build", "-trimpath", "-tags", tags, "-o", b.path, "./src/cmd/vpn-passthrough")
		cmd.Dir = repoPath(t, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build -tags %q: %v: %s", tags, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// RemoveBinaries removes the binaries BinaryWithTags built (a TestMain calls it at the end).
func RemoveBinaries() {
	builds.Lock()
	defer builds.Unlock()
	for _, b := range builds.m {
		if b.dir != "" {
			os.RemoveAll(b.dir)
		}
	}
}

// InstallFiles copies the package's files/ tree, the LuCI app's root and htdocs and the binary
// into the bed, as the two packages would place them (without running any maintainer script).
func (b *Bed) InstallFiles(t testing.TB) {
	t.Helper()
	for src, dst := range map[string]string{"files": "/", "luci-app/root": "/", "luci-app/htdocs": "/www"} {
		b.copyTree(t, repoPath(t, src), dst)
	}
	data, err := os.ReadFile(Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFile("/usr/bin/vpn-passthrough", string(data), 0o755); err != nil {
		t.Fatal(err)
	}
}

// StartProcd starts the real procd as a service manager (not PID 1) on the bed's ubusd and waits
// for its `service` object.
func (b *Bed) StartProcd(t testing.TB) *lab.Proc {
	t.Helper()
	// OpenWrt's shell libraries: build.sh takes base-files/ from the local sources or downloads
	// the files pinned in base-files.lock, and fails if it can do neither; this guards an old root.
	if _, err := os.Stat(filepath.Join(b.Root, "etc/rc.common")); err != nil {
		missing(t, "OpenWrt's base-files (etc/rc.common, lib/functions.sh, lib/functions/procd.sh) are not in the userland "+
			b.Root+": rebuild it with test/openwrt/build.sh")
	}
	return b.SpawnReady(t, "procd", func() error {
		_, err := b.Run("", "ubus", "list", "service")
		return err
	}, "/usr/sbin/procd", "-s", UbusSock)
}

// UninstallFiles removes what InstallFiles placed (the package tests start from a clean root).
func (b *Bed) UninstallFiles(t testing.TB) {
	t.Helper()
	var rm []string
	for src, dst := range map[string]string{"files": "/", "luci-app/root": "/", "luci-app/htdocs": "/www"} {
		root := repoPath(t, src)
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				rel, _ := filepath.Rel(root, p)
				rm = append(rm, filepath.Join(dst, rel))
			}
			return nil
		})
	}
	rm = append(rm, "/usr/bin/vpn-passthrough")
	if _, err := b.Run("", append([]string{"rm", "-f"}, rm...)...); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the host folder src to dst inside the bed.
func (b *Bed) copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return b.WriteFile(filepath.Join(dst, rel), string(data), fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// HTTPPort is where StartUhttpd listens, on the bed's loopback.
const HTTPPort = 8080

// StartUhttpd starts the real uhttpd on 127.0.0.1:HTTPPort inside the bed, serving /www, ubus
// JSON-RPC on /ubus and LuCI's ucode dispatcher on /cgi-bin/luci, as OpenWrt's uhttpd config does.
func (b *Bed) StartUhttpd(t testing.TB) *lab.Proc {
	t.Helper()
	return b.SpawnReady(t, "uhttpd", func() error {
		_, err := b.Run("", "curl", "-sf", "-o", "/dev/null", fmt.Sprintf("http://127.0.0.1:%d/", HTTPPort))
		return err
	}, "/usr/sbin/uhttpd", "-f", "-p", fmt.Sprintf("127.0.0.1:%d", HTTPPort), "-h", "/www",
		"-r", "vpt-bed", "-x", "/cgi-bin", "-u", "/ubus", "-U", UbusSock, "-o", "/cgi-bin/luci",
		"-O", "/usr/share/ucode/luci/uhttpd.uc", "-t", "60", "-T", "30", "-k", "20", "-A", "1", "-n", "3", "-N", "100", "-R")
}

// Login opens an rpcd session (ubus session login) and returns its id.
func (b *Bed) Login(t testing.TB, user, password string) string {
	t.Helper()
	out := b.MustRun(t, "ubus", "call", "session", "login", fmt.Sprintf(`{"username":%q,"password":%q}`, user, password))
	var s struct {
		Session string `json:"ubus_rpc_session"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Session == "" {
		t.Fatalf("session login %s: %v %q", user, err, out)
	}
	return s.Session
}

// UbusResult is one JSON-RPC answer from uhttpd's /ubus.
type UbusResult struct {
	raw string
	v   struct {
		Result []json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
}

// denied: uhttpd refused the call for the session's ACL (JSON-RPC -32002, "Access denied").
func (r UbusResult) denied() bool { return r.v.Error != nil && r.v.Error.Code == -32002 }

func (r UbusResult) short() string {
	if len(r.raw) > 120 {
		return r.raw[:120] + "..."
	}
	return r.raw
}

// UbusHTTP calls object.method with args (JSON) through uhttpd's /ubus with session sid.
func (b *Bed) UbusHTTP(t testing.TB, sid, object, method, args string) UbusResult {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"call","params":[%q,%q,%q,%s]}`, sid, object, method, args)
	out, err := b.Run(body, "curl", "-s", "-H", "Content-Type: application/json", "--data-binary", "@-",
		fmt.Sprintf("http://127.0.0.1:%d/ubus", HTTPPort))
	if err != nil {
		t.Fatal(err)
	}
	r := UbusResult{raw: strings.TrimSpace(out)}
	if err := json.Unmarshal([]byte(out), &r.v); err != nil {
		t.Fatalf("uhttpd /ubus %s.%s: %v: %q", object, method, err, out)
	}
	return r
}

// StartLuCI runs LuCI's uci-defaults (as a first boot does) and starts uhttpd, then checks that
// the real LuCI dispatcher answers /cgi-bin/luci with its login form. The bootstrap theme's
// header calls `system board`: start procd or the netifd stand-in with board first.
func (b *Bed) StartLuCI(t testing.TB) *lab.Proc {
	t.Helper()
	b.MustSh(t, "for f in /etc/uci-defaults/*luci*; do [ -f \"$f\" ] && sh \"$f\"; done; true")
	p := b.StartUhttpd(t)
	out, err := b.Run("", "curl", "-s", fmt.Sprintf("http://127.0.0.1:%d/cgi-bin/luci", HTTPPort))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `name="luci_username"`) {
		msg := out
		if i := strings.Index(out, `<div class="exception">`); i >= 0 {
			msg = out[i:min(len(out), i+1500)]
		}
		t.Fatalf("LuCI does not show its login form:\n%s", lastLines(msg, 30))
	}
	return p
}
