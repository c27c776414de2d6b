//! Runs one scenario with one seed: the event loop over simulated time.
//!
//! The loop owns one [`EventQueue`] holding every card's next DMA tick, every timeline action,
//! the periodic audits and the end of the run, and — for `random_tester` workloads — every
//! CPU's next tester access and every pending interrupt service. Under `workload.kind = "os"`
//! the OS model keeps its own queue (its CPUs' steps, ticks, hot-plug steps); the loop always
//! takes the earlier of the two, the runner's first on equal times. Equal times leave each
//! queue in scheduling order, so a run is a pure function of the scenario and the seed.

use acpi_model::{AcpiValue, Platform, PlatformProbe};
use cells::RandomTester;
use cells::cell::CellEvent;
use cells::cpu::CpuEvent;
use io_subsystem::DeviceId;
use sim_core::trace::{ArgValue, Phase, Track};
use sim_core::{
    CheckerId, CpuId, EventQueue, RngStreams, SimDuration, SimTime, StableHasher, Trace, TraceHash,
    TraceLevel, TraceRecord, Violation, Violations,
};

use crate::action::{Action, Expect, Timed};
use crate::io_driver::{DRIVER, DriverStats, IoExerciser};
use crate::scenario::{Scenario, WorkloadKind};
use os_model::{Os, OsCheckers};

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Seed to use instead of the file's.
    pub seed: Option<u64>,
    /// Keep trace records (for `--trace`).
    pub keep_trace: bool,
    /// Told now and then how far the run is (simulated time done, of the whole).
    pub progress: Option<Progress>,
    /// Shown the machine after each timeline action (a soak watching the state come back).
    pub inspect: Option<Inspect>,
}

/// A look at the run after timeline action `index` ran at the given time: the platform and
/// the OS (if one runs) as the action left them, and the violations so far. It only watches.
#[derive(Clone)]
#[allow(clippy::type_complexity)]
pub struct Inspect(
    pub std::sync::Arc<dyn Fn(SimTime, usize, &Platform, Option<&Os>, u64) + Send + Sync>,
);

impl std::fmt::Debug for Inspect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inspect")
    }
}

/// A progress callback: `(simulated time reached, simulated time of the whole run)`. It only
/// watches: nothing it does reaches the run.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(SimTime, SimTime) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Events between two progress reports.
const PROGRESS_EVERY: u64 = 1 << 14;

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
    /// The errno of a refusal by the OS.
    pub errno: Option<&'static str>,
    /// What the scenario said must come of it (`timeline[].expect`), and whether it did.
    pub expected: Option<(Expect, bool)>,
    /// The memory hot-plug operation it started (its outcome is the action's).
    pub mem_op: Option<u32>,
    /// The PCI hot-plug operation it started (its outcome is the action's).
    pub pci_op: Option<u32>,
    /// A refusal that changed state anyway: what it changed (a failure whatever was
    /// expected).
    pub changed_on_refusal: Option<String>,
    /// The firmware notification it raised (`notify`, `press_attention`): the operation or
    /// refusal of the OS that carries this number is its outcome.
    pub notification: Option<acpi_model::NotifyId>,
}

impl ActionRecord {
    /// Whether the action counts as failed: refused when nothing was expected, not what
    /// was expected, or refused yet changing state.
    pub fn failed(&self) -> bool {
        self.changed_on_refusal.is_some()
            || match &self.expected {
                Some((_, met)) => !met,
                None => self.result.is_err(),
            }
    }
}

/// What an action may change, part by part, as words: the hardware's power and presence
/// states (cells, CPUs, memory controllers, I/O subsystems, slots and cards), and the
/// OS's [`Os::request_state`].
fn request_state(run: &Run) -> Vec<(&'static str, u64)> {
    let m = run.p.machine();
    let mut hw = StableHasher::new();
    for c in m.cells() {
        hw.word(c.state as u64 | u64::from(c.memory_enabled) << 8 | u64::from(c.generation) << 16);
    }
    for c in m.cpus() {
        hw.word(c.state as u64);
    }
    for sub in run.p.io().subsystems() {
        hw.word(sub.state as u64);
    }
    for sl in run.p.io().slots() {
        hw.word(u64::from(sl.powered) | sl.card.map_or(0, |d| u64::from(d.0) + 1) << 1);
    }
    let mut v = vec![("hardware", hw.finish())];
    if let Load::Os { os, .. } = &run.load {
        v.extend(os.request_state());
    }
    v
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
    /// Reports no `[[expect.reports]]` entry covers.
    pub unexpected_violations: u64,
    /// The scenario demonstrates a failure: it injects defects, or expects checkers to fire
    /// (`[expect] checkers`). Its reports, even expected ones, make `sim` exit 1.
    pub shows_a_failure: bool,
    /// The checkers that ran.
    pub checkers: Vec<CheckerId>,
    /// The platform at the end (state, statistics, ACPI tables).
    pub platform: Platform,
    /// Tester counters.
    pub tester: cells::tester::TesterStats,
    /// I/O exerciser (or OS driver) counters.
    pub driver: DriverStats,
    /// The OS at the end (`workload.kind = "os"`).
    pub os: Option<Os>,
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
    /// The OS's sysfs views taken at the timeline's `export_sysfs` points, by name.
    pub sysfs_exports: Vec<(String, os_model::sysfs::Sysfs)>,
}

