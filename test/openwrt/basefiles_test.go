package openwrt

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// baseFilesMirror lays out a stand-in for the raw-file host under dir: every file of a lock at
// <commit>/<upstream path>, as the download asks for it. The content is the test's own (the
// upstream files are not in the repository); the lock it writes pins their sha256 values.
type baseFilesMirror struct {
	dir, lock string
	files     map[string]string // dest -> mirror path
}

func newBaseFilesMirror(t *testing.T, dir string) *baseFilesMirror {
	t.Helper()
	m := &baseFilesMirror{dir: filepath.Join(dir, "mirror"), lock: filepath.Join(dir, "base-files.lock"), files: map[string]string{}}
	rows := []struct{ dest, path, commit string }{
		{"etc/rc.common", "package/base-files/files/etc/rc.common", strings.Repeat("1a", 20)},
		{"lib/functions.sh", "package/base-files/files/lib/functions.sh", strings.Repeat("2b", 20)},
		{"lib/functions/procd.sh", "package/system/procd/files/procd.sh", strings.Repeat("3c", 20)},
	}
	lock := "# test lock\nbase-url https://example.invalid/never-used\n"
	for _, r := range rows {
		body := "# stand-in for " + r.path + " @" + r.commit + "\n"
		if r.dest == "lib/functions/procd.sh" {
			body += "uci_load_validate() { :; }\n" // the bed's edit looks for it
		}
		p := filepath.Join(m.dir, r.commit, r.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(body))
		lock += r.dest + " " + r.path + " " + r.commit + " " + hex.EncodeToString(sum[:]) + "\n"
		m.files[r.dest] = p
	}
	if err := os.WriteFile(m.lock, []byte(lock), 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

// env points build.sh at the mirror, with the sources resolved from a local folder holding one
// placeholder source (the lock's only row) and no base-files/, so that base-files are downloaded.
func (m *baseFilesMirror) env(t *testing.T, url, cache string) []string {
	t.Helper()
	src := filepath.Join(filepath.Dir(m.lock), "src")
	os.MkdirAll(filepath.Join(src, "demo"), 0o755)
	os.WriteFile(filepath.Join(src, "demo", "x"), []byte("x\n"), 0o644)
	lock := filepath.Join(filepath.Dir(m.lock), "sources.lock")
	os.WriteFile(lock, []byte("demo file:///nonexistent "+strings.Repeat("0", 40)+" "+strings.Repeat("0", 64)+"\n"), 0o644)
	return []string{"OPENWRT_USERLAND_SRC=" + src, "OPENWRT_USERLAND_LOCK=" + lock, "OPENWRT_BASEFILES_LOCK=" + m.lock,
		"OPENWRT_BASEFILES_URL=" + url, "OPENWRT_USERLAND_CACHE=" + cache, "NO_PROXY=127.0.0.1", "no_proxy=127.0.0.1"}
}

func baseFilesLine(t *testing.T, out string) (via, dir string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, "\t"); len(f) == 3 && f[0] == "base-files" {
			return f[1], f[2]
		}
	}
	t.Fatalf("no base-files line in:\n%s", out)
	return "", ""
}

