//! The steps of CPU hot-remove and hot-add: one arm per step, each returning what comes
//! next.

use crate::hw::Cx;
use sim_core::SimTime;

use super::{CpuFlow, HotplugError, Wait};
use crate::config::OsDefect;
use crate::cpumask::LogicalCpu;
use crate::event::{OsEvent, Step};
use crate::irq;
use crate::kernel::Os;
use crate::ops::Next;
use crate::rcu::Callback;
use crate::sched::{CpuLife, MigReq};

impl CpuFlow {
    /// Sends a reschedule IPI from `from` to `to` at once (a reader of the current maps for
    /// an instant).
    pub(crate) fn hp_ipi(
        os: &mut Os,
        t: &mut SimTime,
        from: LogicalCpu,
        to: LogicalCpu,
        cx: &mut Cx<'_>,
    ) {
        let v = os.reader_begin(t, from, "hotplug", cx);
        os.reader_use(t, from, v, to, cx);
        os.send_ipi(*t, from, to, irq::RESCHEDULE_VECTOR, cx);
        os.reader_end(*t, from);
    }

    /// Asks `c`'s migration thread for `req` and wakes it.
    pub(crate) fn hp_ask_migration(
        os: &mut Os,
        t: &mut SimTime,
        controller: LogicalCpu,
        c: LogicalCpu,
        req: MigReq,
        cx: &mut Cx<'_>,
    ) {
        os.pcpu[c.index()].mig.push_back(req);
        let m = os.pcpu[c.index()].migration;
        os.wake_kthread(*t, c, m);
        CpuFlow::hp_ipi(os, t, controller, c, cx);
    }

    pub(crate) fn step(os: &mut Os, now: SimTime, step: Step, cx: &mut Cx<'_>) -> Next<CpuFlow> {
        let Some(cur) = os.hp.running() else {
            return Next::Done(now, String::new());
        };
        let (op, c, ctl) = (cur.report.id, cur.report.cpu, cur.report.controller);
        // The step's accesses happen at its start; its bookkeeping cost comes after.
        let mut t = now;
        match step {
            Step::MarkInactive => {
                let mut maps = os.cur_maps().clone();
                maps.active.clear(c);
                let note = format!("active {}", maps.active);
                match os.publish_maps(&mut t, ctl, maps, cx) {
                    Ok(old) => {
                        os.call_rcu(t, ctl, Callback::FreeMaps(old), cx);
                        os.call_rcu(t, ctl, Callback::Wake(op), cx);
                        Next::Wait(Wait::GracePeriod, note)
                    }
                    Err(e) => Next::Done(t, e.to_string()),
                }
            }
            Step::MigrateTasks => {
                if os.has_defect(OsDefect::SkipTaskMigration) {
                    return Next::Done(t, "skipped (defect skip_task_migration)".into());
                }
                let n = os.pcpu[c.index()].load(&os.tasks);
                CpuFlow::hp_ask_migration(os, &mut t, ctl, c, MigReq::Evacuate { op }, cx);
                Next::Wait(Wait::Cpu, format!("{n} user tasks on its runqueue"))
            }
            Step::MigrateIrqs => {
                if os.has_defect(OsDefect::SkipIrqReroute) {
                    let n = os.irqs.routed_to(c).len();
                    return Next::Done(
                        t,
                        format!("skipped (defect skip_irq_reroute): {n} IRQs still on {c}"),
                    );
                }
                let n = CpuFlow::migrate_irqs(os, &mut t, c, ctl, cx);
                if let Some(cur) = os.hp.running_mut() {
                    cur.report.irqs_rerouted = n;
                }
                Next::Done(t, format!("{n} IRQs re-routed"))
            }
            Step::MigrateWork => {
                CpuFlow::hp_ask_migration(os, &mut t, ctl, c, MigReq::Takeover { op, to: ctl }, cx);
                Next::Wait(Wait::Cpu, format!("timers and softirq work to {ctl}"))
            }
            Step::StopKthreads => {
                CpuFlow::hp_ask_migration(os, &mut t, ctl, c, MigReq::Park { op }, cx);
                Next::Wait(Wait::Cpu, "ksoftirqd and migration thread parked".into())
            }
            Step::PublishOffline => {
                let mut maps = os.cur_maps().clone();
                maps.online.clear(c);
                maps.active.clear(c);
                let note = format!("online {}", maps.online);
                match os.publish_maps(&mut t, ctl, maps, cx) {
                    Ok(old) => {
                        // The defect free_published_maps frees the new version instead.
                        let old = if os.has_defect(OsDefect::FreePublishedMaps) {
                            os.maps_version_now()
                        } else {
                            old
                        };
                        if os.has_defect(OsDefect::SkipRcuGracePeriod) {
                            os.free_maps(&mut t, old, ctl, cx);
                        } else {
                            os.call_rcu(t, ctl, Callback::FreeMaps(old), cx);
                        }
                        Next::Done(t, note)
                    }
                    Err(e) => Next::Done(t, e.to_string()),
                }
            }
            Step::GracePeriod => {
                if os.has_defect(OsDefect::SkipRcuGracePeriod) {
                    return Next::Done(now, "skipped (defect skip_rcu_grace_period)".into());
                }
                os.call_rcu(now, ctl, Callback::Wake(op), cx);
                Next::Wait(Wait::GracePeriod, "synchronize_rcu".into())
            }
            Step::FlushCache => {
                os.pcpu[c.index()].dying = Some(op);
                os.kick(c, now);
                Next::Wait(Wait::Died, String::new())
            }
            Step::Halt => Next::Done(now, "halted with the flush".into()),
            Step::Eject => {
                let path = os.pcpu[c.index()].path.clone();
                let (gone, note) = os.eject(&mut t, ctl, &path, "the processor", cx);
                if gone {
                    os.present.clear(c);
                    os.pcpu[c.index()].life = CpuLife::NotPresent;
                }
                Next::Done(t, note)
            }
            Step::Wake => {
                let dest = os.pcpu[c.index()].lsapic;
                match cx.p.wake_cpu(now, os.hw(ctl), dest, cx.probe) {
                    Ok(_) => {
                        os.pcpu[c.index()].life = CpuLife::Coming;
                        Next::Done(t, format!("woken by {ctl}"))
                    }
                    Err(e) => Next::Fail(
                        now,
                        HotplugError::WakeFailed {
                            cpu: c.0,
                            reason: e.to_string(),
                        },
                    ),
                }
            }
            Step::InitCpu => {
                os.init_cpu(&mut t, c, cx);
                Next::Done(
                    t.max(now + os.config().init_cost),
                    "idle task, timer, interrupts, per-CPU area, RCU".into(),
                )
            }
            Step::StartKthreads => {
                os.start_kthreads(t, c);
                Next::Done(t, format!("migration/{0}, ksoftirqd/{0}", c.0))
            }
            Step::PublishOnline => {
                let mut maps = os.cur_maps().clone();
                maps.online.set(c);
                let note = format!("online {}", maps.online);
                match os.publish_maps(&mut t, c, maps, cx) {
                    Ok(old) => {
                        os.call_rcu(t, c, Callback::FreeMaps(old), cx);
                        Next::Done(t, note)
                    }
                    Err(e) => Next::Done(t, e.to_string()),
                }
            }
            Step::MarkActive => {
                let mut maps = os.cur_maps().clone();
                maps.active.set(c);
                let note = format!("active {}", maps.active);
                match os.publish_maps(&mut t, ctl, maps, cx) {
                    Ok(old) => {
                        os.call_rcu(t, ctl, Callback::FreeMaps(old), cx);
                        os.kick(c, t);
                        Next::Done(t, note)
                    }
                    Err(e) => Next::Done(t, e.to_string()),
                }
            }
        }
    }

