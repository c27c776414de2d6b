//! # io-subsystem — the I/O hardware: subsystems, PCI, cards, IO SAPICs
//!
//! ```text
//!   I/O subsystem i ─┬─ IO SAPIC (GSI base, redirection entries: vector, dest LSAPIC, mask)
//!                    │        ▲ INTx lines                       │ messages
//!                    └─ host bridge b (bus numbers, I/O ports, MMIO windows)    ▼
//!                          └─ slots (power, attention) ── cards (config space,  InterruptPort
//!                                                          BARs, DMA engine) ──► DmaPort
//!   cell k ── chipset function (Cell Configuration Space, config space only)
//!   system IO SAPIC (chipset, in no subsystem, never removed) ◄── SCI (input 0, firmware)
//! ```
//!
//! [`IoFabric`] holds it all and is the only way in: MMIO, configuration and port accesses,
//! card ticks (periodic DMA), slot power, card insertion and removal (also by surprise),
//! subsystem insert / power / remove. It reaches memory and CPUs only through the
//! [`sim_core::DmaPort`] and [`sim_core::InterruptPort`] of its [`IoEnv`], so it never depends
//! on the `cells` crate, and reports everything as [`IoEvent`]s to the same environment.
//! [`check`] holds the I/O side of CHK-1, CHK-6 and CHK-7.

pub mod alloc;
pub mod check;
pub mod config;
pub mod defect;
pub mod device;
pub mod event;
pub mod fabric;
pub mod pci;
pub mod sapic;
pub mod state;

pub use config::{DeviceConfig, DeviceKind, IoConfig, IoConfigError, Surroundings};
pub use defect::IoDefect;
pub use device::{Device, DeviceId};
pub use event::{IoEnv, IoEvent, IoObserver, IoOutcome, IoScope, IoTarget, Space};
pub use fabric::IoFabric;
pub use state::{IoError, SubsystemEvent, SubsystemState};
