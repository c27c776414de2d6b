//! Runs one scenario with one seed: the event loop over simulated time.
//!
//! The loop owns one [`EventQueue`] holding every CPU's next access, every timeline action,
//! the periodic audits and the end of the run; equal times leave in scheduling order, so a
//! run is a pure function of the scenario and the seed.

use cells::cell::CellEvent;
use cells::cpu::CpuEvent;
use cells::event::McaTarget;
use cells::{Machine, Probe, RandomTester};
use sim_core::trace::{ArgValue, Phase, Track};
use sim_core::{
    CellId, CheckerId, CpuId, EventQueue, PhysAddr, RngStreams, SimDuration, SimTime, StableHasher,
    Trace, TraceHash, TraceLevel, TraceRecord, Violation, Violations,
};

use crate::scenario::{ActionKind, Scenario, TimelineEntry};

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Seed to use instead of the file's.
    pub seed: Option<u64>,
    /// Keep trace records (for `--trace`).
    pub keep_trace: bool,
}

/// What one timeline action did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRecord {
    /// When it ran.
    pub time: SimTime,
    /// Its name.
    pub action: &'static str,
    /// What it acted on.
    pub target: String,
    /// `Ok(details)` or `Err(why it was refused)`.
    pub result: Result<String, String>,
}

/// One expectation of the scenario and whether the run met it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectationResult {
    /// What was expected.
    pub what: String,
    /// Whether it happened.
    pub met: bool,
    /// What happened instead, or the evidence.
    pub detail: String,
}

/// Everything a run produced.
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// Seed used.
    pub seed: u64,
    /// Hash of the whole trace and of every violation.
    pub trace_hash: TraceHash,
    /// Checker reports.
    pub violations: Violations,
    /// The checkers that ran.
    pub checkers: Vec<CheckerId>,
    /// The machine at the end (stats, state).
    pub machine: Machine,
    /// Tester counters.
    pub tester: cells::tester::TesterStats,
    /// Timeline actions, in order.
    pub actions: Vec<ActionRecord>,
    /// Full audits run.
    pub audits: u64,
    /// Simulated time at the end.
    pub end: SimTime,
    /// Kept trace records (empty unless `keep_trace`).
    pub records: Vec<TraceRecord>,
    /// Trace events emitted (all hashed).
    pub trace_events: u64,
    /// The scenario's expectations, judged.
    pub expectations: Vec<ExpectationResult>,
}

