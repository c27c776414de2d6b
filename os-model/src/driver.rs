//! The card driver: one driver for every card kind (they all run the same DMA engine).
//!
//! Everything goes through the platform's access paths and everything is discovered the way a
//! kernel discovers it: the card's bus from its bridge's `_BBN`, its device number from the
//! slot's `_ADR`, its identity by a configuration read, its BARs from configuration space
//! (sized by writing all-ones when it must be given new ones, inside the bridge's `_CRS`
//! windows), its serial number from its `SERIAL` register, its interrupt line from `_PRT`.
//!
//! Per card a receive ring (memory the caller provides). The interrupt is split as in a real
//! driver: the **top half** ([`CardDriver::top_half`]) reads and acknowledges the card's
//! status; the **bottom half** ([`CardDriver::bottom_half`]) checks every record the card
//! wrote against the pattern it must have written (a mismatch is a [`DRIVER`] violation: DMA
//! or coherence lost data), hands the ring back, every few interrupts sends a transmit buffer
//! and checks the card's checksum of it — or, on a storage card (one whose `BLK_CAPACITY` is
//! not 0), writes a sector of a pattern through the block engine, poisons the buffer, reads the
//! sector back into it and checks every word. A storage card the kernel took as its disk
//! ([`CardDriver::claim`]) gets no sector check: its block engine is the kernel's, which
//! takes its completions in the interrupt ([`CardDriver::take_completions`]). Where the interrupt is routed and who
//! EOIs the IO SAPIC is the caller's business (the OS's IRQ layer, or the bare-platform
//! exerciser).

use crate::hw::Cx;
use serde::{Deserialize, Serialize};
use sim_core::abi::ALL_ONES;
use sim_core::abi::device::{
    BLK_FAILED, RECORD_BYTES, RECORD_WORDS, SECTOR_BYTES, record_word, regs,
};
use sim_core::abi::pci::{cmd, reg};
use sim_core::window::WindowAllocator;
use sim_core::{Bdf, CheckerId, CpuId, Entity, PhysAddr, SimTime, SlotId, Violation};

use crate::acpi::AcpiScan;
use crate::hw::{cfg_read, cfg_write, load, store};

/// Reports of the driver's own data checks.
pub const DRIVER: CheckerId = CheckerId {
    code: "DRIVER",
    name: "card-driver",
};

/// The driver's settings (`[workload.io]` of a scenario).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriverConfig {
    /// Drive the cards present at start.
    pub enabled: bool,
    /// Records per receive ring.
    pub ring_records: u32,
    /// Every this many interrupts of a card: a transmit buffer to a network card, a sector
    /// check (write, read back, compare) to a storage card (0: never).
    pub transmit_every: u32,
    /// Words per transmit buffer.
    pub transmit_words: u32,
    /// Time from an interrupt's delivery to its handler.
    pub service_ns: u64,
    /// Every this many nanoseconds the driver's watchdog reads each card's status register
    /// (0: no watchdog). A card that answers all-ones is gone: the driver stops using it.
    pub poll_ns: u64,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            enabled: true,
            ring_records: 16,
            transmit_every: 4,
            transmit_words: 32,
            service_ns: 200,
            poll_ns: 0,
        }
    }
}

/// A driver setting that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfigError {
    /// The driver setting at fault.
    pub field: &'static str,
    /// Why.
    pub message: String,
}

impl DriverConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), DriverConfigError> {
        if self.ring_records == 0 || self.ring_records > 4096 {
            return Err(DriverConfigError {
                field: "ring_records",
                message: format!("{} must be between 1 and 4096", self.ring_records),
            });
        }
        if self.transmit_words == 0 || self.transmit_words > 4096 {
            return Err(DriverConfigError {
                field: "transmit_words",
                message: format!("{} must be between 1 and 4096", self.transmit_words),
            });
        }
        Ok(())
    }

    /// Bytes of one card's receive ring.
    pub fn ring_bytes(&self) -> u64 {
        u64::from(self.ring_records) * RECORD_BYTES
    }

    /// Bytes of memory one card needs (ring and transmit buffer, which is a storage card's
    /// sector buffer too), page-rounded.
    pub fn card_span(&self) -> u64 {
        (self.ring_bytes() + (8 * u64::from(self.transmit_words)).max(SECTOR_BYTES))
            .next_multiple_of(4096)
    }
}

