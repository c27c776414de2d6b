//! CPU hot-remove and hot-add as state machines over simulated time (SPEC OS-CPU-4,
//! OS-CPU-5), triggered by a user request (`cpuN/online`), an ACPI eject request or device
//! check on the processor, or boot (secondary CPUs come up through the hot-add path).
//!
//! ```text
//!  down: mark_inactive ─► migrate_tasks ─► migrate_irqs ─► migrate_work ─► stop_kthreads
//!        (+ grace period)  (migration thread)  (IO SAPIC)   (timers, softirq work)
//!        ─► publish_offline ─► grace_period ─► flush_cache ─► halt ─► eject (ACPI only)
//!                                             └── run by the dying CPU itself ──┘
//!  up:   wake (firmware rendezvous) ─► init_cpu ─► start_kthreads ─► publish_online ─► mark_active
//! ```
//!
//! One operation runs at a time (the hot-plug lock); requests queue behind it. A request is
//! checked when it is made, against the state all queued operations will leave, and again
//! when it starts; a refusal changes nothing. Each step either finishes after a simulated
//! duration or waits (for a grace period, or for the CPU's migration thread or the dying CPU
//! to signal); a wait longer than `hung_timeout` is reported and the operation abandoned, as
//! the kernel's hung-task detector would.

use std::collections::VecDeque;
use std::fmt;

use acpi_model::{AcpiValue, Platform, PlatformProbe};
use serde::Serialize;
use sim_core::{CpuId, SimDuration, SimTime};
use thiserror::Error;

use crate::config::OsDefect;
use crate::cpumask::{CpuMask, LogicalCpu};
use crate::event::{OsEvent, Step};
use crate::irq;
use crate::kernel::{CpuMaps, Os, OsEv};
use crate::memhotplug::{MemError, MemOpKind, MemRequest};
use crate::rcu::Callback;
use crate::sched::{CpuLife, MigReq};

/// Down (hot-remove, offline) or up (hot-add, online).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Take the CPU out.
    Down,
    /// Bring the CPU in.
    Up,
}

impl OpKind {
    /// `"down"` or `"up"`.
    pub const fn name(self) -> &'static str {
        match self {
            OpKind::Down => "down",
            OpKind::Up => "up",
        }
    }
}

/// What asked for an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Boot brings up secondary CPUs.
    Boot,
    /// A user wrote `cpuN/online`.
    User,
    /// Firmware sent an eject request (Notify 0x03) for the processor.
    AcpiEject,
    /// Firmware sent a device check (Notify 0x01) for the processor or its module.
    AcpiDeviceCheck,
    /// Part of a whole-cell operation (which reports to firmware itself).
    Cell,
    /// Part of a whole-I/O-subsystem operation (which reports to firmware itself).
    Subsystem,
    /// The driver found its device gone (all-ones): a surprise removal to clean up after.
    Surprise,
    /// The RAS policy (corrected errors over a threshold).
    Ras,
    /// The power-saving policy.
    Power,
}

impl Trigger {
    /// Name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Trigger::Boot => "boot",
            Trigger::User => "user",
            Trigger::AcpiEject => "acpi eject request",
            Trigger::AcpiDeviceCheck => "acpi device check",
            Trigger::Cell => "cell operation",
            Trigger::Subsystem => "I/O subsystem operation",
            Trigger::Surprise => "device gone",
            Trigger::Ras => "RAS policy",
            Trigger::Power => "power policy",
        }
    }
}

/// Why a request was refused or an operation failed.
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize)]
pub enum HotplugError {
    /// The CPU number is beyond `nr_cpus` or names no processor.
    #[error("cpu{cpu} is not a possible CPU (nr_cpus {nr}, {possible} possible)")]
    NotPossible {
        /// The CPU asked for.
        cpu: u32,
        /// `nr_cpus`.
        nr: u32,
        /// Possible CPUs.
        possible: u32,
    },
    /// The CPU is not present.
    #[error("cpu{cpu} is not present")]
    NotPresent {
        /// The CPU.
        cpu: u32,
    },
    /// It is the last online CPU.
    #[error("cpu{cpu} is the last online CPU")]
    LastOnline {
        /// The CPU.
        cpu: u32,
    },
    /// A task is hard-bound to it.
    #[error("cpu{cpu} has task {task} ({name}) hard-bound to it")]
    BoundTask {
        /// The CPU.
        cpu: u32,
        /// The task.
        task: u32,
        /// Its name.
        name: String,
    },
    /// A step waited too long (the operation was abandoned half done).
    #[error("step {step} for cpu{cpu} did not finish within {waited}")]
    Hung {
        /// The CPU.
        cpu: u32,
        /// The step.
        step: Step,
        /// How long it waited.
        waited: SimDuration,
    },
    /// Firmware could not wake the CPU.
    #[error("firmware could not wake cpu{cpu}: {reason}")]
    WakeFailed {
        /// The CPU.
        cpu: u32,
        /// Why.
        reason: String,
    },
    /// Boot is still bringing CPUs up: hot-plug requests are taken once it has finished.
    #[error("cpu{cpu}: boot has not finished (secondary CPUs are still being brought up)")]
    Booting {
        /// The CPU.
        cpu: u32,
    },
    /// An operation on the CPU's cell is queued or running: it decides the CPU's state.
    #[error("cpu{cpu}: memory operation {op} ({what}) on its node{node} is in progress")]
    InProgress {
        /// The CPU.
        cpu: u32,
        /// The operation's number.
        op: u32,
        /// What it does.
        what: &'static str,
        /// The node.
        node: u32,
    },
}

