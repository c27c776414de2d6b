//! Interrupts (IO SAPIC entries, EOI, the driver's top half) and IPIs (reschedule, cross-calls).

use super::{Csd, Os};
use crate::cpumask::LogicalCpu;
use crate::driver::TopHalf;
use crate::event::OsEvent;
use crate::hw::Cx;
use crate::irq::{self, CALL_FUNCTION_VECTOR, IrqHandler, RESCHEDULE_VECTOR};
use crate::mm::kernel::Mm;
use crate::pcihp::PciFlow;
use crate::sched::{IpiOp, Work};
use acpi_model::tables::FADT_SCI_INT;
use sim_core::abi::device::regs;
use sim_core::{MsgTag, SimDuration, SimTime};

impl Os {
    // ------------------------------------------------------------------ interrupts

    pub(super) fn take_interrupts(&mut self, t: &mut SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let hw = self.hw(c);
        while let Ok(Some(taken)) = cx.p.take_interrupt(*t, hw, cx.probe) {
            let vector = taken.vector;
            match vector {
                RESCHEDULE_VECTOR => {
                    self.pcpu[c.index()].need_resched = true;
                    self.stats.ipis_handled += 1;
                    self.emit(*t, OsEvent::IpiHandled { cpu: c, vector });
                    *t += SimDuration::from_nanos(100);
                }
                CALL_FUNCTION_VECTOR => {
                    self.stats.ipis_handled += 1;
                    self.emit(*t, OsEvent::IpiHandled { cpu: c, vector });
                    let queued: Vec<u64> = self.pcpu[c.index()].csd.drain(..).collect();
                    for id in queued {
                        let Some(csd) = self.csds.get_mut(&id) else {
                            continue;
                        };
                        if csd.done {
                            continue;
                        }
                        csd.done = true;
                        let from = csd.from;
                        // Every cross-call here is a TLB shootdown: of one address space
                        // (flush_tlb_mm) or of everything (flush_tlb_all).
                        let asid = csd.asid;
                        if let Some(vm) = self.vm.as_mut() {
                            match asid {
                                Some(a) => vm.tlbs[c.index()].flush_asid(a),
                                None => vm.tlbs[c.index()].flush(),
                            }
                        }
                        *t += self.cfg.ipi_handler;
                        self.stats.csds_done += 1;
                        self.emit(*t, OsEvent::CsdDone { id, cpu: c });
                        self.kick(from, *t);
                    }
                }
                _ => self.device_interrupt(t, c, vector, taken.tags, cx),
            }
        }
    }

    /// Routes the SCI (the FADT's `SCI_INT`) to `c` like any IRQ (and so it is moved off a
    /// CPU that goes away), level-triggered and unmasked. A kernel whose view holds no IO
    /// SAPIC serving that GSI (a partition without the system one) hears no SCI: that is
    /// recorded as a boot error ([`Os::boot_errors`]).
    pub(super) fn route_sci(&mut self, t: &mut SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let fadt = cx.p.fadt();
        let Some(&[lo, hi]) = fadt.get(FADT_SCI_INT..FADT_SCI_INT + 2) else {
            return;
        };
        let gsi = u32::from(u16::from_le_bytes([lo, hi]));
        if let Err(why) = PciFlow::route_gsi(self, t, gsi, IrqHandler::Sci, c, Some(c), false, cx) {
            self.boot_errors.push(super::OsError::NoSci { gsi, why });
        }
    }

