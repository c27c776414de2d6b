//! ACPI notifications (the SCI), dispatched by the kind of device notified, as Linux's ACPI
//! scan handlers attach by `_HID`:
//!
//! ```text
//!  Notify(path, code) ─► _HID of path ─► ACPI0004 module:    memory under it → cell operation
//!                                                            bridges under it → I/O subsystem
//!                                                            else its processors
//!                                      ─► ACPI0007 processor: CPU down / up
//!                                      ─► PNP0C80 memory:     memory offline / online
//!                      no _HID, a hot-plug slot (_SUN)      ─► slot enable / disable / eject
//!                      anything else ─► _OST 0x80 (not supported)
//! ```
//!
//! Every operation a notification starts, and every refusal, carries the notification's
//! number ([`acpi_model::NotifyId`]), so whoever sent it learns what came of it. Firmware
//! hears the outcome once, by `_OST` on the device it notified: when the handler is done if
//! it started nothing, else when the last operation it started ends (the first failure
//! among them, else success) — a module's processors answer as one.

use crate::hw::Cx;
use crate::ids::NodeId;
use acpi_model::{AcpiValue, Notification, NotifyCode, NotifyId};
use sim_core::SimTime;

use crate::cpumask::LogicalCpu;
use crate::event::OsEvent;
use crate::hotplug::{CpuFlow, OpKind};
use crate::kernel::Os;
use crate::memhotplug::{MemError, MemFlow, MemOpKind, MemRequest};
use crate::ops::{OpError, OstStatus, Trigger};
use crate::pcihp::{PciFlow, PciOpKind};
use crate::sched::CpuLife;

/// Where a handler runs: the time, the CPU taking the SCI, the machine.
pub(crate) struct Sci<'a, 'b> {
    /// The handler's clock: when the SCI is taken, advanced by what the handler evaluates.
    pub now: SimTime,
    /// The CPU running the handler (its `_OST` evaluations are this CPU's accesses).
    pub cpu: LogicalCpu,
    /// The machine.
    pub hw: &'a mut Cx<'b>,
}

/// What the OS does with a notification of one kind of device.
type Handler = fn(&mut Os, &mut Sci<'_, '_>, &Notification);

/// The handlers, by the `_HID` of the device notified.
const BY_HID: [(&str, Handler); 3] = [
    ("ACPI0004", module),
    ("ACPI0007", processor),
    ("PNP0C80", memory_device),
];

/// A notification taken and not answered yet. Firmware hears its outcome — `_OST` on the
/// device it notified, with the notification's code as the source event — once its handler
/// and every operation it started are done: the first failure, else success.
#[derive(Clone, Debug)]
pub(crate) struct Unanswered {
    path: String,
    code: u8,
    status: OstStatus,
}

/// Handles firmware's pending notifications, on CPU `cpu` from `now`; returns when the
/// handler is done (each `_STA` and `_OST` it evaluated cost time).
pub(crate) fn take_all(os: &mut Os, now: SimTime, cpu: LogicalCpu, cx: &mut Cx<'_>) -> SimTime {
    let mut sci = Sci { now, cpu, hw: cx };
    for n in sci.hw.p.take_notifications(now, sci.hw.probe) {
        os.emit(
            now,
            OsEvent::AcpiNotify {
                path: n.path.clone(),
                code: n.code.code(),
            },
        );
        os.unanswered.insert(
            n.id,
            Unanswered {
                path: n.path.clone(),
                code: n.code.code(),
                status: OstStatus::Success,
            },
        );
        let by_hid = crate::acpi::hid(sci.hw.p, &n.path)
            .and_then(|h| BY_HID.iter().find(|(x, _)| *x == h).map(|&(_, f)| f));
        let handler = by_hid.or_else(|| {
            os.pcihp
                .slots
                .iter()
                .any(|s| s.path == n.path)
                .then_some(slot as Handler)
        });
        match handler {
            Some(f) => f(os, &mut sci, &n),
            // Not a device this OS handles: firmware hears it is not supported.
            None => settle(os, n.id, OstStatus::NotSupported),
        }
        answer_when_done(os, &mut sci.now, sci.cpu, n.id, sci.hw);
    }
    sci.now
}

/// Notes `status` as the outcome of notification `id`, unless an earlier failure already is.
pub(crate) fn settle(os: &mut Os, id: NotifyId, status: OstStatus) {
    if let Some(u) = os.unanswered.get_mut(&id) {
        if u.status == OstStatus::Success {
            u.status = status;
        }
    }
}