impl HotplugError {
    /// The errno a Linux write to `cpuN/online` returns.
    pub const fn errno(&self) -> &'static str {
        match self {
            HotplugError::NotPossible { .. } | HotplugError::NotPresent { .. } => "EINVAL",
            HotplugError::LastOnline { .. }
            | HotplugError::BoundTask { .. }
            | HotplugError::Booting { .. }
            | HotplugError::InProgress { .. } => "EBUSY",
            HotplugError::Hung { .. } => "ETIMEDOUT",
            HotplugError::WakeFailed { .. } => "EIO",
        }
    }

    /// The `_OST` status OSPM reports for an ACPI-triggered request that fails this way.
    pub const fn ost_status(&self) -> u64 {
        match self {
            HotplugError::NotPossible { .. } | HotplugError::NotPresent { .. } => 0x80,
            HotplugError::BoundTask { .. } => 0x81,
            HotplugError::LastOnline { .. }
            | HotplugError::Booting { .. }
            | HotplugError::InProgress { .. } => 0x82,
            HotplugError::Hung { .. } | HotplugError::WakeFailed { .. } => 0x01,
        }
    }
}

/// A request waiting for the hot-plug lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Down or up.
    pub kind: OpKind,
    /// The CPU.
    pub cpu: LogicalCpu,
    /// Who asked.
    pub trigger: Trigger,
    /// Eject through firmware at the end (ACPI eject requests).
    pub eject: bool,
    /// When it was asked.
    pub requested: SimTime,
}

/// A hot-plug request refused at once: nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// When.
    pub time: SimTime,
    /// What was asked for: `cpuN`, `memoryN`, `slot N`, or the device path of an ACPI
    /// notification.
    pub target: String,
    /// The errno.
    pub errno: &'static str,
    /// The reason.
    pub error: String,
}

/// What a request led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Queued as operation number `op` (it runs when those before it are done).
    Queued {
        /// Operation number.
        op: u32,
    },
    /// Nothing to do: the CPU is (or will be) in the asked state already.
    NoChange,
}

impl fmt::Display for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Accepted::Queued { op } => write!(f, "queued as hot-plug operation {op}"),
            Accepted::NoChange => f.write_str("nothing to do"),
        }
    }
}

/// One finished step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    /// The step.
    pub step: Step,
    /// When it started.
    pub start: SimTime,
    /// How long it took.
    pub duration: SimDuration,
    /// What it did.
    pub note: String,
}

/// The report of one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpReport {
    /// Operation number.
    pub id: u32,
    /// Down or up.
    pub kind: OpKind,
    /// The CPU.
    pub cpu: LogicalCpu,
    /// Its hardware id.
    pub hw: CpuId,
    /// Who asked.
    pub trigger: Trigger,
    /// The CPU that ran the operation.
    pub controller: LogicalCpu,
    /// When it was asked.
    pub requested: SimTime,
    /// When it started.
    pub started: SimTime,
    /// When it ended.
    pub ended: Option<SimTime>,
    /// How it ended (`None`: still running).
    pub result: Option<Result<(), HotplugError>>,
    /// Its steps, in order.
    pub steps: Vec<StepRecord>,
    /// Tasks the migration thread moved off the CPU.
    pub tasks_migrated: u32,
    /// IRQs re-routed.
    pub irqs_rerouted: u32,
    /// Sleeping tasks whose wakeup timers moved.
    pub timers_moved: u32,
    /// Pending softirq work items moved.
    pub work_moved: u32,
    /// Cache lines the CPU flushed before it halted.
    pub flushed_lines: u32,
    /// Of which dirty.
    pub dirty_lines: u32,
}

impl OpReport {
    /// Simulated time from start to end.
    pub fn duration(&self) -> Option<SimDuration> {
        self.ended.map(|e| e - self.started)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    GracePeriod,
    Cpu,
    Died,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The step's action runs at the next `Go`.
    Acting,
    /// The action ran; the step ends when the wait is satisfied.
    Waiting(Wait),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    Go,
    Timeout,
}

#[derive(Clone, Debug)]
struct Current {
    report: OpReport,
    plan: Vec<Step>,
    idx: usize,
    step_start: SimTime,
    phase: Phase,
    epoch: u32,
    note: String,
}

/// The hot-plug lock, the queue and the history.
#[derive(Clone, Debug, Default)]
pub struct Hotplug {
    queue: VecDeque<(u32, Request)>,
    current: Option<Current>,
    done: Vec<OpReport>,
    next_id: u32,
}

/// Operation number meaning "start the next queued request".
const START: u32 = u32::MAX;

impl Hotplug {
    /// A word for what is queued and running (a refused request must not change it).
    pub(crate) fn state_word(&self) -> u64 {
        let mut h = sim_core::StableHasher::new();
        h.word(u64::from(self.next_id));
        h.word(
            self.current
                .as_ref()
                .map_or(u64::MAX, |c| u64::from(c.report.id)),
        );
        for (id, _) in &self.queue {
            h.word(u64::from(*id));
        }
        h.finish()
    }

    pub(crate) fn enqueue(&mut self, r: Request) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back((id, r));
        id
    }

    /// Finished operations, in order.
    pub fn done(&self) -> &[OpReport] {
        &self.done
    }

    /// The operation in progress.
    pub fn current(&self) -> Option<&OpReport> {
        self.current.as_ref().map(|c| &c.report)
    }

    /// Whether nothing runs or waits.
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.queue.is_empty()
    }
}

enum Outcome {
    Done(SimTime, String),
    Wait(Wait, String),
    Fail(HotplugError),
}

impl Os {
    /// The hot-plug history and state.
    pub fn hotplug(&self) -> &Hotplug {
        &self.hp
    }

    /// The online map once every queued operation has run.
    fn projected_online(&self) -> CpuMask {
        let mut m = self.cur_maps().online.clone();
        let current = self
            .hp
            .current
            .as_ref()
            .map(|c| (c.report.kind, c.report.cpu));
        for (kind, cpu) in current
            .into_iter()
            .chain(self.hp.queue.iter().map(|(_, r)| (r.kind, r.cpu)))
        {
            match kind {
                OpKind::Down => m.clear(cpu),
                OpKind::Up => m.set(cpu),
            }
        }
        m
    }

