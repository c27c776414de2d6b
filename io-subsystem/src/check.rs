//! The I/O checkers.
//!
//! * [`IoAccessChecker`] — **CHK-1**, I/O side: every MMIO, configuration or port access that
//!   reaches a removed card, a powered-off slot, a dead subsystem, an absent cell's chipset
//!   function or nothing at all is a violation naming the agent and the target. The one
//!   exemption is a configuration read of the vendor/device id register: that is how software
//!   probes for a device. A card DMA-ing to an address that is not memory is reported too.
//!   In a surprise removal (a card pulled from a powered slot, a subsystem lost under running
//!   cards) some accesses are unavoidable: the first read, which finds the target gone (it
//!   returns all-ones), and the posted writes before it, which tell software nothing. Those
//!   are counted ([`DISCOVERIES`]), not reported; every later access is — after a read
//!   already found the target gone, or after firmware's notification about its slot or
//!   subsystem reached software.
//! * [`IrqChecker`] — **CHK-6**, I/O side: an IO SAPIC delivers an asserted level interrupt
//!   exactly once until its EOI, never while masked; an EOI clears remote IRR; at audits, no
//!   asserted, unmasked entry is left undelivered, no level entry stays in service (remote
//!   IRR set) longer than [`REMOTE_IRR_BOUND`] after the delivery the checker saw start it,
//!   and every card's line reaches its entry.
//! * [`ResourceChecker`] — **CHK-7**: the BARs every working card decodes never overlap, and
//!   each lies inside its bridge's window; the bridges' windows never overlap.

use std::collections::BTreeMap;

use sim_core::{CheckerId, Entity, IoSubsystemId, SimTime, SlotId, Violation, Violations};

use crate::device::Device;
use crate::event::{IoEvent, IoOutcome, IoScope, IoTarget, Space};
use crate::fabric::IoFabric;
use crate::pci::{BarKind, ConfigSpace, reg};

/// CHK-1 (I/O side).
pub const CHK_IO_ACCESS: CheckerId = CheckerId {
    code: "CHK-1",
    name: "no-access-after-remove",
};
/// CHK-6 (I/O side).
pub const CHK_IO_IRQ: CheckerId = CheckerId {
    code: "CHK-6",
    name: "interrupts",
};
/// CHK-7.
pub const CHK_RESOURCES: CheckerId = CheckerId {
    code: "CHK-7",
    name: "resources",
};

fn push(
    out: &mut Violations,
    now: SimTime,
    checker: CheckerId,
    agent: Entity,
    target: Entity,
    message: String,
) {
    out.push(Violation {
        time: now,
        checker,
        agent,
        target,
        message,
    });
}

fn target_entity(t: &IoTarget, addr: u64) -> Entity {
    match t {
        IoTarget::Device(_, bdf) => Entity::Pci(*bdf),
        IoTarget::Sapic(s) => Entity::IoSapic(*s),
        IoTarget::Chipset(c) => Entity::Cell(sim_core::CellId(*c)),
        IoTarget::Nothing => Entity::Unclaimed(addr),
    }
}

/// A target software lost without being asked (a surprise removal), and whether it knows.
#[derive(Clone, Copy, Debug)]
struct Lost {
    slot: Option<SlotId>,
    subsystem: IoSubsystemId,
    /// When and how software found out: the first access that found it gone, or the
    /// notification firmware gave it.
    known: Option<(SimTime, Knew)>,
}

#[derive(Clone, Copy, Debug)]
enum Knew {
    Found(Entity),
    Told,
}

/// The name under which [`IoAccessChecker`] counts the accesses that discovered a surprise
/// removal ([`Violations::tally`]).
pub const DISCOVERIES: &str = "surprise discoveries";

/// CHK-1, I/O side (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct IoAccessChecker {
    /// Cards and IO SAPICs removed by surprise, by target.
    lost: BTreeMap<LostKey, Lost>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LostKey {
    Card(u32),
    Sapic(u16),
}

impl IoAccessChecker {
    fn key(target: &IoTarget) -> Option<LostKey> {
        match target {
            IoTarget::Device(d, _) => Some(LostKey::Card(d.0)),
            IoTarget::Sapic(s) => Some(LostKey::Sapic(s.0)),
            IoTarget::Chipset(_) | IoTarget::Nothing => None,
        }
    }

    /// Whether a failed access to `target` is the one that discovers its surprise removal
    /// (recorded, not reported); otherwise what software already knew, for the message.
    /// A read is what finds a target gone (it returns all-ones); a write is posted and tells
    /// its issuer nothing, so writes before the first such read are unavoidable too.
    fn discovery(
        &mut self,
        now: SimTime,
        agent: Entity,
        target: &IoTarget,
        write: bool,
    ) -> Result<(), String> {
        let Some(l) = Self::key(target).and_then(|k| self.lost.get_mut(&k)) else {
            return Err(String::new());
        };
        match l.known {
            None => {
                if !write {
                    l.known = Some((now, Knew::Found(agent)));
                }
                Ok(())
            }
            Some((t, Knew::Found(who))) => Err(format!(" (after {who} found it gone at {t})")),
            Some((t, Knew::Told)) => Err(format!(" (after software was told at {t})")),
        }
    }
}

