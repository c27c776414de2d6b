//! The CPU maps (online, active) published through RCU: readers, grace periods, callbacks.

use super::{CpuMaps, MAPS_BYTES, MapsObj, Os, POISON};
use crate::cpumask::LogicalCpu;
use crate::event::OsEvent;
use crate::hotplug::CpuFlow;
use crate::hw::Cx;
use crate::hw::{load, store};
use crate::mm::kernel::Mm;
use crate::rcu::Callback;
use sim_core::SimTime;

impl Os {
    // ------------------------------------------------------------------ RCU

    /// `rcu_read_lock` and `rcu_dereference` of the CPU maps on `c`: the reader loads the
    /// object's header through the machine. Returns the version it holds.
    pub(crate) fn reader_begin(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        purpose: &'static str,
        cx: &mut Cx<'_>,
    ) -> u64 {
        let mut v = self.maps_cur;
        if self.has_defect(crate::config::OsDefect::RcuReaderKeepsStalePointer)
            && self.booted_at.is_some()
        {
            // The defect: once boot is over, the CPU keeps the pointer its first reader
            // loaded and never loads the published one again.
            v = *self.stale_maps.entry(c).or_insert(v);
        }
        self.rcu.read_lock(c);
        if let Some(addr) = self.maps.get(&v).map(|o| o.addr) {
            load(cx, t, self.hw(c), addr);
        }
        self.emit(
            *t,
            OsEvent::RcuLock {
                cpu: c,
                version: v,
                purpose,
            },
        );
        v
    }

    /// The reader on `c` acts on what version `v` says about `about` (reads its bit).
    pub(crate) fn reader_use(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        v: u64,
        about: LogicalCpu,
        cx: &mut Cx<'_>,
    ) {
        if let Some(addr) = self.maps.get(&v).map(|o| o.addr) {
            load(cx, t, self.hw(c), addr + 8 + 8 * u64::from(about.0 / 64));
        }
        self.emit(
            *t,
            OsEvent::RcuUse {
                cpu: c,
                version: v,
                about,
            },
        );
    }

    /// `rcu_read_unlock` on `c`.
    pub(crate) fn reader_end(&mut self, t: SimTime, c: LogicalCpu) {
        if self.rcu.read_unlock(c) {
            self.emit(t, OsEvent::RcuUnlock { cpu: c });
        }
    }

    /// Publishes a new version of the CPU maps (written to kernel memory by `by`); returns
    /// the old version, which is still live until freed.
    pub(crate) fn publish_maps(
        &mut self,
        t: &mut SimTime,
        by: LogicalCpu,
        maps: CpuMaps,
        cx: &mut Cx<'_>,
    ) -> Result<u64, crate::mm::bootmem::OutOfMemory> {
        let node = self.pcpu[by.index()].node;
        let addr = Mm::kmalloc(self, node, MAPS_BYTES, MAPS_BYTES)?;
        let v = self.next_maps;
        self.next_maps += 1;
        let hw = self.hw(by);
        store(cx, t, hw, addr, v);
        let words = self.nr.div_ceil(64).min(7) as u64;
        for w in 0..words {
            let bits = maps
                .online
                .iter()
                .filter(|c| u64::from(c.0) / 64 == w)
                .fold(0u64, |acc, c| acc | 1 << (c.0 % 64));
            store(cx, t, hw, addr + 8 + 8 * w, bits);
        }
        let old = self.maps_cur;
        self.maps.insert(
            v,
            MapsObj {
                maps: maps.clone(),
                addr,
            },
        );
        self.maps_cur = v;
        self.stats.maps_published += 1;
        self.emit(
            *t,
            OsEvent::MapsPublished {
                version: v,
                online: maps.online,
                active: maps.active,
                by,
            },
        );
        Ok(old)
    }

    /// Frees version `v` of the maps (`by` poisons it).
    pub(crate) fn free_maps(&mut self, t: &mut SimTime, v: u64, by: LogicalCpu, cx: &mut Cx<'_>) {
        if v == self.maps_cur {
            return;
        }
        if let Some(o) = self.maps.remove(&v) {
            store(cx, t, self.hw(by), o.addr, POISON);
            self.mem.free(o.addr, MAPS_BYTES);
            self.emit(*t, OsEvent::MapsFreed { version: v, by });
        }
    }

    /// Runs RCU callbacks that became ready (on `c`).
    pub(crate) fn run_callbacks(
        &mut self,
        t: SimTime,
        c: LogicalCpu,
        cbs: Vec<Callback>,
        cx: &mut Cx<'_>,
    ) {
        let mut t = t;
        for cb in cbs {
            match cb {
                Callback::FreeMaps(v) => {
                    // Callbacks run on a CPU that is up (the one that ended the grace period,
                    // or the boot CPU when the ending one is going away).
                    let by = if self.hw_running(c, cx.p) {
                        c
                    } else {
                        self.any_running_cpu(cx.p)
                    };
                    self.free_maps(&mut t, v, by, cx);
                }
                Callback::Wake(op) => CpuFlow::hp_resume(self, t, op),
            }
        }
    }

    /// `c` passed a quiescent state.
    pub(crate) fn rcu_qs(&mut self, t: SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        if self.rcu.grace_period().is_none() {
            return;
        }
        let idle = self.idle_mask();
        let mut ev = Vec::new();
        let cbs = self.rcu.quiescent(t, c, &idle, &mut ev);
        self.events.extend(ev);
        self.run_callbacks(t, c, cbs, cx);
    }

    /// Queues `cb` after a grace period.
    pub(crate) fn call_rcu(&mut self, t: SimTime, c: LogicalCpu, cb: Callback, cx: &mut Cx<'_>) {
        let idle = self.idle_mask();
        let mut ev = Vec::new();
        let cbs = self.rcu.call(t, cb, &idle, &mut ev);
        self.events.extend(ev);
        self.run_callbacks(t, c, cbs, cx);
    }
}
