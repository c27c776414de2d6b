//! I/O-subsystem operations (rescan, IO SAPIC init, slots; check stopped, eject, forget) and
//! the chipset functions a cell brings.

use super::{ChipsetDev, PciError, PciFlow, PciOpKind, PciStep, PciTarget};
use crate::config::OsDefect;
use crate::cpumask::LogicalCpu;
use crate::hotplug::Trigger;
use crate::hw::Cx;
use crate::irq::{self};
use crate::kernel::Os;
use crate::ops::Next;
use acpi_model::AcpiValue;
use sim_core::window::WindowAllocator;
use sim_core::{Bdf, SimTime, SlotId};

impl PciFlow {
    /// Adds a `pci_dev` for each chipset function of `node` (every node: `None`) that
    /// answers in configuration space, as `ctl` (boot, and a cell's hot-add). Returns what
    /// it added.
    pub(crate) fn chipset_add(
        os: &mut Os,
        t: &mut SimTime,
        ctl: LogicalCpu,
        node: Option<u32>,
        cx: &mut Cx<'_>,
    ) -> String {
        let hw = os.hw(ctl);
        let mut added = Vec::new();
        let candidates: Vec<crate::acpi::ChipsetInfo> = os
            .scan
            .chipset
            .iter()
            .filter(|f| node.is_none_or(|n| f.node == n))
            .cloned()
            .collect();
        let mut funcs = Vec::new();
        for f in candidates {
            if os.sta_present(t, ctl, &f.path, cx) {
                funcs.push(f);
            }
        }
        for f in funcs {
            if os.pcihp.chipset.iter().any(|d| d.path == f.path) {
                continue;
            }
            let bdf = Bdf {
                segment: 0,
                bus: f.bus,
                device: f.device,
                function: 0,
            };
            let id = crate::hw::cfg_read(cx, t, hw, bdf, sim_core::abi::pci::reg::ID);
            if id == u32::MAX {
                continue;
            }
            added.push(format!("pci {bdf} ({:04x}:{:04x})", id & 0xFFFF, id >> 16));
            os.pcihp.chipset.push(ChipsetDev {
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
    pub(crate) fn chipset_remove(os: &mut Os, node: u32) -> String {
        let gone: Vec<String> = os
            .pcihp
            .chipset
            .iter()
            .filter(|d| d.node == node)
            .map(|d| format!("pci {}", d.bdf))
            .collect();
        os.pcihp.chipset.retain(|d| d.node != node);
        if gone.is_empty() {
            "no chipset function".to_owned()
        } else {
            format!("chipset pci_dev removed: {}", gone.join(", "))
        }
    }

    /// One step of an I/O subsystem operation on the module device `path`, as `ctl`.
    pub(crate) fn pci_subsystem_act(
        os: &mut Os,
        now: SimTime,
        step: PciStep,
        path: &str,
        ctl: LogicalCpu,
        cx: &mut Cx<'_>,
    ) -> Next<PciFlow> {
        let hw = os.hw(ctl);
        let mut t = now;
        let prefix = format!("{path}.");
        let firmware = |method: &'static str, why: String| PciError::Firmware {
            slot: 0,
            method,
            why,
        };
        match step {
            PciStep::Rescan => {
                if !os.sta_present(&mut t, ctl, path, cx) {
                    // A device check queued behind the eject (or before a pull) that took it.
                    let path = path.to_owned();
                    return Next::Fail(t, PciError::SubsystemGone { path });
                }
                // The namespace is the same tree; what is present and what it holds changed
                // (each device's `_STA` evaluated again, at its cost).
                let fresh = rescan(os, &mut t, ctl, path, cx);
                os.scan.bridges = fresh.bridges;
                os.scan.sapics = fresh.sapics;
                os.scan.slots = fresh.slots;
                let bridges = PciFlow::subsystem_bridges(os, path);
                for &b in &bridges {
                    let held = os
                        .pcihp
                        .slots
                        .iter()
                        .any(|x| x.bridge == b && x.bars.is_some());
                    if let (false, Some(info), Some(br)) =
                        (held, os.scan.bridges.get(b), os.pcihp.bridges.get_mut(b))
                    {
                        br.mmio = WindowAllocator::new(info.mmio.0, info.mmio.1);
                        br.io = WindowAllocator::new(info.io.0, info.io.1);
                    }
                }
                let slots = os
                    .pcihp
                    .slots
                    .iter()
                    .filter(|x| bridges.contains(&x.bridge))
                    .count();
                let sapics: Vec<String> = os
                    .scan
                    .sapics
                    .iter()
                    .filter(|x| x.path.starts_with(&prefix) && x.present)
                    .map(|x| format!("{} (_GSB {})", x.path, x.gsi_base))
                    .collect();
                Next::Done(
                    t,
                    format!(
                        "{} host bridges, {slots} slots, IO SAPIC {}",
                        bridges.len(),
                        sapics.join(", ")
                    ),
                )
            }
            PciStep::InitSapic => {
                let new: Vec<(String, u64, u32)> = os
                    .scan
                    .sapics
                    .iter()
                    .filter(|x| x.path.starts_with(&prefix) && x.present)
                    // New, or one firmware said was gone whose removal never got as far as
                    // forgetting it (a failed eject): it is a new chip either way.
                    .filter(|x| {
                        !os.sapic_sizes.contains_key(&x.base) || os.sapics_gone.contains(&x.base)
                    })
                    .map(|x| (x.path.clone(), x.base, x.gsi_base))
                    .collect();
                if os.has_defect(OsDefect::SkipSapicInitOnHotAdd) {
                    return Next::Done(
                        t,
                        "new IO SAPIC neither registered nor masked (defect skip_sapic_init_on_hot_add)"
                            .into(),
                    );
                }
                let mut notes = Vec::new();
                for (spath, base, gsb) in new {
                    let n = irq::sapic_entries(cx, &mut t, hw, base);
                    let (first, end) = (gsb, gsb + n);
                    let clash = os.scan.sapics.iter().find_map(|o| {
                        let m = *os.sapic_sizes.get(&o.base)?;
                        (o.base != base && first < o.gsi_base + m && o.gsi_base < end)
                            .then(|| (o.path.clone(), o.gsi_base, o.gsi_base + m))
                    });
                    if let Some((other, other_first, other_end)) = clash {
                        return Next::Fail(
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
                            cx,
                            &mut t,
                            hw,
                            base,
                            e,
                            0,
                            sim_core::LsapicId { id: 0, eid: 0 },
                            true,
                        );
                    }
                    os.sapic_sizes.insert(base, n);
                    os.sapics_gone.remove(&base);
                    notes.push(format!("{spath}: GSIs {first}..{end}, {n} entries masked"));
                }
                Next::Done(t, notes.join("; "))
            }
            PciStep::EnableSlots => {
                let bridges = PciFlow::subsystem_bridges(os, path);
                let mut with_cards: Vec<SlotId> = Vec::new();
                for i in 0..os.pcihp.slots.len() {
                    let s = &os.pcihp.slots[i];
                    if !bridges.contains(&s.bridge) || os.pcihp.will_be_enabled(i) {
                        continue;
                    }
                    let (sun, path) = (s.sun, s.path.clone());
                    if os.sta_present(&mut t, ctl, &path, cx) {
                        with_cards.push(sun);
                    }
                }
                for &sun in &with_cards {
                    PciFlow::pci_enqueue(
                        os,
                        t,
                        PciOpKind::Enable,
                        PciTarget::Slot(sun),
                        Trigger::Subsystem,
                        None,
                    );
                }
                let list: Vec<String> = with_cards.iter().map(|s| s.0.to_string()).collect();
                Next::Done(t, format!("enable queued for slots {}", list.join(" ")))
            }
            PciStep::CheckStopped => {
                let bridges = PciFlow::subsystem_bridges(os, path);
                if let Some(s) = os
                    .pcihp
                    .slots
                    .iter()
                    .find(|s| bridges.contains(&s.bridge) && s.enabled)
                {
                    return Next::Fail(
                        t,
                        PciError::SubsystemBusy {
                            path: path.to_owned(),
                            slot: s.sun.0,
                        },
                    );
                }
                Next::Done(t, "every device stopped".into())
            }
            PciStep::Eject => {
                if !os.sta_present(&mut t, ctl, path, cx) {
                    return Next::Done(t, format!("{path} is gone already (surprise removal)"));
                }
                match os.acpi_eval(
                    &mut t,
                    ctl,
                    &format!("{path}._EJ0"),
                    &[AcpiValue::Integer(1)],
                    cx,
                ) {
                    Ok(_) => Next::Done(t, format!("_EJ0: firmware powered {path} off")),
                    Err(why) => Next::Fail(t, firmware("_EJ0", why)),
                }
            }
            PciStep::Forget => {
                let gone: Vec<u64> = os
                    .scan
                    .sapics
                    .iter()
                    .filter(|x| x.path.starts_with(&prefix))
                    .map(|x| x.base)
                    .collect();
                for base in &gone {
                    os.sapic_sizes.remove(base);
                    os.sapics_gone.remove(base);
                }
                let fresh = rescan(os, &mut t, ctl, path, cx);
                os.scan.bridges = fresh.bridges;
                os.scan.sapics = fresh.sapics;
                os.scan.slots = fresh.slots;
                Next::Done(t, "IO SAPIC and host bridges forgotten".into())
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
            | PciStep::PowerOff => Next::Done(t, "not a subsystem step".into()),
        }
    }
}

/// The namespace read again after the subtree at `path` changed: the `_STA` of each device in
/// it evaluated by `ctl` at its cost, every other device as present as the kernel knew it.
fn rescan(
    os: &mut Os,
    t: &mut SimTime,
    ctl: LogicalCpu,
    path: &str,
    cx: &mut Cx<'_>,
) -> crate::acpi::AcpiScan {
    let mut fresh = crate::acpi::scan_static(cx.p);
    let below = format!("{path}.");
    fresh.refresh_presence(|p| {
        if p.starts_with(&below) {
            os.sta_present(t, ctl, p, cx)
        } else {
            os.scan.present_of(p)
        }
    });
    fresh
}
