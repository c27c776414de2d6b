//! # os-model — the simplified Linux-like OS
//!
//! ```text
//!   boot (ACPI scan) ── logical CPUs: possible / present / online / active
//!        │                        (online + active published through RCU)
//!        ├─ per-CPU runqueues, migration thread, ksoftirqd, ticks, load balancing
//!        ├─ IRQ descriptors → IO SAPIC entries; IPIs (reschedule, cross-call)
//!        ├─ card driver (top half / bottom half); ACPI PCI hot-plug of slots (crate::pcihp)
//!        └─ CPU hot-remove / hot-add state machines (crate::hotplug)
//!              │ every access: memory, MMIO, config, IPIs, HALT
//!              ▼
//!        acpi_model::Platform (hardware + firmware) ── PlatformProbe (trace, hw checkers)
//!   memory: nodes, zones, buddy, page tables, page cache, swap (crate::mm, crate::memory)
//!        └─ memory and cell hot-remove / hot-add, page migration (crate::memhotplug)
//!   OsEvent stream ──► OsCheckers: CHK-3 task data, CHK-4 scheduler, CHK-5 RCU, CHK-6 IRQs,
//!                                  CHK-7 allocator
//!   RAS policy (SAL corrected-error log) and power policy (crate::policy)
//!   Os::sysfs ──► the Linux sysfs view (crate::sysfs)
//! ```
//!
//! The OS discovers the machine only through the ACPI namespace ([`acpi`]), reaches the
//! hardware only through the platform's access paths ([`hw`]), and runs as discrete events
//! in simulated time ([`kernel`]), so that hot-plug interleaves with the workload and the
//! races of the real thing exist.

pub mod acpi;
pub mod check;
pub mod config;
pub mod cpumask;
pub mod driver;
pub mod event;
pub mod hotplug;
pub mod hw;
pub mod irq;
pub mod kernel;
pub mod memhotplug;
pub mod mm;
mod notify;
pub mod ops;
pub mod pcihp;
pub mod policy;
pub mod rcu;
pub mod sched;
pub mod sysfs;

pub use check::{OsChecker, OsCheckers};
pub use config::{BoundTask, OsConfig, OsDefect};
pub use cpumask::{CpuMask, LogicalCpu};
pub use driver::{CardDriver, DRIVER, DriverConfig, DriverStats};
pub use event::{OsEvent, Step, TaskId};
pub use hotplug::{Accepted, HotplugError, OpKind, OpReport, Trigger};
pub use kernel::{CpuMaps, Os, OsError, OsStats};
