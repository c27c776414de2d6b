//! The scenario language: what a `.toml` scenario file may say, how it is parsed, and how it is
//! validated before anything runs. Every error names the file, the line and column, and the
//! field (see [`ScenarioError`]). `scenarios/README.md` documents every field.

use std::fmt;
use std::path::{Path, PathBuf};

use acpi_model::{NotifyCode, Platform, PlatformConfig};
use cells::cell::CellEvent;
use cells::config::MachineConfig;
use cells::cpu::CpuEvent;
use cells::{CacheDefect, RandomTester, TesterConfig};
use io_subsystem::{DeviceKind, IoConfig, IoDefect, SubsystemEvent};

use crate::io_driver::{IoExerciser, IoExerciserConfig};
use os_model::{OsConfig, OsDefect};
use serde::{Deserialize, Deserializer};
use sim_core::{CpuId, RngStreams, SimDuration, TraceLevel};

use crate::action::{Expect, Timed};
use crate::locate::{LineCol, line_col, locate};

/// A simulated time or duration written as `"5ms"`, `"250us"`, `"1.5s"`, `"800ns"` or an
/// integer number of nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub SimDuration);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SimDuration::deserialize(d).map(Time)
    }
}

/// Which CPUs: `"all"` (every CPU of every cell present at start) or a list of CPU ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CpuSelection {
    /// Every CPU present at start.
    #[default]
    All,
    /// These hardware CPU ids.
    List(Vec<u32>),
}

impl<'de> Deserialize<'de> for CpuSelection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CpuSelection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a list of CPU ids such as [0, 4, 8]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CpuSelection, E> {
                if v == "all" {
                    Ok(CpuSelection::All)
                } else {
                    Err(E::custom(format!(
                        "`{v}` is not a CPU selection: write \"all\" or a list such as [0, 4, 8]"
                    )))
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CpuSelection, A::Error> {
                let mut v = Vec::new();
                while let Some(c) = seq.next_element::<u32>()? {
                    v.push(c);
                }
                Ok(CpuSelection::List(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The kinds of workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// The gem5-style random coherence tester on the bare hardware (no OS).
    RandomTester,
    /// The OS model: boots from ACPI, runs its tasks, drives the cards (`[os]`).
    Os,
}

/// `[workload]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSection {
    /// What runs.
    pub kind: WorkloadKind,
    /// On which CPUs.
    #[serde(default)]
    pub cpus: CpuSelection,
    /// Stop issuing after this many accesses in total (the run still lasts `duration`).
    #[serde(default)]
    pub max_accesses: Option<u64>,
    /// The tester's knobs.
    #[serde(default)]
    pub tester: TesterConfig,
    /// The I/O exerciser's knobs.
    #[serde(default)]
    pub io: IoExerciserConfig,
}

/// `[checks]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksSection {
    /// Simulated time between full audits of caches and directories (plus one at the end).
    pub audit_interval: Time,
    /// After every miss or upgrade, probe every other cache for a conflicting copy.
    pub deep: bool,
    /// Violations kept in full in the report (all are counted).
    pub max_violations: usize,
}

impl Default for ChecksSection {
    fn default() -> Self {
        ChecksSection {
            audit_interval: Time(SimDuration::from_micros(500)),
            deep: true,
            max_violations: 1000,
        }
    }
}

/// Trace levels as written in files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceLevelName {
    /// State changes, phases, violations.
    #[default]
    Info,
    /// Also every access and coherence message (large).
    Detail,
}

/// `[trace]`: what `--trace FILE` keeps (the trace hash always covers everything).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceSection {
    /// Level of kept records.
    pub level: TraceLevelName,
    /// At most this many records are kept.
    pub max_records: usize,
}

impl Default for TraceSection {
    fn default() -> Self {
        TraceSection {
            level: TraceLevelName::Info,
            max_records: 1_000_000,
        }
    }
}

impl TraceSection {
    /// The sim-core level.
    pub fn level(&self) -> TraceLevel {
        match self.level {
            TraceLevelName::Info => TraceLevel::Info,
            TraceLevelName::Detail => TraceLevel::Detail,
        }
    }
}

