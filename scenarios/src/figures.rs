//! Named figures of a run, for `[[expect.figures]]` (a figure within bounds).
//!
//! Each figure is one number computed from the finished run: a hardware counter, an OS
//! counter, or an aggregate over the run's hot-plug operations (sums over every operation,
//! `*_max_ns` the longest one). The list is fixed so that a scenario naming an unknown figure
//! is refused before the run; figures of the OS are 0 when no OS ran.

use std::collections::BTreeMap;

use os_model::memhotplug::{MemOpKind, MoveCounts};
use sim_core::SimTime;

use crate::runner::{ExpectationResult, RunResult};
use crate::scenario::ExpectedFigure;

/// Every figure: its name and what it counts.
pub const FIGURES: [(&str, &str); 49] = [
    ("sim_time_ns", "simulated time at the end of the run"),
    (
        "accesses",
        "coherent loads and stores performed by the CPUs",
    ),
    (
        "hit_rate",
        "fraction of accesses that hit in the cache (0..1)",
    ),
    (
        "remote_fraction",
        "fraction of coherence messages that crossed the crossbar (0..1)",
    ),
    ("writebacks", "dirty lines written back to memory"),
    (
        "writebacks_lost",
        "dirty lines given up whose data memory never took (home offline, or a defect)",
    ),
    ("violations", "checker reports of every checker"),
    (
        "surprise_discoveries",
        "accesses that found a surprise-removed card or IO SAPIC gone first (CHK-1 counts, not reports, them)",
    ),
    ("audits", "full coherence audits run"),
    ("interrupts_sent", "device interrupts raised by cards"),
    ("dma_records", "records written into memory by card DMA"),
    (
        "blk_commands",
        "block commands storage cards completed (failed ones included)",
    ),
    (
        "failed_accesses",
        "MMIO/config/port accesses that found no device",
    ),
    ("context_switches", "OS context switches"),
    ("balance_moves", "tasks moved by the load balancer"),
    ("ipis", "IPIs sent by the OS"),
    ("tlb_shootdowns", "TLB shootdowns by the OS"),
    ("rcu_grace_periods", "RCU grace periods completed"),
    ("rcu_grace_max_ns", "longest RCU grace period"),
    (
        "cpu_ops",
        "CPU hot-plug operations that finished ok (boot's bring-up of the other CPUs not counted)",
    ),
    ("cpu_ops_failed", "CPU hot-plug operations that failed"),
    (
        "ops_unfinished",
        "hot-plug operations (CPU, memory, PCI) still running or queued at the end",
    ),
    ("cpu_op_max_ns", "longest CPU hot-plug operation"),
    ("tasks_migrated", "tasks moved off CPUs going down"),
    ("irqs_rerouted", "IRQs re-routed off CPUs going down"),
    ("lines_flushed", "cache lines flushed by CPUs going down"),
    ("mem_ops", "memory hot-plug operations that finished ok"),
    ("mem_ops_failed", "memory hot-plug operations that failed"),
    ("mem_op_max_ns", "longest memory hot-plug operation"),
    ("cell_removes", "whole-cell removals that finished ok"),
    ("cell_adds", "whole-cell additions that finished ok"),
    (
        "min_pages_moved",
        "fewest pages moved off by one memory hot-remove that finished ok (0 if none did)",
    ),
    (
        "pages_moved",
        "pages moved off memory going out, by every method (remapped + swapped + dropped)",
    ),
    ("pages_remapped", "pages copied to a new frame and remapped"),
    ("pages_hugetlb", "hugetlb pages moved in two stages"),
    ("pages_swapped", "anonymous pages written to swap"),
    ("pages_dropped", "clean page-cache pages dropped"),
    (
        "pages_written_back",
        "dirty pages written back before they moved",
    ),
    (
        "migration_retries",
        "pages found busy and retried in a later pass",
    ),
    ("migration_bytes", "bytes copied by page migration"),
    (
        "shootdown_ipis",
        "TLB shootdown IPIs sent by memory hot-remove",
    ),
    ("pci_ops", "PCI hot-plug operations that finished ok"),
    ("pci_ops_failed", "PCI hot-plug operations that failed"),
    ("pci_op_max_ns", "longest PCI hot-plug operation"),
    (
        "policy_actions",
        "actions taken by the RAS and power policies",
    ),
    (
        "swap_cache_waits",
        "faults on a swap entry whose page was still on its way to the disk (they waited for it)",
    ),
    ("cpus_online", "CPUs online at the end of the run"),
    (
        "memory_blocks_online",
        "memory blocks online at the end of the run",
    ),
    (
        "min_node_pages_used",
        "fewest pages in use on one node with memory, at the end of the run",
    ),
];

