//! Integration tests of the cell hardware model, one file per behaviour.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

mod chk1_access;
mod chk2_defects;
mod dma;
mod hotplug;
mod interrupts;
mod property;
mod protocol;
mod tester;
mod uncached;
