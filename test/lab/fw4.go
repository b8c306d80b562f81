package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Names fw4's sample ruleset uses for its devices.
const (
	fw4SampleLAN = "br-lan"
	fw4SampleWAN = "pppoe-wan"
)

// FW4Ruleset turns fw4's rendered default ruleset (sample) into one this lab
// and this kernel can load:
//   - "br-lan" becomes the router's LAN devices, "pppoe-wan" its WAN device;
//   - removed, because this kernel lacks them (SOURCES.txt): the flowtable ft
//     and its `flow offload @ft` rule, the rtsp ct helper object and its
//     `ct helper set "rtsp"` rule, and the `include "/etc/nftables.d/*.nft"`
//     line;
//   - the package's fw4 includes under includesDir (the lab's stand-in for
//     /usr/share/nftables.d) are rendered where fw4 renders them; see
//     RenderIncludes. includesDir "" or "-" renders none.
//
// Every removal must find its target, so a changed sample fails loudly.
func FW4Ruleset(sample string, lan []string, wan, includesDir string) (string, error) {
	if len(lan) == 0 || wan == "" {
		return "", fmt.Errorf("fw4: need LAN and WAN devices")
	}
	quoted := make([]string, len(lan))
	for i, d := range lan {
		quoted[i] = fmt.Sprintf("%q", d)
	}
	lanSet := "{ " + strings.Join(quoted, ", ") + " }"
	s := sample
	s = strings.ReplaceAll(s, `{ "`+fw4SampleLAN+`" }`, lanSet)
	s = strings.ReplaceAll(s, `"`+fw4SampleLAN+`"`, lanSet)
	s = strings.ReplaceAll(s, `{ "`+fw4SampleWAN+`" }`, fmt.Sprintf("{ %q }", wan))
	s = strings.ReplaceAll(s, `"`+fw4SampleWAN+`"`, fmt.Sprintf("%q", wan))
	for _, old := range []string{fw4SampleLAN, fw4SampleWAN} {
		if strings.Contains(s, old) {
			return "", fmt.Errorf("fw4: %q is left in the ruleset after substitution", old)
		}
	}
	var err error
	lines := strings.Split(s, "\n")
	if lines, err = removeBlock(lines, regexp.MustCompile(`^\s*flowtable ft \{\s*$`), "flowtable ft"); err != nil {
		return "", err
	}
	if lines, err = removeBlock(lines, regexp.MustCompile(`^\s*ct helper rtsp \{\s*$`), "ct helper rtsp"); err != nil {
		return "", err
	}
	for _, r := range []struct {
		re   *regexp.Regexp
		what string
	}{
		{regexp.MustCompile(`^\s*meta l4proto \{ tcp, udp \} flow offload @ft;?\s*$`), "flow offload @ft rule"},
		{regexp.MustCompile(`ct helper set "rtsp"`), `ct helper set "rtsp" rule`},
		{regexp.MustCompile(`^\s*include "/etc/nftables\.d/\*\.nft"\s*$`), "include line"},
	} {
		if lines, err = removeLines(lines, r.re, r.what); err != nil {
			return "", err
		}
	}
	if includesDir != "" && includesDir != "-" {
		if lines, err = RenderIncludes(lines, includesDir); err != nil {
			return "", err
		}
	}
	return strings.Join(lines, "\n"), nil
}

func removeLines(lines []string, re *regexp.Regexp, what string) ([]string, error) {
	out := lines[:0:0]
	n := 0
	for _, l := range lines {
		if re.MatchString(l) {
			n++
			continue
		}
		out = append(out, l)
	}
	if n == 0 {
		return nil, fmt.Errorf("fw4: no %s in the sample ruleset", what)
	}
	return out, nil
}

// removeBlock removes the block opened by the line matching start, through
// its closing brace.
func removeBlock(lines []string, start *regexp.Regexp, what string) ([]string, error) {
	for i, l := range lines {
		if !start.MatchString(l) {
			continue
		}
		depth := 0
		for j := i; j < len(lines); j++ {
			depth += strings.Count(lines[j], "{") - strings.Count(lines[j], "}")
			if depth == 0 {
				return append(append([]string(nil), lines[:i]...), lines[j+1:]...), nil
			}
		}
		return nil, fmt.Errorf("fw4: %s block is not closed", what)
	}
	return nil, fmt.Errorf("fw4: no %s block in the sample ruleset", what)
}

var (
	reChainOpen = regexp.MustCompile(`^\s*chain (\S+) \{\s*$`)
	reTableOpen = regexp.MustCompile(`^table inet fw4 \{\s*$`)
)