// OpenWrt's base-files shell libraries have the same source chain as the rest: a base-files/
// folder in the local sources wins; without one, the files pinned in base-files.lock are
// downloaded from <base-url>/<commit>/<path> (a file:// folder and a local http server stand in
// for the raw-file host here), each checked against its sha256; a tampered file is refused,
// naming the file and both hashes, and nothing of it is cached; a tampered cache is fetched again.
func TestBaseFilesDownload(t *testing.T) {
	tmp := t.TempDir()
	m := newBaseFilesMirror(t, tmp)

	// file:// stand-in.
	cache := filepath.Join(tmp, "cache-file")
	env := m.env(t, "file://"+m.dir, cache)
	out, err := script(t, env, "--fetch-only")
	if err != nil {
		t.Fatalf("download over file://: %v\n%s", err, out)
	}
	via, dir := baseFilesLine(t, out)
	if via != "download" || !strings.HasPrefix(dir, filepath.Join(cache, "downloads", "base-files-")) {
		t.Fatalf("base-files: want a download into %s, got %q %q\n%s", cache, via, dir, out)
	}
	for dest, src := range m.files {
		want, _ := os.ReadFile(src)
		if got, err := os.ReadFile(filepath.Join(dir, dest)); err != nil || string(got) != string(want) {
			t.Fatalf("%s: got %q (%v), want %q", dest, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "etc/rc.common")); err != nil || fi.Mode()&0o100 == 0 {
		t.Fatalf("rc.common is not executable as OpenWrt installs it: %v %v", fi.Mode(), err)
	}
	t.Logf("file:// download verified: %s", dir)

	// Cached: no second download.
	out, err = script(t, env, "--fetch-only")
	if err != nil || strings.Contains(out, "downloading base-files") {
		t.Fatalf("second run should use the verified cache (err %v):\n%s", err, out)
	}

	// A cached file changed behind our back is fetched again, not used.
	os.WriteFile(filepath.Join(dir, "lib/functions.sh"), []byte("tampered\n"), 0o644)
	out, err = script(t, env, "--fetch-only")
	if err != nil || !strings.Contains(out, "downloading base-files lib/functions.sh") {
		t.Fatalf("a tampered cache was not fetched again (err %v):\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "lib/functions.sh")); strings.Contains(string(got), "tampered") {
		t.Fatal("the tampered cached file is still there")
	}

	// Local http stand-in, through $OPENWRT_BASEFILES_URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(m.dir))}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String()
	cache = filepath.Join(tmp, "cache-http")
	env = m.env(t, url, cache)
	if out, err = script(t, env, "--fetch-only"); err != nil {
		t.Fatalf("download over http: %v\n%s", err, out)
	}
	if via, dir = baseFilesLine(t, out); via != "download" {
		t.Fatalf("http: %q %q", via, dir)
	}
	t.Logf("http download verified: %s", dir)

	// Tampered on the server: refused, naming the file and both hashes; nothing cached.
	lockText, _ := os.ReadFile(m.lock)
	pinned := regexp.MustCompile(`(?m)^etc/rc\.common \S+ \S+ ([0-9a-f]{64})$`).FindStringSubmatch(string(lockText))
	if pinned == nil {
		t.Fatalf("no rc.common row in %s", lockText)
	}
	orig, _ := os.ReadFile(m.files["etc/rc.common"])
	bad := []byte("#!/bin/sh\necho tampered\n")
	os.WriteFile(m.files["etc/rc.common"], bad, 0o644)
	sum := sha256.Sum256(bad)
	got := hex.EncodeToString(sum[:])
	cache = filepath.Join(tmp, "cache-tampered")
	out, err = script(t, m.env(t, url, cache), "--fetch-only")
	if err == nil || !strings.Contains(out, "sha256 mismatch for etc/rc.common") || !strings.Contains(out, got) || !strings.Contains(out, pinned[1]) {
		t.Fatalf("a tampered rc.common was accepted or not named with both hashes (got %s, pin %s; err %v):\n%s", got, pinned[1], err, out)
	}
	t.Logf("tampered file refused: %s", lastLines(out, 1))
	if ms, _ := filepath.Glob(filepath.Join(cache, "downloads", "base-files-*")); len(ms) > 0 {
		t.Fatalf("the refused download was cached: %v", ms)
	}

	// A file the server does not have: the error names it and its URL.
	os.WriteFile(m.files["etc/rc.common"], orig, 0o644)
	os.Remove(m.files["lib/functions.sh"])
	out, err = script(t, m.env(t, url, filepath.Join(tmp, "cache-404")), "--fetch-only")
	if err == nil || !strings.Contains(out, "download of") || !strings.Contains(out, "lib/functions.sh") {
		t.Fatalf("a missing file was not named (err %v):\n%s", err, out)
	}

	// A base-files/ folder in the local sources wins over the download.
	local := filepath.Join(filepath.Dir(m.lock), "src", "base-files")
	os.MkdirAll(filepath.Join(local, "etc"), 0o755)
	os.WriteFile(filepath.Join(local, "etc", "rc.common"), []byte("# local\n"), 0o644)
	out, err = script(t, m.env(t, "file:///nonexistent", filepath.Join(tmp, "cache-local")), "--fetch-only")
	if err != nil {
		t.Fatalf("local base-files: %v\n%s", err, out)
	}
	if via, dir = baseFilesLine(t, out); via != "local" || dir != local {
		t.Fatalf("local base-files/ not preferred: %q %q", via, dir)
	}
}

// The real lock pins every file the bed's init scripts source, each to a full commit of
// openwrt/openwrt and a sha256, from the raw-file host.
func TestBaseFilesLockPins(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(filepath.Dir(buildScript(t)), "base-files.lock"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`^(\S+) (package/\S+) ([0-9a-f]{40}) ([0-9a-f]{64})$`)
	dests := map[string]bool{}
	base := ""
	for _, l := range strings.Split(string(text), "\n") {
		l = strings.Join(strings.Fields(l), " ")
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "base-url "):
			base = strings.TrimPrefix(l, "base-url ")
		case row.MatchString(l):
			dests[row.FindStringSubmatch(l)[1]] = true
		default:
			t.Errorf("malformed row: %q", l)
		}
	}
	if base != "https://raw.githubusercontent.com/openwrt/openwrt" {
		t.Errorf("base-url %q", base)
	}
	for _, d := range []string{"etc/rc.common", "lib/functions.sh", "lib/functions/service.sh", "lib/functions/procd.sh", "lib/config/uci.sh"} {
		if !dests[d] {
			t.Errorf("base-files.lock pins no %s", d)
		}
	}
}
