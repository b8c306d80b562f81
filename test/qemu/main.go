// Command qemu boots the QEMU guests of test/qemu and judges them from their
// consoles (issue 10).
//
//	go run ./test/qemu [-list] GUEST...
//
// GUEST is one of:
//
//	realpeer        the x86_64 real-peer guest, every scenario (guest/realpeer.sh)
//	realpeer-quick  its fast subset (make test): PPTP, IKEv2, raw ESP, two clients, kernel + userspace
//	flowtable       PPTP and IKEv2 again with fw4's flowtable and flow offload (software)
//	mipsel armhf arm64 s390x
//	                an initramfs guest of that architecture: the namespace lab's own
//	                kernel-mode and userspace-mode tests (test/kernel, test/userspace),
//	                cross-compiled, against the cross-compiled daemon
//	ARCH-quick      the same with a smaller test selection (make test)
//
// Images come from test/qemu/build.sh (Debian packages only, cached under
// $QEMU_BUILD, default build/qemu). The guests print VPT-* lines (see
// guest/realpeer.sh); the host prints each boot's time, every scenario's
// figures and verdict, and exits 1 on any failure, missing result or timeout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// Scenarios of the real-peer guest (names: guest/realpeer.sh's run()).
var (
	quickScenarios = []string{
		"pptp-kernel", "pptp-userspace",
		"ikev2-kernel", "ikev2-userspace",
		"esp-kernel-seq", "esp-userspace-seq",
	}
	fullScenarios = []string{
		"pptp-kernel-kill", "pptp-userspace-kill", "pptp-off",
		"l2tp-kernel", "l2tp-userspace", "l2tp-off",
		"ikev2-kernel-kill", "ikev2-userspace-kill", "ikev2-off",
		"esp-kernel-seq", "esp-auto-seq", "esp-userspace-seq-kill", "esp-userspace-ikeboth", "esp-userspace-together",
		"esp3-userspace-seq", "esp3-userspace-together", "esp-off-seq",
	}
	// Each -ft scenario next to the same one without flow offloading, so the
	// engines' control-message counters can be compared in one boot.
	flowScenarios = []string{
		"fw4check",
		"pptp-kernel-ft", "pptp-auto-ft",
		"pptp-userspace", "pptp-userspace-ft",
		"ikev2-kernel-ft",
		"ikev2-userspace", "ikev2-userspace-ft",
		"esp-userspace-seq", "esp-userspace-seq-ft",
	}
)

// archs: how each Debian architecture boots under qemu-system (TCG).
type archSpec struct {
	goarch, goarm string
	qemu          string
	machine       []string
	console       string
}

var archs = map[string]archSpec{
	"amd64":  {goarch: "amd64", qemu: "qemu-system-x86_64", machine: []string{"-M", "pc", "-cpu", "max"}, console: "ttyS0"},
	"mipsel": {goarch: "mipsle", qemu: "qemu-system-mipsel", machine: []string{"-M", "malta", "-cpu", "24Kf"}, console: "ttyS0"},
	"armhf":  {goarch: "arm", goarm: "7", qemu: "qemu-system-arm", machine: []string{"-M", "virt", "-cpu", "cortex-a15"}, console: "ttyAMA0"},
	"arm64":  {goarch: "arm64", qemu: "qemu-system-aarch64", machine: []string{"-M", "virt", "-cpu", "cortex-a53"}, console: "ttyAMA0"},
	"s390x":  {goarch: "s390x", qemu: "qemu-system-s390x", machine: []string{"-M", "s390-ccw-virtio"}, console: "ttysclp0"},
}

