//! ACPI notifications (the SCI): each goes to the flow that handles its device.

use acpi_model::{AcpiValue, Platform, PlatformProbe};
use sim_core::SimTime;

use super::{Accepted, CpuFlow, OpKind, Trigger};
use crate::cpumask::LogicalCpu;
use crate::event::OsEvent;
use crate::kernel::Os;
use crate::memhotplug::{MemError, MemFlow, MemOpKind, MemRequest};
use crate::pcihp::PciFlow;
use crate::sched::CpuLife;

impl CpuFlow {
    /// Handles firmware's pending notifications (the SCI), on CPU `c`.
    pub(crate) fn acpi_notifications(
        os: &mut Os,
        now: SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        for n in p.take_notifications() {
            os.emit(
                now,
                OsEvent::AcpiNotify {
                    path: n.path.clone(),
                    code: n.code.code(),
                },
            );
            let code = n.code.code();
            // A module or memory device with memory: the memory (and whole-cell) flow.
            let mems: Vec<(String, u32)> = os
                .scan
                .memory
                .iter()
                .filter(|m| m.path == n.path || m.path.starts_with(&format!("{}.", n.path)))
                .map(|m| (m.path.clone(), m.node))
                .collect();
            if let Some((mpath, node)) = mems.first().cloned() {
                let whole_cell = mpath != n.path;
                let kind = match (n.code, whole_cell) {
                    (acpi_model::NotifyCode::EjectRequest, true) => MemOpKind::CellRemove,
                    (acpi_model::NotifyCode::EjectRequest, false) => MemOpKind::Offline,
                    (
                        acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck,
                        true,
                    ) => MemOpKind::CellAdd,
                    (
                        acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck,
                        false,
                    ) => MemOpKind::Online,
                };
                let trigger = match n.code {
                    acpi_model::NotifyCode::EjectRequest => Trigger::AcpiEject,
                    acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck => {
                        Trigger::AcpiDeviceCheck
                    }
                };
                let remove = matches!(kind, MemOpKind::CellRemove | MemOpKind::Offline);
                if let Err(e) = MemFlow::check_cell_request(os, &n.path, node, remove) {
                    CpuFlow::refuse_notification(os, now, c, &n.path, code, &e, p, probe);
                    continue;
                }
                if matches!(kind, MemOpKind::CellAdd | MemOpKind::Online) {
                    // Firmware says something arrived: re-read presence of its processors.
                    for x in os.possible.iter().collect::<Vec<_>>() {
                        let path = os.pcpu[x.index()].path.clone();
                        if path.starts_with(&format!("{}.", n.path))
                            && crate::acpi::is_present(p, &path)
                            && !os.present.contains(x)
                        {
                            os.present.set(x);
                            os.pcpu[x.index()].life = CpuLife::Offline;
                        }
                    }
                }
                MemFlow::mem_enqueue(
                    os,
                    MemRequest {
                        kind,
                        blocks: Vec::new(),
                        node: Some(node),
                        trigger,
                        acpi_path: Some(n.path.clone()),
                        requested: now,
                    },
                );
                continue;
            }
            // A hot-plug slot: the ACPI PCI hot-plug driver.
            if let Some((sun, enabled)) = os
                .pcihp
                .slots
                .iter()
                .find(|s| s.path == n.path)
                .map(|s| (s.sun.0, s.enabled))
            {
                let card = crate::acpi::is_present(p, &n.path);
                let op = match n.code {
                    acpi_model::NotifyCode::EjectRequest => {
                        Some((crate::pcihp::PciOpKind::Eject, Trigger::AcpiEject))
                    }
                    // A device or bus check: bring up what arrived; what is gone goes.
                    acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck => {
                        match (card, enabled) {
                            (true, false) => {
                                Some((crate::pcihp::PciOpKind::Enable, Trigger::AcpiDeviceCheck))
                            }
                            (false, true) => {
                                Some((crate::pcihp::PciOpKind::Disable, Trigger::AcpiDeviceCheck))
                            }
                            (true, true) | (false, false) => None,
                        }
                    }
                };
                let status = match op {
                    None => Some(0),
                    Some((kind, trigger)) => match os.pci_request(now, sun, kind, trigger) {
                        Ok(Accepted::Queued { .. }) => None,
                        Ok(Accepted::NoChange) => Some(0),
                        Err(e) => Some(e.ost_status().code()),
                    },
                };
                if let Some(status) = status {
                    let _ = os.acpi_eval(
                        now,
                        c,
                        &format!("{}._OST", n.path),
                        &[
                            AcpiValue::Integer(u64::from(code)),
                            AcpiValue::Integer(status),
                        ],
                        p,
                        probe,
                    );
                }
                continue;
            }
            // An I/O subsystem's module device: the whole subsystem comes or goes.
            if !PciFlow::subsystem_bridges(os, &n.path).is_empty() {
                let (add, trigger) = match n.code {
                    acpi_model::NotifyCode::EjectRequest => (false, Trigger::AcpiEject),
                    acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck => {
                        (true, Trigger::AcpiDeviceCheck)
                    }
                };
                let present = crate::acpi::is_present(p, &n.path);
                if let Err(e) = os.pci_subsystem_request(now, &n.path, add, present, trigger) {
                    let _ = os.acpi_eval(
                        now,
                        c,
                        &format!("{}._OST", n.path),
                        &[
                            AcpiValue::Integer(u64::from(code)),
                            AcpiValue::Integer(e.ost_status().code()),
                        ],
                        p,
                        probe,
                    );
                }
                continue;
            }
            let cpus: Vec<LogicalCpu> = os
                .possible
                .iter()
                .filter(|x| {
                    let path = &os.pcpu[x.index()].path;
                    *path == n.path || path.starts_with(&format!("{}.", n.path))
                })
                .collect();
            if cpus.is_empty() {
                // Not a processor or a module holding processors: not handled by this OS yet.
                let _ = os.acpi_eval(
                    now,
                    c,
                    &format!("{}._OST", n.path),
                    &[
                        AcpiValue::Integer(u64::from(code)),
                        AcpiValue::Integer(0x80),
                    ],
                    p,
                    probe,
                );
                continue;
            }
            // A module's eject takes its whole board away: not when memory is interleaved
            // (the board holds lines of every page).
            let module = cpus.iter().all(|x| os.pcpu[x.index()].path != n.path);
            if let (acpi_model::NotifyCode::EjectRequest, true, Some(m)) =
                (n.code, module, os.scan.interleaved_memory())
            {
                let e = MemError::Interleaved {
                    path: n.path.clone(),
                    memory: m.path.clone(),
                };
                CpuFlow::refuse_notification(os, now, c, &n.path, code, &e, p, probe);
                continue;
            }
            for x in cpus {
                let path = os.pcpu[x.index()].path.clone();
                let (kind, trigger, ost) = match n.code {
                    acpi_model::NotifyCode::EjectRequest => (OpKind::Down, Trigger::AcpiEject, 3),
                    acpi_model::NotifyCode::DeviceCheck | acpi_model::NotifyCode::BusCheck => {
                        if crate::acpi::is_present(p, &path) && !os.present.contains(x) {
                            os.present.set(x);
                            os.pcpu[x.index()].life = CpuLife::Offline;
                        }
                        (OpKind::Up, Trigger::AcpiDeviceCheck, 1)
                    }
                };
                if kind == OpKind::Up && !os.present.contains(x) {
                    continue;
                }
                match os.request(now, kind, x.0, trigger) {
                    Ok(Accepted::Queued { .. }) => {}
                    Ok(Accepted::NoChange) => {
                        let _ = os.acpi_eval(
                            now,
                            c,
                            &format!("{path}._OST"),
                            &[AcpiValue::Integer(ost), AcpiValue::Integer(0)],
                            p,
                            probe,
                        );
                    }
                    Err(e) => {
                        let _ = os.acpi_eval(
                            now,
                            c,
                            &format!("{path}._OST"),
                            &[
                                AcpiValue::Integer(ost),
                                AcpiValue::Integer(e.ost_status().code()),
                            ],
                            p,
                            probe,
                        );
                    }
                }
            }
        }
    }

    /// Refuses firmware's notification `code` on `path` (nothing changes) and tells firmware
    /// why with `_OST`, as CPU `c`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refuse_notification(
        os: &mut Os,
        now: SimTime,
        c: LogicalCpu,
        path: &str,
        code: u8,
        e: &MemError,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        CpuFlow::refuse(os, now, path.to_owned(), e.errno(), e.to_string());
        let _ = os.acpi_eval(
            now,
            c,
            &format!("{path}._OST"),
            &[
                AcpiValue::Integer(u64::from(code)),
                AcpiValue::Integer(e.ost_status().code()),
            ],
            p,
            probe,
        );
    }
}
