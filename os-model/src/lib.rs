//! # os-model — the simplified Linux-like OS
//!
//! ```text
//!   boot (ACPI scan, restricted to the kernel's cells) ── logical CPUs: possible / present /
//!        │                                                 online / active (RCU-published)
//!        ├─ kernel/: the instance — event loop, per-CPU runqueues, migration thread,
//!        │    ksoftirqd, ticks, IRQs and IPIs, the card driver, requests and views
//!        ├─ ops/: the one hot-plug engine (queue, plan, steps, epochs, watchdog, _OST)
//!        │    ├─ hotplug/    CPU hot-remove / hot-add            (CpuFlow)
//!        │    ├─ memhotplug/ memory and whole-cell operations     (MemFlow)
//!        │    └─ pcihp/      PCI slots and I/O subsystems         (PciFlow)
//!        ├─ notify: ACPI notifications → the flows, by the device's _HID
//!        └─ mm/: nodes, zones, buddy, mem_map, page tables, page cache, swap, faults
//!              │ every access: memory, MMIO, config, IPIs, DMA, PAL calls
//!              ▼
//!        acpi_model::Platform (hardware + firmware) ── PlatformProbe (trace, hw checkers)
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
pub mod ids;
pub mod install;
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
pub use install::{disk_slot, install_disk};
pub use kernel::{AML_EVAL, CpuMaps, Os, OsError, OsStats};