/// Timeline actions on the bare hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// The workload stops using `cpu`; its cache is flushed (unless `flush = false`); PAL_HALT.
    HaltCpu,
    /// Firmware starts `cpu` (present-halted or halted) and the workload uses it again.
    StartCpu,
    /// Power `cpu` on (present-halted).
    PowerOnCpu,
    /// Power `cpu` off (its cache's contents are lost).
    PowerOffCpu,
    /// PAL_CACHE_FLUSH on `cpu`.
    FlushCache,
    /// Put a board into empty slot `cell`.
    InsertCell,
    /// Power `cell` on.
    PowerOnCell,
    /// Power `cell` off.
    PowerOffCell,
    /// Pull `cell` out (a surprise removal if it is powered).
    RemoveCell,
    /// Report `count` corrected errors against `cpu` or memory word `addr`.
    InjectCorrectedError,
    /// Poison the frame of `addr`.
    InjectUncorrectedError,
    /// Audit every cache, directory, IO SAPIC and BAR now.
    Audit,
    /// The driver quiesces the card in `slot`, then firmware `_PS3` powers the slot off.
    SlotPowerOff,
    /// Firmware `_PS0` powers `slot` on, then the driver brings its card up again.
    SlotPowerOn,
    /// A card of `kind` is pushed into the empty `slot`.
    InsertCard,
    /// The card is pulled out of `slot` (a surprise removal if the slot is powered).
    RemoveCard,
    /// Someone presses `slot`'s attention button: firmware raises an eject request.
    PressAttention,
    /// Firmware evaluates the ACPI object or method at `path` (`_EJ0` gets argument 1).
    Evaluate,
    /// Firmware raises an SCI with Notify `code` on the device at `path`.
    Notify,
    /// An I/O subsystem goes into empty slot `subsystem`.
    InsertIo,
    /// Power on I/O subsystem `subsystem`.
    PowerOnIo,
    /// Power off I/O subsystem `subsystem`.
    PowerOffIo,
    /// Pull I/O subsystem `subsystem` out (a surprise removal if powered).
    RemoveIo,
    /// The driver masks the IO SAPIC entry of the card in `slot` (its interrupts are held).
    MaskIrq,
    /// The driver unmasks it again (held interrupts are delivered).
    UnmaskIrq,
    /// The OS takes logical CPU `cpu` offline (a write of 0 to `cpuN/online`).
    CpuOffline,
    /// The OS brings logical CPU `cpu` online (a write of 1 to `cpuN/online`).
    CpuOnline,
    /// The OS takes memory block `block` offline (a write of `offline` to
    /// `memoryN/state`): pages moved out, the block handed back to firmware's control.
    MemoryOffline,
    /// The OS brings memory block `block` online (a write of `online` to `memoryN/state`).
    MemoryOnline,
    /// The OS's sysfs view is taken now, under `name` (written by `sim --sysfs-out DIR` to
    /// `DIR/name/` as a system root).
    ExportSysfs,
    /// A job starts: the OS creates `count` more worker tasks.
    SpawnTasks,
    /// The `defect` is injected from now on (the run was correct until then).
    InjectDefect,
}

impl ActionKind {
    /// The CPU state change this action is, if it is a plain one.
    pub fn cpu_event(self) -> Option<CpuEvent> {
        match self {
            ActionKind::StartCpu => Some(CpuEvent::Start),
            ActionKind::PowerOnCpu => Some(CpuEvent::PowerOn),
            ActionKind::PowerOffCpu => Some(CpuEvent::PowerOff),
            ActionKind::HaltCpu
            | ActionKind::FlushCache
            | ActionKind::InsertCell
            | ActionKind::PowerOnCell
            | ActionKind::PowerOffCell
            | ActionKind::RemoveCell
            | ActionKind::InjectCorrectedError
            | ActionKind::InjectUncorrectedError
            | ActionKind::Audit
            | ActionKind::SlotPowerOff
            | ActionKind::SlotPowerOn
            | ActionKind::InsertCard
            | ActionKind::RemoveCard
            | ActionKind::PressAttention
            | ActionKind::Evaluate
            | ActionKind::Notify
            | ActionKind::InsertIo
            | ActionKind::PowerOnIo
            | ActionKind::PowerOffIo
            | ActionKind::RemoveIo
            | ActionKind::MaskIrq
            | ActionKind::UnmaskIrq
            | ActionKind::CpuOffline
            | ActionKind::CpuOnline
            | ActionKind::MemoryOffline
            | ActionKind::MemoryOnline
            | ActionKind::ExportSysfs
            | ActionKind::SpawnTasks
            | ActionKind::InjectDefect => None,
        }
    }

    /// The cell state change this action is, if any.
    pub fn cell_event(self) -> Option<CellEvent> {
        match self {
            ActionKind::InsertCell => Some(CellEvent::Insert),
            ActionKind::PowerOnCell => Some(CellEvent::PowerOn),
            ActionKind::PowerOffCell => Some(CellEvent::PowerOff),
            ActionKind::RemoveCell => Some(CellEvent::Remove),
            ActionKind::HaltCpu
            | ActionKind::StartCpu
            | ActionKind::PowerOnCpu
            | ActionKind::PowerOffCpu
            | ActionKind::FlushCache
            | ActionKind::InjectCorrectedError
            | ActionKind::InjectUncorrectedError
            | ActionKind::Audit
            | ActionKind::SlotPowerOff
            | ActionKind::SlotPowerOn
            | ActionKind::InsertCard
            | ActionKind::RemoveCard
            | ActionKind::PressAttention
            | ActionKind::Evaluate
            | ActionKind::Notify
            | ActionKind::InsertIo
            | ActionKind::PowerOnIo
            | ActionKind::PowerOffIo
            | ActionKind::RemoveIo
            | ActionKind::MaskIrq
            | ActionKind::UnmaskIrq
            | ActionKind::CpuOffline
            | ActionKind::CpuOnline
            | ActionKind::MemoryOffline
            | ActionKind::MemoryOnline
            | ActionKind::ExportSysfs
            | ActionKind::SpawnTasks
            | ActionKind::InjectDefect => None,
        }
    }

    /// The I/O subsystem state change this action is, if any.
    pub fn io_event(self) -> Option<SubsystemEvent> {
        match self {
            ActionKind::InsertIo => Some(SubsystemEvent::Insert),
            ActionKind::PowerOnIo => Some(SubsystemEvent::PowerOn),
            ActionKind::PowerOffIo => Some(SubsystemEvent::PowerOff),
            ActionKind::RemoveIo => Some(SubsystemEvent::Remove),
            ActionKind::HaltCpu
            | ActionKind::StartCpu
            | ActionKind::PowerOnCpu
            | ActionKind::PowerOffCpu
            | ActionKind::FlushCache
            | ActionKind::InsertCell
            | ActionKind::PowerOnCell
            | ActionKind::PowerOffCell
            | ActionKind::RemoveCell
            | ActionKind::InjectCorrectedError
            | ActionKind::InjectUncorrectedError
            | ActionKind::Audit
            | ActionKind::SlotPowerOff
            | ActionKind::SlotPowerOn
            | ActionKind::InsertCard
            | ActionKind::RemoveCard
            | ActionKind::PressAttention
            | ActionKind::Evaluate
            | ActionKind::Notify
            | ActionKind::MaskIrq
            | ActionKind::UnmaskIrq
            | ActionKind::CpuOffline
            | ActionKind::CpuOnline
            | ActionKind::MemoryOffline
            | ActionKind::MemoryOnline
            | ActionKind::ExportSysfs
            | ActionKind::SpawnTasks
            | ActionKind::InjectDefect => None,
        }
    }

