//! The `[os]` table of a scenario: kernel parameters, the synthetic workload, and the OS
//! defects a scenario can inject (SPEC CHK-9).

use std::fmt;

use serde::{Deserialize, Serialize};
use sim_core::SimDuration;
use thiserror::Error;

/// A user task hard-bound to one CPU (`sched_setaffinity` to a single CPU): that CPU cannot
/// be taken offline while the task lives.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BoundTask {
    /// The logical CPU.
    pub cpu: u32,
}

/// Kernel parameters and the synthetic workload (see `scenarios/README.md`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OsConfig {
    /// `NR_CPUS`: size of every CPU mask and per-CPU area.
    pub nr_cpus: u32,
    /// Timer tick period on every online CPU.
    pub tick: SimDuration,
    /// Ticks a user task runs before it is preempted.
    pub timeslice_ticks: u32,
    /// Every this many ticks a CPU runs the load balancer (0: never).
    pub balance_ticks: u32,
    /// User tasks created at boot per online CPU.
    pub tasks_per_cpu: u32,
    /// Words of memory each user task works on (allocated on its first CPU's node).
    pub task_words: u32,
    /// Memory accesses per burst of a user task.
    pub burst: u32,
    /// Computation between bursts.
    pub compute: SimDuration,
    /// Fraction of a task's accesses that are stores.
    pub store_ratio: f64,
    /// Chance, after each burst, that a task sleeps.
    pub sleep_chance: f64,
    /// How long a sleeping task sleeps.
    pub sleep: SimDuration,
    /// Chance, after each burst, that a task unmaps memory and shoots down the TLBs of every
    /// other online CPU (a cross-call IPI broadcast that waits for every acknowledgement).
    pub shootdown_chance: f64,
    /// Time to send one IPI (the sender sends them one after the other).
    pub ipi_send: SimDuration,
    /// Time an IPI handler runs.
    pub ipi_handler: SimDuration,
    /// A cross-call not acknowledged after this long is reported (the kernel's CSD lock
    /// timeout) and abandoned.
    pub csd_timeout: SimDuration,
    /// Time the migration thread takes to move one task.
    pub migrate_cost: SimDuration,
    /// Base time of every hot-plug step (bookkeeping on the controlling CPU).
    pub step_cost: SimDuration,
    /// Time a new CPU spends initialising itself (idle task, registers, per-CPU areas).
    pub init_cost: SimDuration,
    /// A hot-plug step waiting longer than this is reported and the operation abandoned
    /// (the hung-task detector).
    pub hung_timeout: SimDuration,
    /// User tasks hard-bound to one CPU each.
    pub bound: Vec<BoundTask>,
}

impl Default for OsConfig {
    fn default() -> Self {
        OsConfig {
            nr_cpus: 256,
            tick: SimDuration::from_micros(100),
            timeslice_ticks: 2,
            balance_ticks: 4,
            tasks_per_cpu: 3,
            task_words: 256,
            burst: 8,
            compute: SimDuration::from_nanos(400),
            store_ratio: 0.5,
            sleep_chance: 0.002,
            sleep: SimDuration::from_micros(300),
            shootdown_chance: 0.004,
            ipi_send: SimDuration::from_nanos(1500),
            ipi_handler: SimDuration::from_nanos(600),
            csd_timeout: SimDuration::from_millis(2),
            migrate_cost: SimDuration::from_micros(3),
            step_cost: SimDuration::from_micros(5),
            init_cost: SimDuration::from_micros(40),
            hung_timeout: SimDuration::from_millis(5),
            bound: Vec::new(),
        }
    }
}

/// A field of `[os]` that cannot be used: its name and why.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct OsConfigError {
    /// Field within `[os]`, e.g. `tick` or `bound[1].cpu`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn bad(field: &str, message: String) -> OsConfigError {
    OsConfigError {
        field: field.to_owned(),
        message,
    }
}

