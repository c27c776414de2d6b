//! What the OS model tells the trace and its checkers.
//!
//! Every scheduling decision, RCU publication and read-side section, grace period, IPI,
//! interrupt, task memory access and hot-plug step is an [`OsEvent`]. The OS checkers
//! ([`crate::check`]) rebuild their own picture of the OS from these events alone and compare
//! it with the OS's data structures and the hardware at audits.

mod hash;
mod record;

use std::fmt;

use serde::Serialize;
use sim_core::{CpuId, MsgTag, SimDuration, SimTime};

use crate::cpumask::{CpuMask, LogicalCpu};
pub use crate::ids::{MemObj, TaskId};

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

/// The kinds of operation the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// CPU hot-remove / hot-add ([`crate::hotplug`]).
    Cpu,
    /// Memory block and whole-cell operations ([`crate::memhotplug`]).
    Memory,
    /// PCI slot and I/O-subsystem operations ([`crate::pcihp`]).
    Pci,
}

impl FlowKind {
    /// The trace's name of the flow's operations (`hotplug`, `memory hotplug`, …).
    pub const fn label(self) -> &'static str {
        match self {
            FlowKind::Cpu => "hotplug",
            FlowKind::Memory => "memory hotplug",
            FlowKind::Pci => "pci hotplug",
        }
    }

    /// The trace's name of the flow's Start event.
    pub const fn start_name(self) -> &'static str {
        match self {
            FlowKind::Cpu => "hotplug start",
            FlowKind::Memory => "memory hotplug start",
            FlowKind::Pci => "pci hotplug start",
        }
    }

    /// The trace's name of the flow's End event.
    pub const fn end_name(self) -> &'static str {
        match self {
            FlowKind::Cpu => "hotplug end",
            FlowKind::Memory => "memory hotplug end",
            FlowKind::Pci => "pci hotplug end",
        }
    }

    /// The trace-hash tags of the flow's Start, Step and End events (fixed: the goldens
    /// depend on them).
    pub(crate) const fn tags(self) -> (u64, u64, u64) {
        match self {
            FlowKind::Cpu => (29, 30, 31),
            FlowKind::Memory => (42, 43, 44),
            FlowKind::Pci => (48, 49, 50),
        }
    }
}