    fn bound_to(&self, cpu: LogicalCpu) -> Option<(u32, String)> {
        self.tasks
            .iter()
            .find(|t| t.bound && t.kind == crate::sched::TaskKind::User && t.affinity.contains(cpu))
            .map(|t| (t.id.0, t.name.clone()))
    }

    fn check_possible_present(&self, cpu: u32) -> Result<LogicalCpu, HotplugError> {
        let c = LogicalCpu(cpu);
        if cpu as usize >= self.nr || !self.possible.contains(c) {
            return Err(HotplugError::NotPossible {
                cpu,
                nr: self.nr as u32,
                possible: self.possible.weight() as u32,
            });
        }
        if !self.present.contains(c) {
            return Err(HotplugError::NotPresent { cpu });
        }
        Ok(c)
    }

    /// The refusals of taking `c` down given the online map `online`.
    fn check_down(&self, c: LogicalCpu, online: &CpuMask) -> Result<(), HotplugError> {
        if online.contains(c) && online.weight() == 1 {
            return Err(HotplugError::LastOnline { cpu: c.0 });
        }
        if let Some((task, name)) = self.bound_to(c) {
            return Err(HotplugError::BoundTask {
                cpu: c.0,
                task,
                name,
            });
        }
        Ok(())
    }

    /// Asks for logical CPU `cpu` to go down or up (the equivalent of writing 0 or 1 to
    /// `/sys/devices/system/cpu/cpuN/online`, or an ACPI request). Refusals change nothing.
    pub fn request(
        &mut self,
        now: SimTime,
        kind: OpKind,
        cpu: u32,
        trigger: Trigger,
    ) -> Result<Accepted, HotplugError> {
        let eject = trigger == Trigger::AcpiEject;
        let r = self
            .check_outside(cpu, trigger)
            .and_then(|()| self.check_request(kind, cpu, eject));
        match &r {
            Err(e) => {
                self.refusals.push(Refusal {
                    time: now,
                    target: format!("cpu{cpu}"),
                    errno: e.errno(),
                    error: e.to_string(),
                });
                self.emit(
                    now,
                    OsEvent::HotplugRefused {
                        cpu,
                        kind: kind.name(),
                        error: e.to_string(),
                    },
                );
            }
            Ok(false) => {}
            Ok(true) => {
                let op = self.hp.enqueue(Request {
                    kind,
                    cpu: LogicalCpu(cpu),
                    trigger,
                    eject,
                    requested: now,
                });
                if self.hp.current.is_none() {
                    self.hp_kick(now);
                }
                return Ok(Accepted::Queued { op });
            }
        }
        r.map(|_| Accepted::NoChange)
    }

    /// The refusals of a request from outside the kernel's own flows (a user, firmware, a
    /// policy): none while boot is still bringing CPUs up, none for a CPU whose cell an
    /// operation is adding or removing (that operation decides the CPU's state).
    fn check_outside(&self, cpu: u32, trigger: Trigger) -> Result<(), HotplugError> {
        match trigger {
            Trigger::Boot | Trigger::Cell | Trigger::Subsystem | Trigger::Surprise => {
                return Ok(());
            }
            Trigger::User
            | Trigger::AcpiEject
            | Trigger::AcpiDeviceCheck
            | Trigger::Ras
            | Trigger::Power => {}
        }
        if self.booted_at.is_none() {
            return Err(HotplugError::Booting { cpu });
        }
        let Some(pc) = self
            .pcpu
            .get(cpu as usize)
            .filter(|_| (cpu as usize) < self.nr)
        else {
            return Ok(());
        };
        match self.cell_op_on(pc.node) {
            Some((op, what)) => Err(HotplugError::InProgress {
                cpu,
                op,
                what,
                node: pc.node,
            }),
            None => Ok(()),
        }
    }

    /// `Ok(true)`: queue it; `Ok(false)`: nothing to do.
    fn check_request(&self, kind: OpKind, cpu: u32, eject: bool) -> Result<bool, HotplugError> {
        let c = self.check_possible_present(cpu)?;
        let projected = self.projected_online();
        match kind {
            OpKind::Down => {
                if !projected.contains(c) {
                    return Ok(eject);
                }
                self.check_down(c, &projected)?;
                Ok(true)
            }
            OpKind::Up => Ok(!projected.contains(c)),
        }
    }

    /// Records a refused memory, cell or PCI request (`target`: what it asked for) and
    /// reports it; the caller changes nothing.
    pub(crate) fn refuse(
        &mut self,
        now: SimTime,
        target: String,
        errno: &'static str,
        error: String,
    ) {
        self.refusals.push(Refusal {
            time: now,
            target: target.clone(),
            errno,
            error: error.clone(),
        });
        self.emit(
            now,
            OsEvent::RequestRefused {
                target,
                errno,
                error,
            },
        );
    }

