package daemon

import "github.com/vpn-passthrough/vpn-passthrough/src/loader"

// fw4Table is OpenWrt's firewall table (inet fw4). Our table only drops,
// counts, queues and assigns helpers; NAT and the forward policy are fw4's.
// Without it LAN traffic is neither NATed nor filtered, so its loss must be
// said aloud.
const fw4Table = "fw4"

// fw4State follows table inet fw4. Its absence is reported only once it has
// been seen: plain Linux (the labs, a router with another firewall) never
// has it.
type fw4State struct {
	seen, gone bool
	// markWarning says fw4's forward chain does not accept the engines'
	// mark ("" if it does, or nothing to check).
	markWarning string
}

// fw4Gone is the warning status shows while fw4's table is missing.
const fw4Gone = "fw4: table inet fw4 is gone (firewall stopped, or `nft flush ruleset`): LAN traffic is neither NATed " +
	"nor filtered by fw4 until `/etc/init.d/firewall restart`; vpn-passthrough keeps its own blocks and guards"

// checkFW4 notes whether fw4's table exists and logs each change.
func (d *Daemon) checkFW4() {
	ok, err := d.k.Firewall.Exists(fw4Table)
	if err != nil {
		return // a netlink error is reported by whoever hits it next
	}
	d.mu.Lock()
	st := d.fw4
	switch {
	case ok:
		d.fw4.seen, d.fw4.gone = true, false
	case st.seen:
		d.fw4.gone = true
	}
	d.mu.Unlock()
	switch {
	case ok && st.gone:
		d.opts.Log.Info("fw4's table inet fw4 is back")
	case !ok && st.seen && !st.gone:
		d.opts.Log.Error(fw4Gone)
	}
}

// followOffload re-plans when fw4's forward chain no longer reads as it did
// for the applied plan: fw4 (re)loaded with or without the package's
// exemption, or flow offloading came or went. The planner decides what
// that means for the datapaths (plan/offload.go); fw4 reloads replace its
// table without always sending us SIGHUP.
func (d *Daemon) followOffload(l *loader.Loaded) {
	if l.Plan.Empty() {
		return
	}
	c := d.k.Firewall.FW4Offload()
	if l.Plan.Offload.Same(c) {
		return
	}
	d.opts.Log.Info("fw4's forward chain changed for flow offloading, planning again",
		"was", l.Plan.Offload.State, "offload_rule", c.Offload, "exemption", c.Exempt)
	d.reloadAndTell("fw4")
}
