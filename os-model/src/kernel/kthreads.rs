//! Kernel threads (the migration thread, ksoftirqd) and the last steps of a CPU going down.

use super::Os;
use crate::config::OsDefect;
use crate::cpumask::LogicalCpu;
use crate::event::{EnqueueWhy, OsEvent, TaskId};
use crate::hotplug::CpuFlow;
use crate::hw::Cx;
use crate::irq::RESCHEDULE_VECTOR;
use crate::pcihp::PciFlow;
use crate::sched::{CpuLife, MigReq, TaskKind, TaskState, Work};
use sim_core::{SimDuration, SimTime};

impl Os {
    // ------------------------------------------------------------------ kernel threads

    pub(super) fn block(&mut self, t: SimTime, c: LogicalCpu, tid: TaskId) {
        self.tasks[tid.0 as usize].state = TaskState::Blocked;
        self.emit(t, OsEvent::Block { task: tid, cpu: c });
    }

    pub(super) fn softirq_work(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        cx: &mut Cx<'_>,
    ) {
        // Between two work items a kernel thread holds nothing: a quiescent state
        // (`cond_resched`).
        self.rcu_qs(*t, c, cx);
        let Some(w) = self.pcpu[c.index()].work.pop_front() else {
            self.block(*t, c, tid);
            self.schedule(t, c, cx);
            return;
        };
        *t += SimDuration::from_nanos(200);
        match w {
            Work::Wake(task) => self.wakeup(t, c, task, cx),
            Work::Balance => self.balance(t, c, cx),
            Work::Spawn => self.boot_spawn(t, c, cx),
            Work::Card { card, status } => {
                let hw = self.hw(c);
                let mut out = Vec::new();
                self.driver.bottom_half(t, card, hw, status, cx, &mut out);
                self.violations.extend(out);
                if !self.driver.cards()[card].active {
                    PciFlow::pci_card_gone(self, *t, card);
                }
            }
        }
    }

    /// One of the boot's worker tasks is created on `c` — if `c` is still active (read
    /// under RCU, like fork's placement); a CPU on its way offline hands the work to the
    /// least loaded active CPU instead (and tells it by IPI).
    pub(super) fn boot_spawn(&mut self, t: &mut SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let v = self.reader_begin(t, c, "spawn", cx);
        self.reader_use(t, c, v, c, cx);
        if self.loaded_maps(v).active.contains(c) {
            self.reader_end(*t, c);
            if self.spawn_user(t, c, None, cx).is_err() {
                self.stats.spawn_failures += 1;
            }
            return;
        }
        let active = self.loaded_maps(v).active.clone();
        let Some(to) = self.least_loaded(active.iter(), Some(c)) else {
            self.reader_end(*t, c);
            self.stats.spawn_failures += 1;
            return;
        };
        self.reader_use(t, c, v, to, cx);
        self.pcpu[to.index()].work.push_back(Work::Spawn);
        let k = self.pcpu[to.index()].ksoftirqd;
        self.wake_kthread(*t, to, k);
        self.start_ipis(c, v, "spawn", RESCHEDULE_VECTOR, vec![to], false);
    }

    /// Picks the CPU a waking task goes to: where it last ran if that CPU is active and
    /// allowed, else the waker's, else the least loaded allowed active CPU, else (affinity
    /// broken) any active CPU.
    pub(crate) fn select_task_rq(
        &self,
        tid: TaskId,
        v: u64,
        waker: LogicalCpu,
    ) -> Option<LogicalCpu> {
        let task = &self.tasks[tid.0 as usize];
        let maps = self.loaded_maps(v);
        let ok = |x: LogicalCpu| maps.active.contains(x) && task.affinity.contains(x);
        if ok(task.cpu) {
            return Some(task.cpu);
        }
        if ok(waker) {
            return Some(waker);
        }
        self.least_loaded(
            maps.active.iter().filter(|&x| task.affinity.contains(x)),
            None,
        )
        .or_else(|| self.least_loaded(maps.active.iter(), None))
    }

    /// The least loaded CPU of `cpus` other than `except` (lowest id on ties).
    pub(super) fn least_loaded(
        &self,
        cpus: impl Iterator<Item = LogicalCpu>,
        except: Option<LogicalCpu>,
    ) -> Option<LogicalCpu> {
        cpus.filter(|&x| Some(x) != except)
            .min_by_key(|x| (self.pcpu[x.index()].load(&self.tasks), x.0))
    }

    pub(super) fn wakeup(&mut self, t: &mut SimTime, c: LogicalCpu, tid: TaskId, cx: &mut Cx<'_>) {
        if self.tasks[tid.0 as usize].state != TaskState::Waking(c) {
            return;
        }
        let v = self.reader_begin(t, c, "wakeup", cx);
        let Some(target) = self.select_task_rq(tid, v, c) else {
            self.reader_end(*t, c);
            return;
        };
        self.reader_use(t, c, v, target, cx);
        self.stats.wakeups += 1;
        if target != self.tasks[tid.0 as usize].cpu {
            self.stats.wakeups_moved += 1;
        }
        self.enqueue(*t, tid, target, EnqueueWhy::Wakeup);
        if target != c && self.pcpu[target.index()].curr.is_none() {
            self.start_ipis(c, v, "wakeup", RESCHEDULE_VECTOR, vec![target], false);
        } else {
            self.reader_end(*t, c);
        }
    }

