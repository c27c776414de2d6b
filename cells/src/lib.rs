//! # cells — the cell hardware: CPUs, caches, directory coherence, memory
//!
//! ```text
//!   cell 0                      cell 1                          cell N-1
//!  ┌──────────────────────┐   ┌──────────────────────┐        ┌───────────┐
//!  │ CPU0 CPU1 .. CPUk    │   │ CPU..                │        │           │
//!  │  │    │        │     │   │                      │  ...   │           │
//!  │ $L3  $L3      $L3    │   │  (write-back caches, │        │           │
//!  │  └────┴──┬─────┘     │   │   MOESI or MESI)     │        │           │
//!  │   directory (home of │   │  directory           │        │           │
//!  │   this cell's lines) │   │                      │        │           │
//!  │   memory [range]     │   │  memory [range]      │        │           │
//!  └──────────┬───────────┘   └──────────┬───────────┘        └─────┬─────┘
//!             └───────────── crossbar (remote latency) ─────────────┘
//! ```
//!
//! [`Machine`] owns everything and is the only way in: coherent loads and stores
//! ([`Machine::load`], [`Machine::store`]), the non-coherent path ([`Machine::read_uncached`]),
//! cache flush, CPU start/halt/power, cell insert/power/remove, and MCA error injection. Each
//! call reports what happened as [`HwEvent`]s to an [`HwObserver`] — normally a [`Probe`] that
//! hashes them into the trace and shows them to the checkers of [`check`] (CHK-1 hardware side,
//! CHK-2).
//!
//! * [`config`] — the `[machine]` table and its validation; nothing hard-codes 8 cells or 4
//!   CPUs.
//! * [`topology`] — address map (per-cell or interleaved), latency model, NUMA distances.
//! * [`cpu`], [`cell`] — the state machines of CPUs and cell boards.
//! * [`cache`], [`directory`], [`memory`] — dense storage of caches, sparse directories, lazily
//!   allocated memory with per-frame metadata.
//! * [`defect`] — injectable cache-model bugs that the checkers must catch.
//! * [`tester`] — a gem5-Ruby-style random tester.

pub mod cache;
pub mod cell;
pub mod check;
pub mod config;
pub mod cpu;
pub mod defect;
pub mod directory;
pub mod event;
pub mod machine;
pub mod memory;
pub mod tester;
pub mod topology;

pub use cell::{CellError, CellState};
pub use config::{ConfigError, MachineConfig};
pub use cpu::{CpuError, CpuState, Taken};
pub use defect::CacheDefect;
pub use event::{
    AccessKind, HwEvent, HwObserver, McaTarget, Outcome, Probe, Served, SnoopKind, UncachedSpace,
    WriteBackCause,
};
pub use machine::{Access, AccessError, Machine, MachineStats};
pub use tester::{RandomTester, TesterConfig};
