//! CHK-6, OS side: interrupts handled where they may be, every cross-call acknowledged, and
//! the IO SAPIC entry of every IRQ the kernel frees masked (read from the entry itself).

use std::collections::{BTreeMap, BTreeSet};

use acpi_model::Platform;
use bitvec::vec::BitVec;
use sim_core::{CheckerId, Entity, Gsi, MsgTag, SimTime, Violations};

use super::{CHK_OS_IRQ, Maps, Names, OsChecker, violation};
use crate::event::OsEvent;
use crate::kernel::Os;

/// The kernel's "nobody cared" diagnoses, counted by CHK-6 as corroboration.
pub const NOBODY_CARED: &str = "kernel diagnoses: irq nobody cared";
/// The kernel's cross-call timeouts, counted by CHK-6 as corroboration.
pub const CSD_TIMEOUT: &str = "kernel diagnoses: cross-call timeout";

/// What CHK-6 knows of one line's messages, by their ordinal on the line (the `n` of
/// [`MsgTag::Line`]).
#[derive(Debug, Default)]
struct Line {
    /// The messages a handler of this line served.
    handled: BitVec,
    /// The messages reported lost.
    lost: BitVec,
    /// Every message up to this one is handled or reported lost.
    settled: u64,
}

impl Line {
    fn bit(v: &BitVec, n: u64) -> bool {
        usize::try_from(n).is_ok_and(|i| v.get(i).is_some_and(|b| *b))
    }
    fn set(v: &mut BitVec, n: u64) {
        let i = usize::try_from(n).unwrap_or(usize::MAX);
        if v.len() <= i {
            v.resize(i + 1, false);
        }
        v.set(i, true);
    }
}

/// CHK-6, OS side: every interrupt message a line sent is handled once, by the handler of
/// that line, on an online CPU — matched by the message's identity (its tag), so that a
/// duplicate and a loss cannot cancel out; every cross-call IPI is acknowledged.
#[derive(Debug, Default)]
pub struct IrqChecker {
    names: Names,
    maps: Maps,
    lines: BTreeMap<u32, Line>,
    /// GSIs of enabled devices already reported as never routed.
    unrouted_reported: Vec<u32>,
    /// What the IO SAPIC entry of an IRQ the kernel just freed looked like then, read from
    /// the hardware: `(gsi, vector, subsystem, entry, destination)` of one left unmasked.
    freed_unmasked: Option<(u32, u8, sim_core::IoSubsystemId, usize, String)>,
}

impl OsChecker for IrqChecker {
    fn id(&self) -> CheckerId {
        CHK_OS_IRQ
    }