    /// Re-routes every IRQ whose destination is `c` to an active CPU (its affinity if it
    /// can, any active CPU if not), reprogramming the IO SAPIC entries as `ctl`.
    pub(crate) fn migrate_irqs(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        ctl: LogicalCpu,
        cx: &mut Cx<'_>,
    ) -> u32 {
        let list = os.irqs.routed_to(c);
        let hw = os.hw(ctl);
        let mut n = 0;
        for i in list {
            let v = os.reader_begin(t, ctl, "irq affinity", cx);
            let maps = os.loaded_maps(v).clone();
            let d = os.irqs.descs()[i].clone();
            let count = |x: LogicalCpu| os.irqs.descs().iter().filter(|e| e.target == x).count();
            let target = maps
                .active
                .iter()
                .filter(|&x| x != c && d.affinity.contains(x))
                .min_by_key(|&x| (count(x), x.0))
                .or_else(|| maps.active.iter().find(|&x| x != c));
            let Some(to) = target else {
                os.reader_end(*t, ctl);
                continue;
            };
            os.reader_use(t, ctl, v, to, cx);
            let dest = os.pcpu[to.index()].lsapic;
            let vector = if os.has_defect(OsDefect::RerouteWrongVector) {
                // The defect: the next IRQ's vector (off by one in the table).
                let descs = os.irqs.descs();
                descs[(i + 1) % descs.len()].vector
            } else {
                d.vector
            };
            irq::program_rte(cx, t, hw, d.sapic_base, d.entry, vector, dest, false);
            os.reader_end(*t, ctl);
            if let Some(e) = os.irqs.get_mut(i) {
                e.target = to;
                e.rerouted += 1;
            }
            os.emit(
                *t,
                OsEvent::IrqRouted {
                    gsi: d.gsi,
                    vector: d.vector,
                    cpu: to,
                    from: Some(c),
                },
            );
            if os.has_defect(OsDefect::RetriggerMovedIrqs) {
                // The defect: a resend with nothing pending to resend.
                os.send_ipi(*t, ctl, to, d.vector, cx);
            }
            if os.has_defect(OsDefect::ReplayLastIrqOnMove) && !d.last_served.is_empty() {
                // The defect: the last interrupt served, handled again by hand.
                os.device_interrupt(t, ctl, d.vector, d.last_served.clone(), cx);
            }
            n += 1;
        }
        n
    }
}
