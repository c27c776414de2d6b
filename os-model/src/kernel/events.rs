//! The kernel's event loop: what runs on each CPU next, and the events of the kernel's queue.

use super::{CONTEXT_SWITCH, Os, OsEv};
use crate::cpumask::{CpuMask, LogicalCpu};
use crate::event::{EnqueueWhy, OsEvent, TaskId};
use crate::hotplug::CpuFlow;
use crate::hw::Cx;
use crate::hw::store;
use crate::mm::kernel::Mm;
use crate::policy::Policies;
use crate::sched::{CpuLife, Task, TaskKind, TaskState};
use acpi_model::{Platform, PlatformProbe};
use sim_core::{SimDuration, SimTime, Violation};

impl Os {
    // ------------------------------------------------------------------ the event loop

    /// When the OS next has something to do.
    pub fn next_time(&mut self) -> Option<SimTime> {
        self.q.peek_time()
    }

    /// Runs the OS's next event.
    pub fn step(&mut self, p: &mut Platform, probe: &mut PlatformProbe) {
        let cx = &mut Cx { p, probe };
        let Some((now, ev)) = self.q.pop() else {
            return;
        };
        match ev {
            OsEv::Run(c) => self.run(now, c, cx),
            OsEv::Tick(c) => self.tick(now, c, cx),
            OsEv::Op(ev) => self.op_event(ev, now, cx),
            OsEv::Resume { op, grace } => CpuFlow::hp_wait_over(self, now, op, grace, cx),
            OsEv::Io(tag) => Mm::io_failed(self, now, tag, cx),
            OsEv::IoDeadline(tag) => Mm::io_deadline(self, now, tag, cx),
            OsEv::RasPoll => Policies::ras_poll(self, now, cx),
            OsEv::PowerPoll => Policies::power_poll(self, now),
        }
        self.drain_phys_log(now);
    }

    /// After the hardware raised interrupts: CPUs with an interrupt pending take it.
    pub fn interrupts_raised(&mut self, now: SimTime, p: &Platform) {
        // Nothing to look at unless the hardware delivered an interrupt since the last time.
        let delivered = p.interrupts_delivered();
        if delivered == self.seen_deliveries {
            return;
        }
        self.seen_deliveries = delivered;
        for i in 0..self.nr {
            let pc = &self.pcpu[i];
            if pc.life != CpuLife::Up {
                continue;
            }
            let pending = pc.hw.is_some_and(|h| p.interrupt_pending(h));
            if pending {
                self.kick(LogicalCpu(i as u32), now);
            }
        }
    }

    /// Takes the OS events emitted since the last call.
    pub fn take_events(&mut self) -> Vec<(SimTime, OsEvent)> {
        std::mem::take(&mut self.events)
    }

    /// Takes the driver's data-check violations.
    pub fn take_violations(&mut self) -> Vec<Violation> {
        std::mem::take(&mut self.violations)
    }

    pub(super) fn run(&mut self, now: SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let i = c.index();
        self.pcpu[i].next_run = None;
        if !matches!(self.pcpu[i].life, CpuLife::Up | CpuLife::Coming) || !self.hw_running(c, cx.p)
        {
            // A halted CPU executes nothing, whatever the OS believes.
            return;
        }
        let mut t = now;
        self.take_interrupts(&mut t, c, cx);
        // The dying CPU halts once it is out of any kernel operation (it never stops inside
        // a read-side section).
        if let Some(op) = self.pcpu[i].dying.filter(|_| self.pcpu[i].op.is_none()) {
            self.die(t, c, op, cx);
            return;
        }
        if self.pcpu[i].op.is_some() {
            self.continue_op(&mut t, c, cx);
            return;
        }
        let curr_runnable = self.pcpu[i]
            .curr
            .is_some_and(|tid| matches!(self.tasks[tid.0 as usize].state, TaskState::Running(_)));
        if self.pcpu[i].need_resched || !curr_runnable {
            self.schedule(&mut t, c, cx);
        }
        let Some(tid) = self.pcpu[i].curr else {
            // Idle: a quiescent state; wait for an interrupt or a wakeup.
            self.busy_until[i] = t;
            self.rcu_qs(t, c, cx);
            return;
        };
        match self.tasks[tid.0 as usize].kind {
            TaskKind::User => self.user_burst(&mut t, c, tid, cx),
            TaskKind::Migration(_) => self.migration_work(&mut t, c, tid, cx),
            TaskKind::Ksoftirqd(_) => self.softirq_work(&mut t, c, tid, cx),
        }
        self.finish_step(c, now, t);
    }

    /// The step on `c` that began at `now` ended at `t`: run again then.
    pub(super) fn finish_step(&mut self, c: LogicalCpu, now: SimTime, t: SimTime) {
        let end = t.max(now + SimDuration::from_nanos(1));
        self.busy_until[c.index()] = end;
        let pc = &self.pcpu[c.index()];
        if pc.curr.is_some() || pc.op.is_some() || !pc.kq.is_empty() || !pc.rq.is_empty() {
            self.kick(c, end);
        }
    }