/// The driver's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DriverStats {
    /// Card bring-ups (at boot and after a slot power-on).
    pub cards: u64,
    /// Watchdog reads of card status registers.
    pub polls: u64,
    /// Cards the driver found gone (all-ones) and stopped using.
    pub gone: u64,
    /// Cards firmware reported gone before the driver found out, and it stopped using.
    pub disconnected: u64,
    /// Interrupts handled.
    pub interrupts: u64,
    /// Interrupt vectors no active card owned.
    pub spurious: u64,
    /// Receive records checked.
    pub records_checked: u64,
    /// Transmit buffers sent and checked.
    pub transmits: u64,
    /// Sectors written to a storage card and read back and checked.
    pub sectors_checked: u64,
    /// Block commands a storage card completed as failed.
    pub block_failures: u64,
    /// Checks that failed.
    pub mismatches: u64,
}

/// What the driver knows of one card.
#[derive(Clone, Debug)]
pub struct Card {
    /// The slot, by `_SUN`.
    pub slot: SlotId,
    /// Its configuration address.
    pub bdf: Bdf,
    /// The GSI of its INTA (from `_PRT`).
    pub gsi: u32,
    /// Serial number (read from the card at bring-up).
    pub serial: u64,
    /// Memory BAR (0 until known).
    pub bar: u64,
    /// Memory BAR size.
    pub bar_size: u64,
    /// I/O BAR.
    pub io_bar: u64,
    /// Receive ring.
    pub ring: u64,
    /// Receive ring bytes.
    pub ring_bytes: u64,
    /// Transmit buffer.
    pub tx_buf: u64,
    /// Bytes consumed.
    pub tail: u64,
    /// Driven now.
    pub active: bool,
    /// Interrupts handled.
    pub interrupts: u64,
    /// Checksum the card must report for the transmit in flight.
    pub tx_expected: Option<u64>,
    /// Sectors on its medium (read from `BLK_CAPACITY` at bring-up; 0: not a storage card).
    pub capacity: u64,
    /// The sector check in flight on a storage card.
    pub block: Option<SectorCheck>,
    /// Sector checks started.
    pub block_cycles: u64,
    /// The kernel's disk: its block engine is the kernel's, not the sector check's.
    pub claimed: bool,
}

/// One sector check of a storage card: the pattern goes out, then comes back. Its sector,
/// pattern and command tags all follow from which check it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectorCheck {
    /// Which check of the card (from 0).
    pub cycle: u64,
    /// The read-back is in flight (else the write).
    pub reading: bool,
}

impl SectorCheck {
    /// The tag of the command in flight: odd for the write, the next for the read-back.
    pub fn tag(self) -> u32 {
        (2 * self.cycle + 1 + u64::from(self.reading)) as u32
    }

    /// The sector of card `c` it uses: 8 sectors on from the last check's, around the medium.
    pub fn lba(self, c: &Card) -> u64 {
        (self.cycle * 8) % c.capacity.max(1)
    }
}

/// Word `i` of the pattern the driver writes in sector check `cycle` of the card `serial`.
fn sector_word(serial: u64, cycle: u64, i: u64) -> u64 {
    serial.rotate_left(i as u32) ^ (cycle << 24) ^ i ^ 0xB10C_0000_0000_0000
}

/// What the driver leaves in the buffer before a read-back (the card must overwrite it).
fn sector_poison(i: u64) -> u64 {
    0xDEAD_B10C_0000_0000 | i
}

/// What the top half found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopHalf {
    /// The card is not driven (a stale or shared interrupt).
    Inactive,
    /// The card answers all-ones: it is gone; the driver stopped using it.
    Gone,
    /// The status the card reported (already acknowledged).
    Status(u64),
}

