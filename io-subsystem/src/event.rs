//! What the I/O hardware reports, and the environment it runs in.

use std::fmt;

use serde::Serialize;
use sim_core::trace::{ArgValue, Phase, Track};
use sim_core::{
    Bdf, Delivery, DmaPort, Entity, Gsi, InterruptPort, IoSubsystemId, LsapicId, SimTime, SlotId,
    StableHash, StableHasher, TraceEvent, TraceLevel, TraceRecord,
};

use crate::device::DeviceId;
use crate::fabric::IoFabric;
use crate::state::{SubsystemEvent, SubsystemState};

/// Which address space an access used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// Memory-mapped I/O.
    Mmio,
    /// PCI configuration space (SAL_PCI_CONFIG_READ/WRITE).
    Config,
    /// I/O ports.
    Port,
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Space::Mmio => "MMIO",
            Space::Config => "config",
            Space::Port => "I/O port",
        })
    }
}

/// What an access reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IoTarget {
    /// A card (possibly one that is no longer there).
    Device(DeviceId, Bdf),
    /// An IO SAPIC's registers.
    Sapic(IoSubsystemId),
    /// A cell's chipset function (its Cell Configuration Space).
    Chipset(u16),
    /// Nothing at all.
    Nothing,
}

/// How an access ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IoOutcome {
    /// The target answered.
    Ok,
    /// No device decodes the address (reads return all-ones).
    Unclaimed,
    /// The I/O subsystem owning the address is absent or powered off.
    SubsystemDown,
    /// The target's slot is powered off.
    PoweredOff,
    /// The card was pulled out of its slot.
    Removed,
    /// The cell owning the chipset function is not present.
    CellAbsent,
}

impl fmt::Display for IoOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOutcome::Ok => "ok",
            IoOutcome::Unclaimed => "nothing decodes it",
            IoOutcome::SubsystemDown => "its I/O subsystem is down",
            IoOutcome::PoweredOff => "its slot is powered off",
            IoOutcome::Removed => "the card was removed",
            IoOutcome::CellAbsent => "its cell is not present",
        })
    }
}

/// A part of the I/O fabric named by a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IoScope {
    /// One hot-plug slot (and the card in it).
    Slot(SlotId),
    /// A whole I/O subsystem (its slots, cards and IO SAPIC).
    Subsystem(IoSubsystemId),
}

impl fmt::Display for IoScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoScope::Slot(s) => write!(f, "slot {}", s.0),
            IoScope::Subsystem(s) => write!(f, "{s}"),
        }
    }
}

