//! The OS checkers: CHK-3 (task data), CHK-4 (scheduler), CHK-5 (RCU) and the OS side of
//! CHK-6 (interrupts and IPIs).
//!
//! Each rebuilds its own picture of the OS from the [`OsEvent`] stream alone — which task
//! is where, which map versions are live, who reads what, which CPUs are online — and
//! reports the moment the stream contradicts an invariant. At audits it compares that
//! picture with the OS's data structures and with the hardware.
//!
//! | checker | catches (defect that proves it) |
//! |---|---|
//! | CHK-3 task data | a task reads back something else than it last stored (`skip_cache_flush_on_cpu_remove`) |
//! | CHK-4 scheduler | a runnable task left on an offline or halted CPU, moved by anyone but the migration thread, on two runqueues, lost (`skip_task_migration`, `halt_before_offline`) |
//! | CHK-5 RCU | an object freed while a reader may hold it, used after free, a grace period ending under an older reader (`skip_rcu_grace_period`) |
//! | CHK-6 interrupts | an interrupt handled on an offline CPU, delivered and never handled, a cross-call never acknowledged (`skip_irq_reroute`) |

use std::collections::BTreeMap;

use acpi_model::Platform;
use rustc_hash::FxHashMap;
use sim_core::{CheckerId, CpuId, Entity, Gsi, SimTime, Violation, Violations};

use crate::cpumask::{CpuMask, LogicalCpu};
use crate::event::{OsEvent, TaskId};
use crate::kernel::Os;
use crate::sched::TaskState;

/// CHK-3.
pub const CHK_TASK_DATA: CheckerId = CheckerId {
    code: "CHK-3",
    name: "task-data",
};
/// CHK-4.
pub const CHK_SCHED: CheckerId = CheckerId {
    code: "CHK-4",
    name: "scheduler",
};
/// CHK-5.
pub const CHK_RCU: CheckerId = CheckerId {
    code: "CHK-5",
    name: "rcu",
};
/// CHK-6, OS side.
pub const CHK_OS_IRQ: CheckerId = CheckerId {
    code: "CHK-6",
    name: "os-interrupts",
};

/// A checker of the OS.
pub trait OsChecker: Send {
    /// Who it is.
    fn id(&self) -> CheckerId;
    /// One event, as it happened.
    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations);
    /// A full comparison with the OS and the hardware.
    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations);
}

/// Every OS checker.
pub struct OsCheckers {
    list: Vec<Box<dyn OsChecker>>,
}

impl Default for OsCheckers {
    fn default() -> Self {
        OsCheckers {
            list: vec![
                Box::new(TaskDataChecker::default()),
                Box::new(SchedChecker::default()),
                Box::new(RcuChecker::default()),
                Box::new(IrqChecker::default()),
            ],
        }
    }
}

impl OsCheckers {
    /// Their ids.
    pub fn ids(&self) -> Vec<CheckerId> {
        self.list.iter().map(|c| c.id()).collect()
    }
    /// Shows one event to all.
    pub fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        for c in &mut self.list {
            c.observe(now, ev, out);
        }
    }
    /// Audits all.
    pub fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        for c in &mut self.list {
            c.audit(now, os, p, out);
        }
    }
}

/// Logical → hardware CPU names, learnt from `CpuMapped` events.
#[derive(Clone, Debug, Default)]
struct Names(Vec<Option<CpuId>>);

impl Names {
    fn learn(&mut self, ev: &OsEvent) {
        if let OsEvent::CpuMapped { cpu, hw, .. } = ev {
            if self.0.len() <= cpu.index() {
                self.0.resize(cpu.index() + 1, None);
            }
            self.0[cpu.index()] = Some(*hw);
        }
    }
    fn entity(&self, c: LogicalCpu) -> Entity {
        match self.0.get(c.index()).copied().flatten() {
            Some(hw) => Entity::Cpu(hw),
            None => Entity::Object("logical-cpu", u64::from(c.0)),
        }
    }
}

fn violation(
    now: SimTime,
    checker: CheckerId,
    agent: Entity,
    target: Entity,
    message: String,
) -> Violation {
    Violation {
        time: now,
        checker,
        agent,
        target,
        message,
    }
}

/// Keeps the online and active maps as published.
#[derive(Clone, Debug, Default)]
struct Maps {
    online: Option<CpuMask>,
    active: Option<CpuMask>,
}

impl Maps {
    fn learn(&mut self, ev: &OsEvent) {
        if let OsEvent::MapsPublished { online, active, .. } = ev {
            self.online = Some(online.clone());
            self.active = Some(active.clone());
        }
    }
    fn online(&self, c: LogicalCpu) -> bool {
        self.online.as_ref().is_some_and(|m| m.contains(c))
    }
    fn active(&self, c: LogicalCpu) -> bool {
        self.active.as_ref().is_some_and(|m| m.contains(c))
    }
}

