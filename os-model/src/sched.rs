//! Scheduler data: tasks, per-CPU runqueues and per-CPU areas (SPEC OS-CPU-1, OS-CPU-3).
//!
//! ```text
//!   per-CPU area (NR_CPUS of them)
//!     kq: the migration thread (the stopper) — runs before anything else
//!     rq: user tasks and ksoftirqd, round robin, a time slice each
//!     curr, need_resched, the CPU's timers, its softirq work, its cross-call queue,
//!     its migration requests, the kernel operation in progress (preemption disabled)
//! ```
//!
//! Only the CPU's migration thread takes a task off a runqueue to put it on another one's;
//! a sleeping task is on no runqueue, and where it wakes up is chosen when it wakes.

use std::collections::{BTreeSet, VecDeque};

use sim_core::{CpuId, LsapicId, SimRng, SimTime};

use crate::cpumask::{CpuMask, LogicalCpu};
use crate::event::TaskId;

/// What a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// A user task running the synthetic workload.
    User,
    /// The CPU's migration thread (the only mover of tasks between runqueues).
    Migration(LogicalCpu),
    /// The CPU's softirq thread (timers, load balancing, driver bottom halves).
    Ksoftirqd(LogicalCpu),
}

impl TaskKind {
    /// The migration thread (the stopper): it runs before anything else on its CPU.
    pub const fn is_stopper(self) -> bool {
        matches!(self, TaskKind::Migration(_))
    }

    /// The CPU a per-CPU kernel thread belongs to.
    pub const fn kthread_cpu(self) -> Option<LogicalCpu> {
        match self {
            TaskKind::User => None,
            TaskKind::Migration(c) | TaskKind::Ksoftirqd(c) => Some(c),
        }
    }
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// On the runqueue of this CPU, waiting.
    Queued(LogicalCpu),
    /// Running on this CPU.
    Running(LogicalCpu),
    /// Asleep until a timer on `timer_cpu` wakes it.
    Sleeping {
        /// The CPU holding its wakeup timer.
        timer_cpu: LogicalCpu,
        /// When.
        until: SimTime,
    },
    /// Its wakeup timer fired; the wakeup is pending in `cpu`'s softirq work.
    Waking(LogicalCpu),
    /// A kernel thread waiting for work.
    Blocked,
    /// A parked (stopped) kernel thread.
    Parked,
}

/// One task.
#[derive(Clone, Debug)]
pub struct Task {
    /// The task's id (unique for the run).
    pub id: TaskId,
    /// Name as `ps` shows it (`worker/3`, `migration/5`, `ksoftirqd/5`).
    pub name: String,
    /// What it is.
    pub kind: TaskKind,
    /// Where it is.
    pub state: TaskState,
    /// CPUs it may run on.
    pub affinity: CpuMask,
    /// Hard-bound to one CPU (offlining that CPU is refused).
    pub bound: bool,
    /// The CPU it last ran on.
    pub cpu: LogicalCpu,
    /// Ticks left of its time slice.
    pub slice: u32,
    /// Its address space (user tasks).
    pub mm: Option<u32>,
    /// Its random stream (which word, load or store, sleep or not).
    pub rng: SimRng,
    /// Stores done (makes every stored value unique).
    pub stores: u64,
    /// Bursts run.
    pub bursts: u64,
    /// Times a migration thread moved it.
    pub migrations: u64,
}

/// One entry of a CPU's softirq work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Wake a task whose timer fired.
    Wake(TaskId),
    /// Run the load balancer.
    Balance,
    /// A card's bottom half with the status its top half acknowledged.
    Card {
        /// Card index.
        card: usize,
        /// The status word the top half read and acknowledged.
        status: u64,
    },
    /// Start one of the user tasks the boot asked for (its fork and first page faults). One
    /// task per work item, so the CPU takes interrupts — and answers cross-calls — between
    /// two of them: populating a task's memory takes up to a millisecond, a CPU's share of
    /// the boot's tasks several. A CPU no longer active hands the item to an active one.
    Spawn,
}

/// A request to a CPU's migration thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigReq {
    /// Move `task` from this CPU's runqueue to `to` (load balancing).
    Pull {
        /// The task.
        task: TaskId,
        /// Destination.
        to: LogicalCpu,
    },
    /// Move every task off this CPU (hot-remove), then tell operation `op`.
    Evacuate {
        /// The hot-plug operation.
        op: u32,
    },
    /// Take pending interrupts, hand timers and softirq work to `to`, then tell `op`.
    Takeover {
        /// The hot-plug operation.
        op: u32,
        /// Where the work goes.
        to: LogicalCpu,
    },
    /// Park ksoftirqd and then the migration thread itself, then tell `op`.
    Park {
        /// The hot-plug operation.
        op: u32,
    },
}

