package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vpn-passthrough/vpn-passthrough/src/loader"
)

// fw4IncludeDir is where fw4 reads the include that accepts the engines'
// mark in its forward chain (files/usr/share/nftables.d/...).
const fw4IncludeDir = "usr/share/nftables.d/chain-pre/forward"

// The include's accept rule starts "meta mark & 0xMMMMMMMM == 0xVVVVVVVV".
// A hand scan, not regexp: regexp would add ~100 KiB to the binary.
const markPrefix, markMid = "meta mark & 0x", " == 0x"

// replaceMark rewrites every "meta mark & 0x<8 hex> == 0x<8 hex>" in data to
// want; found says whether there was one.
func replaceMark(data, want string) (out string, found bool) {
	var b strings.Builder
	for {
		i := strings.Index(data, markPrefix)
		if i < 0 {
			b.WriteString(data)
			return b.String(), found
		}
		rest := data[i+len(markPrefix):]
		n := len(markPrefix) + 8 + len(markMid) + 8
		if len(data)-i >= n && hex8(rest[:8]) && rest[8:8+len(markMid)] == markMid && hex8(rest[8+len(markMid):8+len(markMid)+8]) {
			b.WriteString(data[:i])
			b.WriteString(want)
			data = data[i+n:]
			found = true
			continue
		}
		b.WriteString(data[:i+len(markPrefix)])
		data = rest
	}
}

func hex8(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return len(s) == 8
}

// syncFW4Include makes our fw4 include accept the configured mark: fw4 reads
// the file on its next start or reload. It rewrites only the mark of the
// include's rule, only when it differs, atomically; it returns the files it
// changed. A system without the directory (no fw4) has nothing to do.
func syncFW4Include(dir string, mark, mask uint32) ([]string, error) {
	files := includeFiles(dir)
	want := fmt.Sprintf("meta mark & 0x%08x == 0x%08x", mask, mark)
	var changed []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return changed, err
		}
		out, found := replaceMark(string(data), want)
		if !found {
			continue // not the accept rule (someone's own file): leave it
		}
		if out == string(data) {
			continue
		}
		tmp := f + ".tmp"
		if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
			return changed, err
		}
		if err := os.Rename(tmp, f); err != nil {
			os.Remove(tmp)
			return changed, err
		}
		changed = append(changed, f)
	}
	return changed, nil
}

// includeFiles lists dir's *vpn-passthrough*.nft, sorted, as
// filepath.Glob would, without Glob's matcher (~7 KB of the mipsel binary).
// Like Glob, an absent or unreadable folder holds none.
func includeFiles(dir string) []string {
	var names, files []string
	if d, err := os.Open(dir); err == nil {
		names, _ = d.Readdirnames(-1)
		d.Close()
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.Contains(n, "vpn-passthrough") && strings.HasSuffix(n, ".nft") {
			files = append(files, filepath.Join(dir, n))
		}
	}
	return files
}

// followMark keeps the fw4 include in step with the plan's mark and checks
// what fw4's live forward chain accepts, for status. Only plans with
// engines mark packets.
func (d *Daemon) followMark(l *loader.Loaded) {
	if len(l.Plan.Queues) == 0 {
		d.mu.Lock()
		d.fw4.markWarning = ""
		d.mu.Unlock()
		return
	}
	dir := filepath.Join(string(d.opts.Root), fw4IncludeDir)
	if d.opts.FW4IncludeDir != "" {
		dir = d.opts.FW4IncludeDir
	}
	changed, err := syncFW4Include(dir, l.Plan.Mark, l.Plan.MarkMask)
	if err != nil {
		d.opts.Log.Warn("could not update the fw4 include to the configured mark", "dir", dir, "err", err)
	}
	for _, f := range changed {
		d.opts.Log.Warn("fw4 include rewritten for the configured mark; fw4 applies it at its next reload",
			"file", f, "mark", fmt.Sprintf("0x%08x/0x%08x", l.Plan.Mark, l.Plan.MarkMask))
	}
	d.checkFW4Mark(l)
}

// checkFW4Mark compares the mark fw4's forward chain accepts with the
// plan's. Without fw4 (plain Linux) there is nothing to compare.
func (d *Daemon) checkFW4Mark(l *loader.Loaded) {
	warn := ""
	if ok, err := d.k.Firewall.Exists(fw4Table); err == nil && ok && len(l.Plan.Queues) > 0 {
		mark, mask, found, err := d.k.Firewall.FW4AcceptMark()
		switch {
		case err != nil:
		case !found:
			warn = "fw4: its forward chain has no vpn-passthrough accept rule (include not loaded): fw4 drops what the engines forward; run `fw4 reload`"
		case mark != l.Plan.Mark || mask != l.Plan.MarkMask:
			warn = fmt.Sprintf("fw4: its forward chain accepts mark 0x%08x/0x%08x, the engines use 0x%08x/0x%08x: run `fw4 reload`",
				mark, mask, l.Plan.Mark, l.Plan.MarkMask)
		}
	}
	d.mu.Lock()
	prev := d.fw4.markWarning
	d.fw4.markWarning = warn
	d.mu.Unlock()
	if warn != "" && warn != prev {
		d.opts.Log.Warn(warn)
	}
}
