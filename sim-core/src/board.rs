//! The life of a board in a slot — a cell board or an I/O subsystem: inserted, powered,
//! powered off, pulled out (also while powered: a surprise removal).
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
//! Every `(state, event)` pair is listed in [`BoardState::on`].

use std::fmt;

use serde::Serialize;

/// Presence and power of a board slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardState {
    /// The slot is empty.
    Absent,
    /// A board is inserted but not powered.
    PoweredOff,
    /// Powered and working.
    PoweredOn,
}

/// What can happen to a board slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardEvent {
    /// A board is put into the slot.
    Insert,
    /// Power applied.
    PowerOn,
    /// Power removed.
    PowerOff,
    /// The board is pulled out.
    Remove,
}

impl BoardState {
    /// The state after `ev`, or `None` if not allowed.
    pub const fn on(self, ev: BoardEvent) -> Option<BoardState> {
        use BoardEvent as E;
        use BoardState as S;
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

    /// Whether the board works.
    pub const fn is_powered(self) -> bool {
        matches!(self, BoardState::PoweredOn)
    }
}

impl fmt::Display for BoardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BoardState::Absent => "absent",
            BoardState::PoweredOff => "powered off",
            BoardState::PoweredOn => "powered on",
        })
    }
}

impl fmt::Display for BoardEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BoardEvent::Insert => "insert",
            BoardEvent::PowerOn => "power on",
            BoardEvent::PowerOff => "power off",
            BoardEvent::Remove => "remove",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_drawn_transitions_are_allowed() {
        let states = [
            BoardState::Absent,
            BoardState::PoweredOff,
            BoardState::PoweredOn,
        ];
        let events = [
            BoardEvent::Insert,
            BoardEvent::PowerOn,
            BoardEvent::PowerOff,
            BoardEvent::Remove,
        ];
        let allowed: Vec<_> = states
            .iter()
            .flat_map(|&s| {
                events
                    .iter()
                    .filter_map(move |&e| s.on(e).map(|t| (s, e, t)))
            })
            .collect();
        use BoardEvent as E;
        use BoardState as S;
        assert_eq!(
            allowed,
            vec![
                (S::Absent, E::Insert, S::PoweredOff),
                (S::PoweredOff, E::PowerOn, S::PoweredOn),
                (S::PoweredOff, E::Remove, S::Absent),
                (S::PoweredOn, E::PowerOff, S::PoweredOff),
                (S::PoweredOn, E::Remove, S::Absent),
            ]
        );
    }
}