// RenderIncludes emulates fw4's automatic includes (defaults.auto_includes)
// from dir, the stand-in for /usr/share/nftables.d, the way fw4's
// templates/ruleset.uc places them:
//   - ruleset-pre/*.nft after `flush table inet fw4`, ruleset-post/*.nft at the end;
//   - table-pre/*.nft in `table inet fw4 { }` after the helpers, sets and
//     defines, before the first chain,
//     table-post/*.nft before its closing brace;
//   - chain-pre/<chain>/*.nft at the start of that chain: in input and output
//     after the loopback accept, elsewhere after the hook line (fw4 puts it
//     after `flow offload` in forward, which the lab removes);
//   - chain-post/<chain>/*.nft at the end of that chain: before the closing
//     `jump` to a reject/verdict chain, except in input where fw4 puts it
//     after `jump handle_reject`.
//
// Like fw4, it writes `include "<file>"` lines, files sorted by name. A
// chain-pre/chain-post directory for a chain the ruleset lacks is an error.
func RenderIncludes(lines []string, dir string) ([]string, error) {
	inc := func(rel string) ([]string, error) {
		files, err := filepath.Glob(filepath.Join(dir, rel, "*.nft"))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		var out []string
		for _, f := range files {
			abs, err := filepath.Abs(f)
			if err != nil {
				return nil, err
			}
			out = append(out, fmt.Sprintf("\t\tinclude %q", abs))
		}
		return out, nil
	}
	// Chains that have a pre or post directory must exist.
	seen := map[string]bool{}
	for _, l := range lines {
		if m := reChainOpen.FindStringSubmatch(l); m != nil {
			seen[m[1]] = true
		}
	}
	for _, kind := range []string{"chain-pre", "chain-post"} {
		ents, err := os.ReadDir(filepath.Join(dir, kind))
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() && !seen[e.Name()] {
				return nil, fmt.Errorf("fw4 includes: %s/%s names a chain fw4 does not have", kind, e.Name())
			}
		}
	}

	var out []string
	add := func(rel string) error {
		l, err := inc(rel)
		out = append(out, l...)
		return err
	}
	tablePre := false // table-pre is still to be placed
	chain := ""       // the chain we are in
	var body []string // lines of the current chain since its opening
	for _, l := range lines {
		trim := strings.TrimSpace(l)
		switch {
		case reTableOpen.MatchString(l):
			// table-pre goes after the helpers, sets and defines, before the first chain.
			out = append(out, l)
			tablePre = true
			continue
		case strings.HasPrefix(l, "flush table inet fw4"):
			out = append(out, l)
			if err := add("ruleset-pre"); err != nil {
				return nil, err
			}
			continue
		case l == "}" && chain == "":
			if err := add("table-post"); err != nil {
				return nil, err
			}
			out = append(out, l)
			continue
		}
		if chain == "" {
			if m := reChainOpen.FindStringSubmatch(l); m != nil {
				if tablePre {
					tablePre = false
					if err := add("table-pre"); err != nil {
						return nil, err
					}
				}
				chain, body = m[1], nil
				out = append(out, l)
				continue
			}
			out = append(out, l)
			continue
		}
		// Inside a chain.
		if trim == "}" {
			if err := closeChain(&out, &body, chain, inc); err != nil {
				return nil, err
			}
			out = append(out, l)
			chain = ""
			continue
		}
		body = append(body, l)
	}
	if err := add("ruleset-post"); err != nil {
		return nil, err
	}
	return out, nil
}

// noInclude lists the chains templates/ruleset.uc gives no chain-pre (prepend) or chain-post
// (append) include: fw4 ignores those folders (found by TestFW4EmulationMatchesRealFW4).
var noInclude = map[string]bool{
	"chain-pre/prerouting": true, "chain-post/prerouting": true, "chain-pre/raw_prerouting": true,
}

// closeChain writes a chain's body with its chain-pre and chain-post includes.
func closeChain(out, body *[]string, chain string, inc func(string) ([]string, error)) error {
	incIf := func(kind string) ([]string, error) {
		if noInclude[kind+"/"+chain] {
			return nil, nil
		}
		return inc(filepath.Join(kind, chain))
	}
	pre, err := incIf("chain-pre")
	if err != nil {
		return err
	}
	post, err := incIf("chain-post")
	if err != nil {
		return err
	}
	b := *body
	// Where chain-pre goes: after the hook line, and in input/output after
	// the loopback accept.
	at := 0
	for i, l := range b {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "type ") && strings.Contains(t, " hook ") {
			at = i + 1
		}
		if (chain == "input" && strings.HasPrefix(t, `iif "lo" accept`)) ||
			(chain == "output" && strings.HasPrefix(t, `oif "lo" accept`)) {
			at = i + 1
			break
		}
	}
	// Where chain-post goes: before a final jump, except in input.
	end := len(b)
	for end > 0 && strings.TrimSpace(b[end-1]) == "" {
		end--
	}
	postAt := end
	if chain != "input" && end > 0 && strings.HasPrefix(strings.TrimSpace(b[end-1]), "jump ") {
		postAt = end - 1
	}
	var nb []string
	nb = append(nb, b[:at]...)
	nb = append(nb, pre...)
	nb = append(nb, b[at:postAt]...)
	nb = append(nb, post...)
	nb = append(nb, b[postAt:]...)
	*out = append(*out, nb...)
	*body = nil
	return nil
}

