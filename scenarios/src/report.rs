//! Reports of a run: the human summary and the `--json` report.
//!
//! # JSON schema (version 1)
//!
//! ```text
//! {
//!   "schema": 1,
//!   "scenario": "coherence_stress",          // name
//!   "file": "scenarios/coherence_stress.toml",
//!   "seed": 1,
//!   "trace_hash": "89ab...",                  // 16 hex digits; equal hashes = identical runs
//!   "result": "clean" | "violations" | "refused_actions" | "unmet_expectations",
//!   "exit_code": 0 | 1,
//!   "sim_time_ns": 5000000,
//!   "violations_total": 0,                    // all reported, even beyond the kept ones
//!   "violations_unexpected": 0,               // those no [[expect.reports]] entry covers
//!   "violations_per_checker": {"CHK-1": 0, "CHK-2": 0, "TESTER": 0},
//!   "tallies": {"CHK-1 surprise discoveries": 3},
//!   "violations": [ {"time_ns", "checker", "checker_name", "agent", "target", "message"} ],
//!   "expectations": [ {"what": "CHK-2 fires", "met": true, "detail": "12 violations"} ],
//!   "timeline": [ {"time_ns", "action", "target", "ok", "result", "errno", "expected",
//!                  "as_expected", "changed_on_refusal"} ],   // the last: a refusal that
//!                                             // changed state anyway (its parts), or null
//!   "refusals": [ {"time_ns", "target", "errno", "error"} ],  // requests the OS refused
//!   "stats": { "machine": {...MachineStats}, "io": {...IoStats}, "driver": {...},
//!              "firmware": {"notifications", "pending": [...], "ost": [...]},
//!              "tester": {...}, "audits": 12, "trace_events": 123456, "hit_rate": 0.74 },
//!   "os": null | {                            // workload.kind = "os"
//!     "booted_at_ns", "online": "0-4,6-31", "active": "...", "present", "possible",
//!     "tasks", "irqs": [ {"gsi", "vector", "cpu", "handled", "rerouted"} ],
//!     "stats": {...OsStats}, "rcu": {...RcuStats},
//!     "hotplug": [ {"id", "kind", "cpu", "hw_cpu", "trigger", "controller", "requested_ns",
//!                   "started_ns", "duration_ns", "result", "errno", "tasks_migrated",
//!                   "irqs_rerouted", "timers_moved", "work_moved", "flushed_lines",
//!                   "dirty_lines", "steps": [ {"step", "start_ns", "duration_ns", "note"} ]} ],
//!     "memory": { "zones": [ {"node", "zone", "present_pages", "free_pages"} ],
//!                 "blocks": [ {"block", "node", "state", "zone"} ],   // blocks not offline
//!                 "vm": {...VmStats}, "swap_used": 0, "files": 0, "address_spaces": 0 },
//!     "memory_hotplug": [ {"id", "kind", "trigger", "blocks", "node", "path", "controller",
//!                   "requested_ns", "started_ns", "duration_ns", "result", "errno",
//!                   "restored_exactly", "moved": {...MoveCounts},
//!                   "steps": [ {"step", "start_ns", "duration_ns", "note"} ]} ],
//!     "pci_slots": [ {"slot", "address", "enabled", "bar": [base, size] | null,
//!                     "io_bar": [base, size] | null} ],
//!     "pci_hotplug": [ {"id", "kind", "target", "trigger", "controller", "requested_ns",
//!                   "started_ns", "duration_ns", "result", "errno",
//!                   "steps": [ {"step", "start_ns", "duration_ns", "note"} ]} ],
//!     "policies": [ {"time_ns", "policy", "target", "why", "outcome"} ]
//!   },
//!   "figures": { "accesses": 3617832, "hit_rate": 0.815, ... }  // every figure of
//!                                             // scenarios/src/figures.rs, by name
//! }
//! ```
//! Keys appear in this order; the report holds no host-dependent value (no wall-clock time),
//! so the same scenario and seed give a byte-identical report.

use std::fmt::Write as _;

use serde::Serialize;

use crate::runner::RunResult;
use crate::scenario::Scenario;

#[derive(Serialize)]
struct JsonViolation {
    time_ns: u64,
    checker: &'static str,
    checker_name: &'static str,
    agent: String,
    target: String,
    message: String,
}

#[derive(Serialize)]
struct JsonAction {
    time_ns: u64,
    action: &'static str,
    target: String,
    ok: bool,
    result: String,
    errno: Option<&'static str>,
    expected: Option<String>,
    as_expected: Option<bool>,
    /// A refusal that changed state anyway: the parts it changed.
    changed_on_refusal: Option<String>,
}

