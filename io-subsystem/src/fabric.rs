//! The I/O fabric: every I/O subsystem with its host bridges, slots, cards and IO SAPIC, the
//! cells' chipset functions, and every access path into them.
//!
//! # Layout (set by firmware at power-on)
//!
//! * Subsystem *i* owns `[base + i·stride, base + (i+1)·stride)` of the address space: its IO
//!   SAPIC registers at the start, then one MMIO window per host bridge.
//! * Bridge *b* of subsystem *i* (global bridge number *g = i·bridges + b*) owns bus numbers
//!   `g·bus_numbers ..`, I/O ports `0x1000 + g·io_ports ..`; its root bus holds slot *s* as
//!   device number *s + 1*, and slot *s*'s INTA..INTD all reach GSI `gsi_base(i) + b·slots + s`.
//! * Slots are numbered across the machine from 1 (the ACPI `_SUN`).
//! * Cell *k*'s chipset function (its Cell Configuration Space) is device 0 on bus `0xFF − k`,
//!   present while the cell is.
//! * The system IO SAPIC (the chipset's, in no subsystem, never removed) has the stride after
//!   the last subsystem's: 8 inputs from `IoConfig::system_gsi_base`, input 0 the SCI. It is
//!   held as one more `Subsystem` (no bridges, always powered) at the end of the list, so the
//!   IO SAPIC paths serve it unchanged; [`IoFabric::subsystems`] leaves it out.
//!
//! At power-on firmware powers every occupied slot and places every card's BARs in its bridge's
//! windows (first fit), enabling memory and I/O decode; drivers enable bus mastering.
//!
//! # What the fabric never does
//!
//! It never refuses an access because of state: an access to a powered-off slot, a removed card
//! or a dead subsystem reads all-ones, drops writes and is reported; the checkers judge.

use serde::Serialize;
use sim_core::{
    Bdf, Entity, Gsi, IoSubsystemId, LsapicId, MsgTag, PhysAddr, SimDuration, SimTime, SlotId,
};

use crate::alloc::WindowAllocator;
use crate::config::{
    CHIPSET_BUS_TOP, DeviceKind, IO_PORT_FLOOR, IoConfig, IoConfigError, SAPIC_REGION,
    SYSTEM_SAPIC_ENTRIES, Surroundings, err,
};
use crate::defect::{IoDefect, IoDefects};
use crate::device::{Device, DeviceId, RECORD_BYTES, RECORD_WORDS, record_word, regs};
use crate::event::{IoEnv, IoEvent, IoOutcome, IoTarget, Space};
use crate::pci::{BarKind, ConfigSpace, cmd, reg};
use crate::sapic::{self, IoSapic, rte};
use crate::state::{IoError, SubsystemEvent, SubsystemState};

/// A hot-plug slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// Global slot number (`_SUN`), from 1.
    pub id: SlotId,
    /// Its subsystem.
    pub subsystem: IoSubsystemId,
    /// Its bridge.
    pub bridge: u8,
    /// Index within the bridge.
    pub index: u8,
    /// PCI device number on the bridge's root bus.
    pub device_number: u8,
    /// Its interrupt line.
    pub gsi: Gsi,
    /// The card in it.
    pub card: Option<DeviceId>,
    /// The last card that was in it (to name late accesses after a removal).
    pub last_card: Option<DeviceId>,
    /// Slot power.
    pub powered: bool,
}

/// A PCI host bridge and its windows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bridge {
    /// Index within the subsystem.
    pub index: u8,
    /// Bus numbers `(first, last)`; the first is the root bus.
    pub buses: (u8, u8),
    /// I/O port window `(base, length)`.
    pub io_window: (u64, u64),
    /// MMIO window `(base, length)`.
    pub mmio_window: (u64, u64),
    /// Its slots (global numbers).
    pub slots: Vec<SlotId>,
}

/// One I/O subsystem.
#[derive(Clone, Debug)]
pub struct Subsystem {
    /// Its id.
    pub id: IoSubsystemId,
    /// Presence and power.
    pub state: SubsystemState,
    /// The cell it hangs off (NUMA proximity).
    pub attached_cell: u16,
    /// Its host bridges.
    pub bridges: Vec<Bridge>,
    /// Its IO SAPIC.
    pub sapic: IoSapic,
}

