//! Timeline actions as types: each action with exactly the operands it takes, and what must
//! come of it.
//!
//! A `[[timeline]]` table is read as a [`TimelineEntry`] (every operand optional, so that a
//! mistake is reported with its file, line and field — serde loses both inside internally
//! tagged enums) and validation turns it into a [`Timed`] [`Action`]: from there on nothing
//! asks whether an operand is present.

use std::fmt;

use acpi_model::hw::{CellEvent, CpuEvent, McaTarget, SubsystemEvent};
use io_subsystem::DeviceKind;
use sim_core::{CellId, CpuId, IoSubsystemId, PhysAddr, SimDuration, SlotId};

use crate::scenario::{ActionKind, Defect, EXPECT_OUTCOMES, NotifyName, TimelineEntry};

/// What an action does, with its operands.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Flush a CPU's cache (unless `flush` is false) and halt it.
    HaltCpu {
        /// The CPU.
        cpu: CpuId,
        /// Flush first.
        flush: bool,
    },
    /// Start, power on or power off a CPU.
    Cpu {
        /// The CPU.
        cpu: CpuId,
        /// What happens to it.
        event: CpuEvent,
    },
    /// Flush a CPU's cache.
    FlushCache {
        /// The CPU.
        cpu: CpuId,
    },
    /// Insert, power on, power off or remove a cell board.
    Cell {
        /// The cell slot.
        cell: CellId,
        /// What happens to it.
        event: CellEvent,
        /// Remove the board only if firmware has powered it off.
        if_off: bool,
    },
    /// Corrected errors on a CPU or a memory word.
    InjectCorrectedError {
        /// Where.
        target: McaTarget,
        /// How many.
        count: u32,
    },
    /// An uncorrected error (poison) in a memory word.
    InjectUncorrectedError {
        /// The word.
        addr: PhysAddr,
    },
    /// Run every checker's audit now.
    Audit,
    /// `cpuN/online` ← 0 or 1 (logical CPU `cpu`).
    CpuOnline {
        /// The logical CPU.
        cpu: u32,
        /// 1 (true) or 0.
        online: bool,
    },
    /// `memoryN/state` ← `online` or `offline`.
    MemoryOnline {
        /// The block.
        block: u32,
        /// Online (true) or offline.
        online: bool,
    },
    /// A job of `count` more worker tasks starts.
    SpawnTasks {
        /// How many.
        count: u32,
    },
    /// A defect is injected from now on.
    InjectDefect {
        /// Which.
        defect: Defect,
    },
    /// The OS's sysfs view is taken under `name`.
    ExportSysfs {
        /// The export's name.
        name: String,
    },
    /// A slot's power: under the OS a write to `slots/N/power`, on the bare platform the
    /// exerciser's `_PS0` / `_PS3`.
    SlotPower {
        /// The slot.
        slot: SlotId,
        /// On (true) or off.
        on: bool,
    },
    /// The exerciser masks or unmasks a slot's interrupt.
    MaskIrq {
        /// The slot.
        slot: SlotId,
        /// Masked (true) or unmasked.
        masked: bool,
    },
    /// A card goes into a slot.
    InsertCard {
        /// The slot.
        slot: SlotId,
        /// The card.
        kind: DeviceKind,
    },
    /// A card is pulled out of its slot.
    RemoveCard {
        /// The slot.
        slot: SlotId,
    },
    /// Someone presses a slot's attention button.
    PressAttention {
        /// The slot.
        slot: SlotId,
    },
    /// An ACPI object or method is evaluated.
    Evaluate {
        /// Its path.
        path: String,
    },
    /// Firmware notifies a device.
    Notify {
        /// The device.
        path: String,
        /// Why.
        code: NotifyName,
    },
    /// An I/O subsystem is inserted, powered on or off, or removed.
    Io {
        /// The subsystem.
        subsystem: IoSubsystemId,
        /// What happens to it.
        event: SubsystemEvent,
    },
}