impl RunResult {
    /// Timeline actions refused unexpectedly (or whose outcome was not the expected one).
    pub fn failed_actions(&self) -> usize {
        self.actions.iter().filter(|a| a.failed()).count()
    }
    /// Whether the run is clean: no violation but the expected reports, and every action
    /// accepted.
    pub fn is_clean(&self) -> bool {
        self.unexpected_violations == 0 && self.failed_actions() == 0
    }
    /// Whether every expectation was met.
    pub fn expectations_met(&self) -> bool {
        self.expectations.iter().all(|e| e.met)
    }
    /// The exit status `sim` gives this run: 0 when it is clean and met every expectation;
    /// 1 otherwise — and always 1 when a scenario that demonstrates a failure (a defect, a
    /// checker expected to fire) got reports, even expected ones: the failure was caught.
    pub fn exit_code(&self) -> u8 {
        let caught = self.shows_a_failure && !self.violations.is_empty();
        if self.is_clean() && self.expectations_met() && !caught {
            0
        } else {
            1
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Step(CpuId),
    Device(DeviceId),
    Irq(CpuId),
    Poll,
    Action(usize),
    Audit,
    End,
}

/// Why a run could not be carried out (the scenario was valid but the setup failed).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The platform could not be built.
    #[error("{0}")]
    Platform(#[from] acpi_model::PlatformError),
    /// The workload could not be set up.
    #[error("workload: {0}")]
    Workload(#[from] cells::tester::TesterError),
    /// The I/O exerciser could not be set up.
    #[error("workload.io.{field}: {message}")]
    Driver {
        /// Field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// An access named hardware that does not exist.
    #[error("access: {0}")]
    Access(#[from] cells::AccessError),
    /// An event was scheduled in the past (an engine bug).
    #[error("engine: {0}")]
    Queue(#[from] sim_core::QueueError),
    /// The OS could not boot.
    #[error("{0}")]
    Os(#[from] os_model::OsError),
    /// Firmware could not start the boot CPU.
    #[error("firmware boot: {0}")]
    Boot(#[from] acpi_model::BootError),
}

fn track_machine() -> Track {
    Track {
        group: "machine",
        index: 0,
    }
}

/// What runs on the platform.
enum Load {
    /// The random tester on the bare hardware, with the I/O exerciser.
    Tester {
        tester: Box<RandomTester>,
        driver: Box<IoExerciser>,
        step_pending: Vec<bool>,
        irq_pending: Vec<bool>,
    },
    /// The OS model and its checkers.
    Os {
        os: Box<Os>,
        checks: Box<OsCheckers>,
    },
}

/// The loop's moving parts.
struct Run {
    p: Platform,
    probe: PlatformProbe,
    load: Load,
    q: EventQueue<Ev>,
    actions: Vec<ActionRecord>,
    audits: u64,
    /// Sysfs views taken by `export_sysfs`, in timeline order.
    sysfs: Vec<(String, os_model::sysfs::Sysfs)>,
}

impl Run {
    /// Schedules the device ticks the last operation asked for and the interrupt service
    /// of every CPU that has an interrupt pending; hands the OS's events to its checkers.
    fn follow_up(&mut self, now: SimTime) -> Result<(), RunError> {
        for (d, at) in self.p.take_wakeups() {
            self.q.schedule(at.max(now), Ev::Device(d))?;
        }
        match &mut self.load {
            Load::Tester {
                driver,
                irq_pending,
                ..
            } => {
                for c in driver.irq_cpus() {
                    let pending = self
                        .p
                        .machine()
                        .cpu(c)
                        .is_some_and(|x| x.pending_interrupts() > 0);
                    if pending && !irq_pending[c.index()] {
                        irq_pending[c.index()] = true;
                        self.q.schedule(now + driver.service_delay(), Ev::Irq(c))?;
                    }
                }
            }
            Load::Os { os, checks } => {
                os.interrupts_raised(now, &self.p);
                for (t, ev) in os.take_events() {
                    self.probe.trace.emit(t, &ev);
                    checks.observe_on(t, &ev, &self.p, &mut self.probe.violations);
                }
                for v in os.take_violations() {
                    self.probe.trace.record(violation_record(&v));
                    self.probe.violations.push(v);
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, v: Violation) {
        self.probe.trace.record(violation_record(&v));
        self.probe.violations.push(v);
    }

    fn audit(&mut self, now: SimTime) {
        self.probe.audit(now, &self.p);
        if let Load::Os { os, checks } = &mut self.load {
            checks.audit(now, os, &self.p, &mut self.probe.violations);
        }
        self.audits += 1;
    }
}

/// Runs `scn` once.
pub fn run(scn: &Scenario, opts: &RunOptions) -> Result<RunResult, RunError> {
    let (mut run, checkers) = setup(scn, opts)?;
    main_loop(scn, opts, &mut run)?;
    Ok(judge(scn, opts, run, checkers))
}

/// The machine built, its firmware defects applied, the checkers attached, the workload
/// booted (the OS, or the tester and the I/O exerciser), and the first events queued: the
/// timeline's actions, the first audit, the end.
fn setup(scn: &Scenario, opts: &RunOptions) -> Result<(Run, Vec<CheckerId>), RunError> {
    let f = &scn.file;
    let seed = scn.seed(opts.seed);
    let streams = RngStreams::new(seed);
    let mut p = Platform::new(&f.platform_config())?;
    for &d in &f.defects {
        d.apply(&mut p);
    }
    let level = if opts.keep_trace {
        f.trace.level()
    } else {
        TraceLevel::Off
    };
    let mut probe = PlatformProbe::with_checkers(
        Trace::new(level, f.trace.max_records),
        p.machine(),
        f.checks.deep,
    );
    probe.violations = Violations::with_cap(f.checks.max_violations);
    if !f.expect.reports.is_empty() {
        // Every report is matched as it is made, so that a run with more reports than it
        // keeps in full is still judged on all of them.
        let expected = std::sync::Arc::new(f.expect.reports.clone());
        let n = expected.len();
        probe.violations.classify_with(
            std::sync::Arc::new(move |v: &sim_core::Violation| {
                expected
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.matches(v))
                    .fold(0u64, |bits, (i, _)| bits | 1 << i)
            }),
            n,
        );
    }
    let mut checkers = probe.checker_ids();
    let ncpus = p.machine().cpus().len();

    let load = match f.workload.kind {
        WorkloadKind::Os => {
            // The kernel mounts exactly the card the installer wrote its files on.
            let mut os_cfg = f.os.clone();
            os_cfg.memory.disk_slot = os_model::install_disk(&f.os, &mut p)?.map(|s| s.0);
            let (_, bsp) = p.start_boot_cpu(SimTime::ZERO, &mut probe)?;
            let defects: Vec<os_model::OsDefect> =
                f.defects.iter().filter_map(|d| d.os()).collect();
            let os = Os::boot(
                &os_cfg,
                &f.workload.io,
                &defects,
                SimTime::ZERO,
                bsp,
                &streams,
                &mut p,
                &mut probe,
            )?;
            let checks = OsCheckers::default();
            checkers.extend(checks.ids());
            if f.workload.io.enabled && p.io().devices().iter().any(|d| d.is_live()) {
                checkers.push(DRIVER);
            }
            Load::Os {
                os: Box::new(os),
                checks: Box::new(checks),
            }
        }
        WorkloadKind::RandomTester => {
            checkers.push(cells::check::TESTER);
            let driver =
                IoExerciser::new(f.workload.io.clone(), &p).map_err(|e| RunError::Driver {
                    field: e.field,
                    message: e.message,
                })?;
            if !driver.irq_cpus().is_empty() {
                checkers.push(DRIVER);
            }
            // Firmware boot: start every present CPU.
            let boot: Vec<CpuId> = p
                .machine()
                .cpus()
                .iter()
                .filter(|c| c.state == cells::CpuState::PresentHalted)
                .map(|c| c.id)
                .collect();
            for c in boot {
                p.cpu_event(SimTime::ZERO, c, CpuEvent::Start, &mut probe)
                    .map_err(|e| {
                        RunError::Workload(cells::tester::TesterError::Cpu {
                            cpu: c,
                            reason: e.to_string(),
                        })
                    })?;
            }
            let tester = RandomTester::new(
                f.workload.tester.clone(),
                &scn.workload_cpus,
                p.machine(),
                &streams,
            )?;
            Load::Tester {
                tester: Box::new(tester),
                driver: Box::new(driver),
                step_pending: vec![false; ncpus],
                irq_pending: vec![false; ncpus],
            }
        }
    };
    let mut run = Run {
        p,
        probe,
        load,
        q: EventQueue::new(),
        actions: Vec::new(),
        audits: 0,
        sysfs: Vec::new(),
    };
    let end = SimTime::ZERO + f.duration.0;
    if let Load::Tester {
        driver,
        step_pending,
        ..
    } = &mut run.load
    {
        // The exerciser brings the cards up at boot.
        let problems = driver.boot(SimTime::ZERO, &mut run.p, &mut run.probe);
        for msg in problems {
            run.actions.push(ActionRecord {
                time: SimTime::ZERO,
                action: "driver_boot",
                target: "io".into(),
                result: Err(msg),
                errno: None,
                expected: None,
                mem_op: None,
                pci_op: None,
                changed_on_refusal: None,
                notification: None,
            });
        }
        for &c in &scn.workload_cpus {
            run.q.schedule(SimTime::ZERO, Ev::Step(c))?;
            step_pending[c.index()] = true;
        }
        if let Some(every) = driver.poll_interval() {
            run.q.schedule(SimTime::ZERO + every, Ev::Poll)?;
        }
    }
    run.follow_up(SimTime::ZERO)?;
    for (i, t) in scn.timeline.iter().enumerate() {
        run.q.schedule(SimTime::ZERO + t.at, Ev::Action(i))?;
    }
    let audit_every = f.checks.audit_interval.0;
    if SimTime::ZERO + audit_every < end {
        run.q.schedule(SimTime::ZERO + audit_every, Ev::Audit)?;
    }
    run.q.schedule(end, Ev::End)?;
    Ok((run, checkers))
}

/// Runs the events — the runner's (tester steps, card ticks, actions, audits) and the OS's
/// own queue — in time order until the end; the OS's event goes first only if strictly
/// earlier. Ends with the last audit.
fn main_loop(scn: &Scenario, opts: &RunOptions, run: &mut Run) -> Result<(), RunError> {
    let f = &scn.file;
    let end = SimTime::ZERO + f.duration.0;
    let audit_every = f.checks.audit_interval.0;
    let budget = f.workload.max_accesses.unwrap_or(u64::MAX);
    let mut issued = 0u64;
    let mut events = 0u64;
    loop {
        events += 1;
        if let Some(p) = opts
            .progress
            .as_ref()
            .filter(|_| events % PROGRESS_EVERY == 0)
        {
            let at = run.q.peek_time().unwrap_or(end).min(end);
            (p.0)(at, end);
        }
        // The OS's next event, if it comes strictly before the runner's.
        let q_next = run.q.peek_time();
        if let Load::Os { os, .. } = &mut run.load {
            if let Some(t) = os.next_time().filter(|&t| q_next.is_none_or(|q| t < q)) {
                os.step(&mut run.p, &mut run.probe);
                run.follow_up(t)?;
                continue;
            }
        }
        let Some((now, ev)) = run.q.pop() else {
            break;
        };
        match ev {
            Ev::Step(c) => {
                // A CPU that is not running executes nothing (firmware may have halted or
                // powered it off behind the workload's back, e.g. by an eject).
                let running = run.p.machine().cpu(c).is_some_and(|x| x.state.is_running());
                let Load::Tester {
                    tester,
                    step_pending,
                    ..
                } = &mut run.load
                else {
                    continue;
                };
                if !running {
                    tester.set_active(c, false);
                }
                if !tester.is_active(c) || issued >= budget {
                    step_pending[c.index()] = false;
                    continue;
                }
                issued += 1;
                let (dt, bad) = tester.step(now, c, run.p.machine_mut(), &mut run.probe)?;
                if let Some(v) = bad {
                    run.push(v);
                }
                run.q
                    .schedule(now + dt.max(SimDuration::from_nanos(1)), Ev::Step(c))?;
            }
            Ev::Device(d) => {
                if let Some(next) = run.p.device_tick(now, d, &mut run.probe) {
                    run.q.schedule(next, Ev::Device(d))?;
                }
            }
            Ev::Irq(c) => {
                if let Load::Tester {
                    driver,
                    irq_pending,
                    ..
                } = &mut run.load
                {
                    irq_pending[c.index()] = false;
                    let found = driver.service(now, c, &mut run.p, &mut run.probe);
                    for v in found {
                        run.push(v);
                    }
                }
            }
            Ev::Poll => {
                if let Load::Tester { driver, .. } = &mut run.load {
                    driver.poll(now, &mut run.p, &mut run.probe);
                    if let Some(every) = driver.poll_interval() {
                        if now + every < end {
                            run.q.schedule(now + every, Ev::Poll)?;
                        }
                    }
                }
            }
            Ev::Action(i) => {
                let entry = &scn.timeline[i];
                let before = request_state(run);
                let mut rec = act(now, entry, run);
                if rec.result.is_err() {
                    // A refusal changes nothing: not the hardware, not the OS.
                    let after = request_state(run);
                    let changed: Vec<&str> = before
                        .iter()
                        .zip(&after)
                        .filter(|(b, a)| b.1 != a.1)
                        .map(|(b, _)| b.0)
                        .collect();
                    if !changed.is_empty() {
                        rec.changed_on_refusal = Some(changed.join(", "));
                    }
                }
                if let (
                    Ok(_),
                    &Action::Cpu {
                        cpu: c,
                        event: CpuEvent::Start,
                    },
                ) = (&rec.result, &entry.action)
                {
                    if let Load::Tester {
                        tester,
                        step_pending,
                        ..
                    } = &mut run.load
                    {
                        if tester.is_active(c) && !step_pending[c.index()] {
                            step_pending[c.index()] = true;
                            run.q.schedule(now, Ev::Step(c))?;
                        }
                    }
                }
                run.probe.trace.record(TraceRecord {
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
                run.actions.push(rec);
                if let Some(Inspect(look)) = &opts.inspect {
                    let os = match &run.load {
                        Load::Os { os, .. } => Some(&**os),
                        Load::Tester { .. } => None,
                    };
                    look(now, i, &run.p, os, run.probe.violations.total());
                }
            }
            Ev::Audit => {
                run.audit(now);
                let next = now + audit_every;
                if next < end {
                    run.q.schedule(next, Ev::Audit)?;
                }
            }
            Ev::End => break,
        }
        run.follow_up(now)?;
    }
    run.audit(end);
    Ok(())
}

/// What came of the run: the actions judged by the operations they started, the trace
/// hash, every expectation of the scenario (checkers that must fire or stay silent,
/// reports, figures).
fn judge(scn: &Scenario, opts: &RunOptions, run: Run, checkers: Vec<CheckerId>) -> RunResult {
    let f = &scn.file;
    let seed = scn.seed(opts.seed);
    let end = SimTime::ZERO + f.duration.0;
    let Run {
        p,
        mut probe,
        load,
        mut actions,
        audits,
        sysfs,
        ..
    } = run;
    if let Load::Os { os, .. } = &load {
        resolve_refusals(&mut actions, os);
        resolve_mem_ops(&mut actions, os);
        resolve_pci_ops(&mut actions, os);
    }
    for v in probe
        .violations
        .kept()
        .to_vec()
        .iter()
        .filter(|v| v.checker != cells::check::TESTER && v.checker != DRIVER)
    {
        probe.trace.record(violation_record(v));
    }
    let mut h = StableHasher::new();
    h.word(probe.trace.hash().0);
    h.word(probe.violations.hash());
    h.word(probe.violations.total());
    let trace_hash = TraceHash(h.finish());
    let trace_events = probe.trace.events();
    let expectations: Vec<ExpectationResult> = f
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
    let mut expectations = expectations;
    for code in &f.expect.silent {
        let n = probe.violations.count(code);
        let ran = checkers.iter().any(|c| c.code == code.as_str());
        expectations.push(ExpectationResult {
            what: format!("{code} stays silent"),
            met: ran && n == 0,
            detail: if !ran {
                "it did not run in this scenario".into()
            } else if n == 0 {
                "no report".into()
            } else {
                format!("{n} violation{}", if n == 1 { "" } else { "s" })
            },
        });
    }
    // Reports the scenario expects (and allows): each entry judged by its count; every
    // violation none of them covers is unexpected.
    for (i, r) in f.expect.reports.iter().enumerate() {
        let n = probe.violations.matched(i);
        let what = format!(
            "{} reports{}{}",
            r.checker,
            r.target
                .as_ref()
                .map_or_else(String::new, |t| format!(" on {t}")),
            r.message
                .as_ref()
                .map_or_else(String::new, |m| format!(" saying \"{m}\"")),
        );
        expectations.push(ExpectationResult {
            met: match (r.count, r.max) {
                (Some(c), _) => n == c,
                (None, Some(m)) => n <= m,
                (None, None) => n > 0,
            },
            detail: match (r.count, r.max) {
                (Some(c), _) => format!("{n} (expected {c})"),
                (None, Some(m)) => format!("{n} (expected at most {m})"),
                (None, None) => format!("{n} (expected at least 1)"),
            },
            what,
        });
    }
    let unexpected_violations = probe
        .violations
        .total()
        .saturating_sub(probe.violations.covered());
    let (tester, driver, os) = match load {
        Load::Tester { tester, driver, .. } => {
            (tester.stats().clone(), driver.stats().clone(), None)
        }
        Load::Os { os, .. } => (
            cells::tester::TesterStats::default(),
            os.driver_stats().clone(),
            Some(*os),
        ),
    };
    let mut res = RunResult {
        scenario: scn.name.clone(),
        seed,
        trace_hash,
        checkers,
        tester,
        driver,
        os,
        actions,
        audits,
        end,
        records: probe.trace.records().to_vec(),
        trace_events,
        expectations,
        violations: probe.violations,
        unexpected_violations,
        shows_a_failure: !f.defects.is_empty() || !f.expect.checkers.is_empty(),
        platform: p,
        sysfs_exports: sysfs,
    };
    let judged = crate::figures::judge(&f.expect.figures, &res);
    res.expectations.extend(judged);
    res
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

fn act(now: SimTime, t: &Timed, run: &mut Run) -> ActionRecord {
    let mut errno: Option<&'static str> = None;
    let mut mem_op: Option<u32> = None;
    let mut pci_op: Option<u32> = None;
    let mut notification: Option<acpi_model::NotifyId> = None;
    let target = t.action.target();
    let (p, probe, load) = (&mut run.p, &mut run.probe, &mut run.load);
    let set_active = |load: &mut Load, c: CpuId, on: bool| {
        if let Load::Tester { tester, .. } = load {
            tester.set_active(c, on);
        }
    };
    let cpu_state = |p: &Platform, c: CpuId| {
        p.machine()
            .cpu(c)
            .map_or(String::new(), |x| x.state.to_string())
    };
    let os_refusal = |errno: &mut Option<&'static str>, e: &'static str, msg: String| {
        *errno = Some(e);
        format!("{e}: {msg}")
    };
    let result: Result<String, String> = match &t.action {
        &Action::HaltCpu { cpu: c, flush } => (|| {
            set_active(load, c, false);
            let flushed = if flush {
                let f = p
                    .machine_mut()
                    .flush_cache(now, c, probe)
                    .map_err(|e| e.to_string())?;
                format!("flushed {} lines ({} dirty), ", f.lines, f.dirty)
            } else {
                "no flush, ".to_owned()
            };
            p.cpu_event(now, c, CpuEvent::Halt, probe)
                .map(|()| format!("{flushed}{}", cpu_state(p, c)))
                .map_err(|e| e.to_string())
        })(),
        &Action::Cpu { cpu: c, event } => p
            .cpu_event(now, c, event, probe)
            .map(|()| {
                // The workload runs exactly on the CPUs that are running.
                set_active(load, c, event == CpuEvent::Start);
                cpu_state(p, c)
            })
            .map_err(|e| e.to_string()),
        &Action::FlushCache { cpu: c } => p
            .machine_mut()
            .flush_cache(now, c, probe)
            .map(|f| format!("{} lines ({} dirty)", f.lines, f.dirty))
            .map_err(|e| e.to_string()),
        &Action::Cell {
            cell: c,
            event: ev,
            if_off,
        } => {
            let powered = p.machine().cell(c).is_some_and(|x| x.state.is_powered());
            if if_off && powered {
                // The operator sees the power LED still on and leaves the board in.
                Ok(format!("skipped: {c} is still powered (if_off)"))
            } else {
                if matches!(ev, CellEvent::PowerOff | CellEvent::Remove) {
                    for id in p.machine().cpus_of(c).map(|x| x.id).collect::<Vec<_>>() {
                        set_active(load, id, false);
                    }
                }
                p.cell_event(now, c, ev, probe)
                    .map(|()| {
                        p.machine()
                            .cell(c)
                            .map_or(String::new(), |x| x.state.to_string())
                    })
                    .map_err(|e| e.to_string())
            }
        }
        &Action::InjectCorrectedError { target, count } => p
            .machine_mut()
            .inject_corrected_error(now, target, count, probe)
            .map(|total| format!("total {total}"))
            .map_err(|e| e.to_string()),
        &Action::InjectUncorrectedError { addr } => p
            .machine_mut()
            .inject_uncorrected_error(now, addr, probe)
            .map(|()| "poisoned".to_owned())
            .map_err(|e| e.to_string()),
        Action::Audit => {
            let before = probe.violations.total();
            probe.audit(now, p);
            if let Load::Os { os, checks } = load {
                checks.audit(now, os, p, &mut probe.violations);
            }
            run.audits += 1;
            Ok(format!("{} findings", probe.violations.total() - before))
        }
        &Action::CpuOnline { cpu: c, online } => match load {
            Load::Os { os, .. } => {
                let kind = if online {
                    os_model::OpKind::Up
                } else {
                    os_model::OpKind::Down
                };
                os.request(now, kind, c, os_model::Trigger::User)
                    .map(|a| a.to_string())
                    .map_err(|e| os_refusal(&mut errno, e.errno(), e.to_string()))
            }
            Load::Tester { .. } => Err("needs the OS".to_owned()),
        },
        &Action::MemoryOnline { block, online } => match load {
            Load::Os { os, .. } => os
                .mem_request(now, block, online)
                .map(|op| {
                    mem_op = Some(op);
                    format!("queued as memory operation {op}")
                })
                .map_err(|e| os_refusal(&mut errno, e.errno(), e.to_string())),
            Load::Tester { .. } => Err("needs the OS".to_owned()),
        },
        &Action::SpawnTasks { count: n } => match load {
            Load::Os { os, .. } if os.booted_at().is_none() => Err(os_refusal(
                &mut errno,
                "EBUSY",
                "boot has not finished".into(),
            )),
            // Each task is a fork of its own: the job starts with those that got memory.
            Load::Os { os, .. } => match os.spawn_tasks(now, n, p, probe) {
                0 => Err(os_refusal(
                    &mut errno,
                    "ENOMEM",
                    format!("none of the {n} tasks got memory"),
                )),
                made if made < n => Ok(format!(
                    "{made} of {n} worker tasks created (ENOMEM for the rest)"
                )),
                made => Ok(format!("{made} worker tasks created")),
            },
            Load::Tester { .. } => Err("needs the OS".to_owned()),
        },
        &Action::InjectDefect { defect: d } => match (d.os(), &mut *load) {
            (Some(od), Load::Os { os, .. }) => {
                os.inject_defect(od);
                Ok("injected from now on".to_owned())
            }
            (Some(_), Load::Tester { .. }) => Err("needs the OS".to_owned()),
            (None, _) => {
                d.apply(p);
                Ok("injected from now on".to_owned())
            }
        },
        Action::ExportSysfs { name } => match load {
            Load::Os { os, .. } => {
                let view = os.sysfs();
                let n = view.entries.len();
                run.sysfs.push((name.clone(), view));
                Ok(format!("sysfs view taken ({n} entries)"))
            }
            Load::Tester { .. } => Err("needs the OS".to_owned()),
        },
        &Action::SlotPower { slot: s, on } => match load {
            Load::Os { os, .. } => {
                let kind = if on {
                    os_model::pcihp::PciOpKind::Enable
                } else {
                    os_model::pcihp::PciOpKind::Disable
                };
                match os.pci_request(now, s.0, kind, os_model::Trigger::User) {
                    Ok(os_model::Accepted::Queued { op }) => {
                        pci_op = Some(op);
                        Ok(format!("queued as PCI operation {op}"))
                    }
                    Ok(os_model::Accepted::NoChange) => Ok("nothing to do".to_owned()),
                    Err(e) => Err(os_refusal(&mut errno, e.errno(), e.to_string())),
                }
            }
            Load::Tester { driver, .. } if on => (|| {
                let path = driver.slot_path(s).ok_or("the slot has no ACPI node")?;
                p.evaluate(now, &format!("{path}._PS0"), &[], probe)
                    .map_err(|e| e.to_string())?;
                let up = if p.io().slot(s).is_some_and(|x| x.card.is_some()) {
                    driver.resume(now, s, p, probe)?
                } else {
                    "empty slot".to_owned()
                };
                Ok(format!("_PS0; {up}"))
            })(),
            Load::Tester { driver, .. } => (|| {
                let stopped = driver.quiesce(now, s, p, probe);
                let path = driver.slot_path(s).ok_or("the slot has no ACPI node")?;
                p.evaluate(now, &format!("{path}._PS3"), &[], probe)
                    .map_err(|e| e.to_string())?;
                Ok(format!("{stopped}; _PS3"))
            })(),
        },
        &Action::MaskIrq { slot: s, masked } => match load {
            Load::Tester { driver, .. } => driver.set_masked(now, s, masked, p, probe),
            Load::Os { .. } => Err("needs the I/O exerciser".to_owned()),
        },
        &Action::InsertCard { slot: s, kind } => p
            .insert_card(now, s, kind, probe)
            .map(|d| format!("card {} ({})", d.0, kind.name()))
            .map_err(|e| e.to_string()),
        &Action::RemoveCard { slot: s } => {
            let powered = p.io().slot(s).is_some_and(|x| x.powered);
            p.remove_card(now, s, probe)
                .map(|d| {
                    format!(
                        "card {} removed{}",
                        d.0,
                        if powered {
                            " while powered (surprise)"
                        } else {
                            ""
                        }
                    )
                })
                .map_err(|e| e.to_string())
        }
        &Action::PressAttention { slot: s } => p
            .press_attention(now, s, probe)
            .map(|id| {
                notification = id;
                "eject request raised".to_owned()
            })
            .map_err(|e| e.to_string()),
        Action::Evaluate { path } => {
            let args = if path.to_ascii_uppercase().ends_with("_EJ0")
                || path.to_ascii_uppercase().ends_with("_OST")
            {
                vec![AcpiValue::Integer(1), AcpiValue::Integer(0)]
            } else {
                Vec::new()
            };
            p.evaluate(now, path, &args, probe)
                .map(|v| v.to_string())
                .map_err(|e| e.to_string())
        }
        Action::Notify { path, code } => {
            let code = code.code();
            p.notify(now, path, code, probe)
                .map(|id| {
                    notification = Some(id);
                    format!("Notify {code}")
                })
                .map_err(|e| e.to_string())
        }
        &Action::Io {
            subsystem: s,
            event,
        } => p
            .subsystem_event(now, s, event, probe)
            .map(|()| {
                p.io()
                    .subsystem(s)
                    .map_or(String::new(), |x| x.state.to_string())
            })
            .map_err(|e| e.to_string()),
    };
    let expected = t.expect.map(|e| (e, e.met(&result, errno)));
    ActionRecord {
        time: now,
        action: t.kind.name(),
        target,
        result,
        errno,
        expected,
        mem_op,
        pci_op,
        changed_on_refusal: None,
        notification,
    }
}

/// Judges the `notify` actions the OS refused when it took the notification (a cell that
/// cannot leave, an operation on it already in progress): the refusal that carries the
/// notification's number.
fn resolve_refusals(actions: &mut [ActionRecord], os: &Os) {
    for rec in actions.iter_mut() {
        let (Some(id), Ok(_)) = (rec.notification, &rec.result) else {
            continue;
        };
        let Some(r) = os.refusals().iter().find(|r| r.cause == Some(id)) else {
            continue;
        };
        rec.errno = Some(r.errno);
        rec.result = Err(format!(
            "{}: refused by the OS at {}: {}",
            r.errno, r.time, r.error
        ));
        judge_expected(rec);
    }
}

/// Judges the actions whose outcome is a memory hot-plug operation by how it ended: user
/// `memory_offline`/`memory_online` by their operation, a `notify` by the first operation
/// firmware's notification started (the one that carries its number). Operations nothing
/// asked about that failed become failed records of their own.
fn resolve_mem_ops(actions: &mut Vec<ActionRecord>, os: &Os) {
    resolve_ops(
        actions,
        os.mem_hotplug().done(),
        |r| &mut r.mem_op,
        |op| format!("memory operation {} ({})", op.id, op.kind.name()),
        ("memory_operation", "memory operation"),
    );
}

/// Judges each action by the operation of flow `F` it started (its number in `slot`, or
/// the one its notification started), and adds a failed record for each failed operation
/// nothing asked about (`kind`: the name of such a record and the flow's noun; `what`: how
/// one operation is named).
fn resolve_ops<F: os_model::ops::Flow>(
    actions: &mut Vec<ActionRecord>,
    done: &[os_model::ops::Report<F>],
    slot: fn(&mut ActionRecord) -> &mut Option<u32>,
    what: impl Fn(&os_model::ops::Report<F>) -> String,
    (action, noun): (&'static str, &'static str),
) {
    use os_model::ops::OpError;
    let mut claimed: Vec<u32> = Vec::new();
    for rec in actions.iter_mut() {
        let op = match (*slot(rec), rec.notification) {
            (Some(op), _) => done.iter().find(|r| r.id == op),
            (None, Some(id)) if rec.result.is_ok() => done.iter().find(|r| r.cause == Some(id)),
            (None, None) | (None, Some(_)) => None,
        };
        let Some(op) = op else {
            if slot(rec).is_some() {
                rec.result = Err(format!("the {noun} had not ended when the run did"));
                rec.expected = rec.expected.take().map(|(e, _)| (e, false));
            }
            continue;
        };
        claimed.push(op.id);
        *slot(rec) = Some(op.id);
        let outcome = op
            .result
            .clone()
            .map(|r| r.map_err(|e| (e.errno(), e.to_string())));
        settle(rec, &what(op), outcome);
    }
    for op in done.iter().filter(|r| !claimed.contains(&r.id)) {
        if let Some(Err(e)) = &op.result {
            if policy_refusal(op.trigger, e.errno()) {
                continue;
            }
            let mut rec = ActionRecord {
                time: op.ended.unwrap_or(op.started),
                action,
                target: what(op),
                result: Err(format!("{}: {e}", e.errno())),
                errno: Some(e.errno()),
                expected: None,
                mem_op: None,
                pci_op: None,
                changed_on_refusal: None,
                notification: None,
            };
            *slot(&mut rec) = Some(op.id);
            actions.push(rec);
        }
    }
}

/// Whether a failed operation that no action asked for is a policy's request the kernel
/// turned down for a reason (the RAS policy asking for a block that holds kernel pages): the
/// policy's business, shown in its log, not a failure of the run. A hung operation (or an
/// I/O error) is a failure whoever asked.
fn policy_refusal(trigger: os_model::Trigger, errno: &str) -> bool {
    matches!(trigger, os_model::Trigger::Ras | os_model::Trigger::Power)
        && !matches!(errno, "ETIMEDOUT" | "EIO")
}

/// Folds how the operation an action started ended into the action's record (`what`
/// names the operation), and judges the action's expectation by it.
fn settle(rec: &mut ActionRecord, what: &str, outcome: Option<Result<(), (&'static str, String)>>) {
    match outcome {
        Some(Ok(())) | None => {
            if let Ok(r) = &mut rec.result {
                r.push_str(&format!("; {what} done"));
            }
        }
        Some(Err((errno, e))) => {
            rec.errno = Some(errno);
            rec.result = Err(format!("{errno}: {what} failed: {e}"));
        }
    }
    judge_expected(rec);
}

/// Judges the action's `expect` by its (final) outcome.
fn judge_expected(rec: &mut ActionRecord) {
    if let Some((e, met)) = &mut rec.expected {
        *met = e.met(&rec.result, rec.errno);
    }
}

/// Judges the actions whose outcome is a PCI hot-plug operation by how it ended: user
/// `slot_power_off`/`slot_power_on` by their operation, a `notify` on a slot or subsystem or
/// a `press_attention` by the operation its notification started. Operations
/// nothing asked about that failed become failed records of their own.
fn resolve_pci_ops(actions: &mut Vec<ActionRecord>, os: &Os) {
    resolve_ops(
        actions,
        os.pci_hotplug().done(),
        |r| &mut r.pci_op,
        |op| format!("PCI operation {} ({} {})", op.id, op.kind.name(), op.target),
        ("pci_operation", "PCI operation"),
    );
}
