package daemon

import (
	"fmt"
	"slices"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

// Repair bounds: up to repairBurst full repairs within repairWindow happen at
// once; beyond that (a repair storm: something keeps changing our table) the
// daemon repairs the full table at most once per stormInterval and in
// between puts back the plan's drops alone, at once. It never gives up: a
// switched-off protocol's block is back within one event and one apply.
const (
	repairBurst          = 5
	repairWindow         = 10 * time.Second
	defaultStormInterval = time.Second
)

// keepDrops puts the plan's drops back at once while a full repair must
// wait: backing off never leaves a block absent. It compares the table with
// the drops alone, so its own applies cannot feed a loop.
func (d *Daemon) keepDrops(p *plan.Plan, wait time.Duration) time.Duration {
	drops := p.Drops()
	if d.differs(drops) == "" {
		return wait
	}
	if err := d.k.Firewall.Apply(drops); err != nil {
		d.opts.Log.Error("applying the blocks alone failed", "err", err)
		d.setErr(fmt.Errorf("repair: the blocks alone: %w", err))
		return min(wait, d.stormInterval)
	}
	if !d.dropsOnly {
		d.opts.Log.Warn("repair storm: only the blocks and guards are in place until the next full repair", "in", wait.Round(time.Millisecond))
	}
	d.dropsOnly = true
	return wait
}

// Repair re-applies the last good plan if our table is gone or differs from
// it in any way (deleted, flushed, elements removed, foreign rules added).
// If the kernel refuses the full plan it applies the plan's drops alone
// (plan.Drops), so a fault never leaves a block absent. It returns how long
// to wait before calling it again when it backed off or fell back, else 0.
func (d *Daemon) Repair() time.Duration {
	d.mu.Lock()
	l := d.applied
	d.mu.Unlock()
	if l == nil || l.Plan.Empty() {
		return 0
	}
	d.fwMu.Lock()
	defer d.fwMu.Unlock()
	// The guard first: it is small, and while it stands the blocks hold
	// whatever state the main table is in. It is bounded by the event
	// rate alone; its applies cannot loop (it is compared with itself).
	if g := l.Plan.Guard(); d.differs(g) != "" {
		if err := d.k.Firewall.Apply(g); err != nil {
			d.opts.Log.Error("guard table repair failed", "err", err)
			d.setErr(fmt.Errorf("guard table: %w", err))
		} else {
			d.opts.Log.Info("guard table was changed from under us, restored", "table", "inet "+g.Table)
		}
	}
	diff := d.differs(l.Plan)
	if diff == "" {
		if d.dropsOnly {
			d.dropsOnly = false
			d.opts.Log.Info("full table back in place", "table", "inet "+tableName)
		}
		return 0
	}
	now := time.Now()
	if now.Sub(d.repairWindowStart) > repairWindow {
		d.repairWindowStart, d.repairsInWin = now, 0
		d.storm = false
	}
	if d.repairsInWin >= repairBurst {
		if !d.storm {
			d.storm = true
			err := fmt.Errorf("daemon: our table was changed from outside more than %d times in %s; repairing at most once every %s", repairBurst, repairWindow, d.stormInterval)
			d.opts.Log.Error("repair storm", "err", err)
			d.setErr(err)
		}
		if wait := d.lastRepair.Add(d.stormInterval).Sub(now); wait > 0 {
			return d.keepDrops(l.Plan, wait)
		}
	}
	d.repairsInWin++
	d.lastRepair = now
	if err := d.k.Firewall.Apply(l.Plan); err != nil {
		d.opts.Log.Error("repair failed, keeping the blocks alone", "err", err)
		d.setErr(fmt.Errorf("repair: %w", err))
		if derr := d.k.Firewall.Apply(l.Plan.Drops()); derr != nil {
			d.opts.Log.Error("applying the blocks alone failed too", "err", derr)
			d.setErr(fmt.Errorf("repair: %w; the blocks alone: %w", err, derr))
		} else {
			d.dropsOnly = true
		}
		return d.stormInterval
	}
	d.dropsOnly = false
	d.mu.Lock()
	d.repairs++
	d.appliedAt = time.Now()
	d.mu.Unlock()
	d.opts.Log.Info("table was deleted or changed from under us, restored", "table", "inet "+tableName, "change", diff)
	return 0
}

// quietElements reports element changes that are not a change of our
// tables, so they cost no Diff: the engines' maps of the applied plan (their
// elements are the engines' business, and they change several times a
// second under load) and any set of fw4's table (watched for its existence
// and our include's rule). Elements of our other sets (wan_devs, lan_devs,
// servers) and of the guard table count: a foreign deletion is repaired.
func (d *Daemon) quietElements(table, set string) bool {
	if table == fw4Table {
		return true
	}
	if table != tableName {
		return false
	}
	d.mu.Lock()
	l := d.applied
	d.mu.Unlock()
	return l != nil && slices.ContainsFunc(l.Plan.Maps, func(m plan.Map) bool { return m.Name == set })
}
