//! What the OS model tells the trace and its checkers.
//!
//! Every scheduling decision, RCU publication and read-side section, grace period, IPI,
//! interrupt, task memory access and hot-plug step is an [`OsEvent`]. The OS checkers
//! ([`crate::check`]) rebuild their own picture of the OS from these events alone and compare
//! it with the OS's data structures and the hardware at audits.

use std::fmt;

use serde::Serialize;
use sim_core::trace::{ArgValue, Phase, Track};
use sim_core::{
    CpuId, SimDuration, SimTime, StableHash, StableHasher, TraceEvent, TraceLevel, TraceRecord,
};

use crate::cpumask::{CpuMask, LogicalCpu};
use crate::ops::{FlowKind, OpTarget};

/// A task (thread) id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TaskId(pub u32);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.0)
    }
}

/// Why a task was put on a runqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnqueueWhy {
    /// Created (fork placement).
    Fork,
    /// Woken from sleep (wakeup placement).
    Wakeup,
    /// A kernel thread woken for work.
    Kthread,
}

/// A memory object whose contents the tasks use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemObj {
    /// The anonymous memory (and hugetlb pages) of an address space.
    Anon(u32),
    /// A file.
    File(u32),
}

impl MemObj {
    /// A word for the trace hash.
    pub const fn word(self) -> u64 {
        match self {
            MemObj::Anon(m) => m as u64,
            MemObj::File(f) => 1 << 32 | f as u64,
        }
    }
}

impl std::fmt::Display for MemObj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemObj::Anon(m) => write!(f, "mm{m}"),
            MemObj::File(x) => write!(f, "file{x}"),
        }
    }
}

/// The steps of CPU hot-remove and hot-add (SPEC OS-CPU-4, OS-CPU-5), in their order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Down: clear the CPU from the active map and wait for a grace period, so no wakeup or
    /// balancer still places tasks on it.
    MarkInactive,
    /// Down: the CPU's migration thread moves every task off its runqueue.
    MigrateTasks,
    /// Down: every IRQ routed to the CPU is re-routed (its IO SAPIC entry reprogrammed).
    MigrateIrqs,
    /// Down: its pending interrupts are taken, its timers and pending softirq work handed to
    /// another CPU.
    MigrateWork,
    /// Down: its ksoftirqd and migration thread are parked.
    StopKthreads,
    /// Down: the online map without the CPU is published.
    PublishOffline,
    /// Down: wait for a grace period (every reader of the old map has finished).
    GracePeriod,
    /// Down: the CPU flushes and invalidates its cache.
    FlushCache,
    /// Down: the CPU halts (back to the firmware's rendezvous).
    Halt,
    /// Down: firmware `_EJ0` (ACPI-triggered removals).
    Eject,
    /// Up: firmware wakes the CPU from its rendezvous.
    Wake,
    /// Up: the CPU sets up its idle task, registers, timer, interrupts, per-CPU area, joins RCU.
    InitCpu,
    /// Up: its kernel threads (migration, ksoftirqd) are created or unparked.
    StartKthreads,
    /// Up: the online map with the CPU is published.
    PublishOnline,
    /// Up: the CPU is put in the active map (the scheduler may place tasks there).
    MarkActive,
}

