//! The hardware page walk on a TLB miss and the page faults behind it: swap-in, file read,
//! waiting on a page locked under I/O or migration.

use super::Mm;
use crate::cpumask::LogicalCpu;
use crate::event::{EnqueueWhy, OsEvent, TaskId};
use crate::hw::Cx;
use crate::hw::load;
use crate::kernel::Os;
use crate::mm::manager::Io;
use crate::mm::vm::{Pte, VmaKind};
use crate::mm::{Gfp, Owner, PteRef, flags};
use crate::sched::TaskState;
use sim_core::SimTime;

impl Mm {
    /// What a task's access to `vpn` of `mm` finds, as CPU `c`: the frame, or the frame it
    /// must wait for (migration, I/O).
    pub(crate) fn translate(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        at: PteRef,
        cx: &mut Cx<'_>,
    ) -> Result<u32, u32> {
        let PteRef { mm, vpn } = at;
        let hw = os.hw(c);
        let vm = os.vmm();
        if let Some(pfn) = vm.tlbs[c.index()].lookup(mm, vpn) {
            vm.stats.tlb_hits += 1;
            return Ok(pfn);
        }
        vm.stats.page_walks += 1;
        vm.spaces[mm as usize].note_cpu(c.0);
        let Some((_, addr)) = vm.pte_at(&vm.spaces[mm as usize], vpn) else {
            return Err(u32::MAX);
        };
        let word = load(cx, t, hw, addr);
        match Pte::decode(word) {
            Pte::Present { pfn } => {
                os.vmm().tlbs[c.index()].fill(mm, vpn, pfn);
                Ok(pfn)
            }
            Pte::Migration { pfn } => {
                os.vmm().stats.migration_waits += 1;
                Err(pfn)
            }
            Pte::Swap { slot } => Err(Mm::swap_in(os, t, c, tid, mm, vpn, slot, cx)),
            Pte::FileHole => Mm::file_fault(os, t, c, mm, vpn, cx),
            Pte::None => {
                // A discarded page touched again: a cleared page on this CPU's node.
                let node = os.pcpu[c.index()].node;
                os.vmm().stats.zero_fills += 1;
                let owner = Owner::Anon { mm, page: vpn };
                match os.vmm().phys.alloc(node, 0, Gfp::Movable, owner) {
                    Ok(pfn) => {
                        Mm::clear_page(os, t, c, pfn, cx);
                        let vm = os.vmm();
                        vm.phys.map.set(pfn, flags::LRU | flags::UPTODATE);
                        vm.phys.map.add_rmap(pfn, PteRef { mm, vpn });
                        Mm::write_pte(os, t, c, PteRef { mm, vpn }, Pte::Present { pfn }, cx);
                        os.vmm().tlbs[c.index()].fill(mm, vpn, pfn);
                        Ok(pfn)
                    }
                    Err(_) => Err(u32::MAX),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn swap_in(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        _tid: TaskId,
        mm: u32,
        vpn: u32,
        slot: u32,
        cx: &mut Cx<'_>,
    ) -> u32 {
        // A fault on an entry already being read in waits for that read.
        let pending = os.vmm().io.values().find_map(|io| match *io {
            Io::SwapIn {
                pfn, mm: m, vpn: v, ..
            } if m == mm && v == vpn => Some(pfn),
            Io::SwapIn { .. }
            | Io::FileRead { .. }
            | Io::SwapOut { .. }
            | Io::Writeback { .. }
            | Io::DirectWrite { .. } => None,
        });
        if let Some(pfn) = pending {
            return pfn;
        }
        // The page is still in the swap cache, on its way to the device: wait for it.
        if let Some(&pfn) = os.vmm().swap_cache.get(&slot) {
            os.vmm().stats.swap_cache_waits += 1;
            return pfn;
        }
        // A fault allocates on the node of the CPU taking it.
        let node = os.pcpu[c.index()].node;
        let owner = Owner::Anon { mm, page: vpn };
        let Ok(pfn) = os.vmm().phys.alloc(node, 0, Gfp::Movable, owner) else {
            return u32::MAX;
        };
        let vm = os.vmm();
        vm.phys.map.set(pfn, flags::LOCKED | flags::SWAPCACHE);
        vm.phys.map.pin(pfn);
        vm.stats.swap_ins += 1;
        Mm::start_io(os, t, c, Io::SwapIn { pfn, slot, mm, vpn }, cx);
        pfn
    }

    pub(crate) fn file_fault(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        mm: u32,
        vpn: u32,
        cx: &mut Cx<'_>,
    ) -> Result<u32, u32> {
        let vm = os.vmm();
        let Some(VmaKind::File { file }) = vm.spaces[mm as usize].vma_of(vpn).map(|v| v.kind)
        else {
            return Err(u32::MAX);
        };
        let start = vm.spaces[mm as usize].vma_of(vpn).map_or(0, |v| v.start);
        let page = vpn - start;
        if let Some(pfn) = vm.files[file as usize].cache[page as usize] {
            if vm.phys.map.has(pfn, flags::LOCKED) {
                return Err(pfn);
            }
            vm.stats.minor_faults += 1;
            vm.phys.map.add_rmap(pfn, PteRef { mm, vpn });
            Mm::write_pte(os, t, c, PteRef { mm, vpn }, Pte::Present { pfn }, cx);
            os.vmm().tlbs[c.index()].fill(mm, vpn, pfn);
            return Ok(pfn);
        }
        let node = vm.files[file as usize].node;
        let Ok(pfn) = vm
            .phys
            .alloc(node, 0, Gfp::Movable, Owner::File { file, page })
        else {
            return Err(u32::MAX);
        };
        vm.phys.map.set(pfn, flags::LOCKED);
        vm.phys.map.pin(pfn);
        vm.files[file as usize].cache[page as usize] = Some(pfn);
        vm.stats.file_reads += 1;
        let read = Io::FileRead {
            pfn,
            file,
            page,
            mm,
            vpn,
        };
        Mm::start_io(os, t, c, read, cx);
        Err(pfn)
    }

    /// A page whose data a device has just read in: unlocked (and `clear` cleared), `set`
    /// set, unpinned, mapped at `at` (reverse map and PTE), its waiters woken.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn map_read_page(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        pfn: u32,
        clear: u16,
        set: u16,
        at: PteRef,
        cx: &mut Cx<'_>,
    ) {
        let map = &mut os.vmm().phys.map;
        map.clear(pfn, flags::LOCKED | clear);
        map.set(pfn, set);
        map.unpin(pfn);
        map.add_rmap(pfn, at);
        Mm::write_pte(os, t, c, at, Pte::Present { pfn }, cx);
        Mm::wake_page(os, t, c, pfn, cx);
    }

    /// Wakes every task waiting for frame `pfn`; `by` places them (a reader of the CPU
    /// maps, as any wakeup).
    pub(crate) fn wake_page(
        os: &mut Os,
        t: &mut SimTime,
        by: LogicalCpu,
        pfn: u32,
        cx: &mut Cx<'_>,
    ) {
        let Some(list) = os.vmm().waiters.remove(&pfn) else {
            return;
        };
        for tid in list {
            if os.tasks[tid.0 as usize].state != TaskState::Blocked {
                continue;
            }
            let v = os.reader_begin(t, by, "page wakeup", cx);
            if let Some(target) = os.select_task_rq(tid, v, by) {
                os.reader_use(t, by, v, target, cx);
                os.stats.wakeups += 1;
                os.enqueue(*t, tid, target, EnqueueWhy::Wakeup);
                os.kick(target, *t);
            }
            os.reader_end(*t, by);
        }
    }

    /// Puts the running task `tid` to sleep until frame `pfn` is ready.
    pub(crate) fn wait_page(os: &mut Os, t: SimTime, c: LogicalCpu, tid: TaskId, pfn: u32) {
        os.vmm().waiters.entry(pfn).or_default().push(tid);
        os.tasks[tid.0 as usize].state = TaskState::Blocked;
        os.emit(t, OsEvent::Block { task: tid, cpu: c });
    }
}
