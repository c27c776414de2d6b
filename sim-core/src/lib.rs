//! # sim-core — the engine under every cellsim model
//!
//! ```text
//!             scenario seed
//!                  │
//!   ┌──────────────▼───────────────┐      ┌──────────────────────────┐
//!   │ RngStreams ─► SimRng per     │      │ EventQueue<E>            │
//!   │ component (name, index)      │      │ key (SimTime, seq): FIFO │
//!   └──────────────────────────────┘      │ for equal times          │
//!                                         └────────────┬─────────────┘
//!   models (cells, io-subsystem, acpi-model, os-model) │ pop / schedule
//!                  │ emit(time, event)                  ▼
//!   ┌──────────────▼───────────────┐      ┌──────────────────────────┐
//!   │ Trace: every event hashed    │      │ Checker<E, V>::observe   │
//!   │ (StableHasher), records kept │      │ / audit ─► Violations    │
//!   │ by level ─► Chrome JSON      │      │ (time, checker, agent,   │
//!   └──────────────────────────────┘      │  target, message)        │
//!                                         └──────────────────────────┘
//! ```
//!
//! * [`time`] — integer simulated time ([`SimTime`], [`SimDuration`]); never the host clock.
//! * [`queue`] — the event queue and its ordering contract.
//! * [`rng`] — seeded, per-component random streams.
//! * [`ids`], [`addr`] — typed ids and addresses with checked arithmetic.
//! * [`hash`], [`trace`] — the stable trace hash and the kept records.
//! * [`check`] — checkers, violations.
//! * [`port`] — how devices reach memory (DMA) and CPUs (interrupts) without the hardware
//!   crates depending on each other.
//!
//! Model code built on this crate is pure: no threads, no I/O, no wall clock.

pub mod abi;
pub mod addr;
pub mod board;
pub mod check;
pub mod hash;
pub mod ids;
pub mod port;
pub mod queue;
pub mod rng;
pub mod time;
pub mod trace;
pub mod window;

pub use addr::{ByteSize, Pfn, PhysAddr};
pub use board::{BoardEvent, BoardState};
pub use check::{Checker, CheckerId, CheckerSet, Violation, Violations};
pub use hash::{StableHash, StableHasher};
pub use ids::{CellId, CpuId, Entity, Gsi, IoSubsystemId, LsapicId, OsId, SlotId};
pub use port::{Bdf, Delivery, DmaError, DmaPort, InterruptPort, MsgTag};
pub use queue::{EventId, EventQueue, QueueError};
pub use rng::{RngStreams, SimRng};
pub use time::{SimDuration, SimTime};
pub use trace::{Trace, TraceEvent, TraceHash, TraceLevel, TraceRecord};
