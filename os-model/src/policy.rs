//! The kernel's RAS and power policies (SPEC OS-IF-2, OS-IF-3; seed 000 §2.2): daemons that
//! decide hot-plug operations on their own, through the same requests a user or firmware
//! makes.
//!
//! ```text
//!  RAS:   every poll_interval, SAL GET/CLEAR_STATE_INFO (CMC: processors, CPE: memory pages)
//!         ─► corrected errors counted per CPU, memory block and cell
//!         ─► cell over cell_threshold: the whole cell is swapped (its hot-remove, as an eject
//!            request would; the operator then replaces the board)
//!            CPU over cpu_threshold: offline; block over memory_threshold: offline
//!  power: every interval, runnable user tasks per online CPU
//!         ─► below low_load: the highest-numbered idle CPU goes offline (down to min_online)
//!            above high_load: a CPU this policy took offline comes back
//! ```
//!
//! Each decision is recorded (time, policy, target, why, what came of the request).

use crate::hw::Cx;
use crate::ids::NodeId;
use serde::Serialize;
use sim_core::SimTime;

use crate::cpumask::LogicalCpu;
use crate::hotplug::{OpKind, Trigger};
use crate::kernel::{Os, OsEv};
use crate::memhotplug::MemFlow;
use crate::memhotplug::{MemOpKind, MemRequest};

pub use crate::config::{PowerConfig, RasConfig};

/// One decision of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyAction {
    /// When.
    pub time: SimTime,
    /// `ras` or `power`.
    pub policy: &'static str,
    /// What it acts on (`cpu5`, `memory40`, `cell3`).
    pub target: String,
    /// Why, in words.
    pub why: String,
    /// What the request gave (`queued as …`, or the refusal).
    pub outcome: String,
}

/// The policies' state and history.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    /// Corrected errors counted per logical CPU.
    pub cpu_errors: Vec<u64>,
    /// Corrected errors counted per memory block.
    pub block_errors: Vec<u64>,
    /// Corrected errors counted per cell.
    pub cell_errors: Vec<u64>,
    /// Targets already acted on (each once).
    acted: Vec<String>,
    /// CPUs the power policy took offline.
    parked: Vec<LogicalCpu>,
    /// Every decision.
    pub actions: Vec<PolicyAction>,
}

impl Policies {
    /// Starts the enabled policies' timers (at the end of boot).
    pub(crate) fn policies_start(os: &mut Os, now: SimTime) {
        if os.config().ras.enabled {
            os.post(now + os.config().ras.poll_interval, OsEv::RasPoll);
        }
        if os.config().power.enabled {
            os.post(now + os.config().power.interval, OsEv::PowerPoll);
        }
    }

    pub(crate) fn policy_act(
        os: &mut Os,
        time: SimTime,
        policy: &'static str,
        target: String,
        why: String,
        outcome: String,
    ) {
        os.policy.acted.push(format!("{policy}:{target}"));
        os.policy.actions.push(PolicyAction {
            time,
            policy,
            target,
            why,
            outcome,
        });
    }

    pub(crate) fn acted(os: &Os, policy: &str, target: &str) -> bool {
        os.policy
            .acted
            .iter()
            .any(|a| *a == format!("{policy}:{target}"))
    }

