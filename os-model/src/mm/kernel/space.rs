//! Process address spaces: page tables written through the machine, populated at fork
//! (anonymous, hugetlb, file mappings), unwound on failure; the files of the page cache.

use super::Mm;
use crate::cpumask::LogicalCpu;
use crate::event::{MemObj, OsEvent, TaskId};
use crate::hw::Cx;
use crate::hw::store;
use crate::kernel::Os;
use crate::mm::vm::{AddressSpace, File, Pte, Vma, VmaKind};
use crate::mm::{Gfp, Owner, PAGEBLOCK_ORDER, PAGEBLOCK_PAGES, PteRef, flags};
use sim_core::{PhysAddr, SimTime};

impl Mm {
    /// Writes the PTE of `vpn` in `mm` (the mirror and the word in the page-table page), as
    /// CPU `c`.
    pub(crate) fn write_pte(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        at: PteRef,
        pte: Pte,
        cx: &mut Cx<'_>,
    ) {
        Mm::set_pte(os, t, c, at, pte, true, cx);
    }

    /// [`Mm::write_pte`], or (`to_memory` false: the defect `pte_not_written_to_memory`)
    /// only the kernel's copy.
    pub(crate) fn set_pte(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        at: PteRef,
        pte: Pte,
        to_memory: bool,
        cx: &mut Cx<'_>,
    ) {
        let PteRef { mm, vpn } = at;
        let hw = os.hw(c);
        let vm = os.vmm();
        vm.spaces[mm as usize].ptes[vpn as usize] = pte;
        let Some((pt, addr)) = vm.pte_at(&vm.spaces[mm as usize], vpn) else {
            return;
        };
        if !to_memory {
            return;
        }
        vm.stats.pte_writes += 1;
        let word = pte.encode();
        store(cx, t, hw, addr, word);
        os.emit(
            *t,
            OsEvent::PteWritten {
                mm,
                vpn,
                addr,
                table: pt,
                word,
            },
        );
    }

    /// Creates the address space of user task `task` on `node`: page-table pages, the VMAs
    /// the configuration asks for, every page populated (anonymous pages cleared from the
    /// zero page, file pages mapped from the page cache). Returns its id. Out of memory, it
    /// gives back everything it took — pages, page tables, pageblock types — as a failed
    /// `fork` does: the memory is exactly as it was.
    pub(crate) fn create_space(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        task: TaskId,
        node: u32,
        cx: &mut Cx<'_>,
    ) -> Result<u32, crate::mm::NoMemory> {
        let vm = os.vmm();
        let id = vm.spaces.len() as u32;
        let types = vm.phys.pb_type.clone();
        let r = Mm::populate_space(os, t, c, task, node, cx);
        if r.is_err() {
            Mm::unwind_space(os, *t, id, &types);
        }
        r
    }

    /// Undoes a [`Os::populate_space`] of space `id` that ran out of memory: every page it
    /// mapped of its own is freed, its mappings of the page cache dropped, its page-table
    /// pages freed, and every pageblock given back the type it had (`types`).
    pub(crate) fn unwind_space(os: &mut Os, t: SimTime, id: u32, types: &[crate::mm::MigrateType]) {
        let vm = os.vmm();
        let mut frees: Vec<(u32, u8)> = Vec::new();
        let ours = vm.spaces.last().is_some_and(|sp| sp.id == id);
        if let Some(sp) = ours.then(|| vm.spaces.pop()).flatten() {
            // The page-table pages go first, and every word that mapped a page with them: no
            // page is freed while an entry in memory still maps it.
            frees.extend(sp.pt_pages.iter().map(|&pt| (pt, 0)));
            for (vpn, pte) in sp.ptes.iter().enumerate() {
                let Pte::Present { pfn } = *pte else {
                    continue;
                };
                let i = pfn as usize;
                vm.phys
                    .map
                    .retain_rmap(i as u32, |r| !(r.mm == id && r.vpn == vpn as u32));
                match vm.phys.map.owner(i as u32) {
                    Owner::Anon { mm, .. } if mm == id => frees.push((pfn, 0)),
                    Owner::Huge { mm, sub: 0, .. } if mm == id => {
                        frees.push((pfn, PAGEBLOCK_ORDER));
                    }
                    // Someone else's page (a shared file page, another space's) or one this
                    // space only maps: the rmap entry above is all it had of ours.
                    Owner::Anon { .. }
                    | Owner::Huge { .. }
                    | Owner::File { .. }
                    | Owner::ZeroPage
                    | Owner::Offline
                    | Owner::Free
                    | Owner::Firmware
                    | Owner::MemMap { .. }
                    | Owner::NodeData { .. }
                    | Owner::Slab { .. }
                    | Owner::PageTable { .. }
                    | Owner::DmaBuffer { .. } => {}
                }
            }
        }
        for (pfn, order) in frees {
            Mm::free_frame(os, t, pfn, order);
        }
        let vm = os.vmm();
        for (k, &ty) in types.iter().enumerate() {
            if vm.phys.pb_type[k] != ty {
                vm.phys.set_pageblock_type(k as u32 * PAGEBLOCK_PAGES, ty);
            }
        }
    }