/// The driver (see the module docs).
#[derive(Debug)]
pub struct CardDriver {
    cfg: DriverConfig,
    cards: Vec<Card>,
    stats: DriverStats,
}

impl CardDriver {
    /// A driver with no cards.
    pub fn new(cfg: DriverConfig) -> Self {
        CardDriver {
            cfg,
            cards: Vec::new(),
            stats: DriverStats::default(),
        }
    }

    /// Settings.
    pub fn config(&self) -> &DriverConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &DriverStats {
        &self.stats
    }

    /// The cards, by index.
    pub fn cards(&self) -> &[Card] {
        &self.cards
    }

    /// The card in `slot`.
    pub fn card_in(&self, slot: SlotId) -> Option<usize> {
        self.cards.iter().position(|c| c.slot == slot)
    }

    /// Takes on the card in `slot` (found in `scan`), with its ring at `ring` (the caller
    /// allocated [`DriverConfig::card_span`] bytes there). Returns its index.
    pub fn attach(&mut self, scan: &AcpiScan, slot: SlotId, ring: u64) -> Result<usize, String> {
        let s = scan
            .slot(slot)
            .ok_or_else(|| format!("slot {} is not in the namespace", slot.0))?;
        let bus = scan
            .bridges
            .get(s.bridge)
            .map(|b| b.bus)
            .ok_or_else(|| format!("slot {} has no bridge", slot.0))?;
        let gsi = scan
            .gsi_of(slot)
            .ok_or_else(|| format!("no _PRT entry for slot {}", slot.0))?;
        let ring_bytes = self.cfg.ring_bytes();
        let card = Card {
            slot,
            bdf: Bdf {
                segment: 0,
                bus,
                device: s.device,
                function: 0,
            },
            gsi,
            serial: 0,
            bar: 0,
            bar_size: 0,
            io_bar: 0,
            ring,
            ring_bytes,
            tx_buf: ring + ring_bytes,
            tail: 0,
            active: false,
            interrupts: 0,
            tx_expected: None,
            capacity: 0,
            block: None,
            block_cycles: 0,
            claimed: false,
        };
        if let Some(k) = self.card_in(slot) {
            self.cards[k] = card;
            Ok(k)
        } else {
            self.cards.push(card);
            Ok(self.cards.len() - 1)
        }
    }

    /// New BARs for card `k`, inside its bridge's windows, around every other card's.
    fn assign_bars(
        &self,
        k: usize,
        t: &mut SimTime,
        cpu: CpuId,
        scan: &AcpiScan,
        cx: &mut Cx<'_>,
    ) -> Result<(u64, u64, u64), String> {
        let c = &self.cards[k];
        let bridge = scan
            .slot(c.slot)
            .and_then(|s| scan.bridges.get(s.bridge))
            .ok_or("the slot has no bridge")?;
        let mut mem = WindowAllocator::new(bridge.mmio.0, bridge.mmio.1);
        let mut io = WindowAllocator::new(bridge.io.0, bridge.io.1);
        for o in self.cards.iter().filter(|o| o.bdf != c.bdf && o.bar != 0) {
            let _ = mem.reserve(o.bar, o.bar_size.max(1));
            if o.io_bar != 0 {
                let _ = io.reserve(o.io_bar, 1);
            }
        }
        let bdf = c.bdf;
        cfg_write(cx, t, cpu, bdf, reg::BAR0, u32::MAX);
        cfg_write(cx, t, cpu, bdf, reg::BAR0 + 4, u32::MAX);
        let lo = cfg_read(cx, t, cpu, bdf, reg::BAR0);
        let hi = cfg_read(cx, t, cpu, bdf, reg::BAR0 + 4);
        let mask = u64::from(hi) << 32 | u64::from(lo & 0xFFFF_FFF0);
        let mem_size = (!mask).wrapping_add(1);
        cfg_write(cx, t, cpu, bdf, reg::BAR0 + 8, u32::MAX);
        let io_size = u64::from(!(cfg_read(cx, t, cpu, bdf, reg::BAR0 + 8) & 0xFFFF_FFFC))
            .wrapping_add(1)
            & 0xFFFF;
        let bar = mem.alloc(mem_size, mem_size).map_err(|e| e.to_string())?;
        let io_bar = io.alloc(io_size, io_size).map_err(|e| e.to_string())?;
        Ok((bar, mem_size, io_bar))
    }

