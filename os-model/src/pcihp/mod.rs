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

mod slot;
mod subsystem;

use crate::hw::Cx;
use acpi_model::NotifyId;
use serde::Serialize;
use sim_core::window::WindowAllocator;
use sim_core::{Bdf, SimDuration, SimTime, SlotId};
use thiserror::Error;

use crate::driver::CardDriver;
use crate::hotplug::{Accepted, CpuFlow, Trigger};
use crate::kernel::Os;
use crate::mm::kernel::Mm;
use crate::ops::{Begun, Engine, Flow, FlowKind, Next, Op, OpTarget, OstStatus, Report};

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
        /// The slot's `_SUN` (numbered from 1).
        slot: u16,
    },
    /// Nothing answers in the slot once powered.
    #[error("slot {slot}: no card answers at {bdf} after power-on")]
    NoDevice {
        /// The slot's `_SUN` (numbered from 1).
        slot: u16,
        /// Where it was looked for.
        bdf: Bdf,
    },
    /// A BAR does not fit in the bridge's window.
    #[error(
        "slot {slot}: the {what} window of {bridge} has no room for a {size:#x}-byte BAR: {why}"
    )]
    NoSpace {
        /// The slot's `_SUN` (numbered from 1).
        slot: u16,
        /// `MMIO` or `I/O`.
        what: &'static str,
        /// The host bridge's ACPI path.
        bridge: String,
        /// BAR size.
        size: u64,
        /// The allocator's word.
        why: String,
    },
    /// No interrupt route or vector.
    #[error("slot {slot}: {why}")]
    NoIrq {
        /// The slot's `_SUN` (numbered from 1).
        slot: u16,
        /// Why, in words.
        why: String,
    },
    /// Kernel memory for the DMA ring ran out.
    #[error("slot {slot}: no memory for the DMA ring ({bytes} bytes)")]
    NoMemory {
        /// The slot's `_SUN` (numbered from 1).
        slot: u16,
        /// Bytes of ring asked for.
        bytes: u64,
    },
    /// The driver could not bring the card up.
    #[error("slot {slot}: the driver's probe failed: {why}")]
    Probe {
        /// The slot's `_SUN` (numbered from 1).
        slot: u16,
        /// Why, in words.
        why: String,
    },
    /// The path names no I/O subsystem.
    #[error("{path} is not an I/O subsystem's module device")]
    NoSuchSubsystem {
        /// The ACPI device path (`\_SB_.CL03`).
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
    /// The I/O subsystem to add is not there any more (ejected or pulled out before the add
    /// ran): nothing to add.
    #[error("{path} is not present (it went before the add ran): nothing to add")]
    SubsystemGone {
        /// The module device.
        path: String,
    },
    /// The slot holds the kernel's disk, and it is in use.
    #[error(
        "slot {slot}: the card is the kernel's disk, in use ({files} files, {swap_used} pages \
         in swap, {in_flight} transfers in flight)"
    )]
    DiskInUse {
        /// The slot's `_SUN` (numbered from 1).
        slot: u16,
        /// Files on it.
        files: u32,
        /// Swap slots in use.
        swap_used: usize,
        /// Transfers it has not finished.
        in_flight: usize,
    },
    /// The slot's I/O subsystem is not in the machine (as far as the OS knows).
    #[error("slot {slot}: its I/O subsystem ({bridge}) is not present")]
    SubsystemAbsent {
        /// The slot's `_SUN` (numbered from 1).
        slot: u16,
        /// Its host bridge.
        bridge: String,
    },
    /// Boot is still bringing CPUs up (the slots are not registered yet).
    #[error("slot {slot}: boot has not finished (secondary CPUs are still being brought up)")]
    Booting {
        /// The slot's `_SUN` (numbered from 1).
        slot: u16,
    },
    /// A firmware method failed.
    #[error("slot {slot}: {method} failed: {why}")]
    Firmware {
        /// The slot's `_SUN` (numbered from 1).
        slot: u16,
        /// The method (`_PS0`, `_PS3`, `_EJ0`).
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
            | PciError::DiskInUse { .. }
            | PciError::Booting { .. } => "EBUSY",
            PciError::NotEnabled { .. }
            | PciError::NoDevice { .. }
            | PciError::SubsystemGone { .. }
            | PciError::SubsystemAbsent { .. } => "ENODEV",
            PciError::NoSpace { .. } | PciError::NoIrq { .. } => "ENOSPC",
            PciError::NoMemory { .. } => "ENOMEM",
            PciError::Probe { .. } | PciError::Firmware { .. } => "EIO",
        }
    }

    /// The `_OST` status. (This flow answers 0x81 for a slot or subsystem that is not
    /// there or not enabled, and 0x80 for a failed enable, where the CPU and memory flows
    /// answer 0x80 for what does not exist: kept as it was, since firmware's record of
    /// `_OST` is in every golden trace; see the note of issue 15.)
    pub const fn ost_status(&self) -> OstStatus {
        match self {
            PciError::NotEnabled { .. }
            | PciError::NoSuchSlot { .. }
            | PciError::NoSuchSubsystem { .. }
            | PciError::SubsystemAbsent { .. } => OstStatus::InUse,
            PciError::SubsystemBusy { .. }
            | PciError::DiskInUse { .. }
            | PciError::Booting { .. } => OstStatus::Busy,
            PciError::GsiOverlap { .. }
            | PciError::NoDevice { .. }
            | PciError::SubsystemGone { .. }
            | PciError::NoSpace { .. }
            | PciError::NoIrq { .. }
            | PciError::NoMemory { .. }
            | PciError::Probe { .. }
            | PciError::Firmware { .. } => OstStatus::NotSupported,
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

/// A PCI request as queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciRequest {
    /// What to do.
    pub kind: PciOpKind,
    /// On what.
    pub target: PciTarget,
    /// Who asked.
    pub trigger: Trigger,
    /// When.
    pub requested: SimTime,
    /// The firmware notification that asked, if one did.
    pub cause: Option<NotifyId>,
}

/// What a PCI operation's report records beyond the common fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PciOpDetail {
    /// On what.
    pub target: PciTarget,
}