/// Answers notification `id` with `_OST` as CPU `cpu` from `t` (advanced by the evaluation),
/// unless an operation it started still runs or waits in any flow.
pub(crate) fn answer_when_done(
    os: &mut Os,
    t: &mut SimTime,
    cpu: LogicalCpu,
    id: NotifyId,
    cx: &mut Cx<'_>,
) {
    let started = |c: Option<NotifyId>| c == Some(id);
    let running = os.hp.pending().any(|(_, r)| started(r.cause))
        || os.memhp.pending().any(|(_, r)| started(r.cause))
        || os.pcihp.pending().any(|(_, r)| started(r.cause));
    if running {
        return;
    }
    let Some(u) = os.unanswered.remove(&id) else {
        return;
    };
    let _ = os.acpi_eval(
        t,
        cpu,
        &format!("{}._OST", u.path),
        &[
            AcpiValue::Integer(u64::from(u.code)),
            AcpiValue::Integer(u.status.code()),
        ],
        cx,
    );
}

/// Refuses notification `n` (nothing changes): recorded as a refusal, and firmware hears why.
fn refuse(os: &mut Os, sci: &mut Sci<'_, '_>, n: &Notification, e: &MemError) {
    CpuFlow::refuse_for(
        os,
        sci.now,
        n.path.clone(),
        e.errno(),
        e.to_string(),
        Some(n.id),
    );
    settle(os, n.id, e.ost());
}

/// Whether `path` is `module` or a device below it.
fn within(path: &str, module: &str) -> bool {
    path == module
        || path
            .strip_prefix(module)
            .is_some_and(|r| r.starts_with('.'))
}

fn trigger_of(code: NotifyCode) -> Trigger {
    match code {
        NotifyCode::EjectRequest => Trigger::AcpiEject,
        NotifyCode::DeviceCheck | NotifyCode::BusCheck => Trigger::AcpiDeviceCheck,
    }
}

/// A module device (ACPI0004): a cell board (it holds memory: the cell flow), an I/O
/// subsystem (it holds host bridges), or a module of processors only.
fn module(os: &mut Os, sci: &mut Sci<'_, '_>, n: &Notification) {
    if os.scan().memory.iter().any(|m| within(&m.path, &n.path)) {
        memory(os, sci, n);
    } else if !PciFlow::subsystem_bridges(os, &n.path).is_empty() {
        io_subsystem(os, sci, n);
    } else {
        processor(os, sci, n);
    }
}

/// A memory device (PNP0C80) on its own.
fn memory_device(os: &mut Os, sci: &mut Sci<'_, '_>, n: &Notification) {
    memory(os, sci, n);
}

/// Memory: a memory device (offline / online) or the cell module holding it (cell remove /
/// add, CPUs and chipset included).
fn memory(os: &mut Os, sci: &mut Sci<'_, '_>, n: &Notification) {
    let Some((mpath, node)) = os
        .scan()
        .memory
        .iter()
        .find(|m| within(&m.path, &n.path))
        .map(|m| (m.path.clone(), m.node))
    else {
        return settle(os, n.id, OstStatus::NotSupported);
    };
    let whole_cell = mpath != n.path;
    let add = matches!(n.code, NotifyCode::DeviceCheck | NotifyCode::BusCheck);
    let kind = match (add, whole_cell) {
        (false, true) => MemOpKind::CellRemove,
        (false, false) => MemOpKind::Offline,
        (true, true) => MemOpKind::CellAdd,
        (true, false) => MemOpKind::Online,
    };
    if let Err(e) = MemFlow::check_cell_request(os, &n.path, node, !add) {
        return refuse(os, sci, n, &e);
    }
    if add {
        // Firmware says something arrived: re-read presence of its processors.
        for x in os.possible.iter().collect::<Vec<_>>() {
            let path = os.pcpu[x.index()].path.clone();
            if path.starts_with(&format!("{}.", n.path))
                && os.sta_present(&mut sci.now, sci.cpu, &path, sci.hw)
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
            node: Some(NodeId(node)),
            trigger: trigger_of(n.code),
            acpi_path: Some(n.path.clone()),
            requested: sci.now,
            cause: Some(n.id),
        },
    );
}

