//! A card: its configuration space and the DMA engine behind its register BAR.
//!
//! Every card kind runs the same engine (the identities and BAR sizes differ). Registers, 64
//! bits each, at these offsets of the memory BAR:
//!
//! | offset | name | |
//! |---|---|---|
//! | 0x00 | `CTRL` | bit 0 RUN (produce receive records), bit 1 IRQ_EN |
//! | 0x08 | `RING_BASE` | physical address of the receive ring |
//! | 0x10 | `RING_SIZE` | ring bytes, a multiple of [`RECORD_BYTES`] |
//! | 0x18 | `HEAD` | bytes produced so far (read-only); record *k* is at `RING_BASE + (k·128 mod RING_SIZE)` |
//! | 0x20 | `TAIL` | bytes the driver has consumed |
//! | 0x28 | `STATUS` | bit 0 RX, bit 1 TX_DONE, bit 2 DMA_ERROR; write 1 to clear |
//! | 0x30 | `PERIOD` | nanoseconds between records |
//! | 0x38 | `TX_ADDR` | buffer the card reads on `TX_GO` |
//! | 0x40 | `TX_LEN` | its length in bytes (a multiple of 8) |
//! | 0x48 | `TX_GO` | write: the card DMA-reads the buffer, sums its words into `TX_SUM` |
//! | 0x50 | `TX_SUM` | sum (wrapping) of the words of the last transmit |
//! | 0x58 | `SERIAL` | the card's serial number |
//!
//! A storage card (`disk`) has a medium and a block engine besides:
//!
//! | offset | name | |
//! |---|---|---|
//! | 0x60 | `BLK_LBA` | first sector (512 bytes) of the next command |
//! | 0x68 | `BLK_ADDR` | its buffer's physical address |
//! | 0x70 | `BLK_LEN` | its bytes (whole sectors, at most 1 MiB) |
//! | 0x78 | `BLK_TAG` | the driver's tag for it |
//! | 0x80 | `BLK_CMD` | write 1 (READ: medium to memory) or 2 (WRITE: memory to medium): queue it; 3 (ABORT): every queued command completes failed at once, nothing moves |
//! | 0x88 | `BLK_DONE` | read: take the oldest completion (`VALID` bit 63, `FAILED` bit 62, tag below), 0 if none |
//! | 0x90 | `BLK_CAPACITY` | sectors on the medium |
//! | 0x98 | `BLK_LATENCY` | nanoseconds per command |
//!
//! The medium serves one command at a time, in order, each `BLK_LATENCY` after the previous
//! one ended (or after it was queued): at that moment the card moves the data by DMA and the
//! completion is posted (`STATUS.BLK_DONE`, bit 3). A command with a bad range or length, one
//! beyond [`BLK_QUEUE`] outstanding, or one whose DMA the machine refuses or that finds bus
//! mastering off completes `FAILED`. The medium keeps what was written through power loss
//! and reset (sectors never written read as [`media_word`]); queued commands are lost.
//!
//! The INTx line is asserted while `STATUS != 0`, `CTRL.IRQ_EN` is set, INTx is not disabled in
//! the command register and the slot is powered. The card masters DMA only with bus mastering
//! enabled.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use sim_core::{Bdf, Gsi, IoSubsystemId, SimTime, SlotId};

use crate::config::DeviceKind;
use crate::pci::{BarDef, BarKind, ConfigSpace, cmd};

pub use sim_core::abi::device::{
    BLK_FAILED, BLK_MAX_BYTES, BLK_QUEUE, BLK_VALID, RECORD_BYTES, RECORD_MAGIC, RECORD_WORDS,
    SECTOR_BYTES, blk_done, media_word, record_word, regs,
};

/// Words of one chunk of the medium as the card stores it.
const CHUNK_WORDS: u64 = 512;

/// Dense card id within the fabric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DeviceId(pub u32);

/// The engine's registers and progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Engine {
    pub(crate) ctrl: u64,
    pub(crate) ring_base: u64,
    pub(crate) ring_size: u64,
    pub(crate) head: u64,
    pub(crate) tail: u64,
    pub(crate) status: u64,
    pub(crate) period: u64,
    pub(crate) tx_addr: u64,
    pub(crate) tx_len: u64,
    pub(crate) tx_sum: u64,
}

/// One queued block command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlkCmd {
    /// Memory to medium.
    pub(crate) write: bool,
    pub(crate) lba: u64,
    pub(crate) addr: u64,
    pub(crate) len: u64,
    pub(crate) tag: u32,
    /// When the medium finishes it.
    pub(crate) done_at: SimTime,
}