#[derive(Serialize)]
struct JsonRefusal<'a> {
    time_ns: u64,
    target: &'a str,
    errno: &'static str,
    error: &'a str,
}

#[derive(Serialize)]
struct JsonStep {
    step: &'static str,
    start_ns: u64,
    duration_ns: u64,
    note: String,
}

fn json_step(
    step: &'static str,
    start: sim_core::SimTime,
    duration: sim_core::SimDuration,
    note: &str,
) -> JsonStep {
    JsonStep {
        step,
        start_ns: start.as_nanos(),
        duration_ns: duration.as_nanos(),
        note: note.to_owned(),
    }
}

/// One step of a hot-plug operation in the summary.
fn step_line(o: &mut String, step: &str, duration: sim_core::SimDuration, note: &str) {
    let _ = writeln!(o, "      {step:<16} {:>12}  {note}", duration.to_string());
}

#[derive(Serialize)]
struct JsonOp {
    id: u32,
    kind: &'static str,
    cpu: u32,
    hw_cpu: u32,
    trigger: &'static str,
    controller: u32,
    requested_ns: u64,
    started_ns: u64,
    duration_ns: Option<u64>,
    result: String,
    errno: Option<&'static str>,
    tasks_migrated: u32,
    irqs_rerouted: u32,
    timers_moved: u32,
    work_moved: u32,
    flushed_lines: u32,
    dirty_lines: u32,
    steps: Vec<JsonStep>,
}

#[derive(Serialize)]
struct JsonIrq {
    gsi: u32,
    vector: u8,
    cpu: u32,
    handled: u64,
    rerouted: u64,
}

#[derive(Serialize)]
struct JsonOs<'a> {
    booted_at_ns: Option<u64>,
    online: String,
    active: String,
    present: String,
    possible: String,
    tasks: usize,
    irqs: Vec<JsonIrq>,
    stats: &'a os_model::OsStats,
    rcu: &'a os_model::rcu::RcuStats,
    hotplug: Vec<JsonOp>,
    memory: Option<JsonMemory<'a>>,
    memory_hotplug: Vec<JsonMemOp<'a>>,
    pci_slots: Vec<JsonPciSlot>,
    pci_hotplug: Vec<JsonPciOp>,
    policies: Vec<JsonPolicyAction<'a>>,
}

#[derive(Serialize)]
struct JsonPolicyAction<'a> {
    time_ns: u64,
    policy: &'static str,
    target: &'a str,
    why: &'a str,
    outcome: &'a str,
}

#[derive(Serialize)]
struct JsonPciSlot {
    slot: u16,
    address: String,
    enabled: bool,
    bar: Option<(u64, u64)>,
    io_bar: Option<(u64, u64)>,
}

#[derive(Serialize)]
struct JsonPciOp {
    id: u32,
    kind: &'static str,
    target: String,
    trigger: &'static str,
    controller: u32,
    requested_ns: u64,
    started_ns: u64,
    duration_ns: Option<u64>,
    result: String,
    errno: Option<&'static str>,
    steps: Vec<JsonStep>,
}

fn json_pci_op(op: &os_model::pcihp::PciOpReport) -> JsonPciOp {
    let (result, errno) = match &op.result {
        None => ("running".to_owned(), None),
        Some(Ok(())) => ("ok".to_owned(), None),
        Some(Err(e)) => (e.to_string(), Some(e.errno())),
    };
    JsonPciOp {
        id: op.id,
        kind: op.kind.name(),
        target: op.target.to_string(),
        trigger: op.trigger.name(),
        controller: op.controller.0,
        requested_ns: op.requested.as_nanos(),
        started_ns: op.started.as_nanos(),
        duration_ns: op.ended.map(|e| (e - op.started).as_nanos()),
        result,
        errno,
        steps: op
            .steps
            .iter()
            .map(|s| json_step(s.step.name(), s.start, s.duration, &s.note))
            .collect(),
    }
}

#[derive(Serialize)]
struct JsonZone {
    node: u32,
    zone: &'static str,
    present_pages: u64,
    free_pages: u64,
}

#[derive(Serialize)]
struct JsonBlock {
    block: u32,
    node: u32,
    state: &'static str,
    zone: &'static str,
}

#[derive(Serialize)]
struct JsonMemory<'a> {
    zones: Vec<JsonZone>,
    blocks: Vec<JsonBlock>,
    vm: &'a os_model::mm::manager::VmStats,
    swap_used: usize,
    files: usize,
    address_spaces: usize,
}

