//! The kernel's disk: a storage card found at boot, driven through its block engine, that
//! holds the files and the swap area; and what its transfers end in: page-cache reads,
//! swap-in and swap-out, write-back (the flusher, migration), direct I/O; discarded and freed
//! frames.
//!
//! A transfer is a block command the kernel writes into the card's registers (the card then
//! moves the page by DMA and interrupts); up to the card's queue depth are at the card, the
//! rest wait in the kernel's queue. The completion comes back through the card's interrupt
//! and the driver's bottom half ([`Mm::blk_complete`]). A card that goes away fails every
//! transfer it had: their data did not move.

use super::Mm;
use crate::cpumask::LogicalCpu;
use crate::event::{MemObj, OsEvent, TaskId};
use crate::hw::Cx;
use crate::kernel::{Os, OsError, OsEv};
use crate::memhotplug::MemFlow;
use crate::mm::manager::{Disk, Io};
use crate::mm::vm::{DiskLayout, Pte, SwapMap, VmaKind};
use crate::mm::{Owner, PteRef, flags};
use sim_core::SimTime;
use sim_core::abi::ALL_ONES;
use sim_core::abi::device::{BLK_FAILED, BLK_QUEUE, regs};

impl Mm {
    /// Mounts the kernel's disk at boot, once the driver has brought the cards up: the
    /// storage card in `[os.memory] disk_slot`, else the one in the lowest-numbered slot.
    /// Its block engine is the kernel's from now on (the driver's own sector check stays
    /// off it); the swap area is what fits behind the files. No storage card: no swap, and
    /// a kernel with files cannot boot.
    pub(crate) fn mount_disk(os: &mut Os) -> Result<(), OsError> {
        let mc = &os.config().memory;
        let (want, files, file_pages, swap_slots) =
            (mc.disk_slot, mc.files, mc.file_pages, mc.swap_slots);
        // A card whose interrupt is not routed would never tell of a completion.
        let routed = |k: usize| {
            os.pcihp
                .slots
                .iter()
                .any(|s| s.card == Some(k) && s.irq.is_some())
        };
        let card = os
            .driver
            .cards()
            .iter()
            .enumerate()
            .filter(|&(k, c)| c.active && c.capacity > 0 && routed(k))
            .filter(|(_, c)| want.is_none_or(|s| c.slot.0 == s))
            .min_by_key(|(_, c)| c.slot)
            .map(|(k, c)| (k, c.slot, c.capacity));
        let Some((k, slot, capacity)) = card else {
            if files > 0 {
                return Err(OsError::NoDisk {
                    files,
                    slot: want.map_or_else(|| "any slot".into(), |s| format!("slot {s}")),
                });
            }
            return Ok(());
        };
        let vm = os.vmm();
        let page_bytes = u64::from(vm.wpp) * 8;
        let layout = DiskLayout::new(page_bytes, files, file_pages, swap_slots, capacity).ok_or(
            OsError::DiskTooSmall {
                slot: slot.0,
                capacity,
                files,
                file_pages,
            },
        )?;
        vm.swap = SwapMap::new(layout.swap_slots);
        vm.disk = Some(Disk {
            card: k,
            slot,
            layout,
            gone: false,
            reads: std::collections::VecDeque::new(),
            writes: std::collections::VecDeque::new(),
        });
        os.driver.claim(k);
        Ok(())
    }

    /// Starts transfer `io` as `c`: it goes into the disk's queue and, if the card has room,
    /// to the card. Without a disk (or with one that went away) it fails at once.
    pub(crate) fn start_io(os: &mut Os, t: &mut SimTime, c: LogicalCpu, io: Io, cx: &mut Cx<'_>) {
        let vm = os.vmm();
        // The card's tags are 32 bits: after a wrap, skip the ones still in flight.
        let mut tag = vm.next_io;
        while vm.io.contains_key(&tag) {
            tag = (tag + 1) & 0xFFFF_FFFF;
        }
        vm.next_io = (tag + 1) & 0xFFFF_FFFF;
        let in_flight = vm.io.len();
        vm.io.insert(tag, io);
        match vm.disk.as_mut().filter(|d| !d.gone) {
            Some(d) => {
                if d.at_card(in_flight) >= BLK_QUEUE {
                    vm.stats.disk_queued += 1;
                }
                if io.writes() {
                    d.writes.push_back(tag);
                } else {
                    d.reads.push_back(tag);
                }
                Mm::blk_submit(os, t, c, cx);
            }
            None => {
                let _ = os.post(*t, OsEv::Io(tag));
            }
        }
    }