    /// The RAS daemon's poll: read firmware's corrected-error log, count, decide.
    pub(crate) fn ras_poll(os: &mut Os, now: SimTime, cx: &mut Cx<'_>) {
        os.post(now + os.config().ras.poll_interval, OsEv::RasPoll);
        let Some(ctl) = os.cur_maps().online.first() else {
            return;
        };
        let log = cx.p.sal_corrected_errors(os.hw(ctl));
        let cells = cx.p.geometry().cells;
        let nr = os.nr_cpus();
        let pol = &mut os.policy;
        pol.cpu_errors.resize(nr, 0);
        pol.cell_errors.resize(cells, 0);
        if let Some(vm) = os.vm.as_ref() {
            pol.block_errors.resize(vm.phys.blocks.len(), 0);
        }
        for (hw, n) in &log.cpus {
            if let Some(c) = os.logical_of(*hw) {
                os.policy.cpu_errors[c.index()] += n;
                let node = os.pcpu[c.index()].node as usize;
                if let Some(x) = os.policy.cell_errors.get_mut(node) {
                    *x += n;
                }
            }
        }
        for (addr, n) in &log.memory {
            let Some(vm) = os.vm.as_ref() else {
                continue;
            };
            let pfn = vm.phys.pfn(addr.raw());
            let b = vm.phys.block_of(pfn) as usize;
            let node = vm.phys.blocks.get(b).map_or(0, |x| x.node) as usize;
            if let Some(x) = os.policy.block_errors.get_mut(b) {
                *x += n;
            }
            if let Some(x) = os.policy.cell_errors.get_mut(node) {
                *x += n;
            }
        }
        let cfg = os.config().ras.clone();
        // A cell over its threshold is swapped as a whole (which takes its CPUs and memory).
        for cell in 0..os.policy.cell_errors.len() {
            let n = os.policy.cell_errors[cell];
            let target = format!("cell{cell}");
            if cfg.cell_threshold == 0
                || n < cfg.cell_threshold
                || Policies::acted(os, "ras", &target)
            {
                continue;
            }
            let module = os
                .scan()
                .memory
                .iter()
                .find(|m| m.node == cell as u32)
                .and_then(|m| m.path.rsplit_once('.').map(|(a, _)| a.to_owned()));
            let present = os
                .vm
                .as_ref()
                .is_some_and(|vm| vm.phys.nodes.get(cell).is_some_and(|x| x.present));
            let outcome = match (module, present) {
                (Some(path), true) => {
                    let id = MemFlow::mem_enqueue(
                        os,
                        MemRequest {
                            kind: MemOpKind::CellRemove,
                            blocks: Vec::new(),
                            node: Some(NodeId(cell as u32)),
                            trigger: Trigger::Ras,
                            acpi_path: Some(path.clone()),
                            requested: now,
                            cause: None,
                        },
                    );
                    format!("cell swap requested: memory operation {id} ({path} hot-removed)")
                }
                (_, false) => "the cell's memory is not there: nothing to swap".to_owned(),
                (None, true) => "no module device for the cell".to_owned(),
            };
            Policies::policy_act(
                os,
                now,
                "ras",
                target,
                format!("{n} corrected errors (threshold {})", cfg.cell_threshold),
                outcome,
            );
        }
        for c in os.possible.iter().collect::<Vec<_>>() {
            let n = os.policy.cpu_errors[c.index()];
            let target = c.to_string();
            let node = os.pcpu[c.index()].node;
            if cfg.cpu_threshold == 0
                || n < cfg.cpu_threshold
                || Policies::acted(os, "ras", &target)
                || Policies::acted(os, "ras", &format!("cell{node}"))
            {
                continue;
            }
            let outcome = match os.request(now, OpKind::Down, c.0, Trigger::Ras) {
                Ok(a) => a.to_string(),
                Err(e) => format!("refused: {}: {e}", e.errno()),
            };
            Policies::policy_act(
                os,
                now,
                "ras",
                target,
                format!("{n} corrected errors (threshold {})", cfg.cpu_threshold),
                outcome,
            );
        }
        for b in 0..os.policy.block_errors.len() {
            let n = os.policy.block_errors[b];
            let target = format!("memory{b}");
            let node = os.vm.as_ref().map_or(0, |vm| vm.phys.blocks[b].node);
            if cfg.memory_threshold == 0
                || n < cfg.memory_threshold
                || Policies::acted(os, "ras", &target)
                || Policies::acted(os, "ras", &format!("cell{node}"))
            {
                continue;
            }
            let outcome = match MemFlow::mem_request_by(os, now, b as u32, false, Trigger::Ras) {
                Ok(op) => format!("queued as memory operation {op}"),
                Err(e) => format!("refused: {}: {e}", e.errno()),
            };
            Policies::policy_act(
                os,
                now,
                "ras",
                target,
                format!("{n} corrected errors (threshold {})", cfg.memory_threshold),
                outcome,
            );
        }
    }