/// Everything the I/O hardware reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoEvent {
    /// A CPU (or firmware) access to MMIO, configuration space or I/O ports.
    Access {
        /// Space used.
        space: Space,
        /// Who accessed.
        agent: Entity,
        /// MMIO address, port, or configuration register offset.
        addr: u64,
        /// The function addressed, for configuration accesses.
        bdf: Option<Bdf>,
        /// Write or read.
        write: bool,
        /// Value written or read.
        value: u64,
        /// What it reached.
        target: IoTarget,
        /// How it ended.
        outcome: IoOutcome,
    },
    /// A source changed the level of its interrupt line.
    Line {
        /// Subsystem of the line.
        subsystem: IoSubsystemId,
        /// The line.
        gsi: Gsi,
        /// Who drives it.
        source: Entity,
        /// New level.
        asserted: bool,
    },
    /// A redirection entry was written.
    SapicProgram {
        /// The subsystem.
        subsystem: IoSubsystemId,
        /// Entry number.
        entry: u16,
        /// Who wrote it.
        agent: Entity,
        /// Vector after the write.
        vector: u8,
        /// Destination after the write.
        dest: LsapicId,
        /// Masked after the write.
        masked: bool,
    },
    /// An entry sent an interrupt message.
    SapicDeliver {
        /// The subsystem.
        subsystem: IoSubsystemId,
        /// Entry number.
        entry: u16,
        /// Its GSI.
        gsi: Gsi,
        /// Vector.
        vector: u8,
        /// Destination.
        dest: LsapicId,
        /// What the local SAPIC did with it.
        delivery: Delivery,
        /// The entry was masked when it delivered (only a defect does that).
        masked: bool,
        /// The entry was already in service (remote IRR set) when it delivered (a defect).
        was_in_service: bool,
    },
    /// An input was asserted while its entry was masked: held for unmask.
    SapicHeld {
        /// The subsystem.
        subsystem: IoSubsystemId,
        /// Entry number.
        entry: u16,
        /// Its GSI.
        gsi: Gsi,
    },
    /// An edge arrived on a masked edge-triggered entry and was dropped.
    SapicEdgeLost {
        /// The subsystem.
        subsystem: IoSubsystemId,
        /// Entry number.
        entry: u16,
        /// Its GSI.
        gsi: Gsi,
    },
    /// Software wrote the EOI register.
    SapicEoi {
        /// The subsystem.
        subsystem: IoSubsystemId,
        /// Who wrote it.
        agent: Entity,
        /// The vector.
        vector: u8,
        /// Entries whose remote IRR it cleared.
        cleared: u16,
    },
    /// A card's DMA failed (the address it was given is not memory).
    DmaFault {
        /// The card.
        device: DeviceId,
        /// Its address.
        bdf: Bdf,
        /// Target address.
        addr: u64,
        /// What went wrong.
        reason: String,
    },
    /// A slot's power changed.
    SlotPower {
        /// The slot.
        slot: SlotId,
        /// Powered after the change.
        on: bool,
    },
    /// A card went into or out of a slot.
    Card {
        /// The slot.
        slot: SlotId,
        /// The card.
        device: DeviceId,
        /// Inserted (true) or removed.
        inserted: bool,
        /// Removed while powered.
        surprise: bool,
    },
    /// An I/O subsystem changed state.
    Subsystem {
        /// The subsystem.
        subsystem: IoSubsystemId,
        /// What happened.
        event: SubsystemEvent,
        /// Before.
        from: SubsystemState,
        /// After.
        to: SubsystemState,
        /// The cards that were running when it went down: non-empty for a surprise (the
        /// subsystem pulled or switched off under working cards, software not asked).
        lost: Box<[DeviceId]>,
    },
    /// Firmware's notification about a slot or an I/O subsystem (a bus check, device check or
    /// eject request) reached software: from now on software knows to look.
    Announced {
        /// What it was about.
        scope: IoScope,
    },
    /// A cell's chipset function appeared or disappeared with its cell.
    Chipset {
        /// The cell.
        cell: u16,
        /// Present after the change.
        present: bool,
    },
    /// Someone pressed a slot's attention button.
    AttentionButton {
        /// The slot.
        slot: SlotId,
    },
}

fn ent(h: &mut StableHasher, e: &Entity) {
    h.str(&e.to_string());
}

fn target_word(t: &IoTarget) -> u64 {
    match t {
        IoTarget::Device(d, _) => 1 << 32 | u64::from(d.0),
        IoTarget::Sapic(s) => 2 << 32 | u64::from(s.0),
        IoTarget::Chipset(c) => 3 << 32 | u64::from(*c),
        IoTarget::Nothing => 4 << 32,
    }
}

fn delivery_word(d: Delivery) -> u64 {
    match d {
        Delivery::Accepted(c) => 1 << 32 | u64::from(c.0),
        Delivery::NotRunning(c) => 2 << 32 | u64::from(c.0),
        Delivery::NoSuchCpu => 3 << 32,
    }
}

fn bdf_word(b: &Bdf) -> u64 {
    u64::from(b.segment) << 24
        | u64::from(b.bus) << 16
        | u64::from(b.device) << 8
        | u64::from(b.function)
}

