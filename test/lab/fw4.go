package lab

import (
	"fmt"
	"os"
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
//   - table-pre/*.nft at the start of `table inet fw4 { }` (after the defines),
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
	chain := ""       // the chain we are in
	var body []string // lines of the current chain since its opening
	for _, l := range lines {
		trim := strings.TrimSpace(l)
		switch {
		case reTableOpen.MatchString(l):
			out = append(out, l)
			if err := add("table-pre"); err != nil {
				return nil, err
			}
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

// closeChain writes a chain's body with its chain-pre and chain-post includes.
func closeChain(out, body *[]string, chain string, inc func(string) ([]string, error)) error {
	pre, err := inc(filepath.Join("chain-pre", chain))
	if err != nil {
		return err
	}
	post, err := inc(filepath.Join("chain-post", chain))
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

// LoadFW4 renders fw4's default ruleset for this lab and loads it into the
// router with `nft -f`.
func (l *Lab) LoadFW4() error {
	sample, err := os.ReadFile(l.cfg.FW4Sample)
	if err != nil {
		return err
	}
	rs, err := FW4Ruleset(string(sample), l.LANDevs, l.WANDev, l.cfg.Includes)
	if err != nil {
		return err
	}
	if err := l.NftApply(rs); err != nil {
		return fmt.Errorf("load fw4 ruleset: %w", err)
	}
	l.logf("loaded fw4's default ruleset from %s (LAN %v, WAN %s)", l.cfg.FW4Sample, l.LANDevs, l.WANDev)
	return nil
}

// FW4Ruleset returns the ruleset LoadFW4 loads.
func (l *Lab) FW4Ruleset() (string, error) {
	sample, err := os.ReadFile(l.cfg.FW4Sample)
	if err != nil {
		return "", err
	}
	return FW4Ruleset(string(sample), l.LANDevs, l.WANDev, l.cfg.Includes)
}

// ReloadFW4 re-renders fw4's ruleset with the includes of includesDir ("" =
// the lab's default, "-" = none) and loads it, replacing only table inet
// fw4, as `fw4 reload` does.
func (l *Lab) ReloadFW4(includesDir string) error {
	if includesDir == "" {
		includesDir = l.cfg.Includes
	}
	sample, err := os.ReadFile(l.cfg.FW4Sample)
	if err != nil {
		return err
	}
	rs, err := FW4Ruleset(string(sample), l.LANDevs, l.WANDev, includesDir)
	if err != nil {
		return err
	}
	if err := l.NftApply(rs); err != nil {
		return fmt.Errorf("reload fw4 ruleset: %w", err)
	}
	return nil
}
