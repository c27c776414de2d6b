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

mod steps;

use crate::hw::Cx;
use acpi_model::NotifyId;
use serde::Serialize;
use sim_core::{CpuId, SimDuration, SimTime};
use thiserror::Error;

use crate::config::OsDefect;
use crate::cpumask::{CpuMask, LogicalCpu};
use crate::event::{OsEvent, Step};
use crate::kernel::{Os, OsEv};
use crate::memhotplug::MemFlow;
pub use crate::ops::{Accepted, Refusal, Trigger};
use crate::ops::{Begun, Engine, Flow, FlowKind, Input, Next, Op, OpTarget, OstStatus, Report};

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

crate::ops::flow_names!(OpKind, Step, HotplugError);

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
        /// The logical CPU number (`cpuN` in sysfs).
        cpu: u32,
    },
    /// It is the last online CPU.
    #[error("cpu{cpu} is the last online CPU")]
    LastOnline {
        /// The logical CPU number (`cpuN` in sysfs).
        cpu: u32,
    },
    /// A task is hard-bound to it.
    #[error("cpu{cpu} has task {task} ({name}) hard-bound to it")]
    BoundTask {
        /// The logical CPU number (`cpuN` in sysfs).
        cpu: u32,
        /// The task's id.
        task: u32,
        /// Its name in reports.
        name: String,
    },
    /// A step waited too long (the operation was abandoned half done).
    #[error("step {step} for cpu{cpu} did not finish within {waited}")]
    Hung {
        /// The logical CPU number (`cpuN` in sysfs).
        cpu: u32,
        /// The step that waited too long.
        step: Step,
        /// How long it waited.
        waited: SimDuration,
    },
    /// Firmware could not wake the CPU.
    #[error("firmware could not wake cpu{cpu}: {reason}")]
    WakeFailed {
        /// The logical CPU number (`cpuN` in sysfs).
        cpu: u32,
        /// Why.
        reason: String,
    },
    /// Boot is still bringing CPUs up: hot-plug requests are taken once it has finished.
    #[error("cpu{cpu}: boot has not finished (secondary CPUs are still being brought up)")]
    Booting {
        /// The logical CPU number (`cpuN` in sysfs).
        cpu: u32,
    },
    /// An operation on the CPU's cell is queued or running: it decides the CPU's state.
    #[error("cpu{cpu}: memory operation {op} ({what}) on its node{node} is in progress")]
    InProgress {
        /// The logical CPU number (`cpuN` in sysfs).
        cpu: u32,
        /// The operation's number.
        op: u32,
        /// What it does.
        what: &'static str,
        /// The NUMA node (the cell, by `_PXM`).
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
    pub const fn ost_status(&self) -> OstStatus {
        match self {
            HotplugError::NotPossible { .. } | HotplugError::NotPresent { .. } => {
                OstStatus::NotSupported
            }
            HotplugError::BoundTask { .. } => OstStatus::InUse,
            HotplugError::LastOnline { .. }
            | HotplugError::Booting { .. }
            | HotplugError::InProgress { .. } => OstStatus::Busy,
            HotplugError::Hung { .. } | HotplugError::WakeFailed { .. } => OstStatus::Failure,
        }
    }
}

/// A request waiting for the hot-plug lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Down or up.
    pub kind: OpKind,
    /// The logical CPU (the kernel's number for it, not the hardware id).
    pub cpu: LogicalCpu,
    /// Who asked.
    pub trigger: Trigger,
    /// Eject through firmware at the end (ACPI eject requests).
    pub eject: bool,
    /// When it was asked.
    pub requested: SimTime,
    /// The firmware notification that asked, if one did.
    pub cause: Option<NotifyId>,
}

/// What a CPU operation's report records beyond the common fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CpuOpDetail {
    /// The logical CPU (the kernel's number for it, not the hardware id).
    pub cpu: LogicalCpu,
    /// Its hardware id.
    pub hw: CpuId,
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

/// The report of one CPU operation.
pub type OpReport = Report<CpuFlow>;
/// One finished step of a CPU operation.
pub type StepRecord = crate::ops::StepRecord<Step>;
/// The CPU hot-plug lock, queue and history.
pub type Hotplug = Engine<CpuFlow>;

