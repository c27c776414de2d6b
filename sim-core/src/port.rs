//! The interfaces between sibling hardware crates.
//!
//! `cells` (CPUs, caches, memory) and `io-subsystem` (PCI, devices, IO SAPICs) never depend on
//! each other. A device reaches memory only through a [`DmaPort`] (coherent DMA, implemented by
//! the memory system) and a CPU only through an [`InterruptPort`] (delivery to a local SAPIC by
//! its physical id). The platform, above both crates, wires one to the other.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::addr::PhysAddr;
use crate::ids::{CpuId, Entity, LsapicId};
use crate::time::{SimDuration, SimTime};

/// A PCI function address: segment, bus, device, function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Bdf {
    /// PCI segment.
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number (0–31).
    pub device: u8,
    /// Function number (0–7).
    pub function: u8,
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// A DMA request the memory system cannot even attempt.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DmaError {
    /// DMA is done in whole 64-bit words.
    #[error("DMA address {addr} is not 8-byte aligned")]
    Misaligned {
        /// The address.
        addr: PhysAddr,
    },
    /// Some of the range is not backed by any memory slot.
    #[error("DMA of {words} words at {addr} runs past the end of memory ({end})")]
    OutOfRange {
        /// Start of the transfer.
        addr: PhysAddr,
        /// Its length in words.
        words: usize,
        /// First address past memory.
        end: PhysAddr,
    },
}

/// Coherent memory as a device sees it. Reads return the latest value even if a CPU cache
/// holds it dirty; writes invalidate every cached copy. Memory that is not powered reads as
/// all-ones and drops writes — and the memory system reports the access.
pub trait DmaPort {
    /// Reads `buf.len()` words starting at `addr` on behalf of `agent`.
    fn dma_read(
        &mut self,
        now: SimTime,
        agent: &Entity,
        addr: PhysAddr,
        buf: &mut [u64],
    ) -> Result<SimDuration, DmaError>;

    /// Writes `data` starting at `addr` on behalf of `agent`.
    fn dma_write(
        &mut self,
        now: SimTime,
        agent: &Entity,
        addr: PhysAddr,
        data: &[u64],
    ) -> Result<SimDuration, DmaError>;
}

/// What happened to an interrupt message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// A running CPU latched it.
    Accepted(CpuId),
    /// The destination CPU exists but is halted or absent: the interrupt is lost.
    NotRunning(CpuId),
    /// No CPU has that LSAPIC id: the interrupt is lost.
    NoSuchCpu,
}

/// Which interrupt message a delivery was, so that a checker can follow one interrupt from
/// the line that raised it to the handler that served it. Real messages carry no such tag;
/// the simulator's do, so that a duplicate and a loss on one line cannot cancel out in a
/// count. The local SAPIC keeps the tags of the messages a pending vector merged, and hands
/// them over when the CPU takes the vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MsgTag {
    /// The `n`-th message (counting from 1) an IO SAPIC sent for `gsi` in the run.
    Line {
        /// The line.
        gsi: u32,
        /// Its ordinal on the line.
        n: u64,
    },
    /// An inter-processor interrupt (or a wakeup) a CPU sent.
    Ipi,
}

impl fmt::Display for MsgTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsgTag::Line { gsi, n } => write!(f, "gsi{gsi}#{n}"),
            MsgTag::Ipi => f.write_str("ipi"),
        }
    }
}

/// Interrupt delivery to CPUs, addressed by physical local-SAPIC id.
pub trait InterruptPort {
    /// Sends `vector` from `source` to the CPU whose local SAPIC is `dest`; `tag` names the
    /// message.
    fn deliver(
        &mut self,
        now: SimTime,
        source: &Entity,
        dest: LsapicId,
        vector: u8,
        tag: MsgTag,
    ) -> Delivery;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_prints_like_lspci() {
        let b = Bdf {
            segment: 0,
            bus: 0x41,
            device: 3,
            function: 0,
        };
        assert_eq!(b.to_string(), "0000:41:03.0");
    }
}
