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
use sim_core::{Entity, SimTime};

use crate::config::{MemConfig, OsDefect};
use crate::cpumask::LogicalCpu;
use crate::event::{MemObj, TaskId};
use crate::hw::store;
use crate::kernel::{Os, OsError};
use crate::mm::vm::{AddressSpace, BlockStore, File, Pte, Tlb, VmaKind};
use crate::mm::{Gfp, Owner, PAGEBLOCK_ORDER, PAGEBLOCK_PAGES, PhysMem, ZoneKind, flags};

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
    pub(super) next_io: u64,
    /// Counters.
    pub stats: VmStats,
    /// Words per page.
    pub wpp: u32,
    slabs: u32,
    pub(super) next_flush: SimTime,
    pub(super) flush_cursor: usize,
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
            let o = m.owner(i as u32);
            // Free frames are in the free lists hashed above.
            if matches!(o, Owner::Offline | Owner::Free) {
                continue;
            }
            h.word(i as u64);
            h.word(owner_word(o));
            h.word(
                u64::from(m.flags(i as u32) & !flags::REFERENCED)
                    | u64::from(m.pins(i as u32)) << 16,
            );
            for r in m.rmap(i as u32) {
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

/// The kernel's memory-management operations (page faults, the block device, kernel
/// allocations, address spaces), each on the kernel it runs in.
pub(crate) enum Mm {}

impl Mm {
    /// Sets up the page allocator from what the ACPI scan found: every present memory
    /// device's range, one node per `_PXM`, the SLIT distances; the boot node keeps the
    /// firmware's first megabyte and gets the normal zone, the other nodes are movable unless
    /// configured otherwise. Then the zero page and the boot slab pages.
    pub(crate) fn mm_boot(os: &mut Os, boot_node: u32, p: &Platform) -> Result<(), OsError> {
        let g = p.geometry();
        let mc: &MemConfig = &os.cfg.memory;
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
        phys.alloc_from_isolated = os.has_defect(OsDefect::AllocFromIsolated);
        let reserved = (crate::mm::bootmem::RESERVED_PER_NODE >> g.page_shift) as u32;
        for r in os.scan.memory.iter().filter(|r| r.present) {
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
        os.vm = Some(Vm {
            phys,
            spaces: Vec::new(),
            files: Vec::new(),
            swap: BlockStore::new(mc.swap_slots),
            disk: BTreeMap::new(),
            tlbs: (0..os.nr)
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

    /// Frees a kernel allocation of `bytes` at `addr` (it is handed out again).
    pub(crate) fn kfree(os: &mut Os, addr: u64, bytes: u64) {
        os.mem.free(addr, bytes);
    }

    /// A kernel allocation of `bytes` (slab-like objects, per-CPU areas, driver rings):
    /// carved from slab pages the buddy allocator gives the kernel (normal zones only).
    pub(crate) fn kmalloc(
        os: &mut Os,
        node: u32,
        bytes: u64,
        align: u64,
    ) -> Result<u64, crate::mm::bootmem::OutOfMemory> {
        let a = Mm::kmalloc_raw(os, node, bytes, align)?;
        // Memory handed out again is no freed buffer any more: its poison is the new
        // owner's to overwrite.
        os.pcihp
            .poisoned
            .retain(|b| b.addr + b.len <= a || a + bytes <= b.addr);
        Ok(a)
    }

    pub(crate) fn kmalloc_raw(
        os: &mut Os,
        node: u32,
        bytes: u64,
        align: u64,
    ) -> Result<u64, crate::mm::bootmem::OutOfMemory> {
        if let Ok(a) = os.mem.alloc(node, bytes, align) {
            return Ok(a);
        }
        let vm = os.vmm();
        let page = 1u64 << vm.phys.page_shift;
        let pages = bytes.div_ceil(page).max(1);
        let order = pages.next_power_of_two().trailing_zeros() as u8;
        if order > PAGEBLOCK_ORDER {
            return Err(crate::mm::bootmem::OutOfMemory { bytes });
        }
        vm.slabs += 1;
        let slab = vm.slabs;
        let pfn = vm
            .phys
            .alloc(node, order, Gfp::Kernel, Owner::Slab { slab })
            .map_err(|_| crate::mm::bootmem::OutOfMemory { bytes })?;
        for k in 1..1u32 << order {
            vm.phys.map.set_owner(pfn + k, Owner::Slab { slab });
        }
        let base = vm.phys.addr(pfn);
        let real_node = vm.phys.blocks[vm.phys.block_of(pfn) as usize].node;
        os.mem.add_arena(real_node, base, page << order);
        os.mem.alloc(node, bytes, align)
    }

    /// Boot-time kernel pages (slab caches that never shrink): unmovable, in normal zones.
    pub(crate) fn mm_boot_slabs(
        os: &mut Os,
        t: &mut SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let n = os.cfg.memory.slab_pages;
        let hw = os.hw(c);
        let page = 1u64 << os.vmm().phys.page_shift;
        let normal: Vec<u32> = os
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
            if let Ok(a) = Mm::kmalloc(os, node, page, page) {
                store(p, probe, t, hw, a, 0x51AB_0000 | u64::from(k));
                os.slab_objs.push(a);
            }
        }
    }
}
