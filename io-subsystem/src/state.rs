//! Presence and power of an I/O subsystem (the same life as a cell board).
//!
//! ```text
//!            Insert              PowerOn
//!   Absent ─────────► PoweredOff ───────► PoweredOn
//!     ▲                 │    ▲               │  │
//!     │     Remove      │    └── PowerOff ───┘  │
//!     ├─────────────────┘                       │
//!     └─────────── Remove (surprise: while powered) ┘
//! ```

use std::fmt;

use serde::Serialize;
use sim_core::IoSubsystemId;
use thiserror::Error;

/// Presence and power of an I/O subsystem slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubsystemState {
    /// Empty.
    Absent,
    /// Inserted, unpowered.
    PoweredOff,
    /// Working.
    PoweredOn,
}

/// What can happen to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubsystemEvent {
    /// Put in.
    Insert,
    /// Power applied: the IO SAPIC resets with every entry masked, slots stay unpowered.
    PowerOn,
    /// Power removed: every card and the IO SAPIC lose their state.
    PowerOff,
    /// Pulled out.
    Remove,
}

impl SubsystemState {
    /// The state after `ev`, or `None` if not allowed.
    pub const fn on(self, ev: SubsystemEvent) -> Option<SubsystemState> {
        use SubsystemEvent as E;
        use SubsystemState as S;
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

    /// Whether it works.
    pub const fn is_powered(self) -> bool {
        matches!(self, SubsystemState::PoweredOn)
    }
}

impl fmt::Display for SubsystemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubsystemState::Absent => "absent",
            SubsystemState::PoweredOff => "powered off",
            SubsystemState::PoweredOn => "powered on",
        })
    }
}

impl fmt::Display for SubsystemEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubsystemEvent::Insert => "insert",
            SubsystemEvent::PowerOn => "power on",
            SubsystemEvent::PowerOff => "power off",
            SubsystemEvent::Remove => "remove",
        })
    }
}

/// Why an I/O hardware operation was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum IoError {
    /// No such subsystem.
    #[error("{subsystem} does not exist (the machine has {count} I/O subsystem slots)")]
    NoSuchSubsystem {
        /// The id asked for.
        subsystem: IoSubsystemId,
        /// How many exist.
        count: usize,
    },
    /// The event is not allowed in the subsystem's state.
    #[error("cannot {event} {subsystem}: it is {state}")]
    Transition {
        /// The subsystem.
        subsystem: IoSubsystemId,
        /// Its state.
        state: SubsystemState,
        /// The refused event.
        event: SubsystemEvent,
    },
    /// No such slot.
    #[error("slot {slot} does not exist (slots are numbered 1 to {count})")]
    NoSuchSlot {
        /// The number asked for.
        slot: u16,
        /// How many exist.
        count: usize,
    },
    /// The slot's subsystem is not powered.
    #[error("slot {slot} cannot change power: its I/O subsystem is {state}")]
    SubsystemDown {
        /// The slot.
        slot: u16,
        /// Its subsystem's state.
        state: SubsystemState,
    },
    /// Inserting into an occupied slot, or removing from an empty one.
    #[error("slot {slot} {why}")]
    Slot {
        /// The slot.
        slot: u16,
        /// What is wrong.
        why: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_cells() {
        assert_eq!(
            SubsystemState::PoweredOn.on(SubsystemEvent::Remove),
            Some(SubsystemState::Absent)
        );
        assert_eq!(SubsystemState::Absent.on(SubsystemEvent::PowerOn), None);
    }
}