/// CPU hot-remove and hot-add as an engine flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuFlow {}

/// What a CPU step waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// An RCU grace period (the callback wakes the operation).
    GracePeriod,
    /// The CPU's migration thread to finish what it was asked.
    Cpu,
    /// The dying CPU to flush its cache and halt.
    Died,
}

impl Flow for CpuFlow {
    type Kind = OpKind;
    type Step = Step;
    type Error = HotplugError;
    type Detail = CpuOpDetail;
    const KIND: FlowKind = FlowKind::Cpu;
    const RECORD_FAILED_STEP: bool = false;
    type Host = Os;
    type Request = Request;
    type Wait = Wait;
    type State = ();

    fn engine(os: &Os) -> &Engine<Self> {
        &os.hp
    }

    fn engine_mut(os: &mut Os) -> &mut Engine<Self> {
        &mut os.hp
    }

    fn begin(os: &mut Os, now: SimTime, id: u32, r: &Request) -> Begun<Self> {
        let c = r.cpu;
        let online = os.cur_maps().online.clone();
        let controller = online
            .iter()
            .find(|&x| x != c)
            .or_else(|| online.first())
            .unwrap_or(os.boot_cpu());
        let report = Report {
            id,
            kind: r.kind,
            trigger: r.trigger,
            controller,
            requested: r.requested,
            cause: r.cause,
            started: now,
            ended: None,
            result: None,
            steps: Vec::new(),
            detail: CpuOpDetail {
                cpu: c,
                hw: os.hw(c),
                tasks_migrated: 0,
                irqs_rerouted: 0,
                timers_moved: 0,
                work_moved: 0,
                flushed_lines: 0,
                dirty_lines: 0,
            },
        };
        // Check again: the machine may have changed since the request.
        let refused = CpuFlow::check_possible_present(os, c.0)
            .and_then(|_| match r.kind {
                OpKind::Down if online.contains(c) => CpuFlow::check_down(os, c, &online),
                OpKind::Down | OpKind::Up => Ok(()),
            })
            .err();
        Begun {
            report,
            plan: CpuFlow::plan(os, r, online.contains(c)),
            state: (),
            refused,
        }
    }

    fn target(op: &Op<Self>) -> OpTarget {
        OpTarget::Cpu(op.report.cpu)
    }

    fn act(os: &mut Os, now: SimTime, step: Step, cx: &mut Cx<'_>) -> Next<Self> {
        CpuFlow::step(os, now, step, cx)
    }

    fn resume(_os: &mut Os, now: SimTime, wait: Wait, _cx: &mut Cx<'_>) -> Option<Next<Self>> {
        match wait {
            // The dying CPU reports itself (`died`), with the times of its flush and halt.
            Wait::Died => None,
            Wait::GracePeriod | Wait::Cpu => Some(Next::Over(now)),
        }
    }

    fn hung(op: &Op<Self>, _wait: Wait, step: Step, waited: SimDuration) -> HotplugError {
        HotplugError::Hung {
            cpu: op.report.cpu.0,
            step,
            waited,
        }
    }

    fn ended(os: &mut Os, now: SimTime, cx: &mut Cx<'_>) {
        let boot = os
            .hp
            .done()
            .last()
            .is_some_and(|r| r.trigger == Trigger::Boot);
        // Boot ends with its last bring-up.
        if boot && os.boot_op_done() && os.booted_at().is_none() {
            os.finish_boot(now, cx);
        }
    }

    fn restart_delay(os: &Os) -> SimDuration {
        os.config().step_cost
    }
}