// ErrNoFW4: neither real fw4 nor the sample ruleset is available.
var ErrNoFW4 = errors.New("lab: no fw4")

// RealFW4 renders the router's ruleset with real fw4 (test/openwrt/fw4-render.sh: the OpenWrt
// userland built from the pinned sources, default firewall config, zone lan = lan, zone wan =
// wan, the includes of includesDir, "-" for none).
func RealFW4(repo string, lan []string, wan, includesDir string) (string, error) {
	args := []string{}
	for _, d := range lan {
		args = append(args, "--lan", d)
	}
	args = append(args, "--wan", wan, "--includes", includesDir)
	cmd := exec.Command(filepath.Join(repo, "test/openwrt/fw4-render.sh"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 && len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return "", fmt.Errorf("real fw4 (test/openwrt/fw4-render.sh): %v: %s", err, msg)
	}
	return string(out), nil
}

// fw4Source decides once per lab where its fw4 ruleset comes from: real fw4, else (not under
// CI=true) the shared sample with the emulation.
func (l *Lab) fw4Source() error {
	if l.cfg.FW4Sample != "" {
		return nil
	}
	if _, err := RealFW4(l.Repo, l.LANDevs, l.WANDev, l.cfg.Includes); err == nil {
		l.realFW4 = true
		return nil
	} else if os.Getenv("CI") == "true" {
		return fmt.Errorf("%w: CI=true and %v", ErrNoFW4, err)
	} else {
		sample := filepath.Join(SharedDir(l.Repo), "openwrt-samples", "fw4-default-ruleset.nft")
		if _, serr := os.Stat(sample); serr != nil {
			return fmt.Errorf("%w: %v; and no fallback sample: %v", ErrNoFW4, err, serr)
		}
		l.logf("real fw4 unavailable (%v); falling back to the emulation on %s", err, sample)
		l.cfg.FW4Sample = sample
		return nil
	}
}

// LoadFW4 loads the router's fw4 ruleset (real fw4's rendering, or the emulation) with `nft -f`.
func (l *Lab) LoadFW4() error {
	if err := l.fw4Source(); err != nil {
		return err
	}
	rs, err := l.renderFW4(l.cfg.Includes)
	if err != nil {
		return err
	}
	if err := l.NftApply(rs); err != nil {
		return fmt.Errorf("load fw4 ruleset: %w", err)
	}
	if l.realFW4 {
		l.logf("loaded the ruleset real fw4 renders for this router (LAN %v, WAN %s)", l.LANDevs, l.WANDev)
	} else {
		l.logf("loaded fw4's default ruleset from %s (LAN %v, WAN %s)", l.cfg.FW4Sample, l.LANDevs, l.WANDev)
	}
	return nil
}

// RealFW4 reports whether the router runs real fw4's rendering (else the emulation).
func (l *Lab) RealFW4() bool { return l.realFW4 }

func (l *Lab) renderFW4(includesDir string) (string, error) {
	if l.realFW4 {
		return RealFW4(l.Repo, l.LANDevs, l.WANDev, includesDir)
	}
	sample, err := os.ReadFile(l.cfg.FW4Sample)
	if err != nil {
		return "", err
	}
	return FW4Ruleset(string(sample), l.LANDevs, l.WANDev, includesDir)
}

// FW4Ruleset returns the ruleset LoadFW4 loads.
func (l *Lab) FW4Ruleset() (string, error) { return l.renderFW4(l.cfg.Includes) }

// ReloadFW4 re-renders fw4's ruleset with the includes of includesDir ("" =
// the lab's default, "-" = none) and loads it, replacing only table inet
// fw4, as `fw4 reload` does.
func (l *Lab) ReloadFW4(includesDir string) error {
	if includesDir == "" {
		includesDir = l.cfg.Includes
	}
	rs, err := l.renderFW4(includesDir)
	if err != nil {
		return err
	}
	if err := l.NftApply(rs); err != nil {
		return fmt.Errorf("reload fw4 ruleset: %w", err)
	}
	return nil
}
