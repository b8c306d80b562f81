package userspace

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vpn-passthrough/vpn-passthrough/src/probe"
	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// checkJSON is the part of `check --json` these tests read.
type checkJSON struct {
	Capabilities struct {
		MapPayload bool              `json:"nft_map_payload"`
		Ctnetlink  bool              `json:"nf_conntrack_netlink"`
		Notes      map[string]string `json:"notes"`
	} `json:"capabilities"`
	Protocols []struct {
		Proto    string `json:"proto"`
		Datapath string `json:"datapath"`
		Reason   string `json:"reason"`
		Degraded string `json:"degraded"`
	} `json:"protocols"`
}

func (e *env) check(t *testing.T, env ...string) checkJSON {
	t.Helper()
	args := append(append([]string{"env"}, env...), e.bin, "check", "--json", "--config", e.d.Config)
	out, stderr, err := e.l.ExecSplit(e.l.Router, args...)
	if err != nil {
		t.Fatalf("check: %v\n%s", err, stderr)
	}
	var c checkJSON
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	return c
}

// TestNoCtnetlink: the PPTP engine's kernel data plane keys each call's GRE
// elements by the router address of its control connection, which only
// conntrack (ctnetlink) reports. On a kernel without nf_conntrack_netlink
// (forced here with VPNPT_DISABLE_CAPS, on a router that also lacks the
// kernel helper, so mode auto picks the engine) the probe must say so, the
// plan must pick the NFQUEUE fallback, which works without it, `check` and
// `status` must say why and what is lost, and calls must still work.
// Without the probe's capability the plan picked the maps, whose elements
// the engine could not key: every call's inbound GRE was dropped.
func TestNoCtnetlink(t *testing.T) {
	lab.Need(t)
	t.Setenv(probe.DisableEnv, "nf_conntrack_pptp,nf_conntrack_netlink")
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{Clients: 2})
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	// A router without the helper: fw4 renders no helper rule there.
	if err := l.DropFW4PPTPHelper(); err != nil {
		t.Fatal(err)
	}
	cfg := l.KernelUCI()
	cfg.Mode = "auto"
	e := &env{t: t, l: l, srv: srv, bin: bin, cfg: cfg}
	e.startDaemon()
	t.Cleanup(func() {
		e.d.Kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", e.d.Log())
		}
		removeFiles(e.stateFiles())
	})

	// The probe itself finds ctnetlink on this kernel.
	if c := e.check(t, "-u", probe.DisableEnv); !c.Capabilities.Ctnetlink || c.Capabilities.Notes["nf_conntrack_netlink"] != "netlink probe" {
		t.Errorf("probe on this kernel: nf_conntrack_netlink %v (%q), want present by its netlink probe",
			c.Capabilities.Ctnetlink, c.Capabilities.Notes["nf_conntrack_netlink"])
	}
	c := e.check(t)
	if c.Capabilities.Ctnetlink || !strings.Contains(c.Capabilities.Notes["nf_conntrack_netlink"], probe.DisableEnv) {
		t.Errorf("check: nf_conntrack_netlink %v (%q) with it disabled", c.Capabilities.Ctnetlink, c.Capabilities.Notes["nf_conntrack_netlink"])
	}
	if !c.Capabilities.MapPayload {
		t.Errorf("check: nft_map_payload missing; this test needs the maps' other requirement present")
	}
	for _, p := range c.Protocols {
		if p.Proto != "pptp" {
			continue
		}
		if p.Datapath != "userspace" || !strings.Contains(p.Reason, "NFQUEUE for every packet") ||
			!strings.Contains(p.Reason, "nf_conntrack_netlink") || !strings.Contains(p.Degraded, "kmod-nf-conntrack-netlink") {
			t.Errorf("check's pptp decision does not say it runs on the fallback for lack of ctnetlink: %+v", p)
		}
	}
	var st struct {
		Protocols []struct {
			Name       string `json:"proto"`
			Datapath   string `json:"datapath"`
			Reason     string `json:"reason"`
			Limitation string `json:"limitation"`
		} `json:"protocols"`
	}
	out, stderr, err := e.d.CLI("status", "--json", "--socket", e.d.Socket)
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: %v %s\n%s", err, stderr, out)
	}
	found := false
	for _, p := range st.Protocols {
		if p.Name == "pptp" {
			found = true
			if p.Datapath != "userspace" || !strings.Contains(p.Reason, "nf_conntrack_netlink") || !strings.Contains(p.Limitation, "nf_conntrack_netlink") {
				t.Errorf("status's pptp protocol does not say why it runs on the fallback: %+v", p)
			}
		}
	}
	if !found {
		t.Errorf("no pptp protocol in status:\n%s", out)
	}
	tbl := l.OurTable(t)
	if contains(tbl.Sets, "pptp_gre_calls") || !contains(tbl.Chains, "pptp_untrack") {
		t.Errorf("not the NFQUEUE fallback's table: sets %v chains %v", tbl.Sets, tbl.Chains)
	}
	if !strings.Contains(e.d.Log(), "no conntrack view of control connections") {
		t.Errorf("the engine did not say it runs without ctnetlink")
	}
	if err := l.ConntrackFlush(); err != nil {
		t.Fatal(err)
	}
	// Calls work: two clients, the same Call ID, each its own GRE.
	e.sameCallID(t, 2)
	if n := e.counter("gre_in"); n < 40 {
		t.Errorf("the engine demultiplexed %d inbound GRE packets, want the 40 of both calls", n)
	}
}
