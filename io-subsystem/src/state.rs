//! Presence and power of an I/O subsystem: the board life of [`sim_core::board`], and the
//! errors of I/O hardware operations.

use sim_core::IoSubsystemId;
use thiserror::Error;

/// Presence and power of an I/O subsystem slot (the board life shared with cells).
pub use sim_core::board::BoardState as SubsystemState;

/// What can happen to it. Power-on resets its IO SAPIC (every entry masked) and leaves its
/// slots unpowered; power-off drops every card's state.
pub use sim_core::board::BoardEvent as SubsystemEvent;

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