    /// Programs card `k` from scratch as `cpu`: BARs (the ones it has, or new ones when
    /// `new_bars`), decode and bus mastering, its ring, its engine; reads its serial. The
    /// interrupt route is the caller's.
    #[allow(clippy::too_many_arguments)]
    pub fn bring_up(
        &mut self,
        t: &mut SimTime,
        k: usize,
        cpu: CpuId,
        new_bars: bool,
        scan: &AcpiScan,
        cx: &mut Cx<'_>,
    ) -> Result<(), String> {
        let bdf = self.cards[k].bdf;
        let id = cfg_read(cx, t, cpu, bdf, reg::ID);
        if id == u32::MAX {
            return Err(format!("no card answers at {bdf}"));
        }
        if new_bars {
            let (bar, size, io_bar) = self.assign_bars(k, t, cpu, scan, cx)?;
            cfg_write(cx, t, cpu, bdf, reg::BAR0, bar as u32);
            cfg_write(cx, t, cpu, bdf, reg::BAR0 + 4, (bar >> 32) as u32);
            cfg_write(cx, t, cpu, bdf, reg::BAR0 + 8, io_bar as u32);
            self.cards[k].bar_size = size;
        }
        let lo = cfg_read(cx, t, cpu, bdf, reg::BAR0);
        let hi = cfg_read(cx, t, cpu, bdf, reg::BAR0 + 4);
        let io_bar = u64::from(cfg_read(cx, t, cpu, bdf, reg::BAR0 + 8) & 0xFFFF_FFFC);
        let bar = u64::from(hi) << 32 | u64::from(lo & 0xFFFF_FFF0);
        cfg_write(
            cx,
            t,
            cpu,
            bdf,
            reg::COMMAND,
            cmd::MEMORY | cmd::IO | cmd::BUS_MASTER,
        );
        let serial = load(cx, t, cpu, bar + regs::SERIAL);
        let capacity = load(cx, t, cpu, bar + regs::BLK_CAPACITY);
        let c = &mut self.cards[k];
        c.bar = bar;
        c.io_bar = io_bar;
        c.serial = serial;
        c.capacity = if capacity == ALL_ONES { 0 } else { capacity };
        c.block = None;
        c.tail = 0;
        c.tx_expected = None;
        c.interrupts = 0;
        let (ring, ring_bytes) = (c.ring, c.ring_bytes);
        store(cx, t, cpu, bar + regs::RING_BASE, ring);
        store(cx, t, cpu, bar + regs::RING_SIZE, ring_bytes);
        store(
            cx,
            t,
            cpu,
            bar + regs::CTRL,
            regs::CTRL_RUN | regs::CTRL_IRQ_EN,
        );
        self.cards[k].active = true;
        self.stats.cards += 1;
        Ok(())
    }

    /// The interrupt's top half for card `k`, run by `cpu`: read the status and acknowledge it.
    pub fn top_half(&mut self, t: &mut SimTime, k: usize, cpu: CpuId, cx: &mut Cx<'_>) -> TopHalf {
        let Some(c) = self.cards.get(k).filter(|c| c.active) else {
            self.stats.spurious += 1;
            return TopHalf::Inactive;
        };
        let bar = c.bar;
        let status = load(cx, t, cpu, bar + regs::STATUS);
        if status == ALL_ONES {
            self.gone(k);
            return TopHalf::Gone;
        }
        self.stats.interrupts += 1;
        store(cx, t, cpu, bar + regs::STATUS, status);
        TopHalf::Status(status)
    }

    fn gone(&mut self, k: usize) {
        self.cards[k].active = false;
        self.stats.gone += 1;
    }

