//! RCU: read-copy-update with grace periods over simulated time (SPEC OS-CPU-2).
//!
//! ```text
//!   writer: publish(new) ──► call(free old) / synchronize ──► grace period N ──► callbacks
//!                                                       ▲
//!   CPU k:  ... rcu_read_lock ── reads, IPIs ── rcu_read_unlock ... context switch (QS) ──┘
//! ```
//!
//! Read-side sections are the classic non-preemptible kind: a CPU inside one neither context
//! switches nor reports a quiescent state, and a section may span simulated time (a reader
//! that sends IPIs one after the other holds the map it read until the last is sent and
//! acknowledged). A grace period started at time *t* waits for every CPU RCU watches (the
//! CPUs that are up) to pass a quiescent state after *t* — a context switch, the idle loop,
//! or a tick in user mode; CPUs idle when it starts are in an extended quiescent state and
//! are not waited for. Callbacks queued while a grace period runs wait for the next one,
//! because the running one may have started before their object was unpublished.

use sim_core::{SimDuration, SimTime};

use crate::cpumask::{CpuMask, LogicalCpu};
use crate::event::OsEvent;

/// What runs when a grace period has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callback {
    /// Free version `n` of the CPU maps.
    FreeMaps(u64),
    /// Wake hot-plug operation `op` waiting in `synchronize`.
    Wake(u32),
}

/// A grace period in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracePeriod {
    /// Its number.
    pub seq: u64,
    /// When it started.
    pub start: SimTime,
    /// CPUs that have not passed a quiescent state yet.
    pub pending: CpuMask,
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RcuStats {
    /// Grace periods completed.
    pub grace_periods: u64,
    /// Their total length, ns.
    pub total_ns: u64,
    /// The longest, ns.
    pub max_ns: u64,
    /// Read-side sections entered.
    pub readers: u64,
    /// Quiescent states that counted for a grace period.
    pub quiescent_states: u64,
    /// Callbacks run.
    pub callbacks: u64,
}

/// The RCU state.
#[derive(Clone, Debug)]
pub struct Rcu {
    watched: CpuMask,
    depth: Vec<u32>,
    completed: u64,
    gp: Option<GracePeriod>,
    callbacks: Vec<(u64, Callback)>,
    stats: RcuStats,
}