    /// Every request refused so far, in order.
    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }

    pub(crate) fn hp_kick(&mut self, at: SimTime) {
        let _ = self.post(
            at,
            OsEv::Hotplug {
                op: START,
                epoch: 0,
            },
        );
    }

    /// A grace period operation `op` waits for has passed. (It may pass inside the very
    /// step that starts waiting, when no CPU has to be waited for: the wakeup is an event of
    /// its own, handled once the step is waiting.)
    pub(crate) fn hp_resume(&mut self, at: SimTime, op: u32) {
        let _ = self.post(at, OsEv::Resume { op, grace: true });
    }

    /// The CPU's migration thread finished what operation `op` asked of it.
    pub(crate) fn hp_signal(&mut self, at: SimTime, op: u32) {
        let _ = self.post(at, OsEv::Resume { op, grace: false });
    }

    /// The wait of `op` for a grace period (`grace`) or for its CPU is over.
    pub(crate) fn hp_wait_over(
        &mut self,
        now: SimTime,
        op: u32,
        grace: bool,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let want = if grace { Wait::GracePeriod } else { Wait::Cpu };
        let waiting = self
            .hp
            .current
            .as_ref()
            .is_some_and(|c| c.report.id == op && c.phase == Phase::Waiting(want));
        if waiting {
            self.hp_advance(now, Input::Go, p, probe);
        }
    }

    pub(crate) fn hp_count_migrated(&mut self, op: u32) {
        if let Some(cur) = self.hp.current.as_mut().filter(|c| c.report.id == op) {
            cur.report.tasks_migrated += 1;
        }
    }

    pub(crate) fn hp_count_work(&mut self, op: u32, timers: usize, work: usize) {
        if let Some(cur) = self.hp.current.as_mut().filter(|c| c.report.id == op) {
            cur.report.timers_moved += timers as u32;
            cur.report.work_moved += work as u32;
        }
    }

    /// The dying CPU flushed its cache (until `flushed`) and halted (at `halted`).
    pub(crate) fn hp_died(
        &mut self,
        op: u32,
        flushed: SimTime,
        halted: SimTime,
        lines: u32,
        dirty: u32,
    ) {
        let skipped = self.defects.has(OsDefect::SkipCacheFlushOnCpuRemove);
        let Some(cur) = self
            .hp
            .current
            .as_mut()
            .filter(|c| c.report.id == op && c.phase == Phase::Waiting(Wait::Died))
        else {
            return;
        };
        cur.report.flushed_lines = lines;
        cur.report.dirty_lines = dirty;
        cur.note = if skipped {
            "skipped (defect skip_cache_flush_on_cpu_remove)".to_owned()
        } else {
            format!("{lines} lines, {dirty} dirty written back")
        };
        self.hp_finish_step(flushed);
        if let Some(cur) = self.hp.current.as_mut() {
            if cur.plan.get(cur.idx) == Some(&Step::Halt) {
                cur.note = "PAL_HALT: back to the firmware rendezvous".into();
                self.hp_finish_step(halted);
            }
        }
        self.hp_next(halted);
    }

    /// Records the current step as finished at `end` and moves to the next one.
    fn hp_finish_step(&mut self, end: SimTime) {
        let Some(cur) = self.hp.current.as_mut() else {
            return;
        };
        let step = cur.plan[cur.idx];
        let rec = StepRecord {
            step,
            start: cur.step_start,
            duration: end - cur.step_start,
            note: std::mem::take(&mut cur.note),
        };
        let op = cur.report.id;
        cur.report.steps.push(rec.clone());
        cur.idx += 1;
        cur.step_start = end;
        cur.phase = Phase::Acting;
        self.emit(
            end,
            OsEvent::HotplugStep {
                op,
                step: rec.step,
                start: rec.start,
                duration: rec.duration,
                note: rec.note,
            },
        );
    }

    /// A hot-plug event: `op`/`epoch` name the operation and transition it belongs to.
    pub(crate) fn hp_event(
        &mut self,
        now: SimTime,
        op: u32,
        epoch: u32,
        watchdog: bool,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        match &self.hp.current {
            None => {
                if op == START {
                    self.hp_start_next(now, p, probe);
                }
            }
            Some(cur) => {
                if cur.report.id != op || cur.epoch != epoch {
                    return;
                }
                let input = if watchdog { Input::Timeout } else { Input::Go };
                self.hp_advance(now, input, p, probe);
            }
        }
    }

    fn hp_start_next(&mut self, now: SimTime, p: &mut Platform, probe: &mut PlatformProbe) {
        let Some((id, r)) = self.hp.queue.pop_front() else {
            return;
        };
        let c = r.cpu;
        let online = self.cur_maps().online.clone();
        let controller = online
            .iter()
            .find(|&x| x != c)
            .or_else(|| online.first())
            .unwrap_or(self.bsp);
        let mut report = OpReport {
            id,
            kind: r.kind,
            cpu: c,
            hw: self.hw(c),
            trigger: r.trigger,
            controller,
            requested: r.requested,
            started: now,
            ended: None,
            result: None,
            steps: Vec::new(),
            tasks_migrated: 0,
            irqs_rerouted: 0,
            timers_moved: 0,
            work_moved: 0,
            flushed_lines: 0,
            dirty_lines: 0,
        };
        // Check again: the machine may have changed since the request.
        let check = self.check_possible_present(c.0).and_then(|_| match r.kind {
            OpKind::Down if online.contains(c) => self.check_down(c, &online),
            OpKind::Down | OpKind::Up => Ok(()),
        });
        let plan: Vec<Step> = match (r.kind, online.contains(c)) {
            (OpKind::Down, true) => {
                let mut v = if self.defects.has(OsDefect::HaltBeforeOffline) {
                    vec![
                        Step::MarkInactive,
                        Step::FlushCache,
                        Step::Halt,
                        Step::MigrateTasks,
                        Step::MigrateIrqs,
                        Step::MigrateWork,
                        Step::StopKthreads,
                        Step::PublishOffline,
                        Step::GracePeriod,
                    ]
                } else {
                    vec![
                        Step::MarkInactive,
                        Step::MigrateTasks,
                        Step::MigrateIrqs,
                        Step::MigrateWork,
                        Step::StopKthreads,
                        Step::PublishOffline,
                        Step::GracePeriod,
                        Step::FlushCache,
                        Step::Halt,
                    ]
                };
                if r.eject {
                    v.push(Step::Eject);
                }
                v
            }
            (OpKind::Down, false) => {
                if r.eject {
                    vec![Step::Eject]
                } else {
                    Vec::new()
                }
            }
            (OpKind::Up, false) => vec![
                Step::Wake,
                Step::InitCpu,
                Step::StartKthreads,
                Step::PublishOnline,
                Step::MarkActive,
            ],
            (OpKind::Up, true) => Vec::new(),
        };
        self.emit(
            now,
            OsEvent::HotplugStart {
                op: id,
                kind: r.kind.name(),
                cpu: c,
                trigger: r.trigger.name(),
            },
        );
        let refused = check.is_err();
        if let Err(e) = check {
            report.result = Some(Err(e));
        }
        self.hp.current = Some(Current {
            report,
            plan,
            idx: 0,
            step_start: now,
            phase: Phase::Acting,
            epoch: 0,
            note: String::new(),
        });
        if refused {
            self.hp_end(now, p, probe);
        } else {
            self.hp_advance(now, Input::Go, p, probe);
        }
    }

    fn hp_advance(
        &mut self,
        now: SimTime,
        input: Input,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let Some(cur) = self.hp.current.as_ref() else {
            return;
        };
        let phase = cur.phase;
        match (phase, input) {
            (Phase::Acting, Input::Go) => {
                let Some(&step) = cur.plan.get(cur.idx) else {
                    if cur.report.result.is_none() {
                        if let Some(c) = self.hp.current.as_mut() {
                            c.report.result = Some(Ok(()));
                        }
                    }
                    self.hp_end(now, p, probe);
                    return;
                };
                if let Some(c) = self.hp.current.as_mut() {
                    c.step_start = now;
                }
                match self.hp_act(now, step, p, probe) {
                    Outcome::Done(end, note) => {
                        let end = end + self.cfg.step_cost;
                        if let Some(c) = self.hp.current.as_mut() {
                            c.note = note;
                        }
                        self.hp_finish_step(end);
                        self.hp_next(end);
                    }
                    Outcome::Wait(w, note) => {
                        let timeout = self.cfg.hung_timeout;
                        if let Some(c) = self.hp.current.as_mut() {
                            c.note = note;
                            c.phase = Phase::Waiting(w);
                            c.epoch = c.epoch.wrapping_add(1);
                            let (op, epoch) = (c.report.id, c.epoch);
                            let _ = self.post(now + timeout, OsEv::Watchdog { op, epoch });
                        }
                    }
                    Outcome::Fail(e) => {
                        if let Some(c) = self.hp.current.as_mut() {
                            c.report.result = Some(Err(e));
                        }
                        self.hp_end(now, p, probe);
                    }
                }
            }
            (Phase::Acting, Input::Timeout) => {}
            (Phase::Waiting(Wait::Died), Input::Go) => {}
            (Phase::Waiting(Wait::GracePeriod | Wait::Cpu), Input::Go) => {
                self.hp_finish_step(now);
                self.hp_next(now);
            }
            (Phase::Waiting(_), Input::Timeout) => {
                let Some(c) = self.hp.current.as_mut() else {
                    return;
                };
                let step = c.plan[c.idx];
                let waited = now - c.step_start;
                c.report.result = Some(Err(HotplugError::Hung {
                    cpu: c.report.cpu.0,
                    step,
                    waited,
                }));
                c.note = format!("hung: waited {waited}");
                self.hp_finish_step(now);
                self.hp_end(now, p, probe);
            }
        }
    }

    /// Schedules the next step's action.
    fn hp_next(&mut self, at: SimTime) {
        if let Some(c) = self.hp.current.as_mut() {
            c.epoch = c.epoch.wrapping_add(1);
            let (op, epoch) = (c.report.id, c.epoch);
            let _ = self.post(at, OsEv::Hotplug { op, epoch });
        }
    }

    fn hp_end(&mut self, now: SimTime, p: &mut Platform, probe: &mut PlatformProbe) {
        let Some(mut cur) = self.hp.current.take() else {
            return;
        };
        cur.report.ended = Some(now);
        let result = cur.report.result.clone().unwrap_or(Ok(()));
        self.emit(
            now,
            OsEvent::HotplugEnd {
                op: cur.report.id,
                result: result.clone().map_err(|e| e.to_string()),
            },
        );
        let c = cur.report.cpu;
        let controller = cur.report.controller;
        let path = self.pcpu[c.index()].path.clone();
        // ACPI-triggered operations end with _OST: source event 3 (eject request) or 1
        // (device check), status 0 for success.
        let source = match cur.report.trigger {
            Trigger::AcpiEject => Some(3),
            Trigger::AcpiDeviceCheck => Some(1),
            Trigger::Boot
            | Trigger::User
            | Trigger::Cell
            | Trigger::Subsystem
            | Trigger::Surprise
            | Trigger::Ras
            | Trigger::Power => None,
        };
        if let Some(source) = source {
            let status = result
                .as_ref()
                .map_or_else(HotplugError::ost_status, |()| 0);
            let _ = self.acpi_eval(
                now,
                controller,
                &format!("{path}._OST"),
                &[AcpiValue::Integer(source), AcpiValue::Integer(status)],
                p,
                probe,
            );
        }
        let boot = cur.report.trigger == Trigger::Boot;
        self.hp.done.push(cur.report);
        if boot {
            self.boot_ops = self.boot_ops.saturating_sub(1);
            if self.boot_ops == 0 && self.booted_at.is_none() {
                self.finish_boot(now, p, probe);
            }
        }
        if !self.hp.queue.is_empty() {
            self.hp_kick(now + self.cfg.step_cost);
        }
    }

    /// Sends a reschedule IPI from `from` to `to` at once (a reader of the current maps for
    /// an instant).
    fn hp_ipi(
        &mut self,
        t: &mut SimTime,
        from: LogicalCpu,
        to: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let v = self.reader_begin(t, from, "hotplug", p, probe);
        self.reader_use(t, from, v, to, p, probe);
        self.send_ipi(*t, from, to, irq::RESCHEDULE_VECTOR, p, probe);
        self.reader_end(*t, from);
    }

    /// Asks `c`'s migration thread for `req` and wakes it.
    fn hp_ask_migration(
        &mut self,
        t: &mut SimTime,
        controller: LogicalCpu,
        c: LogicalCpu,
        req: MigReq,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        self.pcpu[c.index()].mig.push_back(req);
        let m = self.pcpu[c.index()].migration;
        self.wake_kthread(*t, c, m);
        self.hp_ipi(t, controller, c, p, probe);
    }

    fn hp_act(
        &mut self,
        now: SimTime,
        step: Step,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Outcome {
        let Some(cur) = self.hp.current.as_ref() else {
            return Outcome::Done(now, String::new());
        };
        let (op, c, ctl) = (cur.report.id, cur.report.cpu, cur.report.controller);
        // The step's accesses happen at its start; its bookkeeping cost comes after.
        let mut t = now;
        match step {
            Step::MarkInactive => {
                let mut maps = self.cur_maps().clone();
                maps.active.clear(c);
                let note = format!("active {}", maps.active);
                match self.publish_maps(&mut t, ctl, maps, p, probe) {
                    Ok(old) => {
                        self.call_rcu(t, ctl, Callback::FreeMaps(old), p, probe);
                        self.call_rcu(t, ctl, Callback::Wake(op), p, probe);
                        Outcome::Wait(Wait::GracePeriod, note)
                    }
                    Err(e) => Outcome::Done(t, e.to_string()),
                }
            }
            Step::MigrateTasks => {
                if self.defects.has(OsDefect::SkipTaskMigration) {
                    return Outcome::Done(t, "skipped (defect skip_task_migration)".into());
                }
                let n = self.pcpu[c.index()].load(&self.tasks);
                self.hp_ask_migration(&mut t, ctl, c, MigReq::Evacuate { op }, p, probe);
                Outcome::Wait(Wait::Cpu, format!("{n} user tasks on its runqueue"))
            }
            Step::MigrateIrqs => {
                if self.defects.has(OsDefect::SkipIrqReroute) {
                    let n = self.irqs.routed_to(c).len();
                    return Outcome::Done(
                        t,
                        format!("skipped (defect skip_irq_reroute): {n} IRQs still on {c}"),
                    );
                }
                let n = self.migrate_irqs(&mut t, c, ctl, p, probe);
                if let Some(cur) = self.hp.current.as_mut() {
                    cur.report.irqs_rerouted = n;
                }
                Outcome::Done(t, format!("{n} IRQs re-routed"))
            }
            Step::MigrateWork => {
                self.hp_ask_migration(&mut t, ctl, c, MigReq::Takeover { op, to: ctl }, p, probe);
                Outcome::Wait(Wait::Cpu, format!("timers and softirq work to {ctl}"))
            }
            Step::StopKthreads => {
                self.hp_ask_migration(&mut t, ctl, c, MigReq::Park { op }, p, probe);
                Outcome::Wait(Wait::Cpu, "ksoftirqd and migration thread parked".into())
            }
            Step::PublishOffline => {
                let mut maps = self.cur_maps().clone();
                maps.online.clear(c);
                maps.active.clear(c);
                let note = format!("online {}", maps.online);
                match self.publish_maps(&mut t, ctl, maps, p, probe) {
                    Ok(old) => {
                        if self.defects.has(OsDefect::SkipRcuGracePeriod) {
                            self.free_maps(&mut t, old, ctl, p, probe);
                        } else {
                            self.call_rcu(t, ctl, Callback::FreeMaps(old), p, probe);
                        }
                        Outcome::Done(t, note)
                    }
                    Err(e) => Outcome::Done(t, e.to_string()),
                }
            }
            Step::GracePeriod => {
                if self.defects.has(OsDefect::SkipRcuGracePeriod) {
                    return Outcome::Done(now, "skipped (defect skip_rcu_grace_period)".into());
                }
                self.call_rcu(now, ctl, Callback::Wake(op), p, probe);
                Outcome::Wait(Wait::GracePeriod, "synchronize_rcu".into())
            }
            Step::FlushCache => {
                self.pcpu[c.index()].dying = Some(op);
                self.kick(c, now);
                Outcome::Wait(Wait::Died, String::new())
            }
            Step::Halt => Outcome::Done(now, "halted with the flush".into()),
            Step::Eject => {
                let path = self.pcpu[c.index()].path.clone();
                let r = self.acpi_eval(
                    now,
                    ctl,
                    &format!("{path}._EJ0"),
                    &[AcpiValue::Integer(1)],
                    p,
                    probe,
                );
                let gone = !crate::acpi::is_present(p, &path);
                if gone {
                    self.present.clear(c);
                    self.pcpu[c.index()].life = CpuLife::NotPresent;
                }
                let note = match r {
                    Ok(_) if gone => "_EJ0: firmware powered the processor off".to_owned(),
                    Ok(_) => "_EJ0 evaluated; _STA still reports it present".to_owned(),
                    Err(e) => format!("_EJ0 failed: {e}"),
                };
                Outcome::Done(t, note)
            }
            Step::Wake => {
                let dest = self.pcpu[c.index()].lsapic;
                match p.wake_cpu(now, self.hw(ctl), dest, probe) {
                    Ok(_) => {
                        self.pcpu[c.index()].life = CpuLife::Coming;
                        Outcome::Done(t, format!("woken by {ctl}"))
                    }
                    Err(e) => Outcome::Fail(HotplugError::WakeFailed {
                        cpu: c.0,
                        reason: e.to_string(),
                    }),
                }
            }
            Step::InitCpu => {
                self.init_cpu(&mut t, c, p, probe);
                Outcome::Done(
                    t.max(now + self.cfg.init_cost),
                    "idle task, timer, interrupts, per-CPU area, RCU".into(),
                )
            }
            Step::StartKthreads => {
                self.start_kthreads(t, c);
                Outcome::Done(t, format!("migration/{0}, ksoftirqd/{0}", c.0))
            }
            Step::PublishOnline => {
                let mut maps = self.cur_maps().clone();
                maps.online.set(c);
                let note = format!("online {}", maps.online);
                match self.publish_maps(&mut t, c, maps, p, probe) {
                    Ok(old) => {
                        self.call_rcu(t, c, Callback::FreeMaps(old), p, probe);
                        Outcome::Done(t, note)
                    }
                    Err(e) => Outcome::Done(t, e.to_string()),
                }
            }
            Step::MarkActive => {
                let mut maps = self.cur_maps().clone();
                maps.active.set(c);
                let note = format!("active {}", maps.active);
                match self.publish_maps(&mut t, ctl, maps, p, probe) {
                    Ok(old) => {
                        self.call_rcu(t, ctl, Callback::FreeMaps(old), p, probe);
                        self.kick(c, t);
                        Outcome::Done(t, note)
                    }
                    Err(e) => Outcome::Done(t, e.to_string()),
                }
            }
        }
    }

    /// Re-routes every IRQ whose destination is `c` to an active CPU (its affinity if it
    /// can, any active CPU if not), reprogramming the IO SAPIC entries as `ctl`.
    fn migrate_irqs(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        ctl: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> u32 {
        let list = self.irqs.routed_to(c);
        let hw = self.hw(ctl);
        let mut n = 0;
        for i in list {
            let v = self.reader_begin(t, ctl, "irq affinity", p, probe);
            let maps = self.maps_version(v).clone();
            let d = self.irqs.descs()[i].clone();
            let count = |x: LogicalCpu| self.irqs.descs().iter().filter(|e| e.target == x).count();
            let target = maps
                .active
                .iter()
                .filter(|&x| x != c && d.affinity.contains(x))
                .min_by_key(|&x| (count(x), x.0))
                .or_else(|| maps.active.iter().find(|&x| x != c));
            let Some(to) = target else {
                self.reader_end(*t, ctl);
                continue;
            };
            self.reader_use(t, ctl, v, to, p, probe);
            let dest = self.pcpu[to.index()].lsapic;
            irq::program_rte(
                p,
                probe,
                t,
                hw,
                d.sapic_base,
                d.entry,
                d.vector,
                dest,
                false,
            );
            self.reader_end(*t, ctl);
            if let Some(e) = self.irqs.get_mut(i) {
                e.target = to;
                e.rerouted += 1;
            }
            self.emit(
                *t,
                OsEvent::IrqRouted {
                    gsi: d.gsi,
                    vector: d.vector,
                    cpu: to,
                    from: Some(c),
                },
            );
            n += 1;
        }
        n
    }

    /// Handles firmware's pending notifications (the SCI), on CPU `c`.
    pub(crate) fn acpi_notifications(
        &mut self,
        now: SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        for n in p.take_notifications() {
            self.emit(
                now,
                OsEvent::AcpiNotify {
                    path: n.path.clone(),
                    code: n.code.code(),
                },
            );
            let code = n.code.code();
            // A module or memory device with memory: the memory (and whole-cell) flow.
            let mems: Vec<(String, u32)> = self
                .scan
                .memory
                .iter()
                .filter(|m| m.path == n.path || m.path.starts_with(&format!("{}.", n.path)))
                .map(|m| (m.path.clone(), m.node))
                .collect();
            if let Some((mpath, node)) = mems.first().cloned() {
                let whole_cell = mpath != n.path;
                let kind = match (n.code, whole_cell) {
                    (acpi_model::NotifyCode::EjectRequest, true) => MemOpKind::CellRemove,
                    (acpi_model::NotifyCode::EjectRequest, false) => MemOpKind::Offline,
                    (
                        acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck,
                        true,
                    ) => MemOpKind::CellAdd,
                    (
                        acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck,
                        false,
                    ) => MemOpKind::Online,
                };
                let trigger = match n.code {
                    acpi_model::NotifyCode::EjectRequest => Trigger::AcpiEject,
                    acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck => {
                        Trigger::AcpiDeviceCheck
                    }
                };
                let remove = matches!(kind, MemOpKind::CellRemove | MemOpKind::Offline);
                if let Err(e) = self.check_cell_request(&n.path, node, remove) {
                    self.refuse_notification(now, c, &n.path, code, &e, p, probe);
                    continue;
                }
                if matches!(kind, MemOpKind::CellAdd | MemOpKind::Online) {
                    // Firmware says something arrived: re-read presence of its processors.
                    for x in self.possible.iter().collect::<Vec<_>>() {
                        let path = self.pcpu[x.index()].path.clone();
                        if path.starts_with(&format!("{}.", n.path))
                            && crate::acpi::is_present(p, &path)
                            && !self.present.contains(x)
                        {
                            self.present.set(x);
                            self.pcpu[x.index()].life = CpuLife::Offline;
                        }
                    }
                }
                self.mem_enqueue(MemRequest {
                    kind,
                    blocks: Vec::new(),
                    node: Some(node),
                    trigger,
                    acpi_path: Some(n.path.clone()),
                    requested: now,
                });
                continue;
            }
            // A hot-plug slot: the ACPI PCI hot-plug driver.
            if let Some((sun, enabled)) = self
                .pcihp
                .slots
                .iter()
                .find(|s| s.path == n.path)
                .map(|s| (s.sun.0, s.enabled))
            {
                let card = crate::acpi::is_present(p, &n.path);
                let op = match n.code {
                    acpi_model::NotifyCode::EjectRequest => {
                        Some((crate::pcihp::PciOpKind::Eject, Trigger::AcpiEject))
                    }
                    // A device or bus check: bring up what arrived; what is gone goes.
                    acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck => {
                        match (card, enabled) {
                            (true, false) => {
                                Some((crate::pcihp::PciOpKind::Enable, Trigger::AcpiDeviceCheck))
                            }
                            (false, true) => {
                                Some((crate::pcihp::PciOpKind::Disable, Trigger::AcpiDeviceCheck))
                            }
                            (true, true) | (false, false) => None,
                        }
                    }
                };
                let status = match op {
                    None => Some(0),
                    Some((kind, trigger)) => match self.pci_request(now, sun, kind, trigger) {
                        Ok(Accepted::Queued { .. }) => None,
                        Ok(Accepted::NoChange) => Some(0),
                        Err(e) => Some(e.ost_status()),
                    },
                };
                if let Some(status) = status {
                    let _ = self.acpi_eval(
                        now,
                        c,
                        &format!("{}._OST", n.path),
                        &[
                            AcpiValue::Integer(u64::from(code)),
                            AcpiValue::Integer(status),
                        ],
                        p,
                        probe,
                    );
                }
                continue;
            }
            // An I/O subsystem's module device: the whole subsystem comes or goes.
            if !self.subsystem_bridges(&n.path).is_empty() {
                let (add, trigger) = match n.code {
                    acpi_model::NotifyCode::EjectRequest => (false, Trigger::AcpiEject),
                    acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck => {
                        (true, Trigger::AcpiDeviceCheck)
                    }
                };
                let present = crate::acpi::is_present(p, &n.path);
                if let Err(e) = self.pci_subsystem_request(now, &n.path, add, present, trigger) {
                    let _ = self.acpi_eval(
                        now,
                        c,
                        &format!("{}._OST", n.path),
                        &[
                            AcpiValue::Integer(u64::from(code)),
                            AcpiValue::Integer(e.ost_status()),
                        ],
                        p,
                        probe,
                    );
                }
                continue;
            }
            let cpus: Vec<LogicalCpu> = self
                .possible
                .iter()
                .filter(|x| {
                    let path = &self.pcpu[x.index()].path;
                    *path == n.path || path.starts_with(&format!("{}.", n.path))
                })
                .collect();
            if cpus.is_empty() {
                // Not a processor or a module holding processors: not handled by this OS yet.
                let _ = self.acpi_eval(
                    now,
                    c,
                    &format!("{}._OST", n.path),
                    &[
                        AcpiValue::Integer(u64::from(code)),
                        AcpiValue::Integer(0x80),
                    ],
                    p,
                    probe,
                );
                continue;
            }
            // A module's eject takes its whole board away: not when memory is interleaved
            // (the board holds lines of every page).
            let module = cpus.iter().all(|x| self.pcpu[x.index()].path != n.path);
            if let (acpi_model::NotifyCode::EjectRequest, true, Some(m)) =
                (n.code, module, self.scan.interleaved_memory())
            {
                let e = MemError::Interleaved {
                    path: n.path.clone(),
                    memory: m.path.clone(),
                };
                self.refuse_notification(now, c, &n.path, code, &e, p, probe);
                continue;
            }
            for x in cpus {
                let path = self.pcpu[x.index()].path.clone();
                let (kind, trigger, ost) = match n.code {
                    acpi_model::NotifyCode::EjectRequest => (OpKind::Down, Trigger::AcpiEject, 3),
                    acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck => {
                        if crate::acpi::is_present(p, &path) && !self.present.contains(x) {
                            self.present.set(x);
                            self.pcpu[x.index()].life = CpuLife::Offline;
                        }
                        (OpKind::Up, Trigger::AcpiDeviceCheck, 1)
                    }
                };
                if kind == OpKind::Up && !self.present.contains(x) {
                    continue;
                }
                match self.request(now, kind, x.0, trigger) {
                    Ok(Accepted::Queued { .. }) => {}
                    Ok(Accepted::NoChange) => {
                        let _ = self.acpi_eval(
                            now,
                            c,
                            &format!("{path}._OST"),
                            &[AcpiValue::Integer(ost), AcpiValue::Integer(0)],
                            p,
                            probe,
                        );
                    }
                    Err(e) => {
                        let _ = self.acpi_eval(
                            now,
                            c,
                            &format!("{path}._OST"),
                            &[AcpiValue::Integer(ost), AcpiValue::Integer(e.ost_status())],
                            p,
                            probe,
                        );
                    }
                }
            }
        }
    }

    /// Refuses firmware's notification `code` on `path` (nothing changes) and tells firmware
    /// why with `_OST`, as CPU `c`.
    #[allow(clippy::too_many_arguments)]
    fn refuse_notification(
        &mut self,
        now: SimTime,
        c: LogicalCpu,
        path: &str,
        code: u8,
        e: &MemError,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        self.refuse(now, path.to_owned(), e.errno(), e.to_string());
        let _ = self.acpi_eval(
            now,
            c,
            &format!("{path}._OST"),
            &[
                AcpiValue::Integer(u64::from(code)),
                AcpiValue::Integer(e.ost_status()),
            ],
            p,
            probe,
        );
    }

    /// A summary of the CPU maps for messages.
    pub fn describe_maps(maps: &CpuMaps) -> String {
        format!("online {} active {}", maps.online, maps.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_the_linux_errno_and_an_ost_status() {
        let cases = [
            (
                HotplugError::NotPossible {
                    cpu: 9,
                    nr: 8,
                    possible: 8,
                },
                "EINVAL",
                0x80,
            ),
            (HotplugError::NotPresent { cpu: 3 }, "EINVAL", 0x80),
            (HotplugError::LastOnline { cpu: 0 }, "EBUSY", 0x82),
            (
                HotplugError::BoundTask {
                    cpu: 2,
                    task: 7,
                    name: "bound/2".into(),
                },
                "EBUSY",
                0x81,
            ),
        ];
        for (e, errno, ost) in cases {
            assert_eq!(e.errno(), errno, "{e}");
            assert_eq!(e.ost_status(), ost, "{e}");
        }
        assert_eq!(
            HotplugError::LastOnline { cpu: 0 }.to_string(),
            "cpu0 is the last online CPU"
        );
    }
}