impl StableHash for IoEvent {
    fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            IoEvent::Access {
                space,
                agent,
                addr,
                bdf,
                write,
                value,
                target,
                outcome,
            } => {
                h.word(
                    0x100
                        | (*space as u64) << 8
                        | u64::from(*write) << 16
                        | (*outcome as u64) << 24,
                );
                ent(h, agent);
                h.word(*addr);
                h.word(bdf.as_ref().map_or(u64::MAX, bdf_word));
                h.word(*value);
                h.word(target_word(target));
            }
            IoEvent::Line {
                subsystem,
                gsi,
                source,
                asserted,
            } => {
                h.word(
                    0x101
                        | u64::from(*asserted) << 8
                        | u64::from(subsystem.0) << 16
                        | u64::from(gsi.0) << 32,
                );
                ent(h, source);
            }
            IoEvent::SapicProgram {
                subsystem,
                entry,
                agent,
                vector,
                dest,
                masked,
            } => {
                h.word(
                    0x102
                        | u64::from(*masked) << 8
                        | u64::from(subsystem.0) << 16
                        | u64::from(*entry) << 32,
                );
                ent(h, agent);
                h.word(u64::from(*vector) | u64::from(dest.physical()) << 8);
            }
            IoEvent::SapicDeliver {
                subsystem,
                entry,
                gsi,
                vector,
                dest,
                delivery,
                masked,
                was_in_service,
            } => {
                h.word(
                    0x103
                        | u64::from(*masked) << 8
                        | u64::from(*was_in_service) << 9
                        | u64::from(subsystem.0) << 16
                        | u64::from(*entry) << 32,
                );
                h.word(
                    u64::from(gsi.0) | u64::from(*vector) << 32 | u64::from(dest.physical()) << 40,
                );
                h.word(delivery_word(*delivery));
            }
            IoEvent::SapicHeld {
                subsystem,
                entry,
                gsi,
            } => {
                h.word(0x104 | u64::from(subsystem.0) << 16 | u64::from(*entry) << 32);
                h.word(u64::from(gsi.0));
            }
            IoEvent::SapicEdgeLost {
                subsystem,
                entry,
                gsi,
            } => {
                h.word(0x105 | u64::from(subsystem.0) << 16 | u64::from(*entry) << 32);
                h.word(u64::from(gsi.0));
            }
            IoEvent::SapicEoi {
                subsystem,
                agent,
                vector,
                cleared,
            } => {
                h.word(
                    0x106
                        | u64::from(*vector) << 8
                        | u64::from(subsystem.0) << 16
                        | u64::from(*cleared) << 32,
                );
                ent(h, agent);
            }
            IoEvent::DmaFault {
                device,
                bdf,
                addr,
                reason,
            } => {
                h.word(0x107 | u64::from(device.0) << 32);
                h.word(bdf_word(bdf));
                h.word(*addr);
                h.str(reason);
            }
            IoEvent::SlotPower { slot, on } => {
                h.word(0x108 | u64::from(*on) << 8 | u64::from(slot.0) << 16);
            }
            IoEvent::Card {
                slot,
                device,
                inserted,
                surprise,
            } => {
                h.word(
                    0x109
                        | u64::from(*inserted) << 8
                        | u64::from(*surprise) << 9
                        | u64::from(slot.0) << 16
                        | u64::from(device.0) << 32,
                );
            }
            IoEvent::Subsystem {
                subsystem,
                event,
                from,
                to,
                lost,
            } => {
                h.word(
                    0x10A
                        | (*event as u64) << 8
                        | (*from as u64) << 12
                        | (*to as u64) << 16
                        | u64::from(subsystem.0) << 32,
                );
                h.word(lost.len() as u64);
                for d in lost.iter() {
                    h.word(u64::from(d.0));
                }
            }
            IoEvent::Announced { scope } => match scope {
                IoScope::Slot(s) => h.word(0x10D | u64::from(s.0) << 16),
                IoScope::Subsystem(s) => h.word(0x20D | u64::from(s.0) << 16),
            },
            IoEvent::Chipset { cell, present } => {
                h.word(0x10B | u64::from(*present) << 8 | u64::from(*cell) << 16);
            }
            IoEvent::AttentionButton { slot } => {
                h.word(0x10C | u64::from(slot.0) << 16);
            }
        }
    }
}

fn t(group: &'static str, index: u32) -> Track {
    Track { group, index }
}

impl TraceEvent for IoEvent {
    fn level(&self) -> TraceLevel {
        match self {
            IoEvent::Access { .. }
            | IoEvent::Line { .. }
            | IoEvent::SapicDeliver { .. }
            | IoEvent::SapicEoi { .. }
            | IoEvent::SapicHeld { .. } => TraceLevel::Detail,
            IoEvent::SapicProgram { .. }
            | IoEvent::SapicEdgeLost { .. }
            | IoEvent::DmaFault { .. }
            | IoEvent::SlotPower { .. }
            | IoEvent::Card { .. }
            | IoEvent::Subsystem { .. }
            | IoEvent::Announced { .. }
            | IoEvent::Chipset { .. }
            | IoEvent::AttentionButton { .. } => TraceLevel::Info,
        }
    }