impl OsConfig {
    /// Checks every field on its own (what depends on the machine is checked at boot).
    pub fn validate(&self) -> Result<(), OsConfigError> {
        if self.nr_cpus == 0 || self.nr_cpus > 4096 {
            return Err(bad(
                "nr_cpus",
                format!("{} must be between 1 and 4096", self.nr_cpus),
            ));
        }
        let positive = [
            ("tick", self.tick),
            ("ipi_send", self.ipi_send),
            ("csd_timeout", self.csd_timeout),
            ("hung_timeout", self.hung_timeout),
        ];
        for (f, d) in positive {
            if d.is_zero() {
                return Err(bad(f, "must be longer than 0".into()));
            }
        }
        if self.tick < SimDuration::from_micros(1) {
            return Err(bad(
                "tick",
                format!("{} is shorter than 1us; the run would only tick", self.tick),
            ));
        }
        if self.timeslice_ticks == 0 {
            return Err(bad("timeslice_ticks", "must be at least 1".into()));
        }
        if self.task_words == 0 || self.task_words > 1 << 16 {
            return Err(bad(
                "task_words",
                format!("{} must be between 1 and 65536", self.task_words),
            ));
        }
        if self.burst == 0 || self.burst > 4096 {
            return Err(bad(
                "burst",
                format!("{} must be between 1 and 4096", self.burst),
            ));
        }
        if self.tasks_per_cpu > 64 {
            return Err(bad(
                "tasks_per_cpu",
                format!("{} is more than 64", self.tasks_per_cpu),
            ));
        }
        let chances = [
            ("store_ratio", self.store_ratio),
            ("sleep_chance", self.sleep_chance),
            ("shootdown_chance", self.shootdown_chance),
        ];
        for (f, p) in chances {
            if !(0.0..=1.0).contains(&p) {
                return Err(bad(f, format!("{p} is not a probability between 0 and 1")));
            }
        }
        if self.sleep_chance > 0.0 && self.sleep.is_zero() {
            return Err(bad(
                "sleep",
                "must be longer than 0 when tasks sleep".into(),
            ));
        }
        for (i, b) in self.bound.iter().enumerate() {
            if b.cpu >= self.nr_cpus {
                return Err(bad(
                    &format!("bound[{i}].cpu"),
                    format!("cpu{} is beyond nr_cpus ({})", b.cpu, self.nr_cpus),
                ));
            }
        }
        Ok(())
    }
}

/// A mistake the OS model can be told to make (SPEC CHK-9); each has a checker that catches
/// it and a scenario in `scenarios/defects/` proving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OsDefect {
    /// CPU hot-remove publishes the new online map and frees the old one at once, without
    /// waiting for a grace period, and halts the CPU while readers may still use the old map
    /// (CHK-5; the IPIs they then send hit a halted CPU: CHK-6).
    SkipRcuGracePeriod,
    /// CPU hot-remove leaves the IO SAPIC entries that point at the CPU alone (CHK-6).
    SkipIrqReroute,
    /// CPU hot-remove leaves the tasks on the CPU's runqueue (CHK-4).
    SkipTaskMigration,
    /// CPU hot-remove halts the CPU without flushing its cache: its dirty lines are lost
    /// (CHK-1 sees the requests to the halted cache, CHK-3 the task data that went stale).
    SkipCacheFlushOnCpuRemove,
    /// CPU hot-remove halts the CPU right after marking it inactive, before anything was
    /// moved off it (CHK-4, and CHK-6 for the interrupts that then reach it).
    HaltBeforeOffline,
}

impl OsDefect {
    /// Every defect.
    pub const ALL: [OsDefect; 5] = [
        OsDefect::SkipRcuGracePeriod,
        OsDefect::SkipIrqReroute,
        OsDefect::SkipTaskMigration,
        OsDefect::SkipCacheFlushOnCpuRemove,
        OsDefect::HaltBeforeOffline,
    ];

    /// The name used in scenario files.
    pub const fn name(self) -> &'static str {
        match self {
            OsDefect::SkipRcuGracePeriod => "skip_rcu_grace_period",
            OsDefect::SkipIrqReroute => "skip_irq_reroute",
            OsDefect::SkipTaskMigration => "skip_task_migration",
            OsDefect::SkipCacheFlushOnCpuRemove => "skip_cache_flush_on_cpu_remove",
            OsDefect::HaltBeforeOffline => "halt_before_offline",
        }
    }
}

impl fmt::Display for OsDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of injected OS defects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsDefects(u8);

impl OsDefects {
    /// Adds one.
    pub fn insert(&mut self, d: OsDefect) {
        self.0 |= 1 << d as u8;
    }
    /// Whether `d` is injected.
    pub const fn has(self, d: OsDefect) -> bool {
        self.0 & (1 << d as u8) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_fields_are_named() {
        assert_eq!(OsConfig::default().validate(), Ok(()));
        let c = OsConfig {
            sleep_chance: 1.5,
            ..OsConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "sleep_chance");
        let c = OsConfig {
            bound: vec![BoundTask { cpu: 1 }, BoundTask { cpu: 300 }],
            ..OsConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "bound[1].cpu");
        let c = OsConfig {
            tick: SimDuration::ZERO,
            ..OsConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "tick");
    }

    #[test]
    fn defect_set() {
        let mut d = OsDefects::default();
        d.insert(OsDefect::SkipIrqReroute);
        assert!(d.has(OsDefect::SkipIrqReroute));
        assert!(!d.has(OsDefect::HaltBeforeOffline));
        assert_eq!(OsDefect::ALL.len(), 5);
    }
}