    /// The operands the action requires and the ones it may take.
    pub fn operands(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            ActionKind::HaltCpu => (&["cpu"], &["flush"]),
            ActionKind::CpuOffline | ActionKind::CpuOnline => (&["cpu"], &[]),
            ActionKind::MemoryOffline | ActionKind::MemoryOnline => (&["block"], &[]),
            ActionKind::ExportSysfs => (&["name"], &[]),
            ActionKind::SpawnTasks => (&["count"], &[]),
            ActionKind::InjectDefect => (&["defect"], &[]),
            ActionKind::StartCpu
            | ActionKind::PowerOnCpu
            | ActionKind::PowerOffCpu
            | ActionKind::FlushCache => (&["cpu"], &[]),
            ActionKind::InsertCell | ActionKind::PowerOnCell | ActionKind::PowerOffCell => {
                (&["cell"], &[])
            }
            ActionKind::RemoveCell => (&["cell"], &["if_off"]),
            ActionKind::InjectCorrectedError => (&[], &["cpu", "addr", "count"]),
            ActionKind::InjectUncorrectedError => (&["addr"], &[]),
            ActionKind::Audit => (&[], &[]),
            ActionKind::SlotPowerOff
            | ActionKind::SlotPowerOn
            | ActionKind::RemoveCard
            | ActionKind::PressAttention
            | ActionKind::MaskIrq
            | ActionKind::UnmaskIrq => (&["slot"], &[]),
            ActionKind::InsertCard => (&["slot", "kind"], &[]),
            ActionKind::Evaluate => (&["path"], &[]),
            ActionKind::Notify => (&["path", "code"], &[]),
            ActionKind::InsertIo
            | ActionKind::PowerOnIo
            | ActionKind::PowerOffIo
            | ActionKind::RemoveIo => (&["subsystem"], &[]),
        }
    }

    /// The name used in files.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::HaltCpu => "halt_cpu",
            ActionKind::StartCpu => "start_cpu",
            ActionKind::PowerOnCpu => "power_on_cpu",
            ActionKind::PowerOffCpu => "power_off_cpu",
            ActionKind::FlushCache => "flush_cache",
            ActionKind::InsertCell => "insert_cell",
            ActionKind::PowerOnCell => "power_on_cell",
            ActionKind::PowerOffCell => "power_off_cell",
            ActionKind::RemoveCell => "remove_cell",
            ActionKind::InjectCorrectedError => "inject_corrected_error",
            ActionKind::InjectUncorrectedError => "inject_uncorrected_error",
            ActionKind::Audit => "audit",
            ActionKind::SlotPowerOff => "slot_power_off",
            ActionKind::SlotPowerOn => "slot_power_on",
            ActionKind::InsertCard => "insert_card",
            ActionKind::RemoveCard => "remove_card",
            ActionKind::PressAttention => "press_attention",
            ActionKind::Evaluate => "evaluate",
            ActionKind::Notify => "notify",
            ActionKind::InsertIo => "insert_io",
            ActionKind::PowerOnIo => "power_on_io",
            ActionKind::PowerOffIo => "power_off_io",
            ActionKind::RemoveIo => "remove_io",
            ActionKind::MaskIrq => "mask_irq",
            ActionKind::UnmaskIrq => "unmask_irq",
            ActionKind::CpuOffline => "cpu_offline",
            ActionKind::CpuOnline => "cpu_online",
            ActionKind::MemoryOffline => "memory_offline",
            ActionKind::MemoryOnline => "memory_online",
            ActionKind::ExportSysfs => "export_sysfs",
            ActionKind::SpawnTasks => "spawn_tasks",
            ActionKind::InjectDefect => "inject_defect",
        }
    }

    /// Whether the action asks the OS (and so needs `workload.kind = "os"`).
    pub fn is_os(self) -> bool {
        matches!(
            self,
            ActionKind::CpuOffline
                | ActionKind::CpuOnline
                | ActionKind::MemoryOffline
                | ActionKind::MemoryOnline
                | ActionKind::ExportSysfs
                | ActionKind::SpawnTasks
        )
    }

    /// Whether the action drives the bare-platform I/O exerciser (`random_tester` only: the
    /// OS masks and unmasks its interrupts itself).
    pub fn is_exerciser(self) -> bool {
        matches!(self, ActionKind::MaskIrq | ActionKind::UnmaskIrq)
    }

    /// Whether, under the OS, the action's outcome is the OS's (an errno may be expected):
    /// its own requests, and slot power writes and firmware notifications it acts on.
    pub fn answered_by_os(self, os_mode: bool) -> bool {
        self.is_os()
            || os_mode
                && matches!(
                    self,
                    ActionKind::SlotPowerOff
                        | ActionKind::SlotPowerOn
                        | ActionKind::Notify
                        | ActionKind::PressAttention
                )
    }
}