/// The report of one PCI operation.
pub type PciOpReport = Report<PciFlow>;
/// One finished step of a PCI operation.
pub type PciStepRecord = crate::ops::StepRecord<PciStep>;

/// PCI slot and I/O-subsystem operations as an engine flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciFlow {}

/// The running PCI operation's working state.
#[derive(Clone, Debug, Default)]
pub struct PciState {
    /// The slot (index in [`PciHotplug::slots`]) of a slot operation.
    slot: Option<usize>,
    /// The slot was powered by this operation (undo powers it off).
    powered: bool,
    /// The card was found gone (surprise removal): it is not touched any more.
    gone: bool,
}

/// PCI steps never wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciWait {}

crate::ops::flow_names!(PciOpKind, PciStep, PciError);

impl Flow for PciFlow {
    type Kind = PciOpKind;
    type Step = PciStep;
    type Error = PciError;
    type Detail = PciOpDetail;
    const KIND: FlowKind = FlowKind::Pci;
    const RECORD_FAILED_STEP: bool = true;
    type Host = Os;
    type Request = PciRequest;
    type Wait = PciWait;
    type State = PciState;

    fn engine(os: &Os) -> &Engine<Self> {
        &os.pcihp.ops
    }

    fn engine_mut(os: &mut Os) -> &mut Engine<Self> {
        &mut os.pcihp.ops
    }