    /// Hands waiting transfers to the card, as `c`, while its queue has room.
    fn blk_submit(os: &mut Os, t: &mut SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let hw = os.hw(c);
        loop {
            let vm = os.vmm();
            let len = u64::from(vm.wpp) * 8;
            let in_flight = vm.io.len();
            let Some(d) = vm
                .disk
                .as_mut()
                .filter(|d| !d.gone && d.at_card(in_flight) < BLK_QUEUE)
            else {
                return;
            };
            let Some(tag) = d.reads.pop_front().or_else(|| d.writes.pop_front()) else {
                return;
            };
            // Every tag waiting is a transfer in flight (ended transfers leave no tag).
            let io = vm.io[&tag];
            let (card, (write, lba, pfn)) = (d.card, io.transfer(&d.layout));
            let addr = vm.phys.addr(pfn);
            vm.stats.disk_commands += 1;
            os.driver
                .block_command(t, card, hw, (write, lba, addr, len, tag as u32), cx);
            let deadline = *t + os.config().memory.disk_timeout;
            let _ = os.post(deadline, OsEv::IoDeadline(tag));
        }
    }

    /// The completions the disk's card posted (its `BLK_DONE` words, taken in its interrupt
    /// on `c`): each transfer ends, and waiting ones take the room.
    pub(crate) fn blk_complete(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        words: &[u64],
        cx: &mut Cx<'_>,
    ) {
        for &w in words {
            let tag = w & 0xFFFF_FFFF;
            // A transfer that ended already (its card was found gone) has no completion left.
            if !os.vmm().io.contains_key(&tag) {
                continue;
            }
            Mm::io_done(os, t, c, tag, w & BLK_FAILED != 0, cx);
        }
        Mm::blk_submit(os, t, c, cx);
    }

    /// Transfer `tag`'s deadline: if the card has not completed it, the kernel reads the
    /// card's status — all-ones: the card is gone, and every transfer fails — else aborts
    /// every command the card holds: each completes failed (its interrupt brings them), and
    /// no late transfer can touch a frame the kernel has given back since.
    pub(crate) fn io_deadline(os: &mut Os, now: SimTime, tag: u64, cx: &mut Cx<'_>) {
        let Some(vm) = os.vm.as_ref() else {
            return;
        };
        let Some(card) = vm.disk.as_ref().filter(|d| !d.gone).map(|d| d.card) else {
            return;
        };
        if !vm.io.contains_key(&tag) {
            return;
        }
        let c = os.any_running_cpu(cx.p);
        let mut t = now;
        let bar = os.driver.cards()[card].bar;
        if crate::hw::load(cx, &mut t, os.hw(c), bar + regs::STATUS) == ALL_ONES {
            Mm::disk_gone(os, t, card);
            return;
        }
        os.vmm().stats.disk_timeouts += 1;
        os.driver.block_abort(&mut t, card, os.hw(c), cx);
    }

    /// The disk's card (driver index `card`) went away: every transfer it had, and every one
    /// waiting for it, fails now; later ones fail at once.
    pub(crate) fn disk_gone(os: &mut Os, now: SimTime, card: usize) {
        let vm = os.vmm();
        let Some(d) = vm.disk.as_mut().filter(|d| d.card == card && !d.gone) else {
            return;
        };
        d.gone = true;
        d.reads.clear();
        d.writes.clear();
        let tags: Vec<u64> = vm.io.keys().copied().collect();
        for tag in tags {
            let _ = os.post(now, OsEv::Io(tag));
        }
    }

    /// The kernel lets go of its disk, the card with driver index `card`, while it holds
    /// nothing (no files, no page in swap, no transfer): the swap area is switched off.
    pub(crate) fn swap_off(os: &mut Os, card: usize) {
        let vm = os.vmm();
        if vm.disk.as_ref().is_some_and(|d| d.card == card) {
            vm.disk = None;
            vm.swap = SwapMap::new(0);
        }
    }

    /// A transfer that failed without the card (no disk, or its card went away).
    pub(crate) fn io_failed(os: &mut Os, now: SimTime, tag: u64, cx: &mut Cx<'_>) {
        let c = os.any_running_cpu(cx.p);
        let mut t = now;
        Mm::io_done(os, &mut t, c, tag, true, cx);
    }