#[derive(Serialize)]
struct JsonMemOp<'a> {
    id: u32,
    kind: &'static str,
    trigger: &'static str,
    blocks: &'a [os_model::ids::BlockId],
    node: Option<os_model::ids::NodeId>,
    path: Option<&'a str>,
    controller: u32,
    requested_ns: u64,
    started_ns: u64,
    duration_ns: Option<u64>,
    result: String,
    errno: Option<&'static str>,
    restored_exactly: Option<bool>,
    moved: &'a os_model::memhotplug::MoveCounts,
    steps: Vec<JsonStep>,
}

fn json_mem_op(op: &os_model::memhotplug::MemOpReport) -> JsonMemOp<'_> {
    let (result, errno) = match &op.result {
        None => ("running".to_owned(), None),
        Some(Ok(())) => ("ok".to_owned(), None),
        Some(Err(e)) => (e.to_string(), Some(e.errno())),
    };
    JsonMemOp {
        id: op.id,
        kind: op.kind.name(),
        trigger: op.trigger.name(),
        blocks: &op.blocks,
        node: op.node,
        path: op.path.as_deref(),
        controller: op.controller.0,
        requested_ns: op.requested.as_nanos(),
        started_ns: op.started.as_nanos(),
        duration_ns: op.ended.map(|e| (e - op.started).as_nanos()),
        result,
        errno,
        restored_exactly: op.restored_exactly,
        moved: &op.moved,
        steps: op
            .steps
            .iter()
            .map(|s| json_step(s.step.name(), s.start, s.duration, &s.note))
            .collect(),
    }
}

fn json_memory(vm: &os_model::mm::manager::Vm) -> JsonMemory<'_> {
    JsonMemory {
        zones: vm
            .phys
            .zone_summary()
            .into_iter()
            .map(|((node, zone), (present, free))| JsonZone {
                node,
                zone: zone.name(),
                present_pages: present,
                free_pages: free,
            })
            .collect(),
        blocks: vm
            .phys
            .blocks
            .iter()
            .filter(|b| b.state != os_model::mm::BlockState::Offline)
            .map(|b| JsonBlock {
                block: b.index,
                node: b.node,
                state: b.state.name(),
                zone: b.zone.name(),
            })
            .collect(),
        vm: &vm.stats,
        swap_used: vm.swap.used(),
        files: vm.files.len(),
        address_spaces: vm.spaces.len(),
    }
}

fn json_op(op: &os_model::OpReport) -> JsonOp {
    let (result, errno) = match &op.result {
        None => ("running".to_owned(), None),
        Some(Ok(())) => ("ok".to_owned(), None),
        Some(Err(e)) => (e.to_string(), Some(e.errno())),
    };
    JsonOp {
        id: op.id,
        kind: op.kind.name(),
        cpu: op.cpu.0,
        hw_cpu: op.hw.0,
        trigger: op.trigger.name(),
        controller: op.controller.0,
        requested_ns: op.requested.as_nanos(),
        started_ns: op.started.as_nanos(),
        duration_ns: op.duration().map(|d| d.as_nanos()),
        result,
        errno,
        tasks_migrated: op.tasks_migrated,
        irqs_rerouted: op.irqs_rerouted,
        timers_moved: op.timers_moved,
        work_moved: op.work_moved,
        flushed_lines: op.flushed_lines,
        dirty_lines: op.dirty_lines,
        steps: op
            .steps
            .iter()
            .map(|s| json_step(s.step.name(), s.start, s.duration, &s.note))
            .collect(),
    }
}