impl Rcu {
    /// RCU for `nr_cpus` CPUs, watching none yet.
    pub fn new(nr_cpus: usize) -> Self {
        Rcu {
            watched: CpuMask::new(nr_cpus),
            depth: vec![0; nr_cpus],
            completed: 0,
            gp: None,
            callbacks: Vec::new(),
            stats: RcuStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &RcuStats {
        &self.stats
    }

    /// The grace period in progress.
    pub fn grace_period(&self) -> Option<&GracePeriod> {
        self.gp.as_ref()
    }

    /// Number of the last completed grace period.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// CPUs RCU waits for.
    pub fn watched(&self) -> &CpuMask {
        &self.watched
    }

    /// Whether `cpu` is inside a read-side section.
    pub fn in_reader(&self, cpu: LogicalCpu) -> bool {
        self.depth.get(cpu.index()).is_some_and(|d| *d > 0)
    }

    /// `rcu_read_lock` on `cpu`.
    pub fn read_lock(&mut self, cpu: LogicalCpu) {
        if let Some(d) = self.depth.get_mut(cpu.index()) {
            *d += 1;
            self.stats.readers += 1;
        }
    }

    /// `rcu_read_unlock` on `cpu`; returns whether it was inside a section.
    pub fn read_unlock(&mut self, cpu: LogicalCpu) -> bool {
        match self.depth.get_mut(cpu.index()) {
            Some(d) if *d > 0 => {
                *d -= 1;
                true
            }
            Some(_) | None => false,
        }
    }

    /// `cpu` starts (true) or stops (false) taking part; a CPU that stops no longer holds
    /// up the grace period in progress. Returns the callbacks that became ready.
    pub fn set_watched(
        &mut self,
        now: SimTime,
        cpu: LogicalCpu,
        on: bool,
        idle: &CpuMask,
        out: &mut Vec<(SimTime, OsEvent)>,
    ) -> Vec<Callback> {
        out.push((now, OsEvent::RcuCpu { cpu, online: on }));
        if on {
            self.watched.set(cpu);
            return Vec::new();
        }
        self.watched.clear(cpu);
        let done = match &mut self.gp {
            Some(gp) => {
                gp.pending.clear(cpu);
                gp.pending.is_empty()
            }
            None => false,
        };
        if done {
            self.complete(now, idle, out)
        } else {
            Vec::new()
        }
    }

    /// Queues `cb` for after a grace period that starts after now, starting one if none
    /// runs. CPUs in `idle` are in an extended quiescent state. Returns callbacks that became
    /// ready (when no CPU needs to be waited for).
    pub fn call(
        &mut self,
        now: SimTime,
        cb: Callback,
        idle: &CpuMask,
        out: &mut Vec<(SimTime, OsEvent)>,
    ) -> Vec<Callback> {
        let need = match &self.gp {
            Some(gp) => gp.seq + 1,
            None => self.completed + 1,
        };
        self.callbacks.push((need, cb));
        if self.gp.is_none() {
            self.start(now, idle, out)
        } else {
            Vec::new()
        }
    }

    fn start(
        &mut self,
        now: SimTime,
        idle: &CpuMask,
        out: &mut Vec<(SimTime, OsEvent)>,
    ) -> Vec<Callback> {
        let seq = self.completed + 1;
        let mut pending = self.watched.clone();
        for c in self.watched.iter() {
            if idle.contains(c) && !self.in_reader(c) {
                pending.clear(c);
            }
        }
        out.push((
            now,
            OsEvent::GpStart {
                seq,
                waiting: pending.clone(),
            },
        ));
        let empty = pending.is_empty();
        self.gp = Some(GracePeriod {
            seq,
            start: now,
            pending,
        });
        if empty {
            self.complete(now, idle, out)
        } else {
            Vec::new()
        }
    }

    /// `cpu` passed a quiescent state (ignored inside a read-side section). Returns the
    /// callbacks that became ready.
    pub fn quiescent(
        &mut self,
        now: SimTime,
        cpu: LogicalCpu,
        idle: &CpuMask,
        out: &mut Vec<(SimTime, OsEvent)>,
    ) -> Vec<Callback> {
        if self.in_reader(cpu) {
            return Vec::new();
        }
        let done = match &mut self.gp {
            Some(gp) if gp.pending.contains(cpu) => {
                gp.pending.clear(cpu);
                self.stats.quiescent_states += 1;
                out.push((now, OsEvent::QuiescentState { cpu, seq: gp.seq }));
                gp.pending.is_empty()
            }
            Some(_) | None => false,
        };
        if done {
            self.complete(now, idle, out)
        } else {
            Vec::new()
        }
    }

    fn complete(
        &mut self,
        now: SimTime,
        idle: &CpuMask,
        out: &mut Vec<(SimTime, OsEvent)>,
    ) -> Vec<Callback> {
        let Some(gp) = self.gp.take() else {
            return Vec::new();
        };
        let duration = now - gp.start;
        self.completed = gp.seq;
        self.stats.grace_periods += 1;
        self.stats.total_ns += duration.as_nanos();
        self.stats.max_ns = self.stats.max_ns.max(duration.as_nanos());
        out.push((
            now,
            OsEvent::GpEnd {
                seq: gp.seq,
                duration,
            },
        ));
        let (ready, rest): (Vec<_>, Vec<_>) = self
            .callbacks
            .drain(..)
            .partition(|(need, _)| *need <= gp.seq);
        self.callbacks = rest;
        self.stats.callbacks += ready.len() as u64;
        let mut ready: Vec<Callback> = ready.into_iter().map(|(_, cb)| cb).collect();
        if !self.callbacks.is_empty() {
            ready.extend(self.start(now, idle, out));
        }
        ready
    }

    /// Length of the grace period in progress so far.
    pub fn running_for(&self, now: SimTime) -> Option<SimDuration> {
        self.gp.as_ref().map(|g| now - g.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ns: u64) -> SimTime {
        SimTime::from_nanos(ns)
    }

    fn rcu(n: u32) -> (Rcu, CpuMask) {
        let mut r = Rcu::new(8);
        let mut out = Vec::new();
        let idle = CpuMask::new(8);
        for c in 0..n {
            r.set_watched(t(0), LogicalCpu(c), true, &idle, &mut out);
        }
        (r, idle)
    }

    #[test]
    fn grace_period_waits_for_every_watched_cpu() {
        let (mut r, idle) = rcu(3);
        let mut out = Vec::new();
        assert!(
            r.call(t(10), Callback::FreeMaps(1), &idle, &mut out)
                .is_empty()
        );
        assert!(
            r.quiescent(t(11), LogicalCpu(0), &idle, &mut out)
                .is_empty()
        );
        assert!(
            r.quiescent(t(12), LogicalCpu(1), &idle, &mut out)
                .is_empty()
        );
        let ready = r.quiescent(t(13), LogicalCpu(2), &idle, &mut out);
        assert_eq!(ready, vec![Callback::FreeMaps(1)]);
        assert_eq!(r.completed(), 1);
        assert_eq!(r.stats().max_ns, 3);
    }

    #[test]
    fn a_reader_holds_up_the_grace_period() {
        let (mut r, idle) = rcu(2);
        let mut out = Vec::new();
        r.read_lock(LogicalCpu(1));
        r.call(t(10), Callback::Wake(7), &idle, &mut out);
        r.quiescent(t(11), LogicalCpu(0), &idle, &mut out);
        assert!(
            r.quiescent(t(12), LogicalCpu(1), &idle, &mut out)
                .is_empty(),
            "inside a section: no quiescent state"
        );
        assert!(r.read_unlock(LogicalCpu(1)));
        assert_eq!(
            r.quiescent(t(20), LogicalCpu(1), &idle, &mut out),
            vec![Callback::Wake(7)]
        );
    }

    #[test]
    fn callbacks_queued_during_a_grace_period_wait_for_the_next() {
        let (mut r, idle) = rcu(2);
        let mut out = Vec::new();
        r.call(t(1), Callback::FreeMaps(1), &idle, &mut out);
        r.call(t(2), Callback::FreeMaps(2), &idle, &mut out);
        r.quiescent(t(3), LogicalCpu(0), &idle, &mut out);
        let first = r.quiescent(t(4), LogicalCpu(1), &idle, &mut out);
        assert_eq!(first, vec![Callback::FreeMaps(1)]);
        assert!(r.grace_period().is_some(), "the next one started at once");
        r.quiescent(t(5), LogicalCpu(0), &idle, &mut out);
        assert_eq!(
            r.quiescent(t(6), LogicalCpu(1), &idle, &mut out),
            vec![Callback::FreeMaps(2)]
        );
    }

    #[test]
    fn idle_cpus_and_leaving_cpus_are_not_waited_for() {
        let (mut r, mut idle) = rcu(3);
        let mut out = Vec::new();
        idle.set(LogicalCpu(2));
        r.call(t(1), Callback::FreeMaps(1), &idle, &mut out);
        r.quiescent(t(2), LogicalCpu(0), &idle, &mut out);
        let ready = r.set_watched(t(3), LogicalCpu(1), false, &idle, &mut out);
        assert_eq!(ready, vec![Callback::FreeMaps(1)]);
    }
}
