//! The I/O exerciser: a minimal driver for every card, running on the bare platform (there is
//! no OS model yet), so that cards really DMA into memory, raise interrupts and are serviced.
//!
//! Everything goes through the platform's access paths, and everything is discovered the way a
//! kernel discovers it: the card by a configuration read of its id, its BARs from
//! configuration space (sized by writing all-ones when it must be given new ones), its
//! interrupt line from the host bridge's `_PRT`, its IO SAPIC from `_GSB`/`_CRS`, and the
//! interrupt destination's local SAPIC from the processor's `_MAT`.
//!
//! Per card: a receive ring at the top of the memory of the cell its I/O subsystem is attached
//! to; the card's INTA routed level-triggered to the configured CPU. The interrupt handler
//! acknowledges the card, checks every record the card wrote against the pattern the card
//! must have written (a mismatch is a `DRIVER` violation: DMA or coherence lost data), hands
//! the ring back, every few interrupts sends a transmit buffer and checks the card's checksum
//! of it, and EOIs the IO SAPIC. Quiescing a card (before its slot is powered off) stops its
//! engine, its bus mastering and masks its entry; bringing it up again reprograms everything.

use std::collections::BTreeMap;

use acpi_model::resources::{self, Resource};
use acpi_model::{Platform, PlatformProbe};
use cells::machine::ALL_ONES;
use io_subsystem::alloc::WindowAllocator;
use io_subsystem::device::{RECORD_BYTES, RECORD_WORDS, record_word, regs};
use io_subsystem::pci::{BarKind, cmd, reg};
use io_subsystem::sapic;
use serde::{Deserialize, Serialize};
use sim_core::{
    Bdf, CheckerId, CpuId, Entity, IoSubsystemId, PhysAddr, SimDuration, SimTime, SlotId, Violation,
};

/// Reports of the exerciser's own checks.
pub const DRIVER: CheckerId = CheckerId {
    code: "DRIVER",
    name: "io-exerciser",
};

/// `[workload.io]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IoExerciserConfig {
    /// Drive the cards present at start.
    pub enabled: bool,
    /// Records per receive ring.
    pub ring_records: u32,
    /// Send a transmit buffer every this many interrupts of a card (0: never).
    pub transmit_every: u32,
    /// Words per transmit buffer.
    pub transmit_words: u32,
    /// Time from an interrupt's delivery to its handler.
    pub service_ns: u64,
    /// Every this many nanoseconds the driver's watchdog reads each card's status register
    /// (0: no watchdog). A card that answers all-ones is gone: the driver stops using it.
    pub poll_ns: u64,
}

impl Default for IoExerciserConfig {
    fn default() -> Self {
        IoExerciserConfig {
            enabled: true,
            ring_records: 16,
            transmit_every: 4,
            transmit_words: 32,
            service_ns: 200,
            poll_ns: 0,
        }
    }
}

/// The exerciser's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DriverStats {
    /// Card bring-ups (at boot and after a slot power-on).
    pub cards: u64,
    /// Watchdog reads of card status registers.
    pub polls: u64,
    /// Cards the driver found gone (all-ones) and stopped using.
    pub gone: u64,
    /// Interrupts handled.
    pub interrupts: u64,
    /// Interrupt vectors no active card owned.
    pub spurious: u64,
    /// Receive records checked.
    pub records_checked: u64,
    /// Transmit buffers sent and checked.
    pub transmits: u64,
    /// Checks that failed.
    pub mismatches: u64,
}

#[derive(Clone, Debug)]
struct Card {
    slot: SlotId,
    bdf: Bdf,
    serial: u64,
    bar: u64,
    io_bar: u64,
    ring: u64,
    ring_bytes: u64,
    tx_buf: u64,
    tail: u64,
    vector: u8,
    cpu: CpuId,
    sapic_base: u64,
    entry: u64,
    active: bool,
    interrupts: u64,
    tx_expected: Option<u64>,
}