fn json_os(os: &os_model::Os) -> JsonOs<'_> {
    JsonOs {
        booted_at_ns: os.booted_at().map(|t| t.as_nanos()),
        online: os.maps().online.to_string(),
        active: os.maps().active.to_string(),
        present: os.present().to_string(),
        possible: os.possible().to_string(),
        tasks: os.tasks().len(),
        irqs: os
            .irqs()
            .iter()
            .map(|d| JsonIrq {
                gsi: d.gsi,
                vector: d.vector,
                cpu: d.target.0,
                handled: d.handled,
                rerouted: d.rerouted,
            })
            .collect(),
        stats: os.stats(),
        rcu: os.rcu_stats(),
        hotplug: os
            .hotplug()
            .done()
            .iter()
            .chain(os.hotplug().current())
            .map(json_op)
            .collect(),
        memory: os.vm().map(json_memory),
        memory_hotplug: os
            .mem_hotplug()
            .done()
            .iter()
            .chain(os.mem_hotplug().current())
            .map(json_mem_op)
            .collect(),
        pci_slots: os
            .pci_hotplug()
            .slots
            .iter()
            .map(|s| JsonPciSlot {
                slot: s.sun.0,
                address: format!(
                    "{:04x}:{:02x}:{:02x}",
                    s.bdf.segment, s.bdf.bus, s.bdf.device
                ),
                enabled: s.enabled,
                bar: s.bars.map(|b| b.0),
                io_bar: s.bars.map(|b| b.1),
            })
            .collect(),
        pci_hotplug: os.pci_hotplug().done().iter().map(json_pci_op).collect(),
        policies: os
            .policies()
            .actions
            .iter()
            .map(|a| JsonPolicyAction {
                time_ns: a.time.as_nanos(),
                policy: a.policy,
                target: &a.target,
                why: &a.why,
                outcome: &a.outcome,
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct JsonExpectation {
    what: String,
    met: bool,
    detail: String,
}

#[derive(Serialize)]
struct JsonFirmware<'a> {
    notifications: u64,
    pending: Vec<&'a acpi_model::Notification>,
    ost: &'a [acpi_model::firmware::OstRecord],
}

#[derive(Serialize)]
struct JsonStats<'a> {
    machine: &'a cells::MachineStats,
    io: &'a io_subsystem::fabric::IoStats,
    driver: &'a crate::io_driver::DriverStats,
    firmware: JsonFirmware<'a>,
    tester: &'a cells::tester::TesterStats,
    audits: u64,
    trace_events: u64,
    hit_rate: f64,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema: u32,
    scenario: &'a str,
    file: String,
    seed: u64,
    trace_hash: String,
    result: &'static str,
    exit_code: u8,
    sim_time_ns: u64,
    violations_total: u64,
    violations_unexpected: u64,
    violations_per_checker: std::collections::BTreeMap<&'static str, u64>,
    /// Observations a checker accounts for besides violations, as "CODE what".
    tallies: std::collections::BTreeMap<String, u64>,
    violations: Vec<JsonViolation>,
    expectations: Vec<JsonExpectation>,
    timeline: Vec<JsonAction>,
    refusals: Vec<JsonRefusal<'a>>,
    stats: JsonStats<'a>,
    os: Option<JsonOs<'a>>,
    figures: std::collections::BTreeMap<&'static str, f64>,
}

/// `"clean"`, `"violations"`, `"refused_actions"` or `"unmet_expectations"`.
pub fn verdict(r: &RunResult) -> &'static str {
    if r.unexpected_violations > 0 || (r.shows_a_failure && !r.violations.is_empty()) {
        "violations"
    } else if r.failed_actions() > 0 {
        "refused_actions"
    } else if !r.expectations_met() {
        "unmet_expectations"
    } else {
        "clean"
    }
}

/// The `--json` report.
pub fn json(scn: &Scenario, r: &RunResult) -> String {
    let mut per: std::collections::BTreeMap<&'static str, u64> =
        r.checkers.iter().map(|c| (c.code, 0)).collect();
    for (id, n) in r.violations.per_checker() {
        *per.entry(id.code).or_insert(0) += n;
    }
    let rep = JsonReport {
        schema: 1,
        scenario: &r.scenario,
        file: scn.path.display().to_string(),
        seed: r.seed,
        trace_hash: r.trace_hash.to_string(),
        result: verdict(r),
        exit_code: r.exit_code(),
        sim_time_ns: r.end.as_nanos(),
        violations_total: r.violations.total(),
        violations_unexpected: r.unexpected_violations,
        violations_per_checker: per,
        tallies: r
            .violations
            .tallies()
            .iter()
            .map(|((id, what), n)| (format!("{} {what}", id.code), *n))
            .collect(),
        violations: r
            .violations
            .kept()
            .iter()
            .map(|v| JsonViolation {
                time_ns: v.time.as_nanos(),
                checker: v.checker.code,
                checker_name: v.checker.name,
                agent: v.agent.to_string(),
                target: v.target.to_string(),
                message: v.message.clone(),
            })
            .collect(),
        expectations: r
            .expectations
            .iter()
            .map(|e| JsonExpectation {
                what: e.what.clone(),
                met: e.met,
                detail: e.detail.clone(),
            })
            .collect(),
        timeline: r
            .actions
            .iter()
            .map(|a| JsonAction {
                time_ns: a.time.as_nanos(),
                action: a.action,
                target: a.target.clone(),
                ok: a.result.is_ok(),
                result: match &a.result {
                    Ok(s) | Err(s) => s.clone(),
                },
                errno: a.errno,
                expected: a.expected.as_ref().map(|(e, _)| e.to_string()),
                as_expected: a.expected.as_ref().map(|(_, m)| *m),
                changed_on_refusal: a.changed_on_refusal.clone(),
            })
            .collect(),
        refusals: r
            .os
            .iter()
            .flat_map(|os| os.refusals())
            .map(|x| JsonRefusal {
                time_ns: x.time.as_nanos(),
                target: &x.target,
                errno: x.errno,
                error: &x.error,
            })
            .collect(),
        stats: JsonStats {
            machine: r.platform.machine().stats(),
            io: r.platform.io().stats(),
            driver: &r.driver,
            firmware: JsonFirmware {
                notifications: r.platform.firmware().notified(),
                pending: r.platform.firmware().pending().collect(),
                ost: r.platform.firmware().ost_log(),
            },
            tester: &r.tester,
            audits: r.audits,
            trace_events: r.trace_events,
            hit_rate: (r.platform.machine().stats().hit_rate() * 1e6).round() / 1e6,
        },
        os: r.os.as_ref().map(json_os),
        figures: crate::figures::all(r),
    };
    let mut s =
        serde_json::to_string_pretty(&rep).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        "0.0%".into()
    } else {
        format!("{:.1}%", 100.0 * a as f64 / b as f64)
    }
}

