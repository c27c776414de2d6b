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
use crate::mm::vm::{SwapMap, Tlb};
use crate::mm::{Gfp, Owner, PAGEBLOCK_ORDER, PAGEBLOCK_PAGES, PhysMem, ZoneKind, flags};

/// Parses a SLIT (ACPI table) into a distance matrix.
fn parse_slit(t: &[u8]) -> Option<Vec<Vec<u8>>> {
    let n = u64::from_le_bytes(t.get(36..44)?.try_into().ok()?) as usize;
    let body = t.get(44..44 + n * n)?;
    Some(body.chunks(n).map(<[u8]>::to_vec).collect())
}

/// What the SRAT says about memory: every memory affinity range (present or hot-pluggable)
/// and every proximity domain (of processors and memory).
struct SratMemory {
    /// `(proximity, base, length)` of each memory range.
    ranges: Vec<(u32, u64, u64)>,
    /// One more than the highest proximity domain.
    domains: u32,
}

/// Parses the SRAT (ACPI table): processor (type 0) and memory (type 1) affinity structures.
fn parse_srat(t: &[u8]) -> Option<SratMemory> {
    let le32 = |b: &[u8], o: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
    };
    let le64 = |b: &[u8], o: usize| -> Option<u64> {
        Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
    };
    let len = (le32(t, 4)? as usize).min(t.len());
    let mut out = SratMemory {
        ranges: Vec::new(),
        domains: 0,
    };
    // The 36-byte header, then 12 reserved bytes.
    let mut o = 48;
    while o + 2 <= len {
        let (kind, n) = (t[o], usize::from(t[o + 1]));
        let e = t.get(o..o + n.max(2))?;
        let domain = match kind {
            0 => u32::from_le_bytes([*e.get(2)?, *e.get(9)?, *e.get(10)?, *e.get(11)?]),
            1 => {
                let d = le32(e, 2)?;
                out.ranges.push((d, le64(e, 8)?, le64(e, 16)?));
                d
            }
            _ => 0,
        };
        out.domains = out.domains.max(domain + 1);
        o += n.max(2);
    }
    Some(out)
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
        // The page size is the kernel's (the machine's frame granularity); everything about
        // how much memory there is and where comes from ACPI: the SRAT's memory ranges,
        // present or hot-pluggable, size the frame array and the nodes.
        let page_shift = p.geometry().page_shift;
        let srat = parse_srat(&p.srat()).ok_or_else(|| OsError::Config {
            field: "acpi.srat".into(),
            message: "the SRAT cannot be parsed".into(),
        })?;
        let end = srat
            .ranges
            .iter()
            .map(|&(_, b, l)| b + l)
            .max()
            .unwrap_or(0);
        let slit = parse_slit(&p.slit());
        // A node per proximity domain the SRAT or the SLIT names.
        let nodes = srat
            .domains
            .max(slit.as_ref().map_or(0, |d| d.len() as u32))
            .max(1);
        // A node spans what its SRAT range does (interleaved memory: one range over all of
        // them, shared evenly).
        let node_bytes = match srat.ranges.as_slice() {
            [(_, _, l)] if nodes > 1 => l / u64::from(nodes),
            r => r.iter().map(|&(_, _, l)| l).max().unwrap_or(0),
        };
        let mc: &MemConfig = &os.config().memory;
        let block_pages = (mc.block_size.0 >> page_shift) as u32;
        let cell_frames = (node_bytes >> page_shift) as u32;
        if block_pages < PAGEBLOCK_PAGES || cell_frames % block_pages != 0 {
            return Err(OsError::Config {
                field: "memory.block_size".into(),
                message: format!(
                    "{} does not divide a cell's {} MiB into blocks of at least {} pages",
                    mc.block_size,
                    node_bytes >> 20,
                    PAGEBLOCK_PAGES
                ),
            });
        }
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
        let distance = slit.unwrap_or_else(|| {
            (0..nodes)
                .map(|a| (0..nodes).map(|b| if a == b { 10 } else { 20 }).collect())
                .collect()
        });
        let mut phys = PhysMem::new(
            (end >> page_shift) as u32,
            page_shift,
            block_pages,
            nodes,
            cell_frames,
            &movable,
            distance,
        );
        phys.alloc_from_isolated = os.has_defect(OsDefect::AllocFromIsolated);
        phys.keep_offline_pages_listed = os.has_defect(OsDefect::KeepOfflinePagesListed);
        let reserved = (crate::mm::bootmem::RESERVED_PER_NODE >> page_shift) as u32;
        for r in os.scan().memory.iter().filter(|r| r.present) {
            let first = (r.base >> page_shift) as u32;
            let last = ((r.base + r.len) >> page_shift) as u32;
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
            // No swap until the disk is mounted.
            swap: SwapMap::new(0),
            disk: None,
            tlbs: (0..os.nr_cpus())
                .map(|_| Tlb::new(mc.tlb_entries as usize))
                .collect(),
            zero_pfn: zero,
            waiters: BTreeMap::new(),
            swap_cache: BTreeMap::new(),
            io: BTreeMap::new(),
            next_io: 1,
            stats: VmStats::default(),
            wpp: ((1u64 << page_shift) / 8) as u32,
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

#[cfg(test)]
mod tests {
    use acpi_model::tables::{CpuEntry, MemoryEntry, srat};
    use sim_core::LsapicId;

    #[test]
    fn the_srat_sizes_memory_and_names_the_nodes() {
        let cpu = |cell: u32| CpuEntry {
            uid: cell,
            lsapic: LsapicId {
                id: cell as u8,
                eid: 0,
            },
            enabled: true,
            proximity: cell,
        };
        let mem = |cell: u32, enabled| MemoryEntry {
            proximity: cell,
            base: u64::from(cell) << 28,
            len: 1 << 28,
            enabled,
            hotpluggable: cell != 0,
        };
        // Cell 2's memory is absent but hot-pluggable: it still counts; cell 3 has only a
        // processor.
        let t = srat(
            &[cpu(0), cpu(1), cpu(3)],
            &[mem(0, true), mem(1, true), mem(2, false)],
        );
        let s = super::parse_srat(&t).unwrap();
        assert_eq!(
            s.ranges,
            [
                (0, 0, 1 << 28),
                (1, 1 << 28, 1 << 28),
                (2, 2 << 28, 1 << 28)
            ]
        );
        assert_eq!(s.domains, 4);
    }
}