/// One `[[timeline]]` entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    /// When.
    pub at: Time,
    /// What.
    pub action: ActionKind,
    /// The CPU acted on.
    pub cpu: Option<u32>,
    /// The cell acted on.
    pub cell: Option<u16>,
    /// The physical address acted on.
    pub addr: Option<u64>,
    /// How many errors.
    pub count: Option<u32>,
    /// For `halt_cpu`: flush the cache first (default true).
    pub flush: Option<bool>,
    /// A slot number (`_SUN`, from 1).
    pub slot: Option<u16>,
    /// An I/O subsystem.
    pub subsystem: Option<u16>,
    /// An ACPI path, e.g. `\_SB_.CL03._EJ0`.
    pub path: Option<String>,
    /// A card kind.
    pub kind: Option<DeviceKind>,
    /// A Notify code.
    pub code: Option<NotifyName>,
    /// A memory block (`memoryN`).
    pub block: Option<u32>,
    /// The name of a sysfs export point (`export_sysfs`).
    pub name: Option<String>,
    /// A defect to inject (`inject_defect`).
    pub defect: Option<Defect>,
    /// For `remove_cell`: pull the board only if firmware has powered it off (an operator
    /// waiting for the power LED); otherwise the action is skipped.
    pub if_off: Option<bool>,
    /// What must come of the action: `"ok"`, `"refused"` (any refusal), an errno the OS
    /// refuses with (`"EBUSY"`, `"EINVAL"`), or `"any"` (either, as long as a refusal gives
    /// a reason — not `ETIMEDOUT` or `EIO` — and changes nothing). Without it, a refused
    /// action makes the run fail.
    pub expect: Option<String>,
}

/// The outcomes `timeline[].expect` may name.
pub const EXPECT_OUTCOMES: [&str; 10] = [
    "ok",
    "refused",
    "any",
    "EINVAL",
    "EBUSY",
    "ENOMEM",
    "ENODEV",
    "ENOSPC",
    "ETIMEDOUT",
    "EIO",
];

/// Notify codes as written in files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyName {
    /// 0x00.
    BusCheck,
    /// 0x01.
    DeviceCheck,
    /// 0x03.
    EjectRequest,
}

impl NotifyName {
    /// The firmware's code.
    pub fn code(self) -> NotifyCode {
        match self {
            NotifyName::BusCheck => NotifyCode::BusCheck,
            NotifyName::DeviceCheck => NotifyCode::DeviceCheck,
            NotifyName::EjectRequest => NotifyCode::EjectRequest,
        }
    }
}

/// Every injectable defect, by the name used in files: the cache model's, the IO SAPIC's
/// or the OS model's own enum (one list each, kept by its crate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Defect {
    /// A defect of the cache model.
    Cache(CacheDefect),
    /// A defect of the IO SAPIC model.
    Io(IoDefect),
    /// A defect of the OS model.
    Os(OsDefect),
}

/// Every defect's name, in the order of [`Defect`]'s lists.
static DEFECT_NAMES: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| Defect::all().map(Defect::name).collect());

impl Defect {
    /// Every defect.
    pub fn all() -> impl Iterator<Item = Defect> {
        CacheDefect::ALL
            .into_iter()
            .map(Defect::Cache)
            .chain(IoDefect::ALL.into_iter().map(Defect::Io))
            .chain(OsDefect::ALL.into_iter().map(Defect::Os))
    }

    /// The defect called `name` in files.
    pub fn from_name(name: &str) -> Option<Defect> {
        Defect::all().find(|d| d.name() == name)
    }

    /// Switches the defect on in the platform (an OS defect is the OS's to switch on).
    pub fn apply(self, p: &mut Platform) {
        match self {
            Defect::Cache(d) => p.machine_mut().inject_defect(d),
            Defect::Io(d) => p.io_mut().inject_defect(d),
            Defect::Os(_) => {}
        }
    }

    /// The OS defect this is, if it is one.
    pub fn os(self) -> Option<OsDefect> {
        match self {
            Defect::Os(d) => Some(d),
            Defect::Cache(_) | Defect::Io(_) => None,
        }
    }

    /// The name used in files.
    pub fn name(self) -> &'static str {
        match self {
            Defect::Cache(d) => d.name(),
            Defect::Io(d) => d.name(),
            Defect::Os(d) => d.name(),
        }
    }

    /// The file of its scenario, relative to the repository root:
    /// `scenarios/defects/{cache,io,os}_<name>.toml`.
    pub fn scenario_file(self) -> String {
        let layer = match self {
            Defect::Cache(_) => "cache",
            Defect::Io(_) => "io",
            Defect::Os(_) => "os",
        };
        format!("scenarios/defects/{layer}_{}.toml", self.name())
    }

    /// The codes of the checkers that report it on every seed of its scenario.
    pub fn caught_by(self) -> Vec<&'static str> {
        match self {
            Defect::Cache(d) => d.caught_by().iter().map(|c| c.code).collect(),
            Defect::Io(d) => d.caught_by().to_vec(),
            Defect::Os(d) => d.caught_by().to_vec(),
        }
    }
}

impl<'de> Deserialize<'de> for Defect {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Defect, D::Error> {
        let name = String::deserialize(de)?;
        Defect::from_name(&name)
            .ok_or_else(|| serde::de::Error::unknown_variant(&name, &DEFECT_NAMES))
    }
}

/// The checkers that may be named in `[expect]`.
pub const CHECKER_CODES: [&str; 9] = [
    "CHK-1", "CHK-2", "CHK-3", "CHK-4", "CHK-5", "CHK-6", "CHK-7", "TESTER", "DRIVER",
];