impl sim_core::Checker<IoEvent, IoFabric> for IoAccessChecker {
    fn id(&self) -> CheckerId {
        CHK_IO_ACCESS
    }

    fn observe(&mut self, now: SimTime, ev: &IoEvent, io: &IoFabric, out: &mut Violations) {
        match ev {
            IoEvent::Access {
                space,
                agent,
                addr,
                bdf,
                write,
                target,
                outcome,
                ..
            } => {
                let probe = *space == Space::Config && !*write && *addr == u64::from(reg::ID);
                if *outcome == IoOutcome::Ok {
                    return;
                }
                let found = self.discovery(now, *agent, target, *write);
                if probe {
                    // How software looks for a device: never reported, but it found out.
                    return;
                }
                let after = match found {
                    Ok(()) => {
                        out.tally(CHK_IO_ACCESS, DISCOVERIES);
                        return;
                    }
                    Err(after) => after,
                };
                let what = match (space, bdf) {
                    (Space::Config, Some(b)) => {
                        format!("config {} of {b} offset {addr:#x}", rw(*write))
                    }
                    (Space::Config, None) | (Space::Mmio, _) | (Space::Port, _) => {
                        format!("{space} {} of {addr:#x}", rw(*write))
                    }
                };
                let tgt = match target {
                    IoTarget::Device(d, b) => {
                        let slot = io
                            .device(*d)
                            .map_or(String::new(), |x| format!(" in slot {}", x.slot.0));
                        format!("pci {b}{slot}")
                    }
                    IoTarget::Sapic(s) => format!("the IO SAPIC of {s}"),
                    IoTarget::Chipset(c) => format!("the chipset function of cell{c}"),
                    IoTarget::Nothing => "no device".into(),
                };
                push(
                    out,
                    now,
                    CHK_IO_ACCESS,
                    *agent,
                    target_entity(target, *addr),
                    format!("{what} by {agent} reached {tgt}: {outcome}{after}"),
                );
            }
            IoEvent::DmaFault {
                bdf, addr, reason, ..
            } => {
                push(
                    out,
                    now,
                    CHK_IO_ACCESS,
                    Entity::Pci(*bdf),
                    Entity::Unclaimed(*addr),
                    format!("DMA by pci {bdf} to {addr:#x} failed: {reason}"),
                );
            }
            IoEvent::Card {
                slot,
                device,
                inserted: false,
                surprise: true,
            } => {
                let subsystem = io.device(*device).map_or(IoSubsystemId(0), |d| d.subsystem);
                self.lost.insert(
                    LostKey::Card(device.0),
                    Lost {
                        slot: Some(*slot),
                        subsystem,
                        known: None,
                    },
                );
            }
            IoEvent::Subsystem {
                subsystem, lost, ..
            } => {
                if lost.is_empty() {
                    if io
                        .subsystem(*subsystem)
                        .is_some_and(|s| s.state.is_powered())
                    {
                        self.lost.remove(&LostKey::Sapic(subsystem.0));
                    }
                    return;
                }
                let mut add = |k, slot| {
                    self.lost.entry(k).or_insert(Lost {
                        slot,
                        subsystem: *subsystem,
                        known: None,
                    });
                };
                add(LostKey::Sapic(subsystem.0), None);
                for d in lost.iter() {
                    add(LostKey::Card(d.0), io.device(*d).map(|x| x.slot));
                }
            }
            IoEvent::Announced { scope } => {
                for l in self.lost.values_mut().filter(|l| l.known.is_none()) {
                    let covered = match scope {
                        IoScope::Slot(s) => l.slot == Some(*s),
                        IoScope::Subsystem(s) => l.subsystem == *s,
                    };
                    if covered {
                        l.known = Some((now, Knew::Told));
                    }
                }
            }
            IoEvent::Line { .. }
            | IoEvent::SapicProgram { .. }
            | IoEvent::SapicDeliver { .. }
            | IoEvent::SapicHeld { .. }
            | IoEvent::SapicEdgeLost { .. }
            | IoEvent::SapicEoi { .. }
            | IoEvent::SlotPower { .. }
            | IoEvent::Card { .. }
            | IoEvent::Chipset { .. }
            | IoEvent::AttentionButton { .. } => {}
        }
    }
}

fn rw(write: bool) -> &'static str {
    if write { "write" } else { "read" }
}

