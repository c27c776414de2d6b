//! Page migration for memory offline: passes over the range, batches (unmap through rmap,
//! TLB shootdown, coherent copy, remap), swap-out, page-cache drops and write-back of busy
//! pages, and compaction to make room for hugetlb pages.

use super::{MemError, MemFlow, MemWait, Method, Move};
use crate::config::OsDefect;
use crate::cpumask::LogicalCpu;
use crate::hw::Cx;
use crate::irq::CALL_FUNCTION_VECTOR;
use crate::kernel::Os;
use crate::mm::kernel::Mm;
use crate::mm::manager::Io;
use crate::mm::vm::Pte;
use crate::mm::{Gfp, Owner, PAGEBLOCK_ORDER, PAGEBLOCK_PAGES, PteRef, flags};
use crate::ops::Next;
use sim_core::{PhysAddr, SimTime};

impl MemFlow {
    /// One pass step of the migration: picks the next batch, unmaps it and starts the TLB
    /// shootdown; or ends the step when nothing is left; or waits for busy pages.
    pub(crate) fn mem_migrate_pass(
        os: &mut Os,
        t: &mut SimTime,
        ctl: LogicalCpu,
        cx: &mut Cx<'_>,
    ) -> Next<MemFlow> {
        let now = *t;
        let blocks = MemFlow::isolated_blocks(os);
        let mc = os.config().memory.clone();
        let defect_wb = os.has_defect(OsDefect::IgnoreWriteback);
        let compact = os.memhp.running().and_then(|c| c.state.compact);
        // Batch after batch finding no memory to move to: give up (isolation is undone).
        if let Some(c) = os.memhp.running() {
            if c.state.stalled.0 >= mc.migrate_passes {
                let pfn = c.state.no_huge.unwrap_or(c.state.stalled.1);
                return Next::Fail(now, MemError::NoMemory { pfn });
            }
        }
        let vm = os.vmm();
        let mut busy: Vec<(u32, &'static str)> = Vec::new();
        let mut picked: Vec<Move> = Vec::new();
        let mut unmovable = 0u32;
        let mut writeback: Vec<u32> = Vec::new();
        // Stage one of a hugetlb move may need a pageblock emptied first (compaction): its
        // pages are the batch until it is free.
        let frames: Vec<u32> = match compact {
            Some(pb) => (pb..pb + PAGEBLOCK_PAGES)
                .filter(|&f| !matches!(vm.phys.map.owner(f), Owner::Free | Owner::Offline))
                .collect(),
            None => blocks.iter().flat_map(|&b| vm.phys.used_in(b)).collect(),
        };
        if let Some(pb) = compact {
            let blocked = frames.iter().any(|&f| {
                let i = f as usize;
                let o = vm.phys.map.owner(i as u32);
                !matches!(o, Owner::Anon { .. } | Owner::File { .. })
                    || vm.phys.map.flags(i as u32) & (flags::LOCKED | flags::WRITEBACK) != 0
                    || vm.phys.map.pins(i as u32) > 0
            });
            if frames.is_empty() {
                // Done: a free huge page, kept isolated for the hugetlb page waiting for it.
                if let Some(c) = os.memhp.running_mut() {
                    c.state.compact = None;
                    c.state.reserved_huge = Some(pb);
                    c.report.moved.compactions += 1;
                }
                return Next::Again(now);
            }
            if blocked {
                // It cannot be emptied now: give it back and try another one.
                vm.phys
                    .set_pageblock_type(pb, crate::mm::MigrateType::Movable);
                if let Some(c) = os.memhp.running_mut() {
                    c.state.compact = None;
                    c.state.compact_failed.push(pb);
                }
                return Next::Again(now);
            }
        }
        'scan: for &pfn in &frames {
            {
                let i = pfn as usize;
                let owner = vm.phys.map.owner(i as u32);
                let f = vm.phys.map.flags(i as u32);
                if f & flags::TAIL != 0 {
                    continue;
                }
                if owner.is_kernel() || matches!(owner, Owner::MemMap { .. }) {
                    unmovable += 1;
                    continue;
                }
                if f & flags::LOCKED != 0 {
                    busy.push((pfn, "locked (I/O in flight)"));
                    continue;
                }
                if f & flags::WRITEBACK != 0 && !defect_wb {
                    busy.push((pfn, "under writeback"));
                    continue;
                }
                if vm.phys.map.pins(i as u32) > 0 && f & flags::WRITEBACK == 0 {
                    busy.push((pfn, "pinned by DMA"));
                    continue;
                }
                let method = match owner {
                    Owner::File { file, .. } => {
                        let fs = vm.files[file as usize].fs;
                        let dirty = f & flags::DIRTY != 0;
                        let private = f & flags::PRIVATE != 0;

                        if dirty && private && !fs.migrates_private() && fs.has_backing() {
                            // No migrate_page (`fallback_migrate_folio`): it is written back
                            // first and moved by a later pass, once clean.
                            writeback.push(pfn);
                            busy.push((pfn, "written back first"));
                            continue;
                        } else if !dirty
                            && fs.has_backing()
                            && mc.swapout_cold
                            && f & flags::REFERENCED == 0
                        {
                            Method::Drop
                        } else {
                            Method::Remap
                        }
                    }
                    Owner::Anon { .. } => {
                        let cold = f & flags::REFERENCED == 0 && f & flags::MLOCKED == 0;
                        match (mc.swapout_cold && cold)
                            .then(|| vm.swap.take_slot())
                            .flatten()
                        {
                            Some(slot) => Method::Swap(slot),
                            None => Method::Remap,
                        }
                    }
                    Owner::Huge { .. }
                    | Owner::Offline
                    | Owner::Free
                    | Owner::Firmware
                    | Owner::MemMap { .. }
                    | Owner::NodeData { .. }
                    | Owner::Slab { .. }
                    | Owner::PageTable { .. }
                    | Owner::DmaBuffer { .. }
                    | Owner::ZeroPage => Method::Remap,
                };
                let method = if compact.is_some() {
                    Method::Remap
                } else {
                    method
                };
                let order = if f & flags::HEAD != 0 {
                    PAGEBLOCK_ORDER
                } else {
                    0
                };
                let mut ptes = Vec::new();
                for k in 0..1u32 << order {
                    ptes.extend(vm.phys.map.rmap(pfn + k).iter().map(|&r| (r, pfn + k)));
                }
                picked.push(Move {
                    pfn,
                    order,
                    method,
                    ptes,
                    compaction: compact.is_some(),
                });
                if picked.len() >= mc.copy_batch as usize {
                    break 'scan;
                }
            }
        }
        for &pfn in &writeback {
            MemFlow::start_writeback(os, t, ctl, pfn, cx);
        }
        if let Some(c) = os.memhp.running_mut() {
            c.report.moved.written_back += writeback.len() as u32;
        }
        if picked.is_empty() {
            if busy.is_empty() {
                let moved = os
                    .memhp
                    .running()
                    .map(|c| c.report.moved.clone())
                    .unwrap_or_default();
                let note = format!(
                    "{} remapped ({} mlocked, {} hugetlb in two stages: {} pageblocks compacted, \
                     {} pages), {} swapped out, {} clean page-cache pages dropped, {} written \
                     back first; {} passes, {} batches, {} retries{}",
                    moved.remapped,
                    moved.mlocked,
                    moved.huge,
                    moved.compactions,
                    moved.compacted_pages,
                    moved.swapped,
                    moved.dropped,
                    moved.written_back,
                    moved.passes + 1,
                    moved.batches,
                    moved.retries,
                    if unmovable > 0 {
                        format!("; {unmovable} unmovable pages left")
                    } else {
                        String::new()
                    }
                );
                return Next::Done(now, note);
            }
            // Pages locked or under writeback for a transfer the disk still has are waited
            // for, as sync migration waits on the page lock and on writeback: a pass spent
            // only on them does not count towards giving up (a page pinned by direct I/O
            // does).
            let vm = os.vmm();
            let in_flight: std::collections::BTreeSet<u32> =
                vm.io.values().map(|io| io.pfn()).collect();
            let waiting_io = busy.iter().all(|&(pfn, _)| {
                vm.phys.map.flags(pfn) & (flags::LOCKED | flags::WRITEBACK) != 0
                    && in_flight.contains(&pfn)
            });
            let passes = {
                let Some(c) = os.memhp.running_mut() else {
                    return Next::Done(now, String::new());
                };
                if !waiting_io {
                    c.report.moved.passes += 1;
                }
                c.report.moved.retries += busy.len() as u32;
                c.report.moved.passes
            };
            if passes >= mc.migrate_passes {
                if let Some(pfn) = os.memhp.running().and_then(|c| c.state.no_huge) {
                    return Next::Fail(now, MemError::NoMemory { pfn });
                }
                let (first, why) = busy[0];
                return Next::Fail(
                    now,
                    MemError::Busy {
                        pages: busy.len() as u32,
                        passes,
                        first,
                        why: why.to_owned(),
                    },
                );
            }
            return Next::Again(now + mc.retry_delay);
        }
        // Unmap every picked page through the reverse map.
        let mut mms: Vec<u32> = Vec::new();
        for m in &mut picked {
            let vm = os.vmm();
            vm.phys.map.set(m.pfn, flags::LOCKED);
            if let Method::Swap(slot) = m.method {
                // Into the swap cache: a fault on the swap entry finds the page here.
                vm.phys.map.set(m.pfn, flags::SWAPCACHE);
                vm.swap_cache.insert(slot, m.pfn);
            }
            for (r, sub) in m.ptes.clone() {
                let entry = match m.method {
                    Method::Remap => Pte::Migration { pfn: sub },
                    Method::Swap(slot) => Pte::Swap { slot },
                    Method::Drop => Pte::FileHole,
                };
                Mm::write_pte(os, t, ctl, r, entry, cx);
                mms.push(r.mm);
            }
            *t += mc.page_cost;
        }
        mms.sort_unstable();
        mms.dedup();
        // Swap-outs and drops lose their mappings now.
        let vm = os.vmm();
        for m in &picked {
            if m.method != Method::Remap {
                vm.phys.map.clear_rmap(m.pfn);
            }
        }
        // The TLB shootdown: the CPUs that may cache these translations.
        let mut targets: Vec<LogicalCpu> = Vec::new();
        for &mm in &mms {
            for c in vm.spaces[mm as usize].cpu_list() {
                targets.push(LogicalCpu(c));
            }
        }
        vm.tlbs[ctl.index()].flush();
        targets.sort_unstable();
        targets.dedup();
        let mut csds = Vec::new();
        if !os.has_defect(OsDefect::SkipTlbShootdown) {
            let v = os.reader_begin(t, ctl, "memory offline shootdown", cx);
            let online: Vec<LogicalCpu> = os
                .loaded_maps(v)
                .online
                .iter()
                .filter(|c| *c != ctl && targets.contains(c))
                .collect();
            for to in online {
                os.reader_use(t, ctl, v, to, cx);
                let id = os.queue_csd(*t, ctl, to, None);
                os.send_ipi(*t, ctl, to, CALL_FUNCTION_VECTOR, cx);
                *t += os.config().ipi_send;
                csds.push(id);
            }
            os.reader_end(*t, ctl);
        }
        if let Some(c) = os.memhp.running_mut() {
            c.report.moved.batches += 1;
            c.report.moved.shootdown_ipis += csds.len() as u32;
            c.state.batch = picked;
        }
        let deadline = *t + os.config().csd_timeout;
        Next::Poll(MemWait::Acks { csds, deadline }, *t, String::new())
    }