/// A cell's chipset function: configuration space only, no slot, no power control.
#[derive(Clone, Debug)]
pub struct ChipsetFn {
    /// The cell.
    pub cell: u16,
    /// Its address.
    pub bdf: Bdf,
    /// Present while the cell is.
    pub present: bool,
    config: ConfigSpace,
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IoStats {
    /// MMIO accesses.
    pub mmio: u64,
    /// Configuration accesses.
    pub config: u64,
    /// I/O port accesses.
    pub ports: u64,
    /// Accesses that reached nothing working.
    pub failed_accesses: u64,
    /// Interrupt messages the IO SAPICs sent.
    pub interrupts_sent: u64,
    /// Assertions held while masked.
    pub interrupts_held: u64,
    /// EOI writes.
    pub eois: u64,
    /// Receive records written by DMA.
    pub dma_records: u64,
    /// Transmit buffers read by DMA.
    pub dma_transmits: u64,
    /// DMA transfers that failed.
    pub dma_faults: u64,
    /// Block commands storage cards completed.
    pub blk_done: u64,
    /// Block commands that failed (refused, or their DMA did).
    pub blk_failed: u64,
}

/// The whole I/O side of the machine (see the module docs).
#[derive(Clone, Debug)]
pub struct IoFabric {
    cfg: IoConfig,
    stride: u64,
    subs: Vec<Subsystem>,
    slots: Vec<Slot>,
    devices: Vec<Device>,
    chipset: Vec<ChipsetFn>,
    defects: IoDefects,
    wakeups: Vec<(DeviceId, SimTime)>,
    stats: IoStats,
    /// Interrupt messages sent for each GSI over the machine's life, whatever happened to
    /// the IO SAPIC since (its entries' own counters start again at power-on).
    gsi_deliveries: std::collections::BTreeMap<u32, u64>,
}

/// Where an MMIO or port address leads.
enum Decoded {
    Device(DeviceId, u64),
    Sapic(usize, u64),
    Fail(IoTarget, IoOutcome),
}

/// Chipset function identity (NEC vendor id, a cell-configuration-space device id).
const CHIPSET_IDS: (u16, u16) = (0x1033, 0x0CC5);
/// Chipset function register holding its cell number.
pub const CHIPSET_CELL_REG: u16 = 0x40;
/// Chipset function scratch register.
pub const CHIPSET_SCRATCH_REG: u16 = 0x44;

impl IoFabric {
    /// Builds the fabric and runs firmware's power-on resource assignment. `present_cells`
    /// says which cells (and so which chipset functions) exist at start.
    pub fn new(
        cfg: &IoConfig,
        around: &Surroundings,
        present_cells: &[bool],
    ) -> Result<IoFabric, IoConfigError> {
        cfg.validate(around)?;
        let stride = cfg.stride();
        let nb = usize::from(cfg.bridges);
        let ns = usize::from(cfg.slots);
        let mut slots = Vec::new();
        let subs: Vec<Subsystem> = (0..usize::from(cfg.subsystems))
            .map(|i| {
                let id = IoSubsystemId(i as u16);
                let region = cfg.base + i as u64 * stride;
                let bridges = (0..nb)
                    .map(|b| {
                        let g = (i * nb + b) as u64;
                        let first_bus = g * u64::from(cfg.bus_numbers);
                        let bridge_slots = (0..ns)
                            .map(|s| {
                                let sid = SlotId((slots.len() + 1) as u16);
                                slots.push(Slot {
                                    id: sid,
                                    subsystem: id,
                                    bridge: b as u8,
                                    index: s as u8,
                                    device_number: s as u8 + 1,
                                    gsi: Gsi(cfg.gsi_base(i) + (b * ns + s) as u32),
                                    card: None,
                                    last_card: None,
                                    powered: false,
                                });
                                sid
                            })
                            .collect();
                        Bridge {
                            index: b as u8,
                            buses: (
                                first_bus as u8,
                                (first_bus + u64::from(cfg.bus_numbers) - 1) as u8,
                            ),
                            io_window: (
                                IO_PORT_FLOOR + g * cfg.io_ports.bytes(),
                                cfg.io_ports.bytes(),
                            ),
                            mmio_window: (
                                region + SAPIC_REGION + b as u64 * cfg.mmio.bytes(),
                                cfg.mmio.bytes(),
                            ),
                            slots: bridge_slots,
                        }
                    })
                    .collect();
                Subsystem {
                    id,
                    state: if cfg.is_present(i) {
                        SubsystemState::PoweredOn
                    } else {
                        SubsystemState::Absent
                    },
                    attached_cell: cfg.attached_cell(i, around.cells),
                    bridges,
                    sapic: IoSapic::new(region, cfg.gsi_base(i), usize::from(cfg.sapic_entries)),
                }
            })
            .collect();
        // The system IO SAPIC, after the subsystems (its registers in the next stride of the
        // I/O region): always powered, no bridges, no slots, never removed.
        let mut subs = subs;
        let n = subs.len();
        subs.push(Subsystem {
            id: IoSubsystemId(n as u16),
            state: SubsystemState::PoweredOn,
            attached_cell: 0,
            bridges: Vec::new(),
            sapic: IoSapic::new(
                cfg.base + n as u64 * stride,
                cfg.system_gsi_base(),
                usize::from(SYSTEM_SAPIC_ENTRIES),
            ),
        });
        let chipset = (0..around.cells)
            .map(|k| {
                let mut config =
                    ConfigSpace::new(CHIPSET_IDS.0, CHIPSET_IDS.1, 0x08_80_00, 0, Vec::new());
                config.set_fixed(CHIPSET_CELL_REG, u32::from(k));
                config.set_writable(CHIPSET_SCRATCH_REG, u32::MAX);
                ChipsetFn {
                    cell: k,
                    bdf: Bdf {
                        segment: 0,
                        bus: (CHIPSET_BUS_TOP - k) as u8,
                        device: 0,
                        function: 0,
                    },
                    present: present_cells.get(usize::from(k)).copied().unwrap_or(false),
                    config,
                }
            })
            .collect();
        let mut fabric = IoFabric {
            cfg: cfg.clone(),
            stride,
            subs,
            slots,
            devices: Vec::new(),
            chipset,
            defects: IoDefects::default(),
            wakeups: Vec::new(),
            stats: IoStats::default(),
            gsi_deliveries: std::collections::BTreeMap::new(),
        };
        // Firmware POST: cards in, slots powered, BARs placed.
        let mut mmio: Vec<WindowAllocator> = Vec::new();
        let mut ports: Vec<WindowAllocator> = Vec::new();
        for s in &fabric.subs {
            for b in &s.bridges {
                mmio.push(WindowAllocator::new(b.mmio_window.0, b.mmio_window.1));
                ports.push(WindowAllocator::new(b.io_window.0, b.io_window.1));
            }
        }
        for (k, d) in cfg.device.iter().enumerate() {
            let slot = fabric.slot_at(d.subsystem, d.bridge, d.slot);
            let dev = fabric.new_card(slot, d.kind, Some(d));
            let si = slot.0 as usize - 1;
            fabric.slots[si].card = Some(dev);
            fabric.slots[si].last_card = Some(dev);
            fabric.slots[si].powered = true;
            let g = usize::from(d.subsystem) * nb + usize::from(d.bridge);
            let device = &mut fabric.devices[dev.0 as usize];
            device.powered = true;
            for def in device.config.bar_defs().to_vec() {
                let (pool, what) = match def.kind {
                    BarKind::Mem64 => (&mut mmio[g], "MMIO"),
                    BarKind::Io => (&mut ports[g], "I/O port"),
                };
                let at = pool.alloc(def.size, def.size).map_err(|e| {
                    err(
                        format!("device[{k}]"),
                        format!(
                            "the {} card in I/O subsystem {} bridge {} slot {} needs {:#x} bytes \
                             of {what} space that its bridge's window cannot give: {e}",
                            d.kind.name(),
                            d.subsystem,
                            d.bridge,
                            d.slot,
                            def.size
                        ),
                    )
                })?;
                let off = reg::BAR0 + 4 * u16::from(def.index);
                device.config.write(off, at as u32);
                if def.kind == BarKind::Mem64 {
                    device.config.write(off + 4, (at >> 32) as u32);
                }
            }
            device.config.write(reg::COMMAND, cmd::MEMORY | cmd::IO);
            let line = device.gsi.0 & 0xFF;
            device.config.write(reg::INTERRUPT, line);
        }
        Ok(fabric)
    }

    fn slot_at(&self, sub: u16, bridge: u8, index: u8) -> SlotId {
        let nb = usize::from(self.cfg.bridges);
        let ns = usize::from(self.cfg.slots);
        SlotId(((usize::from(sub) * nb + usize::from(bridge)) * ns + usize::from(index) + 1) as u16)
    }

