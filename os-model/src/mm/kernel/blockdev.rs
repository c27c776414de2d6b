//! The block device behind swap and files, and what its transfers end in: page-cache
//! reads, swap-in and swap-out, write-back (the flusher, direct I/O), discarded and freed
//! frames.

use super::Mm;
use crate::cpumask::LogicalCpu;
use crate::event::{MemObj, OsEvent, TaskId};
use crate::hw::Cx;
use crate::kernel::{Os, OsEv};
use crate::memhotplug::MemFlow;
use crate::mm::manager::DISK;
use crate::mm::manager::{Io, SWAP_DEVICE};
use crate::mm::vm::{Pte, VmaKind, file_word};
use crate::mm::{Owner, PteRef, flags};
use sim_core::{PhysAddr, SimTime};

impl Mm {
    /// `device` reads frame `pfn` now (coherent DMA) and keeps what it read.
    pub(crate) fn page_out(
        os: &mut Os,
        now: SimTime,
        device: &sim_core::Entity,
        pfn: u32,
        cx: &mut Cx<'_>,
    ) -> Box<[u64]> {
        let vm = os.vmm();
        let addr = PhysAddr::new(vm.phys.addr(pfn));
        let mut buf = vec![0u64; vm.wpp as usize];
        let _ = cx.p.dma_read(now, device, addr, &mut buf, cx.probe);
        buf.into_boxed_slice()
    }

    /// The disk writes file page `page` into frame `pfn` by DMA.
    pub(crate) fn disk_read(
        os: &mut Os,
        now: SimTime,
        file: u32,
        page: u32,
        pfn: u32,
        cx: &mut Cx<'_>,
    ) {
        let vm = os.vmm();
        let data: Box<[u64]> = match vm.disk.get(&(file, page)) {
            Some(d) => d.clone(),
            None => (0..vm.wpp).map(|w| file_word(file, page, w)).collect(),
        };
        let addr = PhysAddr::new(vm.phys.addr(pfn));
        let _ = cx.p.dma_write(now, &DISK, addr, &data, cx.probe);
    }

    pub(crate) fn start_io(os: &mut Os, now: SimTime, io: Io) {
        let lat = match io {
            Io::SwapIn { .. } | Io::SwapOut { .. } => os.config().memory.swap_latency,
            Io::FileRead { .. } | Io::Writeback { .. } | Io::DirectWrite { .. } => {
                os.config().memory.disk_latency
            }
        };
        let vm = os.vmm();
        let id = vm.next_io;
        vm.next_io += 1;
        vm.io.insert(id, io);
        let _ = os.post(now + lat, OsEv::Io(id));
    }

