//! The kernel's memory management at work: boot of the page allocator from the ACPI memory
//! devices and the SLIT, kernel allocations, process address spaces with page tables in
//! simulated memory, the page cache, the hardware page walk on a TLB miss, page faults (swap
//! in, file read, waiting on a page under migration) and the block device that serves them
//! (SPEC OS-MEM-1..3).
//!
//! ```text
//!  task access ─► TLB ─hit─► load/store through the machine
//!                  └miss─► page walk: load the PTE word through the machine
//!                          present ─► fill TLB │ migration entry ─► sleep on the page
//!                          swap / file hole ─► allocate, device DMA, then map and wake
//! ```

use std::collections::BTreeMap;

use acpi_model::{Platform, PlatformProbe};
use serde::Serialize;
use sim_core::{Entity, PhysAddr, SimTime};

use crate::config::{MemConfig, OsDefect};
use crate::cpumask::LogicalCpu;
use crate::event::{EnqueueWhy, MemObj, OsEvent, TaskId};
use crate::hw::{load, store};
use crate::kernel::{Os, OsError, OsEv};
use crate::memhotplug::MemFlow;
use crate::mm::vm::{AddressSpace, BlockStore, File, Pte, Tlb, Vma, VmaKind, file_word};
use crate::mm::{Gfp, Owner, PAGEBLOCK_ORDER, PAGEBLOCK_PAGES, PhysMem, PteRef, ZoneKind, flags};
use crate::sched::TaskState;

/// The agent name of the swap device in reports.
pub const SWAP_DEVICE: Entity = Entity::Object("swap-device", 0);
/// The agent name of the disk holding the files.
pub const DISK: Entity = Entity::Object("disk", 0);

/// A block-device transfer in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Io {
    /// Read a swapped-out page back into `pfn`, then map it at `mm`/`vpn`.
    SwapIn {
        pfn: u32,
        slot: u32,
        mm: u32,
        vpn: u32,
    },
    /// Read file page `page` into `pfn` (page cache), then map it at `mm`/`vpn`.
    FileRead {
        pfn: u32,
        file: u32,
        page: u32,
        mm: u32,
        vpn: u32,
    },
    /// A page written to swap slot `slot` (memory offline): free `pfn` when done.
    SwapOut { pfn: u32, slot: u32 },
    /// Dirty file page `page` in `pfn` written back to the disk (read at completion).
    Writeback { pfn: u32, file: u32, page: u32 },
    /// A direct-I/O write of a task's page to the disk: pinned until the device read it.
    DirectWrite { pfn: u32 },
}

/// Memory counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VmStats {
    /// TLB hits.
    pub tlb_hits: u64,
    /// TLB misses (page walks through the machine).
    pub page_walks: u64,
    /// Faults that read from swap.
    pub swap_ins: u64,
    /// Pages written to swap.
    pub swap_outs: u64,
    /// Faults that read a file page.
    pub file_reads: u64,
    /// Faults that found the page in the page cache.
    pub minor_faults: u64,
    /// Accesses that waited for a page under migration.
    pub migration_waits: u64,
    /// PTE words written.
    pub pte_writes: u64,
    /// Pages freed while still mapped (a bad page state).
    pub bad_frees: u64,
    /// File pages written back.
    pub writebacks: u64,
    /// Direct-I/O transfers.
    pub direct_ios: u64,
    /// Anonymous pages discarded by their task (`MADV_DONTNEED`).
    pub discards: u64,
    /// Faults that found nothing mapped (a discarded page touched again: a cleared page).
    pub zero_fills: u64,
    /// Device transfers that finished after their page had moved or gone.
    pub stale_io: u64,
    /// Faults on a swap entry whose page was still on its way to the swap device (found in
    /// the swap cache: they waited for it, then read it back).
    pub swap_cache_waits: u64,
}

/// The kernel's memory state.
#[derive(Clone, Debug)]
pub struct Vm {
    /// Physical memory: nodes, zones, buddy allocator, blocks, `mem_map`.
    pub phys: PhysMem,
    /// Address spaces.
    pub spaces: Vec<AddressSpace>,
    /// Files.
    pub files: Vec<File>,
    /// The swap device.
    pub swap: BlockStore,
    /// Pages written back to the disk (others hold their original contents).
    pub disk: BTreeMap<(u32, u32), Box<[u64]>>,
    /// Per-CPU TLBs.
    pub tlbs: Vec<Tlb>,
    /// The shared zero page.
    pub zero_pfn: u32,
    /// Tasks waiting for a frame (under migration or I/O).
    pub(crate) waiters: BTreeMap<u32, Vec<TaskId>>,
    /// The swap cache: the frame still holding the data of each swap slot a page is being
    /// written to (from the unmap that installed the swap entry until the device has the
    /// page). A fault on such an entry waits for that frame instead of reading a slot that
    /// holds nothing yet.
    pub(crate) swap_cache: BTreeMap<u32, u32>,
    pub(crate) io: BTreeMap<u64, Io>,
    next_io: u64,
    /// Counters.
    pub stats: VmStats,
    /// Words per page.
    pub wpp: u32,
    slabs: u32,
    next_flush: SimTime,
    flush_cursor: usize,
}

impl Vm {
    /// PTEs per page-table page.
    pub fn ptes_per_page(&self) -> u32 {
        self.wpp
    }

    /// The word index of probe slot `slot` of `page` (spread over the page).
    pub fn probe_word(&self, slots: u32, page: u32, slot: u32) -> u32 {
        let stride = self.wpp / slots.max(1);
        slot * stride + (page.wrapping_mul(7)) % stride.max(1)
    }