/// `[expect]`: what must happen for the scenario to have shown what it is meant to show.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpectSection {
    /// Checkers (by code: `CHK-1` … `CHK-7`, `TESTER`, `DRIVER`) that must report at least
    /// one violation.
    /// The run still exits 1 (a checker fired); the report shows each expectation as met or not.
    pub checkers: Vec<String>,
    /// Reports that must be made — and the only ones allowed: a run whose every report is
    /// one of these (and each of these made as often as it says) is clean. For what a
    /// checker must see happen, such as an OS's accesses to a card pulled out under it.
    pub reports: Vec<ExpectedReport>,
    /// Checkers (by code) that must report nothing — in a scenario where another checker is
    /// meant to fire, the proof that the defect stays confined to what it breaks. A checker
    /// that did not run (e.g. `CHK-3` without the OS) does not count as silent.
    pub silent: Vec<String>,
    /// Figures of the run that must lie within bounds (see `figures::FIGURES`).
    pub figures: Vec<ExpectedFigure>,
}

/// One `[[expect.figures]]` entry: a named figure of the run and its bounds (inclusive).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFigure {
    /// The figure's name (`pages_moved`, `cpu_op_max_ns`, `hit_rate`, …).
    pub figure: String,
    /// The least value allowed.
    #[serde(default)]
    pub min: Option<f64>,
    /// The greatest value allowed.
    #[serde(default)]
    pub max: Option<f64>,
}

/// One `[[expect.reports]]` entry: the reports of `checker` whose target and message
/// contain the given texts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedReport {
    /// The checker (`CHK-1` …).
    pub checker: String,
    /// Text the report's target must contain (e.g. `pci 0000:00:01.0`).
    #[serde(default)]
    pub target: Option<String>,
    /// Text the report's message must contain.
    #[serde(default)]
    pub message: Option<String>,
    /// Exactly this many such reports (default: at least one).
    #[serde(default)]
    pub count: Option<u64>,
    /// At most this many such reports, none at all included (instead of `count`): for
    /// reports a run may or may not make, such as the access that discovers a card pulled
    /// out by surprise.
    #[serde(default)]
    pub max: Option<u64>,
}

impl ExpectedReport {
    /// Whether the violation `v` is one of these.
    pub fn matches(&self, v: &sim_core::Violation) -> bool {
        v.checker.code == self.checker
            && self
                .target
                .as_ref()
                .is_none_or(|t| v.target.to_string().contains(t.as_str()))
            && self
                .message
                .as_ref()
                .is_none_or(|m| v.message.contains(m.as_str()))
    }
}

/// A whole scenario file, as written.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Name (default: the file's stem).
    pub name: Option<String>,
    /// What the scenario shows.
    pub description: Option<String>,
    /// The seed of every random stream (overridden by `--seed`).
    #[serde(default)]
    pub seed: u64,
    /// Simulated time the run lasts.
    pub duration: Time,
    /// The hardware.
    #[serde(default)]
    pub machine: MachineConfig,
    /// The I/O hardware.
    #[serde(default)]
    pub io: IoConfig,
    /// What runs on it.
    pub workload: WorkloadSection,
    /// The OS model's parameters (`workload.kind = "os"`).
    #[serde(default)]
    pub os: OsConfig,
    /// Checker settings.
    #[serde(default)]
    pub checks: ChecksSection,
    /// Injected defects, by name.
    #[serde(default)]
    pub defects: Vec<Defect>,
    /// Hardware actions at given times.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// What `--trace` keeps.
    #[serde(default)]
    pub trace: TraceSection,
    /// What must happen.
    #[serde(default)]
    pub expect: ExpectSection,
}

/// A scenario that parsed and validated.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Where it came from.
    pub path: PathBuf,
    /// Its name.
    pub name: String,
    /// Its contents.
    pub file: ScenarioFile,
    /// CPUs running the workload, resolved.
    pub workload_cpus: Vec<CpuId>,
    /// The timeline, each action with exactly its operands.
    pub timeline: Vec<Timed>,
}

/// A scenario that cannot be run, with where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file.
    pub file: PathBuf,
    /// Where in it, if known.
    pub at: Option<LineCol>,
    /// The offending field as a dotted path, if known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(at) = self.at {
            write!(f, ":{}:{}", at.line, at.column)?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        // One line, always.
        let msg = self
            .message
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        write!(f, "{msg}")
    }
}

impl std::error::Error for ScenarioError {}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_owned()
}

