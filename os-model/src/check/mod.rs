//! The OS checkers: CHK-3 (task data), CHK-4 (scheduler), CHK-5 (RCU), the OS side of
//! CHK-6 (interrupts and IPIs) and the memory side of CHK-7 (allocator).
//!
//! Each rebuilds its own picture of the OS from the [`OsEvent`] stream alone — which task
//! is where, which map versions are live, who reads what, which CPUs are online — and
//! reports the moment the stream contradicts an invariant. At audits it compares that
//! picture with the OS's data structures and with the hardware.
//!
//! The kernel's own diagnoses ("nobody cared", a cross-call timeout, the allocator's audit
//! of its own lists) are not the checkers' findings: CHK-6 and CHK-7 count them beside their
//! reports as corroboration ([`NOBODY_CARED`], [`CSD_TIMEOUT`], [`ALLOCATOR_SELF_AUDIT`]),
//! never as violations.
//!
//! | checker | catches (defect that proves it) |
//! |---|---|
//! | CHK-3 task data | a task reads back something else than it last stored (`skip_cache_flush_on_cpu_remove`) |
//! | CHK-4 scheduler | a runnable task left on an offline or halted CPU, on two runqueues, lost (`skip_task_migration`, `halt_before_offline`), moved by anyone but the migration thread (`balance_pulls_directly`); a task blocked past [`BLOCK_BOUND`] with no wakeup (`lose_page_waiters`) |
//! | CHK-5 RCU | an object freed while a reader may hold it, used after free, a grace period ending under an older reader (`skip_rcu_grace_period`); a version dereferenced that is not the published one, the poison of a freed version or words other than the published ones loaded by a reader (`rcu_reader_keeps_stale_pointer`); the published version freed (`free_published_maps`) |
//! | CHK-6 interrupts | an interrupt handled on an offline CPU, delivered and never handled (`skip_irq_reroute`), a freed IRQ whose IO SAPIC entry is still unmasked, read from the entry (`free_irq_leaves_unmasked`), a handler run for no message of any line (`retrigger_moved_irqs`), a message handled twice (`replay_last_irq_on_move`) or by another line's handler (`reroute_wrong_vector`) |
//! | CHK-7 `_OST` answers | a notification the kernel took on a device with `_OST` that firmware never hears the end of, read from firmware's `_OST` log once no operation runs (`skip_ost`) |
//! | CHK-7 slot undo | a failed slot operation that leaves power, the card's configuration or its interrupt entry other than it found them, read from the hardware (`skip_enable_undo`) |
//! | CHK-7 allocator | a page freed while a page-table word in memory maps it or under I/O (`free_before_copy`, `ignore_writeback`, `pte_not_written_to_memory`), allocated from an isolated pageblock (`alloc_from_isolated`), a page-table word in memory other than the kernel's copy (`pte_not_written_to_memory`), free lists that disagree with its own record of the frames the allocator was given, handed out and got back (`keep_offline_pages_listed`), memory taken offline with frames in it still handed out (`skip_unmovable_check`), reverse maps / kernel objects disagreeing at audits (`skip_unmovable_check`); after each operation, a frame handed out (its own record) whose owner is gone (`leak_memmap_on_offline`); a failed memory operation that left pageblocks it isolated isolated (`skip_isolation_undo`) |

use acpi_model::Platform;
use sim_core::{CheckerId, CpuId, Entity, SimTime, Violation, Violations};

use crate::cpumask::{CpuMask, LogicalCpu};
use crate::event::OsEvent;
use crate::kernel::Os;

/// CHK-3.
pub const CHK_TASK_DATA: CheckerId = CheckerId {
    code: "CHK-3",
    name: "task-data",
};
/// CHK-4.
pub const CHK_SCHED: CheckerId = CheckerId {
    code: "CHK-4",
    name: "scheduler",
};
/// CHK-5.
pub const CHK_RCU: CheckerId = CheckerId {
    code: "CHK-5",
    name: "rcu",
};
/// CHK-6, OS side.
pub const CHK_OS_IRQ: CheckerId = CheckerId {
    code: "CHK-6",
    name: "os-interrupts",
};

/// CHK-7, memory side.
pub const CHK_ALLOC: CheckerId = CheckerId {
    code: "CHK-7",
    name: "allocator",
};

