//! ACPI PCI hot-plug (SPEC OS-IO-1; seed 000 §3.4; Linux `acpiphp`): slots found in the
//! namespace, enabled and disabled as state machines over simulated time, their bus
//! resources assigned from and given back to the bridge's windows, their interrupt routed
//! `_PRT` → GSI → IO SAPIC entry, the card driver bound and unbound.
//!
//! ```text
//!  enable:  power_on (_PS0, settle) ─► scan (vendor id; all-ones: ENODEV) ─► assign (size
//!           the BARs, allocate them in the bridge's MMIO and I/O windows; ENOSPC) ─►
//!           route_irq (_PRT → GSI → IO SAPIC entry, masked) ─► probe (DMA ring, driver
//!           start, entry unmasked)
//!  disable: quiesce (engine and bus mastering off, DMA in flight drained) ─► free_irq (entry
//!           masked, handlers finished) ─► free_buffers (DMA ring freed, poisoned) ─►
//!           release (BARs back to the windows) ─► power_off (_PS3) ─► [eject (_EJ0)]
//! ```
//!
//! Triggers: a user's write to `/sys/bus/pci/slots/N/power`, firmware's Notify on the slot
//! (device check, bus check: enable; eject request — the attention button — disable and
//! eject), each ending with `_OST`. One operation runs at a time; requests queue. A failed
//! enable undoes what it did (resources, interrupt, power). The kernel's view of each slot
//! and of each window is what `sysfs` shows and what the CHK-7 checker compares with the
//! hardware.

use std::collections::VecDeque;

use acpi_model::{AcpiValue, Platform, PlatformProbe};
use serde::Serialize;
use sim_core::window::WindowAllocator;
use sim_core::{Bdf, SimDuration, SimTime, SlotId};
use thiserror::Error;

use crate::config::OsDefect;
use crate::cpumask::LogicalCpu;
use crate::driver::CardDriver;
use crate::event::OsEvent;
use crate::hotplug::{Accepted, Trigger};
use crate::irq::{self, IrqDesc};
use crate::kernel::POISON;
use crate::kernel::{Os, OsEv};

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PciOpKind {
    /// Power the slot on and bring its card up.
    Enable,
    /// Bring the card down and power the slot off.
    Disable,
    /// Disable, then `_EJ0` (the card may be pulled out).
    Eject,
    /// An I/O subsystem arrived: read its bridges, slots and IO SAPIC, initialise the IO
    /// SAPIC (every entry masked), then enable each slot holding a card.
    AddSubsystem,
    /// An I/O subsystem goes: (its slots disabled first) `_EJ0` on its module device.
    EjectSubsystem,
}

impl PciOpKind {
    /// Name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            PciOpKind::Enable => "enable",
            PciOpKind::Disable => "disable",
            PciOpKind::Eject => "eject",
            PciOpKind::AddSubsystem => "add subsystem",
            PciOpKind::EjectSubsystem => "eject subsystem",
        }
    }
}

/// What an operation acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PciTarget {
    /// A hot-plug slot.
    Slot(SlotId),
    /// An I/O subsystem, by its module device's path.
    Subsystem(String),
}

impl PciTarget {
    /// The slot, for a slot operation.
    pub fn slot(&self) -> Option<SlotId> {
        match self {
            PciTarget::Slot(s) => Some(*s),
            PciTarget::Subsystem(_) => None,
        }
    }
}

impl std::fmt::Display for PciTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PciTarget::Slot(s) => write!(f, "slot {}", s.0),
            PciTarget::Subsystem(path) => write!(f, "I/O subsystem {path}"),
        }
    }
}

/// One step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PciStep {
    /// `_PS0`, then the power settles.
    PowerOn,
    /// Read the vendor id: is a card there?
    Scan,
    /// Size the BARs and place them in the bridge's windows.
    Assign,
    /// `_PRT` → GSI → IO SAPIC entry (masked), vector.
    RouteIrq,
    /// Bind the driver: DMA ring, card started, interrupt unmasked.
    Probe,
    /// Stop the card's DMA and wait for what is in flight.
    Quiesce,
    /// Mask the interrupt and wait for a running handler.
    FreeIrq,
    /// Free the DMA ring (poisoned).
    FreeBuffers,
    /// Give the BARs back to the windows.
    Release,
    /// `_PS3`.
    PowerOff,
    /// `_EJ0`.
    Eject,
    /// Read the I/O subsystem's bridges, slots and IO SAPIC from the namespace again.
    Rescan,
    /// Register the new IO SAPIC (its GSI range from `_GSB` and the version register) and
    /// mask every entry, before any device behind it is enabled.
    InitSapic,
    /// Queue the enable of each of its slots holding a card.
    EnableSlots,
    /// Every device of the I/O subsystem is stopped.
    CheckStopped,
    /// Forget the I/O subsystem's IO SAPIC and bridges.
    Forget,
}

impl PciStep {
    /// Name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            PciStep::PowerOn => "power_on",
            PciStep::Scan => "scan",
            PciStep::Assign => "assign",
            PciStep::RouteIrq => "route_irq",
            PciStep::Probe => "probe",
            PciStep::Quiesce => "quiesce",
            PciStep::FreeIrq => "free_irq",
            PciStep::FreeBuffers => "free_buffers",
            PciStep::Release => "release",
            PciStep::PowerOff => "power_off",
            PciStep::Eject => "eject",
            PciStep::Rescan => "rescan",
            PciStep::InitSapic => "init_sapic",
            PciStep::EnableSlots => "enable_slots",
            PciStep::CheckStopped => "check_stopped",
            PciStep::Forget => "forget",
        }
    }
}