    /// A new board replaced cell `cell`: its CPUs, memory and the cell start with no
    /// errors counted, and the RAS policy may act on them again.
    pub(crate) fn policy_cell_replaced(os: &mut Os, cell: u32) {
        let cpus: Vec<usize> = os
            .possible
            .iter()
            .filter(|c| os.pcpu[c.index()].node == cell)
            .map(LogicalCpu::index)
            .collect();
        let blocks: Vec<usize> = os.vm.as_ref().map_or(Vec::new(), |vm| {
            (0..vm.phys.blocks.len())
                .filter(|&b| vm.phys.blocks[b].node == cell)
                .collect()
        });
        let pol = &mut os.policy;
        let mut names = vec![format!("ras:cell{cell}")];
        for &c in &cpus {
            if let Some(x) = pol.cpu_errors.get_mut(c) {
                *x = 0;
            }
            names.push(format!("ras:cpu{c}"));
        }
        for &b in &blocks {
            if let Some(x) = pol.block_errors.get_mut(b) {
                *x = 0;
            }
            names.push(format!("ras:memory{b}"));
        }
        if let Some(x) = pol.cell_errors.get_mut(cell as usize) {
            *x = 0;
        }
        pol.acted.retain(|a| !names.contains(a));
    }

    pub(crate) fn is_user(os: &Os, t: crate::event::TaskId) -> bool {
        os.tasks
            .get(t.0 as usize)
            .is_some_and(|x| x.kind == crate::sched::TaskKind::User)
    }

    /// The power policy's decision: park an idle CPU under low load, bring one back under
    /// load.
    pub(crate) fn power_poll(os: &mut Os, now: SimTime) {
        os.post(now + os.config().power.interval, OsEv::PowerPoll);
        let cfg = os.config().power.clone();
        let online: Vec<LogicalCpu> = os.cur_maps().online.iter().collect();
        if online.is_empty() || !os.hp.is_idle() {
            return;
        }
        let runnable: usize = online
            .iter()
            .map(|c| {
                let pc = &os.pcpu[c.index()];
                pc.rq.len() + usize::from(pc.curr.is_some_and(|t| Policies::is_user(os, t)))
            })
            .sum();
        let load = runnable as f64 / online.len() as f64;
        if load < cfg.low_load && online.len() > cfg.min_online.max(1) as usize {
            // The highest-numbered idle CPU that may go (not the boot CPU).
            let pick = online.iter().rev().copied().find(|c| {
                let pc = &os.pcpu[c.index()];
                *c != os.boot_cpu()
                    && pc.rq.is_empty()
                    && !pc.curr.is_some_and(|t| Policies::is_user(os, t))
            });
            if let Some(c) = pick {
                let outcome = match os.request(now, OpKind::Down, c.0, Trigger::Power) {
                    Ok(a) => {
                        os.policy.parked.push(c);
                        a.to_string()
                    }
                    Err(e) => format!("refused: {}: {e}", e.errno()),
                };
                os.policy.actions.push(PolicyAction {
                    time: now,
                    policy: "power",
                    target: c.to_string(),
                    why: format!("load {load:.2} per online CPU < {}", cfg.low_load),
                    outcome,
                });
            }
        } else if load > cfg.high_load {
            if let Some(c) = os.policy.parked.pop() {
                let outcome = match os.request(now, OpKind::Up, c.0, Trigger::Power) {
                    Ok(a) => a.to_string(),
                    Err(e) => format!("refused: {}: {e}", e.errno()),
                };
                os.policy.actions.push(PolicyAction {
                    time: now,
                    policy: "power",
                    target: c.to_string(),
                    why: format!("load {load:.2} per online CPU > {}", cfg.high_load),
                    outcome,
                });
            }
        }
    }
}