func main() {
	list := flag.Bool("list", false, "list the scenarios of each guest and exit")
	parallel := flag.Bool("parallel", false, "boot the guests at the same time (lines prefixed with the guest)")
	flag.StringVar(&only, "only", "", "comma-separated scenarios of the real-peer guest to run instead of the guest's list")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./test/qemu GUEST... (realpeer realpeer-quick flowtable mipsel armhf arm64 s390x, ARCH-quick)")
		os.Exit(2)
	}
	if *list {
		for _, g := range flag.Args() {
			fmt.Println(g+":", strings.Join(scenariosOf(g), " "))
		}
		return
	}
	if os.Geteuid() != 0 {
		fatal("the QEMU guests need root (debootstrap, 9p passthrough of a root-owned tree)")
	}
	repo, err := lab.RepoRoot()
	if err != nil {
		fatal(err.Error())
	}
	// The guests run the lab on the ruleset real fw4 renders for it, on this
	// host (test/openwrt/fw4-render.sh: OpenWrt's userland built from the
	// pinned sources); they cannot run fw4 themselves. Where that userland
	// cannot be had (a fresh clone without ../shared and no way to download
	// its sources), the guests are skipped, saying so; under CI=true that
	// is a failure.
	if _, err := lab.RealFW4(repo, []string{"r-lan1"}, "r-wan", "-"); err != nil {
		if os.Getenv("CI") == "true" {
			fatal(fmt.Sprintf("CI=true and real fw4 cannot render the guests' ruleset: %v", err))
		}
		fmt.Printf("qemu: SKIPPED every guest: real fw4 cannot render their ruleset here: %v\n", err)
		return
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed bool
	)
	one := func(r *runner, g string) {
		ok, err := r.guest(g)
		if err != nil {
			r.printf("FAIL %s: %v\n", g, err)
			outMu.Lock()
			summary = append(summary, fmt.Sprintf("%-16s FAIL %v", g, err))
			outMu.Unlock()
		}
		if err != nil || !ok {
			mu.Lock()
			failed = true
			mu.Unlock()
		}
	}
	for _, g := range flag.Args() {
		if !*parallel {
			one(&runner{repo: repo}, g)
			continue
		}
		wg.Add(1)
		go func(g string) {
			defer wg.Done()
			one(&runner{repo: repo, prefix: "[" + g + "] "}, g)
		}(g)
	}
	wg.Wait()
	fmt.Println("\n== summary")
	for _, s := range summary {
		fmt.Println(s)
	}
	if failed {
		fmt.Println("qemu: FAIL")
		os.Exit(1)
	}
	fmt.Println("qemu: PASS")
}

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "qemu:", msg)
	os.Exit(1)
}

// runner runs guests one after the other; with -parallel, one runner per
// guest, each prefixing its lines.
type runner struct {
	repo   string
	build  string // $QEMU_BUILD
	prefix string
}

var (
	outMu   sync.Mutex
	summary []string
)

func (r *runner) printf(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	s := fmt.Sprintf(format, args...)
	if r.prefix != "" {
		s = strings.TrimSuffix(s, "\n")
		s = r.prefix + strings.ReplaceAll(s, "\n", "\n"+r.prefix) + "\n"
	}
	fmt.Print(s)
}

// only, if set, replaces a real-peer guest's scenario list (debugging).
var only string

func scenariosOf(g string) []string {
	if only != "" {
		return strings.Split(only, ",")
	}
	switch g {
	case "realpeer":
		return fullScenarios
	case "realpeer-quick":
		return quickScenarios
	case "flowtable":
		return flowScenarios
	}
	return nil
}

// guest runs one guest and reports whether every scenario passed.
func (r *runner) guest(g string) (bool, error) {
	r.printf("\n== guest %s\n", g)
	switch g {
	case "realpeer", "realpeer-quick", "flowtable":
		return r.realPeer(g, scenariosOf(g))
	}
	arch, quick := strings.CutSuffix(g, "-quick")
	if _, ok := archs[arch]; !ok {
		return false, fmt.Errorf("unknown guest %q", g)
	}
	return r.labGuest(arch, quick)
}