impl Action {
    /// What the action acts on, as reports name it.
    pub fn target(&self) -> String {
        match self {
            Action::HaltCpu { cpu, .. } | Action::Cpu { cpu, .. } | Action::FlushCache { cpu } => {
                cpu.to_string()
            }
            Action::Cell { cell, .. } => cell.to_string(),
            Action::InjectCorrectedError { target, .. } => match target {
                McaTarget::Cpu(c) => c.to_string(),
                McaTarget::Memory(a) => a.to_string(),
            },
            Action::InjectUncorrectedError { addr } => addr.to_string(),
            Action::Audit | Action::SpawnTasks { .. } => "machine".into(),
            Action::CpuOnline { cpu, .. } => CpuId(*cpu).to_string(),
            Action::MemoryOnline { block, .. } => format!("memory{block}"),
            Action::InjectDefect { defect } => defect.name().to_owned(),
            Action::ExportSysfs { name } => format!("\"{name}\""),
            Action::SlotPower { slot, .. }
            | Action::MaskIrq { slot, .. }
            | Action::InsertCard { slot, .. }
            | Action::RemoveCard { slot }
            | Action::PressAttention { slot } => format!("slot {}", slot.0),
            Action::Evaluate { path } | Action::Notify { path, .. } => path.clone(),
            Action::Io { subsystem, .. } => subsystem.to_string(),
        }
    }
}

/// What must come of an action (`timeline[].expect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// It is carried out.
    Ok,
    /// It is refused (any reason).
    Refused,
    /// Either, as long as a refusal gives a reason (not `ETIMEDOUT`, not `EIO`).
    Any,
    /// The OS refuses it with this errno.
    Errno(&'static str),
}

impl Expect {
    /// Reads an `expect` value; `Err` says what it may be.
    pub fn read(s: &str) -> Result<Expect, String> {
        Expect::parse(s).ok_or_else(|| {
            format!(
                "unknown outcome `{s}` (known: {})",
                EXPECT_OUTCOMES.join(", ")
            )
        })
    }

    /// Reads an `expect` value.
    pub fn parse(s: &str) -> Option<Expect> {
        match s {
            "ok" => Some(Expect::Ok),
            "refused" => Some(Expect::Refused),
            "any" => Some(Expect::Any),
            // The errnos: the rest of the list.
            e => EXPECT_OUTCOMES
                .iter()
                .find(|&&x| x == e && x.starts_with('E'))
                .map(|&x| Expect::Errno(x)),
        }
    }

    /// Whether `result` (with the OS's `errno`, if it refused) is what was expected.
    pub fn met(self, result: &Result<String, String>, errno: Option<&str>) -> bool {
        match self {
            Expect::Ok => result.is_ok(),
            Expect::Refused => result.is_err(),
            // A hung operation or an I/O error is no answer to the request.
            Expect::Any => result.is_ok() || !matches!(errno, Some("ETIMEDOUT" | "EIO")),
            Expect::Errno(e) => errno == Some(e),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expect::Ok => "ok",
            Expect::Refused => "refused",
            Expect::Any => "any",
            Expect::Errno(e) => e,
        })
    }
}

/// One action of the timeline, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Timed {
    /// When (from the start of the run).
    pub at: SimDuration,
    /// Its name in the file.
    pub kind: ActionKind,
    /// What it does.
    pub action: Action,
    /// What must come of it.
    pub expect: Option<Expect>,
}