    pub(super) fn balance(&mut self, t: &mut SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let v = self.reader_begin(t, c, "load balance", cx);
        let maps = self.loaded_maps(v).clone();
        if !maps.active.contains(c) {
            self.reader_end(*t, c);
            return;
        }
        *t += SimDuration::from_nanos(50 * maps.active.weight() as u64);
        let mine = self.pcpu[c.index()].load(&self.tasks);
        let busiest = maps.active.iter().filter(|&x| x != c).max_by_key(|x| {
            (
                self.pcpu[x.index()].load(&self.tasks),
                std::cmp::Reverse(x.0),
            )
        });
        let Some(b) = busiest else {
            self.reader_end(*t, c);
            return;
        };
        if self.pcpu[b.index()].load(&self.tasks) < mine + 2 {
            self.reader_end(*t, c);
            return;
        }
        let candidate = self.pcpu[b.index()].rq.iter().copied().find(|&x| {
            let task = &self.tasks[x.0 as usize];
            task.affinity.contains(c) && !task.bound
        });
        let Some(task) = candidate else {
            self.reader_end(*t, c);
            return;
        };
        self.reader_use(t, c, v, b, cx);
        if self.has_defect(crate::config::OsDefect::BalancePullsDirectly) {
            // The defect: the softirq thread takes the task off the other runqueue itself.
            let by = self.pcpu[c.index()].ksoftirqd.unwrap_or(TaskId(u32::MAX));
            self.move_task(*t, task, b, c, by);
            self.stats.balance_moves += 1;
            self.reader_end(*t, c);
            return;
        }
        self.pcpu[b.index()]
            .mig
            .push_back(MigReq::Pull { task, to: c });
        let m = self.pcpu[b.index()].migration;
        self.wake_kthread(*t, b, m);
        self.start_ipis(c, v, "load balance", RESCHEDULE_VECTOR, vec![b], false);
    }

    /// The migration thread moves `tid` from `from`'s runqueue to `to`'s.
    pub(super) fn move_task(
        &mut self,
        t: SimTime,
        tid: TaskId,
        from: LogicalCpu,
        to: LogicalCpu,
        by: TaskId,
    ) {
        self.pcpu[from.index()].rq.retain(|&x| x != tid);
        self.pcpu[to.index()].rq.push_back(tid);
        let task = &mut self.tasks[tid.0 as usize];
        task.state = TaskState::Queued(to);
        task.migrations += 1;
        self.emit(
            t,
            OsEvent::Migrate {
                task: tid,
                from,
                to,
                by,
            },
        );
    }