fn os_summary(o: &mut String, os: &os_model::Os) {
    let st = os.stats();
    let boot: Vec<&os_model::OpReport> = os
        .hotplug()
        .done()
        .iter()
        .filter(|op| op.trigger == os_model::Trigger::Boot)
        .collect();
    let _ = writeln!(
        o,
        "  OS: booted {} ({} secondary CPUs brought up through the hot-add path); {} tasks{}, {} IRQs",
        os.booted_at()
            .map_or_else(|| "not yet".to_owned(), |t| format!("at {t}")),
        boot.len(),
        os.tasks().len(),
        if st.spawn_failures > 0 {
            format!(
                " ({} user tasks not created: out of memory)",
                st.spawn_failures
            )
        } else {
            String::new()
        },
        os.irqs().len()
    );
    for e in os.boot_errors() {
        if matches!(e, os_model::OsError::NoSci { .. }) {
            let _ = writeln!(o, "      boot: {e}");
        }
    }
    let _ = writeln!(
        o,
        "      now online {} (active {}), present {}, possible {}",
        os.maps().online,
        os.maps().active,
        os.present(),
        os.possible()
    );
    let _ = writeln!(
        o,
        "      {} task accesses, {} context switches, {} wakeups ({} placed elsewhere), {} \
         balancing moves, {} TLB shootdowns, {} IPIs ({} cross-calls, {} timed out), {} device \
         interrupts",
        thousands(st.task_loads + st.task_stores),
        thousands(st.context_switches),
        thousands(st.wakeups),
        thousands(st.wakeups_moved),
        thousands(st.balance_moves),
        thousands(st.shootdowns),
        thousands(st.ipis_sent),
        thousands(st.csds_done),
        st.csd_timeouts,
        thousands(st.irqs_handled)
    );
    let rcu = os.rcu_stats();
    let _ = writeln!(
        o,
        "      RCU: {} grace periods (mean {}, longest {}), {} read-side sections, {} map versions",
        rcu.grace_periods,
        sim_core::SimDuration::from_nanos(rcu.total_ns / rcu.grace_periods.max(1)),
        sim_core::SimDuration::from_nanos(rcu.max_ns),
        thousands(rcu.readers),
        st.maps_published
    );
    if let Some(vm) = os.vm() {
        mem_summary(o, vm, os.boot_errors());
    }
    mem_ops_summary(o, os);
    pci_ops_summary(o, os);
    let actions = &os.policies().actions;
    if !actions.is_empty() {
        let _ = writeln!(o, "  policies:");
        for a in actions {
            let _ = writeln!(
                o,
                "    {} {} {}: {} -> {}",
                a.time, a.policy, a.target, a.why, a.outcome
            );
        }
    }
    let ops: Vec<&os_model::OpReport> = os
        .hotplug()
        .done()
        .iter()
        .chain(os.hotplug().current())
        .filter(|op| op.trigger != os_model::Trigger::Boot)
        .collect();
    if ops.is_empty() {
        return;
    }
    let _ = writeln!(o, "  CPU hot-plug:");
    for op in ops {
        let result = match &op.result {
            None => "still running".to_owned(),
            Some(Ok(())) => "ok".to_owned(),
            Some(Err(e)) => format!("FAILED {}: {e}", e.errno()),
        };
        let _ = writeln!(
            o,
            "    op {} {} {} ({}, {}) by {}: {} in {}",
            op.id,
            op.kind.name(),
            op.cpu,
            op.hw,
            op.trigger.name(),
            op.controller,
            result,
            op.duration()
                .map_or_else(|| "-".to_owned(), |d| d.to_string())
        );
        if op.kind == os_model::OpKind::Down && !op.steps.is_empty() {
            let _ = writeln!(
                o,
                "      {} tasks migrated, {} IRQs re-routed, {} timers and {} work items moved, \
                 {} lines flushed ({} dirty)",
                op.tasks_migrated,
                op.irqs_rerouted,
                op.timers_moved,
                op.work_moved,
                op.flushed_lines,
                op.dirty_lines
            );
        }
        for s in &op.steps {
            step_line(o, s.step.name(), s.duration, &s.note);
        }
    }
}

