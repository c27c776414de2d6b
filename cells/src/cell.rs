//! Cell boards: presence and power, with the board state machine of
//! [`sim_core::board`].
//!
//! Powering a cell on zeroes its memory and brings its CPUs to present-halted; powering it off
//! (or pulling it while powered) loses its memory, its CPUs' caches and its directory. The
//! hardware does not refuse any of this — real firmware powers a board off when told to — so
//! whatever the OS still touches afterwards is found by the checkers.

use sim_core::CellId;
use thiserror::Error;

/// Presence and power of a cell slot (the board life shared with I/O subsystems).
pub use sim_core::board::BoardState as CellState;

/// What can happen to a cell slot.
pub use sim_core::board::BoardEvent as CellEvent;

/// Why a cell operation was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CellError {
    /// The slot does not exist.
    #[error("{cell} does not exist (the machine has {count} cell slots)")]
    NoSuchCell {
        /// The id asked for.
        cell: CellId,
        /// How many slots exist.
        count: usize,
    },
    /// The operation needs a powered cell.
    #[error("cannot {operation} {cell}: it is {state}")]
    NotPowered {
        /// The cell.
        cell: CellId,
        /// Its state.
        state: CellState,
        /// What was asked, as a verb phrase.
        operation: &'static str,
    },
    /// The event is not allowed in the slot's state.
    #[error("cannot {event} {cell}: it is {state}")]
    Transition {
        /// The cell.
        cell: CellId,
        /// Its state.
        state: CellState,
        /// The refused event.
        event: CellEvent,
    },
}

/// One cell slot.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Slot number.
    pub id: CellId,
    /// Presence and power.
    pub state: CellState,
    /// Times a board was inserted into this slot (0 for a board present at start).
    pub generation: u32,
    /// Uncorrected memory errors injected on this cell.
    pub uncorrected_errors: u64,
    /// Whether the cell's memory controller decodes its range (firmware can disable it, e.g.
    /// when the memory device is ejected, while the cell stays powered).
    pub memory_enabled: bool,
}

impl Cell {
    /// Whether the cell's memory can be accessed: powered and enabled.
    #[inline]
    pub fn memory_online(&self) -> bool {
        self.state.is_powered() && self.memory_enabled
    }
}
