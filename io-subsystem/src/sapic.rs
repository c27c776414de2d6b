//! The IO SAPIC of an I/O subsystem: redirection entries that turn interrupt inputs (GSIs)
//! into messages to a CPU's local SAPIC.
//!
//! Registers (memory-mapped at the subsystem's SAPIC base): `IOREGSEL` at 0x00 selects an
//! indirect register, `IOWIN` at 0x10 reads or writes it, `EOI` at 0x40 takes a vector. Indirect
//! registers: 0x00 ID, 0x01 version (bits 23:16 hold the highest entry number), and for entry
//! *n* the low dword at `0x10 + 2n` (vector 7:0, trigger 15 (1 = level), remote IRR 14
//! (read-only), mask 16) and the high dword at `0x11 + 2n` (destination id 31:24, eid 23:16).
//! Entries reset masked.
//!
//! Level-triggered entries deliver when their input is asserted, unmasked and not already in
//! service (remote IRR clear); delivery sets remote IRR, and an EOI for the vector clears it
//! (and re-delivers if the input is still asserted). An input asserted while masked is held and
//! delivered on unmask. Edge-triggered entries deliver on a rising edge if unmasked.

use serde::Serialize;
use sim_core::LsapicId;

pub use sim_core::abi::sapic::{EOI, IOREGSEL, IOWIN, REGISTER_BYTES, rte};

/// One redirection entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rte {
    /// Vector sent.
    pub vector: u8,
    /// Destination local SAPIC.
    pub dest: LsapicId,
    /// Masked.
    pub masked: bool,
    /// Level-triggered.
    pub level: bool,
    /// In service (level only).
    pub remote_irr: bool,
    /// Sources asserting the input now (inputs are wired-OR).
    pub asserted: u16,
    /// Asserted while masked: to deliver on unmask.
    pub held: bool,
    /// Interrupt messages this entry has sent (a hardware event counter).
    pub delivered: u64,
}

impl Default for Rte {
    fn default() -> Self {
        Rte {
            vector: 0,
            dest: LsapicId { id: 0, eid: 0 },
            masked: true,
            level: true,
            remote_irr: false,
            asserted: 0,
            held: false,
            delivered: 0,
        }
    }
}

impl Rte {
    /// The low dword as software reads it.
    pub fn low(&self) -> u32 {
        u32::from(self.vector)
            | if self.level { rte::LEVEL } else { 0 }
            | if self.remote_irr { rte::REMOTE_IRR } else { 0 }
            | if self.masked { rte::MASK } else { 0 }
    }
    /// The high dword.
    pub fn high(&self) -> u32 {
        u32::from(self.dest.id) << 24 | u32::from(self.dest.eid) << 16
    }
}

/// One IO SAPIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoSapic {
    /// Register block address.
    pub base: u64,
    /// First GSI.
    pub gsi_base: u32,
    pub(crate) regsel: u32,
    pub(crate) entries: Vec<Rte>,
}

impl IoSapic {
    /// A SAPIC in its reset state.
    pub fn new(base: u64, gsi_base: u32, entries: usize) -> Self {
        IoSapic {
            base,
            gsi_base,
            regsel: 0,
            entries: vec![Rte::default(); entries],
        }
    }

    /// The redirection entries.
    pub fn entries(&self) -> &[Rte] {
        &self.entries
    }

    /// Entry for `gsi`, if this SAPIC has it.
    pub fn entry_of(&self, gsi: u32) -> Option<usize> {
        gsi.checked_sub(self.gsi_base)
            .map(|e| e as usize)
            .filter(|&e| e < self.entries.len())
    }

    /// Back to reset: every entry masked, nothing asserted.
    pub(crate) fn reset(&mut self) {
        let n = self.entries.len();
        self.entries = vec![Rte::default(); n];
        self.regsel = 0;
    }

    /// Reads the indirect register selected by `IOREGSEL`.
    pub(crate) fn read_window(&self, id: u8) -> u32 {
        match self.regsel {
            0x00 => u32::from(id) << 24,
            0x01 => 0x21 | (self.entries.len().saturating_sub(1) as u32) << 16,
            r if r >= 0x10 => {
                let n = ((r - 0x10) / 2) as usize;
                match self.entries.get(n) {
                    Some(e) if r % 2 == 0 => e.low(),
                    Some(e) => e.high(),
                    None => 0,
                }
            }
            _ => 0,
        }
    }
}