    pub(crate) fn device_interrupt(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        vector: u8,
        tags: Vec<MsgTag>,
        cx: &mut Cx<'_>,
    ) {
        let Some(i) = self.irqs.by_vector(vector) else {
            self.stats.spurious += 1;
            self.driver.spurious();
            return;
        };
        let (gsi, handler, base, freed) = {
            let d = &self.irqs.descs()[i];
            (d.gsi, d.handler, d.sapic_base, d.freed)
        };
        if let Some(d) = self.irqs.get_mut(i) {
            d.handled += 1;
            d.last_served.clone_from(&tags);
        }
        self.stats.irqs_handled += 1;
        self.emit(
            *t,
            OsEvent::IrqHandled {
                gsi,
                vector,
                cpu: c,
                tags,
            },
        );
        let hw = self.hw(c);
        let card = match handler {
            IrqHandler::Card(k) => k,
            IrqHandler::Sci => {
                // acpi_irq: every notification firmware queued is handled as its device's
                // kind asks; taking them clears firmware's event status (the level line
                // drops), then the EOI.
                *t = crate::notify::take_all(self, *t, c, cx);
                irq::eoi(cx, t, hw, base, vector);
                return;
            }
        };
        if freed {
            // Raised before the entry was masked: acknowledged, no driver to run — unless its
            // IO SAPIC is gone with its I/O subsystem (ejected and forgotten while the
            // interrupt waited on this CPU): no chip is left to end the interrupt at, so
            // nothing is written (Linux: the vector has no irq any more, `ack_bad_irq`).
            self.driver.spurious();
            if self.sapic_sizes.contains_key(&base) && !self.sapics_gone.contains(&base) {
                irq::eoi(cx, t, hw, base, vector);
            }
            return;
        }
        let top = self.driver.top_half(t, card, hw, cx);
        if top == TopHalf::Gone {
            PciFlow::pci_card_gone(self, *t, card);
        }
        if let Some(d) = self.irqs.get_mut(i) {
            d.unhandled = match top {
                TopHalf::Inactive => d.unhandled + 1,
                TopHalf::Gone | TopHalf::Status(_) => 0,
            };
        }
        if self.irqs.descs()[i].unhandled >= irq::NOBODY_CARED {
            // "irq N: nobody cared": the line is disabled, the interrupt storm ends.
            let d = self.irqs.descs()[i].clone();
            PciFlow::free_irq(self, t, hw, i, false, cx);
            self.emit(
                *t,
                OsEvent::IrqDisabled {
                    gsi,
                    vector,
                    unhandled: d.unhandled,
                },
            );
        }
        // The kernel's disk: its completions are taken in the interrupt itself (the tasks
        // waiting for them do not wait behind the softirq's work).
        let top = match top {
            TopHalf::Status(status)
                if status & regs::STATUS_BLK_DONE != 0 && self.driver.cards()[card].claimed =>
            {
                match self.driver.take_completions(t, card, hw, cx) {
                    Some(done) => {
                        Mm::blk_complete(self, t, c, &done, cx);
                        // Nothing left for the bottom half unless the card said more.
                        match status & !regs::STATUS_BLK_DONE {
                            0 => TopHalf::Inactive,
                            rest => TopHalf::Status(rest),
                        }
                    }
                    None => {
                        PciFlow::pci_card_gone(self, *t, card);
                        TopHalf::Gone
                    }
                }
            }
            other @ (TopHalf::Inactive | TopHalf::Gone | TopHalf::Status(_)) => other,
        };
        if let TopHalf::Status(status) = top {
            // Like NAPI: one pending bottom half per card, with the statuses merged.
            let work = &mut self.pcpu[c.index()].work;
            let pending = work.iter_mut().find_map(|w| match w {
                Work::Card { card: k, status } if *k == card => Some(status),
                Work::Card { .. } | Work::Wake(_) | Work::Balance | Work::Spawn => None,
            });
            match pending {
                Some(s) => *s |= status,
                None => work.push_back(Work::Card { card, status }),
            }
            let k = self.pcpu[c.index()].ksoftirqd;
            self.wake_kthread(*t, c, k);
        }
        let eoi = if self.has_defect(crate::config::OsDefect::EoiWrongLine) {
            // The defect: the EOI names another line's vector.
            vector.wrapping_add(1)
        } else {
            vector
        };
        // Not at an IO SAPIC firmware said is gone: the write would reach nothing.
        if !self.sapics_gone.contains(&base) {
            irq::eoi(cx, t, hw, base, eoi);
        }
    }

    // ------------------------------------------------------------------ IPIs

    /// Starts sending `vector` to `targets` from `c`, as a reader of maps version `v`
    /// (already locked); `wait`: a cross-call that waits for every acknowledgement.
    pub(crate) fn start_ipis(
        &mut self,
        c: LogicalCpu,
        v: u64,
        purpose: &'static str,
        vector: u8,
        targets: Vec<LogicalCpu>,
        wait: bool,
    ) {
        self.pcpu[c.index()].op = Some(IpiOp {
            version: v,
            purpose,
            vector,
            targets,
            next: 0,
            csds: Vec::new(),
            wait,
            deadline: SimTime::MAX,
            asid: None,
            free_after: None,
        });
    }