/// A hot-plug slot: the ACPI PCI hot-plug driver.
fn slot(os: &mut Os, sci: &mut Sci<'_, '_>, n: &Notification) {
    let Some((sun, enabled)) = os
        .pcihp
        .slots
        .iter()
        .find(|s| s.path == n.path)
        .map(|s| (s.sun.0, s.enabled))
    else {
        return;
    };
    let card = os.sta_present(&mut sci.now, sci.cpu, &n.path, sci.hw);
    if !card {
        disconnect_under(os, sci.now, &n.path);
    }
    let op = match n.code {
        NotifyCode::EjectRequest => Some(PciOpKind::Eject),
        // A device or bus check: bring up what arrived; what is gone goes.
        NotifyCode::DeviceCheck | NotifyCode::BusCheck => match (card, enabled) {
            (true, false) => Some(PciOpKind::Enable),
            (false, true) => Some(PciOpKind::Disable),
            (true, true) | (false, false) => None,
        },
    };
    if let Some(kind) = op {
        if let Err(e) = PciFlow::request(os, sci.now, sun, kind, trigger_of(n.code), Some(n.id)) {
            settle(os, n.id, e.ost());
        }
    }
}

/// Firmware says the hardware at `path` is gone: the cards of the enabled slots at or under
/// it are disconnected from their driver at once (and the kernel's disk among them fails
/// every transfer it had).
fn disconnect_under(os: &mut Os, now: SimTime, path: &str) {
    let cards: Vec<usize> = os
        .pcihp
        .slots
        .iter()
        .filter(|s| s.enabled && within(&s.path, path))
        .filter_map(|s| s.card)
        .collect();
    for k in cards {
        os.driver.disconnect(k);
        crate::mm::kernel::Mm::disk_gone(os, now, k);
    }
}

/// An I/O subsystem's module device: the whole subsystem comes or goes.
fn io_subsystem(os: &mut Os, sci: &mut Sci<'_, '_>, n: &Notification) {
    let add = matches!(n.code, NotifyCode::DeviceCheck | NotifyCode::BusCheck);
    let present = os.sta_present(&mut sci.now, sci.cpu, &n.path, sci.hw);
    if !present {
        disconnect_under(os, sci.now, &n.path);
        let gone: Vec<u64> = os
            .scan()
            .sapics
            .iter()
            .filter(|s| within(&s.path, &n.path) && os.sapic_sizes.contains_key(&s.base))
            .map(|s| s.base)
            .collect();
        os.sapics_gone.extend(gone);
    }
    let r = PciFlow::subsystem_request(
        os,
        sci.now,
        &n.path,
        add,
        present,
        trigger_of(n.code),
        Some(n.id),
    );
    if let Err(e) = r {
        let (errno, error) = (e.errno(), e.to_string());
        CpuFlow::refuse_for(os, sci.now, n.path.clone(), errno, error, Some(n.id));
        settle(os, n.id, e.ost());
    }
}

/// A processor (ACPI0007), or a module holding processors: each goes down or comes up.
fn processor(os: &mut Os, sci: &mut Sci<'_, '_>, n: &Notification) {
    let cpus: Vec<LogicalCpu> = os
        .possible
        .iter()
        .filter(|x| within(&os.pcpu[x.index()].path, &n.path))
        .collect();
    if cpus.is_empty() {
        // Not a processor of this OS nor a module holding some.
        return settle(os, n.id, OstStatus::NotSupported);
    }
    // A module's eject takes its whole board away: not when memory is interleaved (the
    // board holds lines of every page).
    let module = cpus.iter().all(|x| os.pcpu[x.index()].path != n.path);
    if let (NotifyCode::EjectRequest, true, Some(m)) =
        (n.code, module, os.scan().interleaved_memory())
    {
        let e = MemError::Interleaved {
            path: n.path.clone(),
            memory: m.path.clone(),
        };
        return refuse(os, sci, n, &e);
    }
    for x in cpus {
        let path = os.pcpu[x.index()].path.clone();
        let kind = match n.code {
            NotifyCode::EjectRequest => OpKind::Down,
            NotifyCode::DeviceCheck | NotifyCode::BusCheck => {
                if os.sta_present(&mut sci.now, sci.cpu, &path, sci.hw) && !os.present.contains(x) {
                    os.present.set(x);
                    os.pcpu[x.index()].life = CpuLife::Offline;
                }
                OpKind::Up
            }
        };
        // Checked, and still not there: nothing to bring up.
        if kind == OpKind::Up && !os.present.contains(x) {
            continue;
        }
        if let Err(e) = CpuFlow::request(os, sci.now, kind, x.0, trigger_of(n.code), Some(n.id)) {
            settle(os, n.id, e.ost());
        }
    }
}