// ---------------------------------------------------------------------------------- CHK-3

/// CHK-3: every load of a user task returns what the task last stored there; no task
/// touches memory outside its own.
#[derive(Debug, Default)]
pub struct TaskDataChecker {
    /// Per task: its memory's first byte and the last value of each word (dense).
    tasks: Vec<Option<(u64, Vec<Option<u64>>)>>,
}

impl OsChecker for TaskDataChecker {
    fn id(&self) -> CheckerId {
        CHK_TASK_DATA
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        if let OsEvent::TaskCreated {
            task, mem, words, ..
        } = ev
        {
            let i = task.0 as usize;
            if self.tasks.len() <= i {
                self.tasks.resize(i + 1, None);
            }
            self.tasks[i] = Some((*mem, vec![None; *words as usize]));
            return;
        }
        let OsEvent::TaskAccess {
            task,
            cpu,
            addr,
            value,
            store,
        } = ev
        else {
            return;
        };
        let mut report = |message: String| {
            out.push(violation(
                now,
                CHK_TASK_DATA,
                Entity::Task(task.0),
                Entity::Memory(sim_core::PhysAddr::new(*addr)),
                message,
            ));
        };
        let slot = self
            .tasks
            .get_mut(task.0 as usize)
            .and_then(Option::as_mut)
            .and_then(|(base, words)| {
                let w = addr.checked_sub(*base)? / 8;
                words.get_mut(usize::try_from(w).ok()?)
            });
        let Some(slot) = slot else {
            report(format!(
                "{task} on {cpu} accessed {addr:#x}, outside its own memory"
            ));
            return;
        };
        // A store sets the word; so does a load, which the first time is the baseline and
        // after a bad read makes each loss reported once.
        if let Some(want) = slot.replace(*value) {
            if !store && want != *value {
                report(format!(
                    "{task} on {cpu} read {value:#x} at {addr:#x}; it last stored {want:#x} there"
                ));
            }
        }
    }

    fn audit(&mut self, _now: SimTime, _os: &Os, _p: &Platform, _out: &mut Violations) {}
}

