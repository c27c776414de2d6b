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

pub use firmware::{CorrectedLog, FwEvent, Notification, NotifyCode};
pub use namespace::{Namespace, NodeKind};
pub use platform::{AcpiError, BootError, Platform, PlatformConfig, PlatformError, PlatformProbe};
pub use value::AcpiValue;
