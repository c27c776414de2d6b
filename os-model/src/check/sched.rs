//! CHK-4, scheduler: every runnable task on exactly one runqueue of an online CPU, moved only
//! by the migration thread.

use std::collections::BTreeMap;

use acpi_model::Platform;
use rustc_hash::FxHashMap;
use sim_core::{CheckerId, Entity, SimTime, Violations};

use super::{CHK_SCHED, Maps, Names, OsChecker, by_kernel, violation};
use crate::cpumask::LogicalCpu;
use crate::event::{OsEvent, TaskId};
use crate::kernel::Os;
use crate::sched::TaskState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    New,
    Queued(LogicalCpu),
    Running(LogicalCpu),
    Sleeping(LogicalCpu),
    Blocked,
    Parked,
}

#[derive(Clone, Debug)]
struct TaskInfo {
    name: String,
    /// The CPU a per-CPU kernel thread belongs to.
    kthread: Option<LogicalCpu>,
    migration: bool,
    loc: Loc,
    /// A task (not a kernel thread) blocked since then, waiting for something to wake it.
    blocked_since: Option<SimTime>,
}

/// How long a task (not a kernel thread, which may wait for work for ever) may stay blocked
/// — on a page being read in or moved — before CHK-4 calls it lost: far longer than any I/O
/// or migration batch the model runs.
pub const BLOCK_BOUND: sim_core::SimDuration = sim_core::SimDuration::from_millis(2);

/// CHK-4: every runnable task is on exactly one runqueue of an online CPU; none ever runs on
/// an offline CPU; only the migration thread moves tasks between runqueues; none is lost.
#[derive(Debug, Default)]
pub struct SchedChecker {
    names: Names,
    maps: Maps,
    tasks: Vec<Option<TaskInfo>>,
    running: BTreeMap<LogicalCpu, TaskId>,
    halted: Vec<LogicalCpu>,
    reported: Vec<(TaskId, LogicalCpu)>,
    /// Tasks already reported blocked for good, with the block that started it.
    stuck_reported: Vec<(TaskId, SimTime)>,
}

impl SchedChecker {
    fn task(&self, t: TaskId) -> Option<&TaskInfo> {
        self.tasks.get(t.0 as usize).and_then(Option::as_ref)
    }
    fn loc(&self, t: TaskId) -> Loc {
        self.task(t).map_or(Loc::New, |x| x.loc)
    }
    fn set(&mut self, t: TaskId, loc: Loc) {
        if let Some(Some(x)) = self.tasks.get_mut(t.0 as usize) {
            x.loc = loc;
            if loc != Loc::Blocked {
                x.blocked_since = None;
            }
        }
    }
    fn label(&self, t: TaskId) -> String {
        self.task(t)
            .map_or_else(|| t.to_string(), |x| format!("{t} ({})", x.name))
    }
}