    /// A block-device transfer finished: the data moves by DMA, the page is mapped and its
    /// waiters woken.
    pub(crate) fn io_done(os: &mut Os, now: SimTime, id: u64, cx: &mut Cx<'_>) {
        let Some(io) = os.vmm().io.remove(&id) else {
            return;
        };
        let c = os.any_running_cpu(cx.p);
        let mut t = now;
        match io {
            Io::SwapIn { pfn, slot, mm, vpn } => {
                let vm = os.vmm();
                let data: Option<Box<[u64]>> = vm.swap.read(slot).map(Into::into);
                let addr = PhysAddr::new(vm.phys.addr(pfn));
                if let Some(d) = data {
                    let _ = cx.p.dma_write(now, &SWAP_DEVICE, addr, &d, cx.probe);
                }
                os.vmm().swap.release(slot);
                let set = flags::LRU | flags::UPTODATE | flags::DIRTY | flags::REFERENCED;
                let at = PteRef { mm, vpn };
                Mm::map_read_page(os, &mut t, c, pfn, flags::SWAPCACHE, set, at, cx);
            }
            Io::FileRead {
                pfn,
                file,
                page,
                mm,
                vpn,
            } => {
                Mm::disk_read(os, now, file, page, pfn, cx);
                let set = flags::LRU | flags::UPTODATE | flags::REFERENCED;
                let at = PteRef { mm, vpn };
                Mm::map_read_page(os, &mut t, c, pfn, 0, set, at, cx);
            }
            Io::SwapOut { pfn, slot } => {
                let vm = os.vmm();
                vm.swap_cache.remove(&slot);
                vm.phys.map.clear(pfn, flags::WRITEBACK | flags::SWAPCACHE);
                vm.phys.map.unpin(pfn);
                Mm::free_frame(os, t, pfn, 0);
                // A task that faulted on the swap entry meanwhile reads the slot now.
                Mm::wake_page(os, &mut t, c, pfn, cx);
            }
            Io::Writeback { pfn, file, page } => {
                // The disk reads the page now (DMA) and keeps it.
                let data = Mm::page_out(os, now, &DISK, pfn, cx);
                let vm = os.vmm();
                vm.disk.insert((file, page), data);
                vm.stats.writebacks += 1;
                if vm.phys.map.owner(pfn) == (Owner::File { file, page }) {
                    vm.phys.map.clear(pfn, flags::WRITEBACK | flags::PRIVATE);
                    vm.phys.map.unpin(pfn);
                } else {
                    // The page moved or went away while the device still had it.
                    vm.stats.stale_io += 1;
                }
            }
            Io::DirectWrite { pfn } => {
                Mm::page_out(os, now, &DISK, pfn, cx);
                os.vmm().phys.map.unpin(pfn);
            }
        }
    }

    /// Drops the reference a discard held on `pfn` and frees it.
    pub(crate) fn free_discarded(os: &mut Os, t: SimTime, pfn: u32) {
        let vm = os.vmm();
        let i = pfn as usize;
        vm.phys.map.unpin(i as u32);
        Mm::free_frame(os, t, pfn, 0);
    }

    /// Frees `1 << order` frames at `pfn`. The event says what the kernel's free-time check
    /// would find wrong: a frame still mapped, locked, under writeback or pinned for DMA.
    pub(crate) fn free_frame(os: &mut Os, t: SimTime, pfn: u32, order: u8) {
        let vm = os.vmm();
        let mut mapped = 0u32;
        let mut busy = 0u8;
        for f in pfn..pfn + (1 << order) {
            let i = f as usize;
            mapped += vm.phys.map.rmap(i as u32).len() as u32;
            let fl = vm.phys.map.flags(i as u32);
            if fl & flags::LOCKED != 0 {
                busy |= crate::mm::page::busy::LOCKED;
            }
            if fl & flags::WRITEBACK != 0 {
                busy |= crate::mm::page::busy::WRITEBACK;
            }
            if vm.phys.map.pins(i as u32) > 0 {
                busy |= crate::mm::page::busy::PINNED;
            }
        }
        let owner = vm.phys.map.owner(pfn);
        if mapped > 0 || busy != 0 {
            vm.stats.bad_frees += 1;
        }
        vm.phys.free(pfn, order);
        os.emit(
            t,
            OsEvent::PageFreed {
                pfn,
                order,
                mapped,
                busy,
                owner,
            },
        );
    }