    fn sample(&mut self, _now: SimTime, ev: &OsEvent, p: &Platform) {
        if let OsEvent::IrqFreed { gsi, vector } = ev {
            // The entry itself, as the IO SAPIC holds it: a freed IRQ's line must not reach
            // any CPU (unless its IO SAPIC is gone with it).
            self.freed_unmasked = p.io().gsi_entry(Gsi(*gsi)).and_then(|(sid, e)| {
                let sub = p.io().subsystem(sid).filter(|s| s.state.is_powered())?;
                let rte = sub.sapic.entries().get(e).filter(|r| !r.masked)?;
                let dest = p
                    .machine()
                    .cpu_by_lsapic(rte.dest)
                    .map_or_else(|| rte.dest.to_string(), |c| c.to_string());
                Some((*gsi, *vector, sid, e, dest))
            });
        }
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        self.names.learn(ev);
        self.maps.learn(ev);
        let mut report = |agent: Entity, target: Entity, msg: String| {
            out.push(violation(now, CHK_OS_IRQ, agent, target, msg));
        };
        if let OsEvent::IrqFreed { .. } = ev {
            if let Some((gsi, vector, sid, e, dest)) = self.freed_unmasked.take() {
                report(
                    Entity::Os(sim_core::OsId(0)),
                    Entity::IoSapic(sid),
                    format!(
                        "gsi{gsi} (vector {vector:#04x}) was freed but its entry {e} of {sid} is still unmasked (destination {dest}): the line still interrupts a vector nobody owns"
                    ),
                );
            }
        } else if let OsEvent::IrqHandled {
            gsi,
            vector,
            cpu,
            tags,
        } = ev
        {
            if tags.is_empty() {
                report(
                    Entity::Gsi(Gsi(*gsi)),
                    self.names.entity(*cpu),
                    format!(
                        "the handler of gsi{gsi} (vector {vector:#04x}) ran on {cpu} for no message of any line"
                    ),
                );
            }
            for tag in tags {
                // A local SAPIC keeps line messages' tags only.
                let MsgTag::Line { gsi: from, n } = *tag else {
                    continue;
                };
                if from != *gsi {
                    // Served by the wrong handler: the line's own driver never saw it.
                    report(
                        Entity::Gsi(Gsi(from)),
                        self.names.entity(*cpu),
                        format!(
                            "interrupt {tag} was handled on {cpu} by the handler of gsi{gsi} (vector {vector:#04x}), not its own"
                        ),
                    );
                    continue;
                }
                let line = self.lines.entry(from).or_default();
                if Line::bit(&line.handled, n) {
                    report(
                        Entity::Gsi(Gsi(from)),
                        self.names.entity(*cpu),
                        format!(
                            "interrupt {tag} (vector {vector:#04x}) handled again on {cpu}: one message, two handlings"
                        ),
                    );
                }
                Line::set(&mut line.handled, n);
            }
            if !self.maps.online(*cpu) {
                report(
                    Entity::Gsi(Gsi(*gsi)),
                    self.names.entity(*cpu),
                    format!(
                        "interrupt gsi{gsi} (vector {vector:#04x}) handled on {cpu}, which is offline"
                    ),
                );
            }
        } else if let OsEvent::IrqRouted { gsi, cpu, from, .. } = ev {
            if !self.maps.active(*cpu) {
                report(
                    Entity::Gsi(Gsi(*gsi)),
                    self.names.entity(*cpu),
                    format!(
                        "gsi{gsi} routed to {cpu}, which is not active{}",
                        from.map_or_else(String::new, |f| format!(" (moved from {f})"))
                    ),
                );
            }
        } else if let OsEvent::IrqDisabled { .. } = ev {
            // The kernel's own diagnoses are not the checker's: counted beside its reports
            // as corroboration, under their own name. What the hardware saw (an interrupt
            // lost at a halted CPU, a line stuck in service, a freed buffer written) is
            // what CHK-6 and CHK-7 report.
            out.tally(CHK_OS_IRQ, NOBODY_CARED);
        } else if let OsEvent::CsdTimeout { .. } = ev {
            out.tally(CHK_OS_IRQ, CSD_TIMEOUT);
        }
    }

    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        // Every device the kernel enabled has its interrupt routed: an asserted line that
        // no entry delivers (held in a masked entry nobody programs) is lost for good.
        for s in os.pci_hotplug().slots.iter().filter(|s| s.enabled) {
            let Some(k) = s.card else {
                continue;
            };
            let gsi = os.driver.cards()[k].gsi;
            let routed = os.irqs.descs().iter().any(|d| d.gsi == gsi && !d.freed);
            let Some((sid, e)) = p.io().gsi_entry(Gsi(gsi)) else {
                continue;
            };
            let held = p
                .io()
                .subsystem(sid)
                .and_then(|x| x.sapic.entries().get(e))
                .is_some_and(|r| r.asserted > 0 && r.masked);
            if held && !routed && !self.unrouted_reported.contains(&gsi) {
                self.unrouted_reported.push(gsi);
                out.push(violation(
                    now,
                    CHK_OS_IRQ,
                    Entity::Pci(s.bdf),
                    Entity::Gsi(Gsi(gsi)),
                    format!(
                        "pci {} in slot {} asserts gsi{gsi}, held in a masked entry of {sid}: the kernel enabled the device but never routed its interrupt",
                        s.bdf, s.sun.0
                    ),
                ));
            }
        }
        // Every message a line sent is handled, or still pending in a running CPU's local
        // SAPIC (taken later); any other is lost: sent to a CPU that was not running, left
        // in the IRR of one that stopped, or handled by another line's handler.
        let in_flight: BTreeSet<MsgTag> = p
            .machine()
            .cpus()
            .iter()
            .filter(|c| c.state.is_running())
            .flat_map(|c| c.pending_tags())
            .collect();
        // The lines this kernel drives (a descriptor, live or freed): another kernel's lines
        // on the same machine are that kernel's checker's.
        let mine: BTreeSet<u32> = os.irqs.descs().iter().map(|d| d.gsi).collect();
        for (gsi, sent) in p.io().lines_delivered() {
            if !mine.contains(&gsi.0) {
                continue;
            }
            let line = self.lines.entry(gsi.0).or_default();
            let mut lost = Vec::new();
            let mut settled = true;
            for n in line.settled + 1..=sent {
                let done = Line::bit(&line.handled, n) || Line::bit(&line.lost, n);
                if done {
                    // Handled, or reported already.
                } else if in_flight.contains(&MsgTag::Line { gsi: gsi.0, n }) {
                    settled = false;
                } else {
                    Line::set(&mut line.lost, n);
                    lost.push(n);
                }
                if settled {
                    line.settled = n;
                }
            }
            if lost.is_empty() {
                continue;
            }
            let entry = p.io().gsi_entry(gsi);
            let dest = entry
                .and_then(|(sid, e)| {
                    let sub = p.io().subsystem(sid).filter(|s| s.state.is_powered())?;
                    sub.sapic.entries().get(e).copied()
                })
                .map_or_else(
                    || "its IO SAPIC is gone".to_owned(),
                    |r| {
                        p.machine()
                            .cpu_by_lsapic(r.dest)
                            .map_or_else(|| r.dest.to_string(), |c| c.to_string())
                    },
                );
            let which = match lost.as_slice() {
                [one] => format!("#{one}"),
                [first, .., last] => format!("#{first}..#{last}"),
                [] => String::new(),
            };
            out.push(violation(
                now,
                CHK_OS_IRQ,
                Entity::Gsi(gsi),
                entry.map_or(Entity::Machine, |(sid, _)| Entity::IoSapic(sid)),
                format!(
                    "gsi{}: {} interrupt(s) sent and never handled ({which} of {sent}), lost (destination {dest})",
                    gsi.0,
                    lost.len()
                ),
            ));
        }
    }
}