    /// Transfer `tag` ended (`failed`: its data did not move), seen by `c`: the page is
    /// mapped and its waiters woken, or freed, or clean again.
    pub(crate) fn io_done(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        tag: u64,
        failed: bool,
        cx: &mut Cx<'_>,
    ) {
        let Some(io) = os.vmm().io.remove(&tag) else {
            return;
        };
        if failed {
            os.vmm().stats.io_errors += 1;
        }
        match io {
            Io::SwapIn { pfn, slot, mm, vpn } => {
                os.vmm().swap.release(slot);
                let set = flags::LRU | flags::UPTODATE | flags::DIRTY | flags::REFERENCED;
                let at = PteRef { mm, vpn };
                Mm::map_read_page(os, t, c, pfn, flags::SWAPCACHE, set, at, cx);
            }
            Io::FileRead {
                pfn, file, mm, vpn, ..
            } => {
                let set = flags::LRU | flags::UPTODATE | flags::REFERENCED;
                // A file without backing (tmpfs) has its pages only in memory from now on.
                let set = if os.vmm().files[file as usize].fs.has_backing() {
                    set
                } else {
                    set | flags::DIRTY
                };
                let at = PteRef { mm, vpn };
                Mm::map_read_page(os, t, c, pfn, 0, set, at, cx);
            }
            Io::SwapOut { pfn, slot } => {
                let vm = os.vmm();
                vm.swap_cache.remove(&slot);
                vm.phys.map.clear(pfn, flags::WRITEBACK | flags::SWAPCACHE);
                vm.phys.map.unpin(pfn);
                Mm::free_frame(os, *t, pfn, 0);
                // A task that faulted on the swap entry meanwhile reads the slot now.
                Mm::wake_page(os, t, c, pfn, cx);
            }
            Io::Writeback { pfn, file, page } => {
                let vm = os.vmm();
                vm.stats.writebacks += 1;
                if vm.phys.map.owner(pfn) == (Owner::File { file, page }) {
                    vm.phys.map.clear(pfn, flags::WRITEBACK);
                    vm.phys.map.unpin(pfn);
                    if failed {
                        // Still to be written.
                        vm.phys.map.set(pfn, flags::DIRTY);
                    } else if !vm.phys.map.has(pfn, flags::DIRTY) {
                        // Its private data is on the disk — unless a task stored to it while
                        // the card read it: then it is dirty again and still has some.
                        vm.phys.map.clear(pfn, flags::PRIVATE);
                    }
                } else {
                    // The page moved or went away while the device still had it.
                    vm.stats.stale_io += 1;
                }
            }
            Io::DirectWrite { pfn } => {
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

    /// A task writes anonymous page `page` of `mm` to the disk with direct I/O: the page
    /// is pinned until the disk has read it by DMA.
    pub(crate) fn direct_io(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        mm: u32,
        page: u32,
        cx: &mut Cx<'_>,
    ) {
        let vm = os.vmm();
        // Like a write with `RWF_NOWAIT`: not when the disk is congested.
        let room = vm.disk.as_ref().is_some_and(|d| d.room(vm.io.len()) > 0);
        if !room {
            return;
        }
        let Some(Pte::Present { pfn }) = vm.spaces[mm as usize].ptes.get(page as usize).copied()
        else {
            return;
        };
        if (pfn as usize) >= vm.phys.map.len() {
            return;
        }
        vm.phys.map.pin(pfn);
        vm.stats.direct_ios += 1;
        Mm::start_io(os, t, c, Io::DirectWrite { pfn }, cx);
    }

    /// The flusher: every `writeback_interval`, starts writeback of the oldest dirty file
    /// pages and clears every page's referenced bit (what is not touched again is cold). It
    /// never queues more than the disk's card can hold at once (the block layer's congestion
    /// limit): faults that read do not wait behind a flood of writes.
    pub(crate) fn flusher(os: &mut Os, now: SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
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
        let room = vm.disk.as_ref().map_or(0, |d| d.room(vm.io.len()));
        let batch = batch.min(room);
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
        let mut t = now;
        for pfn in dirty.into_iter().take(batch) {
            MemFlow::start_writeback(os, &mut t, c, pfn, cx);
        }
    }
}