    /// The object and page index a frame holds data of.
    pub fn object_of(owner: Owner) -> Option<(MemObj, u32)> {
        match owner {
            Owner::Anon { mm, page } => Some((MemObj::Anon(mm), page)),
            Owner::Huge { mm, huge, sub } => Some((MemObj::Anon(mm), huge * PAGEBLOCK_PAGES + sub)),
            Owner::File { file, page } => Some((MemObj::File(file), page)),
            Owner::Offline
            | Owner::Free
            | Owner::Firmware
            | Owner::MemMap { .. }
            | Owner::NodeData { .. }
            | Owner::Slab { .. }
            | Owner::PageTable { .. }
            | Owner::DmaBuffer { .. }
            | Owner::ZeroPage => None,
        }
    }
}

impl Vm {
    /// A digest of everything a failed offline must leave as it found: block states and
    /// zones, pageblock types, every zone's free lists, every frame's owner and flags and
    /// mappings, every PTE.
    pub fn digest(&self) -> u64 {
        let mut h = sim_core::StableHasher::new();
        for b in &self.phys.blocks {
            h.word(u64::from(b.index) << 8 | b.state as u64 | (b.zone as u64) << 4);
        }
        for t in &self.phys.pb_type {
            h.word(*t as u64);
        }
        for z in &self.phys.zones {
            h.word(z.present);
            for (pfn, order, mt) in z.area.blocks() {
                h.word(u64::from(pfn) << 16 | u64::from(order) << 8 | mt as u64);
            }
        }
        let m = &self.phys.map;
        for i in 0..m.len() {
            let o = m.owner[i];
            // Free frames are in the free lists hashed above.
            if matches!(o, Owner::Offline | Owner::Free) {
                continue;
            }
            h.word(i as u64);
            h.word(owner_word(o));
            h.word(u64::from(m.flags[i] & !flags::REFERENCED) | u64::from(m.pins[i]) << 16);
            for r in &m.rmap[i] {
                h.word(u64::from(r.mm) << 32 | u64::from(r.vpn));
            }
        }
        for sp in &self.spaces {
            for p in &sp.ptes {
                h.word(p.encode());
            }
        }
        h.finish()
    }
}

/// A word naming an owner, for digests and the trace hash.
pub fn owner_word(o: Owner) -> u64 {
    let (tag, a, b): (u64, u32, u32) = match o {
        Owner::Offline => (0, 0, 0),
        Owner::Free => (1, 0, 0),
        Owner::Firmware => (2, 0, 0),
        Owner::MemMap { block } => (3, block, 0),
        Owner::NodeData { node } => (4, node, 0),
        Owner::Slab { slab } => (5, slab, 0),
        Owner::PageTable { mm, index } => (6, mm, index),
        Owner::DmaBuffer { buf } => (7, buf, 0),
        Owner::ZeroPage => (8, 0, 0),
        Owner::Anon { mm, page } => (9, mm, page),
        Owner::File { file, page } => (10, file, page),
        Owner::Huge { mm, huge, sub } => (11, mm, huge << 8 | sub),
    };
    tag | u64::from(a) << 8 | u64::from(b) << 36
}

/// Where the contents of one page of a memory object are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Where {
    /// In a frame.
    Frame(u32),
    /// On a device (a swap slot, a written-back disk page).
    Data(Box<[u64]>),
    /// Nowhere yet: the object's initial contents (a file page never written back).
    Initial,
}

impl Where {
    /// For messages.
    pub fn describe(&self, vm: &Vm) -> String {
        match self {
            Where::Frame(pfn) => format!("pfn {pfn:#x}, {}", vm.phys.map.describe_flags(*pfn)),
            Where::Data(_) => "on its device".into(),
            Where::Initial => "on the disk, never written".into(),
        }
    }
}

/// Where page `page` of `obj` is now; `None` while it is in transit (I/O in flight).
pub fn locate(vm: &Vm, obj: MemObj, page: u32) -> Option<Where> {
    match obj {
        MemObj::Anon(mm)
            if matches!(
                vm.spaces.get(mm as usize)?.vma_of(page)?.kind,
                VmaKind::File { .. }
            ) =>
        {
            None
        }
        MemObj::Anon(mm) => match vm.spaces.get(mm as usize)?.ptes.get(page as usize)? {
            Pte::Present { pfn } | Pte::Migration { pfn } => {
                (!vm.phys.map.has(*pfn, flags::LOCKED)
                    || matches!(
                        vm.spaces[mm as usize].ptes[page as usize],
                        Pte::Migration { .. }
                    ))
                .then_some(Where::Frame(*pfn))
            }
            Pte::Swap { slot } => vm.swap.read(*slot).map(|d| Where::Data(d.into())),
            Pte::None | Pte::FileHole => None,
        },
        MemObj::File(f) => {
            let file = vm.files.get(f as usize)?;
            match file.cache.get(page as usize)? {
                Some(pfn) => (!vm.phys.map.has(*pfn, flags::LOCKED)).then_some(Where::Frame(*pfn)),
                None => Some(match vm.disk.get(&(f, page)) {
                    Some(d) => Where::Data(d.clone()),
                    None => Where::Initial,
                }),
            }
        }
    }
}

/// Parses a SLIT (ACPI table) into a distance matrix.
fn parse_slit(t: &[u8]) -> Option<Vec<Vec<u8>>> {
    let n = u64::from_le_bytes(t.get(36..44)?.try_into().ok()?) as usize;
    let body = t.get(44..44 + n * n)?;
    Some(body.chunks(n).map(<[u8]>::to_vec).collect())
}