impl Step {
    /// Name as reports print it.
    pub const fn name(self) -> &'static str {
        match self {
            Step::MarkInactive => "mark_inactive",
            Step::MigrateTasks => "migrate_tasks",
            Step::MigrateIrqs => "migrate_irqs",
            Step::MigrateWork => "migrate_work",
            Step::StopKthreads => "stop_kthreads",
            Step::PublishOffline => "publish_offline",
            Step::GracePeriod => "grace_period",
            Step::FlushCache => "flush_cache",
            Step::Halt => "halt",
            Step::Eject => "eject",
            Step::Wake => "wake",
            Step::InitCpu => "init_cpu",
            Step::StartKthreads => "start_kthreads",
            Step::PublishOnline => "publish_online",
            Step::MarkActive => "mark_active",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One OS event.
#[derive(Clone, Debug, PartialEq)]
pub enum OsEvent {
    /// Boot finished: the online CPUs and the user tasks asked for.
    Booted {
        /// Online CPUs.
        online: CpuMask,
        /// User tasks the CPUs' softirq threads are to create (one work item each; a
        /// creation that finds no memory counts in `spawn_failures`).
        tasks: u32,
    },
    /// A logical CPU was mapped to a processor object.
    CpuMapped {
        /// Logical id.
        cpu: LogicalCpu,
        /// Hardware CPU (from `_UID`).
        hw: CpuId,
        /// Whether it is present.
        present: bool,
    },
    /// A new version of the CPU maps was published (RCU).
    MapsPublished {
        /// Version.
        version: u64,
        /// Online CPUs in it.
        online: CpuMask,
        /// Active CPUs in it.
        active: CpuMask,
        /// Who published.
        by: LogicalCpu,
    },
    /// A version of the maps was freed.
    MapsFreed {
        /// Version.
        version: u64,
        /// Who freed it.
        by: LogicalCpu,
    },
    /// A CPU entered an RCU read-side section, holding `version`.
    RcuLock {
        /// The reader's CPU.
        cpu: LogicalCpu,
        /// Version it dereferenced.
        version: u64,
        /// What it reads for.
        purpose: &'static str,
    },
    /// A reader acted on what it read (sent an IPI to a CPU it found online, …).
    RcuUse {
        /// The reader's CPU.
        cpu: LogicalCpu,
        /// Version used.
        version: u64,
        /// On which CPU the use acted.
        about: LogicalCpu,
    },
    /// A CPU left its read-side section.
    RcuUnlock {
        /// The reader's CPU.
        cpu: LogicalCpu,
    },
    /// A CPU passed a quiescent state.
    QuiescentState {
        /// The CPU.
        cpu: LogicalCpu,
        /// Grace period it reported to.
        seq: u64,
    },
    /// A grace period started.
    GpStart {
        /// Its number.
        seq: u64,
        /// CPUs that must pass a quiescent state.
        waiting: CpuMask,
    },
    /// A grace period ended.
    GpEnd {
        /// Its number.
        seq: u64,
        /// How long it took.
        duration: SimDuration,
    },
    /// A CPU left RCU (it is going down) or joined it.
    RcuCpu {
        /// The CPU.
        cpu: LogicalCpu,
        /// Joined (true) or left.
        online: bool,
    },
    /// A task was created.
    TaskCreated {
        /// The task.
        task: TaskId,
        /// Its name.
        name: String,
        /// `"user"`, `"migration"` or `"ksoftirqd"`.
        kind: &'static str,
        /// Its CPU (the one a kernel thread is bound to; a user task's first CPU).
        cpu: LogicalCpu,
    },
    /// A memory object whose contents CHK-3 follows was created: an address space's
    /// anonymous memory (zero-filled) or a file (its disk contents).
    MemObject {
        /// The object.
        obj: MemObj,
        /// Pages.
        pages: u32,
        /// Words per page the tasks work on.
        slots: u32,
    },
    /// A task discarded a page of an object (`MADV_DONTNEED`): it reads as zeros next time.
    PageDiscarded {
        /// The object.
        obj: MemObj,
        /// The page.
        page: u32,
    },
    /// The buddy allocator handed out frames.
    PageAllocated {
        /// Head frame.
        pfn: u32,
        /// Order.
        order: u8,
    },
    /// A pageblock became isolated (nothing may be allocated from it) or stopped being so.
    PageblockIsolation {
        /// First frame of the pageblock.
        pfn: u32,
        /// Isolated from now on.
        isolated: bool,
    },
    /// Frames went back to the buddy allocator.
    PageFreed {
        /// First frame.
        pfn: u32,
        /// Order.
        order: u8,
        /// PTEs still mapping them (must be 0).
        mapped: u32,
        /// I/O states they were still in ([`crate::mm::page::busy`] bits; must be 0).
        busy: u8,
        /// What they held.
        owner: crate::mm::Owner,
    },
    /// A task was put on a runqueue.
    Enqueue {
        /// The task.
        task: TaskId,
        /// The runqueue's CPU.
        cpu: LogicalCpu,
        /// Why.
        why: EnqueueWhy,
        /// Whether it is a per-CPU kernel thread of `cpu`.
        kthread: bool,
    },
    /// The migration thread `by` moved a task between runqueues.
    Migrate {
        /// The task.
        task: TaskId,
        /// From this CPU's runqueue.
        from: LogicalCpu,
        /// To this one.
        to: LogicalCpu,
        /// The thread that moved it.
        by: TaskId,
    },
    /// A CPU switched to a task (`None`: to idle).
    Switch {
        /// The CPU.
        cpu: LogicalCpu,
        /// The task now running.
        task: Option<TaskId>,
        /// Whether it is a per-CPU kernel thread of `cpu`.
        kthread: bool,
        /// What it is: `task`, `migration`, `ksoftirqd` or `idle` (for the trace's CPU rows).
        what: &'static str,
    },
    /// A running task went to sleep with a wakeup timer.
    Sleep {
        /// The task.
        task: TaskId,
        /// Its CPU.
        cpu: LogicalCpu,
        /// The CPU whose timer wakes it.
        timer_cpu: LogicalCpu,
        /// When.
        until: SimTime,
    },
    /// A kernel thread blocked waiting for work.
    Block {
        /// The thread.
        task: TaskId,
        /// Its CPU.
        cpu: LogicalCpu,
    },
    /// A kernel thread was parked (stopped) or unparked.
    Park {
        /// The thread.
        task: TaskId,
        /// Its CPU.
        cpu: LogicalCpu,
        /// Parked (true) or unparked.
        parked: bool,
    },
    /// Timers were moved from a CPU to another.
    TimersMoved {
        /// From.
        from: LogicalCpu,
        /// To.
        to: LogicalCpu,
        /// The sleeping tasks whose wakeup timers moved.
        tasks: Vec<TaskId>,
    },
    /// A user task stored to or loaded from its memory.
    TaskAccess {
        /// The task.
        task: TaskId,
        /// Its CPU.
        cpu: LogicalCpu,
        /// The memory object and page the virtual address maps.
        obj: MemObj,
        /// Page of the object.
        page: u32,
        /// Word slot of the page.
        slot: u32,
        /// Word index in the page.
        word: u32,
        /// Physical address.
        addr: u64,
        /// The value stored, or the value the load returned.
        value: u64,
        /// A store (else a load).
        store: bool,
    },
    /// An IPI was sent.
    IpiSent {
        /// Sender.
        from: LogicalCpu,
        /// Destination.
        to: LogicalCpu,
        /// Vector.
        vector: u8,
    },
    /// A CPU handled an IPI vector.
    IpiHandled {
        /// The CPU.
        cpu: LogicalCpu,
        /// Vector.
        vector: u8,
    },
    /// A cross-call request was queued for a CPU.
    CsdQueued {
        /// Request id.
        id: u64,
        /// Sender.
        from: LogicalCpu,
        /// Destination.
        to: LogicalCpu,
    },
    /// A CPU ran a cross-call and acknowledged it.
    CsdDone {
        /// Request id.
        id: u64,
        /// The CPU.
        cpu: LogicalCpu,
    },
    /// A cross-call was never acknowledged (the sender gave up).
    CsdTimeout {
        /// Request id.
        id: u64,
        /// Sender.
        from: LogicalCpu,
        /// Destination that never answered.
        to: LogicalCpu,
        /// How long the sender waited.
        waited: SimDuration,
    },
    /// An IRQ was set up: IO SAPIC entry programmed.
    IrqRouted {
        /// The GSI.
        gsi: u32,
        /// Its vector.
        vector: u8,
        /// Destination CPU.
        cpu: LogicalCpu,
        /// Previous destination when re-routed.
        from: Option<LogicalCpu>,
    },
    /// A device interrupt handler ran.
    IrqHandled {
        /// The GSI.
        gsi: u32,
        /// Vector.
        vector: u8,
        /// The CPU.
        cpu: LogicalCpu,
    },
    /// The kernel disabled an interrupt line no handler claimed ("nobody cared").
    IrqDisabled {
        /// The GSI.
        gsi: u32,
        /// Vector.
        vector: u8,
        /// Unclaimed interrupts in a row.
        unhandled: u32,
    },
    /// The OS executed HALT on a CPU (hot-remove's last step on the CPU).
    CpuHalted {
        /// The CPU.
        cpu: LogicalCpu,
        /// Lines flushed first.
        flushed_lines: u32,
        /// Dirty lines written back.
        dirty_lines: u32,
    },
    /// A hot-plug operation (CPU, memory / cell or PCI) started.
    OpStart {
        /// Its flow.
        flow: FlowKind,
        /// Operation number (per flow).
        op: u32,
        /// What it does (`down`, `cell_remove`, `enable`, …).
        kind: &'static str,
        /// What it acts on.
        target: OpTarget,
        /// What asked for it.
        trigger: &'static str,
    },
    /// A step of a hot-plug operation finished.
    OpStep {
        /// Its flow.
        flow: FlowKind,
        /// Operation number.
        op: u32,
        /// The step's number in its flow's step enum.
        step: u8,
        /// The step's name.
        name: &'static str,
        /// When it started.
        start: SimTime,
        /// Its simulated duration.
        duration: SimDuration,
        /// What it did.
        note: String,
    },
    /// A hot-plug operation ended.
    OpEnd {
        /// Its flow.
        flow: FlowKind,
        /// Operation number.
        op: u32,
        /// `Ok` or the error.
        result: Result<(), String>,
    },
    /// A request was refused without any state change.
    HotplugRefused {
        /// The CPU asked for.
        cpu: u32,
        /// `"down"` or `"up"`.
        kind: &'static str,
        /// The error.
        error: String,
    },
    /// A memory, cell or PCI hot-plug request (a sysfs write, an ACPI notification) was
    /// refused at once, changing nothing.
    RequestRefused {
        /// What was asked for: a device path, `memoryN`, `slot N`.
        target: String,
        /// The errno.
        errno: &'static str,
        /// Why.
        error: String,
    },
    /// The OS took an ACPI notification.
    AcpiNotify {
        /// Device path.
        path: String,
        /// Notify code.
        code: u8,
    },
}

fn mask_hash(h: &mut StableHasher, m: &CpuMask) {
    h.str(&m.to_string());
}

impl StableHash for OsEvent {
    fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            OsEvent::Booted { online, tasks } => {
                h.word(1);
                mask_hash(h, online);
                h.word(u64::from(*tasks));
            }
            OsEvent::CpuMapped { cpu, hw, present } => {
                h.word(2 | u64::from(cpu.0) << 8 | u64::from(hw.0) << 32);
                h.word(u64::from(*present));
            }
            OsEvent::MapsPublished {
                version,
                online,
                active,
                by,
            } => {
                h.word(3 | u64::from(by.0) << 8);
                h.word(*version);
                mask_hash(h, online);
                mask_hash(h, active);
            }
            OsEvent::MapsFreed { version, by } => {
                h.word(4 | u64::from(by.0) << 8);
                h.word(*version);
            }
            OsEvent::RcuLock {
                cpu,
                version,
                purpose,
            } => {
                h.word(5 | u64::from(cpu.0) << 8);
                h.word(*version);
                h.str(purpose);
            }
            OsEvent::RcuUse {
                cpu,
                version,
                about,
            } => {
                h.word(6 | u64::from(cpu.0) << 8 | u64::from(about.0) << 32);
                h.word(*version);
            }
            OsEvent::RcuUnlock { cpu } => h.word(7 | u64::from(cpu.0) << 8),
            OsEvent::QuiescentState { cpu, seq } => {
                h.word(8 | u64::from(cpu.0) << 8);
                h.word(*seq);
            }
            OsEvent::GpStart { seq, waiting } => {
                h.word(9);
                h.word(*seq);
                mask_hash(h, waiting);
            }
            OsEvent::GpEnd { seq, duration } => {
                h.word(10);
                h.word(*seq);
                h.word(duration.as_nanos());
            }
            OsEvent::RcuCpu { cpu, online } => {
                h.word(11 | u64::from(cpu.0) << 8 | u64::from(*online) << 40);
            }
            OsEvent::TaskCreated {
                task,
                name,
                kind,
                cpu,
            } => {
                h.word(34 | u64::from(cpu.0) << 8 | u64::from(task.0) << 32);
                h.str(name);
                h.str(kind);
            }
            OsEvent::MemObject { obj, pages, slots } => {
                h.word(40 | obj.word() << 8);
                h.word(u64::from(*pages) | u64::from(*slots) << 32);
            }
            OsEvent::PageDiscarded { obj, page } => {
                h.word(45 | obj.word() << 8);
                h.word(u64::from(*page));
            }
            OsEvent::PageAllocated { pfn, order } => {
                h.word(46 | u64::from(*order) << 8 | u64::from(*pfn) << 32);
            }
            OsEvent::PageblockIsolation { pfn, isolated } => {
                h.word(47 | u64::from(*isolated) << 8 | u64::from(*pfn) << 32);
            }
            OsEvent::PageFreed {
                pfn,
                order,
                mapped,
                busy,
                owner,
            } => {
                h.word(41 | u64::from(*order) << 8 | u64::from(*pfn) << 32);
                h.word(u64::from(*mapped));
                h.word(u64::from(*busy));
                h.word(crate::memory::owner_word(*owner));
            }
            OsEvent::Enqueue {
                task,
                cpu,
                why,
                kthread,
            } => {
                h.word(
                    12 | u64::from(cpu.0) << 8
                        | (*why as u64) << 28
                        | u64::from(*kthread) << 31
                        | u64::from(task.0) << 32,
                );
            }
            OsEvent::Migrate { task, from, to, by } => {
                h.word(13 | u64::from(from.0) << 8 | u64::from(to.0) << 32);
                h.word(u64::from(task.0) | u64::from(by.0) << 32);
            }
            OsEvent::Switch {
                cpu, task, kthread, ..
            } => {
                h.word(14 | u64::from(cpu.0) << 8 | u64::from(*kthread) << 31);
                h.word(task.map_or(u64::MAX, |t| u64::from(t.0)));
            }
            OsEvent::Sleep {
                task,
                cpu,
                timer_cpu,
                until,
            } => {
                h.word(15 | u64::from(cpu.0) << 8 | u64::from(timer_cpu.0) << 32);
                h.word(u64::from(task.0));
                h.word(until.as_nanos());
            }
            OsEvent::Block { task, cpu } => {
                h.word(16 | u64::from(cpu.0) << 8 | u64::from(task.0) << 32);
            }
            OsEvent::Park { task, cpu, parked } => {
                h.word(
                    17 | u64::from(cpu.0) << 8 | u64::from(*parked) << 31 | u64::from(task.0) << 32,
                );
            }
            OsEvent::TimersMoved { from, to, tasks } => {
                h.word(18 | u64::from(from.0) << 8 | u64::from(to.0) << 32);
                for t in tasks {
                    h.word(u64::from(t.0));
                }
            }
            OsEvent::TaskAccess {
                task,
                cpu,
                obj,
                page,
                slot,
                word,
                addr,
                value,
                store,
            } => {
                h.word((19 + u64::from(*store)) | u64::from(cpu.0) << 8 | u64::from(task.0) << 32);
                h.word(obj.word() ^ u64::from(*page) << 24 ^ u64::from(*slot) << 56);
                h.word(u64::from(*word));
                h.word(*addr);
                h.word(*value);
            }
            OsEvent::IpiSent { from, to, vector } => {
                h.word(
                    21 | u64::from(from.0) << 8 | u64::from(*vector) << 24 | u64::from(to.0) << 32,
                );
            }
            OsEvent::IpiHandled { cpu, vector } => {
                h.word(22 | u64::from(cpu.0) << 8 | u64::from(*vector) << 32);
            }
            OsEvent::CsdQueued { id, from, to } => {
                h.word(23 | u64::from(from.0) << 8 | u64::from(to.0) << 32);
                h.word(*id);
            }
            OsEvent::CsdDone { id, cpu } => {
                h.word(24 | u64::from(cpu.0) << 8);
                h.word(*id);
            }
            OsEvent::CsdTimeout {
                id,
                from,
                to,
                waited,
            } => {
                h.word(25 | u64::from(from.0) << 8 | u64::from(to.0) << 32);
                h.word(*id);
                h.word(waited.as_nanos());
            }
            OsEvent::IrqRouted {
                gsi,
                vector,
                cpu,
                from,
            } => {
                h.word(26 | u64::from(cpu.0) << 8 | u64::from(*vector) << 24);
                h.word(u64::from(*gsi));
                h.word(from.map_or(u64::MAX, |c| u64::from(c.0)));
            }
            OsEvent::IrqDisabled {
                gsi,
                vector,
                unhandled,
            } => {
                h.word(51 | u64::from(*vector) << 8 | u64::from(*gsi) << 32);
                h.word(u64::from(*unhandled));
            }
            OsEvent::IrqHandled { gsi, vector, cpu } => {
                h.word(27 | u64::from(cpu.0) << 8 | u64::from(*vector) << 24);
                h.word(u64::from(*gsi));
            }
            OsEvent::CpuHalted {
                cpu,
                flushed_lines,
                dirty_lines,
            } => {
                h.word(28 | u64::from(cpu.0) << 8);
                h.word(u64::from(*flushed_lines) << 32 | u64::from(*dirty_lines));
            }
            OsEvent::OpStart {
                flow,
                op,
                kind,
                target,
                trigger,
            } => {
                let (tag, _, _) = flow.tags();
                match target {
                    OpTarget::Cpu(cpu) => {
                        h.word(tag | u64::from(cpu.0) << 8 | u64::from(*op) << 32);
                        h.str(kind);
                        h.str(trigger);
                    }
                    OpTarget::Blocks(blocks) => {
                        h.word(tag | u64::from(*op) << 32);
                        h.str(kind);
                        h.str(trigger);
                        for b in blocks {
                            h.word(u64::from(*b));
                        }
                    }
                    OpTarget::Named(target) => {
                        h.word(tag | u64::from(*op) << 32);
                        h.str(kind);
                        h.str(target);
                        h.str(trigger);
                    }
                }
            }
            OsEvent::OpStep {
                flow,
                op,
                step,
                start,
                duration,
                note,
                ..
            } => {
                let (_, tag, _) = flow.tags();
                h.word(tag | u64::from(*step) << 8 | u64::from(*op) << 32);
                h.word(start.as_nanos());
                h.word(duration.as_nanos());
                h.str(note);
            }
            OsEvent::OpEnd { flow, op, result } => {
                let (_, _, tag) = flow.tags();
                h.word(tag | u64::from(*op) << 32);
                match result {
                    Ok(()) => h.word(0),
                    Err(e) => h.str(e),
                }
            }
            OsEvent::HotplugRefused { cpu, kind, error } => {
                h.word(32 | u64::from(*cpu) << 32);
                h.str(kind);
                h.str(error);
            }
            OsEvent::AcpiNotify { path, code } => {
                h.word(33 | u64::from(*code) << 8);
                h.str(path);
            }
            OsEvent::RequestRefused {
                target,
                errno,
                error,
            } => {
                h.word(52);
                h.str(target);
                h.str(errno);
                h.str(error);
            }
        }
    }
}

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
            | OsEvent::PageFreed { .. }
            | OsEvent::PageDiscarded { .. }
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
            | OsEvent::IrqDisabled { .. }
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
                online,
                active,
                by,
            } => (
                cpu_track(*by),
                "cpu maps published",
                Phase::Instant,
                vec![
                    ("version", u(*version)),
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
                version,
                purpose,
            } => (
                cpu_track(*cpu),
                "rcu_read_lock",
                Phase::Begin,
                vec![("version", u(*version)), ("for", s((*purpose).to_owned()))],
            ),
            OsEvent::RcuUse {
                cpu,
                version,
                about,
            } => (
                cpu_track(*cpu),
                "rcu use",
                Phase::Instant,
                vec![("version", u(*version)), ("about", s(about.to_string()))],
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
            OsEvent::IrqHandled { gsi, vector, cpu } => (
                cpu_track(*cpu),
                "irq handled",
                Phase::Instant,
                vec![
                    ("gsi", u(u64::from(*gsi))),
                    ("vector", u(u64::from(*vector))),
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
