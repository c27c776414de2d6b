//! Each event as a record of the trace (track, name, phase, arguments) and its level.

use sim_core::trace::{ArgValue, Phase, Track};
use sim_core::{SimDuration, SimTime, TraceEvent, TraceLevel, TraceRecord};

use super::OpTarget;
use super::OsEvent;
use crate::cpumask::LogicalCpu;

fn cpu_track(c: LogicalCpu) -> Track {
    Track {
        group: "os-cpu",
        index: c.0,
    }
}

fn os_track() -> Track {
    Track {
        group: "os",
        index: 0,
    }
}

/// The span of one step of a hot-plug operation, on the operation's own track of `group`.
fn step_record(
    group: &'static str,
    op: u32,
    step: &'static str,
    start: SimTime,
    duration: SimDuration,
    note: &str,
    end: SimTime,
) -> TraceRecord {
    TraceRecord {
        time: start,
        track: Track { group, index: op },
        category: "os",
        name: step.into(),
        phase: Phase::Complete(duration),
        args: vec![
            ("note", ArgValue::Str(note.to_owned())),
            ("end", ArgValue::U64(end.as_nanos())),
        ],
    }
}

/// The arguments of a hot-plug operation's end.
fn end_args(op: u32, result: &Result<(), String>) -> Vec<(&'static str, ArgValue)> {
    vec![
        ("op", ArgValue::U64(u64::from(op))),
        (
            "result",
            ArgValue::Str(match result {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.clone(),
            }),
        ),
    ]
}

impl TraceEvent for OsEvent {
    fn level(&self) -> TraceLevel {
        match self {
            OsEvent::TaskAccess { .. }
            | OsEvent::PageAllocated { .. }
            | OsEvent::PageblockIsolation { .. }
            | OsEvent::FramesManaged { .. }
            | OsEvent::PageFreed { .. }
            | OsEvent::PageDiscarded { .. }
            | OsEvent::PteWritten { .. }
            | OsEvent::RcuLock { .. }
            | OsEvent::RcuUse { .. }
            | OsEvent::RcuUnlock { .. }
            | OsEvent::QuiescentState { .. }
            | OsEvent::Enqueue { .. }
            | OsEvent::Sleep { .. }
            | OsEvent::Block { .. }
            | OsEvent::IpiSent { .. }
            | OsEvent::IpiHandled { .. }
            | OsEvent::CsdQueued { .. }
            | OsEvent::CsdDone { .. } => TraceLevel::Detail,
            // What each CPU runs (its row in the viewer) and the interrupts it takes.
            OsEvent::Switch { .. }
            | OsEvent::IrqHandled { .. }
            | OsEvent::Booted { .. }
            | OsEvent::CpuMapped { .. }
            | OsEvent::MapsPublished { .. }
            | OsEvent::MapsFreed { .. }
            | OsEvent::GpStart { .. }
            | OsEvent::GpEnd { .. }
            | OsEvent::RcuCpu { .. }
            | OsEvent::TaskCreated { .. }
            | OsEvent::MemObject { .. }
            | OsEvent::Migrate { .. }
            | OsEvent::Park { .. }
            | OsEvent::TimersMoved { .. }
            | OsEvent::CsdTimeout { .. }
            | OsEvent::IrqRouted { .. }
            | OsEvent::CpuHalted { .. }
            | OsEvent::OpStart { .. }
            | OsEvent::OpStep { .. }
            | OsEvent::OpEnd { .. }
            | OsEvent::OpQueued { .. }
            | OsEvent::IrqDisabled { .. }
            | OsEvent::IrqFreed { .. }
            | OsEvent::HotplugRefused { .. }
            | OsEvent::RequestRefused { .. }
            | OsEvent::AcpiNotify { .. } => TraceLevel::Info,
        }
    }

