//! # scenarios — the scenario language, the runner and the `sim` command
//!
//! ```text
//!   file.toml ──► scenario::Scenario::load ──► validated Scenario (errors: file:line:col: field)
//!                                                   │
//!                       runner::run (seed) ◄────────┘   sweep::sweep (seeds, rayon)
//!                            │  EventQueue: card ticks, timeline actions, audits, end
//!                            │  (+ tester steps and IRQ service, or the OS's own queue)
//!                            ▼
//!         acpi_model::Platform (cells + I/O + firmware) + PlatformProbe (trace hash, every
//!         hardware checker)
//!           workload.kind = "random_tester": RandomTester + IoExerciser (the OS's card driver
//!                                            run on the bare platform)
//!           workload.kind = "os":            os_model::Os + OsCheckers (CHK-3/4/5/6)
//!                            │
//!                            ▼
//!         figures (named numbers of the run, judged by [[expect.figures]]) ──► expectations
//!                            │
//!                            ▼
//!         report::summary (human) / report::json (--json) / Chrome trace (--trace) /
//!         sysfs_out (--sysfs-out: the OS's sysfs views as system roots)
//! ```
//!
//! The `sim` binary (`src/bin/sim.rs`) is a thin command line over these modules.

pub mod action;
pub mod figures;
pub mod generate;
pub mod io_driver;
pub mod locate;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sweep;
pub mod sysfs_out;

pub use runner::{RunOptions, RunResult, run};
pub use scenario::{Scenario, ScenarioError};
