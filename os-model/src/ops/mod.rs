//! The one hot-plug operation engine: every CPU, memory / cell and PCI operation runs here.
//!
//! ```text
//!  request ─► admission (the flow's checks: EBUSY / EINVAL, nothing changes on refusal)
//!          ─► queue ─► start (plan = the flow's steps for this request; Start event)
//!          ─► step: act ─► Next::Done      → record, step_cost, next step
//!                        ─► Next::Wait     → wait for a signal, hung-op watchdog armed
//!                        ─► Next::Poll     → look again at a later time
//!                        ─► Next::Again    → act again (same step) later
//!                        ─► Next::Fail     → undo, record, end
//!          ─► end: report (result, steps), End event, _OST to firmware (ACPI triggers),
//!                  the next queued request starts
//! ```
//!
//! A flow ([`Flow`]) is the kind of operation: its request, plan, one method per step and
//! what a wait resumes to. The engine ([`Engine`]) owns the queue, the running operation
//! (plan, step index, per-step records, epochs) and the finished reports; the driving
//! functions below move an operation through its plan over simulated time. Every event the
//! engine posts carries the operation number and an epoch, so a stale event (from a step
//! already left, or a watchdog of a wait already over) is recognised and dropped.

mod engine;

use std::fmt;

use serde::Serialize;
use sim_core::{SimDuration, SimTime};

use crate::cpumask::LogicalCpu;

pub use engine::{Begun, Completion, Engine, Flow, Host, Input, Next, Op, OpEvent};
pub(crate) use engine::{
    adopt, advance, child_ended, enqueue, finish_step, kick, on_event, queue_only, schedule,
};

pub use crate::event::{FlowKind, OpTarget};

/// What asked for an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Boot brings up secondary CPUs.
    Boot,
    /// A user wrote to sysfs (`cpuN/online`, `memoryN/state`, a slot's `power`).
    User,
    /// Firmware sent an eject request (Notify 0x03).
    AcpiEject,
    /// Firmware sent a device check (Notify 0x01) or bus check (0x00).
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

/// The status argument of `_OST` (ACPI 6.5 §6.3.5, table "General Processing Status Codes"
/// and the eject-request codes), one list for every flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OstStatus {
    /// The request was carried out (or there was nothing to do).
    Success = 0,
    /// Non-specific failure (a step failed or hung, a CPU could not be woken).
    Failure = 1,
    /// The OS does not support the request for this device (no such device, wrong state,
    /// interleaved memory, not enough memory elsewhere).
    NotSupported = 0x80,
    /// The device is in use (unmovable pages, a bound task, a busy card).
    InUse = 0x81,
    /// The device is busy (another operation owns it, boot has not finished).
    Busy = 0x82,
}

impl OstStatus {
    /// The code firmware reads.
    pub const fn code(self) -> u64 {
        self as u64
    }
}

/// A hot-plug request refused at once: nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// When.
    pub time: SimTime,
    /// What was asked for: `cpuN`, `memoryN`, `slot N`, or the device path of an ACPI
    /// notification.
    pub target: String,
    /// The errno a Linux system call would return (`EBUSY`, `EINVAL`, …).
    pub errno: &'static str,
    /// The reason.
    pub error: String,
    /// The firmware notification refused, if it was one.
    pub cause: Option<acpi_model::NotifyId>,
}

/// What a request led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Queued as operation number `op` (it runs when those before it are done).
    Queued {
        /// Operation number.
        op: u32,
    },
    /// Nothing to do: the device is (or will be) in the asked state already.
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

/// One finished step of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepRecord<S> {
    /// Which step of its flow.
    pub step: S,
    /// When it started.
    pub start: SimTime,
    /// How long it took.
    pub duration: SimDuration,
    /// What it did.
    pub note: String,
}

/// The report of one operation: what every flow records, and the flow's own `detail`
/// (reachable directly: `report.cpu` reads `report.detail.cpu`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(bound = "")]
pub struct Report<F: Flow> {
    /// Operation number (per flow, from 0).
    pub id: u32,
    /// What it does.
    pub kind: F::Kind,
    /// Who asked.
    pub trigger: Trigger,
    /// The CPU that ran the operation (moved off a CPU the operation takes away).
    pub controller: LogicalCpu,
    /// When it was asked.
    pub requested: SimTime,
    /// The firmware notification that asked for it, if one did ([`acpi_model::NotifyId`]).
    pub cause: Option<acpi_model::NotifyId>,
    /// When it started.
    pub started: SimTime,
    /// When it ended.
    pub ended: Option<SimTime>,
    /// How it ended (`None`: still running).
    pub result: Option<Result<(), F::Error>>,
    /// Its steps, in order.
    pub steps: Vec<StepRecord<F::Step>>,
    /// What only this flow records.
    pub detail: F::Detail,
}

impl<F: Flow> Report<F> {
    /// Simulated time from start to end.
    pub fn duration(&self) -> Option<SimDuration> {
        self.ended.map(|e| e - self.started)
    }
}

impl<F: Flow> std::ops::Deref for Report<F> {
    type Target = F::Detail;
    fn deref(&self) -> &F::Detail {
        &self.detail
    }
}

impl<F: Flow> std::ops::DerefMut for Report<F> {
    fn deref_mut(&mut self) -> &mut F::Detail {
        &mut self.detail
    }
}

/// Gives a flow's kind, step and error enums the engine's naming traits from their own
/// inherent methods: `name()` for the kind and the step (the step's number is its
/// discriminant), `ost_status()` for the error.
macro_rules! flow_names {
    ($kind:ty, $step:ty, $error:ty) => {
        impl $crate::ops::KindName for $kind {
            fn name(self) -> &'static str {
                <$kind>::name(self)
            }
        }

        impl $crate::ops::StepName for $step {
            fn name(self) -> &'static str {
                <$step>::name(self)
            }
            fn index(self) -> u8 {
                self as u8
            }
        }

        impl $crate::ops::OpError for $error {
            fn ost(&self) -> $crate::ops::OstStatus {
                self.ost_status()
            }
            fn errno(&self) -> &'static str {
                <$error>::errno(self)
            }
        }
    };
}
pub(crate) use flow_names;

/// A step type's name in reports and the trace, and its number in the trace hash.
pub trait StepName: Copy {
    /// `mark_inactive`, `isolate`, `power_on`, …
    fn name(self) -> &'static str;
    /// Its position in the step enum.
    fn index(self) -> u8;
}

/// An operation kind's name in reports.
pub trait KindName: Copy {
    /// `down`, `cell_remove`, `enable`, …
    fn name(self) -> &'static str;
}

/// What a failure tells firmware, and the errno a sysfs write gets.
pub trait OpError: Clone + fmt::Display {
    /// The `_OST` status.
    fn ost(&self) -> OstStatus;
    /// The errno (`EBUSY`, `EINVAL`, `ETIMEDOUT`, …).
    fn errno(&self) -> &'static str;
}