impl Timed {
    /// The typed form of `t` (its operands checked against what the action takes), with its
    /// `expect` already read: `Err` names the offending key of the entry and says why.
    pub fn from_entry(
        t: &TimelineEntry,
        expect: Option<Expect>,
    ) -> Result<Timed, (&'static str, String)> {
        let name = t.action.name();
        let (required, optional) = t.action.operands();
        let given = [
            ("cpu", t.cpu.is_some()),
            ("cell", t.cell.is_some()),
            ("addr", t.addr.is_some()),
            ("count", t.count.is_some()),
            ("flush", t.flush.is_some()),
            ("slot", t.slot.is_some()),
            ("subsystem", t.subsystem.is_some()),
            ("path", t.path.is_some()),
            ("kind", t.kind.is_some()),
            ("code", t.code.is_some()),
            ("block", t.block.is_some()),
            ("name", t.name.is_some()),
            ("defect", t.defect.is_some()),
            ("if_off", t.if_off.is_some()),
        ];
        for (k, present) in given {
            if !present && required.contains(&k) {
                return Err((k, format!("`{name}` needs a {k}")));
            }
            if present && !required.contains(&k) && !optional.contains(&k) {
                return Err((k, format!("`{name}` does not take a {k}")));
            }
        }
        let need = |k: &'static str| (k, format!("`{name}` needs a {k}"));
        let cpu = || t.cpu.map(CpuId).ok_or_else(|| need("cpu"));
        let slot = || t.slot.map(SlotId).ok_or_else(|| need("slot"));
        let path = || t.path.clone().ok_or_else(|| need("path"));
        let action = match t.action {
            ActionKind::HaltCpu => Action::HaltCpu {
                cpu: cpu()?,
                flush: t.flush.unwrap_or(true),
            },
            ActionKind::StartCpu | ActionKind::PowerOnCpu | ActionKind::PowerOffCpu => {
                Action::Cpu {
                    cpu: cpu()?,
                    event: t.action.cpu_event().ok_or_else(|| need("cpu"))?,
                }
            }
            ActionKind::FlushCache => Action::FlushCache { cpu: cpu()? },
            ActionKind::InsertCell
            | ActionKind::PowerOnCell
            | ActionKind::PowerOffCell
            | ActionKind::RemoveCell => Action::Cell {
                cell: t.cell.map(CellId).ok_or_else(|| need("cell"))?,
                event: t.action.cell_event().ok_or_else(|| need("cell"))?,
                if_off: t.if_off.unwrap_or(false),
            },
            ActionKind::InjectCorrectedError => Action::InjectCorrectedError {
                target: match (t.cpu, t.addr) {
                    (Some(c), None) => McaTarget::Cpu(CpuId(c)),
                    (None, Some(a)) => McaTarget::Memory(PhysAddr::new(a)),
                    (None, None) => {
                        return Err(("action", format!("`{name}` needs a cpu or an addr")));
                    }
                    (Some(_), Some(_)) => {
                        return Err(("addr", "give either a cpu or an addr, not both".into()));
                    }
                },
                count: t.count.unwrap_or(1),
            },
            ActionKind::InjectUncorrectedError => Action::InjectUncorrectedError {
                addr: t.addr.map(PhysAddr::new).ok_or_else(|| need("addr"))?,
            },
            ActionKind::Audit => Action::Audit,
            ActionKind::CpuOffline | ActionKind::CpuOnline => Action::CpuOnline {
                cpu: t.cpu.ok_or_else(|| need("cpu"))?,
                online: t.action == ActionKind::CpuOnline,
            },
            ActionKind::MemoryOffline | ActionKind::MemoryOnline => Action::MemoryOnline {
                block: t.block.ok_or_else(|| need("block"))?,
                online: t.action == ActionKind::MemoryOnline,
            },
            ActionKind::SpawnTasks => Action::SpawnTasks {
                count: t.count.ok_or_else(|| need("count"))?,
            },
            ActionKind::InjectDefect => Action::InjectDefect {
                defect: t.defect.ok_or_else(|| need("defect"))?,
            },
            ActionKind::ExportSysfs => Action::ExportSysfs {
                name: t.name.clone().ok_or_else(|| need("name"))?,
            },
            ActionKind::SlotPowerOff | ActionKind::SlotPowerOn => Action::SlotPower {
                slot: slot()?,
                on: t.action == ActionKind::SlotPowerOn,
            },
            ActionKind::MaskIrq | ActionKind::UnmaskIrq => Action::MaskIrq {
                slot: slot()?,
                masked: t.action == ActionKind::MaskIrq,
            },
            ActionKind::InsertCard => Action::InsertCard {
                slot: slot()?,
                kind: t.kind.ok_or_else(|| need("kind"))?,
            },
            ActionKind::RemoveCard => Action::RemoveCard { slot: slot()? },
            ActionKind::PressAttention => Action::PressAttention { slot: slot()? },
            ActionKind::Evaluate => Action::Evaluate { path: path()? },
            ActionKind::Notify => Action::Notify {
                path: path()?,
                code: t.code.ok_or_else(|| need("code"))?,
            },
            ActionKind::InsertIo
            | ActionKind::PowerOnIo
            | ActionKind::PowerOffIo
            | ActionKind::RemoveIo => Action::Io {
                subsystem: t
                    .subsystem
                    .map(IoSubsystemId)
                    .ok_or_else(|| need("subsystem"))?,
                event: t.action.io_event().ok_or_else(|| need("subsystem"))?,
            },
        };
        Ok(Timed {
            at: t.at.0,
            kind: t.action,
            action,
            expect,
        })
    }
}
