//! The CPU maps (online, active) published through RCU: readers, grace periods, callbacks.

use super::{CpuMaps, MAPS_BYTES, MapsObj, Os, POISON};
use crate::cpumask::{CpuMask, LogicalCpu};
use crate::event::OsEvent;
use crate::hotplug::CpuFlow;
use crate::hw::Cx;
use crate::hw::{load, store};
use crate::mm::kernel::Mm;
use crate::rcu::Callback;
use sim_core::SimTime;

impl Os {
    // ------------------------------------------------------------------ RCU

    /// Words of one mask in a CPU-maps object.
    fn mask_words(&self) -> u64 {
        self.nr.div_ceil(64) as u64
    }

    /// `rcu_read_lock` and `rcu_dereference` of the CPU maps on `c`: the reader loads the
    /// published pointer, then the object's header and both masks, through the machine.
    /// What it then does (which CPUs it sends to, moves to, picks) follows the bits it
    /// loaded ([`Os::loaded_maps`]), whatever the object held. Returns the reader's handle:
    /// its CPU and how deep it is nested there (readers on a CPU end innermost first).
    pub(crate) fn reader_begin(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        purpose: &'static str,
        cx: &mut Cx<'_>,
    ) -> u64 {
        let hw = self.hw(c);
        self.rcu.read_lock(c);
        let mut addr = load(cx, t, hw, self.maps_ptr);
        if self.has_defect(crate::config::OsDefect::RcuReaderKeepsStalePointer)
            && self.booted_at.is_some()
        {
            // The defect: once boot is over, the CPU keeps the pointer its first reader
            // loaded and never loads the published one again.
            addr = *self.stale_maps.entry(c).or_insert(addr);
        }
        let header = load(cx, t, hw, addr);
        let w = self.mask_words();
        let mut maps = CpuMaps {
            online: CpuMask::new(self.nr),
            active: CpuMask::new(self.nr),
        };
        for k in 0..w {
            let online = load(cx, t, hw, addr + 8 + 8 * k);
            let active = load(cx, t, hw, addr + 8 + 8 * (w + k));
            maps.online.set_word(k as usize, online);
            maps.active.set_word(k as usize, active);
        }
        let open = &mut self.derefs[c.index()];
        let handle = u64::from(c.0) << 32 | open.len() as u64;
        open.push((addr, maps));
        self.emit(
            *t,
            OsEvent::RcuLock {
                cpu: c,
                addr,
                loaded: header,
                purpose,
            },
        );
        handle
    }

    /// The reader on `c` (handle `v`) acts on `about`: it loads the word holding `about`'s
    /// online bit again, as the code that acts on it does.
    pub(crate) fn reader_use(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        v: u64,
        about: LogicalCpu,
        cx: &mut Cx<'_>,
    ) {
        let Some(addr) = self.deref(v).map(|d| d.0) else {
            return;
        };
        let bits = load(cx, t, self.hw(c), addr + 8 + 8 * u64::from(about.0 / 64));
        self.emit(
            *t,
            OsEvent::RcuUse {
                cpu: c,
                addr,
                about,
                bits,
            },
        );
    }

    /// `rcu_read_unlock` on `c`: its innermost reader's handle is gone.
    pub(crate) fn reader_end(&mut self, t: SimTime, c: LogicalCpu) {
        if self.rcu.read_unlock(c) {
            self.derefs[c.index()].pop();
            self.emit(t, OsEvent::RcuUnlock { cpu: c });
        }
    }

    /// Publishes a new version of the CPU maps: `by` writes the object (version, online
    /// mask, active mask) to kernel memory and then the pointer readers load
    /// (`rcu_assign_pointer`). Returns the old version, which is still live until freed.
    pub(crate) fn publish_maps(
        &mut self,
        t: &mut SimTime,
        by: LogicalCpu,
        maps: CpuMaps,
        cx: &mut Cx<'_>,
    ) -> Result<u64, crate::mm::bootmem::OutOfMemory> {
        let node = self.pcpu[by.index()].node;
        if self.maps_ptr == 0 {
            // The pointer itself, a kernel word allocated with the first version.
            self.maps_ptr = Mm::kmalloc(self, node, 64, 64)?;
        }
        let addr = Mm::kmalloc(self, node, MAPS_BYTES, MAPS_BYTES)?;
        let v = self.next_maps;
        self.next_maps += 1;
        let hw = self.hw(by);
        store(cx, t, hw, addr, v);
        let w = self.mask_words();
        for k in 0..w {
            store(cx, t, hw, addr + 8 + 8 * k, maps.online.word(k as usize));
            store(
                cx,
                t,
                hw,
                addr + 8 + 8 * (w + k),
                maps.active.word(k as usize),
            );
        }
        store(cx, t, hw, self.maps_ptr, addr);
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
                addr,
                online: maps.online,
                active: maps.active,
                by,
            },
        );
        Ok(old)
    }

    /// Frees version `v` of the maps: `by` poisons every word of it, as SLUB's
    /// `POISON_FREE` does, and gives the memory back.
    pub(crate) fn free_maps(&mut self, t: &mut SimTime, v: u64, by: LogicalCpu, cx: &mut Cx<'_>) {
        // Never the published version (the defect free_published_maps has no such guard).
        if v == self.maps_cur && !self.has_defect(crate::config::OsDefect::FreePublishedMaps) {
            return;
        }
        if let Some(o) = self.maps.remove(&v) {
            let hw = self.hw(by);
            for k in 0..1 + 2 * self.mask_words() {
                store(cx, t, hw, o.addr + 8 * k, POISON);
            }
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