    /// Firmware said card `k` is gone (a bus check found its slot or subsystem empty): the
    /// driver stops using it at once, before the hot-plug flow gets to it, so no interrupt
    /// handler or bottom half on another CPU touches it again (Linux's
    /// `pci_dev_set_disconnected`).
    pub fn disconnect(&mut self, k: usize) {
        if let Some(c) = self.cards.get_mut(k).filter(|c| c.active) {
            c.active = false;
            self.stats.disconnected += 1;
        }
    }

    /// The bottom half for card `k` with the acknowledged `status`, run by `cpu`: check the
    /// new receive records and the transmit checksum, maybe send a transmit buffer. (A
    /// claimed card's block completions are its owner's, taken in the interrupt:
    /// [`CardDriver::take_completions`].)
    #[allow(clippy::too_many_arguments)]
    pub fn bottom_half(
        &mut self,
        t: &mut SimTime,
        k: usize,
        cpu: CpuId,
        status: u64,
        cx: &mut Cx<'_>,
        out: &mut Vec<Violation>,
    ) {
        if !self.cards.get(k).is_some_and(|c| c.active) {
            return;
        }
        let c = self.cards[k].clone();
        if status & regs::STATUS_RX != 0 {
            let head = load(cx, t, cpu, c.bar + regs::HEAD);
            if head == ALL_ONES {
                self.gone(k);
                return;
            }
            let mut tail = c.tail;
            while tail < head {
                let seq = tail / RECORD_BYTES;
                self.check_words(
                    t,
                    cpu,
                    c.ring + tail % c.ring_bytes,
                    RECORD_WORDS as u64,
                    |i| record_word(c.serial, seq, i as usize),
                    (
                        &format!("receive record {seq} of pci {}", c.bdf),
                        "the card",
                    ),
                    cx,
                    out,
                );
                self.stats.records_checked += 1;
                tail += RECORD_BYTES;
            }
            self.cards[k].tail = tail;
            store(cx, t, cpu, c.bar + regs::TAIL, tail);
        }
        if status & regs::STATUS_TX_DONE != 0 {
            let sum = load(cx, t, cpu, c.bar + regs::TX_SUM);
            if sum == ALL_ONES {
                // Pulled out since the top half read its status: gone, not a bad checksum.
                self.gone(k);
                return;
            }
            if let Some(want) = self.cards[k].tx_expected.take() {
                self.stats.transmits += 1;
                if sum != want {
                    Self::mismatch(
                        &mut self.stats,
                        *t,
                        cpu,
                        Entity::Pci(c.bdf),
                        format!(
                            "pci {} summed its transmit buffer to {sum:#x}, the driver wrote words summing to {want:#x}",
                            c.bdf
                        ),
                        out,
                    );
                }
            }
        }
        if status & regs::STATUS_BLK_DONE != 0
            && !c.claimed
            && !self.block_done(t, k, cpu, cx, out, &mut Vec::new())
        {
            return;
        }
        let n = self.cards[k].interrupts + 1;
        self.cards[k].interrupts = n;
        let due = self.cfg.transmit_every > 0 && n % u64::from(self.cfg.transmit_every) == 0;
        if c.claimed {
            // The kernel's disk: its block engine is not the driver's to check.
        } else if due && c.capacity > 0 {
            if self.cards[k].block.is_none() {
                self.start_sector_check(t, k, cpu, cx);
            }
        } else if due && self.cards[k].tx_expected.is_none() {
            let mut sum = 0u64;
            for i in 0..u64::from(self.cfg.transmit_words) {
                let v = c.serial.rotate_left(i as u32) ^ (n << 20) ^ i;
                sum = sum.wrapping_add(v);
                store(cx, t, cpu, c.tx_buf + 8 * i, v);
            }
            self.cards[k].tx_expected = Some(sum);
            store(cx, t, cpu, c.bar + regs::TX_ADDR, c.tx_buf);
            store(
                cx,
                t,
                cpu,
                c.bar + regs::TX_LEN,
                8 * u64::from(self.cfg.transmit_words),
            );
            store(cx, t, cpu, c.bar + regs::TX_GO, 1);
        }
    }

    /// Takes storage card `k` as the kernel's disk: no sector check runs on it, and its
    /// completions are the kernel's ([`CardDriver::take_completions`]).
    pub fn claim(&mut self, k: usize) {
        if let Some(c) = self.cards.get_mut(k) {
            c.claimed = true;
        }
    }