impl RunResult {
    /// Timeline actions the hardware refused.
    pub fn failed_actions(&self) -> usize {
        self.actions.iter().filter(|a| a.result.is_err()).count()
    }
    /// Whether the run is clean: no violation and every action accepted.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.failed_actions() == 0
    }
    /// Whether every expectation was met.
    pub fn expectations_met(&self) -> bool {
        self.expectations.iter().all(|e| e.met)
    }
    /// The exit status `sim` gives this run.
    pub fn exit_code(&self) -> u8 {
        if self.is_clean() && self.expectations_met() {
            0
        } else {
            1
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Step(CpuId),
    Action(usize),
    Audit,
    End,
}

/// Why a run could not be carried out (the scenario was valid but the setup failed).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The machine could not be built.
    #[error("machine.{0}")]
    Machine(#[from] cells::ConfigError),
    /// The workload could not be set up.
    #[error("workload: {0}")]
    Workload(#[from] cells::tester::TesterError),
    /// An access named hardware that does not exist.
    #[error("access: {0}")]
    Access(#[from] cells::AccessError),
    /// An event was scheduled in the past (an engine bug).
    #[error("engine: {0}")]
    Queue(#[from] sim_core::QueueError),
}

fn track_machine() -> Track {
    Track {
        group: "machine",
        index: 0,
    }
}

/// Runs `scn` once.
pub fn run(scn: &Scenario, opts: &RunOptions) -> Result<RunResult, RunError> {
    let f = &scn.file;
    let seed = scn.seed(opts.seed);
    let streams = RngStreams::new(seed);
    let mut m = Machine::new(&f.machine)?;
    for &d in &f.defects {
        m.inject_defect(d);
    }
    let level = if opts.keep_trace {
        f.trace.level()
    } else {
        TraceLevel::Off
    };
    let mut probe =
        Probe::with_hw_checkers(Trace::new(level, f.trace.max_records), &m, f.checks.deep);
    probe.violations = Violations::with_cap(f.checks.max_violations);
    let checkers = {
        let mut ids = probe.checkers.ids();
        ids.push(cells::check::TESTER);
        ids
    };

    // Firmware boot: start every present CPU.
    let boot: Vec<CpuId> = m
        .cpus()
        .iter()
        .filter(|c| c.state == cells::CpuState::PresentHalted)
        .map(|c| c.id)
        .collect();
    for c in boot {
        m.cpu_event(SimTime::ZERO, c, CpuEvent::Start, &mut probe)
            .map_err(|e| {
                RunError::Workload(cells::tester::TesterError::Cpu {
                    cpu: c,
                    reason: e.to_string(),
                })
            })?;
    }

    let mut tester =
        RandomTester::new(f.workload.tester.clone(), &scn.workload_cpus, &m, &streams)?;
    let end = SimTime::ZERO + f.duration.0;
    let mut q: EventQueue<Ev> = EventQueue::new();
    let mut pending = vec![false; m.cpus().len()];
    for &c in &scn.workload_cpus {
        q.schedule(SimTime::ZERO, Ev::Step(c))?;
        pending[c.index()] = true;
    }
    for (i, t) in f.timeline.iter().enumerate() {
        q.schedule(SimTime::ZERO + t.at.0, Ev::Action(i))?;
    }
    let audit_every = f.checks.audit_interval.0;
    if SimTime::ZERO + audit_every < end {
        q.schedule(SimTime::ZERO + audit_every, Ev::Audit)?;
    }
    q.schedule(end, Ev::End)?;

    let budget = f.workload.max_accesses.unwrap_or(u64::MAX);
    let mut issued = 0u64;
    let mut actions = Vec::new();
    let mut audits = 0u64;
    while let Some((now, ev)) = q.pop() {
        match ev {
            Ev::Step(c) => {
                if !tester.is_active(c) || issued >= budget {
                    pending[c.index()] = false;
                    continue;
                }
                issued += 1;
                let (dt, bad) = tester.step(now, c, &mut m, &mut probe)?;
                if let Some(v) = bad {
                    probe.trace.record(violation_record(&v));
                    probe.violations.push(v);
                }
                q.schedule(now + dt.max(SimDuration::from_nanos(1)), Ev::Step(c))?;
            }
            Ev::Action(i) => {
                let entry = &f.timeline[i];
                let rec = act(now, entry, &mut m, &mut probe, &mut tester, &mut audits);
                if entry.action == ActionKind::StartCpu && rec.result.is_ok() {
                    if let Some(c) = entry.cpu.map(CpuId) {
                        if tester.is_active(c) && !pending[c.index()] {
                            pending[c.index()] = true;
                            q.schedule(now, Ev::Step(c))?;
                        }
                    }
                }
                probe.trace.record(TraceRecord {
                    time: now,
                    track: track_machine(),
                    category: "timeline",
                    name: rec.action.into(),
                    phase: Phase::Instant,
                    args: vec![
                        ("target", ArgValue::Str(rec.target.clone())),
                        (
                            "result",
                            ArgValue::Str(match &rec.result {
                                Ok(s) => format!("ok: {s}"),
                                Err(e) => format!("refused: {e}"),
                            }),
                        ),
                    ],
                });
                actions.push(rec);
            }
            Ev::Audit => {
                probe.audit(now, &m);
                audits += 1;
                let next = now + audit_every;
                if next < end {
                    q.schedule(next, Ev::Audit)?;
                }
            }
            Ev::End => break,
        }
    }
    probe.audit(end, &m);
    audits += 1;
    for v in probe
        .violations
        .kept()
        .to_vec()
        .iter()
        .filter(|v| v.checker != cells::check::TESTER)
    {
        probe.trace.record(violation_record(v));
    }
    let mut h = StableHasher::new();
    h.word(probe.trace.hash().0);
    h.word(probe.violations.hash());
    h.word(probe.violations.total());
    let trace_hash = TraceHash(h.finish());
    let trace_events = probe.trace.events();
    let expectations = f
        .expect
        .checkers
        .iter()
        .map(|code| {
            let n = probe.violations.count(code);
            ExpectationResult {
                what: format!("{code} fires"),
                met: n > 0,
                detail: if n > 0 {
                    format!("{n} violation{}", if n == 1 { "" } else { "s" })
                } else {
                    "it stayed silent".into()
                },
            }
        })
        .collect();
    Ok(RunResult {
        scenario: scn.name.clone(),
        seed,
        trace_hash,
        checkers,
        tester: tester.stats().clone(),
        actions,
        audits,
        end,
        records: probe.trace.records().to_vec(),
        trace_events,
        expectations,
        violations: probe.violations,
        machine: m,
    })
}

fn violation_record(v: &Violation) -> TraceRecord {
    TraceRecord {
        time: v.time,
        track: Track {
            group: "checks",
            index: 0,
        },
        category: "violation",
        name: format!("{} {}", v.checker.code, v.checker.name).into(),
        phase: Phase::Instant,
        args: vec![
            ("agent", ArgValue::Str(v.agent.to_string())),
            ("target", ArgValue::Str(v.target.to_string())),
            ("message", ArgValue::Str(v.message.clone())),
        ],
    }
}

fn act(
    now: SimTime,
    t: &TimelineEntry,
    m: &mut Machine,
    probe: &mut Probe,
    tester: &mut RandomTester,
    audits: &mut u64,
) -> ActionRecord {
    let cpu = t.cpu.map(CpuId);
    let cell = t.cell.map(CellId);
    let target = match (cpu, cell, t.addr) {
        (Some(c), _, _) => c.to_string(),
        (None, Some(c), _) => c.to_string(),
        (None, None, Some(a)) => PhysAddr::new(a).to_string(),
        (None, None, None) => "machine".into(),
    };
    // Validation guarantees the operand each action needs; these only guard the lookups.
    let need_cpu = || cpu.ok_or_else(|| "needs a cpu".to_owned());
    let need_cell = || cell.ok_or_else(|| "needs a cell".to_owned());
    let cpu_state = |m: &Machine, c: CpuId| m.cpu(c).map_or(String::new(), |x| x.state.to_string());
    let cell_state =
        |m: &Machine, c: CellId| m.cell(c).map_or(String::new(), |x| x.state.to_string());
    let result: Result<String, String> = match t.action {
        ActionKind::HaltCpu => need_cpu().and_then(|c| {
            tester.set_active(c, false);
            let flushed = if t.flush.unwrap_or(true) {
                let f = m.flush_cache(now, c, probe).map_err(|e| e.to_string())?;
                format!("flushed {} lines ({} dirty), ", f.lines, f.dirty)
            } else {
                "no flush, ".to_owned()
            };
            m.cpu_event(now, c, CpuEvent::Halt, probe)
                .map(|()| format!("{flushed}{}", cpu_state(m, c)))
                .map_err(|e| e.to_string())
        }),
        ActionKind::StartCpu | ActionKind::PowerOnCpu | ActionKind::PowerOffCpu => {
            need_cpu().and_then(|c| {
                let ev = t.action.cpu_event().ok_or("not a CPU event")?;
                m.cpu_event(now, c, ev, probe).map_err(|e| e.to_string())?;
                // The workload runs exactly on the CPUs that are running.
                tester.set_active(c, ev == CpuEvent::Start);
                Ok(cpu_state(m, c))
            })
        }
        ActionKind::FlushCache => need_cpu().and_then(|c| {
            m.flush_cache(now, c, probe)
                .map(|f| format!("{} lines ({} dirty)", f.lines, f.dirty))
                .map_err(|e| e.to_string())
        }),
        ActionKind::InsertCell
        | ActionKind::PowerOnCell
        | ActionKind::PowerOffCell
        | ActionKind::RemoveCell => need_cell().and_then(|c| {
            let ev = t.action.cell_event().ok_or("not a cell event")?;
            if matches!(ev, CellEvent::PowerOff | CellEvent::Remove) {
                for id in m.cpus_of(c).map(|x| x.id).collect::<Vec<_>>() {
                    tester.set_active(id, false);
                }
            }
            m.cell_event(now, c, ev, probe)
                .map(|()| cell_state(m, c))
                .map_err(|e| e.to_string())
        }),
        ActionKind::InjectCorrectedError => {
            let target = match (cpu, t.addr) {
                (Some(c), _) => Ok(McaTarget::Cpu(c)),
                (None, Some(a)) => Ok(McaTarget::Memory(PhysAddr::new(a))),
                (None, None) => Err("needs a cpu or an addr".to_owned()),
            };
            target.and_then(|target| {
                m.inject_corrected_error(now, target, t.count.unwrap_or(1), probe)
                    .map(|total| format!("total {total}"))
                    .map_err(|e| e.to_string())
            })
        }
        ActionKind::InjectUncorrectedError => t
            .addr
            .ok_or_else(|| "needs an addr".to_owned())
            .and_then(|a| {
                m.inject_uncorrected_error(now, PhysAddr::new(a), probe)
                    .map(|()| "poisoned".to_owned())
                    .map_err(|e| e.to_string())
            }),
        ActionKind::Audit => {
            let before = probe.violations.total();
            probe.audit(now, m);
            *audits += 1;
            Ok(format!("{} findings", probe.violations.total() - before))
        }
    };
    ActionRecord {
        time: now,
        action: t.action.name(),
        target,
        result,
    }
}