impl OsChecker for SchedChecker {
    fn id(&self) -> CheckerId {
        CHK_SCHED
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        let mut report = |agent: Entity, target: Entity, msg: String| {
            out.push(violation(now, CHK_SCHED, agent, target, msg));
        };
        match ev {
            OsEvent::CpuMapped { .. } => self.names.learn(ev),
            OsEvent::TaskCreated {
                task,
                name,
                kind,
                cpu,
                ..
            } => {
                let i = task.0 as usize;
                if self.tasks.len() <= i {
                    self.tasks.resize(i + 1, None);
                }
                self.tasks[i] = Some(TaskInfo {
                    name: name.clone(),
                    kthread: (*kind != "user").then_some(*cpu),
                    migration: *kind == "migration",
                    blocked_since: None,
                    loc: if *kind == "user" {
                        Loc::New
                    } else {
                        Loc::Blocked
                    },
                });
            }
            OsEvent::Enqueue {
                task, cpu, kthread, ..
            } => {
                match self.loc(*task) {
                    Loc::Queued(c) | Loc::Running(c) => report(
                        self.names.entity(*cpu),
                        Entity::Task(task.0),
                        format!(
                            "{} put on {cpu}'s runqueue while it is on {c}'s: on two runqueues",
                            self.label(*task)
                        ),
                    ),
                    Loc::New | Loc::Sleeping(_) | Loc::Blocked | Loc::Parked => {}
                }
                let own = self.task(*task).and_then(|x| x.kthread);
                if *kthread && own != Some(*cpu) {
                    report(
                        self.names.entity(*cpu),
                        Entity::Task(task.0),
                        format!(
                            "per-CPU thread {} put on {cpu}'s runqueue",
                            self.label(*task)
                        ),
                    );
                }
                if !*kthread && !self.maps.active(*cpu) {
                    report(
                        self.names.entity(*cpu),
                        Entity::Task(task.0),
                        format!(
                            "{} put on the runqueue of {cpu}, which is not active",
                            self.label(*task)
                        ),
                    );
                }
                self.set(*task, Loc::Queued(*cpu));
            }
            OsEvent::Migrate { task, from, to, by } => {
                if self.loc(*task) != Loc::Queued(*from) {
                    report(
                        Entity::Task(by.0),
                        Entity::Task(task.0),
                        format!(
                            "{} moved from {from}'s runqueue, where it was not queued ({:?})",
                            self.label(*task),
                            self.loc(*task)
                        ),
                    );
                }
                let mover_ok = self
                    .task(*by)
                    .is_some_and(|x| x.migration && x.kthread == Some(*from));
                if !mover_ok {
                    report(
                        Entity::Task(by.0),
                        Entity::Task(task.0),
                        format!(
                            "{} moved {} between runqueues; only {from}'s migration thread may",
                            self.label(*by),
                            self.label(*task)
                        ),
                    );
                }
                if !self.maps.active(*to) {
                    report(
                        Entity::Task(by.0),
                        self.names.entity(*to),
                        format!("{} moved to {to}, which is not active", self.label(*task)),
                    );
                }
                self.set(*task, Loc::Queued(*to));
            }
            OsEvent::Switch { cpu, task, .. } => {
                if let Some(prev) = self.running.remove(cpu) {
                    if self.loc(prev) == Loc::Running(*cpu) {
                        self.set(prev, Loc::Queued(*cpu));
                    }
                }
                if let Some(n) = task {
                    if self.loc(*n) != Loc::Queued(*cpu) {
                        report(
                            self.names.entity(*cpu),
                            Entity::Task(n.0),
                            format!(
                                "{cpu} switched to {}, which was not on its runqueue ({:?})",
                                self.label(*n),
                                self.loc(*n)
                            ),
                        );
                    }
                    let own = self.task(*n).and_then(|x| x.kthread);
                    match own {
                        Some(k) if k != *cpu => report(
                            self.names.entity(*cpu),
                            Entity::Task(n.0),
                            format!("per-CPU thread {} ran on {cpu}", self.label(*n)),
                        ),
                        Some(_) => {}
                        None => {
                            if !self.maps.online(*cpu) {
                                report(
                                    self.names.entity(*cpu),
                                    Entity::Task(n.0),
                                    format!("{} runs on {cpu}, which is offline", self.label(*n)),
                                );
                            }
                        }
                    }
                    self.set(*n, Loc::Running(*cpu));
                    self.running.insert(*cpu, *n);
                }
            }
            OsEvent::Sleep {
                task,
                cpu,
                timer_cpu,
                ..
            } => {
                if self.loc(*task) != Loc::Running(*cpu) {
                    report(
                        self.names.entity(*cpu),
                        Entity::Task(task.0),
                        format!(
                            "{} went to sleep on {cpu} without running there",
                            self.label(*task)
                        ),
                    );
                }
                self.set(*task, Loc::Sleeping(*timer_cpu));
            }
            OsEvent::Block { task, .. } => {
                self.set(*task, Loc::Blocked);
                if let Some(Some(x)) = self.tasks.get_mut(task.0 as usize) {
                    if x.kthread.is_none() && !x.migration && x.blocked_since.is_none() {
                        x.blocked_since = Some(now);
                    }
                }
            }
            OsEvent::Park { task, parked, .. } => {
                self.set(*task, if *parked { Loc::Parked } else { Loc::Blocked });
            }
            OsEvent::TimersMoved { to, tasks, .. } => {
                for t in tasks {
                    self.set(*t, Loc::Sleeping(*to));
                }
            }
            OsEvent::MapsPublished { online, active, .. } => {
                let before = self.maps.online.clone();
                for c in before.iter().flat_map(|m| m.iter()) {
                    if online.contains(c) {
                        continue;
                    }
                    for (i, info) in self.tasks.iter().enumerate() {
                        let Some(info) = info else { continue };
                        let here = matches!(info.loc, Loc::Queued(x) | Loc::Running(x) if x == c);
                        if !here {
                            continue;
                        }
                        let t = TaskId(i as u32);
                        let what = if info.kthread.is_some() {
                            format!("per-CPU thread {} ({}) was not stopped", t, info.name)
                        } else {
                            format!("{t} ({}) is left on its runqueue: it is lost", info.name)
                        };
                        report(
                            self.names.entity(c),
                            Entity::Task(t.0),
                            format!("{c} left the online map but {what}"),
                        );
                        self.reported.push((t, c));
                    }
                }
                for c in online.iter() {
                    self.halted.retain(|&h| h != c);
                }
                self.maps.online = Some(online.clone());
                self.maps.active = Some(active.clone());
            }
            OsEvent::CpuHalted { cpu, .. } => {
                if self.maps.online(*cpu) {
                    report(
                        self.names.entity(*cpu),
                        self.names.entity(*cpu),
                        format!("{cpu} was halted while still in the online map"),
                    );
                }
                for (i, info) in self.tasks.iter().enumerate() {
                    let Some(info) = info else { continue };
                    if matches!(info.loc, Loc::Queued(x) | Loc::Running(x) if x == *cpu)
                        && info.kthread.is_none()
                    {
                        let t = TaskId(i as u32);
                        if !self.reported.contains(&(t, *cpu)) {
                            report(
                                self.names.entity(*cpu),
                                Entity::Task(t.0),
                                format!(
                                    "{cpu} halted with {t} ({}) runnable on its runqueue: it will never run",
                                    info.name
                                ),
                            );
                            self.reported.push((t, *cpu));
                        }
                    }
                }
                self.halted.push(*cpu);
            }
            OsEvent::Booted { .. }
            | OsEvent::MapsFreed { .. }
            | OsEvent::RcuLock { .. }
            | OsEvent::RcuUse { .. }
            | OsEvent::RcuUnlock { .. }
            | OsEvent::QuiescentState { .. }
            | OsEvent::GpStart { .. }
            | OsEvent::GpEnd { .. }
            | OsEvent::RcuCpu { .. }
            | OsEvent::TaskAccess { .. }
            | OsEvent::IpiSent { .. }
            | OsEvent::IpiHandled { .. }
            | OsEvent::CsdQueued { .. }
            | OsEvent::CsdDone { .. }
            | OsEvent::CsdTimeout { .. }
            | OsEvent::IrqRouted { .. }
            | OsEvent::IrqHandled { .. }
            | OsEvent::IrqDisabled { .. }
            | OsEvent::IrqFreed { .. }
            | OsEvent::OpStart { .. }
            | OsEvent::OpStep { .. }
            | OsEvent::OpEnd { .. }
            | OsEvent::OpQueued { .. }
            | OsEvent::MemObject { .. }
            | OsEvent::PageAllocated { .. }
            | OsEvent::PageblockIsolation { .. }
            | OsEvent::FramesManaged { .. }
            | OsEvent::PageFreed { .. }
            | OsEvent::PageDiscarded { .. }
            | OsEvent::PteWritten { .. }
            | OsEvent::HotplugRefused { .. }
            | OsEvent::RequestRefused { .. }
            | OsEvent::AcpiNotify { .. } => {}
        }
    }

    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        // Liveness, from its own record: a task blocked past the bound with no wakeup.
        let stuck: Vec<(TaskId, SimTime)> = self
            .tasks
            .iter()
            .enumerate()
            .filter_map(|(i, x)| {
                let since = x.as_ref()?.blocked_since?;
                (now - since > BLOCK_BOUND).then_some((TaskId(i as u32), since))
            })
            .filter(|k| !self.stuck_reported.contains(k))
            .collect();
        for (task, since) in stuck {
            self.stuck_reported.push((task, since));
            out.push(by_kernel(
 now,
 CHK_SCHED,
 Entity::Task(task.0),
                format!(
                    "{} has been blocked since {since} and nothing woke it (bound {BLOCK_BOUND}): it will never run again",
                    self.label(task)
                ),
            ));
        }
        // Every task the checker saw is where the OS says, and on exactly one runqueue.
        let mut count: FxHashMap<u32, u32> = FxHashMap::default();
        for pc in os.per_cpu() {
            for t in pc.rq.iter().chain(pc.kq.iter()) {
                *count.entry(t.0).or_default() += 1;
            }
        }
        for task in os.tasks() {
            let id = task.id;
            let queued_on = match task.state {
                TaskState::Queued(c) => Some(c),
                TaskState::Running(_)
                | TaskState::Sleeping { .. }
                | TaskState::Waking(_)
                | TaskState::Blocked
                | TaskState::Parked => None,
            };
            let n = count.get(&id.0).copied().unwrap_or(0);
            let expect = u32::from(queued_on.is_some());
            if n != expect {
                out.push(by_kernel(
                    now,
                    CHK_SCHED,
                    Entity::Task(id.0),
                    format!(
                        "{} is on {n} runqueues (state {:?})",
                        self.label(id),
                        task.state
                    ),
                ));
            }
            let shadow = self.loc(id);
            let agrees = match (task.state, shadow) {
                (TaskState::Queued(a), Loc::Queued(b))
                | (TaskState::Running(a), Loc::Running(b)) => a == b,
                (TaskState::Sleeping { timer_cpu, .. }, Loc::Sleeping(b)) => timer_cpu == b,
                (TaskState::Waking(a), Loc::Sleeping(b)) => a == b,
                (TaskState::Blocked, Loc::Blocked) | (TaskState::Parked, Loc::Parked) => true,
                _ => false,
            };
            if !agrees {
                out.push(by_kernel(
                    now,
                    CHK_SCHED,
                    Entity::Task(id.0),
                    format!(
                        "{}: the OS says {:?}, its events said {shadow:?}",
                        self.label(id),
                        task.state
                    ),
                ));
                continue;
            }
            let runnable_on = match shadow {
                Loc::Queued(c) | Loc::Running(c) => Some(c),
                Loc::New | Loc::Sleeping(_) | Loc::Blocked | Loc::Parked => None,
            };
            if let Some(c) = runnable_on {
                let hw_running = os.per_cpu()[c.index()]
                    .hw
                    .and_then(|h| p.machine().cpu(h))
                    .is_some_and(|x| x.state.is_running());
                if !hw_running && !self.reported.contains(&(id, c)) {
                    out.push(violation(
                        now,
                        CHK_SCHED,
                        self.names.entity(c),
                        Entity::Task(id.0),
                        format!(
                            "{} is runnable on {c}, which is not running: it will never run",
                            self.label(id)
                        ),
                    ));
                    self.reported.push((id, c));
                }
            }
            if let Loc::Sleeping(c) = shadow {
                if !self.maps.online(c) && !self.reported.contains(&(id, c)) {
                    out.push(violation(
                        now,
                        CHK_SCHED,
                        self.names.entity(c),
                        Entity::Task(id.0),
                        format!(
                            "{}'s wakeup timer is on {c}, which is offline: it will never wake",
                            self.label(id)
                        ),
                    ));
                    self.reported.push((id, c));
                }
            }
        }
    }
}