/// A checker of the OS.
pub trait OsChecker: Send {
    /// Who it is.
    fn id(&self) -> CheckerId;
    /// One event, as it happened.
    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations);
    /// The hardware as the event left it (read right after the OS step that emitted it),
    /// for a checker that must note where a hardware counter stood at that point.
    fn sample(&mut self, _now: SimTime, _ev: &OsEvent, _p: &Platform) {}
    /// A full comparison with the OS and the hardware.
    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations);
}

/// Every OS checker.
pub struct OsCheckers {
    list: Vec<Box<dyn OsChecker>>,
}

impl Default for OsCheckers {
    fn default() -> Self {
        OsCheckers {
            list: vec![
                Box::new(TaskDataChecker::default()),
                Box::new(SchedChecker::default()),
                Box::new(RcuChecker::default()),
                Box::new(IrqChecker::default()),
                Box::new(AllocChecker::default()),
                Box::new(SlotUndoChecker::default()),
                Box::new(OstChecker::default()),
            ],
        }
    }
}

impl OsCheckers {
    /// Their ids.
    pub fn ids(&self) -> Vec<CheckerId> {
        self.list.iter().map(|c| c.id()).collect()
    }
    /// Shows one event to all.
    pub fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        for c in &mut self.list {
            c.observe(now, ev, out);
        }
    }
    /// Shows one event to all, with the hardware as the OS step that emitted it left it.
    pub fn observe_on(&mut self, now: SimTime, ev: &OsEvent, p: &Platform, out: &mut Violations) {
        for c in &mut self.list {
            c.sample(now, ev, p);
            c.observe(now, ev, out);
        }
    }
    /// Audits all.
    pub fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        for c in &mut self.list {
            c.audit(now, os, p, out);
        }
    }
}

/// Logical → hardware CPU names, learnt from `CpuMapped` events.
#[derive(Clone, Debug, Default)]
struct Names(Vec<Option<CpuId>>);

impl Names {
    fn learn(&mut self, ev: &OsEvent) {
        if let OsEvent::CpuMapped { cpu, hw, .. } = ev {
            if self.0.len() <= cpu.index() {
                self.0.resize(cpu.index() + 1, None);
            }
            self.0[cpu.index()] = Some(*hw);
        }
    }
    fn entity(&self, c: LogicalCpu) -> Entity {
        match self.0.get(c.index()).copied().flatten() {
            Some(hw) => Entity::Cpu(hw),
            None => Entity::Object("logical-cpu", u64::from(c.0)),
        }
    }
}

fn violation(
    now: SimTime,
    checker: CheckerId,
    agent: Entity,
    target: Entity,
    message: String,
) -> Violation {
    Violation {
        time: now,
        checker,
        agent,
        target,
        message,
    }
}

/// A violation of the kernel as a whole: no single CPU or task to name as its agent.
fn by_kernel(now: SimTime, checker: CheckerId, target: Entity, message: String) -> Violation {
    violation(now, checker, Entity::Os(sim_core::OsId(0)), target, message)
}

/// Keeps the online and active maps as published.
#[derive(Clone, Debug, Default)]
struct Maps {
    online: Option<CpuMask>,
    active: Option<CpuMask>,
}

impl Maps {
    fn learn(&mut self, ev: &OsEvent) {
        if let OsEvent::MapsPublished { online, active, .. } = ev {
            self.online = Some(online.clone());
            self.active = Some(active.clone());
        }
    }
    fn online(&self, c: LogicalCpu) -> bool {
        self.online.as_ref().is_some_and(|m| m.contains(c))
    }
    fn active(&self, c: LogicalCpu) -> bool {
        self.active.as_ref().is_some_and(|m| m.contains(c))
    }
}

mod alloc;
mod irq;
mod ost;
mod rcu;
mod sched;
mod task_data;
mod undo;

pub use alloc::{ALLOCATOR_SELF_AUDIT, AllocChecker};
pub use irq::{CSD_TIMEOUT, IrqChecker, NOBODY_CARED};
pub use ost::{CHK_OST, OstChecker};
pub use rcu::RcuChecker;
pub use sched::{BLOCK_BOUND, SchedChecker};
pub use task_data::{FULL_PAGES_PER_AUDIT, TaskDataChecker};
pub use undo::{CHK_SLOT_UNDO, SlotUndoChecker};

#[cfg(test)]
mod tests;
