//! The kernel's memory management at work: the page allocator booted from the ACPI memory
//! devices and the SLIT, kernel allocations (boot slabs, kmalloc), and — in the submodules —
//! address spaces (`space`), page faults (`fault`) and the block device behind swap and
//! files (`blockdev`). Everything here runs as the kernel (`Os`) and reaches memory through
//! the platform; the state it works on is [`crate::mm::manager::Vm`], kept by the
//! bookkeeping below it, which never names the kernel.

mod blockdev;
mod fault;
mod space;

use crate::hw::Cx;
use std::collections::BTreeMap;

use acpi_model::Platform;
use sim_core::SimTime;

use crate::config::{MemConfig, OsDefect};
use crate::cpumask::LogicalCpu;
use crate::hw::store;
use crate::kernel::{Os, OsError};
use crate::mm::manager::{Vm, VmStats};
use crate::mm::vm::{BlockStore, Tlb};
use crate::mm::{Gfp, Owner, PAGEBLOCK_ORDER, PAGEBLOCK_PAGES, PhysMem, ZoneKind, flags};

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
        let mc: &MemConfig = &os.config().memory;
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
        for r in os.scan().memory.iter().filter(|r| r.present) {
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
            tlbs: (0..os.nr_cpus())
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
    pub(crate) fn mm_boot_slabs(os: &mut Os, t: &mut SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let n = os.config().memory.slab_pages;
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
                store(cx, t, hw, a, 0x51AB_0000 | u64::from(k));
                os.slab_objs.push(a);
            }
        }
    }
}