    /// A new card of `kind` in `slot`, as `cfg` describes it (`None`: the kind's defaults).
    fn new_card(
        &mut self,
        slot: SlotId,
        kind: DeviceKind,
        cfg: Option<&crate::config::DeviceConfig>,
    ) -> DeviceId {
        let s = &self.slots[slot.0 as usize - 1];
        let bridge = &self.subs[s.subsystem.index()].bridges[usize::from(s.bridge)];
        let id = DeviceId(self.devices.len() as u32);
        let bdf = Bdf {
            segment: 0,
            bus: bridge.buses.0,
            device: s.device_number,
            function: 0,
        };
        let capacity = cfg
            .and_then(|c| c.capacity)
            .map_or(kind.default_capacity(), |c| c.bytes());
        self.devices.push(Device::new(
            id,
            kind,
            cfg.and_then(|c| c.bar_size)
                .map_or(kind.default_bar(), |b| b.bytes()),
            cfg.and_then(|c| c.period_ns)
                .unwrap_or(kind.default_period_ns()),
            slot,
            s.subsystem,
            s.bridge,
            bdf,
            s.gsi,
            cfg.and_then(|c| c.irq_cpu),
            capacity / crate::device::SECTOR_BYTES,
            (
                cfg.and_then(|c| c.latency_ns)
                    .unwrap_or(kind.default_latency_ns()),
                cfg.and_then(|c| c.bandwidth)
                    .map_or(kind.default_bandwidth(), |b| b.bytes()),
            ),
        ));
        id
    }

    // ---------------------------------------------------------------- inspection

    /// The configuration it was built from.
    pub fn config(&self) -> &IoConfig {
        &self.cfg
    }
    /// Every I/O subsystem (the hot-pluggable ones; not the system IO SAPIC).
    pub fn subsystems(&self) -> &[Subsystem] {
        &self.subs[..self.subs.len() - 1]
    }
    /// One subsystem, or the system IO SAPIC's holder (its id is one past the last I/O
    /// subsystem's).
    pub fn subsystem(&self, id: IoSubsystemId) -> Option<&Subsystem> {
        self.subs.get(id.index())
    }
    /// The holder of the system IO SAPIC: no bridges, no slots, always powered.
    pub fn system(&self) -> &Subsystem {
        &self.subs[self.subs.len() - 1]
    }
    /// Every IO SAPIC's holder: the I/O subsystems, then the system one.
    pub fn sapic_holders(&self) -> &[Subsystem] {
        &self.subs
    }
    /// The SCI's GSI: input 0 of the system IO SAPIC.
    pub fn sci_gsi(&self) -> Gsi {
        Gsi(self.system().sapic.gsi_base)
    }
    /// Firmware drives the SCI: asserted while it has events for the OS (a level line).
    pub fn set_sci<E: IoEnv + ?Sized>(&mut self, now: SimTime, asserted: bool, env: &mut E) {
        let sid = self.system().id;
        let gsi = self.sci_gsi();
        self.line_change(now, sid, gsi, Entity::Firmware, asserted, env);
    }
    /// Every slot, in `_SUN` order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }
    /// One slot by `_SUN`.
    pub fn slot(&self, id: SlotId) -> Option<&Slot> {
        (id.0 as usize)
            .checked_sub(1)
            .and_then(|i| self.slots.get(i))
    }
    /// Every card ever seen (in or out of a slot).
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }
    /// One card.
    pub fn device(&self, id: DeviceId) -> Option<&Device> {
        self.devices.get(id.0 as usize)
    }

    /// The card `id`, to write its medium's image before the machine runs
    /// ([`Device::image_media`]).
    pub fn device_mut(&mut self, id: DeviceId) -> Option<&mut Device> {
        self.devices.get_mut(id.0 as usize)
    }
    /// The cells' chipset functions.
    pub fn chipset(&self) -> &[ChipsetFn] {
        &self.chipset
    }
    /// Counters.
    pub fn stats(&self) -> &IoStats {
        &self.stats
    }
    /// Bytes between subsystem regions.
    pub fn stride(&self) -> u64 {
        self.stride
    }
    /// First address past the I/O region.
    pub fn region_end(&self) -> u64 {
        self.cfg.base + self.stride * self.subs.len() as u64
    }
    /// Whether an address lies in the I/O region (MMIO rather than memory).
    pub fn is_io_address(&self, addr: PhysAddr) -> bool {
        (self.cfg.base..self.region_end()).contains(&addr.raw())
    }
    /// Interrupt messages sent for `gsi` since the machine started, across every power cycle
    /// and replacement of the IO SAPIC that serves it: they are tagged `gsi#1` to `gsi#n`
    /// ([`MsgTag::Line`]).
    pub fn gsi_deliveries(&self, gsi: Gsi) -> u64 {
        self.gsi_deliveries.get(&gsi.0).copied().unwrap_or(0)
    }

