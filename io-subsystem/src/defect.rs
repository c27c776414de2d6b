//! Injectable I/O hardware defects that prove the interrupt checker and the driver's data
//! checks bite (SPEC CHK-9).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A bug that can be switched on in the IO SAPIC model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoDefect {
    /// Masked entries deliver anyway.
    SapicIgnoresMask,
    /// EOI does not clear remote IRR: a level interrupt is never delivered again.
    SapicIgnoresEoi,
    /// Unmasking an entry forgets an assertion held while it was masked.
    SapicLosesHeld,
    /// A level entry in service (remote IRR set) delivers again while its line stays
    /// asserted, before its EOI: an interrupt storm of one line.
    SapicRedeliversInService,
    /// A storage card completes a write without storing it on its medium (a write cache
    /// that drops what it acknowledged): reading the sector back returns what was there
    /// before.
    BlockWriteLost,
}

impl IoDefect {
    /// Every defect.
    pub const ALL: [IoDefect; 5] = [
        IoDefect::SapicIgnoresMask,
        IoDefect::SapicIgnoresEoi,
        IoDefect::SapicLosesHeld,
        IoDefect::SapicRedeliversInService,
        IoDefect::BlockWriteLost,
    ];

    /// The name used in scenario files.
    pub const fn name(self) -> &'static str {
        match self {
            IoDefect::SapicIgnoresMask => "sapic_ignores_mask",
            IoDefect::SapicIgnoresEoi => "sapic_ignores_eoi",
            IoDefect::SapicLosesHeld => "sapic_loses_held",
            IoDefect::SapicRedeliversInService => "sapic_redelivers_in_service",
            IoDefect::BlockWriteLost => "block_write_lost",
        }
    }

    /// The codes of the checkers that report it on every seed of its scenario
    /// (`scenarios/defects/io_<name>.toml`).
    pub const fn caught_by(self) -> &'static [&'static str] {
        match self {
            IoDefect::SapicIgnoresMask
            | IoDefect::SapicIgnoresEoi
            | IoDefect::SapicLosesHeld
            | IoDefect::SapicRedeliversInService => &["CHK-6"],
            IoDefect::BlockWriteLost => &["DRIVER"],
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for IoDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of I/O defects switched on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoDefects(u8);

// One bit per defect.
const _: () = assert!(IoDefect::ALL.len() <= 8);

impl IoDefects {
    /// Switches one on.
    pub fn insert(&mut self, d: IoDefect) {
        self.0 |= d.bit();
    }
    /// Whether one is on.
    pub fn has(self, d: IoDefect) -> bool {
        self.0 & d.bit() != 0
    }
}