/// A storage card's block engine and medium.
#[derive(Clone, Debug, Default)]
pub(crate) struct Block {
    pub(crate) lba: u64,
    pub(crate) addr: u64,
    pub(crate) len: u64,
    pub(crate) tag: u64,
    pub(crate) latency: u64,
    pub(crate) default_latency: u64,
    /// Bytes per second the medium moves.
    pub(crate) bandwidth: u64,
    /// Sectors on the medium (0: the card has none).
    pub(crate) capacity: u64,
    /// Commands the medium has not finished, in order.
    pub(crate) queue: VecDeque<BlkCmd>,
    /// Completion words not yet taken.
    pub(crate) done: VecDeque<u64>,
    /// What was written, by chunk of [`CHUNK_WORDS`] words (the rest reads as
    /// [`media_word`]).
    pub(crate) media: BTreeMap<u64, Box<[u64]>>,
    /// When the wakeup the block engine asked for is due (a later one is stale).
    pub(crate) wake_at: Option<SimTime>,
}

impl Block {
    /// Whether a command of `len` bytes at sector `lba` fits the medium.
    pub(crate) fn valid(&self, lba: u64, len: u64) -> bool {
        len > 0
            && len % SECTOR_BYTES == 0
            && len <= BLK_MAX_BYTES
            && lba
                .checked_add(len / SECTOR_BYTES)
                .is_some_and(|end| end <= self.capacity)
    }

    /// The wakeup the medium needs now (its oldest command's end), if it is not the one it
    /// already asked for: the caller schedules it.
    pub(crate) fn new_wake(&mut self) -> Option<SimTime> {
        let front = self.queue.front().map(|c| c.done_at);
        if self.wake_at == front {
            return None;
        }
        self.wake_at = front;
        front
    }

    /// Reads `buf.len()` words of the medium from sector `lba`.
    pub(crate) fn read_media(&self, serial: u64, lba: u64, buf: &mut [u64]) {
        let first = lba * (SECTOR_BYTES / 8);
        for (i, v) in buf.iter_mut().enumerate() {
            let w = first + i as u64;
            *v = self
                .media
                .get(&(w / CHUNK_WORDS))
                .map_or_else(|| media_word(serial, w), |c| c[(w % CHUNK_WORDS) as usize]);
        }
    }

    /// Writes `buf` to the medium from sector `lba`.
    pub(crate) fn write_media(&mut self, serial: u64, lba: u64, buf: &[u64]) {
        let first = lba * (SECTOR_BYTES / 8);
        for (i, &v) in buf.iter().enumerate() {
            let w = first + i as u64;
            let chunk = self.media.entry(w / CHUNK_WORDS).or_insert_with(|| {
                let base = (w / CHUNK_WORDS) * CHUNK_WORDS;
                (0..CHUNK_WORDS)
                    .map(|k| media_word(serial, base + k))
                    .collect()
            });
            chunk[(w % CHUNK_WORDS) as usize] = v;
        }
    }
}

/// One card (it keeps its identity after it leaves its slot, so that late accesses to it can
/// be named).
#[derive(Clone, Debug)]
pub struct Device {
    /// Fabric id.
    pub id: DeviceId,
    /// What card.
    pub kind: DeviceKind,
    /// Serial number (in every record it writes).
    pub serial: u64,
    /// The slot it is (or was last) in.
    pub slot: SlotId,
    /// Its subsystem.
    pub subsystem: IoSubsystemId,
    /// Its bridge.
    pub bridge: u8,
    /// Its PCI address while in the slot.
    pub bdf: Bdf,
    /// The GSI its INTA is wired to.
    pub gsi: Gsi,
    /// CPU the boot setup routes its interrupt to, if configured.
    pub irq_cpu: Option<u32>,
    /// Whether it is still in its slot.
    pub inserted: bool,
    /// Whether its slot (and subsystem) powers it.
    pub powered: bool,
    pub(crate) config: ConfigSpace,
    pub(crate) engine: Engine,
    pub(crate) default_period: u64,
    /// The INTx level it drives now.
    pub(crate) line: bool,
    /// The ranges it decoded when it last lost power or left its slot (to name late accesses).
    pub(crate) ghost: Vec<(BarKind, u64, u64)>,
    /// Whether a tick is scheduled.
    pub(crate) tick_pending: bool,
    /// When the scheduled tick of the receive engine is due.
    pub(crate) ring_at: Option<SimTime>,
    /// Records written by DMA.
    pub records: u64,
    /// Ring-full stalls.
    pub overruns: u64,
    pub(crate) block: Block,
}