    pub(crate) fn populate_space(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        task: TaskId,
        node: u32,
        cx: &mut Cx<'_>,
    ) -> Result<u32, crate::mm::NoMemory> {
        let mc = os.config().memory.clone();
        let vm = os.vmm();
        let id = vm.spaces.len() as u32;
        let mut vmas = Vec::new();
        let mut next = 0u32;
        let mut add = |pages: u32, kind: VmaKind, align: u32| {
            if pages > 0 {
                next = next.next_multiple_of(align);
                vmas.push(Vma {
                    start: next,
                    pages,
                    kind,
                });
                next += pages;
            }
        };
        add(mc.anon_pages, VmaKind::Anon, 1);
        add(mc.mlock_pages, VmaKind::Mlocked, 1);
        let nfiles = vm.files.len() as u32;
        if nfiles > 0 {
            for k in 0..mc.maps_per_task {
                let file = (task.0 + k) % nfiles;
                add(vm.files[file as usize].pages, VmaKind::File { file }, 1);
            }
        }
        add(
            mc.huge_pages * PAGEBLOCK_PAGES,
            VmaKind::Huge,
            PAGEBLOCK_PAGES,
        );
        let span = next;
        let ppp = vm.ptes_per_page();
        let mut pt_pages = Vec::new();
        for index in 0..span.div_ceil(ppp).max(1) {
            match vm
                .phys
                .alloc(node, 0, Gfp::Kernel, Owner::PageTable { mm: id, index })
            {
                Ok(pt) => pt_pages.push(pt),
                Err(e) => {
                    for pt in pt_pages {
                        Mm::free_frame(os, *t, pt, 0);
                    }
                    return Err(e);
                }
            }
        }
        // Page-table pages start cleared (every entry "nothing mapped"), as pte_alloc's
        // zeroed pages do: a frame freed by someone else holds their data.
        for &pt in &pt_pages {
            Mm::clear_page(os, t, c, pt, cx);
        }
        let vm = os.vmm();
        vm.spaces.push(AddressSpace {
            id,
            task: task.0,
            node,
            vmas: vmas.clone(),
            ptes: vec![Pte::None; span as usize],
            pt_pages,
            cpus: Vec::new(),
        });
        let anon_pages: u32 = vmas
            .iter()
            .filter(|v| !matches!(v.kind, VmaKind::File { .. }))
            .map(|v| v.start + v.pages)
            .max()
            .unwrap_or(0);
        let slots = mc.probe_words;
        os.emit(
            *t,
            OsEvent::MemObject {
                obj: MemObj::Anon(id),
                pages: anon_pages,
                slots,
            },
        );
        let hw = os.hw(c);
        for v in vmas {
            match v.kind {
                VmaKind::Anon | VmaKind::Mlocked => {
                    for vpn in v.start..v.start + v.pages {
                        let owner = Owner::Anon { mm: id, page: vpn };
                        let pfn = os.vmm().phys.alloc(node, 0, Gfp::Movable, owner)?;
                        Mm::clear_page(os, t, c, pfn, cx);
                        let vm = os.vmm();
                        let mut f = flags::LRU | flags::UPTODATE | flags::DIRTY;
                        if v.kind == VmaKind::Mlocked {
                            f |= flags::MLOCKED;
                        }
                        vm.phys.map.set(pfn, f);
                        vm.phys.map.add_rmap(pfn, PteRef { mm: id, vpn });
                        Mm::write_pte(os, t, c, PteRef { mm: id, vpn }, Pte::Present { pfn }, cx);
                    }
                }
                VmaKind::Huge => {
                    for h in 0..v.pages / PAGEBLOCK_PAGES {
                        let owner = Owner::Huge {
                            mm: id,
                            huge: (v.start / PAGEBLOCK_PAGES) + h,
                            sub: 0,
                        };
                        let head =
                            os.vmm()
                                .phys
                                .alloc(node, PAGEBLOCK_ORDER, Gfp::Movable, owner)?;
                        for sub in 0..PAGEBLOCK_PAGES {
                            let pfn = head + sub;
                            let vpn = v.start + h * PAGEBLOCK_PAGES + sub;
                            Mm::clear_page(os, t, c, pfn, cx);
                            let vm = os.vmm();
                            vm.phys.map.set_owner(
                                pfn,
                                Owner::Huge {
                                    mm: id,
                                    huge: (v.start / PAGEBLOCK_PAGES) + h,
                                    sub,
                                },
                            );
                            vm.phys.map.set_flags(
                                pfn,
                                flags::UPTODATE
                                    | flags::DIRTY
                                    | if sub == 0 { flags::HEAD } else { flags::TAIL },
                            );
                            vm.phys.map.add_rmap(pfn, PteRef { mm: id, vpn });
                            Mm::write_pte(
                                os,
                                t,
                                c,
                                PteRef { mm: id, vpn },
                                Pte::Present { pfn },
                                cx,
                            );
                        }
                    }
                }
                VmaKind::File { file } => {
                    for k in 0..v.pages {
                        let vpn = v.start + k;
                        // A page under I/O or migration (locked) is not mapped now: the
                        // task faults on it later and waits for it, as it would in Linux.
                        let vm = os.vmm();
                        let cached = vm.files[file as usize].cache[k as usize]
                            .filter(|&pfn| !vm.phys.map.has(pfn, flags::LOCKED));
                        match cached {
                            Some(pfn) => {
                                os.vmm().phys.map.add_rmap(pfn, PteRef { mm: id, vpn });
                                Mm::write_pte(
                                    os,
                                    t,
                                    c,
                                    PteRef { mm: id, vpn },
                                    Pte::Present { pfn },
                                    cx,
                                );
                            }
                            None => {
                                Mm::write_pte(os, t, c, PteRef { mm: id, vpn }, Pte::FileHole, cx)
                            }
                        }
                    }
                }
            }
        }
        let _ = hw;
        Ok(id)
    }