    fn to_record(&self, time: SimTime) -> TraceRecord {
        let u = |v: u64| ArgValue::U64(v);
        let s = |v: String| ArgValue::Str(v);
        let (track, name, phase, args): (
            Track,
            &'static str,
            Phase,
            Vec<(&'static str, ArgValue)>,
        ) = match self {
            OsEvent::Booted { online, tasks } => (
                os_track(),
                "booted",
                Phase::Instant,
                vec![
                    ("online", s(online.to_string())),
                    ("tasks", u(u64::from(*tasks))),
                ],
            ),
            OsEvent::CpuMapped { cpu, hw, present } => (
                cpu_track(*cpu),
                "cpu mapped",
                Phase::Instant,
                vec![
                    ("hw", s(hw.to_string())),
                    ("present", ArgValue::Bool(*present)),
                ],
            ),
            OsEvent::MapsPublished {
                version,
                addr,
                online,
                active,
                by,
            } => (
                cpu_track(*by),
                "cpu maps published",
                Phase::Instant,
                vec![
                    ("version", u(*version)),
                    ("addr", s(format!("{addr:#x}"))),
                    ("online", s(online.to_string())),
                    ("active", s(active.to_string())),
                ],
            ),
            OsEvent::MapsFreed { version, by } => (
                cpu_track(*by),
                "cpu maps freed",
                Phase::Instant,
                vec![("version", u(*version))],
            ),
            OsEvent::RcuLock {
                cpu,
                addr,
                loaded,
                purpose,
            } => (
                cpu_track(*cpu),
                "rcu_read_lock",
                Phase::Begin,
                vec![
                    ("addr", s(format!("{addr:#x}"))),
                    ("loaded", s(format!("{loaded:#x}"))),
                    ("for", s((*purpose).to_owned())),
                ],
            ),
            OsEvent::RcuUse {
                cpu,
                addr,
                about,
                bits,
            } => (
                cpu_track(*cpu),
                "rcu use",
                Phase::Instant,
                vec![
                    ("addr", s(format!("{addr:#x}"))),
                    ("about", s(about.to_string())),
                    ("bits", s(format!("{bits:#x}"))),
                ],
            ),
            OsEvent::RcuUnlock { cpu } => {
                (cpu_track(*cpu), "rcu_read_unlock", Phase::End, Vec::new())
            }
            OsEvent::QuiescentState { cpu, seq } => (
                cpu_track(*cpu),
                "quiescent state",
                Phase::Instant,
                vec![("gp", u(*seq))],
            ),
            OsEvent::GpStart { seq, waiting } => (
                os_track(),
                "grace period start",
                Phase::Instant,
                vec![("gp", u(*seq)), ("waiting", s(waiting.to_string()))],
            ),
            OsEvent::GpEnd { seq, duration } => (
                os_track(),
                "grace period end",
                Phase::Instant,
                vec![("gp", u(*seq)), ("ns", u(duration.as_nanos()))],
            ),
            OsEvent::RcuCpu { cpu, online } => (
                cpu_track(*cpu),
                if *online {
                    "rcu cpu up"
                } else {
                    "rcu cpu down"
                },
                Phase::Instant,
                Vec::new(),
            ),
            OsEvent::MemObject { obj, pages, slots } => (
                os_track(),
                "memory object",
                Phase::Instant,
                vec![
                    ("obj", s(obj.to_string())),
                    ("pages", u(u64::from(*pages))),
                    ("slots", u(u64::from(*slots))),
                ],
            ),
            OsEvent::PageDiscarded { obj, page } => (
                os_track(),
                "page discarded",
                Phase::Instant,
                vec![("obj", s(obj.to_string())), ("page", u(u64::from(*page)))],
            ),
            OsEvent::PteWritten {
                mm,
                vpn,
                addr,
                table: _,
                word,
            } => (
                os_track(),
                "pte written",
                Phase::Instant,
                vec![
                    ("mm", u(u64::from(*mm))),
                    ("vpn", u(u64::from(*vpn))),
                    ("addr", s(format!("{addr:#x}"))),
                    ("word", s(format!("{word:#x}"))),
                ],
            ),
            OsEvent::PageAllocated { pfn, order } => (
                os_track(),
                "page allocated",
                Phase::Instant,
                vec![
                    ("pfn", s(format!("{pfn:#x}"))),
                    ("order", u(u64::from(*order))),
                ],
            ),
            OsEvent::PageblockIsolation { pfn, isolated } => (
                os_track(),
                if *isolated {
                    "pageblock isolated"
                } else {
                    "pageblock released"
                },
                Phase::Instant,
                vec![("pfn", s(format!("{pfn:#x}")))],
            ),
            OsEvent::FramesManaged { pfn, pages, on } => (
                os_track(),
                if *on {
                    "frames given to the allocator"
                } else {
                    "frames taken from the allocator"
                },
                Phase::Instant,
                vec![
                    ("pfn", s(format!("{pfn:#x}"))),
                    ("pages", u(u64::from(*pages))),
                ],
            ),
            OsEvent::PageFreed {
                pfn,
                order,
                mapped,
                owner,
                ..
            } => (
                os_track(),
                "page freed",
                Phase::Instant,
                vec![
                    ("pfn", s(format!("{pfn:#x}"))),
                    ("order", u(u64::from(*order))),
                    ("mapped", u(u64::from(*mapped))),
                    ("owner", s(owner.to_string())),
                ],
            ),
            OsEvent::TaskCreated {
                task,
                name,
                kind,
                cpu,
                ..
            } => (
                cpu_track(*cpu),
                "task created",
                Phase::Instant,
                vec![
                    ("task", u(u64::from(task.0))),
                    ("name", s(name.clone())),
                    ("kind", s((*kind).to_owned())),
                ],
            ),
            OsEvent::Enqueue {
                task,
                cpu,
                why,
                kthread,
            } => (
                cpu_track(*cpu),
                "enqueue",
                Phase::Instant,
                vec![
                    ("task", u(u64::from(task.0))),
                    ("why", s(format!("{why:?}"))),
                    ("kthread", ArgValue::Bool(*kthread)),
                ],
            ),
            OsEvent::Migrate { task, from, to, by } => (
                cpu_track(*from),
                "migrate task",
                Phase::Instant,
                vec![
                    ("task", u(u64::from(task.0))),
                    ("to", s(to.to_string())),
                    ("by", u(u64::from(by.0))),
                ],
            ),
            OsEvent::Switch {
                cpu, task, what, ..
            } => {
                // What the CPU runs from now on: one span per run in its row.
                let name = match task {
                    Some(t) if *what == "task" => format!("task {}", t.0),
                    // Per-CPU kernel threads, named as ps shows them.
                    Some(_) => format!("{what}/{}", cpu.0),
                    None => (*what).to_owned(),
                };
                return TraceRecord {
                    time,
                    track: cpu_track(*cpu),
                    category: "os",
                    name: name.into(),
                    phase: Phase::Slice,
                    args: vec![(
                        "task",
                        task.map_or_else(|| s("idle".to_owned()), |t| u(u64::from(t.0))),
                    )],
                };
            }
            OsEvent::Sleep {
                task,
                cpu,
                timer_cpu,
                until,
            } => (
                cpu_track(*cpu),
                "sleep",
                Phase::Instant,
                vec![
                    ("task", u(u64::from(task.0))),
                    ("timer", s(timer_cpu.to_string())),
                    ("until", u(until.as_nanos())),
                ],
            ),
            OsEvent::Block { task, cpu } => (
                cpu_track(*cpu),
                "block",
                Phase::Instant,
                vec![("task", u(u64::from(task.0)))],
            ),
            OsEvent::Park { task, cpu, parked } => (
                cpu_track(*cpu),
                if *parked { "park" } else { "unpark" },
                Phase::Instant,
                vec![("task", u(u64::from(task.0)))],
            ),
            OsEvent::TimersMoved { from, to, tasks } => (
                cpu_track(*from),
                "timers moved",
                Phase::Instant,
                vec![("to", s(to.to_string())), ("timers", u(tasks.len() as u64))],
            ),
            OsEvent::TaskAccess {
                task,
                cpu,
                addr,
                value,
                store,
                ..
            } => (
                cpu_track(*cpu),
                if *store { "task store" } else { "task load" },
                Phase::Instant,
                vec![
                    ("task", u(u64::from(task.0))),
                    ("addr", s(format!("{addr:#x}"))),
                    ("value", s(format!("{value:#x}"))),
                ],
            ),
            OsEvent::IpiSent { from, to, vector } => (
                cpu_track(*from),
                "ipi sent",
                Phase::Instant,
                vec![("to", s(to.to_string())), ("vector", u(u64::from(*vector)))],
            ),
            OsEvent::IpiHandled { cpu, vector } => (
                cpu_track(*cpu),
                "ipi handled",
                Phase::Instant,
                vec![("vector", u(u64::from(*vector)))],
            ),
            OsEvent::CsdQueued { id, from, to } => (
                cpu_track(*from),
                "csd queued",
                Phase::Instant,
                vec![("id", u(*id)), ("to", s(to.to_string()))],
            ),
            OsEvent::CsdDone { id, cpu } => (
                cpu_track(*cpu),
                "csd done",
                Phase::Instant,
                vec![("id", u(*id))],
            ),
            OsEvent::CsdTimeout {
                id,
                from,
                to,
                waited,
            } => (
                cpu_track(*from),
                "csd timeout",
                Phase::Instant,
                vec![
                    ("id", u(*id)),
                    ("to", s(to.to_string())),
                    ("waited_ns", u(waited.as_nanos())),
                ],
            ),
            OsEvent::IrqRouted {
                gsi,
                vector,
                cpu,
                from,
            } => (
                cpu_track(*cpu),
                "irq routed",
                Phase::Instant,
                vec![
                    ("gsi", u(u64::from(*gsi))),
                    ("vector", u(u64::from(*vector))),
                    (
                        "from",
                        s(from.map_or_else(|| "-".to_owned(), |c| c.to_string())),
                    ),
                ],
            ),
            OsEvent::IrqFreed { gsi, vector } => (
                os_track(),
                "free_irq",
                Phase::Instant,
                vec![
                    ("gsi", u(u64::from(*gsi))),
                    ("vector", u(u64::from(*vector))),
                ],
            ),
            OsEvent::IrqDisabled {
                gsi,
                vector,
                unhandled,
            } => (
                os_track(),
                "irq nobody cared",
                Phase::Instant,
                vec![
                    ("gsi", u(u64::from(*gsi))),
                    ("vector", u(u64::from(*vector))),
                    ("unhandled", u(u64::from(*unhandled))),
                ],
            ),
            OsEvent::IrqHandled {
                gsi,
                vector,
                cpu,
                tags,
            } => (
                cpu_track(*cpu),
                "irq handled",
                Phase::Instant,
                vec![
                    ("gsi", u(u64::from(*gsi))),
                    ("vector", u(u64::from(*vector))),
                    (
                        "tags",
                        ArgValue::Str(
                            tags.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(" "),
                        ),
                    ),
                ],
            ),
            OsEvent::CpuHalted {
                cpu,
                flushed_lines,
                dirty_lines,
            } => (
                // Nothing runs on the CPU from now on until it is brought up again.
                cpu_track(*cpu),
                "halted",
                Phase::Slice,
                vec![
                    ("flushed", u(u64::from(*flushed_lines))),
                    ("dirty", u(u64::from(*dirty_lines))),
                ],
            ),
            OsEvent::OpStart {
                flow,
                op,
                kind,
                target,
                trigger,
            } => {
                let target = match target {
                    OpTarget::Cpu(cpu) => ("cpu", s(cpu.to_string())),
                    OpTarget::Blocks(blocks) => ("blocks", s(format!("{blocks:?}"))),
                    OpTarget::Slot(slot) => ("target", s(format!("slot {}", slot.0))),
                    OpTarget::Named(t) => ("target", s(t.clone())),
                };
                (
                    os_track(),
                    flow.start_name(),
                    Phase::Instant,
                    vec![
                        ("op", u(u64::from(*op))),
                        ("kind", s((*kind).to_owned())),
                        target,
                        ("trigger", s((*trigger).to_owned())),
                    ],
                )
            }
            OsEvent::OpStep {
                flow,
                op,
                name,
                start,
                duration,
                note,
                ..
            } => {
                return step_record(flow.label(), *op, name, *start, *duration, note, time);
            }
            OsEvent::OpQueued { flow, op } => (
                os_track(),
                "op queued",
                Phase::Instant,
                vec![
                    ("flow", s(flow.label().to_owned())),
                    ("op", u(u64::from(*op))),
                ],
            ),
            OsEvent::OpEnd { flow, op, result } => (
                os_track(),
                flow.end_name(),
                Phase::Instant,
                end_args(*op, result),
            ),
            OsEvent::HotplugRefused { cpu, kind, error } => (
                os_track(),
                "hotplug refused",
                Phase::Instant,
                vec![
                    ("cpu", u(u64::from(*cpu))),
                    ("kind", s((*kind).to_owned())),
                    ("error", s(error.clone())),
                ],
            ),
            OsEvent::RequestRefused {
                target,
                errno,
                error,
            } => (
                os_track(),
                "request refused",
                Phase::Instant,
                vec![
                    ("target", s(target.clone())),
                    ("errno", s((*errno).to_owned())),
                    ("error", s(error.clone())),
                ],
            ),
            OsEvent::AcpiNotify { path, code } => (
                os_track(),
                "acpi notify",
                Phase::Instant,
                vec![("path", s(path.clone())), ("code", u(u64::from(*code)))],
            ),
        };
        TraceRecord {
            time,
            track,
            category: "os",
            name: name.into(),
            phase,
            args,
        }
    }
}