    fn begin(os: &mut Os, now: SimTime, id: u32, r: &PciRequest) -> Begun<Self> {
        let slot = r
            .target
            .slot()
            .and_then(|sun| os.pcihp.slots.iter().position(|s| s.sun == sun));
        let controller = os.cur_maps().online.first().unwrap_or(os.boot_cpu());
        Begun {
            report: Report {
                id,
                kind: r.kind,
                trigger: r.trigger,
                controller,
                requested: r.requested,
                cause: r.cause,
                started: now,
                ended: None,
                result: None,
                steps: Vec::new(),
                detail: PciOpDetail {
                    target: r.target.clone(),
                },
            },
            plan: PciFlow::plan(r.kind),
            state: PciState {
                slot,
                powered: false,
                gone: false,
            },
            refused: None,
        }
    }

    fn target(op: &Op<Self>) -> OpTarget {
        match &op.req.target {
            PciTarget::Slot(s) => OpTarget::Slot(*s),
            PciTarget::Subsystem(_) => OpTarget::Named(op.req.target.to_string()),
        }
    }

    fn refresh(os: &mut Os) {
        let Some(ctl) = os.pcihp.ops.current().map(|c| c.controller) else {
            return;
        };
        let ctl = os.live_controller(ctl, None);
        if let Some(cur) = os.pcihp.ops.running_mut() {
            cur.report.controller = ctl;
        }
    }

    fn act(os: &mut Os, now: SimTime, step: PciStep, cx: &mut Cx<'_>) -> Next<Self> {
        PciFlow::pci_act(os, now, step, cx)
    }

    fn resume(_os: &mut Os, _now: SimTime, wait: PciWait, _cx: &mut Cx<'_>) -> Option<Next<Self>> {
        match wait {}
    }

    fn hung(_op: &Op<Self>, wait: PciWait, _step: PciStep, _waited: SimDuration) -> PciError {
        // A PCI step never waits: no value of PciWait exists, so the watchdog cannot fire.
        match wait {}
    }

    /// A failed enable gives back what it took: interrupt, BARs, the card, power.
    fn undo(os: &mut Os, now: SimTime, cx: &mut Cx<'_>) -> SimTime {
        let Some(cur) = os.pcihp.ops.running() else {
            return now;
        };
        if os.has_defect(crate::config::OsDefect::SkipEnableUndo) {
            return now;
        }
        let (Some(i), ctl, powered) = (cur.state.slot, cur.report.controller, cur.state.powered)
        else {
            return now;
        };
        if cur.report.kind != PciOpKind::Enable {
            return now;
        }
        let mut t = now;
        let hw = os.hw(ctl);
        if let Some(d) = os.pcihp.slots[i].irq.take() {
            PciFlow::free_irq(os, &mut t, hw, d, false, cx);
        }
        PciFlow::pci_release_bars(os, i);
        if let Some(k) = os.pcihp.slots[i].card.take() {
            os.driver.detach(k);
        }
        if powered {
            let path = os.pcihp.slots[i].path.clone();
            let _ = os.acpi_eval(&mut t, ctl, &format!("{path}._PS3"), &[], cx);
        }
        t
    }

    fn restart_delay(_os: &Os) -> SimDuration {
        SimDuration::ZERO
    }
}

impl PciFlow {
    /// The steps of an operation of `kind`.
    fn plan(kind: PciOpKind) -> Vec<PciStep> {
        let disable = vec![
            PciStep::Quiesce,
            PciStep::FreeIrq,
            PciStep::FreeBuffers,
            PciStep::Release,
            PciStep::PowerOff,
        ];
        match kind {
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
        }
    }
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
    /// The operations.
    pub(crate) ops: Engine<PciFlow>,
}

impl PciHotplug {
    /// A word for the slots' states and what is queued and running (a refused request
    /// must not change it).
    pub(crate) fn state_word(&self) -> u64 {
        let mut h = sim_core::StableHasher::new();
        h.word(self.ops.state_word());
        for s in &self.slots {
            h.word(u64::from(s.enabled) | u64::from(s.bars.is_some()) << 1);
        }
        h.word(self.chipset.len() as u64);
        h.finish()
    }

    /// Finished operations.
    pub fn done(&self) -> &[PciOpReport] {
        self.ops.done()
    }

