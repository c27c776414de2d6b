//! Integration tests of the OS model: boot, CPU hot-plug under load, the RCU/IPI race, the
//! defects and their checkers, random request sequences.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
mod defects;
mod disk;
mod hotplug;
mod layering;
mod memory;
mod pci;
mod policy;
mod proptests;
mod rcu_ipi;
mod refusals;
mod sysfs;
mod two_kernels;
