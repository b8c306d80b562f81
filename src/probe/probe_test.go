package probe

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRoutes(t *testing.T) {
	text := `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	0002A8C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
wwan0	00000000	0101A8C0	0003	0	0	20	00000000	0	0	0
eth1	00000000	01C6A8C0	0003	0	0	10	00000000	0	0	0
`
	if got := parseRoutes(text); got != "eth1" {
		t.Errorf("default route device = %q, want eth1 (lowest metric)", got)
	}
	// Metrics compare as numbers (5 < 10), not as text.
	numeric := "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n" +
		"wan\t00000000\t0101A8C0\t0003\t0\t0\t10\t00000000\n" +
		"wwan\t00000000\t0102A8C0\t0003\t0\t0\t5\t00000000\n"
	if got := parseRoutes(numeric); got != "wwan" {
		t.Errorf("default route device = %q, want wwan (metric 5 < 10)", got)
	}
	if got := parseRoutes("Iface\tDestination\n"); got != "" {
		t.Errorf("no routes: got %q", got)
	}
}

func write(t *testing.T, root, path, content string) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCapsFromFiles checks the file-based half of the probe on a fixture
// root: a loadable module shows in /sys/module, a built-in one only in
// modules.builtin.
func TestCapsFromFiles(t *testing.T) {
	root := t.TempDir()
	write(t, root, "proc/sys/kernel/osrelease", "6.6.73\n")
	write(t, root, "sys/module/nf_conntrack_pptp/refcnt", "1\n")
	write(t, root, "lib/modules/6.6.73/modules.builtin", "kernel/net/netfilter/nf_conntrack.ko\nkernel/net/ipv4/netfilter/nf_nat_pptp.ko\n")
	write(t, root, "proc/sys/net/netfilter/nf_conntrack_max", "1024\n")
	write(t, root, "proc/sys/net/netfilter/nf_conntrack_gre_timeout", "30\n")
	c := Caps(Root(root), nil)
	if !c.PPTPHelper || !strings.Contains(c.Notes["nf_conntrack_pptp"], "/sys/module") {
		t.Errorf("helper: %v %q", c.PPTPHelper, c.Notes["nf_conntrack_pptp"])
	}
	if !c.PPTPNAT || !strings.Contains(c.Notes["nf_nat_pptp"], "modules.builtin") {
		t.Errorf("nat helper: %v %q", c.PPTPNAT, c.Notes["nf_nat_pptp"])
	}
	if !c.Conntrack || !c.GRETracking {
		t.Errorf("conntrack %v gre %v", c.Conntrack, c.GRETracking)
	}
	if c.NFQueue || c.NFTables {
		t.Errorf("reported what the fixture lacks: %+v", c)
	}
	if c.KernelRelease != "6.6.73" {
		t.Errorf("release %q", c.KernelRelease)
	}
}

func TestCapsMissingHelper(t *testing.T) {
	root := t.TempDir()
	write(t, root, "proc/sys/kernel/osrelease", "5.15.0\n")
	c := Caps(Root(root), nil)
	if c.PPTPHelper || c.PPTPNAT {
		t.Errorf("helper reported on an empty root: %+v", c)
	}
	if c.Notes["nf_conntrack_pptp"] == "" {
		t.Error("no note saying where it looked")
	}
}

// TestDisableCtnetlink: VPNPT_DISABLE_CAPS reports ctnetlink missing (how
// the labs run the PPTP engine of a kernel without nf_conntrack_netlink),
// and a probe without netlink access never claims it.
func TestDisableCtnetlink(t *testing.T) {
	c := Caps(Root(t.TempDir()), nil)
	if c.Ctnetlink || c.Notes["nf_conntrack_netlink"] == "" {
		t.Errorf("no netlink connection: ctnetlink %v, note %q", c.Ctnetlink, c.Notes["nf_conntrack_netlink"])
	}
	c.Ctnetlink, c.MapPayload = true, true
	disable(&c, "nft_map_payload, nf_conntrack_netlink")
	if c.Ctnetlink || c.MapPayload || !strings.Contains(c.Notes["nf_conntrack_netlink"], DisableEnv) {
		t.Errorf("after disable: %+v", c)
	}
}

// TestKconfig: /proc/config.gz is read through src/gunzip; lines decoded
// before damage still count, a file that is not gzip gives nothing.
func TestKconfig(t *testing.T) {
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	z.Write([]byte("# comment\nCONFIG_NF_CONNTRACK_PPTP=m\nCONFIG_NFT_QUEUE=y\n# CONFIG_X is not set\nNOT_CONFIG=1\n"))
	z.Close()
	root := t.TempDir()
	write(t, root, "proc/config.gz", b.String())
	got := Root(root).kconfig()
	if len(got) != 2 || got["CONFIG_NF_CONNTRACK_PPTP"] != "m" || got["CONFIG_NFT_QUEUE"] != "y" {
		t.Errorf("kconfig = %v", got)
	}
	write(t, root, "proc/config.gz", b.String()[:b.Len()-8]) // no trailer
	if got := Root(root).kconfig(); got["CONFIG_NFT_QUEUE"] != "y" {
		t.Errorf("truncated trailer: %v", got)
	}
	write(t, root, "proc/config.gz", "CONFIG_PLAIN=y\n")
	if got := Root(root).kconfig(); len(got) != 0 {
		t.Errorf("not gzip: %v", got)
	}
}
