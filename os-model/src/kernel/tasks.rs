//! The tick and user tasks: timeslices, memory accesses through the machine, sleep and wakeup.

use super::{Os, OsEv};
use crate::cpumask::LogicalCpu;
use crate::event::{OsEvent, TaskId};
use crate::hw::Cx;
use crate::hw::{load, store};
use crate::irq::CALL_FUNCTION_VECTOR;
use crate::mm::PteRef;
use crate::mm::kernel::Mm;
use crate::sched::{CpuLife, TaskKind, TaskState, Work};
use acpi_model::{Platform, PlatformProbe};
use sim_core::SimTime;

impl Os {
    // ------------------------------------------------------------------ the tick

    pub(super) fn tick(&mut self, now: SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let i = c.index();
        if self.pcpu[i].life != CpuLife::Up || !self.hw_running(c, cx.p) {
            // The local timer of a CPU that is not running does not interrupt it.
            self.pcpu[i].ticking = false;
            return;
        }
        self.pcpu[i].ticks += 1;
        self.stats.ticks += 1;
        let curr = self.pcpu[i].curr;
        let user = curr.is_some_and(|t| self.tasks[t.0 as usize].kind == TaskKind::User);
        let in_kernel = self.pcpu[i].op.is_some() || self.rcu.in_reader(c);
        if (curr.is_none() || user) && !in_kernel {
            self.rcu_qs(now, c, cx);
        }
        let fair = curr.is_some_and(|t| !self.tasks[t.0 as usize].kind.is_stopper());
        if let Some(tid) = curr.filter(|_| fair) {
            let task = &mut self.tasks[tid.0 as usize];
            task.slice = task.slice.saturating_sub(1);
            if task.slice == 0 {
                self.pcpu[i].need_resched = true;
            }
        }
        while let Some(&(when, tid)) = self.pcpu[i].timers.first() {
            if when > now {
                break;
            }
            self.pcpu[i].timers.pop_first();
            self.tasks[tid.0 as usize].state = TaskState::Waking(c);
            self.pcpu[i].work.push_back(Work::Wake(tid));
        }
        let ticks = self.pcpu[i].ticks;
        if self.cfg.balance_ticks > 0
            && ticks % u64::from(self.cfg.balance_ticks) == 0
            && self.cur_maps().active.contains(c)
            && !self.pcpu[i].work.contains(&Work::Balance)
        {
            self.pcpu[i].work.push_back(Work::Balance);
        }
        if !self.pcpu[i].work.is_empty() {
            let k = self.pcpu[i].ksoftirqd;
            self.wake_kthread(now, c, k);
        }
        // The kernel touches its own objects (a slab object per tick).
        if !self.slab_objs.is_empty() {
            let k = (self.pcpu[i].ticks as usize + i) % self.slab_objs.len();
            let a = self.slab_objs[k];
            let mut t = now;
            load(cx, &mut t, self.hw(c), a);
        }
        // The flusher runs on the lowest online CPU.
        if self.cur_maps().online.first() == Some(c) {
            Mm::flusher(self, now, c, cx);
        }
        let _ = self.post(now + self.cfg.tick, OsEv::Tick(c));
        let pc = &self.pcpu[i];
        if pc.need_resched || (pc.curr.is_none() && (!pc.kq.is_empty() || !pc.rq.is_empty())) {
            self.kick(c, now);
        }
    }

    // ------------------------------------------------------------------ user tasks