/// Why a request was refused or an operation failed.
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize)]
pub enum PciError {
    /// No slot has that number.
    #[error("slot {slot} does not exist (the namespace has {slots} hot-plug slots)")]
    NoSuchSlot {
        /// The number asked for.
        slot: u16,
        /// Slots there are.
        slots: usize,
    },
    /// Disable or eject of a slot whose device is not enabled.
    #[error("slot {slot} has no enabled device: nothing to power off or eject")]
    NotEnabled {
        /// The slot.
        slot: u16,
    },
    /// Nothing answers in the slot once powered.
    #[error("slot {slot}: no card answers at {bdf} after power-on")]
    NoDevice {
        /// The slot.
        slot: u16,
        /// Where it was looked for.
        bdf: Bdf,
    },
    /// A BAR does not fit in the bridge's window.
    #[error(
        "slot {slot}: the {what} window of {bridge} has no room for a {size:#x}-byte BAR: {why}"
    )]
    NoSpace {
        /// The slot.
        slot: u16,
        /// `MMIO` or `I/O`.
        what: &'static str,
        /// The bridge.
        bridge: String,
        /// BAR size.
        size: u64,
        /// The allocator's word.
        why: String,
    },
    /// No interrupt route or vector.
    #[error("slot {slot}: {why}")]
    NoIrq {
        /// The slot.
        slot: u16,
        /// Why.
        why: String,
    },
    /// Kernel memory for the DMA ring ran out.
    #[error("slot {slot}: no memory for the DMA ring ({bytes} bytes)")]
    NoMemory {
        /// The slot.
        slot: u16,
        /// Bytes.
        bytes: u64,
    },
    /// The driver could not bring the card up.
    #[error("slot {slot}: the driver's probe failed: {why}")]
    Probe {
        /// The slot.
        slot: u16,
        /// Why.
        why: String,
    },
    /// The path names no I/O subsystem.
    #[error("{path} is not an I/O subsystem's module device")]
    NoSuchSubsystem {
        /// The path.
        path: String,
    },
    /// A new IO SAPIC's GSI range overlaps one already in use.
    #[error(
        "the IO SAPIC of {path} claims GSIs {first}..{end}, which overlap GSIs {other_first}..{other_end} of {other}"
    )]
    GsiOverlap {
        /// The I/O subsystem.
        path: String,
        /// Its first GSI.
        first: u32,
        /// One past its last.
        end: u32,
        /// The IO SAPIC it collides with.
        other: String,
        /// That one's first GSI.
        other_first: u32,
        /// One past its last.
        other_end: u32,
    },
    /// A device of the I/O subsystem still runs.
    #[error("{path}: slot {slot} is still enabled")]
    SubsystemBusy {
        /// The I/O subsystem.
        path: String,
        /// A slot still enabled.
        slot: u16,
    },
    /// The slot's I/O subsystem is not in the machine (as far as the OS knows).
    #[error("slot {slot}: its I/O subsystem ({bridge}) is not present")]
    SubsystemAbsent {
        /// The slot.
        slot: u16,
        /// Its host bridge.
        bridge: String,
    },
    /// Boot is still bringing CPUs up (the slots are not registered yet).
    #[error("slot {slot}: boot has not finished (secondary CPUs are still being brought up)")]
    Booting {
        /// The slot.
        slot: u16,
    },
    /// A firmware method failed.
    #[error("slot {slot}: {method} failed: {why}")]
    Firmware {
        /// The slot.
        slot: u16,
        /// The method.
        method: &'static str,
        /// Its error.
        why: String,
    },
}

impl PciError {
    /// The errno a write to `slots/N/power` returns.
    pub const fn errno(&self) -> &'static str {
        match self {
            PciError::NoSuchSlot { .. } | PciError::NoSuchSubsystem { .. } => "EINVAL",
            PciError::GsiOverlap { .. }
            | PciError::SubsystemBusy { .. }
            | PciError::Booting { .. } => "EBUSY",
            PciError::NotEnabled { .. }
            | PciError::NoDevice { .. }
            | PciError::SubsystemAbsent { .. } => "ENODEV",
            PciError::NoSpace { .. } | PciError::NoIrq { .. } => "ENOSPC",
            PciError::NoMemory { .. } => "ENOMEM",
            PciError::Probe { .. } | PciError::Firmware { .. } => "EIO",
        }
    }

    /// The `_OST` status (ACPI 6.3.5: 0x80 failure, 0x81 not supported now, 0x82 device in
    /// use).
    pub const fn ost_status(&self) -> u64 {
        match self {
            PciError::NotEnabled { .. }
            | PciError::NoSuchSlot { .. }
            | PciError::NoSuchSubsystem { .. }
            | PciError::SubsystemAbsent { .. } => 0x81,
            PciError::SubsystemBusy { .. } | PciError::Booting { .. } => 0x82,
            PciError::GsiOverlap { .. } => 0x80,
            PciError::NoDevice { .. }
            | PciError::NoSpace { .. }
            | PciError::NoIrq { .. }
            | PciError::NoMemory { .. }
            | PciError::Probe { .. }
            | PciError::Firmware { .. } => 0x80,
        }
    }
}

/// The kernel's view of one slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PciSlot {
    /// `_SUN`.
    pub sun: SlotId,
    /// Its ACPI path.
    pub path: String,
    /// Index of its bridge in [`PciHotplug::bridges`].
    pub bridge: usize,
    /// Its function's configuration address.
    pub bdf: Bdf,
    /// A device is configured and its driver bound (`SLOT_ENABLED`).
    pub enabled: bool,
    /// Its memory BAR `(base, size)` and I/O BAR `(base, size)` while reserved.
    pub bars: Option<((u64, u64), (u64, u64))>,
    /// The driver's card index.
    pub card: Option<usize>,
    /// Its interrupt descriptor.
    pub irq: Option<usize>,
}

/// The kernel's resource tree of one host bridge: what it handed out of each window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeResources {
    /// The bridge's ACPI path.
    pub path: String,
    /// Its MMIO window (`_CRS`).
    pub mmio: WindowAllocator,
    /// Its I/O port window (`_CRS`).
    pub io: WindowAllocator,
}

/// A slotless chipset function the kernel has a `pci_dev` for (seed 000 §3.4.4): added and
/// removed with its cell, without power control.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChipsetDev {
    /// Its ACPI path.
    pub path: String,
    /// Its configuration address.
    pub bdf: Bdf,
    /// Its cell.
    pub node: u32,
    /// Vendor and device id (configuration register 0).
    pub id: u32,
}

/// A DMA buffer the driver freed, poisoned, that no device may write again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoisonedBuffer {
    /// First byte.
    pub addr: u64,
    /// Bytes.
    pub len: u64,
    /// The device that owned it.
    pub bdf: Bdf,
    /// When it was freed.
    pub freed: SimTime,
}

/// One finished step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PciStepRecord {
    /// The step.
    pub step: PciStep,
    /// Start.
    pub start: SimTime,
    /// Duration.
    pub duration: SimDuration,
    /// What it did.
    pub note: String,
}

/// The report of one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PciOpReport {
    /// Operation number.
    pub id: u32,
    /// What.
    pub kind: PciOpKind,
    /// On what.
    pub target: PciTarget,
    /// Who asked.
    pub trigger: Trigger,
    /// The controlling CPU.
    pub controller: LogicalCpu,
    /// Asked.
    pub requested: SimTime,
    /// Started.
    pub started: SimTime,
    /// Ended.
    pub ended: Option<SimTime>,
    /// How it ended.
    pub result: Option<Result<(), PciError>>,
    /// Steps.
    pub steps: Vec<PciStepRecord>,
}

#[derive(Clone, Debug)]
struct PciCur {
    report: PciOpReport,
    /// The slot (index in [`PciHotplug::slots`]) of a slot operation.
    slot: Option<usize>,
    plan: Vec<PciStep>,
    idx: usize,
    step_start: SimTime,
    epoch: u32,
    /// The slot was powered by this operation (undo powers it off).
    powered: bool,
    /// The card was found gone (surprise removal): it is not touched any more.
    gone: bool,
}

/// The ACPI PCI hot-plug driver's slots, windows, queue and history.
#[derive(Clone, Debug, Default)]
pub struct PciHotplug {
    /// Every slot of the namespace, in `_SUN` order.
    pub slots: Vec<PciSlot>,
    /// Every host bridge's windows.
    pub bridges: Vec<BridgeResources>,
    /// Freed DMA buffers, poisoned, not handed out again yet.
    pub poisoned: Vec<PoisonedBuffer>,
    /// The chipset functions with a `pci_dev`.
    pub chipset: Vec<ChipsetDev>,
    queue: VecDeque<(u32, PciOpKind, PciTarget, Trigger, SimTime)>,
    current: Option<PciCur>,
    done: Vec<PciOpReport>,
    next_id: u32,
}