impl Scenario {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let bytes = std::fs::read(path).map_err(|e| ScenarioError {
            file: path.to_owned(),
            at: None,
            field: None,
            message: format!("cannot read the scenario: {e}"),
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
                return Err(ScenarioError {
                    file: path.to_owned(),
                    at: Some(line_col(&prefix, valid)),
                    field: None,
                    message: "not UTF-8 text (is this a binary file?)".into(),
                });
            }
        };
        Scenario::parse(path, &text)
    }

    /// Parses and validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let err = |at: Option<LineCol>, field: Option<String>, message: String| ScenarioError {
            file: path.to_owned(),
            at,
            field,
            message,
        };
        if text.trim().is_empty() {
            return Err(err(
                None,
                None,
                "the file is empty; a scenario needs at least `duration` and a [workload] table"
                    .into(),
            ));
        }
        let de = toml::Deserializer::parse(text).map_err(|e| {
            // A syntax error points at text; when that text is a key, name it as the field.
            let field = e.span().and_then(|s| text.get(s)).and_then(|k| {
                let k = k.trim();
                let is_key = !k.is_empty()
                    && k.len() <= 64
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
                is_key.then(|| k.to_owned())
            });
            err(
                e.span().map(|s| line_col(text, s.start)),
                field,
                first_line(e.message()),
            )
        })?;
        let file: ScenarioFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path_s = e.path().to_string();
            let inner = e.inner();
            let message = first_line(inner.message());
            let mut field = (path_s != ".").then(|| path_s.clone());
            // "missing field `x`": the field is the missing one, inside the path.
            if let Some(missing) = message
                .strip_prefix("missing field `")
                .and_then(|m| m.strip_suffix('`'))
            {
                field = Some(match field {
                    Some(parent) => format!("{parent}.{missing}"),
                    None => missing.to_owned(),
                });
            }
            let at = inner
                .span()
                .map(|s| line_col(text, s.start))
                .or_else(|| field.as_deref().and_then(|f| locate(text, f)));
            err(at, field, message)
        })?;
        let name = file.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
        });
        let at_field = |field: String, message: String| {
            let at = locate(text, &field);
            err(at, Some(field), message)
        };
        let (workload_cpus, timeline) = validate(&file).map_err(|(f, m)| at_field(f, m))?;
        Ok(Scenario {
            path: path.to_owned(),
            name,
            file,
            workload_cpus,
            timeline,
        })
    }

    /// The seed to use: `--seed` if given, else the file's.
    pub fn seed(&self, over: Option<u64>) -> u64 {
        over.unwrap_or(self.file.seed)
    }
}

impl ScenarioFile {
    /// The platform part of the file.
    pub fn platform_config(&self) -> PlatformConfig {
        PlatformConfig {
            machine: self.machine.clone(),
            io: self.io.clone(),
        }
    }
}