    /// The second half of a batch, after every TLB acknowledged: copy, update, remap, free.
    pub(crate) fn mem_copy_batch(os: &mut Os, now: SimTime, cx: &mut Cx<'_>) -> SimTime {
        let Some(cur) = os.memhp.running_mut() else {
            return now;
        };
        let batch = std::mem::take(&mut cur.state.batch);
        let ctl = cur.report.controller;
        let home = cur.req.node.map(|n| n.0);
        let mut t = now;
        let hw = os.hw(ctl);
        let coherent = !os.has_defect(OsDefect::CopyNoncoherent);
        let free_first = os.has_defect(OsDefect::FreeBeforeCopy);
        let page_cost = os.config().memory.page_cost;
        // Allocate every destination first, then copy the whole batch, then remap.
        let mut copies: Vec<(u32, u32, u8)> = Vec::new();
        for m in &batch {
            match m.method {
                Method::Drop => {
                    let vm = os.vmm();
                    if let Owner::File { file, page } = vm.phys.map.owner(m.pfn) {
                        vm.files[file as usize].cache[page as usize] = None;
                    }
                    vm.phys.map.clear(m.pfn, flags::LOCKED);
                    Mm::free_frame(os, t, m.pfn, 0);
                    // A task that faulted on the page meanwhile reads it from the disk now.
                    wake_movers(os, &mut t, ctl, m.pfn, cx);
                    if let Some(c) = os.memhp.running_mut() {
                        c.report.moved.dropped += 1;
                    }
                }
                Method::Swap(slot) => {
                    // The disk reads the page (DMA) when it gets to the command; the frame is
                    // freed once it has.
                    let vm = os.vmm();
                    vm.phys.map.clear(m.pfn, flags::LOCKED);
                    vm.phys.map.set(m.pfn, flags::WRITEBACK);
                    vm.phys.map.pin(m.pfn);
                    vm.stats.swap_outs += 1;
                    Mm::start_io(os, &mut t, ctl, Io::SwapOut { pfn: m.pfn, slot }, cx);
                    if let Some(c) = os.memhp.running_mut() {
                        c.report.moved.swapped += 1;
                    }
                }
                Method::Remap => {
                    let vm = os.vmm();
                    let owner = vm.phys.map.owner(m.pfn);
                    let prefer = match owner {
                        Owner::Anon { mm, .. } | Owner::Huge { mm, .. } => {
                            vm.spaces[mm as usize].node
                        }
                        Owner::File { file, .. } => vm.files[file as usize].node,
                        Owner::Offline
                        | Owner::Free
                        | Owner::Firmware
                        | Owner::MemMap { .. }
                        | Owner::NodeData { .. }
                        | Owner::Slab { .. }
                        | Owner::PageTable { .. }
                        | Owner::DmaBuffer { .. }
                        | Owner::ZeroPage => home.unwrap_or(0),
                    };
                    // Stage one for a hugetlb page: a new huge page elsewhere (the one
                    // compaction emptied for it, if any).
                    let reserved = if m.order == PAGEBLOCK_ORDER {
                        os.memhp
                            .running_mut()
                            .and_then(|c| c.state.reserved_huge.take())
                    } else {
                        None
                    };
                    let vm = os.vmm();
                    let got = match reserved {
                        Some(pb) if vm.phys.alloc_isolated_pageblock(pb, owner) => Ok(pb),
                        Some(_) | None => vm.phys.alloc(prefer, m.order, Gfp::Movable, owner),
                    };
                    match got {
                        Ok(new) => copies.push((m.pfn, new, m.order)),
                        Err(_) => {
                            // Nothing free outside the range: put the mappings back. For a
                            // hugetlb page, stage one continues by compacting a pageblock
                            // elsewhere; the page moves in a later pass.
                            if m.order > 0 {
                                MemFlow::start_compaction(os, prefer, m.pfn);
                            }
                            let vm = os.vmm();
                            vm.phys.map.clear(m.pfn, flags::LOCKED);
                            for (r, sub) in m.ptes.clone() {
                                Mm::write_pte(os, &mut t, ctl, r, Pte::Present { pfn: sub }, cx);
                            }
                            for k in 0..1u32 << m.order {
                                wake_movers(os, &mut t, ctl, m.pfn + k, cx);
                            }
                        }
                    }
                }
            }
        }
        if free_first {
            // The defect: the old pages go back to the allocator before their data moved.
            for &(old, _, order) in &copies {
                Mm::free_frame(os, t, old, order);
            }
        }
        // The whole batch is copied at once (OS-MEM-6: in parallel on the host when
        // `parallel_copy`; contents and trace do not depend on the thread count).
        let vm = os.vmm();
        let pairs: Vec<(PhysAddr, PhysAddr)> = copies
            .iter()
            .flat_map(|&(old, new, order)| (0..1u32 << order).map(move |k| (old + k, new + k)))
            .map(|(o, n)| {
                (
                    PhysAddr::new(vm.phys.addr(o)),
                    PhysAddr::new(vm.phys.addr(n)),
                )
            })
            .collect();
        let bytes = (pairs.len() as u64) << vm.phys.page_shift;
        let parallel = os.config().memory.parallel_copy;
        if let Ok(lat) = cx.p.copy_pages(t, hw, &pairs, coherent, parallel, cx.probe) {
            t += lat;
        }
        if let Some(c) = os.memhp.running_mut() {
            c.report.moved.bytes_copied += bytes;
        }
        let compaction = batch.first().is_some_and(|m| m.compaction);
        let progress = !copies.is_empty() || batch.iter().any(|m| m.method != Method::Remap);
        if let (Some(c), Some(first)) = (os.memhp.running_mut(), batch.first()) {
            c.state.stalled = if progress {
                (0, 0)
            } else {
                (c.state.stalled.0 + 1, first.pfn)
            };
        }
        for &(old, new, order) in &copies {
            // Move the descriptors, the page-cache entry and the reverse map; remap.
            let mut remaps = Vec::new();
            let vm = os.vmm();
            for k in 0..1u32 << order {
                let (o, n) = ((old + k) as usize, (new + k) as usize);
                vm.phys.map.set_owner(n as u32, vm.phys.map.owner(o as u32));
                vm.phys
                    .map
                    .set_flags(n as u32, vm.phys.map.flags(o as u32) & !flags::LOCKED);
                vm.phys.map.set_order(n as u32, vm.phys.map.order(o as u32));
                let r = vm.phys.map.take_rmap(o as u32);
                for x in &r {
                    remaps.push((x.mm, x.vpn, old + k, new + k));
                }
                vm.phys.map.set_rmap(n as u32, r);
            }
            let owner = vm.phys.map.owner(new);
            let mlocked = vm.phys.map.has(new, flags::MLOCKED);
            if let Owner::File { file, page } = owner {
                vm.files[file as usize].cache[page as usize] = Some(new);
            }
            let to_memory = !os.has_defect(crate::config::OsDefect::PteNotWrittenToMemory);
            for (mm, vpn, _, to) in remaps {
                Mm::set_pte(
                    os,
                    &mut t,
                    ctl,
                    PteRef { mm, vpn },
                    Pte::Present { pfn: to },
                    to_memory,
                    cx,
                );
            }
            if !free_first {
                // The old page is unlocked and freed (under the defect ignore_writeback it
                // may still be under writeback: the free-time check sees it).
                let vm = os.vmm();
                for k in 0..1u32 << order {
                    let i = (old + k) as usize;
                    vm.phys.map.set_owner(i as u32, owner);
                    vm.phys.map.clear(i as u32, flags::LOCKED);
                }
                Mm::free_frame(os, t, old, order);
            }
            t += page_cost;
            if let Some(c) = os.memhp.running_mut() {
                if compaction {
                    c.report.moved.compacted_pages += 1;
                } else {
                    c.report.moved.remapped += 1;
                    if mlocked {
                        c.report.moved.mlocked += 1;
                    }
                    if order > 0 {
                        c.report.moved.huge += 1;
                    }
                }
            }
            for k in 0..1u32 << order {
                wake_movers(os, &mut t, ctl, old + k, cx);
            }
        }
        t
    }

