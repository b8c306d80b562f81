package kernel

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/test/lab"
)

// charonBin is Debian's strongSwan daemon (package strongswan-charon; the
// CHILD_SA's ESP runs in userspace through libcharon-extra-plugins'
// kernel-libipsec, since this kernel has no ESP).
const charonBin = "/usr/lib/ipsec/charon"

// charon is one strongSwan daemon in a lab namespace, with its own
// strongswan.conf, swanctl.conf and vici socket in dir. It runs in a private
// mount namespace with its own /run, because charon's pid file is fixed at
// /run/charon.pid and two run at once here.
type charon struct {
	t    *testing.T
	dir  string
	proc *lab.Proc
}

func (c *charon) uri() string { return "unix://" + filepath.Join(c.dir, "charon.vici") }

// startCharon writes the configs and starts charon in ns; swanctl loads the
// connection (conn is the body of swanctl.conf's connections section).
func startCharon(t *testing.T, l *lab.Lab, ns, name, conn, secrets string) *charon {
	t.Helper()
	dir := filepath.Join(l.Dir, "charon-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := &charon{t: t, dir: dir}
	conf := fmt.Sprintf(`charon {
	load_modular = no
	load = random nonce aes sha1 sha2 hmac kdf gmp pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
	port = 500
	port_nat_t = 4500
	retransmit_timeout = 1.0
	retransmit_tries = 4
	install_virtual_ip = no
	filelog {
		stderr {
			default = 1
			ike = 1
			time_format = %%T
		}
	}
	plugins {
		vici {
			socket = %s
		}
	}
}
`, c.uri())
	if err := os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sw := "connections {\n" + conn + "\n}\nsecrets {\n" + secrets + "\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "swanctl.conf"), []byte(sw), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := l.Spawn(ns, "charon "+name, "env", "STRONGSWAN_CONF="+filepath.Join(dir, "strongswan.conf"),
		"unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /run && exec "+charonBin)
	if err != nil {
		t.Fatal(err)
	}
	c.proc = p
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("charon %s log:\n%s", name, strings.Join(p.Stderr(), "\n"))
		}
	})
	// The vici socket appears once charon is up.
	deadline := time.Now().Add(lab.Scale(15 * time.Second))
	for {
		if _, err := os.Stat(filepath.Join(dir, "charon.vici")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon %s: no vici socket within the deadline:\n%s", name, strings.Join(p.Stderr(), "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := c.swanctl("--load-all", "--file", filepath.Join(dir, "swanctl.conf")); err != nil {
		t.Fatalf("charon %s: swanctl --load-all: %v\n%s", name, err, out)
	}
	return c
}

func (c *charon) swanctl(args ...string) (string, error) {
	// swanctl reads the same strongswan.conf (it has no section of its
	// own there, so it does not try the system's plugin list).
	cmd := exec.Command("swanctl", append(args, "--uri", c.uri())...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(c.dir, "strongswan.conf"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRouterIKEDaemonCoexists: the router runs its own strongSwan on its WAN
// address (a site-to-site tunnel to a far peer: UDP 500, then 4500), while a
// LAN client runs strongSwan to the SAME far peer through the router's NAT
// (so both reach it from the router's address, with keep_ike_port both from
// port 500) and a second LAN client uses IKE, NAT-T and raw ESP (the ESP
// engine) to the lab's server; keep_ike_port off, then on. The plan must not
// steal the router's own IKE: the ESP engine's inbound IKE queue passes
// what no LAN client owns on to the router unchanged (keep_ike_port:
// demultiplexed by IKE SPI), and its drops and leak guards concern forwarded
// traffic only. The router's own 500/4500 are accepted by the user's fw4
// rule (an OpenWrt strongSwan setup opens them in `input_wan`, as here).
func TestRouterIKEDaemonCoexists(t *testing.T) {
	lab.Need(t)
	for _, need := range []string{charonBin, "/usr/sbin/swanctl", "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so"} {
		if _, err := os.Stat(need); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing (make deps installs strongswan-charon, strongswan-swanctl, libcharon-extra-plugins)", need)
			}
			t.Skipf("%s is missing (make deps installs strongswan-charon, strongswan-swanctl, libcharon-extra-plugins)", need)
		}
	}
	bin := lab.DaemonBin(t)
	l := lab.Start(t, lab.Config{})
	if _, err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	// The far peer: its own namespace behind the WAN host, which routes.
	far, err := l.NewNamespace("far")
	if err != nil {
		t.Fatal(err)
	}
	wan := l.Server.NS
	for _, c := range [][]string{
		{"ip", "link", "add", "far0", "netns", wan, "type", "veth", "peer", "name", "eth0", "netns", far},
		{"ip", "-n", wan, "addr", "add", "203.0.113.1/24", "dev", "far0"},
		{"ip", "-n", wan, "link", "set", "far0", "up"},
		{"ip", "-n", far, "addr", "add", "203.0.113.2/24", "dev", "eth0"},
		{"ip", "-n", far, "link", "set", "eth0", "up"},
		{"ip", "-n", far, "link", "set", "lo", "up"},
		{"ip", "-n", far, "route", "add", "default", "via", "203.0.113.1"},
		// Inner addresses of the tunnel (its traffic selectors).
		{"ip", "-n", far, "addr", "add", "10.99.2.1/32", "dev", "lo"},
		{"ip", "-n", l.Router, "addr", "add", "10.99.1.1/32", "dev", "lo"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	if err := l.Sysctl(wan, map[string]string{"net/ipv4/ip_forward": "1"}); err != nil {
		t.Fatal(err)
	}
	// The user's fw4 rule for the router's own IKE and NAT-T.
	if _, err := l.Nft("insert", "rule", "inet", "fw4", "input_wan", "udp", "dport", "{ 500, 4500 }", "counter", "accept",
		"comment", `"Allow-IKE-router"`); err != nil {
		t.Fatal(err)
	}
	secrets := `ike-1 {
		id-1 = router
		id-2 = far
		secret = "lab-only-psk-5b2e"
	}`
	conn := func(local, remote, localID, remoteID, lts, rts string) string {
		return fmt.Sprintf(`s2s {
		version = 2
		local_addrs = %s
		remote_addrs = %s
		encap = yes
		proposals = aes128-sha256-modp2048
		local {
			auth = psk
			id = %s
		}
		remote {
			auth = psk
			id = %s
		}
		children {
			net {
				local_ts = %s
				remote_ts = %s
				esp_proposals = aes128-sha256
			}
		}
	}`, local, remote, localID, remoteID, lts, rts)
	}
	// A LAN client runs strongSwan too, to the same far peer: behind the
	// router's NAT it reaches it from the router's address, as the
	// router's own charon does (with keep_ike_port, from the same port 500).
	lanSecrets := secrets + `
	ike-2 {
		id-1 = lan
		id-2 = far
		secret = "lab-only-psk-9c41"
	}`
	lanHost := l.Client(1)
	if out, err := exec.Command("ip", "-n", lanHost.NS, "addr", "add", "10.99.3.1/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	routerCharon := startCharon(t, l, l.Router, "router", conn("198.51.100.1", "203.0.113.2", "router", "far", "10.99.1.1/32", "10.99.2.1/32"), secrets)
	farConns := conn("203.0.113.2", "198.51.100.1", "far", "router", "10.99.2.1/32", "10.99.1.1/32") + "\n" +
		strings.Replace(conn("203.0.113.2", "%any", "far", "lan", "10.99.2.1/32", "10.99.3.1/32"), "s2s {", "lan {", 1)
	farCharon := startCharon(t, l, far, "far", farConns, lanSecrets)
	lanCharon := startCharon(t, l, lanHost.NS, "lan1", strings.Replace(conn(lanHost.Addr.String(), "203.0.113.2", "lan", "far", "10.99.3.1/32", "10.99.2.1/32"),
		"s2s {", "lan {", 1), lanSecrets[strings.Index(lanSecrets, "ike-2"):])
	// lanTunnel brings up the LAN client's tunnel through the router
	// (IKE from port 500 through NAT, then NAT-T) and pings through it.
	lanTunnel := func(step string) {
		t.Helper()
		_, _ = lanCharon.swanctl("--terminate", "--ike", "lan", "--force")
		out, err := lanCharon.swanctl("--initiate", "--child", "net", "--timeout", "20")
		if err != nil {
			t.Fatalf("%s: the LAN client's strongSwan could not bring up its tunnel to the far peer through the router: %v\n%s", step, err, out)
		}
		sas, _ := farCharon.swanctl("--list-sas", "--ike", "lan")
		if !regexp.MustCompile(`lan: #\d+, ESTABLISHED, IKEv2`).MatchString(sas) || !strings.Contains(sas, "remote 'lan' @ 198.51.100.1[") {
			t.Fatalf("%s: the far peer does not list the LAN client's IKE SA from the router's address:\n%s", step, sas)
		}
		ping, err := l.Exec(lanHost.NS, "busybox", "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", "10.99.3.1", "10.99.2.1")
		if err != nil || !strings.Contains(ping, " 0% packet loss") {
			t.Fatalf("%s: ping through the LAN client's tunnel: %v\n%s", step, err, ping)
		}
		t.Logf("%s: LAN client's strongSwan through the router: IKE SA established, 5/5 pings", step)
	}

	// tunnel brings the far peer's tunnel up (it initiates: WAN to the
	// router's UDP 500, then 4500) and pings through it.
	tunnel := func(step string) {
		t.Helper()
		_, _ = farCharon.swanctl("--terminate", "--ike", "s2s", "--force")
		// Both ends forget the old SA before the next try.
		deadline := time.Now().Add(lab.Scale(10 * time.Second))
		for {
			out, _ := routerCharon.swanctl("--list-sas")
			if !strings.Contains(out, "s2s:") {
				break
			}
			if time.Now().After(deadline) {
				_, _ = routerCharon.swanctl("--terminate", "--ike", "s2s", "--force")
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		out, err := farCharon.swanctl("--initiate", "--child", "net", "--timeout", "20")
		if err != nil {
			t.Fatalf("%s: the far peer could not bring up its tunnel to the router's own charon: %v\n%s", step, err, out)
		}
		sas, _ := routerCharon.swanctl("--list-sas")
		if !regexp.MustCompile(`s2s: #\d+, ESTABLISHED, IKEv2`).MatchString(sas) ||
			!regexp.MustCompile(`local +'router' @ 198\.51\.100\.1\[4500\]`).MatchString(sas) ||
			!regexp.MustCompile(`remote +'far' @ 203\.0\.113\.2\[4500\]`).MatchString(sas) {
			t.Fatalf("%s: the router's charon does not list the IKE SA as established:\n%s", step, sas)
		}
		if !strings.Contains(sas, "INSTALLED, TUNNEL-in-UDP") {
			t.Fatalf("%s: the router's CHILD_SA is not installed (UDP-encapsulated):\n%s", step, sas)
		}
		ping, err := l.Exec(l.Router, "busybox", "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", "10.99.1.1", "10.99.2.1")
		if err != nil || !strings.Contains(ping, " 0% packet loss") {
			t.Fatalf("%s: ping through the router's own tunnel: %v\n%s", step, err, ping)
		}
		t.Logf("%s: router's own IKE SA established (500 then 4500), 5/5 pings through its tunnel", step)
	}
	// A second LAN client's IKE (from port 500, udp-client's default, as
	// the router's own socket and the first client's strongSwan), NAT-T
	// and raw ESP to the lab's server.
	lanIPsec := func(step string) {
		t.Helper()
		if r, err := l.UDPClient(2, "ike", "--count", "5"); err != nil || !r.OK || r.Received != 5 {
			t.Errorf("%s: LAN IKE next to the router's own: %+v, %v", step, r, err)
		}
		if r, err := l.UDPClient(2, "natt", "--count", "5"); err != nil || !r.OK || r.Received != 5 {
			t.Errorf("%s: LAN NAT-T next to the router's own: %+v, %v", step, r, err)
		}
		if r, err := l.RawClient(2, "esp", "--count", "5", "--spi", "0x7001"); err != nil || !r.OK || r.Received != 5 {
			t.Errorf("%s: LAN raw ESP next to the router's own tunnel: %+v, %v", step, r, err)
		}
	}

	// Control: fw4 alone.
	tunnel("no daemon")
	lanTunnel("no daemon")

	var d *lab.Daemon
	for _, keep := range []bool{false, true} {
		step := fmt.Sprintf("daemon, keep_ike_port %v", keep)
		cfg := fmt.Sprintf(`config globals 'globals'
	option enabled '1'
	option mode 'auto'
	list lan_device '%s'
	list lan_device '%s'
	list wan_device '%s'

config pptp 'pptp'
	option enabled '1'

config l2tp 'l2tp'
	option enabled '1'

config ipsec 'ipsec'
	option enabled '1'
	option keep_ike_port '%s'
`, l.LANDevs[0], l.LANDevs[1], l.WANDev, map[bool]string{false: "0", true: "1"}[keep])
		if d == nil {
			d, err = l.StartDaemon(bin, cfg)
			if d != nil {
				dd := d
				t.Cleanup(func() {
					dd.Kill()
					if t.Failed() {
						t.Logf("daemon log:\n%s", dd.Log())
					}
				})
			}
		} else {
			err = d.Apply(cfg)
		}
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if st, _, err := d.Status(); err != nil || st.Datapath("ipsec") != "userspace" {
			t.Fatalf("%s: IPsec datapath %q, %v; want the ESP engine (userspace)", step, st.Datapath("ipsec"), err)
		}
		// The LAN's tunnel first: the router's IKE then shares its
		// address (and, with keep_ike_port, its port 500) towards the
		// same peer.
		lanTunnel(step)
		tunnel(step)
		if ping, err := l.Exec(lanHost.NS, "busybox", "ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", "10.99.3.1", "10.99.2.1"); err != nil {
			t.Errorf("%s: the LAN client's tunnel stopped once the router's came up: %v\n%s", step, err, ping)
		}
		lanIPsec(step)
		// The router's tunnel still carries traffic after the LAN's IPsec.
		if ping, err := l.Exec(l.Router, "busybox", "ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", "10.99.1.1", "10.99.2.1"); err != nil {
			t.Errorf("%s: the router's own tunnel stopped after LAN IPsec: %v\n%s", step, err, ping)
		}
	}
	// The engine saw the router's own IKE but keeps no session for it:
	// every session with the far peer is the LAN client's.
	_, raw, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Sessions []struct {
			Proto, Client, Server string
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("status: %v", err)
	}
	lanSessions := 0
	for _, s := range st.Sessions {
		if s.Server != "203.0.113.2" {
			continue
		}
		if s.Client != lanHost.Addr.String() {
			t.Errorf("a session with the far peer that is not the LAN client's: %+v", s)
		}
		lanSessions++
	}
	t.Logf("sessions with the far peer: %d, all the LAN client's", lanSessions)
}