/// The exerciser (see the module docs).
#[derive(Debug)]
pub struct IoExerciser {
    cfg: IoExerciserConfig,
    cards: Vec<Card>,
    by_vector: BTreeMap<u8, usize>,
    stats: DriverStats,
}

/// Why the exerciser cannot be set up; names the field of `[workload.io]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupError {
    /// Field within `[workload.io]`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn path_of(p: &Platform, slot: SlotId) -> Option<(String, String)> {
    let node = p.namespace().node_of(acpi_model::NodeKind::Slot(slot))?;
    let parent = node.path.rsplit_once('.')?.0.to_owned();
    Some((node.path.clone(), parent))
}

impl IoExerciser {
    /// Plans rings and vectors for every card present at start.
    pub fn new(cfg: IoExerciserConfig, p: &Platform) -> Result<IoExerciser, SetupError> {
        let mut ex = IoExerciser {
            cfg,
            cards: Vec::new(),
            by_vector: BTreeMap::new(),
            stats: DriverStats::default(),
        };
        if !ex.cfg.enabled {
            return Ok(ex);
        }
        if ex.cfg.ring_records == 0 || ex.cfg.ring_records > 4096 {
            return Err(SetupError {
                field: "ring_records",
                message: format!("{} must be between 1 and 4096", ex.cfg.ring_records),
            });
        }
        if ex.cfg.transmit_words == 0 || ex.cfg.transmit_words > 4096 {
            return Err(SetupError {
                field: "transmit_words",
                message: format!("{} must be between 1 and 4096", ex.cfg.transmit_words),
            });
        }
        let live: Vec<_> =
            p.io.devices()
                .iter()
                .filter(|d| d.is_live())
                .cloned()
                .collect();
        for d in live {
            ex.plan(p, d.slot)?;
        }
        Ok(ex)
    }

    /// Plans driver state for the card in `slot` (ring, vector, destination).
    fn plan(&mut self, p: &Platform, slot: SlotId) -> Result<usize, SetupError> {
        let k = self.cards.len();
        let s = p.io.slot(slot).ok_or_else(|| SetupError {
            field: "enabled",
            message: format!("slot {} does not exist", slot.0),
        })?;
        let dev = s
            .card
            .and_then(|c| p.io.device(c))
            .ok_or_else(|| SetupError {
                field: "enabled",
                message: format!("slot {} holds no card", slot.0),
            })?
            .clone();
        let sub = p.io.subsystem(dev.subsystem).ok_or_else(|| SetupError {
            field: "enabled",
            message: format!("{} does not exist", dev.subsystem),
        })?;
        let g = p.machine.geometry();
        let cell = sim_core::CellId(sub.attached_cell);
        let (base, len) = p
            .machine
            .address_map()
            .cell_range(cell)
            .map_or((0, g.total_bytes), |(b, l)| (b.raw(), l));
        let ring_bytes = u64::from(self.cfg.ring_records) * RECORD_BYTES;
        let tx_bytes = 8 * u64::from(self.cfg.transmit_words);
        let stride = (ring_bytes + tx_bytes).next_multiple_of(4096);
        let from_top = stride * (k as u64 + 1);
        if from_top > len / 4 {
            return Err(SetupError {
                field: "ring_records",
                message: format!(
                    "{} cards' rings of {ring_bytes} bytes do not fit in the top quarter of \
                     {cell}'s memory",
                    k + 1
                ),
            });
        }
        let ring = base + len - from_top;
        let vector = 0x30 + k as u8;
        if vector >= 0xF0 {
            return Err(SetupError {
                field: "enabled",
                message: "more than 192 cards: out of interrupt vectors".into(),
            });
        }
        let per = g.cpus_per_cell as u32;
        let cpu = CpuId(dev.irq_cpu.unwrap_or(u32::from(sub.attached_cell) * per));
        self.cards.push(Card {
            slot,
            bdf: dev.bdf,
            serial: dev.serial,
            bar: 0,
            io_bar: 0,
            ring,
            ring_bytes,
            tx_buf: ring + ring_bytes,
            tail: 0,
            vector,
            cpu,
            sapic_base: sub.sapic.base,
            entry: 0,
            active: false,
            interrupts: 0,
            tx_expected: None,
        });
        self.by_vector.insert(vector, k);
        Ok(k)
    }

