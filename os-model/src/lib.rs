//! # os-model — the simplified OS (not built yet)
//!
//! What will live here (SPEC OS-CPU-*, OS-MEM-*, OS-IO-*, OS-IF-*; issues 4–6):
//!
//! ```text
//!   boot from ACPI ── CPU maps (possible/present/online/active, RCU-published)
//!        │         ├─ scheduler: per-CPU runqueues, migration thread, ksoftirqd
//!        │         ├─ memory: nodes, zones, buddy allocator, rmap, TLBs, migration
//!        │         └─ I/O: ACPI PCI hot-plug driver, IRQ descriptors, IO SAPIC programming
//!        └── hot-plug state machines over simulated time; sysfs view (Linux ABI)
//! ```
//!
//! The OS will reach the hardware only through the machine's access paths, so that every
//! access can be checked. Nothing is implemented yet.