fn mem_summary(o: &mut String, vm: &os_model::mm::manager::Vm, boot_errors: &[os_model::OsError]) {
    let st = &vm.stats;
    let zones: Vec<String> = vm
        .phys
        .zone_summary()
        .into_iter()
        .map(|((n, z), (present, free))| {
            format!(
                "node{n} {} {}/{}",
                z.name(),
                thousands(free),
                thousands(present)
            )
        })
        .collect();
    let _ = writeln!(
        o,
        "  memory: zones (free/present pages): {}",
        zones.join(", ")
    );
    let online = vm
        .phys
        .blocks
        .iter()
        .filter(|b| b.state == os_model::mm::BlockState::Online)
        .count();
    let _ = writeln!(
        o,
        "      {online} of {} memory blocks online; {} address spaces, {} files; TLB {} hits, {} \
         page walks; faults: {} swap-ins, {} file reads, {} minor; {} waits on pages under \
         migration; {} pages swapped out ({} slots in use); {} writebacks, {} direct I/Os; {} \
         PTE writes",
        vm.phys.blocks.len(),
        vm.spaces.len(),
        vm.files.len(),
        thousands(st.tlb_hits),
        thousands(st.page_walks),
        st.swap_ins,
        st.file_reads,
        st.minor_faults,
        st.migration_waits,
        st.swap_outs,
        vm.swap.used(),
        st.writebacks,
        st.direct_ios,
        thousands(st.pte_writes)
    );
    let no_disk = boot_errors.iter().find(|e| {
        matches!(
            e,
            os_model::OsError::NoDisk { .. } | os_model::OsError::DiskTooSmall { .. }
        )
    });
    match (&vm.disk, no_disk) {
        (Some(d), _) => {
            let _ = writeln!(
                o,
                "      disk: the storage card in slot {}{}: {} block commands ({} waited for room \
                 in its queue), {} failed, {} timed out; swap area of {} slots",
                d.slot.0,
                if d.gone { " (gone)" } else { "" },
                thousands(st.disk_commands),
                thousands(st.disk_queued),
                st.io_errors,
                st.disk_timeouts,
                thousands(vm.swap.capacity() as u64)
            );
        }
        (None, Some(e)) => {
            let _ = writeln!(o, "      disk: none: {e}");
        }
        (None, None) => {
            let _ = writeln!(o, "      disk: none (no swap, no files)");
        }
    }
}

fn pci_ops_summary(o: &mut String, os: &os_model::Os) {
    let ops = os.pci_hotplug().done();
    if ops.is_empty() {
        return;
    }
    let _ = writeln!(o, "  PCI hot-plug:");
    for op in ops {
        let result = match &op.result {
            None => "still running".to_owned(),
            Some(Ok(())) => "ok".to_owned(),
            Some(Err(e)) => format!("FAILED {}: {e}", e.errno()),
        };
        let _ = writeln!(
            o,
            "    pci op {} {} {} ({}) by {}: {} in {}",
            op.id,
            op.kind.name(),
            op.target,
            op.trigger.name(),
            op.controller,
            result,
            op.ended
                .map_or_else(|| "-".to_owned(), |e| (e - op.started).to_string())
        );
        for s in &op.steps {
            step_line(o, s.step.name(), s.duration, &s.note);
        }
    }
}