impl PciHotplug {
    /// A word for the slots' states and what is queued and running (a refused request
    /// must not change it).
    pub(crate) fn state_word(&self) -> u64 {
        let mut h = sim_core::StableHasher::new();
        h.word(u64::from(self.next_id));
        h.word(
            self.current
                .as_ref()
                .map_or(u64::MAX, |c| u64::from(c.report.id)),
        );
        h.word(self.queue.len() as u64);
        for s in &self.slots {
            h.word(u64::from(s.enabled) | u64::from(s.bars.is_some()) << 1);
        }
        h.word(self.chipset.len() as u64);
        h.finish()
    }

    /// Finished operations.
    pub fn done(&self) -> &[PciOpReport] {
        &self.done
    }

    /// Whether nothing runs or waits.
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.queue.is_empty()
    }

    /// The slot the running operation works on.
    pub fn busy_slot(&self) -> Option<SlotId> {
        self.current.as_ref().and_then(|c| c.report.target.slot())
    }

    /// The slot with `_SUN` `sun`.
    pub fn slot(&self, sun: SlotId) -> Option<&PciSlot> {
        self.slots.iter().find(|s| s.sun == sun)
    }

    /// Whether the slot will be enabled once the queued operations ran.
    fn will_be_enabled(&self, i: usize) -> bool {
        let sun = PciTarget::Slot(self.slots[i].sun);
        let mut on = self.slots[i].enabled;
        for (kind, target) in self.pending() {
            if *target == sun {
                on = kind == PciOpKind::Enable;
            }
        }
        on
    }

    /// The operation running and those queued, in the order they run: kind and target.
    fn pending(&self) -> impl Iterator<Item = (PciOpKind, &PciTarget)> {
        self.current
            .as_ref()
            .map(|c| (c.report.kind, &c.report.target))
            .into_iter()
            .chain(self.queue.iter().map(|(_, k, t, _, _)| (*k, t)))
    }
}

const START: u32 = u32::MAX;

enum Out {
    Done(SimTime, String),
    Fail(SimTime, PciError),
}

impl Os {
    /// The PCI hot-plug driver's state and history.
    pub fn pci_hotplug(&self) -> &PciHotplug {
        &self.pcihp
    }

    /// Learns the slots and the bridges' windows from the namespace scan (at boot).
    pub(crate) fn pci_init(&mut self) {
        self.pcihp.bridges = self
            .scan
            .bridges
            .iter()
            .map(|b| BridgeResources {
                path: b.path.clone(),
                mmio: WindowAllocator::new(b.mmio.0, b.mmio.1),
                io: WindowAllocator::new(b.io.0, b.io.1),
            })
            .collect();
        let mut slots: Vec<PciSlot> = self
            .scan
            .slots
            .iter()
            .filter_map(|s| {
                let bus = self.scan.bridges.get(s.bridge)?.bus;
                Some(PciSlot {
                    sun: s.sun,
                    path: s.path.clone(),
                    bridge: s.bridge,
                    bdf: Bdf {
                        segment: 0,
                        bus,
                        device: s.device,
                        function: 0,
                    },
                    enabled: false,
                    bars: None,
                    card: None,
                    irq: None,
                })
            })
            .collect();
        slots.sort_by_key(|s| s.sun);
        self.pcihp.slots = slots;
    }