/// Semantic checks; returns the workload CPUs and the typed timeline, or `(field, message)`.
fn validate(f: &ScenarioFile) -> Result<(Vec<CpuId>, Vec<Timed>), (String, String)> {
    let geo = f
        .machine
        .validate()
        .map_err(|e| (format!("machine.{}", e.field), e.message))?;
    if f.duration.0 == SimDuration::ZERO {
        return Err(("duration".into(), "must be longer than 0".into()));
    }
    if f.checks.audit_interval.0 == SimDuration::ZERO {
        return Err((
            "checks.audit_interval".into(),
            "must be longer than 0".into(),
        ));
    }
    for (i, c) in f.expect.checkers.iter().enumerate() {
        if !CHECKER_CODES.contains(&c.as_str()) {
            return Err((
                format!("expect.checkers[{i}]"),
                format!(
                    "unknown checker `{c}` (known: {})",
                    CHECKER_CODES.join(", ")
                ),
            ));
        }
    }
    if f.expect.reports.len() > 64 {
        return Err((
            format!("expect.reports[{}]", f.expect.reports.len() - 1),
            format!(
                "{} expected reports: at most 64 (merge entries with a shorter message)",
                f.expect.reports.len()
            ),
        ));
    }
    for (i, r) in f.expect.reports.iter().enumerate() {
        if !CHECKER_CODES.contains(&r.checker.as_str()) {
            return Err((
                format!("expect.reports[{i}].checker"),
                format!(
                    "unknown checker `{}` (known: {})",
                    r.checker,
                    CHECKER_CODES.join(", ")
                ),
            ));
        }
        if r.count == Some(0) {
            return Err((
                format!("expect.reports[{i}].count"),
                "must be at least 1 (a report that must not happen is any report not listed)"
                    .into(),
            ));
        }
        if r.count.is_some() && r.max.is_some() {
            return Err((
                format!("expect.reports[{i}].max"),
                "give either count (exactly) or max (at most), not both".into(),
            ));
        }
    }
    for (i, c) in f.expect.silent.iter().enumerate() {
        if !CHECKER_CODES.contains(&c.as_str()) {
            return Err((
                format!("expect.silent[{i}]"),
                format!(
                    "unknown checker `{c}` (known: {})",
                    CHECKER_CODES.join(", ")
                ),
            ));
        }
        if f.expect.checkers.contains(c) {
            return Err((
                format!("expect.silent[{i}]"),
                format!("`{c}` is also in expect.checkers: it cannot both fire and stay silent"),
            ));
        }
        if f.expect.reports.iter().any(|r| &r.checker == c) {
            return Err((
                format!("expect.silent[{i}]"),
                format!("`{c}` has expected reports in expect.reports: it cannot stay silent"),
            ));
        }
    }
    for (i, e) in f.expect.figures.iter().enumerate() {
        if !crate::figures::is_figure(&e.figure) {
            return Err((
                format!("expect.figures[{i}].figure"),
                format!(
                    "unknown figure `{}` (known: {})",
                    e.figure,
                    crate::figures::FIGURES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for (k, b) in [("min", e.min), ("max", e.max)] {
            if b.is_some_and(|x| !x.is_finite()) {
                return Err((
                    format!("expect.figures[{i}].{k}"),
                    "must be a finite number".into(),
                ));
            }
        }
        match (e.min, e.max) {
            (None, None) => {
                return Err((
                    format!("expect.figures[{i}]"),
                    "give `min`, `max` or both".into(),
                ));
            }
            (Some(lo), Some(hi)) if lo > hi => {
                return Err((
                    format!("expect.figures[{i}].max"),
                    format!("{hi} is below min = {lo}"),
                ));
            }
            _ => {}
        }
    }
    let os_mode = f.workload.kind == WorkloadKind::Os;
    for (i, d) in f.defects.iter().enumerate() {
        if d.os().is_some() && !os_mode {
            return Err((
                format!("defects[{i}]"),
                format!(
                    "`{}` is a defect of the OS model: it needs workload.kind = \"os\"",
                    d.name()
                ),
            ));
        }
    }
    if os_mode {
        f.os.validate()
            .map_err(|e| (format!("os.{}", e.field), e.message))?;
        if f.workload.cpus != CpuSelection::All {
            return Err((
                "workload.cpus".into(),
                "the OS schedules its own tasks on every online CPU; `cpus` is for \
                 random_tester"
                    .into(),
            ));
        }
    }
    let ncpus = geo.cpus as u32;
    let cpus: Vec<CpuId> = match &f.workload.cpus {
        CpuSelection::All => (0..ncpus)
            .filter(|&c| geo.present[c as usize / geo.cpus_per_cell])
            .map(CpuId)
            .collect(),
        CpuSelection::List(l) => {
            let mut seen = vec![false; geo.cpus];
            for (i, &c) in l.iter().enumerate() {
                let field = format!("workload.cpus[{i}]");
                if c >= ncpus {
                    return Err((
                        field,
                        format!("cpu{c} does not exist (the machine has {ncpus} CPUs)"),
                    ));
                }
                if !geo.present[c as usize / geo.cpus_per_cell] {
                    return Err((
                        field,
                        format!(
                            "cpu{c} is on cell {}, which is not present at start",
                            c as usize / geo.cpus_per_cell
                        ),
                    ));
                }
                if std::mem::replace(&mut seen[c as usize], true) {
                    return Err((field, format!("cpu{c} is listed twice")));
                }
            }
            l.iter().map(|&c| CpuId(c)).collect()
        }
    };
    if cpus.is_empty() {
        return Err((
            "workload.cpus".into(),
            "no CPU to run the workload on".into(),
        ));
    }
    if f.workload.max_accesses == Some(0) {
        return Err((
            "workload.max_accesses".into(),
            "must be at least 1 when given".into(),
        ));
    }
    // Build the platform, the tester and the exerciser once: their layouts depend on it all.
    let p = Platform::new(&f.platform_config()).map_err(|e| (e.field, e.message))?;
    if os_mode {
        f.workload
            .io
            .validate()
            .map_err(|e| (format!("workload.io.{}", e.field), e.message))?;
        // Boot once on a scratch platform: what depends on the machine (bound CPUs, memory)
        // is found now, with the file and line, rather than in the middle of the run.
        let mut scratch = Platform::new(&f.platform_config()).map_err(|e| (e.field, e.message))?;
        let mut probe = acpi_model::PlatformProbe::bare(sim_core::Trace::new(TraceLevel::Off, 0));
        let (_, bsp) = scratch
            .start_boot_cpu(sim_core::SimTime::ZERO, &mut probe)
            .map_err(|e| ("machine".to_owned(), e.to_string()))?;
        os_model::Os::boot(
            &f.os,
            &f.workload.io,
            &[],
            sim_core::SimTime::ZERO,
            bsp,
            &RngStreams::new(0),
            &mut scratch,
            &mut probe,
        )
        .map_err(|e| match e {
            os_model::OsError::Config { field, message } => (format!("os.{field}"), message),
            os_model::OsError::NoDisk { .. } | os_model::OsError::DiskTooSmall { .. } => {
                ("os.memory.files".to_owned(), e.to_string())
            }
            os_model::OsError::NoBootCpu { .. }
            | os_model::OsError::NoSci { .. }
            | os_model::OsError::NoMemory
            | os_model::OsError::OutOfMemory(_) => ("os".to_owned(), e.to_string()),
        })?;
        // The kernel's disk: its files must have one, and fit it.
        let field = if f.os.memory.disk_slot.is_some() {
            "os.memory.disk_slot"
        } else {
            "os.memory.files"
        };
        match os_model::install_disk(&f.os, &mut scratch) {
            Err(e) => return Err(("os.memory.files".into(), e.to_string())),
            Ok(None) if f.os.memory.files > 0 || f.os.memory.disk_slot.is_some() => {
                let why = match f.os.memory.disk_slot {
                    Some(s) => format!("slot {s} holds no storage card at start"),
                    None => format!(
                        "the kernel's {} files need a disk and no slot holds a storage card at \
                         start",
                        f.os.memory.files
                    ),
                };
                return Err((
                    field.into(),
                    format!("{why} (declare one: [[io.device]] with kind = \"disk\")"),
                ));
            }
            Ok(Some(_)) if !f.workload.io.enabled && f.os.memory.files > 0 => {
                return Err((
                    "workload.io.enabled".into(),
                    format!(
                        "the kernel's {} files are on a storage card, which only a running \
                         driver can read",
                        f.os.memory.files
                    ),
                ));
            }
            Ok(_) => {}
        }
    } else {
        RandomTester::new(
            f.workload.tester.clone(),
            &cpus,
            p.machine(),
            &RngStreams::new(0),
        )
        .map_err(|e| match e {
            cells::tester::TesterError::Invalid { field, message } => {
                let field = if field == "cpus" {
                    "workload.cpus".to_owned()
                } else {
                    format!("workload.tester.{field}")
                };
                (field, message)
            }
            cells::tester::TesterError::Cpu { .. } => ("workload.cpus".into(), e.to_string()),
        })?;
        IoExerciser::new(f.workload.io.clone(), &p)
            .map_err(|e| (format!("workload.io.{}", e.field), e.message))?;
    }
    let nslots = p.io().slots().len();
    let nsubs = p.io().subsystems().len();
    let mut last = SimDuration::ZERO;
    let mut timeline = Vec::with_capacity(f.timeline.len());
    for (i, t) in f.timeline.iter().enumerate() {
        let field = |k: &str| format!("timeline[{i}].{k}");
        if t.at.0 < last {
            return Err((
                field("at"),
                format!(
                    "{} comes before the previous entry's {}: keep the timeline in time order",
                    t.at.0, last
                ),
            ));
        }
        last = t.at.0;
        if t.at.0 > f.duration.0 {
            return Err((
                field("at"),
                format!("{} is after the end of the run ({})", t.at.0, f.duration.0),
            ));
        }
        let name = t.action.name();
        if t.action.is_os() && !os_mode {
            return Err((
                field("action"),
                format!("`{name}` asks the OS: it needs workload.kind = \"os\""),
            ));
        }
        if t.action.is_exerciser() && os_mode {
            return Err((
                field("action"),
                format!(
                    "`{name}` drives the bare-platform I/O exerciser (workload.kind = \
                     \"random_tester\"); the OS routes and masks its interrupts itself"
                ),
            ));
        }
        let expect = t
            .expect
            .as_deref()
            .map(Expect::read)
            .transpose()
            .map_err(|m| (field("expect"), m))?;
        if let Some(e) = expect {
            if matches!(e, Expect::Errno(_)) && !t.action.answered_by_os(os_mode) {
                return Err((
                    field("expect"),
                    format!("`{name}` is refused without an errno; expect \"ok\" or \"refused\""),
                ));
            }
        }
        timeline.push(Timed::from_entry(t, expect).map_err(|(k, m)| (field(k), m))?);
        if let Some(c) = t.cpu.filter(|&c| c >= ncpus && !t.action.is_os()) {
            return Err((
                field("cpu"),
                format!("cpu{c} does not exist (the machine has {ncpus} CPUs)"),
            ));
        }
        if let Some(b) = t.block {
            let size = f.os.memory.block_size.0.max(1);
            let nblocks = geo.total_bytes / size;
            if u64::from(b) >= nblocks {
                return Err((
                    field("block"),
                    format!(
                        "memory{b} does not exist (the machine has {nblocks} blocks of {})",
                        f.os.memory.block_size
                    ),
                ));
            }
        }
        if let Some(d) = t.defect {
            if d.os().is_some() && !os_mode {
                return Err((
                    field("defect"),
                    format!(
                        "`{}` is a defect of the OS model: it needs workload.kind = \"os\"",
                        d.name()
                    ),
                ));
            }
            if f.defects.contains(&d)
                || f.timeline[..i]
                    .iter()
                    .any(|e| e.action == ActionKind::InjectDefect && e.defect == Some(d))
            {
                return Err((
                    field("defect"),
                    format!("`{}` is already injected before this point", d.name()),
                ));
            }
        }
        if t.action == ActionKind::SpawnTasks {
            if let Some(n) = t.count.filter(|&n| n == 0 || n > 4096) {
                return Err((field("count"), format!("{n} tasks: give 1 to 4096")));
            }
        }
        if let Some(n) = &t.name {
            let ok = !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
            if !ok || n == "sys" || n == "proc" {
                return Err((
                    field("name"),
                    format!(
                        "{n:?} cannot name an export: use 1 to 64 letters, digits, `_` or `-`, \
                         and not `sys` or `proc` (the final view's directories)"
                    ),
                ));
            }
            if f.timeline[..i].iter().any(|e| e.name.as_ref() == Some(n)) {
                return Err((
                    field("name"),
                    format!("{n:?} names an earlier export too: each export needs its own name"),
                ));
            }
        }
        if let Some(c) = t.cell.filter(|&c| usize::from(c) >= geo.cells) {
            return Err((
                field("cell"),
                format!(
                    "cell{c} does not exist (the machine has {} cell slots)",
                    geo.cells
                ),
            ));
        }
        if let Some(s) = t.slot.filter(|&s| s == 0 || usize::from(s) > nslots) {
            return Err((
                field("slot"),
                format!("slot {s} does not exist (slots are numbered 1 to {nslots})"),
            ));
        }
        if let Some(s) = t.subsystem.filter(|&s| usize::from(s) >= nsubs) {
            return Err((
                field("subsystem"),
                format!("I/O subsystem {s} does not exist (the machine has {nsubs})"),
            ));
        }
        if let Some(path) = &t.path {
            let exists = p.namespace().find(path).is_some()
                || path
                    .rsplit_once('.')
                    .and_then(|(parent, m)| p.namespace().find(parent).map(|n| (n, m)))
                    .is_some_and(|(n, m)| n.kind.objects().iter().any(|o| normalise_name(m) == *o));
            if !exists {
                return Err((
                    field("path"),
                    format!("{path} does not exist in the ACPI namespace"),
                ));
            }
        }
        if let Some(a) = t.addr {
            if a % 8 != 0 {
                return Err((field("addr"), format!("{:#x} is not 8-byte aligned", a)));
            }
            if a >= geo.total_bytes {
                return Err((
                    field("addr"),
                    format!(
                        "{:#x} is beyond physical memory (which ends at {:#x})",
                        a, geo.total_bytes
                    ),
                ));
            }
        }
    }
    Ok((cpus, timeline))
}

fn normalise_name(m: &str) -> String {
    let mut s = m.to_ascii_uppercase();
    while s.len() < 4 {
        s.push('_');
    }
    s
}