    /// Task `tid` on `c` discards one of its private anonymous pages (chosen at random; not
    /// mlocked, not hugetlb, mapped and not busy): its PTE is cleared and the local TLB entry
    /// dropped. Returns the frame, which the caller frees once the TLB shootdown is over.
    pub(crate) fn discard_page(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        mm: u32,
        cx: &mut Cx<'_>,
    ) -> Option<u32> {
        let anon = os.vm.as_ref()?.spaces[mm as usize]
            .vmas
            .iter()
            .find(|v| v.kind == VmaKind::Anon)
            .copied()?;
        let k = os.tasks[tid.0 as usize].rng.index(anon.pages as usize) as u32;
        let vpn = anon.start + k;
        let vm = os.vmm();
        let Pte::Present { pfn } = vm.spaces[mm as usize].ptes[vpn as usize] else {
            return None;
        };
        let i = pfn as usize;
        if i >= vm.phys.map.len()
            || vm.phys.map.flags(i as u32) & (flags::LOCKED | flags::WRITEBACK) != 0
            || vm.phys.map.pins(i as u32) > 0
        {
            return None;
        }
        vm.phys
            .map
            .retain_rmap(i as u32, |r| !(r.mm == mm && r.vpn == vpn));
        // Off the LRU, held by the shootdown until it frees it: nobody migrates it meanwhile.
        vm.phys.map.clear(pfn, flags::LRU);
        vm.phys.map.pin(i as u32);
        vm.stats.discards += 1;
        Mm::write_pte(os, t, c, PteRef { mm, vpn }, Pte::None, cx);
        os.vmm().tlbs[c.index()].invalidate(mm, vpn);
        os.emit(
            *t,
            OsEvent::PageDiscarded {
                obj: MemObj::Anon(mm),
                page: vpn,
            },
        );
        Some(pfn)
    }

    /// The disk reads file page `pfn` now (synchronous writeback under the page lock): its
    /// contents go to the disk, the page is clean and has no private data left.
    pub(crate) fn write_back_now(os: &mut Os, now: SimTime, pfn: u32, cx: &mut Cx<'_>) {
        let vm = os.vmm();
        let Owner::File { file, page } = vm.phys.map.owner(pfn) else {
            return;
        };
        let data = Mm::page_out(os, now, &DISK, pfn, cx);
        let vm = os.vmm();
        vm.disk.insert((file, page), data);
        vm.stats.writebacks += 1;
        vm.phys.map.clear(pfn, flags::DIRTY | flags::PRIVATE);
    }

    /// A task writes anonymous page `page` of `mm` to the disk with direct I/O: the page
    /// is pinned until the disk has read it by DMA.
    pub(crate) fn direct_io(os: &mut Os, now: SimTime, mm: u32, page: u32) {
        let vm = os.vmm();
        let Some(Pte::Present { pfn }) = vm.spaces[mm as usize].ptes.get(page as usize).copied()
        else {
            return;
        };
        if (pfn as usize) >= vm.phys.map.len() {
            return;
        }
        vm.phys.map.pin(pfn);
        vm.stats.direct_ios += 1;
        Mm::start_io(os, now, Io::DirectWrite { pfn });
    }

    /// The flusher: every `writeback_interval`, starts writeback of the oldest dirty file
    /// pages and clears every page's referenced bit (what is not touched again is cold).
    pub(crate) fn flusher(os: &mut Os, now: SimTime, cx: &mut Cx<'_>) {
        let every = os.config().memory.writeback_interval;
        let batch = os.config().memory.writeback_batch as usize;
        let Some(vm) = os.vm.as_mut() else {
            return;
        };
        if now < vm.next_flush {
            return;
        }
        vm.next_flush = now + every;
        vm.phys.map.clear_all(flags::REFERENCED);
        let mut dirty = Vec::new();
        // Round robin over the files, starting where the last pass stopped.
        let n = vm.files.len();
        let start = vm.flush_cursor % n.max(1);
        vm.flush_cursor = vm.flush_cursor.wrapping_add(1);
        for k in 0..n {
            let file = &vm.files[(start + k) % n];
            if !file.fs.has_backing() {
                continue;
            }
            for pfn in file.cache.iter().flatten() {
                let fl = vm.phys.map.flags(*pfn);
                if fl & flags::DIRTY != 0 && fl & (flags::WRITEBACK | flags::LOCKED) == 0 {
                    dirty.push(*pfn);
                }
            }
        }
        for pfn in dirty.into_iter().take(batch) {
            MemFlow::start_writeback(os, now, pfn, cx);
        }
    }
}