    pub(super) fn continue_op(&mut self, t: &mut SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let i = c.index();
        let now = *t;
        let Some(op) = self.pcpu[i].op.clone() else {
            return;
        };
        if op.next < op.targets.len() {
            let to = op.targets[op.next];
            self.reader_use(t, c, op.version, to, cx);
            let csd = op.wait.then(|| self.queue_csd(*t, c, to, op.asid));
            self.send_ipi(*t, c, to, op.vector, cx);
            *t += self.cfg.ipi_send;
            let send_done = op.next + 1 == op.targets.len();
            let deadline = *t + self.cfg.csd_timeout;
            if let Some(o) = self.pcpu[i].op.as_mut() {
                o.next += 1;
                o.csds.extend(csd);
                if send_done {
                    o.deadline = deadline;
                }
            }
            self.finish_step(c, now, *t);
            return;
        }
        let waiting: Vec<u64> = op
            .csds
            .iter()
            .copied()
            .filter(|id| self.csds.get(id).is_some_and(|x| !x.done))
            .collect();
        if op.wait && !waiting.is_empty() && *t < op.deadline {
            // Spin until the acknowledgements arrive (they kick this CPU) or time runs out.
            self.busy_until[i] = *t;
            self.run_by(c, op.deadline);
            return;
        }
        self.reap_csds(*t, &op.csds);
        self.pcpu[i].op = None;
        self.reader_end(*t, c);
        if let Some(pfn) = op.free_after {
            // Every TLB that could hold the old translation has dropped it.
            Mm::free_discarded(self, *t, pfn);
        }
        self.finish_step(c, now, *t);
    }

    /// Queues a cross-call from `from` on `to`'s list (`asid`: the address space whose
    /// translations it drops, `None`: the whole TLB); returns its id. The caller sends the
    /// IPI.
    pub(crate) fn queue_csd(
        &mut self,
        t: SimTime,
        from: LogicalCpu,
        to: LogicalCpu,
        asid: Option<u32>,
    ) -> u64 {
        let id = self.next_csd;
        self.next_csd += 1;
        self.csds.insert(
            id,
            Csd {
                from,
                to,
                done: false,
                asid,
            },
        );
        self.pcpu[to.index()].csd.push_back(id);
        self.emit(t, OsEvent::CsdQueued { id, from, to });
        id
    }

    /// Whether cross-call `id` is still waiting for its target.
    pub(crate) fn csd_pending(&self, id: u64) -> bool {
        self.csds.get(&id).is_some_and(|x| !x.done)
    }

    /// The sender stops waiting for cross-calls `ids`: each one still unanswered is
    /// reported (the CSD lock timeout) and taken off its target's list.
    pub(crate) fn reap_csds(&mut self, t: SimTime, ids: &[u64]) {
        for &id in ids {
            let Some(x) = self.csds.remove(&id) else {
                continue;
            };
            if !x.done {
                self.stats.csd_timeouts += 1;
                self.pcpu[x.to.index()].csd.retain(|&q| q != id);
                self.emit(
                    t,
                    OsEvent::CsdTimeout {
                        id,
                        from: x.from,
                        to: x.to,
                        waited: self.cfg.csd_timeout,
                    },
                );
            }
        }
    }

    /// `c` sends an IPI with `vector` to `to` through the machine.
    pub(crate) fn send_ipi(
        &mut self,
        t: SimTime,
        c: LogicalCpu,
        to: LogicalCpu,
        vector: u8,
        cx: &mut Cx<'_>,
    ) {
        let dest = self.pcpu[to.index()].lsapic;
        let _ = cx.p.send_ipi(t, self.hw(c), dest, vector, cx.probe);
        self.stats.ipis_sent += 1;
        self.emit(
            t,
            OsEvent::IpiSent {
                from: c,
                to,
                vector,
            },
        );
        self.kick(to, t);
    }
}