impl Os {
    /// Sets up the page allocator from what the ACPI scan found: every present memory
    /// device's range, one node per `_PXM`, the SLIT distances; the boot node keeps the
    /// firmware's first megabyte and gets the normal zone, the other nodes are movable unless
    /// configured otherwise. Then the zero page and the boot slab pages.
    pub(crate) fn mm_boot(&mut self, boot_node: u32, p: &Platform) -> Result<(), OsError> {
        let m = &p.machine;
        let g = m.geometry();
        let mc: &MemConfig = &self.cfg.memory;
        let block_pages = (mc.block_size.0 >> g.page_shift) as u32;
        let cell_frames = (g.cell_bytes >> g.page_shift) as u32;
        if block_pages < PAGEBLOCK_PAGES || cell_frames % block_pages != 0 {
            return Err(OsError::Config {
                field: "memory.block_size".into(),
                message: format!(
                    "{} does not divide a cell's {} MiB into blocks of at least {} pages",
                    mc.block_size,
                    g.cell_bytes >> 20,
                    PAGEBLOCK_PAGES
                ),
            });
        }
        let nodes = g.cells as u32;
        let movable: Vec<bool> = (0..nodes)
            .map(|n| match &mc.movable_nodes {
                Some(list) => list.contains(&n),
                None => n != boot_node,
            })
            .collect();
        if movable.get(boot_node as usize).copied().unwrap_or(false) {
            return Err(OsError::Config {
                field: "memory.movable_nodes".into(),
                message: format!("node{boot_node} holds the kernel and cannot be all movable"),
            });
        }
        let distance = parse_slit(&p.slit()).unwrap_or_else(|| {
            (0..nodes)
                .map(|a| (0..nodes).map(|b| if a == b { 10 } else { 20 }).collect())
                .collect()
        });
        let mut phys = PhysMem::new(
            g.frames as u32,
            g.page_shift,
            block_pages,
            nodes,
            cell_frames,
            &movable,
            distance,
        );
        phys.alloc_from_isolated = self.has_defect(OsDefect::AllocFromIsolated);
        let reserved = (crate::mem::RESERVED_PER_NODE >> g.page_shift) as u32;
        for r in self.scan.memory.iter().filter(|r| r.present) {
            let first = (r.base >> g.page_shift) as u32;
            let last = ((r.base + r.len) >> g.page_shift) as u32;
            let mut b = first / block_pages;
            while b * block_pages < last {
                let zone = if phys.nodes[r.node as usize].movable {
                    ZoneKind::Movable
                } else {
                    ZoneKind::Normal
                };
                let res = if r.node == boot_node && b * block_pages == first {
                    reserved
                } else {
                    0
                };
                // The node is the device's `_PXM`, not where the block's addresses fall:
                // interleaved memory is one device of one node spanning every cell.
                phys.blocks[b as usize].node = r.node;
                phys.online_block(b, zone, None, res);
                b += 1;
            }
            if let Some(n) = phys.nodes.get_mut(r.node as usize) {
                n.online = true;
                n.present = true;
            }
        }
        phys.rebuild_zonelists();
        let zero = phys
            .alloc(boot_node, 0, Gfp::Kernel, Owner::ZeroPage)
            .map_err(|_| OsError::NoMemory)?;
        phys.map.set(zero, flags::RESERVED);
        for n in 0..nodes {
            if phys.nodes[n as usize].online {
                let pg = phys
                    .alloc(n, 0, Gfp::Kernel, Owner::NodeData { node: n })
                    .map_err(|_| OsError::NoMemory)?;
                phys.nodes[n as usize].pgdat = Some(pg);
            }
        }
        self.vm = Some(Vm {
            phys,
            spaces: Vec::new(),
            files: Vec::new(),
            swap: BlockStore::new(mc.swap_slots),
            disk: BTreeMap::new(),
            tlbs: (0..self.nr)
                .map(|_| Tlb::new(mc.tlb_entries as usize))
                .collect(),
            zero_pfn: zero,
            waiters: BTreeMap::new(),
            swap_cache: BTreeMap::new(),
            io: BTreeMap::new(),
            next_io: 1,
            stats: VmStats::default(),
            wpp: g.words_per_page as u32,
            slabs: 0,
            next_flush: SimTime::ZERO,
            flush_cursor: 0,
        });
        Ok(())
    }

    /// The memory manager (after boot).
    pub fn vm(&self) -> Option<&Vm> {
        self.vm.as_ref()
    }

    pub(crate) fn vmm(&mut self) -> &mut Vm {
        self.vm
            .as_mut()
            .expect("the memory manager exists from boot on")
    }

    /// Frees a kernel allocation of `bytes` at `addr` (it is handed out again).
    pub(crate) fn kfree(&mut self, addr: u64, bytes: u64) {
        self.mem.free(addr, bytes);
    }

    /// A kernel allocation of `bytes` (slab-like objects, per-CPU areas, driver rings):
    /// carved from slab pages the buddy allocator gives the kernel (normal zones only).
    pub(crate) fn kmalloc(
        &mut self,
        node: u32,
        bytes: u64,
        align: u64,
    ) -> Result<u64, crate::mem::OutOfMemory> {
        let a = self.kmalloc_raw(node, bytes, align)?;
        // Memory handed out again is no freed buffer any more: its poison is the new
        // owner's to overwrite.
        self.pcihp
            .poisoned
            .retain(|b| b.addr + b.len <= a || a + bytes <= b.addr);
        Ok(a)
    }