    pub(super) fn migration_work(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        cx: &mut Cx<'_>,
    ) {
        let i = c.index();
        self.rcu_qs(*t, c, cx);
        let Some(&req) = self.pcpu[i].mig.front() else {
            self.block(*t, c, tid);
            self.schedule(t, c, cx);
            return;
        };
        match req {
            MigReq::Pull { task, to } => {
                self.pcpu[i].mig.pop_front();
                let v = self.reader_begin(t, c, "migrate", cx);
                let ok = self.tasks[task.0 as usize].state == TaskState::Queued(c)
                    && self.loaded_maps(v).active.contains(to)
                    && self.tasks[task.0 as usize].affinity.contains(to);
                if !ok {
                    self.reader_end(*t, c);
                    return;
                }
                self.reader_use(t, c, v, to, cx);
                *t += self.cfg.migrate_cost;
                self.move_task(*t, task, c, to, tid);
                self.stats.balance_moves += 1;
                if self.pcpu[to.index()].curr.is_none() {
                    self.start_ipis(c, v, "migrate", RESCHEDULE_VECTOR, vec![to], false);
                } else {
                    self.reader_end(*t, c);
                }
            }
            MigReq::Evacuate { op } => {
                let user = self.pcpu[i]
                    .rq
                    .iter()
                    .copied()
                    .find(|t| self.tasks[t.0 as usize].kind == TaskKind::User);
                let Some(task) = user else {
                    self.pcpu[i].mig.pop_front();
                    CpuFlow::hp_signal(self, *t, op);
                    return;
                };
                let v = self.reader_begin(t, c, "evacuate", cx);
                let maps = self.loaded_maps(v).clone();
                let allowed = self.tasks[task.0 as usize].affinity.clone();
                let to = self
                    .least_loaded(maps.active.iter().filter(|&x| allowed.contains(x)), Some(c))
                    .or_else(|| self.least_loaded(maps.active.iter(), Some(c)));
                let Some(to) = to else {
                    // Nowhere to go: leave it (the request is refused before this happens).
                    self.reader_end(*t, c);
                    self.pcpu[i].mig.pop_front();
                    CpuFlow::hp_signal(self, *t, op);
                    return;
                };
                self.reader_use(t, c, v, to, cx);
                *t += self.cfg.migrate_cost;
                self.move_task(*t, task, c, to, tid);
                self.stats.evacuations += 1;
                CpuFlow::hp_count_migrated(self, op);
                if self.pcpu[to.index()].curr.is_none() {
                    self.start_ipis(c, v, "evacuate", RESCHEDULE_VECTOR, vec![to], false);
                } else {
                    self.reader_end(*t, c);
                }
            }
            MigReq::Takeover { op, to } => {
                self.pcpu[i].mig.pop_front();
                let timers: Vec<(SimTime, TaskId)> = std::mem::take(&mut self.pcpu[i].timers)
                    .into_iter()
                    .collect();
                let moved: Vec<TaskId> = timers.iter().map(|x| x.1).collect();
                for (when, task) in timers {
                    self.tasks[task.0 as usize].state = TaskState::Sleeping {
                        timer_cpu: to,
                        until: when,
                    };
                    self.pcpu[to.index()].timers.insert((when, task));
                }
                let work: Vec<Work> = self.pcpu[i].work.drain(..).collect();
                let mut moved = moved;
                for w in &work {
                    if let Work::Wake(task) = *w {
                        self.tasks[task.0 as usize].state = TaskState::Waking(to);
                        moved.push(task);
                    }
                }
                let nwork = work.iter().filter(|w| **w != Work::Balance).count();
                self.pcpu[to.index()]
                    .work
                    .extend(work.into_iter().filter(|w| *w != Work::Balance));
                *t += SimDuration::from_nanos(100 * (moved.len() + nwork) as u64);
                CpuFlow::hp_count_work(self, op, moved.len(), nwork);
                if !moved.is_empty() {
                    self.emit(
                        *t,
                        OsEvent::TimersMoved {
                            from: c,
                            to,
                            tasks: moved,
                        },
                    );
                }
                if nwork > 0 {
                    let k = self.pcpu[to.index()].ksoftirqd;
                    self.wake_kthread(*t, to, k);
                    let v = self.reader_begin(t, c, "takeover", cx);
                    self.start_ipis(c, v, "takeover", RESCHEDULE_VECTOR, vec![to], false);
                }
                CpuFlow::hp_signal(self, *t, op);
            }
            MigReq::Park { op } => {
                self.pcpu[i].mig.pop_front();
                if let Some(k) = self.pcpu[i].ksoftirqd {
                    self.pcpu[i].kq.retain(|&x| x != k);
                    self.pcpu[i].rq.retain(|&x| x != k);
                    self.tasks[k.0 as usize].state = TaskState::Parked;
                    self.emit(
                        *t,
                        OsEvent::Park {
                            task: k,
                            cpu: c,
                            parked: true,
                        },
                    );
                }
                self.tasks[tid.0 as usize].state = TaskState::Parked;
                self.emit(
                    *t,
                    OsEvent::Park {
                        task: tid,
                        cpu: c,
                        parked: true,
                    },
                );
                CpuFlow::hp_signal(self, *t, op);
                self.schedule(t, c, cx);
            }
        }
    }

    // ------------------------------------------------------------------ dying

    /// The last thing a CPU going down does: take what is pending, leave RCU, flush and
    /// invalidate its cache, HALT.
    pub(super) fn die(&mut self, now: SimTime, c: LogicalCpu, op: u32, cx: &mut Cx<'_>) {
        let i = c.index();
        let mut t = now;
        self.pcpu[i].dying = None;
        let idle = self.idle_mask();
        let mut ev = Vec::new();
        let cbs = self.rcu.set_watched(t, c, false, &idle, &mut ev);
        self.events.extend(ev);
        let hw = self.hw(c);
        let (lines, dirty) = if self.defects.has(OsDefect::SkipCacheFlushOnCpuRemove) {
            (0, 0)
        } else {
            let r = cx.p.pal_cache_flush(t, hw, cx.probe);
            match r {
                Ok(f) => {
                    t += f.latency;
                    (f.lines, f.dirty)
                }
                Err(_) => (0, 0),
            }
        };
        let flushed_at = t;
        let _ = cx.p.pal_halt(t, hw, cx.probe);
        t += SimDuration::from_nanos(100);
        self.pcpu[i].life = CpuLife::Dead;
        self.pcpu[i].ticking = false;
        self.emit(
            t,
            OsEvent::CpuHalted {
                cpu: c,
                flushed_lines: lines,
                dirty_lines: dirty,
            },
        );
        let by = self.any_running_cpu(cx.p);
        self.run_callbacks(t, by, cbs, cx);
        CpuFlow::hp_died(self, op, flushed_at, t, lines, dirty);
    }
}
