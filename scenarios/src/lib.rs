//! # scenarios — the scenario language, the runner and the `sim` command
//!
//! ```text
//!   file.toml ──► scenario::Scenario::load ──► validated Scenario (errors: file:line:col: field)
//!                                                   │
//!                       runner::run (seed) ◄────────┘   sweep::sweep (seeds, rayon)
//!                            │  EventQueue: CPU steps, timeline actions, audits, end
//!                            ▼
//!         acpi_model::Platform (cells + I/O + firmware) + PlatformProbe (trace hash, every
//!         hardware checker) + RandomTester + IoExerciser (a minimal driver for the cards)
//!                            │
//!                            ▼
//!         report::summary (human) / report::json (--json) / Chrome trace (--trace)
//! ```
//!
//! The `sim` binary (`src/bin/sim.rs`) is a thin command line over these modules.

pub mod io_driver;
pub mod locate;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sweep;

pub use runner::{RunOptions, RunResult, run};
pub use scenario::{Scenario, ScenarioError};