    fn kmalloc_raw(
        &mut self,
        node: u32,
        bytes: u64,
        align: u64,
    ) -> Result<u64, crate::mem::OutOfMemory> {
        if let Ok(a) = self.mem.alloc(node, bytes, align) {
            return Ok(a);
        }
        let vm = self.vmm();
        let page = 1u64 << vm.phys.page_shift;
        let pages = bytes.div_ceil(page).max(1);
        let order = pages.next_power_of_two().trailing_zeros() as u8;
        if order > PAGEBLOCK_ORDER {
            return Err(crate::mem::OutOfMemory { bytes });
        }
        vm.slabs += 1;
        let slab = vm.slabs;
        let pfn = vm
            .phys
            .alloc(node, order, Gfp::Kernel, Owner::Slab { slab })
            .map_err(|_| crate::mem::OutOfMemory { bytes })?;
        for k in 1..1u32 << order {
            vm.phys.map.owner[(pfn + k) as usize] = Owner::Slab { slab };
        }
        let base = vm.phys.addr(pfn);
        let real_node = vm.phys.blocks[vm.phys.block_of(pfn) as usize].node;
        self.mem.add_arena(real_node, base, page << order);
        self.mem.alloc(node, bytes, align)
    }

    /// Boot-time kernel pages (slab caches that never shrink): unmovable, in normal zones.
    pub(crate) fn mm_boot_slabs(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let n = self.cfg.memory.slab_pages;
        let hw = self.hw(c);
        let page = 1u64 << self.vmm().phys.page_shift;
        let normal: Vec<u32> = self
            .vmm()
            .phys
            .nodes
            .iter()
            .filter(|x| x.online && !x.movable)
            .map(|x| x.id)
            .collect();
        for k in 0..n {
            let node = normal
                .get(k as usize % normal.len().max(1))
                .copied()
                .unwrap_or(0);
            if let Ok(a) = self.kmalloc(node, page, page) {
                store(p, probe, t, hw, a, 0x51AB_0000 | u64::from(k));
                self.slab_objs.push(a);
            }
        }
    }

    /// Writes the PTE of `vpn` in `mm` (the mirror and the word in the page-table page), as
    /// CPU `c`.
    pub(crate) fn write_pte(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        at: PteRef,
        pte: Pte,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let PteRef { mm, vpn } = at;
        let hw = self.hw(c);
        let vm = self.vmm();
        let ppp = vm.ptes_per_page();
        let space = &mut vm.spaces[mm as usize];
        space.ptes[vpn as usize] = pte;
        let pt = space.pt_pages[(vpn / ppp) as usize];
        let addr = vm.phys.addr(pt) + 8 * u64::from(vpn % ppp);
        vm.stats.pte_writes += 1;
        store(p, probe, t, hw, addr, pte.encode());
    }

