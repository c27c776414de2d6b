//! CHK-6, OS side: interrupts handled where they may be, every cross-call acknowledged, and
//! the IO SAPIC entry of every IRQ the kernel frees masked (read from the entry itself).

use std::collections::BTreeMap;

use acpi_model::Platform;
use sim_core::{CheckerId, Entity, Gsi, SimTime, Violations};

use super::{CHK_OS_IRQ, Maps, Names, OsChecker, violation};
use crate::event::OsEvent;
use crate::kernel::Os;

/// Whether `vector` is pending in some running CPU's IRR.
fn vector_pending(p: &Platform, vector: u8) -> bool {
    let bit = 1u64 << (vector % 64);
    p.machine()
        .cpus()
        .iter()
        .any(|c| c.state.is_running() && c.irr[usize::from(vector / 64)] & bit != 0)
}

/// The kernel's "nobody cared" diagnoses, counted by CHK-6 as corroboration.
pub const NOBODY_CARED: &str = "kernel diagnoses: irq nobody cared";
/// The kernel's cross-call timeouts, counted by CHK-6 as corroboration.
pub const CSD_TIMEOUT: &str = "kernel diagnoses: cross-call timeout";

/// CHK-6, OS side: every interrupt a device raised is delivered once and handled once, on an
/// online CPU, across re-routing; every cross-call IPI is acknowledged.
#[derive(Debug, Default)]
pub struct IrqChecker {
    names: Names,
    maps: Maps,
    handled: BTreeMap<u32, u64>,
    /// Where each GSI's count started again: when the kernel routed it afresh (a new
    /// device, or the same one after its IO SAPIC came back), the interrupts the line had
    /// delivered and the handlings seen then, and whether one was still pending in a CPU
    /// (delivered for the old routing, taken — or merged with a new one — later).
    since: BTreeMap<u32, (u64, u64, bool)>,
    lost_reported: BTreeMap<u32, u64>,
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
        if let OsEvent::IrqRouted {
            gsi, from: None, ..
        } = ev
        {
            let pending = p.io().gsi_entry(Gsi(*gsi)).is_some_and(|(sid, e)| {
                p.io()
                    .subsystem(sid)
                    .and_then(|s| s.sapic.entries().get(e))
                    .is_some_and(|r| vector_pending(p, r.vector))
            });
            let handled = self.handled.get(gsi).copied().unwrap_or(0);
            self.since
                .insert(*gsi, (p.io().gsi_deliveries(Gsi(*gsi)), handled, pending));
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
        } else if let OsEvent::IrqHandled { gsi, vector, cpu } = ev {
            *self.handled.entry(*gsi).or_default() += 1;
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
            let n = self.handled.entry(*gsi).or_default();
            if from.is_none() {
                if let Some(s) = self.since.get_mut(gsi) {
                    s.1 = *n;
                }
            }
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
        for (&gsi, &handled) in &self.handled {
            let Some((sid, e)) = p.io().gsi_entry(Gsi(gsi)) else {
                continue;
            };
            let Some(sub) = p.io().subsystem(sid).filter(|s| s.state.is_powered()) else {
                continue;
            };
            let Some(rte) = sub.sapic.entries().get(e) else {
                continue;
            };
            // Counted on the line (the entry's own counter starts again when its IO SAPIC
            // is powered on anew), since the kernel last routed the GSI afresh.
            let (d0, h0, stale) = self.since.get(&gsi).copied().unwrap_or((0, 0, false));
            let delivered = p.io().gsi_deliveries(Gsi(gsi)) - d0;
            let handled = handled - h0;
            // Vectors are per IRQ: pending in any running CPU's IRR means on its way.
            let in_flight = vector_pending(p, rte.vector);
            let missing = delivered.saturating_sub(handled + u64::from(in_flight));
            // An interrupt of the old routing still pending when the GSI was routed anew is
            // taken under the new one (or the two merge in the IRR bit).
            if handled > delivered + u64::from(stale) {
                out.push(violation(
                    now,
                    CHK_OS_IRQ,
                    Entity::Gsi(Gsi(gsi)),
                    Entity::IoSapic(sid),
                    format!("gsi{gsi} was handled {handled} times but delivered only {delivered}"),
                ));
            }
            let already = self.lost_reported.get(&gsi).copied().unwrap_or(0);
            if missing > already {
                let dest = p
                    .machine()
                    .cpu_by_lsapic(rte.dest)
                    .map_or_else(|| rte.dest.to_string(), |c| c.to_string());
                out.push(violation(
                    now,
                    CHK_OS_IRQ,
                    Entity::Gsi(Gsi(gsi)),
                    Entity::IoSapic(sid),
                    format!(
                        "gsi{gsi}: {delivered} interrupts delivered, {handled} handled, {} lost (destination {dest})",
                        missing - already
                    ),
                ));
                self.lost_reported.insert(gsi, missing);
            }
        }
    }
}