    /// Clears frame `pfn` by copying the zero page over it (as CPU `c`).
    pub(crate) fn clear_page(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        pfn: u32,
        cx: &mut Cx<'_>,
    ) {
        let hw = os.hw(c);
        let vm = os.vmm();
        let (src, dst) = (vm.phys.addr(vm.zero_pfn), vm.phys.addr(pfn));
        if let Ok(lat) = cx.p.copy_pages(
            *t,
            hw,
            &[(PhysAddr::new(src), PhysAddr::new(dst))],
            true,
            false,
            cx.probe,
        ) {
            *t += lat;
        }
    }

    /// Creates the configured files, with an empty page cache: each page is read from the
    /// disk when a task first touches it.
    pub(crate) fn create_files(os: &mut Os, t: &mut SimTime) {
        let mc = os.config().memory.clone();
        let nodes: Vec<u32> = os
            .vmm()
            .phys
            .nodes
            .iter()
            .filter(|n| n.online)
            .map(|n| n.id)
            .collect();
        for f in 0..mc.files {
            let fs = mc.fs[f as usize % mc.fs.len()];
            let node = nodes[f as usize % nodes.len().max(1)];
            let vm = os.vmm();
            vm.files.push(File {
                id: f,
                fs,
                pages: mc.file_pages,
                cache: vec![None; mc.file_pages as usize],
                mappers: Vec::new(),
                node,
            });
            os.emit(
                *t,
                OsEvent::MemObject {
                    obj: MemObj::File(f),
                    pages: mc.file_pages,
                    slots: mc.probe_words,
                },
            );
        }
    }
}
