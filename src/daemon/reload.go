package daemon

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/vpn-passthrough/vpn-passthrough/src/ct"
	"github.com/vpn-passthrough/vpn-passthrough/src/jsonenc"
	"github.com/vpn-passthrough/vpn-passthrough/src/loader"
	"github.com/vpn-passthrough/vpn-passthrough/src/plan"
)

const tableName = plan.TableName

// Reload loads, plans and applies. On any error the previous state stays:
// the table as it was, and the engines it needs.
func (d *Daemon) Reload(why string) error {
	log := d.opts.Log
	d.fwMu.Lock()
	defer d.fwMu.Unlock()
	d.storm, d.repairsInWin = false, 0
	l, err := d.k.Load()
	if err != nil {
		log.Error("config refused, keeping the last good state", "trigger", why, "err", err)
		d.setErr(err)
		return err
	}
	for _, w := range l.Warnings {
		log.Warn("config warning", "where", w.String())
	}
	for _, w := range l.Plan.Warnings {
		log.Warn("limitation", "detail", w)
	}
	d.mu.Lock()
	prev := d.applied
	d.mu.Unlock()
	d.checkFW4()
	if prev != nil && samePlan(prev.Plan, l.Plan) && d.differs(l.Plan) == "" && d.differs(l.Plan.Guard()) == "" {
		// A HUP with nothing new (WAN events, fw4 reloads): rebuilding the
		// table would only drop packets waiting in our queues.
		if err := updateEngines(d.engines, l); err != nil {
			log.Error("engine update failed", "err", err)
			d.setErr(err)
			return err
		}
		d.mu.Lock()
		d.applied = l
		d.lastErr = ""
		d.mu.Unlock()
		d.checkFW4Mark(l) // fw4 reloads send SIGHUP: did it take our include?
		// Same message as a real apply: the state in force is the plan.
		log.Info("applied", "trigger", why, "changed", false, "table", "inet "+tableName)
		return nil
	}
	if err := d.applyWithEngines(l); err != nil {
		log.Error("apply failed, keeping the last good state", "trigger", why, "err", err)
		d.setErr(err)
		if prev != nil {
			// Bring back the engines the last good plan needs (stale
			// ones were stopped to free their queue numbers).
			if rerr := d.applyWithEngines(prev); rerr != nil {
				log.Error("restoring the last good state failed", "err", rerr)
			}
		}
		return err
	}
	d.verifyApplied(l)
	d.followMark(l)
	d.flushBlocked(prev, l)
	d.mu.Lock()
	d.applied, d.appliedAt = l, time.Now()
	d.lastErr = ""
	d.mu.Unlock()
	for _, dec := range l.Plan.Decisions {
		log.Info("protocol", "proto", dec.Proto, "datapath", dec.Datapath, "reason", dec.Reason)
	}
	log.Info("applied", "trigger", why, "changed", true, "table", "inet "+tableName,
		"lan", l.Plan.Topology.LAN, "wan", l.Plan.Topology.WAN)
	return nil
}

// applyWithEngines stops engines the plan no longer wants (freeing their
// queue numbers), starts the new ones before their queue rules exist, applies
// the table, and only then hands the new config to the engines it kept.
func (d *Daemon) applyWithEngines(l *loader.Loaded) error {
	keep, stale := splitEngines(d.engines, l.Plan.Queues)
	for _, r := range stale {
		r.stop()
		d.opts.Log.Info("engine stopped", "engine", r.q.Engine, "queue", r.q.Num)
	}
	d.setEngines(keep)
	started, err := d.startEngines(l, keep)
	if err != nil {
		return err
	}
	if err := d.k.Firewall.Apply(l.Plan); err != nil {
		for _, r := range started {
			r.stop()
		}
		return err
	}
	d.applyGuard(l.Plan)
	all := map[string]*running{}
	for k, r := range keep {
		all[k] = r
	}
	for _, r := range started {
		all[r.q.Engine] = r
	}
	d.setEngines(all)
	return updateEngines(keep, l)
}

// flushBlocked deletes the conntrack entries of protocols that were just
// switched off: with fw4 flow offloading, established flows skip the forward
// hook and so our drop rules; without their conntrack entry they must start
// over, and their first packet meets the block.
func (d *Daemon) flushBlocked(prev, next *loader.Loaded) {
	var protos []plan.Proto
	for _, dec := range next.Plan.Decisions {
		if dec.Datapath != plan.PathBlocked {
			continue
		}
		if prev != nil && prev.Plan.Decision(dec.Proto).Datapath == plan.PathBlocked {
			continue
		}
		protos = append(protos, dec.Proto)
	}
	if len(protos) == 0 {
		return
	}
	n, err := d.k.Conntrack.DeleteMatching(func(f ct.Flow) bool {
		t, ok := plan.Classify(f.Orig.Proto, f.Orig.DstPort)
		return ok && slices.Contains(protos, t.Proto)
	})
	if err != nil {
		d.opts.Log.Warn("could not flush conntrack entries of blocked protocols", "err", err)
		return
	}
	d.opts.Log.Info("flushed conntrack entries of blocked protocols", "protos", protos, "entries", n)
}

// differs says how our table differs from p, "" if it does not: exactly
// (Firewall.Diff), or by names and counts on a kernel whose read-back the
// exact comparison could not confirm right after an apply.
func (d *Daemon) differs(p *plan.Plan) string {
	if !d.coarse {
		return d.k.Firewall.Diff(p)
	}
	if d.k.Firewall.Intact(p) {
		return ""
	}
	return "chains, rules, set elements or counters missing or added"
}

// verifyApplied checks, right after an apply, that the exact comparison
// sees the table as the plan. If it does not (an expression this kernel
// reads back in another form), repairs would loop: fall back to the coarse
// check and say so.
func (d *Daemon) verifyApplied(l *loader.Loaded) {
	if d.coarse || l.Plan.Empty() {
		return
	}
	if diff := d.k.Firewall.Diff(l.Plan); diff != "" && d.k.Firewall.Intact(l.Plan) {
		d.coarse = true
		d.opts.Log.Warn("cannot compare our table rule by rule on this kernel; watching names and counts only", "detail", diff)
	}
}

// applyGuard installs the plan's guard table (plan.Guard: a second copy of
// its drops). If the kernel refuses it, the old guard goes too: stale drops
// must not block a protocol just switched on. The main table still holds
// every drop.
func (d *Daemon) applyGuard(p *plan.Plan) {
	g := p.Guard()
	if err := d.k.Firewall.Apply(g); err != nil {
		d.opts.Log.Error("guard table refused; the main table alone holds the blocks", "table", "inet "+g.Table, "err", err)
		d.setErr(fmt.Errorf("guard table: %w", err))
		if rerr := d.k.Firewall.Remove(g.Table); rerr != nil {
			d.opts.Log.Error("removing the stale guard table failed", "err", rerr)
		}
	}
}

// samePlan reports whether two plans are the same, compared by their JSON:
// reflect.DeepEqual costs ~8 KB of the mipsel binary and src/jsonenc is
// linked anyway (status, state files). Plans have only exported fields and
// no funcs or custom marshalers, so every field shows (TestSamePlanSeesEveryField).
// A nil and an empty list differ (null and []), which costs at most one
// needless apply.
func samePlan(a, b *plan.Plan) bool {
	ja, errA := jsonenc.Marshal(a)
	jb, errB := jsonenc.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