/// A kernel operation in progress on a CPU (preemption disabled, inside an RCU read-side
/// section over the maps version it read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpiOp {
    /// Maps version the reader holds.
    pub version: u64,
    /// What for (trace).
    pub purpose: &'static str,
    /// Vector to send.
    pub vector: u8,
    /// Destinations, in order.
    pub targets: Vec<LogicalCpu>,
    /// Next destination to send to.
    pub next: usize,
    /// Cross-call requests sent (wait for their acknowledgement).
    pub csds: Vec<u64>,
    /// Whether to wait for acknowledgements.
    pub wait: bool,
    /// Give up waiting at this time.
    pub deadline: SimTime,
    /// For a TLB shootdown: the address space whose translations go (`None`: all).
    pub asid: Option<u32>,
    /// A frame to free once every CPU has acknowledged (a discarded page).
    pub free_after: Option<u32>,
}

/// Where a CPU is in its life, as the OS sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuLife {
    /// No logical id or not present.
    NotPresent,
    /// Present, not running the OS (in the firmware's rendezvous).
    Offline,
    /// Being brought up.
    Coming,
    /// Up (maybe not yet or no longer in the online map).
    Up,
    /// Halted by hot-remove; waiting in the rendezvous.
    Dead,
}

/// A CPU's per-CPU area.
#[derive(Clone, Debug)]
pub struct PerCpu {
    /// Logical id.
    pub id: LogicalCpu,
    /// Hardware CPU (from the processor's `_UID`), if mapped.
    pub hw: Option<CpuId>,
    /// Local SAPIC id/eid (from `_MAT`).
    pub lsapic: LsapicId,
    /// NUMA node (`_PXM`).
    pub node: u32,
    /// Processor object path.
    pub path: String,
    /// Where the CPU is in its hot-plug life (not present, offline, coming, up, going).
    pub life: CpuLife,
    /// The migration thread when it is ready to run.
    pub kq: VecDeque<TaskId>,
    /// User tasks and ksoftirqd ready to run.
    pub rq: VecDeque<TaskId>,
    /// The running task (`None`: idle).
    pub curr: Option<TaskId>,
    /// Reschedule at the next opportunity.
    pub need_resched: bool,
    /// Wakeup timers: `(when, task)`.
    pub timers: BTreeSet<(SimTime, TaskId)>,
    /// Pending softirq work.
    pub work: VecDeque<Work>,
    /// Cross-call requests to run.
    pub csd: VecDeque<u64>,
    /// Requests to the migration thread.
    pub mig: VecDeque<MigReq>,
    /// The kernel operation in progress.
    pub op: Option<IpiOp>,
    /// Its migration thread, once created.
    pub migration: Option<TaskId>,
    /// Its ksoftirqd, once created.
    pub ksoftirqd: Option<TaskId>,
    /// When its next `Run` is scheduled.
    pub next_run: Option<(SimTime, sim_core::EventId)>,
    /// Whether its tick is running.
    pub ticking: bool,
    /// Ticks taken.
    pub ticks: u64,
    /// Hot-remove asked it to flush and halt (operation number).
    pub dying: Option<u32>,
    /// Context switches.
    pub switches: u64,
}

impl PerCpu {
    /// An unmapped per-CPU area.
    pub fn new(id: LogicalCpu) -> Self {
        PerCpu {
            id,
            hw: None,
            lsapic: LsapicId { id: 0, eid: 0 },
            node: 0,
            path: String::new(),
            life: CpuLife::NotPresent,
            kq: VecDeque::new(),
            rq: VecDeque::new(),
            curr: None,
            need_resched: false,
            timers: BTreeSet::new(),
            work: VecDeque::new(),
            csd: VecDeque::new(),
            mig: VecDeque::new(),
            op: None,
            migration: None,
            ksoftirqd: None,
            next_run: None,
            ticking: false,
            ticks: 0,
            dying: None,
            switches: 0,
        }
    }

    /// Whether nothing runs and nothing waits.
    pub fn is_idle(&self) -> bool {
        self.curr.is_none() && self.kq.is_empty() && self.rq.is_empty()
    }

    /// User tasks running or waiting here (the balancer's load).
    pub fn load(&self, tasks: &[Task]) -> usize {
        let user = |t: &TaskId| tasks[t.0 as usize].kind == TaskKind::User;
        self.rq.iter().filter(|t| user(t)).count()
            + usize::from(self.curr.as_ref().is_some_and(user))
    }
}
