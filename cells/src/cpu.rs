//! CPUs: identity (hardware id, cell, LSAPIC id/eid) and the power/run state machine.
//!
//! ```text
//!            PowerOn               Start
//!   Absent ──────────► PresentHalted ──────► Running
//!     ▲                     │                 │  ▲
//!     │ PowerOff            │ PowerOff   Halt │  │ Start (cache re-initialised)
//!     └─────────────────────┴──── Halted ◄────┘  │
//!     ▲                             └────────────┘
//!     └──── PowerOff (from Running or Halted: the cache's contents are lost)
//! ```
//!
//! Every `(state, event)` pair is listed in [`CpuState::on`]; the ones not drawn are refused
//! with [`CpuError::Transition`]. A halted or absent CPU must never receive an interrupt, IPI or
//! coherence request that needs an answer (SPEC HW-2); the CHK-1 checker reports any that do.

use std::fmt;

use serde::Serialize;
use sim_core::{CellId, CpuId, LsapicId, MsgTag};
use thiserror::Error;

/// Where a CPU is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuState {
    /// Not powered (or its cell slot is empty).
    Absent,
    /// Powered and waiting in the firmware rendezvous loop for a start request.
    PresentHalted,
    /// Executing.
    Running,
    /// Stopped by PAL_HALT; its cache no longer answers coherence requests.
    Halted,
}

/// What can happen to a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuEvent {
    /// Its cell (or the CPU alone) is powered on.
    PowerOn,
    /// Firmware wakes it (boot rendezvous or hot-add).
    Start,
    /// PAL_HALT.
    Halt,
    /// Power removed.
    PowerOff,
}

impl CpuState {
    /// The state after `ev`, or `None` if `ev` is not allowed in this state.
    pub const fn on(self, ev: CpuEvent) -> Option<CpuState> {
        use CpuEvent as E;
        use CpuState as S;
        match (self, ev) {
            (S::Absent, E::PowerOn) => Some(S::PresentHalted),
            (S::Absent, E::Start) => None,
            (S::Absent, E::Halt) => None,
            (S::Absent, E::PowerOff) => None,
            (S::PresentHalted, E::PowerOn) => None,
            (S::PresentHalted, E::Start) => Some(S::Running),
            (S::PresentHalted, E::Halt) => None,
            (S::PresentHalted, E::PowerOff) => Some(S::Absent),
            (S::Running, E::PowerOn) => None,
            (S::Running, E::Start) => None,
            (S::Running, E::Halt) => Some(S::Halted),
            (S::Running, E::PowerOff) => Some(S::Absent),
            (S::Halted, E::PowerOn) => None,
            (S::Halted, E::Start) => Some(S::Running),
            (S::Halted, E::Halt) => None,
            (S::Halted, E::PowerOff) => Some(S::Absent),
        }
    }

    /// Whether the CPU executes and answers coherence requests and interrupts.
    pub const fn is_running(self) -> bool {
        matches!(self, CpuState::Running)
    }
}

impl fmt::Display for CpuState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuState::Absent => "absent",
            CpuState::PresentHalted => "present-halted",
            CpuState::Running => "running",
            CpuState::Halted => "halted",
        })
    }
}

impl fmt::Display for CpuEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuEvent::PowerOn => "power-on",
            CpuEvent::Start => "start",
            CpuEvent::Halt => "halt",
            CpuEvent::PowerOff => "power-off",
        })
    }
}

/// Why a CPU operation was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CpuError {
    /// The CPU id is not in the machine.
    #[error("{cpu} does not exist (the machine has {count} CPUs)")]
    NoSuchCpu {
        /// The id asked for.
        cpu: CpuId,
        /// How many CPUs exist.
        count: usize,
    },
    /// The event is not allowed in the CPU's state.
    #[error("cannot {event} {cpu}: it is {state}")]
    Transition {
        /// The CPU.
        cpu: CpuId,
        /// Its state.
        state: CpuState,
        /// The refused event.
        event: CpuEvent,
    },
    /// The operation needs a running CPU.
    #[error("cannot {operation} {cpu}: it is {state}")]
    NotRunning {
        /// The CPU.
        cpu: CpuId,
        /// Its state.
        state: CpuState,
        /// What was asked, as a verb phrase.
        operation: &'static str,
    },
    /// The CPU's cell is not powered.
    #[error("cannot {event} {cpu}: its {cell} is not powered")]
    CellNotPowered {
        /// The CPU.
        cpu: CpuId,
        /// Its cell.
        cell: CellId,
        /// The refused event.
        event: CpuEvent,
    },
}

/// One CPU's hardware identity and state.
#[derive(Clone, Debug)]
pub struct Cpu {
    /// Hardware id.
    pub id: CpuId,
    /// The cell board it sits on.
    pub cell: CellId,
    /// Physical LSAPIC id/eid: `id` = cell number, `eid` = position on the cell.
    pub lsapic: LsapicId,
    /// Current state.
    pub state: CpuState,
    /// Corrected machine-check errors reported by this CPU (cache/TLB single-bit errors).
    pub corrected_errors: u64,
    /// The local SAPIC's interrupt request register: one bit per vector, set on delivery,
    /// cleared when the CPU takes the interrupt.
    pub irr: [u64; 4],
    /// The tags of the messages behind the pending vectors, in arrival order (line
    /// interrupts only: IPIs carry no identity worth keeping). Cleared with the IRR.
    pending: Vec<(u8, MsgTag)>,
}