impl Device {
    /// A card in its reset state.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: DeviceId,
        kind: DeviceKind,
        bar_size: u64,
        period: u64,
        slot: SlotId,
        subsystem: IoSubsystemId,
        bridge: u8,
        bdf: Bdf,
        gsi: Gsi,
        irq_cpu: Option<u32>,
        capacity: u64,
        (latency, bandwidth): (u64, u64),
    ) -> Device {
        let (vendor, device) = kind.ids();
        let bars = vec![
            BarDef {
                index: 0,
                kind: BarKind::Mem64,
                size: bar_size,
            },
            BarDef {
                index: 2,
                kind: BarKind::Io,
                size: kind.io_bar(),
            },
        ];
        Device {
            id,
            kind,
            serial: 0x5E_0000 + u64::from(id.0),
            slot,
            subsystem,
            bridge,
            bdf,
            gsi,
            irq_cpu,
            inserted: true,
            powered: false,
            config: ConfigSpace::new(vendor, device, kind.class(), 1, bars),
            engine: Engine {
                period,
                ..Engine::default()
            },
            default_period: period,
            line: false,
            ghost: Vec::new(),
            tick_pending: false,
            ring_at: None,
            records: 0,
            overruns: 0,
            block: Block {
                capacity,
                latency,
                default_latency: latency,
                bandwidth,
                ..Block::default()
            },
        }
    }

    /// Configuration space.
    pub fn config(&self) -> &ConfigSpace {
        &self.config
    }

    /// Power lost or reset: configuration and registers return to their reset values.
    pub(crate) fn reset(&mut self) {
        let decoded = self.config.decoded();
        if !decoded.is_empty() {
            self.ghost = decoded;
        }
        let (vendor, device) = self.kind.ids();
        self.config = ConfigSpace::new(
            vendor,
            device,
            self.kind.class(),
            1,
            self.config.bar_defs().to_vec(),
        );
        self.engine = Engine {
            period: self.default_period,
            ..Engine::default()
        };
        // The medium keeps its data; the commands in flight and their completions are lost.
        let b = &mut self.block;
        (b.lba, b.addr, b.len, b.tag, b.latency) = (0, 0, 0, 0, b.default_latency);
        b.queue.clear();
        b.done.clear();
        self.line = false;
    }

    /// Sectors on its medium (0: it has none).
    pub fn capacity(&self) -> u64 {
        self.block.capacity
    }

    /// Reads `buf.len()` words of its medium from sector `lba`, as the medium holds them
    /// (for checkers and tests: no DMA, no time).
    pub fn peek_media(&self, lba: u64, buf: &mut [u64]) {
        self.block.read_media(self.serial, lba, buf);
    }

    /// Writes `words` to its medium from sector `lba` directly (no DMA, no time): the image
    /// a disk left the factory or the installer with, before the machine runs. Refused
    /// beyond the medium.
    pub fn image_media(&mut self, lba: u64, words: &[u64]) -> Result<(), String> {
        let len = (words.len() as u64 * 8).next_multiple_of(SECTOR_BYTES);
        let fits = lba
            .checked_add(len / SECTOR_BYTES)
            .is_some_and(|end| end <= self.block.capacity);
        if !fits {
            return Err(format!(
                "{} bytes at sector {lba} do not fit the {} sectors of pci {}",
                words.len() * 8,
                self.block.capacity,
                self.bdf
            ));
        }
        self.block.write_media(self.serial, lba, words);
        Ok(())
    }

    /// Block commands queued and not finished.
    pub fn blk_in_flight(&self) -> usize {
        self.block.queue.len()
    }

    /// Whether the card is working: in its slot and powered.
    pub fn is_live(&self) -> bool {
        self.inserted && self.powered
    }

    /// Whether it may master DMA now.
    pub(crate) fn can_dma(&self) -> bool {
        self.is_live() && self.config.command() & cmd::BUS_MASTER != 0
    }

    /// Whether the engine should produce records.
    pub(crate) fn running(&self) -> bool {
        self.can_dma()
            && self.engine.ctrl & regs::CTRL_RUN != 0
            && self.engine.ring_size >= RECORD_BYTES
    }

    /// The INTx level the card should drive now.
    pub(crate) fn wanted_line(&self) -> bool {
        self.is_live()
            && self.engine.status != 0
            && self.engine.ctrl & regs::CTRL_IRQ_EN != 0
            && self.config.command() & cmd::INTX_DISABLE == 0
    }

    /// Reads register `off` (reading `BLK_DONE` takes the completion it returns).
    pub(crate) fn read_reg(&mut self, off: u64) -> u64 {
        if off == regs::BLK_DONE {
            return self.block.done.pop_front().unwrap_or(0);
        }
        let e = &self.engine;
        match off {
            regs::CTRL => e.ctrl,
            regs::RING_BASE => e.ring_base,
            regs::RING_SIZE => e.ring_size,
            regs::HEAD => e.head,
            regs::TAIL => e.tail,
            regs::STATUS => e.status,
            regs::PERIOD => e.period,
            regs::TX_ADDR => e.tx_addr,
            regs::TX_LEN => e.tx_len,
            regs::TX_SUM => e.tx_sum,
            regs::SERIAL => self.serial,
            regs::BLK_LBA => self.block.lba,
            regs::BLK_ADDR => self.block.addr,
            regs::BLK_LEN => self.block.len,
            regs::BLK_TAG => self.block.tag,
            regs::BLK_CAPACITY => self.block.capacity,
            regs::BLK_LATENCY => self.block.latency,
            _ => 0,
        }
    }

    /// The ranges currently decoded.
    pub fn decoded(&self) -> Vec<(BarKind, u64, u64)> {
        if self.is_live() {
            self.config.decoded()
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_recognisable_and_distinct() {
        assert_eq!(record_word(7, 3, 0), RECORD_MAGIC | 3);
        assert_eq!(record_word(7, 3, 1), 7);
        assert_ne!(record_word(7, 3, 5), record_word(7, 4, 5));
        assert_ne!(record_word(7, 3, 5), record_word(8, 3, 5));
    }
}