    /// Stage one of a hugetlb move found no free huge page: pick the pageblock nearest to
    /// `node` that holds only movable base pages (fewest first) and isolate it; the next
    /// batches empty it (compaction).
    pub(crate) fn start_compaction(os: &mut Os, node: u32, huge: u32) {
        let Some(cur) = os.memhp.running() else {
            return;
        };
        if cur.state.compact.is_some() || cur.state.reserved_huge.is_some() {
            return;
        }
        let failed = cur.state.compact_failed.clone();
        let vm = os.vm.as_ref().expect("memory management is up");
        let zl = vm
            .phys
            .zonelists
            .get(node as usize)
            .cloned()
            .unwrap_or_default();
        let mut best: Option<(u32, u32)> = None;
        for z in zl {
            let free = vm.phys.zones[z as usize].area.allocatable_pages();
            for (i, &pz) in vm.phys.pb_zone.iter().enumerate() {
                if pz != z || vm.phys.pb_type[i] != crate::mm::MigrateType::Movable {
                    continue;
                }
                let pb = i as u32 * PAGEBLOCK_PAGES;
                if failed.contains(&pb) {
                    continue;
                }
                let mut used = 0u32;
                let mut movable = true;
                for f in pb..pb + PAGEBLOCK_PAGES {
                    let k = f as usize;
                    match vm.phys.map.owner(k as u32) {
                        Owner::Free => {}
                        Owner::Anon { .. } | Owner::File { .. } => {
                            used += 1;
                            if vm.phys.map.flags(k as u32) & (flags::LOCKED | flags::WRITEBACK) != 0
                                || vm.phys.map.pins(k as u32) > 0
                            {
                                movable = false;
                            }
                        }
                        Owner::Offline
                        | Owner::Firmware
                        | Owner::MemMap { .. }
                        | Owner::NodeData { .. }
                        | Owner::Slab { .. }
                        | Owner::PageTable { .. }
                        | Owner::DmaBuffer { .. }
                        | Owner::ZeroPage
                        | Owner::Huge { .. } => movable = false,
                    }
                }
                // Its pages must fit in the zone's free pages outside it.
                let outside = free.saturating_sub(u64::from(PAGEBLOCK_PAGES - used));
                if movable
                    && used > 0
                    && u64::from(used) <= outside
                    && best.is_none_or(|b| used < b.1)
                {
                    best = Some((pb, used));
                }
            }
            if best.is_some() {
                break;
            }
        }
        let vm = os.vmm();
        match best {
            Some((pb, _)) => {
                vm.phys
                    .set_pageblock_type(pb, crate::mm::MigrateType::Isolate);
                if let Some(c) = os.memhp.running_mut() {
                    c.state.compact = Some(pb);
                }
            }
            None => {
                if let Some(c) = os.memhp.running_mut() {
                    c.state.no_huge = Some(huge);
                }
            }
        }
    }

    /// Starts writing dirty file page `pfn` back to the disk, as `c`.
    pub(crate) fn start_writeback(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        pfn: u32,
        cx: &mut Cx<'_>,
    ) {
        let vm = os.vmm();
        let Owner::File { file, page } = vm.phys.map.owner(pfn) else {
            return;
        };
        if vm.phys.map.has(pfn, flags::WRITEBACK) {
            return;
        }
        vm.phys.map.set(pfn, flags::WRITEBACK);
        vm.phys.map.clear(pfn, flags::DIRTY);
        vm.phys.map.pin(pfn);
        Mm::start_io(os, t, c, Io::Writeback { pfn, file, page }, cx);
    }
}

/// Wakes the tasks that waited for frame `pfn` while it moved (unless the defect
/// `lose_page_waiters` forgets them: they stay blocked for ever).
fn wake_movers(os: &mut Os, t: &mut SimTime, by: LogicalCpu, pfn: u32, cx: &mut Cx<'_>) {
    if os.has_defect(OsDefect::LosePageWaiters) {
        os.vmm().waiters.remove(&pfn);
        return;
    }
    Mm::wake_page(os, t, by, pfn, cx);
}
