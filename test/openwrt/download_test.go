package openwrt

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

func buildScript(t *testing.T) string {
	repo, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(repo, "test/openwrt/build.sh")
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func script(t *testing.T, env []string, args ...string) (string, error) {
	cmd := exec.Command(buildScript(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The download path, against a local git remote: a source missing locally is fetched at the
// pinned commit, checked against the tree hash in the lock, and cached; a remote whose tree
// differs from the pinned hash is refused, naming the source and both hashes.
func TestDownloadFromLocalRemote(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		missing(t, "git is needed for the download path")
	}
	tmp := t.TempDir()
	remote := filepath.Join(tmp, "remote")
	os.MkdirAll(filepath.Join(remote, "sub"), 0o755)
	os.WriteFile(filepath.Join(remote, "CMakeLists.txt"), []byte("project(x C)\n"), 0o644)
	os.WriteFile(filepath.Join(remote, "sub", "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.Symlink("sub/run.sh", filepath.Join(remote, "link"))
	git(t, remote, "init", "-q")
	git(t, remote, "add", "-A")
	git(t, remote, "commit", "-qm", "one")
	commit := git(t, remote, "rev-parse", "HEAD")
	hash, err := script(t, nil, "--treehash", remote)
	if err != nil {
		t.Fatal(hash)
	}
	hash = strings.TrimSpace(hash)

	lock := filepath.Join(tmp, "sources.lock")
	os.WriteFile(lock, []byte("# test\ndemo file://"+remote+" "+commit+" "+hash+"\n"), 0o644)
	cache := filepath.Join(tmp, "cache")
	bf := newBaseFilesMirror(t, tmp) // base-files too come from a local stand-in
	env := []string{"OPENWRT_USERLAND_LOCK=" + lock, "OPENWRT_USERLAND_CACHE=" + cache, "OPENWRT_USERLAND_NO_LOCAL=1",
		"OPENWRT_BASEFILES_LOCK=" + bf.lock, "OPENWRT_BASEFILES_URL=file://" + bf.dir}
	out, err := script(t, env, "--fetch-only")
	if err != nil {
		t.Fatalf("download: %v\n%s", err, out)
	}
	t.Logf("download:\n%s", out)
	tarball := filepath.Join(cache, "downloads", "demo-"+commit+".tar.gz")
	if !strings.Contains(out, "demo\tdownload\t"+tarball) {
		t.Fatalf("want demo downloaded to %s:\n%s", tarball, out)
	}
	list, _ := exec.Command("tar", "tzf", tarball).Output()
	if !strings.Contains(string(list), "demo/sub/run.sh") || strings.Contains(string(list), ".git/") {
		t.Fatalf("tarball content:\n%s", list)
	}

	// A second commit whose tree differs from the pin, with the lock pointing at it.
	os.WriteFile(filepath.Join(remote, "CMakeLists.txt"), []byte("project(y C)\n"), 0o644)
	git(t, remote, "commit", "-qam", "two")
	bad := git(t, remote, "rev-parse", "HEAD")
	os.WriteFile(lock, []byte("demo "+remote+" "+bad+" "+hash+"\n"), 0o644)
	out, err = script(t, env, "--fetch-only")
	if err == nil || !strings.Contains(out, "demo: tree hash mismatch") || !strings.Contains(out, hash) {
		t.Fatalf("a tree that differs from the pin was accepted (err %v):\n%s", err, out)
	}
	t.Logf("tampered remote refused: %s", strings.TrimSpace(out))
	if _, err := os.Stat(filepath.Join(cache, "downloads", "demo-"+bad+".tar.gz")); err == nil {
		t.Fatal("the refused download was cached")
	}

	// A commit the remote does not have.
	os.WriteFile(lock, []byte("demo "+remote+" "+strings.Repeat("ab", 20)+" "+hash+"\n"), 0o644)
	if out, err = script(t, env, "--fetch-only"); err == nil || !strings.Contains(out, "demo") {
		t.Fatalf("an unknown commit was accepted:\n%s", out)
	}
}

// The tree hashes pinned in sources.lock are the same whether a source arrives as the shared
// tarball or as a git checkout: a git remote made from a shared tarball downloads and verifies
// against the real pin.
func TestPinnedHashSurvivesGit(t *testing.T) {
	// The ubus source as the builder finds it (override, ../shared, or its own download).
	out, err := script(t, nil, "--fetch-only")
	if err != nil {
		missing(t, "the pinned sources are not obtainable: "+lastLines(out, 5))
	}
	tarball := ""
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, "\t"); len(f) == 3 && f[0] == "ubus" {
			tarball = f[2]
		}
	}
	if !strings.HasSuffix(tarball, ".tar.gz") {
		t.Skipf("the ubus source is a folder (%q), not a tarball: nothing to round-trip", tarball)
	}
	lockText, err := os.ReadFile(filepath.Join(filepath.Dir(buildScript(t)), "sources.lock"))
	if err != nil {
		t.Fatal(err)
	}
	var pin []string
	for _, l := range strings.Split(string(lockText), "\n") {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == "ubus" {
			pin = f
		}
	}
	if pin == nil {
		t.Fatal("sources.lock has no ubus row")
	}
	tmp := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", tarball, "-C", tmp).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	remote := filepath.Join(tmp, "ubus")
	git(t, remote, "init", "-q")
	git(t, remote, "add", "-f", "-A")
	git(t, remote, "commit", "-qm", "import")
	commit := git(t, remote, "rev-parse", "HEAD")
	lock := filepath.Join(tmp, "sources.lock")
	os.WriteFile(lock, []byte("ubus file://"+remote+" "+commit+" "+pin[3]+"\n"), 0o644)
	bf := newBaseFilesMirror(t, tmp)
	env := []string{"OPENWRT_USERLAND_LOCK=" + lock, "OPENWRT_USERLAND_CACHE=" + filepath.Join(tmp, "cache"), "OPENWRT_USERLAND_NO_LOCAL=1",
		"OPENWRT_BASEFILES_LOCK=" + bf.lock, "OPENWRT_BASEFILES_URL=file://" + bf.dir}
	if out, err := script(t, env, "--fetch-only"); err != nil || !strings.Contains(out, "ubus\tdownload") {
		t.Fatalf("git round trip of the shared ubus tarball does not match the pin %s: %v\n%s", pin[3], err, out)
	}
}