impl CpuFlow {
    /// The steps of request `r` (`online`: whether its CPU is online now).
    fn plan(os: &Os, r: &Request, online: bool) -> Vec<Step> {
        match (r.kind, online) {
            (OpKind::Down, true) => {
                let mut v = if os.has_defect(OsDefect::HaltBeforeOffline) {
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
        }
    }

    /// Asks for logical CPU `cpu` to go down or up; `cause`: the firmware notification
    /// that asked, if one did. Refusals change nothing.
    pub(crate) fn request(
        os: &mut Os,
        now: SimTime,
        kind: OpKind,
        cpu: u32,
        trigger: Trigger,
        cause: Option<NotifyId>,
    ) -> Result<Accepted, HotplugError> {
        let eject = trigger == Trigger::AcpiEject;
        let r = CpuFlow::check_outside(os, cpu, trigger)
            .and_then(|()| CpuFlow::check_request(os, kind, cpu, eject));
        match &r {
            Err(e) => {
                os.record_refusal(Refusal {
                    time: now,
                    target: format!("cpu{cpu}"),
                    errno: e.errno(),
                    error: e.to_string(),
                    cause,
                });
                os.emit(
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
                let req = Request {
                    kind,
                    cpu: LogicalCpu(cpu),
                    trigger,
                    eject,
                    requested: now,
                    cause,
                };
                let op = crate::ops::enqueue::<CpuFlow>(os, now, req);
                return Ok(Accepted::Queued { op });
            }
        }
        r.map(|_| Accepted::NoChange)
    }

    /// The operation, running or queued, that takes `c` down, if one does.
    pub(crate) fn op_taking_down(os: &Os, c: LogicalCpu) -> Option<u32> {
        let down = |r: &Request| r.kind == OpKind::Down && r.cpu == c;
        os.hp
            .running()
            .filter(|o| down(&o.req))
            .map(|o| o.report.id)
            .or_else(|| os.hp.pending().find(|(_, r)| down(r)).map(|(id, _)| id))
    }

    /// The online map once every queued operation has run.
    pub(crate) fn projected_online(os: &Os) -> CpuMask {
        let mut m = os.cur_maps().online.clone();
        for (kind, cpu) in os.hp.pending().map(|(_, r)| (r.kind, r.cpu)) {
            match kind {
                OpKind::Down => m.clear(cpu),
                OpKind::Up => m.set(cpu),
            }
        }
        m
    }

    pub(crate) fn bound_to(os: &Os, cpu: LogicalCpu) -> Option<(u32, String)> {
        os.tasks
            .iter()
            .find(|t| t.bound && t.kind == crate::sched::TaskKind::User && t.affinity.contains(cpu))
            .map(|t| (t.id.0, t.name.clone()))
    }

    pub(crate) fn check_possible_present(os: &Os, cpu: u32) -> Result<LogicalCpu, HotplugError> {
        let c = LogicalCpu(cpu);
        if cpu as usize >= os.nr_cpus() || !os.possible.contains(c) {
            return Err(HotplugError::NotPossible {
                cpu,
                nr: os.nr_cpus() as u32,
                possible: os.possible.weight() as u32,
            });
        }
        if !os.present.contains(c) {
            return Err(HotplugError::NotPresent { cpu });
        }
        Ok(c)
    }

    /// The refusals of taking `c` down given the online map `online`.
    pub(crate) fn check_down(os: &Os, c: LogicalCpu, online: &CpuMask) -> Result<(), HotplugError> {
        if online.contains(c) && online.weight() == 1 {
            return Err(HotplugError::LastOnline { cpu: c.0 });
        }
        if let Some((task, name)) = CpuFlow::bound_to(os, c) {
            return Err(HotplugError::BoundTask {
                cpu: c.0,
                task,
                name,
            });
        }
        Ok(())
    }

    /// The refusals of a request from outside the kernel's own flows (a user, firmware, a
    /// policy): none while boot is still bringing CPUs up, none for a CPU whose cell an
    /// operation is adding or removing (that operation decides the CPU's state).
    pub(crate) fn check_outside(os: &Os, cpu: u32, trigger: Trigger) -> Result<(), HotplugError> {
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
        if os.booted_at().is_none() {
            return Err(HotplugError::Booting { cpu });
        }
        let Some(pc) = os
            .pcpu
            .get(cpu as usize)
            .filter(|_| (cpu as usize) < os.nr_cpus())
        else {
            return Ok(());
        };
        match MemFlow::cell_op_on(os, pc.node) {
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
    pub(crate) fn check_request(
        os: &Os,
        kind: OpKind,
        cpu: u32,
        eject: bool,
    ) -> Result<bool, HotplugError> {
        let c = CpuFlow::check_possible_present(os, cpu)?;
        let projected = CpuFlow::projected_online(os);
        match kind {
            OpKind::Down => {
                if !projected.contains(c) {
                    return Ok(eject);
                }
                CpuFlow::check_down(os, c, &projected)?;
                Ok(true)
            }
            OpKind::Up => Ok(!projected.contains(c)),
        }
    }

    /// Records a refused memory, cell or PCI request (`target`: what it asked for) and
    /// reports it; the caller changes nothing.
    pub(crate) fn refuse(
        os: &mut Os,
        now: SimTime,
        target: String,
        errno: &'static str,
        error: String,
    ) {
        CpuFlow::refuse_for(os, now, target, errno, error, None);
    }

    /// [`CpuFlow::refuse`], for firmware's notification `cause`.
    pub(crate) fn refuse_for(
        os: &mut Os,
        now: SimTime,
        target: String,
        errno: &'static str,
        error: String,
        cause: Option<NotifyId>,
    ) {
        os.record_refusal(Refusal {
            time: now,
            target: target.clone(),
            errno,
            error: error.clone(),
            cause,
        });
        os.emit(
            now,
            OsEvent::RequestRefused {
                target,
                errno,
                error,
            },
        );
    }

    /// A grace period operation `op` waits for has passed. (It may pass inside the very
    /// step that starts waiting, when no CPU has to be waited for: the wakeup is an event of
    /// its own, handled once the step is waiting.)
    pub(crate) fn hp_resume(os: &mut Os, at: SimTime, op: u32) {
        os.post(at, OsEv::Resume { op, grace: true });
    }

    /// The CPU's migration thread finished what operation `op` asked of it.
    pub(crate) fn hp_signal(os: &mut Os, at: SimTime, op: u32) {
        os.post(at, OsEv::Resume { op, grace: false });
    }

    /// The wait of `op` for a grace period (`grace`) or for its CPU is over.
    pub(crate) fn hp_wait_over(os: &mut Os, now: SimTime, op: u32, grace: bool, cx: &mut Cx<'_>) {
        let want = if grace { Wait::GracePeriod } else { Wait::Cpu };
        let waiting = os
            .hp
            .running()
            .is_some_and(|c| c.report.id == op && c.wait == Some(want));
        if waiting {
            crate::ops::advance::<CpuFlow>(os, now, Input::Go, cx);
        }
    }

    pub(crate) fn hp_count_migrated(os: &mut Os, op: u32) {
        if let Some(cur) = os.hp.running_op(op) {
            cur.report.tasks_migrated += 1;
        }
    }

    pub(crate) fn hp_count_work(os: &mut Os, op: u32, timers: usize, work: usize) {
        if let Some(cur) = os.hp.running_op(op) {
            cur.report.timers_moved += timers as u32;
            cur.report.work_moved += work as u32;
        }
    }

    /// The dying CPU flushed its cache (until `flushed`) and halted (at `halted`).
    pub(crate) fn hp_died(
        os: &mut Os,
        op: u32,
        flushed: SimTime,
        halted: SimTime,
        lines: u32,
        dirty: u32,
    ) {
        let skipped = os.has_defect(OsDefect::SkipCacheFlushOnCpuRemove);
        let Some(cur) = os.hp.running_op(op).filter(|c| c.wait == Some(Wait::Died)) else {
            return;
        };
        cur.report.flushed_lines = lines;
        cur.report.dirty_lines = dirty;
        let note = if skipped {
            "skipped (defect skip_cache_flush_on_cpu_remove)".to_owned()
        } else {
            format!("{lines} lines, {dirty} dirty written back")
        };
        crate::ops::finish_step::<CpuFlow>(os, flushed, note);
        if os.hp.running().and_then(Op::step) == Some(Step::Halt) {
            let note = "PAL_HALT: back to the firmware rendezvous".to_owned();
            crate::ops::finish_step::<CpuFlow>(os, halted, note);
        }
        crate::ops::schedule::<CpuFlow>(os, halted);
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
            assert_eq!(e.ost_status().code(), ost, "{e}");
        }
        assert_eq!(
            HotplugError::LastOnline { cpu: 0 }.to_string(),
            "cpu0 is the last online CPU"
        );
    }
}