    /// Queues a block command on card `k` as `cpu`: `(write, lba, addr, len, tag)` — `len`
    /// bytes between memory at `addr` and the medium from sector `lba` (to the medium if
    /// `write`), completing with `tag`.
    pub fn block_command(
        &self,
        t: &mut SimTime,
        k: usize,
        cpu: CpuId,
        (write, lba, addr, len, tag): (bool, u64, u64, u64, u32),
        cx: &mut Cx<'_>,
    ) {
        let Some(c) = self.cards.get(k) else {
            return;
        };
        let command = if write {
            regs::BLK_WRITE
        } else {
            regs::BLK_READ
        };
        store(cx, t, cpu, c.bar + regs::BLK_LBA, lba);
        store(cx, t, cpu, c.bar + regs::BLK_ADDR, addr);
        store(cx, t, cpu, c.bar + regs::BLK_LEN, len);
        store(cx, t, cpu, c.bar + regs::BLK_TAG, u64::from(tag));
        store(cx, t, cpu, c.bar + regs::BLK_CMD, command);
    }

    /// Aborts every command card `k` has queued, as `cpu`: each completes failed at once and
    /// moves nothing (the card's completions say which).
    pub fn block_abort(&self, t: &mut SimTime, k: usize, cpu: CpuId, cx: &mut Cx<'_>) {
        if let Some(c) = self.cards.get(k) {
            store(cx, t, cpu, c.bar + regs::BLK_CMD, regs::BLK_ABORT);
        }
    }

    /// Queues the command of sector check `chk` (its write, or its read-back) on card `k` as
    /// `cpu`: `SECTOR_BYTES` between the card's buffer and the check's sector.
    fn sector_command(
        &self,
        t: &mut SimTime,
        k: usize,
        cpu: CpuId,
        chk: SectorCheck,
        cx: &mut Cx<'_>,
    ) {
        let c = &self.cards[k];
        let cmd = (!chk.reading, chk.lba(c), c.tx_buf, SECTOR_BYTES, chk.tag());
        self.block_command(t, k, cpu, cmd, cx);
    }

    /// Starts a sector check on storage card `k`: the pattern into its buffer, a write of it
    /// to the next sector.
    fn start_sector_check(&mut self, t: &mut SimTime, k: usize, cpu: CpuId, cx: &mut Cx<'_>) {
        let c = self.cards[k].clone();
        let cycle = c.block_cycles;
        let chk = SectorCheck {
            cycle,
            reading: false,
        };
        for i in 0..SECTOR_BYTES / 8 {
            store(
                cx,
                t,
                cpu,
                c.tx_buf + 8 * i,
                sector_word(c.serial, cycle, i),
            );
        }
        self.sector_command(t, k, cpu, chk, cx);
        let card = &mut self.cards[k];
        card.block_cycles += 1;
        card.block = Some(chk);
    }

    /// The completions claimed card `k` posted, taken from its `BLK_DONE` by `cpu` (in the
    /// interrupt itself, as a block driver completes requests in its hard interrupt handler).
    /// `None`: the card is gone.
    pub fn take_completions(
        &mut self,
        t: &mut SimTime,
        k: usize,
        cpu: CpuId,
        cx: &mut Cx<'_>,
    ) -> Option<Vec<u64>> {
        let mut done = Vec::new();
        self.block_done(t, k, cpu, cx, &mut Vec::new(), &mut done)
            .then_some(done)
    }

