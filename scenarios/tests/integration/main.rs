//! Integration tests of the scenario language, the runner and the `sim` command.

#![allow(clippy::unwrap_used, missing_docs)]

mod cli;
mod common;
mod defects;
mod determinism;
mod expect;
mod generative;
mod goldens;
mod hostile;
mod library;
mod long_runs;
mod memory;
mod os;
mod sysfs;
