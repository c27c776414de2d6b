//! # acpi-model — the platform and its firmware
//!
//! ```text
//!            ┌──────────────────── Platform ─────────────────────┐
//!   OS ────► │ load/store ─► memory (cells::Machine) │ MMIO ─► IoFabric │
//!            │ config / ports ──────────────────────► IoFabric        │
//!            │ evaluate(\_SB_…) ─► namespace objects ◄─ live hardware  │
//!            │ _EJ0/_PS0/_PS3/_OST ─► firmware mailbox ─► power, eject  │
//!            │ SCI: Notify(bus-check 0 / device-check 1 / eject 3) queue│
//!            │ export: DSDT (AML), MADT, SRAT, SLIT                    │
//!            └─────────────────────────────────────────────────────────┘
//!   IoFabric ── DmaPort/InterruptPort ──► cells::Machine; every event ──► PlatformProbe
//! ```
//!
//! * [`platform`] — [`Platform`]: the cell and I/O hardware wired together, the CPU access
//!   paths (memory, MMIO, configuration, ports), firmware actions, and [`PlatformProbe`].
//! * [`namespace`] — the ACPI namespace tree (ACPI-1).
//! * [`firmware`] — SCI/Notify queue, `_OST` log, the mailbox (ACPI-2, ACPI-3).
//! * [`aml`], [`tables`], [`resources`] — real AML and tables (ACPI-4).

pub mod aml;
pub mod firmware;
pub mod namespace;
pub mod platform;
pub mod resources;
pub mod tables;
pub mod value;

pub use firmware::{CorrectedLog, FwEvent, Notification, NotifyCode, NotifyId};
pub use namespace::{Namespace, NodeKind};
pub use platform::{AcpiError, BootError, Platform, PlatformConfig, PlatformError, PlatformProbe};
pub use value::AcpiValue;

/// The hardware a platform is built from and driven with, for the harness around it (the
/// scenario runner, tests): the machine's and the I/O fabric's configuration, and the
/// physical events a test bench applies — a cell powered, a CPU powered on, a subsystem
/// pulled. An OS reaches the hardware through [`Platform`] only; a test of the OS builds and
/// handles the platform through these, so the OS crate names no hardware crate.
pub mod hw {
    pub use cells::cell::CellEvent;
    pub use cells::config::MemoryMode;
    pub use cells::cpu::CpuEvent;
    pub use cells::{CpuState, MachineConfig, McaTarget};
    pub use io_subsystem::config::{DeviceConfig, DeviceKind};
    pub use io_subsystem::{DeviceId, IoConfig, IoDefect, SubsystemEvent};
}
