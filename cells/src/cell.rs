//! Cell boards: presence and power.
//!
//! ```text
//!            Insert              PowerOn
//!   Absent ─────────► PoweredOff ───────► PoweredOn
//!     ▲                 │    ▲               │  │
//!     │     Remove      │    └── PowerOff ───┘  │
//!     ├─────────────────┘                       │
//!     └─────────── Remove (surprise: while powered) ┘
//! ```
//!
//! Powering a cell on zeroes its memory and brings its CPUs to present-halted; powering it off
//! (or pulling it while powered) loses its memory, its CPUs' caches and its directory. The
//! hardware does not refuse any of this — real firmware powers a board off when told to — so
//! whatever the OS still touches afterwards is found by the checkers.

use std::fmt;

use serde::Serialize;
use sim_core::CellId;
use thiserror::Error;

/// Presence and power of a cell slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    /// The slot is empty.
    Absent,
    /// A board is inserted but not powered.
    PoweredOff,
    /// Powered: memory and CPUs usable.
    PoweredOn,
}

/// What can happen to a cell slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellEvent {
    /// A board is put into the slot.
    Insert,
    /// Power applied.
    PowerOn,
    /// Power removed.
    PowerOff,
    /// The board is pulled out.
    Remove,
}

impl CellState {
    /// The state after `ev`, or `None` if not allowed.
    pub const fn on(self, ev: CellEvent) -> Option<CellState> {
        use CellEvent as E;
        use CellState as S;
        match (self, ev) {
            (S::Absent, E::Insert) => Some(S::PoweredOff),
            (S::Absent, E::PowerOn) => None,
            (S::Absent, E::PowerOff) => None,
            (S::Absent, E::Remove) => None,
            (S::PoweredOff, E::Insert) => None,
            (S::PoweredOff, E::PowerOn) => Some(S::PoweredOn),
            (S::PoweredOff, E::PowerOff) => None,
            (S::PoweredOff, E::Remove) => Some(S::Absent),
            (S::PoweredOn, E::Insert) => None,
            (S::PoweredOn, E::PowerOn) => None,
            (S::PoweredOn, E::PowerOff) => Some(S::PoweredOff),
            (S::PoweredOn, E::Remove) => Some(S::Absent),
        }
    }

    /// Whether memory and CPUs of the cell can work.
    pub const fn is_powered(self) -> bool {
        matches!(self, CellState::PoweredOn)
    }
}

impl fmt::Display for CellState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CellState::Absent => "absent",
            CellState::PoweredOff => "powered off",
            CellState::PoweredOn => "powered on",
        })
    }
}

impl fmt::Display for CellEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CellEvent::Insert => "insert",
            CellEvent::PowerOn => "power on",
            CellEvent::PowerOff => "power off",
            CellEvent::Remove => "remove",
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surprise_removal_is_allowed_but_double_insert_is_not() {
        assert_eq!(
            CellState::PoweredOn.on(CellEvent::Remove),
            Some(CellState::Absent)
        );
        assert_eq!(CellState::PoweredOff.on(CellEvent::Insert), None);
        assert_eq!(CellState::Absent.on(CellEvent::PowerOn), None);
        assert_eq!(
            CellState::Absent
                .on(CellEvent::Insert)
                .and_then(|s| s.on(CellEvent::PowerOn)),
            Some(CellState::PoweredOn)
        );
    }
}