    /// At boot, enumeration of the card firmware configured in slot `sun`: its BARs sized
    /// and claimed in its bridge's windows (as `pci_claim_resource`). `false` if they do not
    /// fit (firmware placed them outside the window, or over another card's).
    pub(crate) fn pci_claim(
        &mut self,
        t: &mut SimTime,
        sun: SlotId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> bool {
        let Some(i) = self.pcihp.slots.iter().position(|s| s.sun == sun) else {
            return false;
        };
        let hw = self.hw(self.bsp);
        let bdf = self.pcihp.slots[i].bdf;
        let ((bar, mem_size), (io_bar, io_size)) = CardDriver::size_bars(t, hw, bdf, p, probe);
        let br = &mut self.pcihp.bridges[self.pcihp.slots[i].bridge];
        if br.mmio.reserve(bar, mem_size).is_err() {
            return false;
        }
        if br.io.reserve(io_bar, io_size).is_err() {
            let _ = br.mmio.release(bar);
            return false;
        }
        self.pcihp.slots[i].bars = Some(((bar, mem_size), (io_bar, io_size)));
        true
    }

    /// At boot: the driver brought the card in slot `sun` up as card `k` with interrupt
    /// `irq`: the slot is enabled.
    pub(crate) fn pci_bound(&mut self, sun: SlotId, k: usize, irq: Option<usize>) {
        if let Some(s) = self.pcihp.slots.iter_mut().find(|s| s.sun == sun) {
            s.enabled = true;
            s.card = Some(k);
            s.irq = irq;
        }
    }

    /// A request for slot `sun`: enable (`/sys/bus/pci/slots/N/power` ← 1, a device check),
    /// disable (← 0) or eject (an eject request). Checked against the state the queued
    /// operations will leave; a refusal changes nothing.
    pub fn pci_request(
        &mut self,
        now: SimTime,
        sun: u16,
        kind: PciOpKind,
        trigger: Trigger,
    ) -> Result<Accepted, PciError> {
        let r = self.pci_slot_request(now, sun, kind, trigger);
        if let Err(e) = &r {
            self.refuse(now, format!("slot {sun}"), e.errno(), e.to_string());
        }
        r
    }

    fn pci_slot_request(
        &mut self,
        now: SimTime,
        sun: u16,
        kind: PciOpKind,
        trigger: Trigger,
    ) -> Result<Accepted, PciError> {
        if trigger == Trigger::User && self.booted_at.is_none() {
            return Err(PciError::Booting { slot: sun });
        }
        let slots = self.pcihp.slots.len();
        let i = self
            .pcihp
            .slots
            .iter()
            .position(|s| s.sun.0 == sun)
            .ok_or(PciError::NoSuchSlot { slot: sun, slots })?;
        let on = self.pcihp.will_be_enabled(i);
        if kind == PciOpKind::Enable && !on && !self.subsystem_known(self.pcihp.slots[i].bridge) {
            return Err(PciError::SubsystemAbsent {
                slot: sun,
                bridge: self.pcihp.bridges[self.pcihp.slots[i].bridge].path.clone(),
            });
        }
        match (kind, on) {
            (PciOpKind::Enable, true) => return Ok(Accepted::NoChange),
            (PciOpKind::Disable | PciOpKind::Eject, false) => {
                return Err(PciError::NotEnabled { slot: sun });
            }
            (PciOpKind::Enable, false) | (PciOpKind::Disable | PciOpKind::Eject, true) => {}
            (PciOpKind::AddSubsystem | PciOpKind::EjectSubsystem, _) => {
                return Err(PciError::NoSuchSubsystem {
                    path: format!("slot {sun}"),
                });
            }
        }
        Ok(Accepted::Queued {
            op: self.pci_enqueue(now, kind, PciTarget::Slot(self.pcihp.slots[i].sun), trigger),
        })
    }

    /// Queues an operation; returns its number.
    fn pci_enqueue(
        &mut self,
        now: SimTime,
        kind: PciOpKind,
        target: PciTarget,
        trigger: Trigger,
    ) -> u32 {
        let id = self.pcihp.next_id;
        self.pcihp.next_id += 1;
        self.pcihp.queue.push_back((id, kind, target, trigger, now));
        if self.pcihp.current.is_none() {
            let _ = self.post(
                now,
                OsEv::Pci {
                    op: START,
                    epoch: 0,
                },
            );
        }
        id
    }

    /// Whether the OS has host bridge `b` (found present at boot or by a rescan, and not
    /// forgotten since) — or an operation queued or running is adding its subsystem.
    fn subsystem_known(&self, b: usize) -> bool {
        let Some(br) = self.scan.bridges.get(b) else {
            return false;
        };
        br.present
            || self.pcihp.pending().any(|(k, t)| {
                k == PciOpKind::AddSubsystem
                    && matches!(t, PciTarget::Subsystem(m) if br.path.starts_with(&format!("{m}.")))
            })
    }

    /// The bridges (indices in the scan) of the I/O subsystem whose module device is `path`.
    pub(crate) fn subsystem_bridges(&self, path: &str) -> Vec<usize> {
        let prefix = format!("{path}.");
        (0..self.scan.bridges.len())
            .filter(|&b| self.scan.bridges[b].path.starts_with(&prefix))
            .collect()
    }

    /// A request for the I/O subsystem whose module device is `path`: add it (a device
    /// check) or eject it (an eject request: each enabled slot is disabled first, then the
    /// module is ejected). Refused, changing nothing, if `path` is no I/O subsystem.
    /// `present`: whether the module's `_STA` says it is there (a device check on a module
    /// that is gone means it was pulled out: its devices are cleaned up after).
    pub fn pci_subsystem_request(
        &mut self,
        now: SimTime,
        path: &str,
        add: bool,
        present: bool,
        trigger: Trigger,
    ) -> Result<Accepted, PciError> {
        let bridges = self.subsystem_bridges(path);
        if bridges.is_empty() {
            return Err(PciError::NoSuchSubsystem { path: path.into() });
        }
        let target = PciTarget::Subsystem(path.to_owned());
        // A device check on a module that is not there any more: it was pulled out.
        let add = add && present;
        // Gone, yet the OS never had it (nor is adding it): nothing to clean up.
        let adding = self
            .pcihp
            .pending()
            .any(|(k, t)| k == PciOpKind::AddSubsystem && *t == target);
        if !add && !adding && !bridges.iter().any(|&b| self.subsystem_known(b)) {
            return Ok(Accepted::NoChange);
        }
        if add {
            return Ok(Accepted::Queued {
                op: self.pci_enqueue(now, PciOpKind::AddSubsystem, target, trigger),
            });
        }
        // Each device stops before the subsystem goes.
        let slots: Vec<u16> = (0..self.pcihp.slots.len())
            .filter(|&i| {
                bridges.contains(&self.pcihp.slots[i].bridge) && self.pcihp.will_be_enabled(i)
            })
            .map(|i| self.pcihp.slots[i].sun.0)
            .collect();
        for sun in slots {
            self.pci_enqueue(
                now,
                PciOpKind::Disable,
                PciTarget::Slot(SlotId(sun)),
                Trigger::Subsystem,
            );
        }
        Ok(Accepted::Queued {
            op: self.pci_enqueue(now, PciOpKind::EjectSubsystem, target, trigger),
        })
    }

    /// Adds a `pci_dev` for each chipset function of `node` (every node: `None`) that
    /// answers in configuration space, as `ctl` (boot, and a cell's hot-add). Returns what
    /// it added.
    pub(crate) fn chipset_add(
        &mut self,
        t: &mut SimTime,
        ctl: LogicalCpu,
        node: Option<u32>,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> String {
        let hw = self.hw(ctl);
        let mut added = Vec::new();
        let funcs: Vec<crate::acpi::ChipsetInfo> = self
            .scan
            .chipset
            .iter()
            .filter(|f| node.is_none_or(|n| f.node == n))
            .filter(|f| crate::acpi::is_present(p, &f.path))
            .cloned()
            .collect();
        for f in funcs {
            if self.pcihp.chipset.iter().any(|d| d.path == f.path) {
                continue;
            }
            let bdf = Bdf {
                segment: 0,
                bus: f.bus,
                device: f.device,
                function: 0,
            };
            let id = crate::hw::cfg_read(p, probe, t, hw, bdf, sim_core::abi::pci::reg::ID);
            if id == u32::MAX {
                continue;
            }
            added.push(format!("pci {bdf} ({:04x}:{:04x})", id & 0xFFFF, id >> 16));
            self.pcihp.chipset.push(ChipsetDev {
                path: f.path,
                bdf,
                node: f.node,
                id,
            });
        }
        if added.is_empty() {
            "no chipset function".to_owned()
        } else {
            format!("chipset pci_dev added: {}", added.join(", "))
        }
    }

    /// Removes the `pci_dev`s of `node`'s chipset functions (before its cell is ejected);
    /// nothing is written to them. Returns what it removed.
    pub(crate) fn chipset_remove(&mut self, node: u32) -> String {
        let gone: Vec<String> = self
            .pcihp
            .chipset
            .iter()
            .filter(|d| d.node == node)
            .map(|d| format!("pci {}", d.bdf))
            .collect();
        self.pcihp.chipset.retain(|d| d.node != node);
        if gone.is_empty() {
            "no chipset function".to_owned()
        } else {
            format!("chipset pci_dev removed: {}", gone.join(", "))
        }
    }

    /// The driver found card `k` gone (it answered all-ones): the kernel cleans up after
    /// the surprise removal — the slot is disabled without touching the card again.
    pub(crate) fn pci_card_gone(&mut self, now: SimTime, k: usize) {
        let Some(sun) = self
            .pcihp
            .slots
            .iter()
            .find(|s| s.card == Some(k) && s.enabled)
            .map(|s| s.sun.0)
        else {
            return;
        };
        let _ = self.pci_request(now, sun, PciOpKind::Disable, Trigger::Surprise);
    }

    /// A PCI hot-plug event.
    pub(crate) fn pci_event(
        &mut self,
        now: SimTime,
        op: u32,
        epoch: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        match &self.pcihp.current {
            None if op == START => self.pci_start_next(now, p, probe),
            Some(cur) if cur.report.id == op && cur.epoch == epoch => {
                self.pci_advance(now, p, probe);
            }
            None | Some(_) => {}
        }
    }

    fn pci_start_next(&mut self, now: SimTime, p: &mut Platform, probe: &mut PlatformProbe) {
        let Some((id, kind, target, trigger, requested)) = self.pcihp.queue.pop_front() else {
            return;
        };
        let slot = target
            .slot()
            .and_then(|sun| self.pcihp.slots.iter().position(|s| s.sun == sun));
        let controller = self.cur_maps().online.first().unwrap_or(self.bsp);
        let disable = vec![
            PciStep::Quiesce,
            PciStep::FreeIrq,
            PciStep::FreeBuffers,
            PciStep::Release,
            PciStep::PowerOff,
        ];
        let plan = match kind {
            PciOpKind::Enable => vec![
                PciStep::PowerOn,
                PciStep::Scan,
                PciStep::Assign,
                PciStep::RouteIrq,
                PciStep::Probe,
            ],
            PciOpKind::Disable => disable,
            PciOpKind::Eject => {
                let mut v = disable;
                v.push(PciStep::Eject);
                v
            }
            PciOpKind::AddSubsystem => {
                vec![PciStep::Rescan, PciStep::InitSapic, PciStep::EnableSlots]
            }
            PciOpKind::EjectSubsystem => {
                vec![PciStep::CheckStopped, PciStep::Eject, PciStep::Forget]
            }
        };
        self.emit(
            now,
            OsEvent::PciHotplugStart {
                op: id,
                kind: kind.name(),
                target: target.to_string(),
                trigger: trigger.name(),
            },
        );
        self.pcihp.current = Some(PciCur {
            report: PciOpReport {
                id,
                kind,
                target,
                trigger,
                controller,
                requested,
                started: now,
                ended: None,
                result: None,
                steps: Vec::new(),
            },
            slot,
            plan,
            idx: 0,
            step_start: now,
            epoch: 0,
            powered: false,
            gone: false,
        });
        self.pci_advance(now, p, probe);
    }

    fn pci_schedule(&mut self, at: SimTime) {
        if let Some(c) = self.pcihp.current.as_mut() {
            c.epoch = c.epoch.wrapping_add(1);
            let (op, epoch) = (c.report.id, c.epoch);
            let _ = self.post(at, OsEv::Pci { op, epoch });
        }
    }

    fn pci_advance(&mut self, now: SimTime, p: &mut Platform, probe: &mut PlatformProbe) {
        let Some(ctl) = self.pcihp.current.as_ref().map(|c| c.report.controller) else {
            return;
        };
        let ctl = self.live_controller(ctl, None);
        let Some(cur) = self.pcihp.current.as_mut() else {
            return;
        };
        cur.report.controller = ctl;
        let cur = &*cur;
        let Some(&step) = cur.plan.get(cur.idx) else {
            self.pci_end(now, Ok(()), p, probe);
            return;
        };
        match self.pci_act(now, step, p, probe) {
            Out::Done(t, note) => {
                let end = t + self.cfg.step_cost;
                self.pci_finish_step(end, note);
                self.pci_schedule(end);
            }
            Out::Fail(t, e) => {
                let t = self.pci_undo(t, p, probe);
                self.pci_finish_step(t, format!("failed: {e}"));
                self.pci_end(t, Err(e), p, probe);
            }
        }
    }

    fn pci_finish_step(&mut self, end: SimTime, note: String) {
        let Some(cur) = self.pcihp.current.as_mut() else {
            return;
        };
        let Some(&step) = cur.plan.get(cur.idx) else {
            return;
        };
        let start = cur.step_start;
        let duration = end.saturating_since(start);
        cur.report.steps.push(PciStepRecord {
            step,
            start,
            duration,
            note: note.clone(),
        });
        cur.idx += 1;
        cur.step_start = end;
        let op = cur.report.id;
        self.emit(
            end,
            OsEvent::PciHotplugStep {
                op,
                step,
                start,
                duration,
                note,
            },
        );
    }

    fn pci_end(
        &mut self,
        now: SimTime,
        result: Result<(), PciError>,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let Some(mut cur) = self.pcihp.current.take() else {
            return;
        };
        cur.report.ended = Some(now);
        cur.report.result = Some(result.clone());
        self.emit(
            now,
            OsEvent::PciHotplugEnd {
                op: cur.report.id,
                result: result.clone().map_err(|e| e.to_string()),
            },
        );
        let source = match (cur.report.trigger, cur.report.kind) {
            (Trigger::AcpiEject, _) => Some(3),
            (Trigger::AcpiDeviceCheck, _) => Some(1),
            (
                Trigger::Boot
                | Trigger::User
                | Trigger::Cell
                | Trigger::Subsystem
                | Trigger::Surprise
                | Trigger::Ras
                | Trigger::Power,
                _,
            ) => None,
        };
        let path = match &cur.report.target {
            PciTarget::Slot(_) => cur.slot.map(|i| self.pcihp.slots[i].path.clone()),
            PciTarget::Subsystem(path) => Some(path.clone()),
        };
        if let (Some(source), Some(path)) = (source, path) {
            let status = result.as_ref().err().map_or(0, PciError::ost_status);
            let _ = self.acpi_eval(
                now,
                cur.report.controller,
                &format!("{path}._OST"),
                &[AcpiValue::Integer(source), AcpiValue::Integer(status)],
                p,
                probe,
            );
        }
        self.pcihp.done.push(cur.report);
        if !self.pcihp.queue.is_empty() {
            let _ = self.post(
                now,
                OsEv::Pci {
                    op: START,
                    epoch: 0,
                },
            );
        }
    }

    /// A failed enable gives back what it took: interrupt, BARs, the card, power.
    fn pci_undo(&mut self, now: SimTime, p: &mut Platform, probe: &mut PlatformProbe) -> SimTime {
        let Some(cur) = self.pcihp.current.as_ref() else {
            return now;
        };
        let (Some(i), ctl, powered) = (cur.slot, cur.report.controller, cur.powered) else {
            return now;
        };
        if cur.report.kind != PciOpKind::Enable {
            return now;
        }
        let mut t = now;
        let hw = self.hw(ctl);
        if let Some(d) = self.pcihp.slots[i].irq.take() {
            let desc = self.irqs.descs()[d].clone();
            self.set_irq_masked(&mut t, hw, &desc, true, p, probe);
            self.irqs.free(d);
        }
        self.pci_release_bars(i);
        if let Some(k) = self.pcihp.slots[i].card.take() {
            self.driver.detach(k);
        }
        if powered {
            let path = self.pcihp.slots[i].path.clone();
            let _ = self.acpi_eval(t, ctl, &format!("{path}._PS3"), &[], p, probe);
        }
        t
    }

    /// Gives slot `i`'s BARs back to its bridge's windows.
    fn pci_release_bars(&mut self, i: usize) -> bool {
        let s = &mut self.pcihp.slots[i];
        let Some(((bar, _), (io_bar, _))) = s.bars.take() else {
            return false;
        };
        let br = &mut self.pcihp.bridges[s.bridge];
        let _ = br.mmio.release(bar);
        let _ = br.io.release(io_bar);
        true
    }

    fn pci_act(
        &mut self,
        now: SimTime,
        step: PciStep,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Out {
        let Some(cur) = self.pcihp.current.as_ref() else {
            return Out::Done(now, String::new());
        };
        let ctl = cur.report.controller;
        let Some(i) = cur.slot else {
            let PciTarget::Subsystem(path) = cur.report.target.clone() else {
                return Out::Done(now, "no such slot".into());
            };
            return self.pci_subsystem_act(now, step, &path, ctl, p, probe);
        };
        let hw = self.hw(ctl);
        let slot = self.pcihp.slots[i].clone();
        let sun = slot.sun.0;
        let mut t = now;
        match step {
            PciStep::Rescan
            | PciStep::InitSapic
            | PciStep::EnableSlots
            | PciStep::CheckStopped
            | PciStep::Forget => Out::Done(t, "not a slot step".into()),
            PciStep::PowerOn => {
                if let Err(why) =
                    self.acpi_eval(t, ctl, &format!("{}._PS0", slot.path), &[], p, probe)
                {
                    return Out::Fail(
                        t,
                        PciError::Firmware {
                            slot: sun,
                            method: "_PS0",
                            why,
                        },
                    );
                }
                if let Some(c) = self.pcihp.current.as_mut() {
                    c.powered = true;
                }
                Out::Done(
                    t + self.cfg.pci.power_delay,
                    format!("_PS0; {} for power to settle", self.cfg.pci.power_delay),
                )
            }
            PciStep::Scan => {
                let id = crate::hw::cfg_read(
                    p,
                    probe,
                    &mut t,
                    hw,
                    slot.bdf,
                    sim_core::abi::pci::reg::ID,
                );
                if id == u32::MAX {
                    return Out::Fail(
                        t,
                        PciError::NoDevice {
                            slot: sun,
                            bdf: slot.bdf,
                        },
                    );
                }
                let k = match self.driver.attach(&self.scan, slot.sun, 0) {
                    Ok(k) => k,
                    Err(why) => return Out::Fail(t, PciError::NoIrq { slot: sun, why }),
                };
                self.pcihp.slots[i].card = Some(k);
                Out::Done(
                    t,
                    format!("{} {:04x}:{:04x}", slot.bdf, id & 0xFFFF, id >> 16),
                )
            }
            PciStep::Assign => {
                let ((_, mem_size), (_, io_size)) =
                    CardDriver::size_bars(&mut t, hw, slot.bdf, p, probe);
                let br = &mut self.pcihp.bridges[slot.bridge];
                let bar = match br.mmio.alloc(mem_size, mem_size) {
                    Ok(b) => b,
                    Err(e) => {
                        return Out::Fail(
                            t,
                            PciError::NoSpace {
                                slot: sun,
                                what: "MMIO",
                                bridge: br.path.clone(),
                                size: mem_size,
                                why: e.to_string(),
                            },
                        );
                    }
                };
                let io_bar = match br.io.alloc(io_size, io_size) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = br.mmio.release(bar);
                        return Out::Fail(
                            t,
                            PciError::NoSpace {
                                slot: sun,
                                what: "I/O",
                                bridge: br.path.clone(),
                                size: io_size,
                                why: e.to_string(),
                            },
                        );
                    }
                };
                self.pcihp.slots[i].bars = Some(((bar, mem_size), (io_bar, io_size)));
                CardDriver::program_bars(&mut t, hw, slot.bdf, bar, io_bar, p, probe);
                Out::Done(
                    t,
                    format!(
                        "BAR0 {bar:#x}+{mem_size:#x}, I/O {io_bar:#x}+{io_size:#x} in {}",
                        self.pcihp.bridges[slot.bridge].path
                    ),
                )
            }
            PciStep::RouteIrq => {
                let Some(k) = self.pcihp.slots[i].card else {
                    return Out::Done(t, "no card".into());
                };
                match self.route_irq(&mut t, k, ctl, true, p, probe) {
                    Ok(d) => {
                        self.pcihp.slots[i].irq = Some(d);
                        let desc = &self.irqs.descs()[d];
                        Out::Done(
                            t,
                            format!(
                                "_PRT: gsi{} → IO SAPIC entry {}, vector {:#04x} to {} (masked)",
                                desc.gsi, desc.entry, desc.vector, desc.target
                            ),
                        )
                    }
                    // The kernel before IO SAPIC hot-add support knew no controller for a
                    // GSI of a hot-added subsystem and bound the driver without one.
                    Err(why) if self.has_defect(OsDefect::SkipSapicInitOnHotAdd) => Out::Done(
                        t,
                        format!(
                            "{why}: bound without an interrupt (defect skip_sapic_init_on_hot_add)"
                        ),
                    ),
                    Err(why) => Out::Fail(t, PciError::NoIrq { slot: sun, why }),
                }
            }
            PciStep::Probe => {
                let (Some(k), Some(((_, mem_size), _))) =
                    (self.pcihp.slots[i].card, self.pcihp.slots[i].bars)
                else {
                    return Out::Done(t, "nothing to probe".into());
                };
                let irq = self.pcihp.slots[i].irq;
                let node = self.scan.bridges.get(slot.bridge).map_or(0, |b| b.node);
                let span = self.driver.config().card_span();
                let Ok(ring) = self.kmalloc(node, span, 4096) else {
                    return Out::Fail(
                        t,
                        PciError::NoMemory {
                            slot: sun,
                            bytes: span,
                        },
                    );
                };
                self.driver.set_ring(k, ring, mem_size);
                if let Err(why) = self
                    .driver
                    .bring_up(&mut t, k, hw, false, &self.scan, p, probe)
                {
                    self.kfree(ring, span);
                    return Out::Fail(t, PciError::Probe { slot: sun, why });
                }
                let unmasked = match irq {
                    Some(d) => {
                        let desc = self.irqs.descs()[d].clone();
                        self.set_irq_masked(&mut t, hw, &desc, false, p, probe);
                        format!("gsi{} unmasked", desc.gsi)
                    }
                    None => "no interrupt".to_owned(),
                };
                self.pcihp.slots[i].enabled = true;
                let serial = self.driver.cards()[k].serial;
                Out::Done(
                    t,
                    format!("driver bound (serial {serial:#x}); ring {ring:#x}; {unmasked}"),
                )
            }
            PciStep::Quiesce => {
                let Some(k) = slot.card else {
                    return Out::Done(t, "no card".into());
                };
                self.pcihp.slots[i].enabled = false;
                // Presence first (`_STA`, firmware, not the card): a card pulled out by
                // surprise, or behind a subsystem that is gone, is not touched again.
                if !crate::acpi::is_present(p, &slot.path) {
                    if let Some(c) = self.pcihp.current.as_mut() {
                        c.gone = true;
                    }
                    self.driver.detach(k);
                    return Out::Done(t, "the card is gone (surprise removal): not touched".into());
                }
                if self.has_defect(OsDefect::SkipDriverQuiesce) {
                    // The defect: the driver lets go without stopping the card.
                    self.driver.detach(k);
                    return Out::Done(t, "card left running (defect skip_driver_quiesce)".into());
                }
                self.driver.quiesce(&mut t, k, hw, p, probe);
                Out::Done(
                    t + self.cfg.pci.quiesce_delay,
                    format!(
                        "engine and bus mastering off; {} for DMA in flight",
                        self.cfg.pci.quiesce_delay
                    ),
                )
            }
            PciStep::FreeIrq => {
                let Some(d) = self.pcihp.slots[i].irq.take() else {
                    return Out::Done(t, "no interrupt".into());
                };
                let desc = self.irqs.descs()[d].clone();
                let sapic = self
                    .scan
                    .sapics
                    .iter()
                    .find(|x| x.base == desc.sapic_base)
                    .map(|x| x.path.clone());
                if !sapic.is_some_and(|x| crate::acpi::is_present(p, &x)) {
                    self.irqs.free(d);
                    return Out::Done(
                        t,
                        format!("gsi{} freed; its IO SAPIC is gone: not touched", desc.gsi),
                    );
                }
                self.set_irq_masked(&mut t, hw, &desc, true, p, probe);
                self.irqs.free(d);
                Out::Done(
                    t + self.cfg.pci.quiesce_delay,
                    format!(
                        "gsi{} masked and freed (vector {:#04x})",
                        desc.gsi, desc.vector
                    ),
                )
            }
            PciStep::FreeBuffers => {
                let Some(k) = slot.card else {
                    return Out::Done(t, "no card".into());
                };
                let c = self.driver.cards()[k].clone();
                let span = self.driver.config().card_span();
                if c.ring == 0 {
                    return Out::Done(t, "no buffers".into());
                }
                if self.cfg.pci.poison_freed_buffers {
                    for w in 0..span / 8 {
                        crate::hw::store(p, probe, &mut t, hw, c.ring + 8 * w, POISON);
                    }
                    self.pcihp.poisoned.push(PoisonedBuffer {
                        addr: c.ring,
                        len: span,
                        bdf: c.bdf,
                        freed: t,
                    });
                }
                self.kfree(c.ring, span);
                self.driver.set_ring(k, 0, c.bar_size);
                Out::Done(
                    t,
                    format!(
                        "DMA ring {:#x}+{span:#x} freed{}",
                        c.ring,
                        if self.cfg.pci.poison_freed_buffers {
                            " (poisoned)"
                        } else {
                            ""
                        }
                    ),
                )
            }
            PciStep::Release => {
                if slot.card.is_none() && slot.bars.is_none() {
                    // Nothing was bound (an enable that failed before this disable ran).
                    return Out::Done(t, "nothing to release".into());
                }
                if let Some(k) = self.pcihp.slots[i].card.take() {
                    self.driver.detach(k);
                }
                let gone = self.pcihp.current.as_ref().is_some_and(|c| c.gone);
                if gone {
                    let note = match slot.bars {
                        Some(((bar, size), _)) => format!(
                            "BAR0 {bar:#x}+{size:#x} back to {} (the card is gone)",
                            self.pcihp.bridges[slot.bridge].path
                        ),
                        None => "nothing reserved".to_owned(),
                    };
                    if !self.has_defect(OsDefect::LeakBarOnRemove) {
                        self.pci_release_bars(i);
                    }
                    return Out::Done(t, note);
                }
                crate::hw::cfg_write(
                    p,
                    probe,
                    &mut t,
                    hw,
                    slot.bdf,
                    sim_core::abi::pci::reg::COMMAND,
                    0,
                );
                if self.has_defect(OsDefect::LeakBarOnRemove) {
                    return Out::Done(
                        t,
                        "decoding off; BARs kept reserved (defect leak_bar_on_remove)".into(),
                    );
                }
                let note = match slot.bars {
                    Some(((bar, size), (io_bar, io_size))) => format!(
                        "decoding off; BAR0 {bar:#x}+{size:#x} and I/O {io_bar:#x}+{io_size:#x} back to {}",
                        self.pcihp.bridges[slot.bridge].path
                    ),
                    None => "decoding off".to_owned(),
                };
                self.pci_release_bars(i);
                Out::Done(t, note)
            }
            PciStep::PowerOff => {
                let bridge = self.scan.bridges.get(slot.bridge).map(|b| b.path.clone());
                if !bridge.is_some_and(|b| crate::acpi::is_present(p, &b)) {
                    return Out::Done(t, "the I/O subsystem is gone: nothing to power off".into());
                }
                match self.acpi_eval(t, ctl, &format!("{}._PS3", slot.path), &[], p, probe) {
                    Ok(_) => Out::Done(t, "_PS3".into()),
                    Err(why) => Out::Fail(
                        t,
                        PciError::Firmware {
                            slot: sun,
                            method: "_PS3",
                            why,
                        },
                    ),
                }
            }
            PciStep::Eject => {
                match self.acpi_eval(
                    t,
                    ctl,
                    &format!("{}._EJ0", slot.path),
                    &[AcpiValue::Integer(1)],
                    p,
                    probe,
                ) {
                    Ok(_) => Out::Done(t, "_EJ0: the card may be pulled out".into()),
                    Err(why) => Out::Fail(
                        t,
                        PciError::Firmware {
                            slot: sun,
                            method: "_EJ0",
                            why,
                        },
                    ),
                }
            }
        }
    }

    /// One step of an I/O subsystem operation on the module device `path`, as `ctl`.
    fn pci_subsystem_act(
        &mut self,
        now: SimTime,
        step: PciStep,
        path: &str,
        ctl: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Out {
        let hw = self.hw(ctl);
        let mut t = now;
        let prefix = format!("{path}.");
        let firmware = |method: &'static str, why: String| PciError::Firmware {
            slot: 0,
            method,
            why,
        };
        match step {
            PciStep::Rescan => {
                if !crate::acpi::is_present(p, path) {
                    return Out::Fail(t, firmware("_STA", format!("{path} is not present")));
                }
                // The namespace is the same tree; what is present and what it holds changed.
                let fresh = crate::acpi::scan(p);
                self.scan.bridges = fresh.bridges;
                self.scan.sapics = fresh.sapics;
                self.scan.slots = fresh.slots;
                let bridges = self.subsystem_bridges(path);
                for &b in &bridges {
                    let held = self
                        .pcihp
                        .slots
                        .iter()
                        .any(|x| x.bridge == b && x.bars.is_some());
                    if let (false, Some(info), Some(br)) = (
                        held,
                        self.scan.bridges.get(b),
                        self.pcihp.bridges.get_mut(b),
                    ) {
                        br.mmio = WindowAllocator::new(info.mmio.0, info.mmio.1);
                        br.io = WindowAllocator::new(info.io.0, info.io.1);
                    }
                }
                let slots = self
                    .pcihp
                    .slots
                    .iter()
                    .filter(|x| bridges.contains(&x.bridge))
                    .count();
                let sapics: Vec<String> = self
                    .scan
                    .sapics
                    .iter()
                    .filter(|x| x.path.starts_with(&prefix) && x.present)
                    .map(|x| format!("{} (_GSB {})", x.path, x.gsi_base))
                    .collect();
                Out::Done(
                    t,
                    format!(
                        "{} host bridges, {slots} slots, IO SAPIC {}",
                        bridges.len(),
                        sapics.join(", ")
                    ),
                )
            }
            PciStep::InitSapic => {
                let new: Vec<(String, u64, u32)> = self
                    .scan
                    .sapics
                    .iter()
                    .filter(|x| x.path.starts_with(&prefix) && x.present)
                    .filter(|x| !self.sapic_sizes.contains_key(&x.base))
                    .map(|x| (x.path.clone(), x.base, x.gsi_base))
                    .collect();
                if self.has_defect(OsDefect::SkipSapicInitOnHotAdd) {
                    return Out::Done(
                        t,
                        "new IO SAPIC neither registered nor masked (defect skip_sapic_init_on_hot_add)"
                            .into(),
                    );
                }
                let mut notes = Vec::new();
                for (spath, base, gsb) in new {
                    let n = irq::sapic_entries(p, probe, &mut t, hw, base);
                    let (first, end) = (gsb, gsb + n);
                    let clash = self.scan.sapics.iter().find_map(|o| {
                        let m = *self.sapic_sizes.get(&o.base)?;
                        (o.base != base && first < o.gsi_base + m && o.gsi_base < end)
                            .then(|| (o.path.clone(), o.gsi_base, o.gsi_base + m))
                    });
                    if let Some((other, other_first, other_end)) = clash {
                        return Out::Fail(
                            t,
                            PciError::GsiOverlap {
                                path: path.to_owned(),
                                first,
                                end,
                                other,
                                other_first,
                                other_end,
                            },
                        );
                    }
                    for e in 0..n {
                        irq::program_rte(
                            p,
                            probe,
                            &mut t,
                            hw,
                            base,
                            e,
                            0,
                            sim_core::LsapicId { id: 0, eid: 0 },
                            true,
                        );
                    }
                    self.sapic_sizes.insert(base, n);
                    notes.push(format!("{spath}: GSIs {first}..{end}, {n} entries masked"));
                }
                Out::Done(t, notes.join("; "))
            }
            PciStep::EnableSlots => {
                let bridges = self.subsystem_bridges(path);
                let with_cards: Vec<SlotId> = (0..self.pcihp.slots.len())
                    .filter(|&i| {
                        let s = &self.pcihp.slots[i];
                        bridges.contains(&s.bridge)
                            && !self.pcihp.will_be_enabled(i)
                            && crate::acpi::is_present(p, &s.path)
                    })
                    .map(|i| self.pcihp.slots[i].sun)
                    .collect();
                for &sun in &with_cards {
                    self.pci_enqueue(
                        t,
                        PciOpKind::Enable,
                        PciTarget::Slot(sun),
                        Trigger::Subsystem,
                    );
                }
                let list: Vec<String> = with_cards.iter().map(|s| s.0.to_string()).collect();
                Out::Done(t, format!("enable queued for slots {}", list.join(" ")))
            }
            PciStep::CheckStopped => {
                let bridges = self.subsystem_bridges(path);
                if let Some(s) = self
                    .pcihp
                    .slots
                    .iter()
                    .find(|s| bridges.contains(&s.bridge) && s.enabled)
                {
                    return Out::Fail(
                        t,
                        PciError::SubsystemBusy {
                            path: path.to_owned(),
                            slot: s.sun.0,
                        },
                    );
                }
                Out::Done(t, "every device stopped".into())
            }
            PciStep::Eject => {
                if !crate::acpi::is_present(p, path) {
                    return Out::Done(t, format!("{path} is gone already (surprise removal)"));
                }
                match self.acpi_eval(
                    t,
                    ctl,
                    &format!("{path}._EJ0"),
                    &[AcpiValue::Integer(1)],
                    p,
                    probe,
                ) {
                    Ok(_) => Out::Done(t, format!("_EJ0: firmware powered {path} off")),
                    Err(why) => Out::Fail(t, firmware("_EJ0", why)),
                }
            }
            PciStep::Forget => {
                let gone: Vec<u64> = self
                    .scan
                    .sapics
                    .iter()
                    .filter(|x| x.path.starts_with(&prefix))
                    .map(|x| x.base)
                    .collect();
                for base in &gone {
                    self.sapic_sizes.remove(base);
                }
                let fresh = crate::acpi::scan(p);
                self.scan.bridges = fresh.bridges;
                self.scan.sapics = fresh.sapics;
                self.scan.slots = fresh.slots;
                Out::Done(t, "IO SAPIC and host bridges forgotten".into())
            }
            PciStep::PowerOn
            | PciStep::Scan
            | PciStep::Assign
            | PciStep::RouteIrq
            | PciStep::Probe
            | PciStep::Quiesce
            | PciStep::FreeIrq
            | PciStep::FreeBuffers
            | PciStep::Release
            | PciStep::PowerOff => Out::Done(t, "not a subsystem step".into()),
        }
    }

    /// Masks or unmasks the IO SAPIC entry of interrupt `desc` as hardware CPU `hw` (its
    /// vector and destination as routed).
    pub(crate) fn set_irq_masked(
        &mut self,
        t: &mut SimTime,
        hw: sim_core::CpuId,
        desc: &IrqDesc,
        masked: bool,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let dest = self.pcpu[desc.target.index()].lsapic;
        irq::program_rte(
            p,
            probe,
            t,
            hw,
            desc.sapic_base,
            desc.entry,
            desc.vector,
            dest,
            masked,
        );
    }

    /// Routes card `k`'s INTA: `_PRT` → GSI → its IO SAPIC's entry, a vector (the one a
    /// freed descriptor of the same GSI had, if any), a target CPU read from the online map
    /// under RCU; the entry is programmed by `by`, masked if `masked`. Returns the
    /// descriptor.
    pub(crate) fn route_irq(
        &mut self,
        t: &mut SimTime,
        k: usize,
        by: LogicalCpu,
        masked: bool,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<usize, String> {
        let gsi = self.driver.cards()[k].gsi;
        let hw = self.hw(by);
        let sizes = self.sapic_sizes.clone();
        let (base, entry) = self
            .scan
            .sapic_of(gsi, |b| sizes.get(&b).copied().unwrap_or(0))
            .map(|(s, e)| (s.base, e))
            .ok_or_else(|| format!("no IO SAPIC serves gsi{gsi}"))?;
        let reuse = self.irqs.freed_of(gsi);
        let vector = match reuse {
            Some(d) => self.irqs.descs()[d].vector,
            None => self
                .irqs
                .alloc_vector()
                .ok_or_else(|| format!("no interrupt vector left for gsi{gsi}"))?,
        };
        // Spread IRQs over the online CPUs (reading the map under RCU).
        let v = self.reader_begin(t, by, "irq affinity", p, probe);
        let online: Vec<LogicalCpu> = self.maps_version(v).online.iter().collect();
        let target = online[self.irqs.live() % online.len().max(1)];
        self.reader_use(t, by, v, target, p, probe);
        self.reader_end(*t, by);
        let dest = self.pcpu[target.index()].lsapic;
        irq::program_rte(p, probe, t, hw, base, entry, vector, dest, masked);
        let desc = IrqDesc {
            gsi,
            vector,
            sapic_base: base,
            entry,
            affinity: self.possible.clone(),
            target,
            card: k,
            handled: 0,
            rerouted: 0,
            freed: false,
            unhandled: 0,
        };
        let d = match reuse {
            Some(d) => {
                if let Some(x) = self.irqs.get_mut(d) {
                    let handled = x.handled;
                    *x = IrqDesc { handled, ..desc };
                }
                d
            }
            None => self.irqs.add(desc),
        };
        self.emit(
            *t,
            OsEvent::IrqRouted {
                gsi,
                vector,
                cpu: target,
                from: None,
            },
        );
        Ok(d)
    }
}