    pub(super) fn user_burst(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        cx: &mut Cx<'_>,
    ) {
        let hw = self.hw(c);
        let burst = self.cfg.burst as usize;
        let slots = self.cfg.memory.probe_words;
        let ratio = self.cfg.store_ratio;
        let hot = self.cfg.memory.hot_fraction;
        let file_ratio = self.cfg.memory.file_store_ratio;
        let Some(mm) = self.tasks[tid.0 as usize].mm else {
            return;
        };
        let span = self
            .vm
            .as_ref()
            .map_or(0, |vm| vm.spaces[mm as usize].span());
        for _ in 0..burst {
            let (vpn, slot, st) = {
                let task = &mut self.tasks[tid.0 as usize];
                let mut vpn = task.rng.index(span as usize) as u32;
                if hot > 0.0 && task.rng.chance(hot) {
                    // Fold into the hot quarter of its area.
                    if let Some(v) = self
                        .vm
                        .as_ref()
                        .and_then(|vm| vm.spaces[mm as usize].vma_of(vpn).copied())
                    {
                        vpn = v.start + (vpn - v.start) % (v.pages / 4).max(1);
                    }
                }
                let slot = task.rng.index(slots as usize) as u32;
                let file = self.vm.as_ref().is_some_and(|vm| {
                    matches!(
                        vm.spaces[mm as usize].vma_of(vpn).map(|v| v.kind),
                        Some(crate::mm::vm::VmaKind::File { .. })
                    )
                });
                let ratio = if file { file_ratio } else { ratio };
                let st = if task.rng.chance(ratio) {
                    task.stores += 1;
                    Some(u64::from(tid.0) << 40 | task.stores)
                } else {
                    None
                };
                (vpn, slot, st)
            };
            // An address in no area (the alignment gap before a hugetlb area) is not the
            // task's to touch: it would take a SIGSEGV. The worker leaves it alone.
            if self
                .vm
                .as_ref()
                .is_none_or(|vm| vm.spaces[mm as usize].vma_of(vpn).is_none())
            {
                continue;
            }
            let pfn = match Mm::translate(self, t, c, tid, PteRef { mm, vpn }, cx) {
                Ok(pfn) => pfn,
                Err(u32::MAX) => continue,
                Err(wait) => {
                    // A page under migration or I/O: sleep until it is ready.
                    Mm::wait_page(self, *t, c, tid, wait);
                    self.schedule(t, c, cx);
                    return;
                }
            };
            let vm = self.vm.as_mut().expect("user tasks exist after boot");
            let (obj, page) = match vm.spaces[mm as usize]
                .vma_of(vpn)
                .map(|v| (v.kind, v.start))
            {
                Some((crate::mm::vm::VmaKind::File { file }, start)) => {
                    (crate::event::MemObj::File(file), vpn - start)
                }
                Some(_) | None => (crate::event::MemObj::Anon(mm), vpn),
            };
            let word = vm.probe_word(slots, page, slot);
            let addr = vm.phys.addr(pfn) + 8 * u64::from(word);
            if (pfn as usize) < vm.phys.map.len() {
                let buffers = match obj {
                    crate::event::MemObj::File(fi) => vm.files[fi as usize].fs.has_backing(),
                    crate::event::MemObj::Anon(_) => false,
                };
                let f = match (st.is_some(), buffers) {
                    (true, true) => {
                        crate::mm::flags::REFERENCED
                            | crate::mm::flags::DIRTY
                            | crate::mm::flags::PRIVATE
                    }
                    (true, false) => crate::mm::flags::REFERENCED | crate::mm::flags::DIRTY,
                    (false, _) => crate::mm::flags::REFERENCED,
                };
                vm.phys.map.set(pfn, f);
            }
            let value = match st {
                Some(value) => {
                    store(cx, t, hw, addr, value);
                    self.stats.task_stores += 1;
                    value
                }
                None => {
                    self.stats.task_loads += 1;
                    load(cx, t, hw, addr)
                }
            };
            self.emit(
                *t,
                OsEvent::TaskAccess {
                    task: tid,
                    cpu: c,
                    obj,
                    page,
                    slot,
                    word,
                    addr,
                    value,
                    store: st.is_some(),
                },
            );
        }
        let (shootdown, sleep) = {
            let task = &mut self.tasks[tid.0 as usize];
            let shootdown = task.rng.chance(self.cfg.shootdown_chance);
            let sleep = !shootdown && task.rng.chance(self.cfg.sleep_chance);
            task.bursts += 1;
            (shootdown, sleep)
        };
        let dio = self.cfg.memory.direct_io_chance;
        if dio > 0.0 && self.tasks[tid.0 as usize].rng.chance(dio) {
            let pick = self.tasks[tid.0 as usize]
                .rng
                .index(self.cfg.memory.anon_pages.max(1) as usize);
            Mm::direct_io(self, t, c, mm, pick as u32, cx);
        }
        *t += self.cfg.compute;
        if shootdown {
            // madvise(MADV_DONTNEED) of one anonymous page: the PTE is cleared, the TLBs of
            // every other online CPU are shot down, and the frame is freed once all have
            // acknowledged.
            let discarded = Mm::discard_page(self, t, c, tid, mm, cx);
            let v = self.reader_begin(t, c, "tlb shootdown", cx);
            let targets: Vec<LogicalCpu> = self
                .loaded_maps(v)
                .online
                .iter()
                .filter(|&x| x != c)
                .collect();
            if targets.is_empty() {
                self.reader_end(*t, c);
                if let Some(pfn) = discarded {
                    Mm::free_discarded(self, *t, pfn);
                }
            } else {
                self.stats.shootdowns += 1;
                self.start_ipis(c, v, "tlb shootdown", CALL_FUNCTION_VECTOR, targets, true);
                // Only this address space's translations go (flush_tlb_mm).
                if let Some(op) = self.pcpu[c.index()].op.as_mut() {
                    op.asid = Some(mm);
                    op.free_after = discarded;
                }
                if let Some(vm) = self.vm.as_mut() {
                    vm.tlbs[c.index()].flush_asid(mm);
                }
            }
        } else if sleep {
            let until = *t + self.cfg.sleep;
            self.tasks[tid.0 as usize].state = TaskState::Sleeping {
                timer_cpu: c,
                until,
            };
            self.pcpu[c.index()].timers.insert((until, tid));
            self.stats.sleeps += 1;
            self.emit(
                *t,
                OsEvent::Sleep {
                    task: tid,
                    cpu: c,
                    timer_cpu: c,
                    until,
                },
            );
            self.schedule(t, c, cx);
        }
    }

    /// `cpu` flushes every other online CPU's TLB (`flush_tlb_all`), starting now: a
    /// cross-call broadcast to the CPUs of the current online map, one IPI after the other,
    /// inside an RCU read-side section that lasts until every CPU has acknowledged. The
    /// workload does this on its own (`shootdown_chance`); tests call it to place a reader
    /// at a chosen moment.
    pub fn tlb_shootdown(
        &mut self,
        now: SimTime,
        cpu: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<usize, String> {
        let cx = &mut Cx { p, probe };
        let i = cpu.index();
        if i >= self.nr || self.pcpu[i].life != CpuLife::Up || !self.hw_running(cpu, cx.p) {
            return Err(format!("{cpu} is not up"));
        }
        if self.pcpu[i].op.is_some() {
            return Err(format!("{cpu} is already in a kernel operation"));
        }
        let mut t = now.max(self.busy_until[i]);
        let v = self.reader_begin(&mut t, cpu, "tlb shootdown", cx);
        let targets: Vec<LogicalCpu> = self
            .loaded_maps(v)
            .online
            .iter()
            .filter(|&x| x != cpu)
            .collect();
        let n = targets.len();
        if n == 0 {
            self.reader_end(t, cpu);
            return Ok(0);
        }
        self.stats.shootdowns += 1;
        self.start_ipis(cpu, v, "tlb shootdown", CALL_FUNCTION_VECTOR, targets, true);
        self.busy_until[i] = t;
        self.kick(cpu, t);
        Ok(n)
    }
}
