package daemon

import (
	"errors"
	"time"
)

// Repair re-applies the last good plan if our table is gone or damaged.
func (d *Daemon) Repair() {
	d.mu.Lock()
	l := d.applied
	d.mu.Unlock()
	if l == nil || l.Plan.Empty() {
		return
	}
	d.fwMu.Lock()
	defer d.fwMu.Unlock()
	// Deleted, flushed or cut down: anything but the planned state.
	if d.k.Firewall.Intact(l.Plan) {
		return
	}
	if now := time.Now(); now.Sub(d.repairWindow) > 10*time.Second {
		d.repairWindow, d.repairsInWin = now, 0
	}
	if d.repairsInWin >= 5 {
		if !d.repairStopped {
			d.repairStopped = true
			err := errors.New("daemon: table keeps differing from the plan after 5 repairs in 10 s; repairs stop until the next reload")
			d.opts.Log.Error("repair stopped", "err", err)
			d.setErr(err)
		}
		return
	}
	d.repairsInWin++
	if err := d.k.Firewall.Apply(l.Plan); err != nil {
		d.opts.Log.Error("repair failed", "err", err)
		d.setErr(err)
		return
	}
	d.mu.Lock()
	d.repairs++
	d.appliedAt = time.Now()
	d.mu.Unlock()
	d.opts.Log.Info("table was deleted or changed from under us, restored", "table", "inet "+tableName)
}