    /// Takes every completion storage card `k` posted: a claimed card's go to
    /// `completions`; else a write done is followed by the read-back into the poisoned
    /// buffer, a read-back done is checked word by word. `false`: the card is gone.
    fn block_done(
        &mut self,
        t: &mut SimTime,
        k: usize,
        cpu: CpuId,
        cx: &mut Cx<'_>,
        out: &mut Vec<Violation>,
        completions: &mut Vec<u64>,
    ) -> bool {
        let c = self.cards[k].clone();
        loop {
            let w = load(cx, t, cpu, c.bar + regs::BLK_DONE);
            if w == ALL_ONES {
                self.gone(k);
                return false;
            }
            if w == 0 {
                return true;
            }
            if c.claimed {
                completions.push(w);
                continue;
            }
            let tag = (w & 0xFFFF_FFFF) as u32;
            let Some(chk) = self.cards[k].block.filter(|b| b.tag() == tag) else {
                // Not the command in flight (one from before the card was brought up again).
                continue;
            };
            let op = if chk.reading { "read" } else { "write" };
            if w & BLK_FAILED != 0 {
                self.stats.block_failures += 1;
                self.cards[k].block = None;
                Self::mismatch(
                    &mut self.stats,
                    *t,
                    cpu,
                    Entity::Pci(c.bdf),
                    format!(
                        "pci {} failed the {op} of sector {} (block command {tag})",
                        c.bdf,
                        chk.lba(&c)
                    ),
                    out,
                );
                continue;
            }
            if !chk.reading {
                for i in 0..SECTOR_BYTES / 8 {
                    store(cx, t, cpu, c.tx_buf + 8 * i, sector_poison(i));
                }
                let back = SectorCheck {
                    reading: true,
                    ..chk
                };
                self.sector_command(t, k, cpu, back, cx);
                self.cards[k].block = Some(back);
                continue;
            }
            self.cards[k].block = None;
            self.stats.sectors_checked += 1;
            self.check_words(
                t,
                cpu,
                c.tx_buf,
                SECTOR_BYTES / 8,
                |i| sector_word(c.serial, chk.cycle, i),
                (
                    &format!("sector {} of pci {}, read back,", chk.lba(&c), c.bdf),
                    "the driver",
                ),
                cx,
                out,
            );
        }
    }

    /// Reads the `n` words at `base` as `cpu` and compares each with `want(i)`; if any
    /// differs, one report names the first (`what` it is and who wrote the expected words)
    /// and how many did.
    #[allow(clippy::too_many_arguments)]
    fn check_words(
        &mut self,
        t: &mut SimTime,
        cpu: CpuId,
        base: u64,
        n: u64,
        want: impl Fn(u64) -> u64,
        (what, writer): (&str, &str),
        cx: &mut Cx<'_>,
        out: &mut Vec<Violation>,
    ) {
        let mut first = None;
        let mut differ = 0;
        for i in 0..n {
            let a = base + 8 * i;
            let (v, w) = (load(cx, t, cpu, a), want(i));
            if v != w {
                differ += 1;
                first.get_or_insert((i, a, v, w));
            }
        }
        if let Some((i, a, v, w)) = first {
            Self::mismatch(
                &mut self.stats,
                *t,
                cpu,
                Entity::Memory(PhysAddr::new(a)),
                format!(
                    "{what} word {i}: read {v:#x}, {writer} wrote {w:#x} ({differ} of {n} words differ)"
                ),
                out,
            );
        }
    }

    /// Sizes the memory and I/O BARs of the function at `bdf` as `cpu`, the way enumeration
    /// does (`__pci_read_base`): decoding off, each BAR saved, written with all-ones, read
    /// back, restored, decoding as it was. Returns `(values, sizes)` of the memory and the
    /// I/O BAR (sizes 0: nothing answers).
    pub fn size_bars(
        t: &mut SimTime,
        cpu: CpuId,
        bdf: Bdf,
        cx: &mut Cx<'_>,
    ) -> ((u64, u64), (u64, u64)) {
        let command = cfg_read(cx, t, cpu, bdf, reg::COMMAND);
        if command == u32::MAX {
            return ((0, 0), (0, 0));
        }
        cfg_write(
            cx,
            t,
            cpu,
            bdf,
            reg::COMMAND,
            command & !(cmd::MEMORY | cmd::IO),
        );
        let mut saved = [0u32; 3];
        let mut probe_bar = |i: usize, off: u16| {
            saved[i] = cfg_read(cx, t, cpu, bdf, off);
            cfg_write(cx, t, cpu, bdf, off, u32::MAX);
            let v = cfg_read(cx, t, cpu, bdf, off);
            cfg_write(cx, t, cpu, bdf, off, saved[i]);
            v
        };
        let lo = probe_bar(0, reg::BAR0);
        let hi = probe_bar(1, reg::BAR0 + 4);
        let io = probe_bar(2, reg::BAR0 + 8);
        cfg_write(cx, t, cpu, bdf, reg::COMMAND, command);
        let mask = u64::from(hi) << 32 | u64::from(lo & 0xFFFF_FFF0);
        let mem = (!mask).wrapping_add(1);
        let io_size = u64::from(!(io & 0xFFFF_FFFC)).wrapping_add(1) & 0xFFFF;
        let bar = u64::from(saved[1]) << 32 | u64::from(saved[0] & 0xFFFF_FFF0);
        let io_bar = u64::from(saved[2] & 0xFFFF_FFFC);
        ((bar, mem), (io_bar, io_size))
    }