/// How long a level entry may stay in service (remote IRR set) before its EOI: far longer
/// than any handler runs plus the longest stretch a CPU runs kernel code without taking an
/// interrupt (a kernel step is not preempted: a fork clearing and filling 64 KiB pages takes
/// about 1 ms); past it, the line is stuck for good.
pub const REMOTE_IRR_BOUND: sim_core::SimDuration = sim_core::SimDuration::from_millis(2);

/// CHK-6, I/O side (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct IrqChecker {
    /// When each level entry (subsystem, entry) last went into service: its own record,
    /// from the deliveries it saw.
    in_service_since: BTreeMap<(u16, u16), SimTime>,
    /// Entries already reported stuck, with the delivery that started it.
    stuck_reported: BTreeMap<(u16, u16), SimTime>,
}

impl sim_core::Checker<IoEvent, IoFabric> for IrqChecker {
    fn id(&self) -> CheckerId {
        CHK_IO_IRQ
    }

    fn observe(&mut self, now: SimTime, ev: &IoEvent, io: &IoFabric, out: &mut Violations) {
        match ev {
            IoEvent::SapicDeliver {
                subsystem,
                entry,
                gsi,
                vector,
                masked,
                was_in_service,
                ..
            } => {
                let me = Entity::IoSapic(*subsystem);
                let level = io
                    .subsystem(*subsystem)
                    .and_then(|s| s.sapic.entries().get(usize::from(*entry)))
                    .is_some_and(|r| r.level);
                if level && !*was_in_service {
                    self.in_service_since.insert((subsystem.0, *entry), now);
                }
                if *masked {
                    push(
                        out,
                        now,
                        CHK_IO_IRQ,
                        me,
                        Entity::Gsi(*gsi),
                        format!("{gsi} delivered vector {vector:#04x} while its entry is masked"),
                    );
                }
                if *was_in_service {
                    push(
                        out,
                        now,
                        CHK_IO_IRQ,
                        me,
                        Entity::Gsi(*gsi),
                        format!(
                            "{gsi} delivered vector {vector:#04x} again before its EOI (remote IRR was set)"
                        ),
                    );
                }
            }
            IoEvent::SapicEoi {
                subsystem,
                agent,
                vector,
                ..
            } => {
                let Some(s) = io.subsystem(*subsystem) else {
                    return;
                };
                for (e, r) in s.sapic.entries().iter().enumerate() {
                    if r.vector == *vector && r.level && r.remote_irr {
                        let gsi = s.sapic.gsi_base + e as u32;
                        push(
                            out,
                            now,
                            CHK_IO_IRQ,
                            *agent,
                            Entity::IoSapic(*subsystem),
                            format!(
                                "EOI of vector {vector:#04x} by {agent} left remote IRR set on gsi{gsi}: \
                                     its interrupt can never be delivered again"
                            ),
                        );
                    }
                }
            }
            IoEvent::Access { .. }
            | IoEvent::Line { .. }
            | IoEvent::SapicProgram { .. }
            | IoEvent::SapicHeld { .. }
            | IoEvent::SapicEdgeLost { .. }
            | IoEvent::DmaFault { .. }
            | IoEvent::SlotPower { .. }
            | IoEvent::Card { .. }
            | IoEvent::Subsystem { .. }
            | IoEvent::Announced { .. }
            | IoEvent::Chipset { .. }
            | IoEvent::AttentionButton { .. } => {}
        }
    }

    fn audit(&mut self, now: SimTime, io: &IoFabric, out: &mut Violations) {
        // Every IO SAPIC, the system one (the SCI's) included.
        for s in io.sapic_holders() {
            if !s.state.is_powered() {
                continue;
            }
            for (e, r) in s.sapic.entries().iter().enumerate() {
                let gsi = sim_core::Gsi(s.sapic.gsi_base + e as u32);
                let key = (s.id.0, e as u16);
                let since = self.in_service_since.get(&key).copied();
                if let Some(since) =
                    since.filter(|&t| r.level && r.remote_irr && now - t > REMOTE_IRR_BOUND)
                {
                    if self.stuck_reported.get(&key) != Some(&since) {
                        self.stuck_reported.insert(key, since);
                        push(
                            out,
                            now,
                            CHK_IO_IRQ,
                            Entity::IoSapic(s.id),
                            Entity::Gsi(gsi),
                            format!(
                                "{gsi} (vector {:#04x}) has been in service since {since} with no EOI (remote IRR still set after {}): the line is stuck and no interrupt of it is delivered again",
                                r.vector,
                                now - since
                            ),
                        );
                    }
                }
                if r.level && r.asserted > 0 && !r.masked && !r.remote_irr {
                    push(
                        out,
                        now,
                        CHK_IO_IRQ,
                        Entity::IoSapic(s.id),
                        Entity::Gsi(gsi),
                        format!("{gsi} is asserted and unmasked but was never delivered"),
                    );
                }
            }
        }
        for d in io.devices().iter().filter(|d| d.is_live() && d.line) {
            let reached = io
                .gsi_entry(d.gsi)
                .and_then(|(s, e)| io.subsystem(s).map(|x| x.sapic.entries()[e].asserted > 0));
            if reached != Some(true) {
                push(
                    out,
                    now,
                    CHK_IO_IRQ,
                    Entity::Pci(d.bdf),
                    Entity::Gsi(d.gsi),
                    format!(
                        "pci {} asserts {} but its IO SAPIC input is not asserted",
                        d.bdf, d.gsi
                    ),
                );
            }
        }
    }
}