    /// The operation running and those queued: number and request.
    pub fn pending(&self) -> impl Iterator<Item = (u32, &PciRequest)> {
        self.ops.pending()
    }

    /// Whether nothing runs or waits.
    pub fn is_idle(&self) -> bool {
        self.ops.is_idle()
    }

    /// The slot the running operation works on.
    pub fn busy_slot(&self) -> Option<SlotId> {
        self.ops.current().and_then(|c| c.target.slot())
    }

    /// The slot with `_SUN` `sun`.
    pub fn slot(&self, sun: SlotId) -> Option<&PciSlot> {
        self.slots.iter().find(|s| s.sun == sun)
    }

    /// Whether the slot will be enabled once the queued operations ran.
    pub(crate) fn will_be_enabled(&self, i: usize) -> bool {
        let sun = PciTarget::Slot(self.slots[i].sun);
        let mut on = self.slots[i].enabled;
        for (_, r) in self.ops.pending() {
            if r.target == sun {
                on = r.kind == PciOpKind::Enable;
            }
        }
        on
    }
}

impl PciFlow {
    /// Learns the slots and the bridges' windows from the namespace scan (at boot).
    pub(crate) fn pci_init(os: &mut Os) {
        os.pcihp.bridges = os
            .scan()
            .bridges
            .iter()
            .map(|b| BridgeResources {
                path: b.path.clone(),
                mmio: WindowAllocator::new(b.mmio.0, b.mmio.1),
                io: WindowAllocator::new(b.io.0, b.io.1),
            })
            .collect();
        let mut slots: Vec<PciSlot> = os
            .scan()
            .slots
            .iter()
            .filter_map(|s| {
                let bus = os.scan().bridges.get(s.bridge)?.bus;
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
        os.pcihp.slots = slots;
    }

    /// At boot, enumeration of the card firmware configured in slot `sun`: its BARs sized
    /// and claimed in its bridge's windows (as `pci_claim_resource`). `false` if they do not
    /// fit (firmware placed them outside the window, or over another card's).
    pub(crate) fn pci_claim(os: &mut Os, t: &mut SimTime, sun: SlotId, cx: &mut Cx<'_>) -> bool {
        let Some(i) = os.pcihp.slots.iter().position(|s| s.sun == sun) else {
            return false;
        };
        let hw = os.hw(os.boot_cpu());
        let bdf = os.pcihp.slots[i].bdf;
        let ((bar, mem_size), (io_bar, io_size)) = CardDriver::size_bars(t, hw, bdf, cx);
        let br = &mut os.pcihp.bridges[os.pcihp.slots[i].bridge];
        if br.mmio.reserve(bar, mem_size).is_err() {
            return false;
        }
        if br.io.reserve(io_bar, io_size).is_err() {
            let _ = br.mmio.release(bar);
            return false;
        }
        os.pcihp.slots[i].bars = Some(((bar, mem_size), (io_bar, io_size)));
        true
    }

    /// At boot: the driver brought the card in slot `sun` up as card `k` with interrupt
    /// `irq`: the slot is enabled.
    pub(crate) fn pci_bound(os: &mut Os, sun: SlotId, k: usize, irq: Option<usize>) {
        if let Some(s) = os.pcihp.slots.iter_mut().find(|s| s.sun == sun) {
            s.enabled = true;
            s.card = Some(k);
            s.irq = irq;
        }
    }

    pub(crate) fn pci_slot_request(
        os: &mut Os,
        now: SimTime,
        sun: u16,
        kind: PciOpKind,
        trigger: Trigger,
        cause: Option<NotifyId>,
    ) -> Result<Accepted, PciError> {
        if trigger == Trigger::User && os.booted_at().is_none() {
            return Err(PciError::Booting { slot: sun });
        }
        let slots = os.pcihp.slots.len();
        let i = os
            .pcihp
            .slots
            .iter()
            .position(|s| s.sun.0 == sun)
            .ok_or(PciError::NoSuchSlot { slot: sun, slots })?;
        let on = os.pcihp.will_be_enabled(i);
        if kind == PciOpKind::Enable
            && !on
            && !PciFlow::subsystem_known(os, os.pcihp.slots[i].bridge)
        {
            return Err(PciError::SubsystemAbsent {
                slot: sun,
                bridge: os.pcihp.bridges[os.pcihp.slots[i].bridge].path.clone(),
            });
        }
        match (kind, on) {
            (PciOpKind::Enable, true) => return Ok(Accepted::NoChange),
            (PciOpKind::Disable | PciOpKind::Eject, false) => {
                return Err(PciError::NotEnabled { slot: sun });
            }
            (PciOpKind::Disable | PciOpKind::Eject, true) if trigger != Trigger::Surprise => {
                if let Some(e) = PciFlow::disk_in(os, i) {
                    return Err(e);
                }
            }
            (PciOpKind::Enable, false) | (PciOpKind::Disable | PciOpKind::Eject, true) => {}
            (PciOpKind::AddSubsystem | PciOpKind::EjectSubsystem, _) => {
                return Err(PciError::NoSuchSubsystem {
                    path: format!("slot {sun}"),
                });
            }
        }
        Ok(Accepted::Queued {
            op: PciFlow::pci_enqueue(
                os,
                now,
                kind,
                PciTarget::Slot(os.pcihp.slots[i].sun),
                trigger,
                cause,
            ),
        })
    }

    /// Queues an operation; returns its number.
    pub(crate) fn pci_enqueue(
        os: &mut Os,
        now: SimTime,
        kind: PciOpKind,
        target: PciTarget,
        trigger: Trigger,
        cause: Option<NotifyId>,
    ) -> u32 {
        let req = PciRequest {
            kind,
            target,
            trigger,
            requested: now,
            cause,
        };
        crate::ops::enqueue::<PciFlow>(os, now, req)
    }

    /// A request for slot `sun` (see [`Os::pci_request`]); `cause`: the firmware
    /// notification that asked, if one did. A refusal is recorded and changes nothing.
    pub(crate) fn request(
        os: &mut Os,
        now: SimTime,
        sun: u16,
        kind: PciOpKind,
        trigger: Trigger,
        cause: Option<NotifyId>,
    ) -> Result<Accepted, PciError> {
        let r = PciFlow::pci_slot_request(os, now, sun, kind, trigger, cause);
        if let Err(e) = &r {
            let (errno, error) = (e.errno(), e.to_string());
            CpuFlow::refuse_for(os, now, format!("slot {sun}"), errno, error, cause);
        }
        r
    }

    /// A request for the I/O subsystem whose module device is `path` (see
    /// [`Os::pci_subsystem_request`]); `cause`: the firmware notification that asked.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn subsystem_request(
        os: &mut Os,
        now: SimTime,
        path: &str,
        add: bool,
        present: bool,
        trigger: Trigger,
        cause: Option<NotifyId>,
    ) -> Result<Accepted, PciError> {
        let bridges = PciFlow::subsystem_bridges(os, path);
        if bridges.is_empty() {
            return Err(PciError::NoSuchSubsystem { path: path.into() });
        }
        let target = PciTarget::Subsystem(path.to_owned());
        // A device check on a module that is not there any more: it was pulled out.
        let add = add && present;
        // Gone, yet the OS never had it (nor is adding it): nothing to clean up.
        let adding = os
            .pcihp
            .ops
            .pending()
            .any(|(_, r)| r.kind == PciOpKind::AddSubsystem && r.target == target);
        if !add && !adding && !bridges.iter().any(|&b| PciFlow::subsystem_known(os, b)) {
            return Ok(Accepted::NoChange);
        }
        if add {
            return Ok(Accepted::Queued {
                op: PciFlow::pci_enqueue(os, now, PciOpKind::AddSubsystem, target, trigger, cause),
            });
        }
        // The kernel's disk keeps its subsystem (refused before any device stops).
        if present {
            let under = |i: &usize| bridges.contains(&os.pcihp.slots[*i].bridge);
            if let Some(e) = (0..os.pcihp.slots.len())
                .filter(under)
                .find_map(|i| PciFlow::disk_in(os, i))
            {
                return Err(e);
            }
        }
        // Each device stops before the subsystem goes.
        let slots: Vec<u16> = (0..os.pcihp.slots.len())
            .filter(|&i| bridges.contains(&os.pcihp.slots[i].bridge) && os.pcihp.will_be_enabled(i))
            .map(|i| os.pcihp.slots[i].sun.0)
            .collect();
        for sun in slots {
            PciFlow::pci_enqueue(
                os,
                now,
                PciOpKind::Disable,
                PciTarget::Slot(SlotId(sun)),
                Trigger::Subsystem,
                None,
            );
        }
        Ok(Accepted::Queued {
            op: PciFlow::pci_enqueue(os, now, PciOpKind::EjectSubsystem, target, trigger, cause),
        })
    }

    /// Whether the OS has host bridge `b` (found present at boot or by a rescan, and not
    /// forgotten since) — or an operation queued or running is adding its subsystem.
    pub(crate) fn subsystem_known(os: &Os, b: usize) -> bool {
        let Some(br) = os.scan().bridges.get(b) else {
            return false;
        };
        br.present
            || os.pcihp.ops.pending().any(|(_, r)| {
                r.kind == PciOpKind::AddSubsystem
                    && matches!(&r.target, PciTarget::Subsystem(m) if br.path.starts_with(&format!("{m}.")))
            })
    }

    /// The bridges (indices in the scan) of the I/O subsystem whose module device is `path`.
    pub(crate) fn subsystem_bridges(os: &Os, path: &str) -> Vec<usize> {
        let prefix = format!("{path}.");
        (0..os.scan().bridges.len())
            .filter(|&b| os.scan().bridges[b].path.starts_with(&prefix))
            .collect()
    }

    /// The driver found card `k` gone (it answered all-ones): the kernel cleans up after
    /// the surprise removal — the slot is disabled without touching the card again.
    pub(crate) fn pci_card_gone(os: &mut Os, now: SimTime, k: usize) {
        Mm::disk_gone(os, now, k);
        let Some(sun) = os
            .pcihp
            .slots
            .iter()
            .find(|s| s.card == Some(k) && s.enabled)
            .map(|s| s.sun.0)
        else {
            return;
        };
        let _ = os.pci_request(now, sun, PciOpKind::Disable, Trigger::Surprise);
    }

    /// Why slot `i` cannot be disabled, if its card is the kernel's disk (and has not gone)
    /// and holds something: files, pages in swap, transfers in flight. An empty disk can go
    /// (its swap area is switched off first).
    pub(crate) fn disk_in(os: &Os, i: usize) -> Option<PciError> {
        let vm = os.vm.as_ref()?;
        let d = vm.disk.as_ref().filter(|d| !d.gone)?;
        let busy = d.layout.files > 0 || vm.swap.used() > 0 || !vm.io.is_empty();
        (os.pcihp.slots[i].card == Some(d.card) && busy).then(|| PciError::DiskInUse {
            slot: os.pcihp.slots[i].sun.0,
            files: d.layout.files,
            swap_used: vm.swap.used(),
            in_flight: vm.io.len(),
        })
    }

    /// Gives slot `i`'s BARs back to its bridge's windows.
    pub(crate) fn pci_release_bars(os: &mut Os, i: usize) -> bool {
        let s = &mut os.pcihp.slots[i];
        let Some(((bar, _), (io_bar, _))) = s.bars.take() else {
            return false;
        };
        let br = &mut os.pcihp.bridges[s.bridge];
        let _ = br.mmio.release(bar);
        let _ = br.io.release(io_bar);
        true
    }
}