    /// Writes the memory BAR `bar` and the I/O BAR `io_bar` of the function at `bdf` as
    /// `cpu` (decoding stays off until [`CardDriver::bring_up`]).
    pub fn program_bars(
        t: &mut SimTime,
        cpu: CpuId,
        bdf: Bdf,
        bar: u64,
        io_bar: u64,
        cx: &mut Cx<'_>,
    ) {
        cfg_write(cx, t, cpu, bdf, reg::COMMAND, 0);
        cfg_write(cx, t, cpu, bdf, reg::BAR0, bar as u32);
        cfg_write(cx, t, cpu, bdf, reg::BAR0 + 4, (bar >> 32) as u32);
        cfg_write(cx, t, cpu, bdf, reg::BAR0 + 8, io_bar as u32);
    }

    /// Gives card `k` its receive ring (and transmit buffer behind it) at `ring`.
    pub fn set_ring(&mut self, k: usize, ring: u64, bar_size: u64) {
        let c = &mut self.cards[k];
        c.ring = ring;
        c.tx_buf = ring + c.ring_bytes;
        c.bar_size = bar_size;
    }

    /// Lets go of card `k` (its device is being removed): no longer driven, no BAR.
    pub fn detach(&mut self, k: usize) {
        let c = &mut self.cards[k];
        c.active = false;
        c.claimed = false;
        c.bar = 0;
        c.io_bar = 0;
        c.tx_expected = None;
        c.block = None;
    }

    /// Stops card `k` as `cpu` before its slot loses power: engine off, bus mastering off.
    pub fn quiesce(&mut self, t: &mut SimTime, k: usize, cpu: CpuId, cx: &mut Cx<'_>) {
        let c = self.cards[k].clone();
        store(cx, t, cpu, c.bar + regs::CTRL, 0);
        cfg_write(cx, t, cpu, c.bdf, reg::COMMAND, cmd::MEMORY | cmd::IO);
        self.cards[k].active = false;
    }

    /// The watchdog: `cpu_of(k)` reads every active card's status; a card answering
    /// all-ones is gone.
    pub fn poll(&mut self, now: SimTime, cpu_of: impl Fn(usize) -> CpuId, cx: &mut Cx<'_>) {
        for k in 0..self.cards.len() {
            if !self.cards[k].active {
                continue;
            }
            let mut t = now;
            self.stats.polls += 1;
            if load(cx, &mut t, cpu_of(k), self.cards[k].bar + regs::STATUS) == ALL_ONES {
                self.gone(k);
            }
        }
    }

    /// One of the driver's data checks failed: counted and reported (the CPU that checked,
    /// what it checked).
    fn mismatch(
        stats: &mut DriverStats,
        t: SimTime,
        cpu: CpuId,
        target: Entity,
        message: String,
        out: &mut Vec<Violation>,
    ) {
        stats.mismatches += 1;
        out.push(Violation {
            time: t,
            checker: DRIVER,
            agent: Entity::Cpu(cpu),
            target,
            message,
        });
    }

    /// Counts an interrupt no card owned.
    pub fn spurious(&mut self) {
        self.stats.spurious += 1;
    }
}
