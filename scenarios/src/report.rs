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
//!   "violations_per_checker": {"CHK-1": 0, "CHK-2": 0, "TESTER": 0},
//!   "violations": [ {"time_ns", "checker", "checker_name", "agent", "target", "message"} ],
//!   "expectations": [ {"what": "CHK-2 fires", "met": true, "detail": "12 violations"} ],
//!   "timeline": [ {"time_ns", "action", "target", "ok", "result"} ],
//!   "stats": { "machine": {...MachineStats}, "io": {...IoStats}, "driver": {...},
//!              "firmware": {"notifications", "pending": [...], "ost": [...]},
//!              "tester": {...}, "audits": 12, "trace_events": 123456, "hit_rate": 0.74 }
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
    violations_per_checker: std::collections::BTreeMap<&'static str, u64>,
    violations: Vec<JsonViolation>,
    expectations: Vec<JsonExpectation>,
    timeline: Vec<JsonAction>,
    stats: JsonStats<'a>,
}

/// `"clean"`, `"violations"`, `"refused_actions"` or `"unmet_expectations"`.
pub fn verdict(r: &RunResult) -> &'static str {
    if !r.violations.is_empty() {
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
        violations_per_checker: per,
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
            })
            .collect(),
        stats: JsonStats {
            machine: r.platform.machine.stats(),
            io: r.platform.io.stats(),
            driver: &r.driver,
            firmware: JsonFirmware {
                notifications: r.platform.firmware().notified(),
                pending: r.platform.firmware().pending().collect(),
                ost: r.platform.firmware().ost_log(),
            },
            tester: &r.tester,
            audits: r.audits,
            trace_events: r.trace_events,
            hit_rate: (r.platform.machine.stats().hit_rate() * 1e6).round() / 1e6,
        },
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

/// The human summary printed at the end of a run (deterministic: no host time in it).
pub fn summary(scn: &Scenario, r: &RunResult) -> String {
    let mut o = String::new();
    let g = r.platform.machine.geometry();
    let cfg = r.platform.machine.config();
    let st = r.platform.machine.stats();
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
    let io = r.platform.io.stats();
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
    if !r.actions.is_empty() {
        let _ = writeln!(o, "  timeline:");
        for a in &r.actions {
            let (mark, text) = match &a.result {
                Ok(s) => ("ok", s.as_str()),
                Err(s) => ("REFUSED", s.as_str()),
            };
            let _ = writeln!(
                o,
                "    {} {} {}: {} ({})",
                a.time, a.action, a.target, mark, text
            );
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
                ", {} records and {} transmits checked",
                thousands(r.driver.records_checked),
                thousands(r.driver.transmits)
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