/// What an operation acts on, as its Start event names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum OpTarget {
    /// A logical CPU.
    Cpu(LogicalCpu),
    /// Memory blocks (empty: a whole node).
    Blocks(Vec<u32>),
    /// A hot-plug slot (named `slot 5` in the trace).
    Slot(sim_core::SlotId),
    /// Anything else by name (an I/O subsystem: `I/O subsystem \_SB_.IO06`).
    Named(String),
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
        /// The version of the CPU maps (published in order, from 1).
        version: u64,
        /// Where the object lives in kernel memory.
        addr: u64,
        /// Online CPUs in it.
        online: CpuMask,
        /// Active CPUs in it.
        active: CpuMask,
        /// Who published.
        by: LogicalCpu,
    },
    /// A version of the maps was freed.
    MapsFreed {
        /// The version of the CPU maps (published in order, from 1).
        version: u64,
        /// Who freed it.
        by: LogicalCpu,
    },
    /// A CPU entered an RCU read-side section: it loaded the published pointer and, from
    /// the object it names, the header.
    RcuLock {
        /// The reader's CPU.
        cpu: LogicalCpu,
        /// The object's address, as the reader loaded it from the pointer.
        addr: u64,
        /// The header word it loaded there (the version, or what overwrote it).
        loaded: u64,
        /// What it reads for.
        purpose: &'static str,
    },
    /// A reader acted on what it read (sent an IPI to a CPU it found online, …).
    RcuUse {
        /// The reader's CPU.
        cpu: LogicalCpu,
        /// The object it dereferenced.
        addr: u64,
        /// On which CPU the use acted.
        about: LogicalCpu,
        /// The online-mask word holding `about`'s bit, as loaded for the use.
        bits: u64,
    },
    /// A CPU left its read-side section.
    RcuUnlock {
        /// The reader's CPU.
        cpu: LogicalCpu,
    },
    /// A CPU passed a quiescent state.
    QuiescentState {
        /// The logical CPU (the kernel's number for it, not the hardware id).
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
        /// The logical CPU (the kernel's number for it, not the hardware id).
        cpu: LogicalCpu,
        /// Joined (true) or left.
        online: bool,
    },
    /// A task was created.
    TaskCreated {
        /// The task.
        task: TaskId,
        /// Its name in reports.
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
        /// How many pages.
        pages: u32,
        /// Words per page the tasks work on.
        slots: u32,
    },
    /// A task discarded a page of an object (`MADV_DONTNEED`): it reads as zeros next time.
    PageDiscarded {
        /// The object.
        obj: MemObj,
        /// The page's index in its object.
        page: u32,
    },
    /// The kernel stored a page-table entry: the word and where it went (the store the
    /// hardware walker will load). CHK-7 keeps its own record of what maps each frame from
    /// these, not from the kernel's reverse map.
    PteWritten {
        /// Address space.
        mm: u32,
        /// Virtual page.
        vpn: u32,
        /// Physical address of the entry's word.
        addr: u64,
        /// The page-table page holding it.
        table: u32,
        /// The word stored ([`crate::mm::vm::Pte::encode`]).
        word: u64,
    },
    /// The buddy allocator handed out frames.
    PageAllocated {
        /// Head frame.
        pfn: u32,
        /// The buddy order (2^order contiguous pages).
        order: u8,
    },
    /// A pageblock became isolated (nothing may be allocated from it) or stopped being so.
    PageblockIsolation {
        /// First frame of the pageblock.
        pfn: u32,
        /// Isolated from now on.
        isolated: bool,
    },
    /// Frames entered the buddy allocator free (a memory block came online: all of it but
    /// its own `mem_map` and firmware's reserve) or left it (the block went offline).
    FramesManaged {
        /// First frame.
        pfn: u32,
        /// How many.
        pages: u32,
        /// Entered (`true`) or left.
        on: bool,
    },
    /// Frames went back to the buddy allocator.
    PageFreed {
        /// First frame.
        pfn: u32,
        /// The buddy order (2^order contiguous pages).
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
        /// Why it was queued (fork, wakeup, kernel thread).
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
        /// The logical CPU (the kernel's number for it, not the hardware id).
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
        /// The logical CPU (the kernel's number for it, not the hardware id).
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
        /// The logical CPU (the kernel's number for it, not the hardware id).
        cpu: LogicalCpu,
    },
    /// A kernel thread was parked (stopped) or unparked.
    Park {
        /// The thread.
        task: TaskId,
        /// The logical CPU (the kernel's number for it, not the hardware id).
        cpu: LogicalCpu,
        /// Parked (true) or unparked.
        parked: bool,
    },
    /// Timers were moved from a CPU to another.
    TimersMoved {
        /// The CPU that sent it.
        from: LogicalCpu,
        /// The CPU it was sent to.
        to: LogicalCpu,
        /// The sleeping tasks whose wakeup timers moved.
        tasks: Vec<TaskId>,
    },
    /// A user task stored to or loaded from its memory.
    TaskAccess {
        /// The task.
        task: TaskId,
        /// The logical CPU (the kernel's number for it, not the hardware id).
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
        /// The interrupt vector the CPU takes it on.
        vector: u8,
    },
    /// A CPU handled an IPI vector.
    IpiHandled {
        /// The logical CPU (the kernel's number for it, not the hardware id).
        cpu: LogicalCpu,
        /// The interrupt vector the CPU takes it on.
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
        /// The logical CPU (the kernel's number for it, not the hardware id).
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
        /// The global system interrupt (the IO SAPIC input, `_PRT`'s number).
        gsi: u32,
        /// The interrupt vector the CPU takes it on.
        vector: u8,
        /// Destination CPU.
        cpu: LogicalCpu,
        /// Previous destination when re-routed.
        from: Option<LogicalCpu>,
    },
    /// A device interrupt handler ran.
    IrqHandled {
        /// The global system interrupt (the IO SAPIC input, `_PRT`'s number).
        gsi: u32,
        /// The interrupt vector the CPU takes it on.
        vector: u8,
        /// The logical CPU (the kernel's number for it, not the hardware id).
        cpu: LogicalCpu,
        /// The line messages the local SAPIC handed over with the vector (several when
        /// they merged in its IRR), as the hardware tagged them.
        tags: Vec<MsgTag>,
    },
    /// The kernel freed an IRQ (`free_irq`): its IO SAPIC entry must be masked now, unless
    /// its IO SAPIC is gone.
    IrqFreed {
        /// The global system interrupt (the IO SAPIC input, `_PRT`'s number).
        gsi: u32,
        /// The vector it was taken on.
        vector: u8,
    },
    /// The kernel disabled an interrupt line no handler claimed ("nobody cared").
    IrqDisabled {
        /// The global system interrupt (the IO SAPIC input, `_PRT`'s number).
        gsi: u32,
        /// The interrupt vector the CPU takes it on.
        vector: u8,
        /// Unclaimed interrupts in a row.
        unhandled: u32,
    },
    /// The OS executed HALT on a CPU (hot-remove's last step on the CPU).
    CpuHalted {
        /// The logical CPU (the kernel's number for it, not the hardware id).
        cpu: LogicalCpu,
        /// Lines flushed first.
        flushed_lines: u32,
        /// Dirty lines written back.
        dirty_lines: u32,
    },
    /// A hot-plug request was accepted and queued (it starts later, as an operation of its
    /// own).
    OpQueued {
        /// The flow it belongs to (CPU, memory, PCI).
        flow: FlowKind,
        /// The number its operation will have.
        op: u32,
    },
    /// A hot-plug operation (CPU, memory / cell or PCI) started.
    OpStart {
        /// The flow the operation belongs to (CPU, memory, PCI).
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
        /// The flow the operation belongs to (CPU, memory, PCI).
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
        /// The flow the operation belongs to (CPU, memory, PCI).
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
        /// Why, as the kernel words it.
        error: String,
    },
    /// A memory, cell or PCI hot-plug request (a sysfs write, an ACPI notification) was
    /// refused at once, changing nothing.
    RequestRefused {
        /// What was asked for: a device path, `memoryN`, `slot N`.
        target: String,
        /// The errno a Linux system call would return (`EBUSY`, `EINVAL`, …).
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
