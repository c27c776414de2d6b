//! The steps of a slot operation (power, scan, BARs, IRQ, probe; quiesce, free, release,
//! power off, eject) and the IO SAPIC entry of a slot's interrupt.

use super::{PciError, PciFlow, PciStep, PciTarget, PoisonedBuffer};
use crate::config::OsDefect;
use crate::cpumask::LogicalCpu;
use crate::driver::CardDriver;
use crate::event::OsEvent;
use crate::hw::Cx;
use crate::irq::{self, IrqDesc, IrqHandler};
use crate::kernel::Os;
use crate::kernel::POISON;
use crate::mm::kernel::Mm;
use crate::ops::Next;
use acpi_model::AcpiValue;
use sim_core::SimTime;

impl PciFlow {
    pub(crate) fn pci_act(
        os: &mut Os,
        now: SimTime,
        step: PciStep,
        cx: &mut Cx<'_>,
    ) -> Next<PciFlow> {
        let Some(cur) = os.pcihp.ops.running() else {
            return Next::Done(now, String::new());
        };
        let ctl = cur.report.controller;
        let Some(i) = cur.state.slot else {
            let PciTarget::Subsystem(path) = cur.report.target.clone() else {
                return Next::Done(now, "no such slot".into());
            };
            return PciFlow::pci_subsystem_act(os, now, step, &path, ctl, cx);
        };
        let hw = os.hw(ctl);
        let slot = os.pcihp.slots[i].clone();
        let sun = slot.sun.0;
        let mut t = now;
        match step {
            PciStep::Rescan
            | PciStep::InitSapic
            | PciStep::EnableSlots
            | PciStep::CheckStopped
            | PciStep::Forget => Next::Done(t, "not a slot step".into()),
            PciStep::PowerOn => {
                if let Err(why) = os.acpi_eval(&mut t, ctl, &format!("{}._PS0", slot.path), &[], cx)
                {
                    return Next::Fail(
                        t,
                        PciError::Firmware {
                            slot: sun,
                            method: "_PS0",
                            why,
                        },
                    );
                }
                if let Some(c) = os.pcihp.ops.running_mut() {
                    c.state.powered = true;
                }
                Next::Done(
                    t + os.config().pci.power_delay,
                    format!("_PS0; {} for power to settle", os.config().pci.power_delay),
                )
            }
            PciStep::Scan => {
                let id = crate::hw::cfg_read(cx, &mut t, hw, slot.bdf, sim_core::abi::pci::reg::ID);
                if id == u32::MAX {
                    return Next::Fail(
                        t,
                        PciError::NoDevice {
                            slot: sun,
                            bdf: slot.bdf,
                        },
                    );
                }
                let k = match os.driver.attach(&os.scan, slot.sun, 0) {
                    Ok(k) => k,
                    Err(why) => return Next::Fail(t, PciError::NoIrq { slot: sun, why }),
                };
                os.pcihp.slots[i].card = Some(k);
                Next::Done(
                    t,
                    format!("{} {:04x}:{:04x}", slot.bdf, id & 0xFFFF, id >> 16),
                )
            }
            PciStep::Assign => {
                let ((_, mem_size), (_, io_size)) = CardDriver::size_bars(&mut t, hw, slot.bdf, cx);
                let br = &mut os.pcihp.bridges[slot.bridge];
                let bar = match br.mmio.alloc(mem_size, mem_size) {
                    Ok(b) => b,
                    Err(e) => {
                        return Next::Fail(
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
                        return Next::Fail(
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
                os.pcihp.slots[i].bars = Some(((bar, mem_size), (io_bar, io_size)));
                CardDriver::program_bars(&mut t, hw, slot.bdf, bar, io_bar, cx);
                Next::Done(
                    t,
                    format!(
                        "BAR0 {bar:#x}+{mem_size:#x}, I/O {io_bar:#x}+{io_size:#x} in {}",
                        os.pcihp.bridges[slot.bridge].path
                    ),
                )
            }
            PciStep::RouteIrq => {
                let Some(k) = os.pcihp.slots[i].card else {
                    return Next::Done(t, "no card".into());
                };
                match PciFlow::route_irq(os, &mut t, k, ctl, true, cx) {
                    Ok(d) => {
                        os.pcihp.slots[i].irq = Some(d);
                        let desc = &os.irqs.descs()[d];
                        Next::Done(
                            t,
                            format!(
                                "_PRT: gsi{} → IO SAPIC entry {}, vector {:#04x} to {} (masked)",
                                desc.gsi, desc.entry, desc.vector, desc.target
                            ),
                        )
                    }
                    // The kernel before IO SAPIC hot-add support knew no controller for a
                    // GSI of a hot-added subsystem and bound the driver without one.
                    Err(why) if os.has_defect(OsDefect::SkipSapicInitOnHotAdd) => Next::Done(
                        t,
                        format!(
                            "{why}: bound without an interrupt (defect skip_sapic_init_on_hot_add)"
                        ),
                    ),
                    Err(why) => Next::Fail(t, PciError::NoIrq { slot: sun, why }),
                }
            }
            PciStep::Probe => {
                let (Some(k), Some(((_, mem_size), _))) =
                    (os.pcihp.slots[i].card, os.pcihp.slots[i].bars)
                else {
                    return Next::Done(t, "nothing to cx.probe".into());
                };
                let irq = os.pcihp.slots[i].irq;
                let node = os.scan().bridges.get(slot.bridge).map_or(0, |b| b.node);
                let span = os.driver.config().card_span();
                let Ok(ring) = Mm::kmalloc(os, node, span, 4096) else {
                    return Next::Fail(
                        t,
                        PciError::NoMemory {
                            slot: sun,
                            bytes: span,
                        },
                    );
                };
                os.driver.set_ring(k, ring, mem_size);
                if let Err(why) = os.driver.bring_up(&mut t, k, hw, false, &os.scan, cx) {
                    Mm::kfree(os, ring, span);
                    return Next::Fail(t, PciError::Probe { slot: sun, why });
                }
                let unmasked = match irq {
                    Some(d) => {
                        let desc = os.irqs.descs()[d].clone();
                        PciFlow::set_irq_masked(os, &mut t, hw, &desc, false, cx);
                        format!("gsi{} unmasked", desc.gsi)
                    }
                    None => "no interrupt".to_owned(),
                };
                os.pcihp.slots[i].enabled = true;
                let serial = os.driver.cards()[k].serial;
                Next::Done(
                    t,
                    format!("driver bound (serial {serial:#x}); ring {ring:#x}; {unmasked}"),
                )
            }
            PciStep::Quiesce => {
                let Some(k) = slot.card else {
                    return Next::Done(t, "no card".into());
                };
                // Presence first (`_STA`, firmware, not the card): a card pulled out by
                // surprise, or behind a subsystem that is gone, is not touched again.
                if !os.sta_present(&mut t, ctl, &slot.path, cx) {
                    os.pcihp.slots[i].enabled = false;
                    if let Some(c) = os.pcihp.ops.running_mut() {
                        c.state.gone = true;
                    }
                    Mm::disk_gone(os, t, k);
                    os.driver.detach(k);
                    return Next::Done(
                        t,
                        "the card is gone (surprise removal): not touched".into(),
                    );
                }
                // The kernel's disk stays while it holds anything (a subsystem eject asked
                // for every slot); an empty one is let go, its swap area switched off.
                if let Some(e) = PciFlow::disk_in(os, i) {
                    return Next::Fail(t, e);
                }
                Mm::swap_off(os, k);
                os.pcihp.slots[i].enabled = false;
                if os.has_defect(OsDefect::SkipDriverQuiesce) {
                    // The defect: the driver lets go without stopping the card.
                    os.driver.detach(k);
                    return Next::Done(t, "card left running (defect skip_driver_quiesce)".into());
                }
                os.driver.quiesce(&mut t, k, hw, cx);
                Next::Done(
                    t + os.config().pci.quiesce_delay,
                    format!(
                        "engine and bus mastering off; {} for DMA in flight",
                        os.config().pci.quiesce_delay
                    ),
                )
            }
            PciStep::FreeIrq => {
                let Some(d) = os.pcihp.slots[i].irq.take() else {
                    return Next::Done(t, "no interrupt".into());
                };
                let desc = os.irqs.descs()[d].clone();
                let sapic = os
                    .scan()
                    .sapics
                    .iter()
                    .find(|x| x.base == desc.sapic_base)
                    .map(|x| x.path.clone());
                if !sapic.is_some_and(|x| os.sta_present(&mut t, ctl, &x, cx)) {
                    PciFlow::free_irq(os, &mut t, hw, d, true, cx);
                    return Next::Done(
                        t,
                        format!("gsi{} freed; its IO SAPIC is gone: not touched", desc.gsi),
                    );
                }
                PciFlow::free_irq(os, &mut t, hw, d, false, cx);
                Next::Done(
                    t + os.config().pci.quiesce_delay,
                    format!(
                        "gsi{} masked and freed (vector {:#04x})",
                        desc.gsi, desc.vector
                    ),
                )
            }
            PciStep::FreeBuffers => {
                let Some(k) = slot.card else {
                    return Next::Done(t, "no card".into());
                };
                let c = os.driver.cards()[k].clone();
                let span = os.driver.config().card_span();
                if c.ring == 0 {
                    return Next::Done(t, "no buffers".into());
                }
                if os.config().pci.poison_freed_buffers {
                    for w in 0..span / 8 {
                        crate::hw::store(cx, &mut t, hw, c.ring + 8 * w, POISON);
                    }
                    os.pcihp.poisoned.push(PoisonedBuffer {
                        addr: c.ring,
                        len: span,
                        bdf: c.bdf,
                        freed: t,
                    });
                }
                Mm::kfree(os, c.ring, span);
                os.driver.set_ring(k, 0, c.bar_size);
                Next::Done(
                    t,
                    format!(
                        "DMA ring {:#x}+{span:#x} freed{}",
                        c.ring,
                        if os.config().pci.poison_freed_buffers {
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
                    return Next::Done(t, "nothing to release".into());
                }
                if let Some(k) = os.pcihp.slots[i].card.take() {
                    os.driver.detach(k);
                }
                let gone = os.pcihp.ops.running().is_some_and(|c| c.state.gone);
                if gone {
                    let note = match slot.bars {
                        Some(((bar, size), _)) => format!(
                            "BAR0 {bar:#x}+{size:#x} back to {} (the card is gone)",
                            os.pcihp.bridges[slot.bridge].path
                        ),
                        None => "nothing reserved".to_owned(),
                    };
                    if !os.has_defect(OsDefect::LeakBarOnRemove) {
                        PciFlow::pci_release_bars(os, i);
                    }
                    return Next::Done(t, note);
                }
                crate::hw::cfg_write(
                    cx,
                    &mut t,
                    hw,
                    slot.bdf,
                    sim_core::abi::pci::reg::COMMAND,
                    0,
                );
                if os.has_defect(OsDefect::LeakBarOnRemove) {
                    return Next::Done(
                        t,
                        "decoding off; BARs kept reserved (defect leak_bar_on_remove)".into(),
                    );
                }
                let note = match slot.bars {
                    Some(((bar, size), (io_bar, io_size))) => format!(
                        "decoding off; BAR0 {bar:#x}+{size:#x} and I/O {io_bar:#x}+{io_size:#x} back to {}",
                        os.pcihp.bridges[slot.bridge].path
                    ),
                    None => "decoding off".to_owned(),
                };
                PciFlow::pci_release_bars(os, i);
                Next::Done(t, note)
            }
            PciStep::PowerOff => {
                let bridge = os.scan().bridges.get(slot.bridge).map(|b| b.path.clone());
                if !bridge.is_some_and(|b| os.sta_present(&mut t, ctl, &b, cx)) {
                    return Next::Done(t, "the I/O subsystem is gone: nothing to power off".into());
                }
                match os.acpi_eval(&mut t, ctl, &format!("{}._PS3", slot.path), &[], cx) {
                    Ok(_) => Next::Done(t, "_PS3".into()),
                    Err(why) => Next::Fail(
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
                match os.acpi_eval(
                    &mut t,
                    ctl,
                    &format!("{}._EJ0", slot.path),
                    &[AcpiValue::Integer(1)],
                    cx,
                ) {
                    Ok(_) => Next::Done(t, "_EJ0: the card may be pulled out".into()),
                    Err(why) => Next::Fail(
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

    /// Masks or unmasks the IO SAPIC entry of interrupt `desc` as hardware CPU `hw` (its
    /// vector and destination as routed).
    pub(crate) fn set_irq_masked(
        os: &mut Os,
        t: &mut SimTime,
        hw: sim_core::CpuId,
        desc: &IrqDesc,
        masked: bool,
        cx: &mut Cx<'_>,
    ) {
        let dest = os.pcpu[desc.target.index()].lsapic;
        irq::program_rte(
            cx,
            t,
            hw,
            desc.sapic_base,
            desc.entry,
            desc.vector,
            dest,
            masked,
        );
    }

    /// `free_irq`: masks descriptor `d`'s entry (unless its IO SAPIC is gone, `sapic_gone`)
    /// and frees the descriptor.
    pub(crate) fn free_irq(
        os: &mut Os,
        t: &mut SimTime,
        hw: sim_core::CpuId,
        d: usize,
        sapic_gone: bool,
        cx: &mut Cx<'_>,
    ) {
        let desc = os.irqs.descs()[d].clone();
        if !sapic_gone && !os.has_defect(OsDefect::FreeIrqLeavesUnmasked) {
            PciFlow::set_irq_masked(os, t, hw, &desc, true, cx);
        }
        os.irqs.free(d);
        os.emit(
            *t,
            OsEvent::IrqFreed {
                gsi: desc.gsi,
                vector: desc.vector,
            },
        );
    }

    /// Routes card `k`'s INTA (`_PRT` → GSI, see [`PciFlow::route_gsi`]) to an active CPU
    /// read from the map under RCU.
    pub(crate) fn route_irq(
        os: &mut Os,
        t: &mut SimTime,
        k: usize,
        by: LogicalCpu,
        masked: bool,
        cx: &mut Cx<'_>,
    ) -> Result<usize, String> {
        let gsi = os.driver.cards()[k].gsi;
        Self::route_gsi(os, t, gsi, IrqHandler::Card(k), by, None, masked, cx)
    }

    /// Routes `gsi` for `handler`: its IO SAPIC's entry, a vector (the one a freed
    /// descriptor of the same GSI had, if any), a target CPU — `to`, or one spread over the
    /// active map read under RCU; the entry is programmed by `by`, masked if `masked`.
    /// Returns the descriptor.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn route_gsi(
        os: &mut Os,
        t: &mut SimTime,
        gsi: u32,
        handler: IrqHandler,
        by: LogicalCpu,
        to: Option<LogicalCpu>,
        masked: bool,
        cx: &mut Cx<'_>,
    ) -> Result<usize, String> {
        let hw = os.hw(by);
        let sizes = os.sapic_sizes.clone();
        let (base, entry) = os
            .scan()
            .sapic_of(gsi, |b| sizes.get(&b).copied().unwrap_or(0))
            .map(|(s, e)| (s.base, e))
            .ok_or_else(|| format!("no IO SAPIC serves gsi{gsi}"))?;
        let reuse = os.irqs.freed_of(gsi);
        let vector = match reuse {
            Some(d) => os.irqs.descs()[d].vector,
            None => os
                .irqs
                .alloc_vector()
                .ok_or_else(|| format!("no interrupt vector left for gsi{gsi}"))?,
        };
        let target = match to {
            Some(c) => c,
            None => Self::spread_target(os, t, by, cx),
        };
        let dest = os.pcpu[target.index()].lsapic;
        irq::program_rte(cx, t, hw, base, entry, vector, dest, masked);
        let desc = IrqDesc {
            gsi,
            vector,
            sapic_base: base,
            entry,
            affinity: os.possible.clone(),
            target,
            handler,
            handled: 0,
            rerouted: 0,
            freed: false,
            unhandled: 0,
            last_served: Vec::new(),
        };
        let d = match reuse {
            Some(d) => {
                if let Some(x) = os.irqs.get_mut(d) {
                    let handled = x.handled;
                    *x = IrqDesc { handled, ..desc };
                }
                d
            }
            None => os.irqs.add(desc),
        };
        os.emit(
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

    /// An active CPU for a new IRQ, spreading them (reading the map under RCU): not a CPU on
    /// its way out, which is online until it stops but takes no new work — an IRQ routed
    /// there after its IRQs were moved off would stay behind.
    fn spread_target(os: &mut Os, t: &mut SimTime, by: LogicalCpu, cx: &mut Cx<'_>) -> LogicalCpu {
        let v = os.reader_begin(t, by, "irq affinity", cx);
        let active: Vec<LogicalCpu> = os.loaded_maps(v).active.iter().collect();
        // An empty map (only a defect shows one: a stale or freed version) leaves the IRQ
        // on the CPU doing the routing.
        let target = if active.is_empty() {
            by
        } else {
            active[os.irqs.live() % active.len()]
        };
        os.reader_use(t, by, v, target, cx);
        os.reader_end(*t, by);
        target
    }
}
