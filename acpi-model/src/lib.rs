//! # acpi-model — firmware (not built yet)
//!
//! What will live here (SPEC ACPI-1..4; issue 3):
//!
//! ```text
//!   \_SB_ ── one ACPI0004 module device per cell ── processors (_MAT, _STA, _EJ0, _PXM)
//!        │                                      └── PNP0C80 memory device (_CRS)
//!        └── one ACPI0004 module device per I/O subsystem ── host bridge(s) (_CRS windows,
//!                                                           _PRT), IO SAPIC (_GSB), slots (_SUN)
//!   SCI ── Notify(device-check 0x01 / eject-request 0x03 / bus-check 0x00) ──► OS
//!   export ── DSDT (+ SRAT, SLIT, MADT) as real AML bytecode
//! ```
//!
//! Method results will be computed from the live hardware state in `cells` and
//! `io-subsystem`, never from a copy of it. Nothing is implemented yet.
