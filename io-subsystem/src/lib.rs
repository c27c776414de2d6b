//! # io-subsystem — I/O hardware (not built yet)
//!
//! What will live here (SPEC HW-5, HW-6, HW-7; issue 3):
//!
//! ```text
//!   I/O subsystem ── PCI host bridge(s) ── windows: bus numbers, I/O ports, MMIO
//!        │                 └── slots (power, presence, attention) ── devices (config space,
//!        │                                                           BARs, INTx, DMA)
//!        └── IO SAPIC (GSI base, redirection table: vector, dest LSAPIC id, mask)
//! ```
//!
//! DMA into memory and interrupt delivery to CPUs will go through interfaces defined in
//! `sim-core`, so that this crate and `cells` stay siblings that never depend on each other.
//! Nothing is implemented yet; this crate only reserves its place in the dependency graph.