    fn to_record(&self, time: SimTime) -> TraceRecord {
        let (track, name, args): (Track, String, Vec<(&'static str, ArgValue)>) = match self {
            IoEvent::Access {
                space,
                agent,
                addr,
                bdf,
                write,
                value,
                outcome,
                ..
            } => (
                t("io", 0),
                format!("{space} {}", if *write { "write" } else { "read" }),
                vec![
                    ("agent", agent.to_string().into()),
                    ("addr", format!("{addr:#x}").into()),
                    ("bdf", bdf.map_or(String::new(), |b| b.to_string()).into()),
                    ("value", format!("{value:#x}").into()),
                    ("outcome", outcome.to_string().into()),
                ],
            ),
            IoEvent::Line {
                subsystem,
                gsi,
                source,
                asserted,
            } => (
                t("iosapic", u32::from(subsystem.0)),
                format!(
                    "{gsi} {}",
                    if *asserted { "asserted" } else { "deasserted" }
                ),
                vec![("source", source.to_string().into())],
            ),
            IoEvent::SapicProgram {
                subsystem,
                entry,
                agent,
                vector,
                dest,
                masked,
            } => (
                t("iosapic", u32::from(subsystem.0)),
                format!("program entry {entry}"),
                vec![
                    ("agent", agent.to_string().into()),
                    ("vector", format!("{vector:#04x}").into()),
                    ("dest", dest.to_string().into()),
                    ("masked", (*masked).into()),
                ],
            ),
            IoEvent::SapicDeliver {
                subsystem,
                gsi,
                vector,
                dest,
                delivery,
                ..
            } => (
                t("iosapic", u32::from(subsystem.0)),
                format!("deliver {gsi}"),
                vec![
                    ("vector", format!("{vector:#04x}").into()),
                    ("dest", dest.to_string().into()),
                    ("delivery", format!("{delivery:?}").into()),
                ],
            ),
            IoEvent::SapicHeld { subsystem, gsi, .. } => (
                t("iosapic", u32::from(subsystem.0)),
                format!("{gsi} held (masked)"),
                vec![],
            ),
            IoEvent::SapicEdgeLost { subsystem, gsi, .. } => (
                t("iosapic", u32::from(subsystem.0)),
                format!("{gsi} edge lost (masked)"),
                vec![],
            ),
            IoEvent::SapicEoi {
                subsystem,
                vector,
                cleared,
                ..
            } => (
                t("iosapic", u32::from(subsystem.0)),
                format!("eoi {vector:#04x}"),
                vec![("cleared", u64::from(*cleared).into())],
            ),
            IoEvent::DmaFault {
                bdf, addr, reason, ..
            } => (
                t("io", 0),
                "dma fault".into(),
                vec![
                    ("bdf", bdf.to_string().into()),
                    ("addr", format!("{addr:#x}").into()),
                    ("reason", reason.as_str().into()),
                ],
            ),
            IoEvent::SlotPower { slot, on } => (
                t("slot", u32::from(slot.0)),
                if *on { "power on" } else { "power off" }.into(),
                vec![],
            ),
            IoEvent::Card {
                slot,
                device,
                inserted,
                surprise,
            } => (
                t("slot", u32::from(slot.0)),
                if *inserted {
                    "card inserted"
                } else {
                    "card removed"
                }
                .into(),
                vec![
                    ("device", u64::from(device.0).into()),
                    ("surprise", (*surprise).into()),
                ],
            ),
            IoEvent::Subsystem {
                subsystem,
                event,
                from,
                to,
                lost,
            } => (
                t("iosub", u32::from(subsystem.0)),
                format!("{event}: {from} -> {to}"),
                vec![("cards_lost", (lost.len() as u64).into())],
            ),
            IoEvent::Announced { scope } => (
                match scope {
                    IoScope::Slot(s) => t("slot", u32::from(s.0)),
                    IoScope::Subsystem(s) => t("iosub", u32::from(s.0)),
                },
                "notification taken".into(),
                vec![("scope", scope.to_string().into())],
            ),
            IoEvent::Chipset { cell, present } => (
                t("cell", u32::from(*cell)),
                if *present {
                    "chipset function present"
                } else {
                    "chipset function gone"
                }
                .into(),
                vec![],
            ),
            IoEvent::AttentionButton { slot } => (
                t("slot", u32::from(slot.0)),
                "attention button".into(),
                vec![],
            ),
        };
        TraceRecord {
            time,
            track,
            category: "io",
            name: name.into(),
            phase: Phase::Instant,
            args,
        }
    }
}

/// Receives every I/O event with a view of the fabric after it took effect.
pub trait IoObserver {
    /// Called once per event, in order.
    fn io_event(&mut self, now: SimTime, event: &IoEvent, io: &IoFabric);
}

/// Everything the I/O hardware needs from the platform: coherent DMA into memory, interrupt
/// delivery to CPUs, and someone to tell what happened.
pub trait IoEnv: DmaPort + InterruptPort + IoObserver {}

impl<T: DmaPort + InterruptPort + IoObserver> IoEnv for T {}