fn mem_ops_summary(o: &mut String, os: &os_model::Os) {
    let ops: Vec<&os_model::memhotplug::MemOpReport> = os
        .mem_hotplug()
        .done()
        .iter()
        .chain(os.mem_hotplug().current())
        .collect();
    if ops.is_empty() {
        return;
    }
    let _ = writeln!(o, "  memory hot-plug:");
    for op in ops {
        let result = match &op.result {
            None => "still running".to_owned(),
            Some(Ok(())) => "ok".to_owned(),
            Some(Err(e)) => format!("FAILED {}: {e}", e.errno()),
        };
        let what = match (op.node, op.blocks.as_slice()) {
            (Some(n), []) => format!("node{n}"),
            (_, b) => b
                .iter()
                .map(|x| format!("memory{x}"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let _ = writeln!(
            o,
            "    mem op {} {} {} ({}) by {}: {} in {}",
            op.id,
            op.kind.name(),
            what,
            op.trigger.name(),
            op.controller,
            result,
            op.ended
                .map_or_else(|| "-".to_owned(), |e| (e - op.started).to_string())
        );
        let m = &op.moved;
        if m.batches > 0 || m.dropped > 0 {
            let _ = writeln!(
                o,
                "      pages moved: {} remapped ({} mlocked, {} hugetlb; {} pageblocks compacted for \
                 them, {} pages), {} swapped out, {} dropped (clean page cache), {} written back \
                 first; {} retries ({} passes left pages busy); {} batches, {} shootdown IPIs, {} copied",
                m.remapped,
                m.mlocked,
                m.huge,
                m.compactions,
                m.compacted_pages,
                m.swapped,
                m.dropped,
                m.written_back,
                m.retries,
                m.passes,
                m.batches,
                m.shootdown_ipis,
                sim_core::ByteSize(m.bytes_copied)
            );
        }
        if let Some(exact) = op.restored_exactly {
            let _ = writeln!(
                o,
                "      range restored exactly: {}",
                if exact { "yes" } else { "NO" }
            );
        }
        for s in &op.steps {
            step_line(o, s.step.name(), s.duration, &s.note);
        }
    }
}

/// The human summary printed at the end of a run (deterministic: no host time in it).
pub fn summary(scn: &Scenario, r: &RunResult) -> String {
    let mut o = String::new();
    let g = r.platform.machine().geometry();
    let cfg = r.platform.machine().config();
    let st = r.platform.machine().stats();
    let _ = writeln!(o, "cellsim: {} (seed {})", r.scenario, r.seed);
    if let Some(d) = &scn.file.description {
        let _ = writeln!(
            o,
            "  {}",
            d.lines().map(str::trim).collect::<Vec<_>>().join(" ")
        );
    }
    let _ = writeln!(
        o,
        "  machine: {} cells x {} CPUs, {} per cell ({:?}), {} pages, {} {}-way caches with {} \
         lines, {:?}",
        g.cells,
        g.cpus_per_cell,
        cfg.memory_per_cell,
        g.memory_mode,
        cfg.page_size,
        cfg.cache.size,
        g.ways,
        cfg.cache.line,
        g.protocol
    );
    if !scn.file.defects.is_empty() {
        let names: Vec<_> = scn.file.defects.iter().map(|d| d.name()).collect();
        let _ = writeln!(o, "  injected defects: {}", names.join(", "));
    }
    let _ = writeln!(
        o,
        "  ran {} of simulated time: {} accesses ({} loads, {} stores) on {} CPUs",
        sim_core::SimDuration::from_nanos(r.end.as_nanos()),
        thousands(st.accesses()),
        thousands(st.loads),
        thousands(st.stores),
        scn.workload_cpus.len()
    );
    let misses = st.read_misses + st.write_misses;
    let _ = writeln!(
        o,
        "  hits {} ({}); misses {} (local memory {}, remote memory {}, cache-to-cache {}); \
         upgrades {}",
        thousands(st.hits),
        pct(st.hits, st.accesses()),
        thousands(misses),
        thousands(st.served_local_memory),
        thousands(st.served_remote_memory),
        thousands(st.served_cache_to_cache),
        thousands(st.upgrades)
    );
    let _ = writeln!(
        o,
        "  coherence messages {} ({} crossed the crossbar): invalidations {}, downgrades {}, \
         fetch-invalidates {}, write-backs {}, clean evictions {}, unanswered {}",
        thousands(st.messages),
        pct(st.remote_messages, st.messages),
        thousands(st.invalidations),
        thousands(st.downgrades),
        thousands(st.fetch_invalidates),
        thousands(st.writebacks),
        thousands(st.clean_evictions),
        thousands(st.unanswered_snoops)
    );
    let io = r.platform.io().stats();
    if r.driver.cards > 0 || io.mmio + io.config > 0 {
        let _ = writeln!(
            o,
            "  I/O: {} card bring-ups; {} records written by DMA ({} checked), {} transmits; \
             interrupts sent {} (held while masked {}), handled {}, EOIs {}; MMIO {}, config {}, \
             failed accesses {}",
            r.driver.cards,
            thousands(io.dma_records),
            thousands(r.driver.records_checked),
            thousands(r.driver.transmits),
            thousands(io.interrupts_sent),
            thousands(io.interrupts_held),
            thousands(r.driver.interrupts),
            thousands(io.eois),
            thousands(io.mmio),
            thousands(io.config),
            thousands(io.failed_accesses)
        );
    }
    let fw = r.platform.firmware();
    if fw.notified() > 0 || !fw.ost_log().is_empty() {
        let _ = writeln!(
            o,
            "  firmware: {} SCI notifications ({} not taken by an OS), {} _OST reports",
            fw.notified(),
            fw.pending().count(),
            fw.ost_log().len()
        );
    }
    if st.not_performed > 0 || st.machine_checks > 0 {
        let _ = writeln!(
            o,
            "  accesses not performed {}, machine checks {}",
            thousands(st.not_performed),
            thousands(st.machine_checks)
        );
    }
    if let Some(os) = &r.os {
        os_summary(&mut o, os);
    }
    if !r.actions.is_empty() {
        let _ = writeln!(o, "  timeline:");
        for a in &r.actions {
            let (mark, text) = match (&a.result, &a.expected) {
                (Ok(s), Some((_, true))) => ("ok as expected", s.as_str()),
                (Err(s), Some((_, true))) => ("refused as expected", s.as_str()),
                (Ok(s), Some((_, false))) => ("ok, NOT AS EXPECTED", s.as_str()),
                (Err(s), Some((_, false))) => ("REFUSED, NOT AS EXPECTED", s.as_str()),
                (Ok(s), None) => ("ok", s.as_str()),
                (Err(s), None) => ("REFUSED", s.as_str()),
            };
            let _ = writeln!(
                o,
                "    {} {} {}: {} ({})",
                a.time, a.action, a.target, mark, text
            );
            if let Some(what) = &a.changed_on_refusal {
                let _ = writeln!(o, "      REFUSED YET CHANGED STATE: {what}");
            }
        }
    }
    let _ = writeln!(o, "  checkers:");
    for id in &r.checkers {
        let n = r.violations.per_checker().get(id).copied().unwrap_or(0);
        let extra = match id.code {
            "CHK-2" => format!(
                ", {} audit{}",
                r.audits,
                if r.audits == 1 { "" } else { "s" }
            ),
            "TESTER" => format!(", {} reads checked", thousands(r.tester.checks)),
            "DRIVER" => format!(
                ", {} records, {} transmits and {} sectors checked",
                thousands(r.driver.records_checked),
                thousands(r.driver.transmits),
                thousands(r.driver.sectors_checked)
            ),
            _ => String::new(),
        };
        match n {
            0 => {
                let _ = writeln!(o, "    {id}: clean{extra}");
            }
            1 => {
                let _ = writeln!(o, "    {id}: 1 violation{extra}");
            }
            _ => {
                let _ = writeln!(o, "    {id}: {} violations{extra}", thousands(n));
            }
        }
        for ((_, what), n) in r.violations.tallies().iter().filter(|((c, _), _)| c == id) {
            let _ = writeln!(o, "      and {} {what} (not violations)", thousands(*n));
        }
    }
    let shown = r.violations.kept().len().min(10);
    if shown > 0 {
        let _ = writeln!(o, "  first violations:");
        for v in &r.violations.kept()[..shown] {
            let _ = writeln!(o, "    {v}");
        }
        if r.violations.total() > shown as u64 {
            let _ = writeln!(
                o,
                "    ... {} more (see --json)",
                r.violations.total() - shown as u64
            );
        }
    }
    if !r.expectations.is_empty() {
        let _ = writeln!(o, "  expectations:");
        for e in &r.expectations {
            let _ = writeln!(
                o,
                "    {}: {} ({})",
                e.what,
                if e.met { "met" } else { "NOT MET" },
                e.detail
            );
        }
    }
    let _ = writeln!(o, "  trace hash {}", r.trace_hash);
    let _ = writeln!(
        o,
        "result: {} (exit {})",
        match verdict(r) {
            "clean" => "CLEAN",
            "violations" => "VIOLATIONS",
            "unmet_expectations" => "UNMET EXPECTATIONS",
            _ => "REFUSED ACTIONS",
        },
        r.exit_code()
    );
    o
}