    pub(super) fn schedule(&mut self, t: &mut SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let i = c.index();
        self.pcpu[i].need_resched = false;
        if let Some(prev) = self.pcpu[i].curr.take() {
            let task = &mut self.tasks[prev.0 as usize];
            if task.state == TaskState::Running(c) {
                task.state = TaskState::Queued(c);
                if task.kind.is_stopper() {
                    self.pcpu[i].kq.push_back(prev);
                } else {
                    self.pcpu[i].rq.push_back(prev);
                }
            }
        }
        let next = {
            let pc = &mut self.pcpu[i];
            pc.kq.pop_front().or_else(|| pc.rq.pop_front())
        };
        if let Some(n) = next {
            let slice = self.cfg.timeslice_ticks;
            let task = &mut self.tasks[n.0 as usize];
            task.state = TaskState::Running(c);
            task.cpu = c;
            task.slice = slice;
        }
        self.pcpu[i].curr = next;
        self.pcpu[i].switches += 1;
        self.stats.context_switches += 1;
        let what = match next.map(|n| self.tasks[n.0 as usize].kind) {
            None => "idle",
            Some(TaskKind::User) => "task",
            Some(TaskKind::Migration(_)) => "migration",
            Some(TaskKind::Ksoftirqd(_)) => "ksoftirqd",
        };
        self.emit(
            *t,
            OsEvent::Switch {
                cpu: c,
                task: next,
                kthread: what == "migration" || what == "ksoftirqd",
                what,
            },
        );
        *t += CONTEXT_SWITCH;
        self.rcu_qs(*t, c, cx);
    }

    /// Puts `tid` on `c`'s runqueue.
    pub(crate) fn enqueue(&mut self, t: SimTime, tid: TaskId, c: LogicalCpu, why: EnqueueWhy) {
        let kthread;
        {
            let task = &mut self.tasks[tid.0 as usize];
            task.state = TaskState::Queued(c);
            kthread = task.kind != TaskKind::User;
        }
        let stopper = self.tasks[tid.0 as usize].kind.is_stopper();
        let pc = &mut self.pcpu[c.index()];
        if stopper {
            // The migration thread preempts everything.
            pc.kq.push_back(tid);
            pc.need_resched = true;
        } else {
            pc.rq.push_back(tid);
            if kthread {
                // Wakeup preemption: ksoftirqd's work (bottom halves, timers) is urgent.
                pc.need_resched = true;
            }
        }
        self.emit(
            t,
            OsEvent::Enqueue {
                task: tid,
                cpu: c,
                why,
                kthread,
            },
        );
    }

    /// Wakes a per-CPU kernel thread of `c` that waits for work (the caller sends the IPI
    /// if `c` is another CPU).
    pub(crate) fn wake_kthread(&mut self, t: SimTime, c: LogicalCpu, tid: Option<TaskId>) {
        let Some(tid) = tid else {
            return;
        };
        if self.tasks[tid.0 as usize].state == TaskState::Blocked {
            self.enqueue(t, tid, c, EnqueueWhy::Kthread);
        }
    }

    /// Creates (first time) or unparks `c`'s kernel threads; they wait for work.
    pub(crate) fn start_kthreads(&mut self, t: SimTime, c: LogicalCpu) {
        for kind in [TaskKind::Migration(c), TaskKind::Ksoftirqd(c)] {
            let existing = match kind {
                TaskKind::Migration(_) => self.pcpu[c.index()].migration,
                TaskKind::Ksoftirqd(_) | TaskKind::User => self.pcpu[c.index()].ksoftirqd,
            };
            match existing {
                Some(tid) => {
                    if self.tasks[tid.0 as usize].state == TaskState::Parked {
                        self.tasks[tid.0 as usize].state = TaskState::Blocked;
                        self.emit(
                            t,
                            OsEvent::Park {
                                task: tid,
                                cpu: c,
                                parked: false,
                            },
                        );
                    }
                }
                None => {
                    let id = TaskId(self.tasks.len() as u32);
                    let mut affinity = CpuMask::new(self.nr);
                    affinity.set(c);
                    self.tasks.push(Task {
                        id,
                        name: match kind {
                            TaskKind::Migration(_) => format!("migration/{}", c.0),
                            TaskKind::Ksoftirqd(_) | TaskKind::User => {
                                format!("ksoftirqd/{}", c.0)
                            }
                        },
                        kind,
                        state: TaskState::Blocked,
                        affinity,
                        bound: true,
                        cpu: c,
                        slice: 0,
                        mm: None,
                        rng: self.streams.stream("os-kthread", u64::from(id.0)),
                        stores: 0,
                        bursts: 0,
                        migrations: 0,
                    });
                    let name = self.tasks[id.0 as usize].name.clone();
                    let kind_name = match kind {
                        TaskKind::Migration(_) => {
                            self.pcpu[c.index()].migration = Some(id);
                            "migration"
                        }
                        TaskKind::Ksoftirqd(_) | TaskKind::User => {
                            self.pcpu[c.index()].ksoftirqd = Some(id);
                            "ksoftirqd"
                        }
                    };
                    self.emit(
                        t,
                        OsEvent::TaskCreated {
                            task: id,
                            name,
                            kind: kind_name,
                            cpu: c,
                        },
                    );
                }
            }
        }
    }

    /// The new CPU `c` sets itself up (idle task, registers, timer, interrupts, per-CPU
    /// area) and joins RCU.
    pub(crate) fn init_cpu(&mut self, t: &mut SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let i = c.index();
        let hw = self.hw(c);
        // Its per-CPU area lives on its own node.
        if let Some(vm) = self.vm.as_mut() {
            vm.tlbs[i].flush();
        }
        if let Ok(area) = Mm::kmalloc(self, self.pcpu[i].node, 4096, 4096) {
            for w in 0..8 {
                store(cx, t, hw, area + 8 * w, u64::from(c.0) << 32 | w);
            }
            self.mem.free(area, 4096);
        }
        let pc = &mut self.pcpu[i];
        pc.life = CpuLife::Up;
        pc.curr = None;
        pc.need_resched = false;
        pc.dying = None;
        pc.op = None;
        self.busy_until[i] = *t;
        let idle = self.idle_mask();
        let mut ev = Vec::new();
        self.rcu.set_watched(*t, c, true, &idle, &mut ev);
        self.events.extend(ev);
        self.start_tick(*t, c);
    }
}