/// What a CPU took from its local SAPIC: the vector, and the tags of the line interrupts it
/// merged (empty for an IPI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// The vector.
    pub vector: u8,
    /// The messages it stands for, oldest first.
    pub tags: Vec<MsgTag>,
}

impl Cpu {
    /// Number of vectors pending in the IRR.
    pub fn pending_interrupts(&self) -> u32 {
        self.irr.iter().map(|w| w.count_ones()).sum()
    }

    /// Latches `vector`; returns whether it was already pending (two deliveries of one vector
    /// before the CPU takes it merge into one, as in a real local SAPIC).
    pub(crate) fn latch(&mut self, vector: u8, tag: MsgTag) -> bool {
        let (w, b) = (usize::from(vector / 64), vector % 64);
        let was = self.irr[w] & (1 << b) != 0;
        self.irr[w] |= 1 << b;
        if tag != MsgTag::Ipi {
            self.pending.push((vector, tag));
        }
        was
    }

    /// Takes the highest pending vector, with the tags of the messages it merged.
    pub(crate) fn take_highest(&mut self) -> Option<Taken> {
        for w in (0..4).rev() {
            if self.irr[w] != 0 {
                let b = 63 - self.irr[w].leading_zeros();
                self.irr[w] &= !(1 << b);
                let vector = (w as u32 * 64 + b) as u8;
                let mut tags = Vec::new();
                self.pending.retain(|&(v, t)| {
                    let mine = v == vector;
                    if mine {
                        tags.push(t);
                    }
                    !mine
                });
                return Some(Taken { vector, tags });
            }
        }
        None
    }

    /// The tags of the line interrupts latched and not yet taken.
    pub fn pending_tags(&self) -> impl Iterator<Item = MsgTag> + '_ {
        self.pending.iter().map(|&(_, t)| t)
    }

    /// Clears the local SAPIC (power-off, INIT): every pending interrupt is gone.
    pub(crate) fn clear_irr(&mut self) {
        self.irr = [0; 4];
        self.pending.clear();
    }
}

impl Cpu {
    /// CPU `position` of cell `cell`, with `per_cell` CPUs per cell.
    pub fn new(cell: CellId, position: usize, per_cell: usize) -> Cpu {
        Cpu {
            id: CpuId((usize::from(cell.0) * per_cell + position) as u32),
            cell,
            lsapic: LsapicId {
                id: cell.0 as u8,
                eid: position as u8,
            },
            state: CpuState::Absent,
            corrected_errors: 0,
            irr: [0; 4],
            pending: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_STATES: [CpuState; 4] = [
        CpuState::Absent,
        CpuState::PresentHalted,
        CpuState::Running,
        CpuState::Halted,
    ];
    const ALL_EVENTS: [CpuEvent; 4] = [
        CpuEvent::PowerOn,
        CpuEvent::Start,
        CpuEvent::Halt,
        CpuEvent::PowerOff,
    ];

    #[test]
    fn exactly_the_drawn_transitions_are_allowed() {
        let allowed: Vec<_> = ALL_STATES
            .iter()
            .flat_map(|&s| ALL_EVENTS.iter().map(move |&e| (s, e)))
            .filter_map(|(s, e)| s.on(e).map(|t| (s, e, t)))
            .collect();
        use CpuEvent as E;
        use CpuState as S;
        assert_eq!(
            allowed,
            vec![
                (S::Absent, E::PowerOn, S::PresentHalted),
                (S::PresentHalted, E::Start, S::Running),
                (S::PresentHalted, E::PowerOff, S::Absent),
                (S::Running, E::Halt, S::Halted),
                (S::Running, E::PowerOff, S::Absent),
                (S::Halted, E::Start, S::Running),
                (S::Halted, E::PowerOff, S::Absent),
            ]
        );
    }

    #[test]
    fn the_irr_latches_merges_and_yields_the_highest_vector() {
        let mut c = Cpu::new(CellId(0), 0, 4);
        let line = |n| MsgTag::Line { gsi: 7, n };
        assert!(!c.latch(0x31, line(1)));
        assert!(!c.latch(0xe0, MsgTag::Ipi));
        assert!(c.latch(0x31, line(2)), "a second delivery merges");
        assert_eq!(c.pending_interrupts(), 2);
        assert_eq!(c.pending_tags().collect::<Vec<_>>(), [line(1), line(2)]);
        let vector = |t: Option<Taken>| t.map(|t| t.vector);
        assert_eq!(vector(c.take_highest()), Some(0xe0));
        assert_eq!(
            c.take_highest(),
            Some(Taken {
                vector: 0x31,
                tags: vec![line(1), line(2)]
            }),
            "the merged vector stands for both messages"
        );
        assert_eq!(c.take_highest(), None);
        assert_eq!(c.pending_tags().count(), 0);
    }

    #[test]
    fn lsapic_id_encodes_cell_and_position() {
        let c = Cpu::new(CellId(5), 3, 4);
        assert_eq!(c.id, CpuId(23));
        assert_eq!(c.lsapic, LsapicId { id: 5, eid: 3 });
    }
}