// images runs build.sh for arch and returns the build directory.
func (r *runner) images(arch string) (string, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(r.repo, "test", "qemu", "build.sh"), arch)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("test/qemu/build.sh %s: %w", arch, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	r.build = lines[len(lines)-1]
	r.printf("images %s: %.1f s (cache %s)\n", arch, time.Since(start).Seconds(), r.build)
	return r.build, nil
}

// gobuild cross-compiles a main package (or, with test, a test binary).
func (r *runner) gobuild(a archSpec, out, pkg string, test bool) error {
	args := []string{"build", "-trimpath", "-o", out}
	if test {
		args = []string{"test", "-c", "-trimpath", "-o", out}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = r.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+a.goarch, "GOMIPS=softfloat")
	if a.goarm != "" {
		cmd.Env = append(cmd.Env, "GOARM="+a.goarm)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s %s (GOARCH=%s): %w\n%s", args[0], pkg, a.goarch, err, b)
	}
	return nil
}

// fw4 renders, with real fw4 on this host (lab.RealFW4), fw4's default
// ruleset for a router with LAN devices lan and WAN device r-wan, with the
// package's includes, and maps its include paths to the guest's: the
// package's (files/usr/share/nftables.d) to guestInc, fw4's own
// /etc/nftables.d to guestEtc (an empty folder in the guest).
func (r *runner) fw4(lan []string, guestInc, guestEtc string) (string, error) {
	hostInc := filepath.Join(r.repo, "files", "usr", "share", "nftables.d")
	s, err := lab.RealFW4(r.repo, lan, "r-wan", hostInc)
	if err != nil {
		return "", err
	}
	abs, _ := filepath.Abs(hostInc)
	s = strings.ReplaceAll(s, `include "`+abs+"/", `include "`+guestInc+"/")
	s = reEtcInclude.ReplaceAllString(s, `include "`+guestEtc+"/")
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "include ") && !strings.HasPrefix(l, `include "`+guestInc+"/") && !strings.HasPrefix(l, `include "`+guestEtc+"/") {
			return "", fmt.Errorf("fw4: an include the guest cannot resolve: %s", l)
		}
	}
	if !strings.Contains(s, `include "`+guestInc+"/") {
		return "", errors.New("fw4: real fw4 rendered none of the package's includes")
	}
	return s, nil
}

// reEtcInclude: fw4's include of /etc/nftables.d, as fw4-render.sh maps it
// (into the userland's root on this host).
var reEtcInclude = regexp.MustCompile(`include "[^"]*/etc/nftables\.d/`)

// realPeerFW4 is the real-peer router's ruleset: fw4's for LAN r-lan1..3,
// without its `ct helper set "pptp"` rule (like the lab's kernel scenarios
// without fw4's helper: what makes PPTP work must be the daemon). With
// flowtable, fw4's flowtable (software: no `flags offload`) and its `flow
// offload @ft` rule are added where fw4's ruleset.uc renders them with
// flow_offloading 1: the flowtable first in table inet fw4, the rule first
// in chain forward, before the chain-pre includes. (fw4 renders them only
// over its networks' devices from netifd, which fw4-render.sh does not run.)
func (r *runner) realPeerFW4(flowtable bool) (string, error) {
	lan := []string{"r-lan1", "r-lan2", "r-lan3"}
	s, err := r.fw4(lan, "/vpt/nftables.d", "/vpt/etc-nftables.d")
	if err != nil {
		return "", err
	}
	helper := regexp.MustCompile(`(?m)^.*ct helper set "pptp".*\n`)
	if len(helper.FindAllString(s, -1)) != 1 {
		return "", errors.New("fw4: want exactly one `ct helper set \"pptp\"` rule in helper_lan")
	}
	s = helper.ReplaceAllString(s, "")
	if !flowtable {
		return s, nil
	}
	ft := "\tflowtable ft {\n\t\thook ingress priority 0;\n\t\tdevices = { \"r-lan1\", \"r-lan2\", \"r-lan3\", \"r-wan\" };\n\t\tcounter;\n\t}\n"
	lines := strings.Split(s, "\n")
	var out []string
	doneTable, doneRule := false, false
	for i, l := range lines {
		out = append(out, l)
		if !doneTable && strings.HasPrefix(l, "table inet fw4 {") {
			out = append(out, strings.Split(strings.TrimSuffix(ft, "\n"), "\n")...)
			doneTable = true
		}
		if !doneRule && strings.Contains(l, "type filter hook forward priority filter") && i > 0 &&
			strings.Contains(lines[i-1], "chain forward {") {
			out = append(out, "\t\tmeta l4proto { tcp, udp } flow offload @ft;")
			doneRule = true
		}
	}
	if !doneTable || !doneRule {
		return "", errors.New("fw4: could not place the flowtable and its rule")
	}
	return strings.Join(out, "\n"), nil
}