    /// Every line that sent an interrupt message, with how many it sent.
    pub fn lines_delivered(&self) -> impl Iterator<Item = (Gsi, u64)> + '_ {
        self.gsi_deliveries.iter().map(|(&g, &n)| (Gsi(g), n))
    }

    /// The IO SAPIC and entry that serve `gsi`, if any.
    pub fn gsi_entry(&self, gsi: Gsi) -> Option<(IoSubsystemId, usize)> {
        self.subs
            .iter()
            .find_map(|s| s.sapic.entry_of(gsi.0).map(|e| (s.id, e)))
    }
    /// Defects switched on.
    pub fn defects(&self) -> IoDefects {
        self.defects
    }
    /// Switches on an I/O defect.
    pub fn inject_defect(&mut self, d: IoDefect) {
        self.defects.insert(d);
    }
    /// Cards that must run (their engine started, or their ring drained) at the given times;
    /// the caller schedules [`IoFabric::device_tick`] for each.
    pub fn take_wakeups(&mut self) -> Vec<(DeviceId, SimTime)> {
        std::mem::take(&mut self.wakeups)
    }

    // ---------------------------------------------------------------- decoding

    fn decode_mmio(&self, addr: u64) -> Decoded {
        if !self.is_io_address(PhysAddr::new(addr)) {
            return Decoded::Fail(IoTarget::Nothing, IoOutcome::Unclaimed);
        }
        let i = ((addr - self.cfg.base) / self.stride) as usize;
        let off = (addr - self.cfg.base) % self.stride;
        let sub = &self.subs[i];
        if off < SAPIC_REGION {
            if !sub.state.is_powered() {
                return Decoded::Fail(IoTarget::Sapic(sub.id), IoOutcome::SubsystemDown);
            }
            return if off < sapic::REGISTER_BYTES {
                Decoded::Sapic(i, off)
            } else {
                Decoded::Fail(IoTarget::Nothing, IoOutcome::Unclaimed)
            };
        }
        self.decode_bar(sub, BarKind::Mem64, addr)
    }

    fn decode_port(&self, port: u64) -> Decoded {
        let Some(sub) = self.subs.iter().find(|s| {
            s.bridges
                .iter()
                .any(|b| (b.io_window.0..b.io_window.0 + b.io_window.1).contains(&port))
        }) else {
            return Decoded::Fail(IoTarget::Nothing, IoOutcome::Unclaimed);
        };
        self.decode_bar(sub, BarKind::Io, port)
    }

    /// Which card of `sub` decodes `addr` in space `kind` — or, failing that, which card last
    /// did (to name the target of a late access).
    fn decode_bar(&self, sub: &Subsystem, kind: BarKind, addr: u64) -> Decoded {
        let on_sub = || self.devices.iter().filter(move |d| d.subsystem == sub.id);
        if sub.state.is_powered() {
            for d in on_sub() {
                for (k, base, size) in d.decoded() {
                    if k == kind && (base..base + size).contains(&addr) {
                        return Decoded::Device(d.id, addr - base);
                    }
                }
            }
        }
        let ghost = on_sub().rev().find(|d| {
            d.ghost
                .iter()
                .chain(d.config.decoded().iter())
                .any(|&(k, base, size)| k == kind && (base..base + size).contains(&addr))
        });
        let outcome = |d: &Device| {
            if !sub.state.is_powered() {
                IoOutcome::SubsystemDown
            } else if !d.inserted {
                IoOutcome::Removed
            } else if !d.powered {
                IoOutcome::PoweredOff
            } else {
                IoOutcome::Unclaimed
            }
        };
        match ghost {
            Some(d) => Decoded::Fail(IoTarget::Device(d.id, d.bdf), outcome(d)),
            None if !sub.state.is_powered() => {
                Decoded::Fail(IoTarget::Nothing, IoOutcome::SubsystemDown)
            }
            None => Decoded::Fail(IoTarget::Nothing, IoOutcome::Unclaimed),
        }
    }

    /// What a configuration address reaches.
    fn decode_config(&self, bdf: Bdf) -> (IoTarget, IoOutcome) {
        let floor = CHIPSET_BUS_TOP + 1 - self.chipset.len() as u16;
        if u16::from(bdf.bus) >= floor {
            let cell = CHIPSET_BUS_TOP - u16::from(bdf.bus);
            let f = &self.chipset[usize::from(cell)];
            return if bdf.device != 0 || bdf.function != 0 {
                (IoTarget::Nothing, IoOutcome::Unclaimed)
            } else if f.present {
                (IoTarget::Chipset(cell), IoOutcome::Ok)
            } else {
                (IoTarget::Chipset(cell), IoOutcome::CellAbsent)
            };
        }
        for sub in &self.subs {
            for b in &sub.bridges {
                if !(b.buses.0..=b.buses.1).contains(&bdf.bus) {
                    continue;
                }
                if !sub.state.is_powered() {
                    // Whatever sat at that address went with the subsystem: the access is
                    // to that card (so that the access finding it gone is told apart).
                    let card = (bdf.bus == b.buses.0 && bdf.function == 0)
                        .then(|| {
                            b.slots
                                .iter()
                                .filter_map(|s| self.slot(*s))
                                .find(|s| s.device_number == bdf.device)
                                .and_then(|s| s.card.or(s.last_card))
                        })
                        .flatten();
                    return match card {
                        Some(c) => (IoTarget::Device(c, bdf), IoOutcome::SubsystemDown),
                        None => (IoTarget::Nothing, IoOutcome::SubsystemDown),
                    };
                }
                if bdf.bus != b.buses.0 || bdf.function != 0 {
                    return (IoTarget::Nothing, IoOutcome::Unclaimed);
                }
                let Some(slot) = b
                    .slots
                    .iter()
                    .filter_map(|s| self.slot(*s))
                    .find(|s| s.device_number == bdf.device)
                else {
                    return (IoTarget::Nothing, IoOutcome::Unclaimed);
                };
                return match (slot.card, slot.last_card) {
                    (Some(c), _) => {
                        let d = &self.devices[c.0 as usize];
                        let outcome = if d.powered {
                            IoOutcome::Ok
                        } else {
                            IoOutcome::PoweredOff
                        };
                        (IoTarget::Device(c, d.bdf), outcome)
                    }
                    (None, Some(c)) => (IoTarget::Device(c, bdf), IoOutcome::Removed),
                    (None, None) => (IoTarget::Nothing, IoOutcome::Unclaimed),
                };
            }
        }
        (IoTarget::Nothing, IoOutcome::Unclaimed)
    }

    // ---------------------------------------------------------------- access paths

    #[allow(clippy::too_many_arguments)]
    fn report_access<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        env: &mut E,
        space: Space,
        agent: Entity,
        addr: u64,
        bdf: Option<Bdf>,
        write: bool,
        value: u64,
        target: IoTarget,
        outcome: IoOutcome,
    ) {
        match space {
            Space::Mmio => self.stats.mmio += 1,
            Space::Config => self.stats.config += 1,
            Space::Port => self.stats.ports += 1,
        }
        if outcome != IoOutcome::Ok {
            self.stats.failed_accesses += 1;
        }
        env.io_event(
            now,
            &IoEvent::Access {
                space,
                agent,
                addr,
                bdf,
                write,
                value,
                target,
                outcome,
            },
            self,
        );
    }

    /// A 64-bit uncached read of `addr`.
    pub fn mmio_read<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        agent: Entity,
        addr: PhysAddr,
        env: &mut E,
    ) -> u64 {
        let a = addr.raw();
        let (value, target, outcome) = match self.decode_mmio(a) {
            Decoded::Device(d, off) => {
                let dev = &mut self.devices[d.0 as usize];
                (
                    dev.read_reg(off & !7),
                    IoTarget::Device(d, dev.bdf),
                    IoOutcome::Ok,
                )
            }
            Decoded::Sapic(i, off) => {
                let s = &self.subs[i];
                let v = match off {
                    sapic::IOREGSEL => u64::from(s.sapic.regsel),
                    sapic::IOWIN => u64::from(s.sapic.read_window(s.id.0 as u8)),
                    _ => 0,
                };
                (v, IoTarget::Sapic(s.id), IoOutcome::Ok)
            }
            Decoded::Fail(t, o) => (u64::MAX, t, o),
        };
        self.report_access(
            now,
            env,
            Space::Mmio,
            agent,
            a,
            None,
            false,
            value,
            target,
            outcome,
        );
        value
    }

    /// A 64-bit uncached write of `value` to `addr`.
    pub fn mmio_write<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        agent: Entity,
        addr: PhysAddr,
        value: u64,
        env: &mut E,
    ) {
        let a = addr.raw();
        match self.decode_mmio(a) {
            Decoded::Device(d, off) => {
                let bdf = self.devices[d.0 as usize].bdf;
                self.report_access(
                    now,
                    env,
                    Space::Mmio,
                    agent,
                    a,
                    None,
                    true,
                    value,
                    IoTarget::Device(d, bdf),
                    IoOutcome::Ok,
                );
                self.device_register_write(now, d, off & !7, value, env);
            }
            Decoded::Sapic(i, off) => {
                let id = self.subs[i].id;
                self.report_access(
                    now,
                    env,
                    Space::Mmio,
                    agent,
                    a,
                    None,
                    true,
                    value,
                    IoTarget::Sapic(id),
                    IoOutcome::Ok,
                );
                self.sapic_register_write(now, i, agent, off, value as u32, env);
            }
            Decoded::Fail(t, o) => {
                self.report_access(now, env, Space::Mmio, agent, a, None, true, value, t, o);
            }
        }
    }

    /// A 32-bit read of I/O port `port`.
    pub fn port_read<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        agent: Entity,
        port: u16,
        env: &mut E,
    ) -> u32 {
        let (value, target, outcome) = match self.decode_port(u64::from(port)) {
            Decoded::Device(d, off) => {
                let dev = &self.devices[d.0 as usize];
                // The I/O BAR mirrors the serial number at offset 0, zeros elsewhere.
                let v = if off == 0 { dev.serial as u32 } else { 0 };
                (v, IoTarget::Device(d, dev.bdf), IoOutcome::Ok)
            }
            Decoded::Sapic(..) => (u32::MAX, IoTarget::Nothing, IoOutcome::Unclaimed),
            Decoded::Fail(t, o) => (u32::MAX, t, o),
        };
        self.report_access(
            now,
            env,
            Space::Port,
            agent,
            u64::from(port),
            None,
            false,
            u64::from(value),
            target,
            outcome,
        );
        value
    }

    /// A 32-bit configuration read.
    pub fn config_read<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        agent: Entity,
        bdf: Bdf,
        offset: u16,
        env: &mut E,
    ) -> u32 {
        let offset = offset & 0xFC;
        let (target, outcome) = self.decode_config(bdf);
        let value = match (target, outcome) {
            (IoTarget::Device(d, _), IoOutcome::Ok) => {
                self.devices[d.0 as usize].config.read(offset)
            }
            (IoTarget::Chipset(c), IoOutcome::Ok) => {
                self.chipset[usize::from(c)].config.read(offset)
            }
            _ => u32::MAX,
        };
        self.report_access(
            now,
            env,
            Space::Config,
            agent,
            u64::from(offset),
            Some(bdf),
            false,
            u64::from(value),
            target,
            outcome,
        );
        value
    }

    /// A 32-bit configuration write.
    pub fn config_write<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        agent: Entity,
        bdf: Bdf,
        offset: u16,
        value: u32,
        env: &mut E,
    ) {
        let offset = offset & 0xFC;
        let (target, outcome) = self.decode_config(bdf);
        match (target, outcome) {
            (IoTarget::Device(d, _), IoOutcome::Ok) => {
                self.devices[d.0 as usize].config.write(offset, value);
            }
            (IoTarget::Chipset(c), IoOutcome::Ok) => {
                self.chipset[usize::from(c)].config.write(offset, value);
            }
            _ => {}
        }
        self.report_access(
            now,
            env,
            Space::Config,
            agent,
            u64::from(offset),
            Some(bdf),
            true,
            u64::from(value),
            target,
            outcome,
        );
        if let (IoTarget::Device(d, _), IoOutcome::Ok) = (target, outcome) {
            if offset == reg::COMMAND {
                self.update_line(now, d, env);
                self.maybe_wake(now, d);
            }
        }
    }

    // ---------------------------------------------------------------- cards

    fn maybe_wake(&mut self, now: SimTime, d: DeviceId) {
        let dev = &mut self.devices[d.0 as usize];
        if dev.running() && !dev.tick_pending {
            dev.tick_pending = true;
            let at = now + SimDuration::from_nanos(dev.engine.period.max(1));
            dev.ring_at = Some(at);
            self.wakeups.push((d, at));
        }
    }

    /// `BLK_CMD` written with `value`: the command the block registers describe is queued
    /// behind the others, or completes failed at once. It completes `latency` after its
    /// doorbell at the earliest, and not before its transfer, which follows the one of the
    /// command before it (`len` at the medium's bandwidth): completions come in order.
    fn block_queue(&mut self, now: SimTime, d: DeviceId, value: u64) {
        let dev = &mut self.devices[d.0 as usize];
        let b = &mut dev.block;
        if b.capacity == 0 {
            // Not a storage card: the doorbell is not wired to anything.
            return;
        }
        let write = match value {
            regs::BLK_READ => false,
            regs::BLK_WRITE => true,
            regs::BLK_ABORT => {
                let aborted = b.queue.len();
                for cmd in b.queue.drain(..) {
                    b.done.push_back(crate::device::blk_done(cmd.tag, true));
                }
                // Nothing left to wake for.
                let _ = b.new_wake();
                if aborted > 0 {
                    dev.engine.status |= regs::STATUS_BLK_DONE;
                    self.stats.blk_failed += aborted as u64;
                }
                return;
            }
            _ => return,
        };
        let tag = b.tag as u32;
        if !b.valid(b.lba, b.len) || b.queue.len() >= crate::device::BLK_QUEUE {
            b.done.push_back(crate::device::blk_done(tag, true));
            dev.engine.status |= regs::STATUS_BLK_DONE;
            self.stats.blk_failed += 1;
            return;
        }
        let transfer = (u128::from(b.len) * 1_000_000_000 / u128::from(b.bandwidth.max(1))) as u64;
        let after = b.queue.back().map_or(now, |c| c.done_at.max(now));
        let done_at = (now + SimDuration::from_nanos(b.latency.max(1)))
            .max(after + SimDuration::from_nanos(transfer.max(1)));
        b.queue.push_back(crate::device::BlkCmd {
            write,
            lba: b.lba,
            addr: b.addr,
            len: b.len,
            tag,
            done_at,
        });
        if let Some(at) = b.new_wake() {
            self.wakeups.push((d, at));
        }
    }

    /// The medium of card `d` finishes every command due by `now`: the data moves by DMA,
    /// the completions are posted. Asks for a wakeup when the next one is due.
    fn block_tick<E: IoEnv + ?Sized>(&mut self, now: SimTime, d: DeviceId, env: &mut E) {
        let mut posted = false;
        loop {
            let dev = &mut self.devices[d.0 as usize];
            let Some(cmd) = dev
                .block
                .queue
                .front()
                .copied()
                .filter(|c| c.done_at <= now)
            else {
                break;
            };
            dev.block.queue.pop_front();
            let (serial, agent, can) = (dev.serial, Entity::Pci(dev.bdf), dev.can_dma());
            let mut buf = vec![0u64; (cmd.len / 8) as usize];
            let failed = if !can {
                true
            } else if cmd.write {
                match env.dma_read(now, &agent, PhysAddr::new(cmd.addr), &mut buf) {
                    Ok(_) => {
                        // The defect: acknowledged, never stored.
                        if !self.defects.has(crate::defect::IoDefect::BlockWriteLost) {
                            self.devices[d.0 as usize]
                                .block
                                .write_media(serial, cmd.lba, &buf);
                        }
                        false
                    }
                    Err(e) => {
                        self.dma_fault(now, d, cmd.addr, e.to_string(), env);
                        true
                    }
                }
            } else {
                self.devices[d.0 as usize]
                    .block
                    .read_media(serial, cmd.lba, &mut buf);
                match env.dma_write(now, &agent, PhysAddr::new(cmd.addr), &buf) {
                    Ok(_) => false,
                    Err(e) => {
                        self.dma_fault(now, d, cmd.addr, e.to_string(), env);
                        true
                    }
                }
            };
            if failed {
                self.stats.blk_failed += 1;
            } else {
                self.stats.blk_done += 1;
            }
            let dev = &mut self.devices[d.0 as usize];
            dev.block
                .done
                .push_back(crate::device::blk_done(cmd.tag, failed));
            dev.engine.status |= regs::STATUS_BLK_DONE;
            posted = true;
        }
        if let Some(at) = self.devices[d.0 as usize].block.new_wake() {
            self.wakeups.push((d, at));
        }
        if posted {
            self.update_line(now, d, env);
        }
    }

    fn device_register_write<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        d: DeviceId,
        off: u64,
        value: u64,
        env: &mut E,
    ) {
        let e = &mut self.devices[d.0 as usize].engine;
        match off {
            regs::CTRL => e.ctrl = value & (regs::CTRL_RUN | regs::CTRL_IRQ_EN),
            regs::RING_BASE => e.ring_base = value & !7,
            regs::RING_SIZE => e.ring_size = value - value % RECORD_BYTES,
            regs::TAIL => e.tail = value.min(e.head),
            regs::STATUS => e.status &= !value,
            regs::PERIOD => e.period = value.max(1),
            regs::TX_ADDR => e.tx_addr = value & !7,
            regs::TX_LEN => e.tx_len = value & !7,
            regs::TX_GO => self.transmit(now, d, env),
            regs::BLK_LBA => self.devices[d.0 as usize].block.lba = value,
            regs::BLK_ADDR => self.devices[d.0 as usize].block.addr = value & !7,
            regs::BLK_LEN => self.devices[d.0 as usize].block.len = value,
            regs::BLK_TAG => self.devices[d.0 as usize].block.tag = value & 0xFFFF_FFFF,
            regs::BLK_LATENCY => self.devices[d.0 as usize].block.latency = value.max(1),
            regs::BLK_CMD => self.block_queue(now, d, value),
            _ => {}
        }
        self.update_line(now, d, env);
        self.maybe_wake(now, d);
    }

    fn dma_fault<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        d: DeviceId,
        addr: u64,
        reason: String,
        env: &mut E,
    ) {
        let dev = &mut self.devices[d.0 as usize];
        dev.engine.status |= regs::STATUS_DMA_ERROR;
        dev.engine.ctrl &= !regs::CTRL_RUN;
        self.stats.dma_faults += 1;
        let bdf = dev.bdf;
        env.io_event(
            now,
            &IoEvent::DmaFault {
                device: d,
                bdf,
                addr,
                reason,
            },
            self,
        );
    }

    fn transmit<E: IoEnv + ?Sized>(&mut self, now: SimTime, d: DeviceId, env: &mut E) {
        let dev = &self.devices[d.0 as usize];
        if !dev.can_dma() {
            return;
        }
        let (addr, words, agent) = (
            dev.engine.tx_addr,
            (dev.engine.tx_len / 8) as usize,
            Entity::Pci(dev.bdf),
        );
        let mut buf = vec![0u64; words];
        match env.dma_read(now, &agent, PhysAddr::new(addr), &mut buf) {
            Ok(_) => {
                let e = &mut self.devices[d.0 as usize].engine;
                e.tx_sum = buf.iter().fold(0u64, |a, &w| a.wrapping_add(w));
                e.status |= regs::STATUS_TX_DONE;
                self.stats.dma_transmits += 1;
            }
            Err(e) => self.dma_fault(now, d, addr, e.to_string(), env),
        }
    }

    /// Lets card `d` do its periodic work at `now`: if its engine runs and its ring has room,
    /// it writes one record by DMA and raises its interrupt. Returns when it wants to run next.
    pub fn device_tick<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        d: DeviceId,
        env: &mut E,
    ) -> Option<SimTime> {
        let dev = self.devices.get(d.0 as usize)?;
        if dev.block.wake_at.is_some_and(|at| at <= now) {
            self.block_tick(now, d, env);
        }
        let dev = &mut self.devices[d.0 as usize];
        // A wakeup of the block engine alone: the ring's own tick is still to come.
        if dev.ring_at.is_none_or(|at| at > now) {
            return None;
        }
        dev.ring_at = None;
        dev.tick_pending = false;
        if !dev.running() {
            return None;
        }
        let e = &dev.engine;
        if e.ring_size - (e.head - e.tail).min(e.ring_size) >= RECORD_BYTES {
            let seq = e.head / RECORD_BYTES;
            let addr = e.ring_base + e.head % e.ring_size;
            let serial = dev.serial;
            let agent = Entity::Pci(dev.bdf);
            let record: Vec<u64> = (0..RECORD_WORDS)
                .map(|i| record_word(serial, seq, i))
                .collect();
            match env.dma_write(now, &agent, PhysAddr::new(addr), &record) {
                Ok(_) => {
                    let dev = &mut self.devices[d.0 as usize];
                    dev.engine.head += RECORD_BYTES;
                    dev.engine.status |= regs::STATUS_RX;
                    dev.records += 1;
                    self.stats.dma_records += 1;
                }
                Err(err) => self.dma_fault(now, d, addr, err.to_string(), env),
            }
            self.update_line(now, d, env);
        } else {
            self.devices[d.0 as usize].overruns += 1;
        }
        let dev = &mut self.devices[d.0 as usize];
        if !dev.running() {
            return None;
        }
        dev.tick_pending = true;
        let at = now + SimDuration::from_nanos(dev.engine.period.max(1));
        dev.ring_at = Some(at);
        Some(at)
    }

    /// Drives card `d`'s INTx line to the level its state asks for.
    fn update_line<E: IoEnv + ?Sized>(&mut self, now: SimTime, d: DeviceId, env: &mut E) {
        let dev = &mut self.devices[d.0 as usize];
        let want = dev.wanted_line();
        if want == dev.line {
            return;
        }
        dev.line = want;
        let (gsi, source, sub) = (dev.gsi, Entity::Pci(dev.bdf), dev.subsystem);
        self.line_change(now, sub, gsi, source, want, env);
    }

    // ---------------------------------------------------------------- IO SAPIC

    /// A card's INTx line changed: the input of its own subsystem's IO SAPIC for `gsi` (a
    /// card is wired to the controller of its subsystem, whatever GSI numbers firmware
    /// gave other subsystems).
    fn line_change<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        sub: IoSubsystemId,
        gsi: Gsi,
        source: Entity,
        asserted: bool,
        env: &mut E,
    ) {
        let Some(e) = self
            .subs
            .get(sub.index())
            .and_then(|s| s.sapic.entry_of(gsi.0))
        else {
            return;
        };
        let sid = sub;
        let i = sid.index();
        if !self.subs[i].state.is_powered() {
            return;
        }
        let r = &mut self.subs[i].sapic.entries[e];
        let rising = if asserted {
            r.asserted += 1;
            r.asserted == 1
        } else {
            r.asserted = r.asserted.saturating_sub(1);
            if r.asserted == 0 {
                r.held = false;
            }
            false
        };
        env.io_event(
            now,
            &IoEvent::Line {
                subsystem: sid,
                gsi,
                source,
                asserted,
            },
            self,
        );
        if rising {
            self.sapic_evaluate(now, i, e, true, env);
        }
    }

    /// Delivers entry `e` of subsystem `i` if its state says so (see the `sapic` module docs).
    fn sapic_evaluate<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        i: usize,
        e: usize,
        rising_edge: bool,
        env: &mut E,
    ) {
        let ignores_mask = self.defects.has(IoDefect::SapicIgnoresMask);
        let sid = self.subs[i].id;
        let gsi = Gsi(self.subs[i].sapic.gsi_base + e as u32);
        let r = self.subs[i].sapic.entries[e];
        if r.level {
            if r.asserted == 0 {
                return;
            }
            if r.masked && !ignores_mask {
                if !r.held {
                    self.subs[i].sapic.entries[e].held = true;
                    self.stats.interrupts_held += 1;
                    env.io_event(
                        now,
                        &IoEvent::SapicHeld {
                            subsystem: sid,
                            entry: e as u16,
                            gsi,
                        },
                        self,
                    );
                }
                return;
            }
            if r.remote_irr && !self.defects.has(IoDefect::SapicRedeliversInService) {
                return;
            }
        } else {
            if !rising_edge {
                return;
            }
            if r.masked && !ignores_mask {
                env.io_event(
                    now,
                    &IoEvent::SapicEdgeLost {
                        subsystem: sid,
                        entry: e as u16,
                        gsi,
                    },
                    self,
                );
                return;
            }
        }
        {
            let w = &mut self.subs[i].sapic.entries[e];
            if w.level {
                w.remote_irr = true;
            }
            w.held = false;
            w.delivered += 1;
        }
        let n = {
            let n = self.gsi_deliveries.entry(gsi.0).or_default();
            *n += 1;
            *n
        };
        self.stats.interrupts_sent += 1;
        let tag = MsgTag::Line { gsi: gsi.0, n };
        let delivery = env.deliver(now, &Entity::IoSapic(sid), r.dest, r.vector, tag);
        env.io_event(
            now,
            &IoEvent::SapicDeliver {
                subsystem: sid,
                entry: e as u16,
                gsi,
                vector: r.vector,
                dest: r.dest,
                delivery,
                masked: r.masked,
                was_in_service: r.remote_irr,
            },
            self,
        );
    }

    fn sapic_register_write<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        i: usize,
        agent: Entity,
        off: u64,
        value: u32,
        env: &mut E,
    ) {
        let sid = self.subs[i].id;
        match off {
            sapic::IOREGSEL => self.subs[i].sapic.regsel = value,
            sapic::IOWIN => {
                let sel = self.subs[i].sapic.regsel;
                if sel < 0x10 {
                    return;
                }
                let e = ((sel - 0x10) / 2) as usize;
                let Some(r) = self.subs[i].sapic.entries.get_mut(e) else {
                    return;
                };
                let was_masked = r.masked;
                if sel % 2 == 0 {
                    r.vector = value as u8;
                    r.level = value & rte::LEVEL != 0;
                    r.masked = value & rte::MASK != 0;
                } else {
                    r.dest = LsapicId {
                        id: (value >> 24) as u8,
                        eid: (value >> 16) as u8,
                    };
                }
                let r = *r;
                env.io_event(
                    now,
                    &IoEvent::SapicProgram {
                        subsystem: sid,
                        entry: e as u16,
                        agent,
                        vector: r.vector,
                        dest: r.dest,
                        masked: r.masked,
                    },
                    self,
                );
                if was_masked && !r.masked && !self.defects.has(IoDefect::SapicLosesHeld) {
                    self.sapic_evaluate(now, i, e, false, env);
                }
            }
            sapic::EOI => {
                self.stats.eois += 1;
                let vector = value as u8;
                let ignores = self.defects.has(IoDefect::SapicIgnoresEoi);
                let mut cleared = Vec::new();
                for (e, r) in self.subs[i].sapic.entries.iter_mut().enumerate() {
                    if r.vector == vector && r.remote_irr {
                        if !ignores {
                            r.remote_irr = false;
                        }
                        cleared.push(e);
                    }
                }
                env.io_event(
                    now,
                    &IoEvent::SapicEoi {
                        subsystem: sid,
                        agent,
                        vector,
                        cleared: cleared.len() as u16,
                    },
                    self,
                );
                for e in cleared {
                    self.sapic_evaluate(now, i, e, false, env);
                }
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------- power and presence

    fn slot_checked(&self, slot: SlotId) -> Result<usize, IoError> {
        (slot.0 as usize)
            .checked_sub(1)
            .filter(|&i| i < self.slots.len())
            .ok_or(IoError::NoSuchSlot {
                slot: slot.0,
                count: self.slots.len(),
            })
    }

    /// A card loses power (or leaves): its state resets, its line drops.
    fn card_down<E: IoEnv + ?Sized>(&mut self, now: SimTime, d: DeviceId, env: &mut E) {
        // Power goes first: the line it was driving drops at the IO SAPIC (a card pulled
        // out while interrupting must not leave its input asserted), then the state resets.
        self.devices[d.0 as usize].powered = false;
        self.update_line(now, d, env);
        self.devices[d.0 as usize].reset();
    }

    /// Slot power, as `_PS0`/`_PS3`/`_EJ0` drive it. Powering on leaves the card in its reset
    /// state (no BARs, no decode): software must configure it again.
    pub fn set_slot_power<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        slot: SlotId,
        on: bool,
        env: &mut E,
    ) -> Result<(), IoError> {
        let si = self.slot_checked(slot)?;
        let sub = self.slots[si].subsystem.index();
        let state = self.subs[sub].state;
        if !state.is_powered() {
            return Err(IoError::SubsystemDown {
                slot: slot.0,
                state,
            });
        }
        if self.slots[si].powered == on {
            return Ok(());
        }
        self.slots[si].powered = on;
        if let Some(d) = self.slots[si].card {
            if on {
                let dev = &mut self.devices[d.0 as usize];
                dev.reset();
                dev.powered = true;
            } else {
                self.card_down(now, d, env);
            }
        }
        env.io_event(now, &IoEvent::SlotPower { slot, on }, self);
        Ok(())
    }

    /// A card is pushed into an empty slot (it is powered only if the slot is).
    pub fn insert_card<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        slot: SlotId,
        kind: DeviceKind,
        env: &mut E,
    ) -> Result<DeviceId, IoError> {
        let si = self.slot_checked(slot)?;
        if self.slots[si].card.is_some() {
            return Err(IoError::Slot {
                slot: slot.0,
                why: "already holds a card",
            });
        }
        let d = self.new_card(slot, kind, None);
        let powered = self.slots[si].powered
            && self.subs[self.slots[si].subsystem.index()]
                .state
                .is_powered();
        self.devices[d.0 as usize].powered = powered;
        self.slots[si].card = Some(d);
        self.slots[si].last_card = Some(d);
        env.io_event(
            now,
            &IoEvent::Card {
                slot,
                device: d,
                inserted: true,
                surprise: false,
            },
            self,
        );
        Ok(d)
    }

    /// A card is pulled out; if the slot was powered, that is a surprise removal.
    pub fn remove_card<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        slot: SlotId,
        env: &mut E,
    ) -> Result<DeviceId, IoError> {
        let si = self.slot_checked(slot)?;
        let Some(d) = self.slots[si].card.take() else {
            return Err(IoError::Slot {
                slot: slot.0,
                why: "is empty",
            });
        };
        let surprise = self.devices[d.0 as usize].powered;
        self.card_down(now, d, env);
        self.devices[d.0 as usize].inserted = false;
        env.io_event(
            now,
            &IoEvent::Card {
                slot,
                device: d,
                inserted: false,
                surprise,
            },
            self,
        );
        Ok(d)
    }

    /// Someone presses a slot's attention button (firmware turns it into an eject request).
    pub fn press_attention<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        slot: SlotId,
        env: &mut E,
    ) -> Result<(), IoError> {
        self.slot_checked(slot)?;
        env.io_event(now, &IoEvent::AttentionButton { slot }, self);
        Ok(())
    }

    /// Presence and power of a whole I/O subsystem. Power-on resets its IO SAPIC (every entry
    /// masked) and leaves its slots unpowered; power-off and removal drop every card's state;
    /// removal also takes its cards away.
    pub fn subsystem_event<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        id: IoSubsystemId,
        event: SubsystemEvent,
        env: &mut E,
    ) -> Result<(), IoError> {
        let i = id.index();
        let from = self
            .subsystems()
            .get(i)
            .ok_or(IoError::NoSuchSubsystem {
                subsystem: id,
                count: self.subsystems().len(),
            })?
            .state;
        let to = from.on(event).ok_or(IoError::Transition {
            subsystem: id,
            state: from,
            event,
        })?;
        let slot_ids: Vec<SlotId> = self.subs[i]
            .bridges
            .iter()
            .flat_map(|b| b.slots.iter().copied())
            .collect();
        let lost: Box<[DeviceId]> = match event {
            SubsystemEvent::PowerOff | SubsystemEvent::Remove => slot_ids
                .iter()
                .filter_map(|s| self.slots[s.0 as usize - 1].card)
                .filter(|d| self.devices[d.0 as usize].powered)
                .collect(),
            SubsystemEvent::Insert | SubsystemEvent::PowerOn => Box::default(),
        };
        match event {
            SubsystemEvent::Insert => {}
            SubsystemEvent::PowerOn => self.subs[i].sapic.reset(),
            SubsystemEvent::PowerOff | SubsystemEvent::Remove => {
                for s in &slot_ids {
                    let si = s.0 as usize - 1;
                    self.slots[si].powered = false;
                    if let Some(d) = self.slots[si].card {
                        if self.devices[d.0 as usize].powered {
                            self.card_down(now, d, env);
                        }
                    }
                }
                self.subs[i].sapic.reset();
            }
        }
        self.subs[i].state = to;
        if event == SubsystemEvent::Remove {
            for s in &slot_ids {
                let si = s.0 as usize - 1;
                if let Some(d) = self.slots[si].card.take() {
                    self.devices[d.0 as usize].inserted = false;
                }
            }
        }
        env.io_event(
            now,
            &IoEvent::Subsystem {
                subsystem: id,
                event,
                from,
                to,
                lost,
            },
            self,
        );
        Ok(())
    }

    /// A cell's chipset function follows its cell (the platform calls this on cell power
    /// changes).
    pub fn set_chipset_present<E: IoEnv + ?Sized>(
        &mut self,
        now: SimTime,
        cell: u16,
        present: bool,
        env: &mut E,
    ) {
        let Some(f) = self.chipset.get_mut(usize::from(cell)) else {
            return;
        };
        if f.present == present {
            return;
        }
        f.present = present;
        env.io_event(now, &IoEvent::Chipset { cell, present }, self);
    }
}