/// CHK-7 (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct ResourceChecker;

impl ResourceChecker {
    fn check(now: SimTime, io: &IoFabric, out: &mut Violations) {
        let mut ranges: Vec<(BarKind, u64, u64, &Device)> = Vec::new();
        for d in io.devices().iter().filter(|d| d.is_live()) {
            let Some(bridge) = io
                .subsystem(d.subsystem)
                .and_then(|s| s.bridges.get(usize::from(d.bridge)))
            else {
                continue;
            };
            for (kind, base, size) in d.decoded() {
                let (wb, wl) = match kind {
                    BarKind::Mem64 => bridge.mmio_window,
                    BarKind::Io => bridge.io_window,
                };
                if base < wb || base + size > wb + wl {
                    push(
                        out,
                        now,
                        CHK_RESOURCES,
                        Entity::Pci(d.bdf),
                        Entity::HostBridge(d.subsystem, d.bridge),
                        format!(
                            "pci {} decodes {kind:?} {base:#x}+{size:#x}, outside its bridge's window {wb:#x}+{wl:#x}",
                            d.bdf
                        ),
                    );
                }
                ranges.push((kind, base, base + size, d));
            }
        }
        ranges.sort_by_key(|&(k, b, e, d)| (k as u8, b, e, d.id));
        for (i, a) in ranges.iter().enumerate() {
            for b in ranges[i + 1..]
                .iter()
                .take_while(|b| b.0 == a.0 && b.1 < a.2)
            {
                push(
                    out,
                    now,
                    CHK_RESOURCES,
                    Entity::Pci(a.3.bdf),
                    Entity::Pci(b.3.bdf),
                    format!(
                        "{:?} BAR {:#x}..{:#x} of pci {} overlaps {:#x}..{:#x} of pci {}",
                        a.0, a.1, a.2, a.3.bdf, b.1, b.2, b.3.bdf
                    ),
                );
            }
        }
        let mut windows: Vec<(u8, u64, u64, Entity)> = Vec::new();
        for s in io.subsystems().iter().filter(|s| s.state.is_powered()) {
            for b in &s.bridges {
                let who = Entity::HostBridge(s.id, b.index);
                windows.push((0, b.mmio_window.0, b.mmio_window.0 + b.mmio_window.1, who));
                windows.push((1, b.io_window.0, b.io_window.0 + b.io_window.1, who));
            }
        }
        windows.sort_by_key(|w| (w.0, w.1, w.2));
        for w in windows.windows(2) {
            if w[0].0 == w[1].0 && w[1].1 < w[0].2 {
                push(
                    out,
                    now,
                    CHK_RESOURCES,
                    w[0].3,
                    w[1].3,
                    format!("the windows of {} and {} overlap", w[0].3, w[1].3),
                );
            }
        }
    }
}

impl sim_core::Checker<IoEvent, IoFabric> for ResourceChecker {
    fn id(&self) -> CheckerId {
        CHK_RESOURCES
    }

    fn observe(&mut self, now: SimTime, ev: &IoEvent, io: &IoFabric, out: &mut Violations) {
        let changes_decode = match ev {
            IoEvent::Access {
                space: Space::Config,
                write: true,
                addr,
                outcome: IoOutcome::Ok,
                ..
            } => ConfigSpace::is_decode_register(*addr as u16),
            IoEvent::Access { .. }
            | IoEvent::Line { .. }
            | IoEvent::SapicProgram { .. }
            | IoEvent::SapicDeliver { .. }
            | IoEvent::SapicHeld { .. }
            | IoEvent::SapicEdgeLost { .. }
            | IoEvent::SapicEoi { .. }
            | IoEvent::DmaFault { .. }
            | IoEvent::SlotPower { .. }
            | IoEvent::Card { .. }
            | IoEvent::Subsystem { .. }
            | IoEvent::Announced { .. }
            | IoEvent::Chipset { .. }
            | IoEvent::AttentionButton { .. } => false,
        };
        if changes_decode {
            Self::check(now, io, out);
        }
    }

    fn audit(&mut self, now: SimTime, io: &IoFabric, out: &mut Violations) {
        Self::check(now, io, out);
    }
}