    /// Creates the address space of user task `task` on `node`: page-table pages, the VMAs
    /// the configuration asks for, every page populated (anonymous pages cleared from the
    /// zero page, file pages mapped from the page cache). Returns its id. Out of memory, it
    /// gives back everything it took — pages, page tables, pageblock types — as a failed
    /// `fork` does: the memory is exactly as it was.
    pub(crate) fn create_space(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        task: TaskId,
        node: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<u32, crate::mm::NoMemory> {
        let vm = self.vmm();
        let id = vm.spaces.len() as u32;
        let types = vm.phys.pb_type.clone();
        let r = self.populate_space(t, c, task, node, p, probe);
        if r.is_err() {
            self.unwind_space(*t, id, &types);
        }
        r
    }

    /// Undoes a [`Os::populate_space`] of space `id` that ran out of memory: every page it
    /// mapped of its own is freed, its mappings of the page cache dropped, its page-table
    /// pages freed, and every pageblock given back the type it had (`types`).
    fn unwind_space(&mut self, t: SimTime, id: u32, types: &[crate::mm::MigrateType]) {
        let vm = self.vmm();
        let mut frees: Vec<(u32, u8)> = Vec::new();
        let ours = vm.spaces.last().is_some_and(|sp| sp.id == id);
        if let Some(sp) = ours.then(|| vm.spaces.pop()).flatten() {
            for (vpn, pte) in sp.ptes.iter().enumerate() {
                let Pte::Present { pfn } = *pte else {
                    continue;
                };
                let i = pfn as usize;
                vm.phys.map.rmap[i].retain(|r| !(r.mm == id && r.vpn == vpn as u32));
                match vm.phys.map.owner[i] {
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
            frees.extend(sp.pt_pages.iter().map(|&pt| (pt, 0)));
        }
        for (pfn, order) in frees {
            self.free_frame(t, pfn, order);
        }
        let vm = self.vmm();
        for (k, &ty) in types.iter().enumerate() {
            if vm.phys.pb_type[k] != ty {
                vm.phys.set_pageblock_type(k as u32 * PAGEBLOCK_PAGES, ty);
            }
        }
    }

    fn populate_space(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        task: TaskId,
        node: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<u32, crate::mm::NoMemory> {
        let mc = self.cfg.memory.clone();
        let vm = self.vmm();
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
                        self.free_frame(*t, pt, 0);
                    }
                    return Err(e);
                }
            }
        }
        // Page-table pages start cleared (every entry "nothing mapped"), as pte_alloc's
        // zeroed pages do: a frame freed by someone else holds their data.
        for &pt in &pt_pages {
            self.clear_page(t, c, pt, p, probe);
        }
        let vm = self.vmm();
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
        self.emit(
            *t,
            OsEvent::MemObject {
                obj: MemObj::Anon(id),
                pages: anon_pages,
                slots,
            },
        );
        let hw = self.hw(c);
        for v in vmas {
            match v.kind {
                VmaKind::Anon | VmaKind::Mlocked => {
                    for vpn in v.start..v.start + v.pages {
                        let owner = Owner::Anon { mm: id, page: vpn };
                        let pfn = self.vmm().phys.alloc(node, 0, Gfp::Movable, owner)?;
                        self.clear_page(t, c, pfn, p, probe);
                        let vm = self.vmm();
                        let mut f = flags::LRU | flags::UPTODATE | flags::DIRTY;
                        if v.kind == VmaKind::Mlocked {
                            f |= flags::MLOCKED;
                        }
                        vm.phys.map.flags[pfn as usize] |= f;
                        vm.phys.map.rmap[pfn as usize].push(PteRef { mm: id, vpn });
                        self.write_pte(
                            t,
                            c,
                            PteRef { mm: id, vpn },
                            Pte::Present { pfn },
                            p,
                            probe,
                        );
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
                            self.vmm()
                                .phys
                                .alloc(node, PAGEBLOCK_ORDER, Gfp::Movable, owner)?;
                        for sub in 0..PAGEBLOCK_PAGES {
                            let pfn = head + sub;
                            let vpn = v.start + h * PAGEBLOCK_PAGES + sub;
                            self.clear_page(t, c, pfn, p, probe);
                            let vm = self.vmm();
                            vm.phys.map.owner[pfn as usize] = Owner::Huge {
                                mm: id,
                                huge: (v.start / PAGEBLOCK_PAGES) + h,
                                sub,
                            };
                            vm.phys.map.flags[pfn as usize] = flags::UPTODATE
                                | flags::DIRTY
                                | if sub == 0 { flags::HEAD } else { flags::TAIL };
                            vm.phys.map.rmap[pfn as usize].push(PteRef { mm: id, vpn });
                            self.write_pte(
                                t,
                                c,
                                PteRef { mm: id, vpn },
                                Pte::Present { pfn },
                                p,
                                probe,
                            );
                        }
                    }
                }
                VmaKind::File { file } => {
                    for k in 0..v.pages {
                        let vpn = v.start + k;
                        // A page under I/O or migration (locked) is not mapped now: the
                        // task faults on it later and waits for it, as it would in Linux.
                        let vm = self.vmm();
                        let cached = vm.files[file as usize].cache[k as usize]
                            .filter(|&pfn| !vm.phys.map.has(pfn, flags::LOCKED));
                        match cached {
                            Some(pfn) => {
                                self.vmm().phys.map.rmap[pfn as usize].push(PteRef { mm: id, vpn });
                                self.write_pte(
                                    t,
                                    c,
                                    PteRef { mm: id, vpn },
                                    Pte::Present { pfn },
                                    p,
                                    probe,
                                );
                            }
                            None => self.write_pte(
                                t,
                                c,
                                PteRef { mm: id, vpn },
                                Pte::FileHole,
                                p,
                                probe,
                            ),
                        }
                    }
                }
            }
        }
        let _ = hw;
        Ok(id)
    }

    /// Clears frame `pfn` by copying the zero page over it (as CPU `c`).
    fn clear_page(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        pfn: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let hw = self.hw(c);
        let vm = self.vmm();
        let (src, dst) = (vm.phys.addr(vm.zero_pfn), vm.phys.addr(pfn));
        if let Ok(lat) =
            p.machine
                .copy_page(*t, hw, PhysAddr::new(src), PhysAddr::new(dst), true, probe)
        {
            *t += lat;
        }
    }