// ---------------------------------------------------------------------------------- CHK-4

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
}

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
            OsEvent::Block { task, .. } => self.set(*task, Loc::Blocked),
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
            | OsEvent::HotplugStart { .. }
            | OsEvent::HotplugStep { .. }
            | OsEvent::HotplugEnd { .. }
            | OsEvent::HotplugRefused { .. }
            | OsEvent::AcpiNotify { .. } => {}
        }
    }

    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
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
                out.push(violation(
                    now,
                    CHK_SCHED,
                    Entity::Os(sim_core::OsId(0)),
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
                out.push(violation(
                    now,
                    CHK_SCHED,
                    Entity::Os(sim_core::OsId(0)),
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
                    .and_then(|h| p.machine.cpu(h))
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

// ---------------------------------------------------------------------------------- CHK-5

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Obj {
    Live,
    Freed(SimTime),
}

#[derive(Clone, Copy, Debug)]
struct Reader {
    version: u64,
    since: SimTime,
    seq: u64,
    purpose: &'static str,
}

/// CHK-5: no reader uses a published object after it was freed, no object is freed while a
/// reader that could hold it is inside its section, and a grace period never ends while a
/// reader that started before it is still inside.
#[derive(Debug, Default)]
pub struct RcuChecker {
    names: Names,
    objects: BTreeMap<u64, Obj>,
    current: Option<u64>,
    /// Per CPU, the read-side sections it is inside, innermost last (they nest).
    readers: BTreeMap<LogicalCpu, Vec<Reader>>,
    gp_start: BTreeMap<u64, u64>,
    seq: u64,
}

impl OsChecker for RcuChecker {
    fn id(&self) -> CheckerId {
        CHK_RCU
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        self.seq += 1;
        let mut report = |agent: Entity, target: Entity, msg: String| {
            out.push(violation(now, CHK_RCU, agent, target, msg));
        };
        let obj = |v: u64| Entity::Object("cpu-maps", v);
        match ev {
            OsEvent::CpuMapped { .. } => self.names.learn(ev),
            OsEvent::MapsPublished { version, .. } => {
                self.objects.insert(*version, Obj::Live);
                self.current = Some(*version);
            }
            OsEvent::MapsFreed { version, by } => {
                if self.current == Some(*version) {
                    report(
                        self.names.entity(*by),
                        obj(*version),
                        format!("cpu maps v{version} freed while still published"),
                    );
                }
                for (c, r) in self
                    .readers
                    .iter()
                    .flat_map(|(c, v)| v.iter().map(move |r| (c, r)))
                {
                    if r.version == *version {
                        report(
                            self.names.entity(*by),
                            obj(*version),
                            format!(
                                "cpu maps v{version} freed while the reader on {c} (inside since {}, for {}) still holds it",
                                r.since, r.purpose
                            ),
                        );
                    }
                }
                self.objects.insert(*version, Obj::Freed(now));
            }
            OsEvent::RcuLock {
                cpu,
                version,
                purpose,
            } => {
                if self.current != Some(*version) {
                    report(
                        self.names.entity(*cpu),
                        obj(*version),
                        format!(
                            "{cpu} dereferenced cpu maps v{version}, but v{} is the published one",
                            self.current.unwrap_or(0)
                        ),
                    );
                }
                self.readers.entry(*cpu).or_default().push(Reader {
                    version: *version,
                    since: now,
                    seq: self.seq,
                    purpose,
                });
            }
            OsEvent::RcuUse {
                cpu,
                version,
                about,
            } => {
                let held = self
                    .readers
                    .get(cpu)
                    .is_some_and(|v| v.iter().any(|r| r.version == *version));
                if !held {
                    report(
                        self.names.entity(*cpu),
                        obj(*version),
                        format!(
                            "{cpu} used cpu maps v{version} outside a read-side section that holds it"
                        ),
                    );
                }
                if let Some(Obj::Freed(at)) = self.objects.get(version) {
                    report(
                        self.names.entity(*cpu),
                        obj(*version),
                        format!(
                            "{cpu} used cpu maps v{version} (freed at {at}) to act on {about}: use after free"
                        ),
                    );
                }
            }
            OsEvent::RcuUnlock { cpu } => {
                let popped = self.readers.get_mut(cpu).and_then(Vec::pop);
                if popped.is_none() {
                    report(
                        self.names.entity(*cpu),
                        self.names.entity(*cpu),
                        format!("{cpu} left a read-side section it was not in"),
                    );
                }
            }
            OsEvent::GpStart { seq, .. } => {
                self.gp_start.insert(*seq, self.seq);
            }
            OsEvent::GpEnd { seq, .. } => {
                if let Some(start) = self.gp_start.remove(seq) {
                    for (c, r) in self
                        .readers
                        .iter()
                        .flat_map(|(c, v)| v.iter().map(move |r| (c, r)))
                    {
                        if r.seq < start {
                            report(
                                self.names.entity(*c),
                                obj(r.version),
                                format!(
                                    "grace period {seq} ended while the reader on {c} (inside since {}, for {}) that began before it is still inside",
                                    r.since, r.purpose
                                ),
                            );
                        }
                    }
                }
            }
            OsEvent::Booted { .. }
            | OsEvent::QuiescentState { .. }
            | OsEvent::RcuCpu { .. }
            | OsEvent::TaskCreated { .. }
            | OsEvent::Enqueue { .. }
            | OsEvent::Migrate { .. }
            | OsEvent::Switch { .. }
            | OsEvent::Sleep { .. }
            | OsEvent::Block { .. }
            | OsEvent::Park { .. }
            | OsEvent::TimersMoved { .. }
            | OsEvent::TaskAccess { .. }
            | OsEvent::IpiSent { .. }
            | OsEvent::IpiHandled { .. }
            | OsEvent::CsdQueued { .. }
            | OsEvent::CsdDone { .. }
            | OsEvent::CsdTimeout { .. }
            | OsEvent::IrqRouted { .. }
            | OsEvent::IrqHandled { .. }
            | OsEvent::CpuHalted { .. }
            | OsEvent::HotplugStart { .. }
            | OsEvent::HotplugStep { .. }
            | OsEvent::HotplugEnd { .. }
            | OsEvent::HotplugRefused { .. }
            | OsEvent::AcpiNotify { .. } => {}
        }
    }

    fn audit(&mut self, _now: SimTime, _os: &Os, _p: &Platform, _out: &mut Violations) {}
}

// ---------------------------------------------------------------------------------- CHK-6

/// CHK-6, OS side: every interrupt a device raised is delivered once and handled once, on an
/// online CPU, across re-routing; every cross-call IPI is acknowledged.
#[derive(Debug, Default)]
pub struct IrqChecker {
    names: Names,
    maps: Maps,
    handled: BTreeMap<u32, u64>,
    lost_reported: BTreeMap<u32, u64>,
}

impl OsChecker for IrqChecker {
    fn id(&self) -> CheckerId {
        CHK_OS_IRQ
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        self.names.learn(ev);
        self.maps.learn(ev);
        let mut report = |agent: Entity, target: Entity, msg: String| {
            out.push(violation(now, CHK_OS_IRQ, agent, target, msg));
        };
        if let OsEvent::IrqHandled { gsi, vector, cpu } = ev {
            *self.handled.entry(*gsi).or_default() += 1;
            if !self.maps.online(*cpu) {
                report(
                    Entity::Gsi(Gsi(*gsi)),
                    self.names.entity(*cpu),
                    format!(
                        "interrupt gsi{gsi} (vector {vector:#04x}) handled on {cpu}, which is offline"
                    ),
                );
            }
        } else if let OsEvent::IrqRouted { gsi, cpu, from, .. } = ev {
            self.handled.entry(*gsi).or_default();
            if !self.maps.active(*cpu) {
                report(
                    Entity::Gsi(Gsi(*gsi)),
                    self.names.entity(*cpu),
                    format!(
                        "gsi{gsi} routed to {cpu}, which is not active{}",
                        from.map_or_else(String::new, |f| format!(" (moved from {f})"))
                    ),
                );
            }
        } else if let OsEvent::CsdTimeout {
            id,
            from,
            to,
            waited,
        } = ev
        {
            report(
                self.names.entity(*from),
                self.names.entity(*to),
                format!(
                    "cross-call {id} from {from} to {to} was never acknowledged (waited {waited}): the IPI did not reach a running CPU"
                ),
            );
        }
    }

    fn audit(&mut self, now: SimTime, _os: &Os, p: &Platform, out: &mut Violations) {
        for (&gsi, &handled) in &self.handled {
            let Some((sid, e)) = p.io.gsi_entry(Gsi(gsi)) else {
                continue;
            };
            let Some(sub) = p.io.subsystem(sid).filter(|s| s.state.is_powered()) else {
                continue;
            };
            let Some(rte) = sub.sapic.entries().get(e) else {
                continue;
            };
            let delivered = rte.delivered;
            // Vectors are per IRQ: pending in any running CPU's IRR means on its way.
            let bit = 1u64 << (rte.vector % 64);
            let in_flight =
                p.machine.cpus().iter().any(|c| {
                    c.state.is_running() && c.irr[usize::from(rte.vector / 64)] & bit != 0
                });
            let missing = delivered.saturating_sub(handled + u64::from(in_flight));
            if handled > delivered {
                out.push(violation(
                    now,
                    CHK_OS_IRQ,
                    Entity::Gsi(Gsi(gsi)),
                    Entity::IoSapic(sid),
                    format!("gsi{gsi} was handled {handled} times but delivered only {delivered}"),
                ));
            }
            let already = self.lost_reported.get(&gsi).copied().unwrap_or(0);
            if missing > already {
                let dest = p
                    .machine
                    .cpu_by_lsapic(rte.dest)
                    .map_or_else(|| rte.dest.to_string(), |c| c.to_string());
                out.push(violation(
                    now,
                    CHK_OS_IRQ,
                    Entity::Gsi(Gsi(gsi)),
                    Entity::IoSapic(sid),
                    format!(
                        "gsi{gsi}: {delivered} interrupts delivered, {handled} handled, {} lost (destination {dest})",
                        missing - already
                    ),
                ));
                self.lost_reported.insert(gsi, missing);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EnqueueWhy, Step};

    fn t(ns: u64) -> SimTime {
        SimTime::from_nanos(ns)
    }
    fn c(n: u32) -> LogicalCpu {
        LogicalCpu(n)
    }
    fn mask(cpus: &[u32]) -> CpuMask {
        let mut m = CpuMask::new(8);
        for &x in cpus {
            m.set(LogicalCpu(x));
        }
        m
    }
    fn publish(v: u64, online: &[u32]) -> OsEvent {
        OsEvent::MapsPublished {
            version: v,
            online: mask(online),
            active: mask(online),
            by: c(0),
        }
    }
    fn feed(ch: &mut dyn OsChecker, evs: &[OsEvent]) -> Violations {
        let mut out = Violations::default();
        for (i, e) in evs.iter().enumerate() {
            ch.observe(t(i as u64), e, &mut out);
        }
        out
    }

    #[test]
    fn rcu_checker_catches_free_under_a_reader_and_use_after_free() {
        let lock = OsEvent::RcuLock {
            cpu: c(1),
            version: 1,
            purpose: "test",
        };
        let use_ = OsEvent::RcuUse {
            cpu: c(1),
            version: 1,
            about: c(2),
        };
        let ok = feed(
            &mut RcuChecker::default(),
            &[
                publish(1, &[0, 1, 2]),
                lock.clone(),
                publish(2, &[0, 1]),
                use_.clone(),
                OsEvent::RcuUnlock { cpu: c(1) },
                OsEvent::MapsFreed {
                    version: 1,
                    by: c(0),
                },
            ],
        );
        assert!(ok.is_empty(), "{:?}", ok.kept());
        let bad = feed(
            &mut RcuChecker::default(),
            &[
                publish(1, &[0, 1, 2]),
                lock,
                publish(2, &[0, 1]),
                OsEvent::MapsFreed {
                    version: 1,
                    by: c(0),
                },
                use_,
            ],
        );
        assert_eq!(bad.total(), 2, "{:?}", bad.kept());
        assert!(bad.kept()[0].message.contains("still holds it"));
        assert!(bad.kept()[1].message.contains("use after free"));
    }

    #[test]
    fn rcu_checker_catches_a_grace_period_ending_under_an_older_reader() {
        let out = feed(
            &mut RcuChecker::default(),
            &[
                publish(1, &[0, 1]),
                OsEvent::RcuLock {
                    cpu: c(1),
                    version: 1,
                    purpose: "test",
                },
                OsEvent::GpStart {
                    seq: 1,
                    waiting: mask(&[1]),
                },
                OsEvent::GpEnd {
                    seq: 1,
                    duration: sim_core::SimDuration::ZERO,
                },
            ],
        );
        assert_eq!(out.count("CHK-5"), 1);
    }

    #[test]
    fn sched_checker_catches_moves_by_anyone_but_the_migration_thread_and_lost_tasks() {
        let created = |task: u32, kind: &'static str, cpu: u32| OsEvent::TaskCreated {
            task: TaskId(task),
            name: format!("t{task}"),
            kind,
            cpu: c(cpu),
            mem: 0,
            words: 0,
        };
        let base = vec![
            publish(1, &[0, 1]),
            created(0, "migration", 0),
            created(1, "ksoftirqd", 0),
            created(2, "user", 0),
            OsEvent::Enqueue {
                task: TaskId(2),
                cpu: c(0),
                why: EnqueueWhy::Fork,
                kthread: false,
            },
        ];
        let mut good = base.clone();
        good.push(OsEvent::Migrate {
            task: TaskId(2),
            from: c(0),
            to: c(1),
            by: TaskId(0),
        });
        assert!(feed(&mut SchedChecker::default(), &good).is_empty());
        let mut bad = base.clone();
        bad.push(OsEvent::Migrate {
            task: TaskId(2),
            from: c(0),
            to: c(1),
            by: TaskId(1),
        });
        let out = feed(&mut SchedChecker::default(), &bad);
        assert!(
            out.kept()[0]
                .message
                .contains("only cpu0's migration thread")
        );
        let mut lost = base;
        lost.push(publish(2, &[1]));
        let out = feed(&mut SchedChecker::default(), &lost);
        assert!(
            out.kept()[0].message.contains("it is lost"),
            "{:?}",
            out.kept()
        );
    }

    #[test]
    fn task_data_and_irq_checkers_bite() {
        let out = feed(
            &mut TaskDataChecker::default(),
            &[
                OsEvent::TaskCreated {
                    task: TaskId(3),
                    name: "worker/3".into(),
                    kind: "user",
                    cpu: c(0),
                    mem: 0x100,
                    words: 4,
                },
                OsEvent::TaskAccess {
                    task: TaskId(3),
                    cpu: c(1),
                    addr: 0x200,
                    value: 0,
                    store: false,
                },
                OsEvent::TaskAccess {
                    task: TaskId(3),
                    cpu: c(0),
                    addr: 0x100,
                    value: 7,
                    store: true,
                },
                OsEvent::TaskAccess {
                    task: TaskId(3),
                    cpu: c(1),
                    addr: 0x100,
                    value: 0,
                    store: false,
                },
            ],
        );
        assert_eq!(out.count("CHK-3"), 2, "{:?}", out.kept());
        assert!(out.kept()[0].message.contains("outside its own memory"));
        let out = feed(
            &mut IrqChecker::default(),
            &[
                publish(1, &[0]),
                OsEvent::IrqHandled {
                    gsi: 5,
                    vector: 0x30,
                    cpu: c(1),
                },
                OsEvent::CsdTimeout {
                    id: 1,
                    from: c(0),
                    to: c(1),
                    waited: sim_core::SimDuration::from_millis(2),
                },
            ],
        );
        assert_eq!(out.count("CHK-6"), 2);
        let _ = Step::Halt;
    }
}