// realPeer boots the x86_64 real-peer guest with the given scenarios.
func (r *runner) realPeer(name string, scen []string) (bool, error) {
	b, err := r.images("amd64")
	if err != nil {
		return false, err
	}
	run, err := os.MkdirTemp(b, "run-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(run)
	a := archs["amd64"]
	start := time.Now()
	if err := r.gobuild(a, filepath.Join(run, "vpn-passthrough"), "./src/cmd/vpn-passthrough", false); err != nil {
		return false, err
	}
	// fw4dump lists fw4's forward chain as this kernel has it (with flow
	// offloading, which the host's kernel lacks) for src/nft's tests.
	if err := r.gobuild(a, filepath.Join(run, "fw4dump"), "./test/cmd/fw4dump", false); err != nil {
		return false, err
	}
	r.printf("cross-build amd64 daemon: %.1f s\n", time.Since(start).Seconds())
	if err := copyTree(filepath.Join(r.repo, "files", "usr", "share", "nftables.d"), filepath.Join(run, "nftables.d")); err != nil {
		return false, err
	}
	// The exemption behind fw4's `flow offload` (appended, not inserted),
	// for the fw4check scenario.
	post := filepath.Join("ruleset-post", "10-vpn-passthrough.nft")
	inc, err := os.ReadFile(filepath.Join(run, "nftables.d", post))
	if err != nil {
		return false, err
	}
	after := strings.ReplaceAll(string(inc), "insert rule inet fw4 forward ", "add rule inet fw4 forward ")
	if after == string(inc) {
		return false, errors.New("the ruleset-post include has no `insert rule inet fw4 forward`")
	}
	if err := os.MkdirAll(filepath.Join(run, "nftables.d-after", "ruleset-post"), 0o755); err != nil {
		return false, err
	}
	if err := os.WriteFile(filepath.Join(run, "nftables.d-after", post), []byte(after), 0o644); err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Join(run, "etc-nftables.d"), 0o755); err != nil {
		return false, err
	}
	// fw4-ft-noinc.nft: fw4 without the package's ruleset-post include (not
	// loaded: the bad case); fw4-ft-after.nft: with it behind `flow
	// offload`.
	incLine := `include "/vpt/nftables.d/ruleset-post/10-vpn-passthrough.nft"`
	for _, v := range []struct {
		file string
		ft   bool
		edit func(string) string
	}{
		{"fw4.nft", false, nil}, {"fw4-ft.nft", true, nil},
		{"fw4-ft-noinc.nft", true, func(s string) string { return strings.ReplaceAll(s, incLine, "") }},
		{"fw4-ft-after.nft", true, func(s string) string {
			return strings.ReplaceAll(s, incLine, `include "/vpt/nftables.d-after/ruleset-post/10-vpn-passthrough.nft"`)
		}},
	} {
		s, err := r.realPeerFW4(v.ft)
		if err != nil {
			return false, err
		}
		if v.edit != nil {
			if !strings.Contains(s, incLine) {
				return false, fmt.Errorf("fw4: no %s in the rendered ruleset", incLine)
			}
			s = v.edit(s)
		}
		if err := os.WriteFile(filepath.Join(run, v.file), []byte(s), 0o644); err != nil {
			return false, err
		}
	}
	for _, f := range []string{"guest-root.sh", "realpeer.sh"} {
		if err := copyFile(filepath.Join(r.repo, "test", "qemu", "guest", f), filepath.Join(run, f), 0o755); err != nil {
			return false, err
		}
	}
	if err := os.WriteFile(filepath.Join(run, "scenarios"), []byte(strings.Join(scen, "\n")+"\n"), 0o644); err != nil {
		return false, err
	}
	kernel, err := findKernel(filepath.Join(b, "kernel", "amd64"))
	if err != nil {
		return false, err
	}
	args := append([]string{}, a.machine...)
	args = append(args, "-accel", "tcg", "-smp", "2", "-m", "1536", "-nographic", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", filepath.Join(b, "init9p-amd64.cpio.gz"),
		"-append", "console=ttyS0 panic=-1 quiet loglevel=1 rdinit=/init",
		"-virtfs", "local,path="+filepath.Join(b, "root-amd64")+",mount_tag=root,security_model=passthrough,readonly=on",
		"-virtfs", "local,path="+run+",mount_tag=vpt,security_model=passthrough")
	// Budget: boot, plus up to 150 s a scenario under TCG on a loaded machine.
	timeout := 3*time.Minute + time.Duration(len(scen))*150*time.Second
	ok, err := r.boot(name, a.qemu, args, scen, timeout)
	// The guest copied every scenario's logs (daemon, pppd, charon, pluto,
	// xl2tpd) to /vpt/logs: keep them beside the console log.
	keep := filepath.Join(b, "logs", name+"-files")
	_ = os.RemoveAll(keep)
	if e := os.Rename(filepath.Join(run, "logs"), keep); e == nil {
		r.printf("logs of %s: %s\n", name, keep)
	}
	return ok, err
}