/// Whether `name` is a figure.
pub fn is_figure(name: &str) -> bool {
    FIGURES.iter().any(|(n, _)| *n == name)
}

fn ok<E>(res: &Option<Result<(), E>>) -> u64 {
    u64::from(matches!(res, Some(Ok(()))))
}

fn failed<E>(res: &Option<Result<(), E>>) -> u64 {
    u64::from(matches!(res, Some(Err(_))))
}

/// The longest of the finished operations' (start, end), in nanoseconds (0 if none).
fn longest(ops: impl Iterator<Item = (SimTime, Option<SimTime>)>) -> f64 {
    ops.filter_map(|(start, end)| Some(end? - start))
        .max()
        .map_or(0, |d| d.as_nanos()) as f64
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The value of figure `name` in run `r` (`None`: no such figure).
pub fn value(r: &RunResult, name: &str) -> Option<f64> {
    let m = r.platform.machine().stats();
    let io = r.platform.io().stats();
    let os = r.os.as_ref();
    let os_stat = |f: fn(&os_model::OsStats) -> u64| os.map_or(0, |o| f(o.stats())) as f64;
    // CPU operations after boot (boot's bring-up of the secondaries takes the same path,
    // but is not hot-plug).
    let cpu_ops = || {
        os.into_iter().flat_map(|o| {
            o.hotplug()
                .done()
                .iter()
                .filter(|op| op.trigger != os_model::hotplug::Trigger::Boot)
        })
    };
    let cpu =
        |f: &dyn Fn(&os_model::OpReport) -> u64| -> f64 { cpu_ops().map(f).sum::<u64>() as f64 };
    let cpu_max = || longest(cpu_ops().map(|op| (op.started, op.ended)));
    let mem_ops = || os.into_iter().flat_map(|o| o.mem_hotplug().done().iter());
    let mem = |f: &dyn Fn(&os_model::memhotplug::MemOpReport) -> u64| -> f64 {
        mem_ops().map(f).sum::<u64>() as f64
    };
    let moved = |f: fn(&MoveCounts) -> u64| mem(&|op| f(&op.moved));
    let mem_max = || longest(mem_ops().map(|op| (op.started, op.ended)));
    let pci_ops = || os.into_iter().flat_map(|o| o.pci_hotplug().done().iter());
    let pci = |f: &dyn Fn(&os_model::pcihp::PciOpReport) -> u64| -> f64 {
        pci_ops().map(f).sum::<u64>() as f64
    };
    let pci_max = || longest(pci_ops().map(|op| (op.started, op.ended)));
    let vm = |f: &dyn Fn(&os_model::mm::manager::Vm) -> u64| -> f64 {
        os.and_then(os_model::Os::vm).map_or(0, f) as f64
    };
    let v = match name {
        "sim_time_ns" => r.end.as_nanos() as f64,
        "accesses" => m.accesses() as f64,
        "hit_rate" => m.hit_rate(),
        "remote_fraction" => ratio(m.remote_messages, m.messages),
        "writebacks" => m.writebacks as f64,
        "writebacks_lost" => m.writebacks_lost as f64,
        "ops_unfinished" => os.map_or(0, |o| {
            o.hotplug().pending().count()
                + o.mem_hotplug().pending().count()
                + o.pci_hotplug().pending().count()
        }) as f64,
        "violations" => r.violations.total() as f64,
        "surprise_discoveries" => {
            r.violations
                .tally_of("CHK-1", io_subsystem::check::DISCOVERIES) as f64
        }
        "audits" => r.audits as f64,
        "interrupts_sent" => io.interrupts_sent as f64,
        "dma_records" => io.dma_records as f64,
        "blk_commands" => (io.blk_done + io.blk_failed) as f64,
        "failed_accesses" => io.failed_accesses as f64,
        "context_switches" => os_stat(|s| s.context_switches),
        "balance_moves" => os_stat(|s| s.balance_moves),
        "ipis" => os_stat(|s| s.ipis_sent),
        "tlb_shootdowns" => os_stat(|s| s.shootdowns),
        "rcu_grace_periods" => os.map_or(0, |o| o.rcu_stats().grace_periods) as f64,
        "rcu_grace_max_ns" => os.map_or(0, |o| o.rcu_stats().max_ns) as f64,
        "cpu_ops" => cpu(&|op| ok(&op.result)),
        "cpu_ops_failed" => cpu(&|op| failed(&op.result)),
        "cpu_op_max_ns" => cpu_max(),
        "tasks_migrated" => cpu(&|op| op.tasks_migrated.into()),
        "irqs_rerouted" => cpu(&|op| op.irqs_rerouted.into()),
        "lines_flushed" => cpu(&|op| op.flushed_lines.into()),
        "mem_ops" => mem(&|op| ok(&op.result)),
        "mem_ops_failed" => mem(&|op| failed(&op.result)),
        "mem_op_max_ns" => mem_max(),
        "cell_removes" => mem(&|op| ok(&op.result) * u64::from(op.kind == MemOpKind::CellRemove)),
        "cell_adds" => mem(&|op| ok(&op.result) * u64::from(op.kind == MemOpKind::CellAdd)),
        "min_pages_moved" => mem_ops()
            .filter(|op| {
                matches!(op.kind, MemOpKind::CellRemove | MemOpKind::Offline) && ok(&op.result) == 1
            })
            .map(|op| {
                let c = &op.moved;
                u64::from(c.remapped) + u64::from(c.swapped) + u64::from(c.dropped)
            })
            .min()
            .unwrap_or(0) as f64,
        "pages_moved" => {
            moved(|c| u64::from(c.remapped) + u64::from(c.swapped) + u64::from(c.dropped))
        }
        "pages_remapped" => moved(|c| c.remapped.into()),
        "pages_hugetlb" => moved(|c| c.huge.into()),
        "pages_swapped" => moved(|c| c.swapped.into()),
        "pages_dropped" => moved(|c| c.dropped.into()),
        "pages_written_back" => moved(|c| c.written_back.into()),
        "migration_retries" => moved(|c| c.retries.into()),
        "migration_bytes" => moved(|c| c.bytes_copied),
        "shootdown_ipis" => moved(|c| c.shootdown_ipis.into()),
        "pci_ops" => pci(&|op| ok(&op.result)),
        "pci_ops_failed" => pci(&|op| failed(&op.result)),
        "pci_op_max_ns" => pci_max(),
        "policy_actions" => os.map_or(0, |o| o.policies().actions.len()) as f64,
        "swap_cache_waits" => vm(&|v| v.stats.swap_cache_waits),
        "cpus_online" => os.map_or(0, |o| o.maps().online.weight()) as f64,
        "memory_blocks_online" => vm(&|v| {
            v.phys
                .blocks
                .iter()
                .filter(|b| b.state == os_model::mm::BlockState::Online)
                .count() as u64
        }),
        "min_node_pages_used" => vm(&|v| {
            let mut used: BTreeMap<u32, u64> = BTreeMap::new();
            for ((node, _), (present, free)) in v.phys.zone_summary() {
                *used.entry(node).or_default() += present - free;
            }
            used.values().copied().min().unwrap_or(0)
        }),
        _ => return None,
    };
    Some(v)
}

/// Every figure of run `r`, by name.
pub fn all(r: &RunResult) -> BTreeMap<&'static str, f64> {
    FIGURES
        .iter()
        .filter_map(|(n, _)| Some((*n, value(r, n)?)))
        .collect()
}

fn show(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.6}")
    }
}

/// Judges each `[[expect.figures]]` entry against the finished run.
pub fn judge(figures: &[ExpectedFigure], r: &RunResult) -> Vec<ExpectationResult> {
    figures
        .iter()
        .map(|e| {
            let bounds = match (e.min, e.max) {
                (Some(lo), Some(hi)) => format!("in {}..={}", show(lo), show(hi)),
                (Some(lo), None) => format!(">= {}", show(lo)),
                (None, Some(hi)) => format!("<= {}", show(hi)),
                (None, None) => "defined".to_owned(),
            };
            let what = format!("{} {bounds}", e.figure);
            match value(r, &e.figure) {
                Some(v) => ExpectationResult {
                    what,
                    met: e.min.is_none_or(|lo| v >= lo) && e.max.is_none_or(|hi| v <= hi),
                    detail: show(v),
                },
                None => ExpectationResult {
                    what,
                    met: false,
                    detail: "no such figure".into(),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_names_are_unique_and_snake_case() {
        let mut names: Vec<&str> = FIGURES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        for n in names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
        }
    }

    #[test]
    fn integers_print_without_decimals() {
        assert_eq!(show(712.0), "712");
        assert_eq!(show(0.815), "0.815000");
    }
}