    /// Counters.
    pub fn stats(&self) -> &DriverStats {
        &self.stats
    }

    /// Time from delivery to handler.
    pub fn service_delay(&self) -> SimDuration {
        SimDuration::from_nanos(self.cfg.service_ns)
    }

    /// CPUs that receive the cards' interrupts.
    pub fn irq_cpus(&self) -> Vec<CpuId> {
        let mut v: Vec<CpuId> = self.cards.iter().map(|c| c.cpu).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Brings up every planned card (boot).
    pub fn boot(
        &mut self,
        now: SimTime,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for k in 0..self.cards.len() {
            if let Err(e) = self.bring_up(now, k, false, p, probe) {
                problems.push(e);
            }
        }
        problems
    }

    fn load(
        p: &mut Platform,
        probe: &mut PlatformProbe,
        t: &mut SimTime,
        cpu: CpuId,
        addr: u64,
    ) -> u64 {
        match p.load(*t, cpu, PhysAddr::new(addr), probe) {
            Ok((v, lat)) => {
                *t += lat;
                v
            }
            Err(_) => ALL_ONES,
        }
    }

    fn store(
        p: &mut Platform,
        probe: &mut PlatformProbe,
        t: &mut SimTime,
        cpu: CpuId,
        addr: u64,
        v: u64,
    ) {
        if let Ok(lat) = p.store(*t, cpu, PhysAddr::new(addr), v, probe) {
            *t += lat;
        }
    }

    fn cfg_read(
        p: &mut Platform,
        probe: &mut PlatformProbe,
        t: SimTime,
        cpu: CpuId,
        bdf: Bdf,
        off: u16,
    ) -> u32 {
        p.config_read(t, cpu, bdf, off, probe).unwrap_or(u32::MAX)
    }

    fn cfg_write(
        p: &mut Platform,
        probe: &mut PlatformProbe,
        t: SimTime,
        cpu: CpuId,
        bdf: Bdf,
        off: u16,
        v: u32,
    ) {
        let _ = p.config_write(t, cpu, bdf, off, v, probe);
    }

    /// The GSI of INTA of the card in `slot`, from its host bridge's `_PRT`.
    fn gsi_of(p: &Platform, slot: SlotId, device: u8) -> Option<u32> {
        let (_, bridge) = path_of(p, slot)?;
        let prt = p.read(&format!("{bridge}._PRT"))?;
        prt.as_package()?.iter().find_map(|e| {
            let e = e.as_package()?;
            let addr = e.first()?.as_integer()?;
            let pin = e.get(1)?.as_integer()?;
            (addr >> 16 == u64::from(device) && pin == 0)
                .then(|| e.get(3)?.as_integer())
                .flatten()
                .map(|g| g as u32)
        })
    }

    /// The IO SAPIC owning `gsi`: `(register base, entry)`, from `_GSB` and `_CRS`.
    fn sapic_of(p: &Platform, gsi: u32) -> Option<(u64, u64)> {
        let entries = u32::from(p.io.config().sapic_entries);
        p.io.subsystems().iter().find_map(|s| {
            let path = format!("\\_SB_.IO{:02X}.SAPC", s.id.0);
            let gsb = p.read(&format!("{path}._GSB"))?.as_integer()? as u32;
            if !(gsb..gsb + entries).contains(&gsi) {
                return None;
            }
            let crs = p.read(&format!("{path}._CRS"))?;
            match resources::decode(crs.as_buffer()?)?.first()? {
                Resource::Memory { base, .. } => Some((*base, u64::from(gsi - gsb))),
                Resource::Io { .. } | Resource::BusNumbers { .. } => None,
            }
        })
    }

    /// The local SAPIC id/eid of `cpu`, from its processor object's `_MAT`.
    fn lsapic_of(p: &Platform, cpu: CpuId) -> Option<(u8, u8)> {
        let node = p
            .namespace()
            .node_of(acpi_model::NodeKind::Processor(cpu))?;
        let mat = p.read(&format!("{}._MAT", node.path))?;
        let b = mat.as_buffer()?;
        Some((*b.get(3)?, *b.get(4)?))
    }

    /// New BARs for a card that has none, allocated in its bridge's windows around every
    /// other card's decoded ranges (BARs sized by writing all-ones).
    fn assign_bars(
        &self,
        k: usize,
        t: SimTime,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<(u64, u64), String> {
        let c = &self.cards[k];
        let (_, bridge_path) = path_of(p, c.slot).ok_or("slot has no ACPI node")?;
        let crs = p
            .read(&format!("{bridge_path}._CRS"))
            .ok_or("bridge has no _CRS")?;
        let res = resources::decode(crs.as_buffer().ok_or("bad _CRS")?).ok_or("bad _CRS")?;
        let (mut mem, mut io) = (None, None);
        for r in res {
            match r {
                Resource::Memory { base, len, .. } => mem = Some(WindowAllocator::new(base, len)),
                Resource::Io { base, len } => {
                    io = Some(WindowAllocator::new(u64::from(base), u64::from(len)))
                }
                Resource::BusNumbers { .. } => {}
            }
        }
        let (mut mem, mut io) = (mem.ok_or("no MMIO window")?, io.ok_or("no I/O window")?);
        for d in
            p.io.devices()
                .iter()
                .filter(|d| d.is_live() && d.bdf != c.bdf)
        {
            for (kind, base, size) in d.decoded() {
                let pool = match kind {
                    BarKind::Mem64 => &mut mem,
                    BarKind::Io => &mut io,
                };
                let _ = pool.reserve(base, size);
            }
        }
        for o in &self.cards {
            if o.bdf != c.bdf && o.bar != 0 && o.active {
                let _ = mem.reserve(o.bar, 1);
            }
        }
        let (cpu, bdf) = (c.cpu, c.bdf);
        Self::cfg_write(p, probe, t, cpu, bdf, reg::BAR0, u32::MAX);
        Self::cfg_write(p, probe, t, cpu, bdf, reg::BAR0 + 4, u32::MAX);
        let lo = Self::cfg_read(p, probe, t, cpu, bdf, reg::BAR0);
        let hi = Self::cfg_read(p, probe, t, cpu, bdf, reg::BAR0 + 4);
        let mask = u64::from(hi) << 32 | u64::from(lo & 0xFFFF_FFF0);
        let mem_size = (!mask).wrapping_add(1);
        Self::cfg_write(p, probe, t, cpu, bdf, reg::BAR0 + 8, u32::MAX);
        let io_size =
            u64::from(!(Self::cfg_read(p, probe, t, cpu, bdf, reg::BAR0 + 8) & 0xFFFF_FFFC))
                .wrapping_add(1)
                & 0xFFFF;
        let bar = mem.alloc(mem_size, mem_size).map_err(|e| e.to_string())?;
        let io_bar = io.alloc(io_size, io_size).map_err(|e| e.to_string())?;
        Ok((bar, io_bar))
    }

    /// Programs card `k` from scratch: BARs (kept, or assigned anew), decode and bus
    /// mastering, its IO SAPIC entry, its ring, its engine.
    fn bring_up(
        &mut self,
        now: SimTime,
        k: usize,
        new_bars: bool,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<(), String> {
        let mut t = now;
        let (cpu, bdf) = (self.cards[k].cpu, self.cards[k].bdf);
        let id = Self::cfg_read(p, probe, t, cpu, bdf, reg::ID);
        if id == u32::MAX {
            return Err(format!("no card answers at {bdf}"));
        }
        if new_bars {
            let (bar, io_bar) = if self.cards[k].bar != 0 {
                (self.cards[k].bar, self.cards[k].io_bar)
            } else {
                self.assign_bars(k, t, p, probe)?
            };
            Self::cfg_write(p, probe, t, cpu, bdf, reg::BAR0, bar as u32);
            Self::cfg_write(p, probe, t, cpu, bdf, reg::BAR0 + 4, (bar >> 32) as u32);
            Self::cfg_write(p, probe, t, cpu, bdf, reg::BAR0 + 8, io_bar as u32);
        }
        let lo = Self::cfg_read(p, probe, t, cpu, bdf, reg::BAR0);
        let hi = Self::cfg_read(p, probe, t, cpu, bdf, reg::BAR0 + 4);
        let io_bar = u64::from(Self::cfg_read(p, probe, t, cpu, bdf, reg::BAR0 + 8) & 0xFFFF_FFFC);
        let bar = u64::from(hi) << 32 | u64::from(lo & 0xFFFF_FFF0);
        let slot = self.cards[k].slot;
        let gsi =
            Self::gsi_of(p, slot, bdf.device).ok_or_else(|| format!("no _PRT entry for {bdf}"))?;
        let (sapic_base, entry) =
            Self::sapic_of(p, gsi).ok_or_else(|| format!("no IO SAPIC for gsi{gsi}"))?;
        let (lid, leid) = Self::lsapic_of(p, cpu).ok_or_else(|| format!("{cpu} has no _MAT"))?;
        {
            let c = &mut self.cards[k];
            c.bar = bar;
            c.io_bar = io_bar;
            c.sapic_base = sapic_base;
            c.entry = entry;
            c.tail = 0;
            c.tx_expected = None;
        }
        let c = self.cards[k].clone();
        Self::cfg_write(
            p,
            probe,
            t,
            cpu,
            bdf,
            reg::COMMAND,
            cmd::MEMORY | cmd::IO | cmd::BUS_MASTER,
        );
        Self::store(
            p,
            probe,
            &mut t,
            cpu,
            sapic_base + sapic::IOREGSEL,
            0x11 + 2 * entry,
        );
        Self::store(
            p,
            probe,
            &mut t,
            cpu,
            sapic_base + sapic::IOWIN,
            u64::from(lid) << 24 | u64::from(leid) << 16,
        );
        Self::store(
            p,
            probe,
            &mut t,
            cpu,
            sapic_base + sapic::IOREGSEL,
            0x10 + 2 * entry,
        );
        Self::store(
            p,
            probe,
            &mut t,
            cpu,
            sapic_base + sapic::IOWIN,
            u64::from(c.vector) | u64::from(sapic::rte::LEVEL),
        );
        Self::store(p, probe, &mut t, cpu, bar + regs::RING_BASE, c.ring);
        Self::store(p, probe, &mut t, cpu, bar + regs::RING_SIZE, c.ring_bytes);
        Self::store(
            p,
            probe,
            &mut t,
            cpu,
            bar + regs::CTRL,
            regs::CTRL_RUN | regs::CTRL_IRQ_EN,
        );
        self.cards[k].active = true;
        self.stats.cards += 1;
        Ok(())
    }

    /// Handles every interrupt pending on `cpu`; returns the violations its checks found.
    pub fn service(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut t = now;
        while let Ok(Some(vector)) = p.take_interrupt(t, cpu, probe) {
            let Some(&k) = self.by_vector.get(&vector) else {
                self.stats.spurious += 1;
                continue;
            };
            let c = self.cards[k].clone();
            if c.active {
                self.handle(&mut t, k, p, probe, &mut out);
            } else {
                self.stats.spurious += 1;
            }
            Self::store(
                p,
                probe,
                &mut t,
                cpu,
                c.sapic_base + sapic::EOI,
                u64::from(vector),
            );
        }
        out
    }

    /// The watchdog interval, if any.
    pub fn poll_interval(&self) -> Option<SimDuration> {
        (self.cfg.poll_ns > 0 && !self.cards.is_empty())
            .then(|| SimDuration::from_nanos(self.cfg.poll_ns))
    }

    /// The watchdog: reads every active card's status; a card answering all-ones is gone.
    pub fn poll(&mut self, now: SimTime, p: &mut Platform, probe: &mut PlatformProbe) {
        for k in 0..self.cards.len() {
            if !self.cards[k].active {
                continue;
            }
            let c = self.cards[k].clone();
            let mut t = now;
            self.stats.polls += 1;
            if Self::load(p, probe, &mut t, c.cpu, c.bar + regs::STATUS) == ALL_ONES {
                self.gone(k);
            }
        }
    }

    fn gone(&mut self, k: usize) {
        self.cards[k].active = false;
        self.stats.gone += 1;
    }

    fn handle(
        &mut self,
        t: &mut SimTime,
        k: usize,
        p: &mut Platform,
        probe: &mut PlatformProbe,
        out: &mut Vec<Violation>,
    ) {
        let c = self.cards[k].clone();
        let status = Self::load(p, probe, t, c.cpu, c.bar + regs::STATUS);
        if status == ALL_ONES {
            // The card is gone (surprise removal): stop touching it.
            self.gone(k);
            return;
        }
        self.stats.interrupts += 1;
        Self::store(p, probe, t, c.cpu, c.bar + regs::STATUS, status);
        if status & regs::STATUS_RX != 0 {
            let head = Self::load(p, probe, t, c.cpu, c.bar + regs::HEAD);
            let mut tail = c.tail;
            while tail < head {
                let seq = tail / RECORD_BYTES;
                let addr = c.ring + tail % c.ring_bytes;
                for i in 0..RECORD_WORDS {
                    let a = addr + 8 * i as u64;
                    let v = Self::load(p, probe, t, c.cpu, a);
                    let want = record_word(c.serial, seq, i);
                    if v != want {
                        self.stats.mismatches += 1;
                        out.push(Violation {
                            time: *t,
                            checker: DRIVER,
                            agent: Entity::Cpu(c.cpu),
                            target: Entity::Memory(PhysAddr::new(a)),
                            message: format!(
                                "receive record {seq} of pci {} word {i}: read {v:#x}, the card wrote {want:#x}",
                                c.bdf
                            ),
                        });
                    }
                }
                self.stats.records_checked += 1;
                tail += RECORD_BYTES;
            }
            self.cards[k].tail = tail;
            Self::store(p, probe, t, c.cpu, c.bar + regs::TAIL, tail);
        }
        if status & regs::STATUS_TX_DONE != 0 {
            let sum = Self::load(p, probe, t, c.cpu, c.bar + regs::TX_SUM);
            if let Some(want) = self.cards[k].tx_expected.take() {
                self.stats.transmits += 1;
                if sum != want {
                    self.stats.mismatches += 1;
                    out.push(Violation {
                        time: *t,
                        checker: DRIVER,
                        agent: Entity::Cpu(c.cpu),
                        target: Entity::Pci(c.bdf),
                        message: format!(
                            "pci {} summed its transmit buffer to {sum:#x}, the driver wrote words summing to {want:#x}",
                            c.bdf
                        ),
                    });
                }
            }
        }
        let n = self.cards[k].interrupts + 1;
        self.cards[k].interrupts = n;
        if self.cfg.transmit_every > 0
            && n % u64::from(self.cfg.transmit_every) == 0
            && self.cards[k].tx_expected.is_none()
        {
            let mut sum = 0u64;
            for i in 0..u64::from(self.cfg.transmit_words) {
                let v = c.serial.rotate_left(i as u32) ^ (n << 20) ^ i;
                sum = sum.wrapping_add(v);
                Self::store(p, probe, t, c.cpu, c.tx_buf + 8 * i, v);
            }
            self.cards[k].tx_expected = Some(sum);
            Self::store(p, probe, t, c.cpu, c.bar + regs::TX_ADDR, c.tx_buf);
            Self::store(
                p,
                probe,
                t,
                c.cpu,
                c.bar + regs::TX_LEN,
                8 * u64::from(self.cfg.transmit_words),
            );
            Self::store(p, probe, t, c.cpu, c.bar + regs::TX_GO, 1);
        }
    }

    /// Masks or unmasks the IO SAPIC entry of the card in `slot` (`disable_irq` /
    /// `enable_irq`): while masked the card's interrupts are held, not lost.
    pub fn set_masked(
        &mut self,
        now: SimTime,
        slot: SlotId,
        masked: bool,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<String, String> {
        let k = self
            .card_in(slot)
            .filter(|&k| self.cards[k].active)
            .ok_or_else(|| format!("no active card in slot {}", slot.0))?;
        let c = self.cards[k].clone();
        let mut t = now;
        let mask = if masked {
            u64::from(sapic::rte::MASK)
        } else {
            0
        };
        Self::store(
            p,
            probe,
            &mut t,
            c.cpu,
            c.sapic_base + sapic::IOREGSEL,
            0x10 + 2 * c.entry,
        );
        Self::store(
            p,
            probe,
            &mut t,
            c.cpu,
            c.sapic_base + sapic::IOWIN,
            u64::from(c.vector) | u64::from(sapic::rte::LEVEL) | mask,
        );
        Ok(format!(
            "gsi entry {} of pci {} {}",
            c.entry,
            c.bdf,
            if masked { "masked" } else { "unmasked" }
        ))
    }

    fn card_in(&self, slot: SlotId) -> Option<usize> {
        self.cards.iter().position(|c| c.slot == slot)
    }

    /// Stops the card in `slot` before its slot loses power: engine off, bus mastering off,
    /// its IO SAPIC entry masked. Returns what it did.
    pub fn quiesce(
        &mut self,
        now: SimTime,
        slot: SlotId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> String {
        let Some(k) = self.card_in(slot).filter(|&k| self.cards[k].active) else {
            return "no active card to quiesce".into();
        };
        let c = self.cards[k].clone();
        let mut t = now;
        Self::store(p, probe, &mut t, c.cpu, c.bar + regs::CTRL, 0);
        Self::cfg_write(
            p,
            probe,
            t,
            c.cpu,
            c.bdf,
            reg::COMMAND,
            cmd::MEMORY | cmd::IO,
        );
        Self::store(
            p,
            probe,
            &mut t,
            c.cpu,
            c.sapic_base + sapic::IOREGSEL,
            0x10 + 2 * c.entry,
        );
        Self::store(
            p,
            probe,
            &mut t,
            c.cpu,
            c.sapic_base + sapic::IOWIN,
            u64::from(c.vector) | u64::from(sapic::rte::LEVEL) | u64::from(sapic::rte::MASK),
        );
        self.cards[k].active = false;
        format!("driver stopped pci {}", c.bdf)
    }

    /// Brings the card in `slot` up after its slot was powered on: its configuration was
    /// reset, so its BARs are programmed again (the old ones, or new ones for a new card).
    pub fn resume(
        &mut self,
        now: SimTime,
        slot: SlotId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<String, String> {
        let card_now =
            p.io.slot(slot)
                .and_then(|s| s.card)
                .and_then(|c| p.io.device(c))
                .map(|d| d.serial);
        let k = match self.card_in(slot) {
            Some(k) if Some(self.cards[k].serial) == card_now => k,
            Some(k) => {
                // Another card than before: forget the old one's addresses.
                let c = &mut self.cards[k];
                c.serial = card_now.ok_or("the slot is empty")?;
                c.bar = 0;
                c.io_bar = 0;
                k
            }
            None => self.plan(p, slot).map_err(|e| e.message)?,
        };
        self.bring_up(now, k, true, p, probe)?;
        Ok(format!("driver brought up pci {}", self.cards[k].bdf))
    }

    /// Whether a slot's card is driven now.
    pub fn is_active(&self, slot: SlotId) -> bool {
        self.card_in(slot).is_some_and(|k| self.cards[k].active)
    }

    /// The ACPI path of a slot.
    pub fn slot_path(p: &Platform, slot: SlotId) -> Option<String> {
        path_of(p, slot).map(|(s, _)| s)
    }

    /// An I/O subsystem's module path.
    pub fn module_path(id: IoSubsystemId) -> String {
        format!("\\_SB_.IO{:02X}", id.0)
    }
}