// labGuest boots an initramfs guest of arch that runs the namespace lab's
// kernel-mode and userspace-mode tests, cross-compiled, on its kernel.
func (r *runner) labGuest(arch string, quick bool) (bool, error) {
	b, err := r.images(arch)
	if err != nil {
		return false, err
	}
	a := archs[arch]
	stage, err := os.MkdirTemp(b, "run-"+arch+"-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(stage)
	v := filepath.Join(stage, "vpt")
	start := time.Now()
	builds := []struct {
		out, pkg string
		test     bool
	}{
		{"vpn-passthrough", "./src/cmd/vpn-passthrough", false},
		{"peer", "./test/cmd/peer", false},
		{"kernel.test", "./test/kernel", true},
		{"userspace.test", "./test/userspace", true},
	}
	for _, x := range builds {
		if err := r.gobuild(a, filepath.Join(v, x.out), x.pkg, x.test); err != nil {
			return false, err
		}
	}
	r.printf("cross-build %s (daemon, peer, lab tests): %.1f s\n", arch, time.Since(start).Seconds())
	// The lab finds the repository by go.mod and reads files/ and ../shared.
	if err := copyFile(filepath.Join(r.repo, "go.mod"), filepath.Join(v, "repo", "go.mod"), 0o644); err != nil {
		return false, err
	}
	if err := copyTree(filepath.Join(r.repo, "files"), filepath.Join(v, "repo", "files")); err != nil {
		return false, err
	}
	// The lab inside asks test/openwrt/fw4-render.sh for real fw4's
	// rendering; there, a stand-in prints what real fw4 rendered here for
	// the lab's two- and three-client routers.
	if err := copyFile(filepath.Join(r.repo, "test", "qemu", "guest", "fw4-render.sh"), filepath.Join(v, "repo", "test", "openwrt", "fw4-render.sh"), 0o755); err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Join(v, "etc-nftables.d"), 0o755); err != nil {
		return false, err
	}
	for _, lan := range [][]string{{"r-lan1", "r-lan2"}, {"r-lan1", "r-lan2", "r-lan3"}} {
		s, err := r.fw4(lan, "/vpt/repo/files/usr/share/nftables.d", "/vpt/etc-nftables.d")
		if err != nil {
			return false, err
		}
		if err := os.MkdirAll(filepath.Join(v, "fw4"), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(filepath.Join(v, "fw4", strings.Join(lan, ",")+"@r-wan.nft"), []byte(s), 0o644); err != nil {
			return false, err
		}
	}
	if err := copyFile(filepath.Join(r.repo, "test", "qemu", "guest", "labguest.sh"), filepath.Join(v, "guest.sh"), 0o755); err != nil {
		return false, err
	}
	tests := labTests(quick)
	// TestDefaultConfig's OpenWrt case reads OpenWrt's sample configs
	// (../shared/openwrt-samples); without them it is left out, saying so
	// (under CI=true, where ../shared is there, their absence fails).
	if !quick {
		samples := filepath.Join(lab.SharedDir(r.repo), "openwrt-samples")
		if err := copyTree(samples, filepath.Join(v, "shared", "openwrt-samples")); err != nil {
			if os.Getenv("CI") == "true" {
				return false, fmt.Errorf("CI=true and OpenWrt's sample configs are missing: %w (set VPNPT_SHARED)", err)
			}
			for i := range tests {
				if tests[i].run == "^TestDefaultConfig$" {
					tests[i].skip = "^TestDefaultConfig/openwrt"
				}
			}
		}
	}
	var lines []string
	for _, t := range tests {
		skip := t.skip
		if skip == "" {
			skip = "-"
		}
		lines = append(lines, t.name+" "+t.bin+" "+t.run+" "+skip)
	}
	if err := os.WriteFile(filepath.Join(v, "tests"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return false, err
	}
	runCpio := filepath.Join(stage, "run.cpio")
	if err := writeCpio(stage, []string{"vpt"}, runCpio); err != nil {
		return false, err
	}
	initrd := filepath.Join(stage, "initrd")
	if err := concat(initrd, filepath.Join(b, "base-"+arch+".cpio.gz"), runCpio); err != nil {
		return false, err
	}
	kernel, err := findKernel(filepath.Join(b, "kernel", arch))
	if err != nil {
		return false, err
	}
	args := append([]string{}, a.machine...)
	args = append(args, "-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console="+a.console+" panic=-1 quiet loglevel=1 rdinit=/init")
	if arch != "s390x" && arch != "mipsel" {
		args = append(args, "-smp", "2")
	}
	args = append(args, "-nic", "none")
	var names []string
	for _, t := range tests {
		names = append(names, t.name)
	}
	timeout := 3*time.Minute + time.Duration(len(tests))*6*time.Minute
	return r.boot(arch, a.qemu, args, names, timeout)
}

// labTest is one run of a lab test binary in a guest; skip, if set, is a
// -test.skip pattern (the guest prints it, it is never silent).
type labTest struct{ name, bin, run, skip string }

// labTests: which of the lab's tests an architecture guest runs.
func labTests(quick bool) []labTest {
	if quick {
		return []labTest{
			{"kernel-mode", "kernel.test", "^TestKernelMode$", ""},
			// The session-table step reads the status text while a 1 s call
			// is running: under TCG on a loaded host the call can end first
			// (seen once on armhf). It runs in the full guests (qemu-test).
			{"userspace-mode", "userspace.test", "^TestUserspaceMode$", "^TestUserspaceMode/session_table"},
		}
	}
	return []labTest{
		{"kernel-mode", "kernel.test", "^TestKernelMode$", ""},
		{"kernel-default-config", "kernel.test", "^TestDefaultConfig$", ""},
		{"userspace-mode", "userspace.test", "^TestUserspaceMode$", ""},
		{"userspace-split-control", "userspace.test", "^TestSplitAndCoalescedControl$", ""},
	}
}

func findKernel(dir string) (string, error) {
	for _, pat := range []string{"boot/vmlinuz-*", "boot/vmlinux-*"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		if len(m) > 0 {
			sort.Strings(m)
			return m[len(m)-1], nil
		}
	}
	return "", fmt.Errorf("no kernel under %s/boot", dir)
}

// result is one scenario's verdict and figures from the console.
type result struct {
	verdict  string // PASS, FAIL or "" (none seen)
	why      string
	info     []string
	counters map[string]string // the daemon's counters at the scenario's end
	offload  string            // and its status' offload state
}

// boot runs qemu with a host timeout, copies the console to a log file,
// and judges the VPT-* lines against the expected scenarios.
func (r *runner) boot(name, qemu string, args, expect []string, timeout time.Duration) (bool, error) {
	if _, err := exec.LookPath(qemu); err != nil {
		return false, fmt.Errorf("%s not found (apt-get install qemu-system-x86 qemu-system-mips qemu-system-arm qemu-system-misc)", qemu)
	}
	logDir := filepath.Join(r.build, "logs")
	_ = os.MkdirAll(logDir, 0o755)
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return false, err
	}
	defer logf.Close()
	cmd := exec.Command(qemu, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdin = nil
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return false, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	timer := time.AfterFunc(timeout, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer timer.Stop()

	results := map[string]*result{}
	cur := ""
	booted, ended := false, false
	var bootTime time.Duration
	var failures []string
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintf(logf, "%8.1f %s\n", time.Since(start).Seconds(), line)
		i := strings.Index(line, "VPT-")
		if i < 0 {
			continue
		}
		line = line[i:]
		f := strings.SplitN(line, " ", 3)
		switch f[0] {
		case "VPT-BOOTED":
			booted, bootTime = true, time.Since(start)
			r.printf("boot %s: %.1f s (%s)\n", name, bootTime.Seconds(), strings.TrimPrefix(line, "VPT-BOOTED "))
		case "VPT-SCENARIO":
			if len(f) > 1 {
				cur = f[1]
				results[cur] = &result{}
				r.printf("-- %s (%.0f s)\n", cur, time.Since(start).Seconds())
			}
		case "VPT-INFO":
			if len(f) > 2 {
				r.printf("   %s\n", f[2])
				if res := results[f[1]]; res != nil {
					res.info = append(res.info, f[2])
				}
			}
		case "VPT-RESULT":
			g := strings.SplitN(line, " ", 4)
			if len(g) >= 3 {
				res := results[g[1]]
				if res == nil {
					res = &result{}
					results[g[1]] = res
				}
				why := ""
				if len(g) == 4 {
					why = g[3]
				}
				// A scenario may report more than one verdict (e.g. the
				// tunnels, then SIGKILL + restart): any FAIL fails it.
				if res.verdict != "FAIL" {
					res.verdict = g[2]
				}
				res.why = strings.TrimSpace(res.why + "; " + why)
				r.printf("   => %s %s: %s\n", g[2], g[1], why)
			}
		case "VPT-STATUSJSON":
			// `status --json` at the scenario's end: keep its counters.
			if res := results[f[1]]; res != nil && len(f) > 2 {
				var st struct {
					Counters map[string]struct {
						Packets uint64 `json:"packets"`
					} `json:"counters"`
					Offload struct {
						State string `json:"state"`
					} `json:"offload"`
				}
				if json.Unmarshal([]byte(f[2]), &st) == nil {
					res.offload = st.Offload.State
					res.counters = map[string]string{}
					for k, v := range st.Counters {
						res.counters[k] = strconv.FormatUint(v.Packets, 10)
					}
				}
			}
		case "VPT-FAIL":
			failures = append(failures, line)
			r.printf("   %s\n", line)
		case "VPT-END":
			ended = true
		}
	}
	err = <-exited
	elapsed := time.Since(start)
	ok := true
	if !booted {
		failures = append(failures, "the guest never booted")
	}
	if !ended {
		failures = append(failures, fmt.Sprintf("no VPT-END: timeout after %.0f s or crash (qemu: %v); console in %s", elapsed.Seconds(), err, logPath))
	}
	passed := 0
	for _, s := range expect {
		res := results[s]
		switch {
		case res == nil || res.verdict == "":
			failures = append(failures, s+": no result")
		case res.verdict != "PASS":
			failures = append(failures, s+": "+res.verdict+" "+strings.TrimPrefix(res.why, "; "))
		case res.counters != nil && offloadWant(s) != "" && res.offload != offloadWant(s):
			failures = append(failures, fmt.Sprintf("%s: status offload %q, want %q", s, res.offload, offloadWant(s)))
		default:
			passed++
		}
	}
	if len(failures) > 0 {
		ok = false
	}
	cmp := r.compareOffload(expect, results)
	sum := fmt.Sprintf("%-16s boot %5.1f s, total %6.1f s, %d/%d scenarios passed", name, bootTime.Seconds(), elapsed.Seconds(), passed, len(expect))
	for _, f := range failures {
		sum += "\n    FAIL " + f
	}
	for _, c := range cmp {
		sum += "\n    " + c
	}
	// Pings lost per tunnel across a SIGKILL + restart of the daemon.
	for _, s := range expect {
		if res := results[s]; res != nil {
			for _, i := range res.info {
				if strings.HasPrefix(i, "SIGKILL+restart ") {
					sum += "\n    " + s + ": " + i
				}
			}
		}
	}
	outMu.Lock()
	summary = append(summary, sum)
	outMu.Unlock()
	return ok, nil
}

// offloadWant is the offload state a scenario's `status --json` must show:
// with fw4's flowtable and the package's include, "exempted"; without the
// include, "not_exempted"; without the flowtable, "off".
func offloadWant(s string) string {
	switch {
	case strings.Contains(s+"-", "-noinc-"):
		return "not_exempted"
	case strings.Contains(s+"-", "-ft-"):
		return "exempted"
	case strings.HasPrefix(s, "fw4check"):
		return ""
	}
	return "off"
}

// reControl: the engine counters that count control messages (PPTP control
// segments and calls, IKE packets and SPI learning of the ESP engine).
var reControl = regexp.MustCompile(`^(pptp|esp)_.*(control|calls_opened|ike|spi|learn|sessions)`)

// compareOffload prints, for every "X-ft" scenario that ran next to "X",
// the engines' control-message counters with and without flow offloading.
func (r *runner) compareOffload(expect []string, results map[string]*result) []string {
	var out []string
	for _, s := range expect {
		base, ok := strings.CutSuffix(s, "-ft")
		if !ok {
			continue
		}
		ft, b := results[s], results[base]
		if ft == nil || b == nil || ft.counters == nil || b.counters == nil {
			continue
		}
		var keys []string
		for k := range b.counters {
			if reControl.MatchString(k) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var diff, same []string
		for _, k := range keys {
			if b.counters[k] != ft.counters[k] {
				diff = append(diff, fmt.Sprintf("%s %s -> %s", k, b.counters[k], ft.counters[k]))
			} else if b.counters[k] != "0" {
				same = append(same, k+"="+b.counters[k])
			}
		}
		line := fmt.Sprintf("flow offload, %s vs %s: ", s, base)
		switch {
		case len(keys) == 0:
			line += "no engine counters (kernel datapath)"
		case len(diff) == 0:
			line += "the engine saw the same control traffic (" + strings.Join(same, " ") + ")"
		default:
			line += "the engine's control counters differ: " + strings.Join(diff, ", ")
		}
		out = append(out, line)
		r.printf("%s\n", line)
	}
	return out
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(t, 0o755)
		}
		return copyFile(p, t, info.Mode().Perm())
	})
}

func concat(dst string, srcs ...string) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	for _, s := range srcs {
		in, err := os.Open(s)
		if err != nil {
			out.Close()
			return err
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}