    /// Creates the configured files, their page cache filled from the disk (device DMA).
    pub(crate) fn create_files(
        &mut self,
        t: &mut SimTime,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let mc = self.cfg.memory.clone();
        let nodes: Vec<u32> = self
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
            let vm = self.vmm();
            vm.files.push(File {
                id: f,
                fs,
                pages: mc.file_pages,
                cache: vec![None; mc.file_pages as usize],
                mappers: Vec::new(),
                node,
            });
            self.emit(
                *t,
                OsEvent::MemObject {
                    obj: MemObj::File(f),
                    pages: mc.file_pages,
                    slots: mc.probe_words,
                },
            );
            for page in 0..mc.file_pages {
                let owner = Owner::File { file: f, page };
                let Ok(pfn) = self.vmm().phys.alloc(node, 0, Gfp::Movable, owner) else {
                    continue;
                };
                self.disk_read(*t, f, page, pfn, p, probe);
                let vm = self.vmm();
                vm.phys.map.flags[pfn as usize] |= flags::LRU | flags::UPTODATE;
                if !fs.has_backing() {
                    vm.phys.map.flags[pfn as usize] |= flags::DIRTY;
                }
                vm.files[f as usize].cache[page as usize] = Some(pfn);
            }
        }
    }

    /// The disk writes file page `page` into frame `pfn` by DMA.
    fn disk_read(
        &mut self,
        now: SimTime,
        file: u32,
        page: u32,
        pfn: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let vm = self.vmm();
        let data: Box<[u64]> = match vm.disk.get(&(file, page)) {
            Some(d) => d.clone(),
            None => (0..vm.wpp).map(|w| file_word(file, page, w)).collect(),
        };
        let addr = PhysAddr::new(vm.phys.addr(pfn));
        let _ = p.machine.dma_write(now, &DISK, addr, &data, probe);
    }

    /// What a task's access to `vpn` of `mm` finds, as CPU `c`: the frame, or the frame it
    /// must wait for (migration, I/O).
    pub(crate) fn translate(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        at: PteRef,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<u32, u32> {
        let PteRef { mm, vpn } = at;
        let hw = self.hw(c);
        let vm = self.vmm();
        if let Some(pfn) = vm.tlbs[c.index()].lookup(mm, vpn) {
            vm.stats.tlb_hits += 1;
            return Ok(pfn);
        }
        vm.stats.page_walks += 1;
        let ppp = vm.ptes_per_page();
        let space = &mut vm.spaces[mm as usize];
        space.note_cpu(c.0);
        let pt = space.pt_pages[(vpn / ppp) as usize];
        let addr = vm.phys.addr(pt) + 8 * u64::from(vpn % ppp);
        let word = load(p, probe, t, hw, addr);
        match Pte::decode(word) {
            Pte::Present { pfn } => {
                self.vmm().tlbs[c.index()].fill(mm, vpn, pfn);
                Ok(pfn)
            }
            Pte::Migration { pfn } => {
                self.vmm().stats.migration_waits += 1;
                Err(pfn)
            }
            Pte::Swap { slot } => Err(self.swap_in(t, c, tid, mm, vpn, slot, p, probe)),
            Pte::FileHole => self.file_fault(t, c, mm, vpn, p, probe),
            Pte::None => {
                // A discarded page touched again: a cleared page on this CPU's node.
                let node = self.pcpu[c.index()].node;
                self.vmm().stats.zero_fills += 1;
                let owner = Owner::Anon { mm, page: vpn };
                match self.vmm().phys.alloc(node, 0, Gfp::Movable, owner) {
                    Ok(pfn) => {
                        self.clear_page(t, c, pfn, p, probe);
                        let vm = self.vmm();
                        vm.phys.map.flags[pfn as usize] |= flags::LRU | flags::UPTODATE;
                        vm.phys.map.rmap[pfn as usize].push(PteRef { mm, vpn });
                        self.write_pte(t, c, PteRef { mm, vpn }, Pte::Present { pfn }, p, probe);
                        self.vmm().tlbs[c.index()].fill(mm, vpn, pfn);
                        Ok(pfn)
                    }
                    Err(_) => Err(u32::MAX),
                }
            }
        }
    }

    pub(crate) fn start_io(&mut self, now: SimTime, io: Io) {
        let lat = match io {
            Io::SwapIn { .. } | Io::SwapOut { .. } => self.cfg.memory.swap_latency,
            Io::FileRead { .. } | Io::Writeback { .. } | Io::DirectWrite { .. } => {
                self.cfg.memory.disk_latency
            }
        };
        let vm = self.vmm();
        let id = vm.next_io;
        vm.next_io += 1;
        vm.io.insert(id, io);
        let _ = self.post(now + lat, OsEv::Io(id));
    }

    #[allow(clippy::too_many_arguments)]
    fn swap_in(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        _tid: TaskId,
        mm: u32,
        vpn: u32,
        slot: u32,
        _p: &mut Platform,
        _probe: &mut PlatformProbe,
    ) -> u32 {
        // A fault on an entry already being read in waits for that read.
        let pending = self.vmm().io.values().find_map(|io| match *io {
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
        if let Some(&pfn) = self.vmm().swap_cache.get(&slot) {
            self.vmm().stats.swap_cache_waits += 1;
            return pfn;
        }
        // A fault allocates on the node of the CPU taking it.
        let node = self.pcpu[c.index()].node;
        let owner = Owner::Anon { mm, page: vpn };
        let Ok(pfn) = self.vmm().phys.alloc(node, 0, Gfp::Movable, owner) else {
            return u32::MAX;
        };
        let vm = self.vmm();
        vm.phys.map.flags[pfn as usize] |= flags::LOCKED | flags::SWAPCACHE;
        vm.phys.map.pins[pfn as usize] += 1;
        vm.stats.swap_ins += 1;
        self.start_io(*t, Io::SwapIn { pfn, slot, mm, vpn });
        pfn
    }

    fn file_fault(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        mm: u32,
        vpn: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<u32, u32> {
        let vm = self.vmm();
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
            vm.phys.map.rmap[pfn as usize].push(PteRef { mm, vpn });
            self.write_pte(t, c, PteRef { mm, vpn }, Pte::Present { pfn }, p, probe);
            self.vmm().tlbs[c.index()].fill(mm, vpn, pfn);
            return Ok(pfn);
        }
        let node = vm.files[file as usize].node;
        let Ok(pfn) = vm
            .phys
            .alloc(node, 0, Gfp::Movable, Owner::File { file, page })
        else {
            return Err(u32::MAX);
        };
        vm.phys.map.flags[pfn as usize] |= flags::LOCKED;
        vm.phys.map.pins[pfn as usize] += 1;
        vm.files[file as usize].cache[page as usize] = Some(pfn);
        vm.stats.file_reads += 1;
        self.start_io(
            *t,
            Io::FileRead {
                pfn,
                file,
                page,
                mm,
                vpn,
            },
        );
        Err(pfn)
    }

    /// A page whose data a device has just read in: unlocked (and `clear` cleared), `set`
    /// set, unpinned, mapped at `at` (reverse map and PTE), its waiters woken.
    #[allow(clippy::too_many_arguments)]
    fn map_read_page(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        pfn: u32,
        clear: u16,
        set: u16,
        at: PteRef,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let map = &mut self.vmm().phys.map;
        map.clear(pfn, flags::LOCKED | clear);
        map.set(pfn, set);
        map.pins[pfn as usize] -= 1;
        map.rmap[pfn as usize].push(at);
        self.write_pte(t, c, at, Pte::Present { pfn }, p, probe);
        self.wake_page(t, c, pfn, p, probe);
    }

    /// A block-device transfer finished: the data moves by DMA, the page is mapped and its
    /// waiters woken.
    pub(crate) fn io_done(
        &mut self,
        now: SimTime,
        id: u64,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let Some(io) = self.vmm().io.remove(&id) else {
            return;
        };
        let c = self.any_running_cpu(p);
        let mut t = now;
        match io {
            Io::SwapIn { pfn, slot, mm, vpn } => {
                let vm = self.vmm();
                let data: Option<Box<[u64]>> = vm.swap.read(slot).map(Into::into);
                let addr = PhysAddr::new(vm.phys.addr(pfn));
                if let Some(d) = data {
                    let _ = p.machine.dma_write(now, &SWAP_DEVICE, addr, &d, probe);
                }
                self.vmm().swap.release(slot);
                let set = flags::LRU | flags::UPTODATE | flags::DIRTY | flags::REFERENCED;
                let at = PteRef { mm, vpn };
                self.map_read_page(&mut t, c, pfn, flags::SWAPCACHE, set, at, p, probe);
            }
            Io::FileRead {
                pfn,
                file,
                page,
                mm,
                vpn,
            } => {
                self.disk_read(now, file, page, pfn, p, probe);
                let set = flags::LRU | flags::UPTODATE | flags::REFERENCED;
                let at = PteRef { mm, vpn };
                self.map_read_page(&mut t, c, pfn, 0, set, at, p, probe);
            }
            Io::SwapOut { pfn, slot } => {
                let vm = self.vmm();
                vm.swap_cache.remove(&slot);
                vm.phys.map.clear(pfn, flags::WRITEBACK | flags::SWAPCACHE);
                vm.phys.map.pins[pfn as usize] = vm.phys.map.pins[pfn as usize].saturating_sub(1);
                self.free_frame(t, pfn, 0);
                // A task that faulted on the swap entry meanwhile reads the slot now.
                self.wake_page(&mut t, c, pfn, p, probe);
            }
            Io::Writeback { pfn, file, page } => {
                // The disk reads the page now (DMA) and keeps it.
                let vm = self.vmm();
                let addr = PhysAddr::new(vm.phys.addr(pfn));
                let mut buf = vec![0u64; vm.wpp as usize];
                let _ = p.machine.dma_read(now, &DISK, addr, &mut buf, probe);
                let vm = self.vmm();
                vm.disk.insert((file, page), buf.into_boxed_slice());
                vm.stats.writebacks += 1;
                if vm.phys.map.owner[pfn as usize] == (Owner::File { file, page }) {
                    vm.phys.map.clear(pfn, flags::WRITEBACK | flags::PRIVATE);
                    vm.phys.map.pins[pfn as usize] =
                        vm.phys.map.pins[pfn as usize].saturating_sub(1);
                } else {
                    // The page moved or went away while the device still had it.
                    vm.stats.stale_io += 1;
                }
            }
            Io::DirectWrite { pfn } => {
                let vm = self.vmm();
                let addr = PhysAddr::new(vm.phys.addr(pfn));
                let mut buf = vec![0u64; vm.wpp as usize];
                let _ = p.machine.dma_read(now, &DISK, addr, &mut buf, probe);
                let vm = self.vmm();
                vm.phys.map.pins[pfn as usize] = vm.phys.map.pins[pfn as usize].saturating_sub(1);
            }
        }
    }

    /// Drops the reference a discard held on `pfn` and frees it.
    pub(crate) fn free_discarded(&mut self, t: SimTime, pfn: u32) {
        let vm = self.vmm();
        let i = pfn as usize;
        vm.phys.map.pins[i] = vm.phys.map.pins[i].saturating_sub(1);
        self.free_frame(t, pfn, 0);
    }

    /// Frees `1 << order` frames at `pfn`. The event says what the kernel's free-time check
    /// would find wrong: a frame still mapped, locked, under writeback or pinned for DMA.
    pub(crate) fn free_frame(&mut self, t: SimTime, pfn: u32, order: u8) {
        let vm = self.vmm();
        let mut mapped = 0u32;
        let mut busy = 0u8;
        for f in pfn..pfn + (1 << order) {
            let i = f as usize;
            mapped += vm.phys.map.rmap[i].len() as u32;
            let fl = vm.phys.map.flags[i];
            if fl & flags::LOCKED != 0 {
                busy |= crate::mm::page::busy::LOCKED;
            }
            if fl & flags::WRITEBACK != 0 {
                busy |= crate::mm::page::busy::WRITEBACK;
            }
            if vm.phys.map.pins[i] > 0 {
                busy |= crate::mm::page::busy::PINNED;
            }
        }
        let owner = vm.phys.map.owner[pfn as usize];
        if mapped > 0 || busy != 0 {
            vm.stats.bad_frees += 1;
        }
        vm.phys.free(pfn, order);
        self.emit(
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

    /// Wakes every task waiting for frame `pfn`; `by` places them (a reader of the CPU
    /// maps, as any wakeup).
    pub(crate) fn wake_page(
        &mut self,
        t: &mut SimTime,
        by: LogicalCpu,
        pfn: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let Some(list) = self.vmm().waiters.remove(&pfn) else {
            return;
        };
        for tid in list {
            if self.tasks[tid.0 as usize].state != TaskState::Blocked {
                continue;
            }
            let v = self.reader_begin(t, by, "page wakeup", p, probe);
            if let Some(target) = self.select_task_rq(tid, v, by) {
                self.reader_use(t, by, v, target, p, probe);
                self.stats.wakeups += 1;
                self.enqueue(*t, tid, target, EnqueueWhy::Wakeup);
                self.kick(target, *t);
            }
            self.reader_end(*t, by);
        }
    }

    /// Puts the running task `tid` to sleep until frame `pfn` is ready.
    pub(crate) fn wait_page(&mut self, t: SimTime, c: LogicalCpu, tid: TaskId, pfn: u32) {
        self.vmm().waiters.entry(pfn).or_default().push(tid);
        self.tasks[tid.0 as usize].state = TaskState::Blocked;
        self.emit(t, OsEvent::Block { task: tid, cpu: c });
    }

    /// Task `tid` on `c` discards one of its private anonymous pages (chosen at random; not
    /// mlocked, not hugetlb, mapped and not busy): its PTE is cleared and the local TLB entry
    /// dropped. Returns the frame, which the caller frees once the TLB shootdown is over.
    pub(crate) fn discard_page(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        mm: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Option<u32> {
        let anon = self.vm.as_ref()?.spaces[mm as usize]
            .vmas
            .iter()
            .find(|v| v.kind == VmaKind::Anon)
            .copied()?;
        let k = self.tasks[tid.0 as usize].rng.index(anon.pages as usize) as u32;
        let vpn = anon.start + k;
        let vm = self.vmm();
        let Pte::Present { pfn } = vm.spaces[mm as usize].ptes[vpn as usize] else {
            return None;
        };
        let i = pfn as usize;
        if i >= vm.phys.map.len()
            || vm.phys.map.flags[i] & (flags::LOCKED | flags::WRITEBACK) != 0
            || vm.phys.map.pins[i] > 0
        {
            return None;
        }
        vm.phys.map.rmap[i].retain(|r| !(r.mm == mm && r.vpn == vpn));
        // Off the LRU, held by the shootdown until it frees it: nobody migrates it meanwhile.
        vm.phys.map.clear(pfn, flags::LRU);
        vm.phys.map.pins[i] += 1;
        vm.stats.discards += 1;
        self.write_pte(t, c, PteRef { mm, vpn }, Pte::None, p, probe);
        self.vmm().tlbs[c.index()].invalidate(mm, vpn);
        self.emit(
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
    pub(crate) fn write_back_now(
        &mut self,
        now: SimTime,
        pfn: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let vm = self.vmm();
        let Owner::File { file, page } = vm.phys.map.owner[pfn as usize] else {
            return;
        };
        let addr = PhysAddr::new(vm.phys.addr(pfn));
        let mut buf = vec![0u64; vm.wpp as usize];
        let _ = p.machine.dma_read(now, &DISK, addr, &mut buf, probe);
        let vm = self.vmm();
        vm.disk.insert((file, page), buf.into_boxed_slice());
        vm.stats.writebacks += 1;
        vm.phys.map.clear(pfn, flags::DIRTY | flags::PRIVATE);
    }

    /// A task writes anonymous page `page` of `mm` to the disk with direct I/O: the page
    /// is pinned until the disk has read it by DMA.
    pub(crate) fn direct_io(&mut self, now: SimTime, mm: u32, page: u32) {
        let vm = self.vmm();
        let Some(Pte::Present { pfn }) = vm.spaces[mm as usize].ptes.get(page as usize).copied()
        else {
            return;
        };
        if (pfn as usize) >= vm.phys.map.len() {
            return;
        }
        vm.phys.map.pins[pfn as usize] += 1;
        vm.stats.direct_ios += 1;
        self.start_io(now, Io::DirectWrite { pfn });
    }

    /// The flusher: every `writeback_interval`, starts writeback of the oldest dirty file
    /// pages and clears every page's referenced bit (what is not touched again is cold).
    pub(crate) fn flusher(&mut self, now: SimTime, p: &mut Platform, probe: &mut PlatformProbe) {
        let every = self.cfg.memory.writeback_interval;
        let Some(vm) = self.vm.as_mut() else {
            return;
        };
        if now < vm.next_flush {
            return;
        }
        vm.next_flush = now + every;
        for f in &mut vm.phys.map.flags {
            *f &= !flags::REFERENCED;
        }
        let batch = self.cfg.memory.writeback_batch as usize;
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
                let fl = vm.phys.map.flags[*pfn as usize];
                if fl & flags::DIRTY != 0 && fl & (flags::WRITEBACK | flags::LOCKED) == 0 {
                    dirty.push(*pfn);
                }
            }
        }
        for pfn in dirty.into_iter().take(batch) {
            MemFlow::start_writeback(self, now, pfn, p, probe);
        }
    }

    /// Every kernel object the OS holds in memory, with its address: boot slab objects,
    /// the live versions of the CPU maps, page-table pages, node descriptors.
    pub fn kernel_objects(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .slab_objs
            .iter()
            .enumerate()
            .map(|(k, &a)| (format!("slab object {k}"), a))
            .collect();
        v.extend(
            self.maps
                .iter()
                .map(|(ver, o)| (format!("cpu maps v{ver}"), o.addr)),
        );
        if let Some(vm) = &self.vm {
            for sp in &vm.spaces {
                for (k, &pt) in sp.pt_pages.iter().enumerate() {
                    v.push((format!("page table {k} of mm{}", sp.id), vm.phys.addr(pt)));
                }
            }
            for n in &vm.phys.nodes {
                if let Some(pg) = n.pgdat {
                    v.push((format!("pg_data of node{}", n.id), vm.phys.addr(pg)));
                }
            }
        }
        v
    }

    /// Whether defect `d` is injected.
    pub(crate) fn has_defect(&self, d: OsDefect) -> bool {
        self.defects.has(d)
    }
}
