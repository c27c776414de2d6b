//! Memory management: nodes, zones, the buddy allocator, memory blocks, the page
//! descriptors, address spaces with page tables and TLBs, the reverse map, the page cache and
//! swap (SPEC OS-MEM-1..3). Pure bookkeeping: every access these structures stand for (page
//! tables, copies, device transfers) is made by the kernel through the platform
//! (`crate::memory`, `crate::memhotplug`).
//!
//! ```text
//!   node n (one per cell) ── zone Normal  ─┐ free lists per order × migrate type (buddy)
//!                         └─ zone Movable ─┘ pageblocks: movable/unmovable/reclaimable/isolate
//!   zonelist(n): every zone, nearest node first (SLIT), rebuilt on every change
//!   memory blocks (sections): online / going-offline / offline, each with its own mem_map
//!   mem_map: flags, owner, order, pins, rmap  — dense per frame
//!   address spaces: VMAs, PTEs (mirror of the page-table pages in simulated memory)
//! ```

pub mod bootmem;
pub mod buddy;

pub mod kernel;
pub mod manager;
pub mod page;

pub mod vm;

use std::collections::BTreeMap;

use serde::Serialize;

pub use buddy::{FreeArea, MigrateType, PAGEBLOCK_ORDER, PAGEBLOCK_PAGES};
pub use page::{MemMap, Owner, PteRef, flags};

/// Bytes of one page descriptor (`struct page`) in simulated memory.
pub const PAGE_DESC_BYTES: u64 = 64;

/// The two zones of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// Kernel and user allocations (`ZONE_NORMAL`).
    Normal,
    /// User allocations only (`ZONE_MOVABLE`): its memory can always be emptied.
    Movable,
}

impl ZoneKind {
    /// Name as Linux spells it (`valid_zones`).
    pub const fn name(self) -> &'static str {
        match self {
            ZoneKind::Normal => "Normal",
            ZoneKind::Movable => "Movable",
        }
    }
}

/// What an allocation may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gfp {
    /// A kernel allocation: normal zones only, unmovable pageblocks.
    Kernel,
    /// A user allocation: movable zones first, then normal ones.
    Movable,
}

/// One zone.
#[derive(Clone, Debug)]
pub struct Zone {
    /// The NUMA node (the cell, by `_PXM`).
    pub node: u32,
    /// Normal (kernel allocations) or Movable (what hot-remove can empty).
    pub kind: ZoneKind,
    /// Free lists.
    pub area: FreeArea,
    /// Pages online in the zone.
    pub present: u64,
}

/// State of a memory block (`memoryN/state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockState {
    /// No memory there (absent cell) or never onlined.
    Offline,
    /// Managed by the allocator.
    Online,
    /// Being emptied.
    GoingOffline,
}

impl BlockState {
    /// As `memoryN/state` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            BlockState::Offline => "offline",
            BlockState::Online => "online",
            BlockState::GoingOffline => "going-offline",
        }
    }
}

/// Where a block's page descriptors live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemmapPlace {
    /// On the block itself (its first pages; freed with it).
    OnBlock,
    /// On other memory (these frames, kernel pages of another node, which then cannot be
    /// removed while the block exists).
    Elsewhere(Vec<u32>),
}

/// A memory block (section).
#[derive(Clone, Debug)]
pub struct MemBlock {
    /// Block number (`memoryN`).
    pub index: u32,
    /// First frame.
    pub start: u32,
    /// Frames.
    pub pages: u32,
    /// Node (cell) it belongs to.
    pub node: u32,
    /// Online, going offline (isolated) or offline.
    pub state: BlockState,
    /// Zone it is (or was last) online in.
    pub zone: ZoneKind,
    /// Where its `mem_map` lives (when online).
    pub memmap: Option<MemmapPlace>,
    /// Pageblock types saved at isolation, restored if the offline fails.
    pub saved: Vec<MigrateType>,
}

/// A NUMA node.
#[derive(Clone, Debug)]
pub struct Node {
    /// Node id (`_PXM`, the cell).
    pub id: u32,
    /// Whether the node has online memory (its `pg_data` exists).
    pub online: bool,
    /// The frame holding its `pg_data`.
    pub pgdat: Option<u32>,
    /// Whether its memory goes to the movable zone.
    pub movable: bool,
    /// Whether its memory is there as the kernel knows it: found present at boot or added by
    /// a hot-add, and not ejected since (its memory blocks exist in sysfs).
    pub present: bool,
}

/// Why memory could not be handed out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("out of memory: no zone in the zonelist of node{node} has a free block of order {order}")]
pub struct NoMemory {
    /// Preferred node.
    pub node: u32,
    /// Order asked for.
    pub order: u8,
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MmStats {
    /// Pages allocated.
    pub allocs: u64,
    /// Pages freed.
    pub frees: u64,
    /// Times the zonelists were rebuilt (each memory add or remove).
    pub zonelist_rebuilds: u64,
}

/// The physical memory manager.
#[derive(Clone, Debug)]
pub struct PhysMem {
    /// log2 of the page size.
    pub page_shift: u32,
    /// Frames per memory block.
    pub block_pages: u32,
    /// Page descriptors.
    pub map: MemMap,
    /// Migrate type of each pageblock.
    pub pb_type: Vec<MigrateType>,
    /// Zone of each pageblock (`u16::MAX`: none).
    pub pb_zone: Vec<u16>,
    /// Zones (`node * 2 + kind`).
    pub zones: Vec<Zone>,
    /// Every node of the machine, by `_PXM`, present or not.
    pub nodes: Vec<Node>,
    /// Memory blocks covering the whole address space.
    pub blocks: Vec<MemBlock>,
    /// Zonelist of each node: zone indices, nearest first.
    pub zonelists: Vec<Vec<u16>>,
    /// Node distances (SLIT).
    pub distance: Vec<Vec<u8>>,
    /// Counters.
    pub stats: MmStats,
    /// What the allocator did since the kernel last looked, in order: the kernel turns it
    /// into events (`PageAllocated`, `PageblockIsolation`, `FramesManaged`) for the
    /// checkers.
    pub log: Vec<PhysLog>,
    /// The injected defect `alloc_from_isolated`: the allocator also hands out free pages of
    /// isolated pageblocks.
    pub alloc_from_isolated: bool,
    /// The injected defect `keep_offline_pages_listed`: taking a block offline leaves its
    /// free pages on the free lists.
    pub keep_offline_pages_listed: bool,
}

/// One thing the allocator did that the checkers must see (CHK-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysLog {
    /// `1 << order` frames at `pfn` handed out.
    Alloc {
        /// Head frame.
        pfn: u32,
        /// The buddy order (2^order contiguous pages).
        order: u8,
    },
    /// The pageblock starting at `pb` became isolated (no allocation may come from it) or
    /// stopped being isolated.
    Isolation {
        /// First frame of the pageblock.
        pb: u32,
        /// Isolated now.
        isolated: bool,
    },
    /// Frames `pfn .. pfn + pages` entered the allocator free (a block came online: every
    /// frame but its `mem_map` and firmware's reserve) or left it (the block went offline).
    Managed {
        /// First frame.
        pfn: u32,
        /// How many.
        pages: u32,
        /// Entered (`true`) or left.
        on: bool,
    },
}

const NO_ZONE: u16 = u16::MAX;

impl PhysMem {
    /// `frames` frames of `1 << page_shift` bytes in blocks of `block_pages`, over `nodes`
    /// nodes with the `distance` matrix; nothing online yet.
    pub fn new(
        frames: u32,
        page_shift: u32,
        block_pages: u32,
        nodes: u32,
        cell_frames: u32,
        movable: &[bool],
        distance: Vec<Vec<u8>>,
    ) -> Self {
        let nblocks = frames.div_ceil(block_pages);
        let blocks = (0..nblocks)
            .map(|i| MemBlock {
                index: i,
                start: i * block_pages,
                pages: block_pages.min(frames - i * block_pages),
                node: (i * block_pages) / cell_frames.max(1),
                state: BlockState::Offline,
                zone: ZoneKind::Normal,
                memmap: None,
                saved: Vec::new(),
            })
            .collect();
        let zones = (0..nodes)
            .flat_map(|n| {
                [ZoneKind::Normal, ZoneKind::Movable].map(|kind| Zone {
                    node: n,
                    kind,
                    area: FreeArea::new(),
                    present: 0,
                })
            })
            .collect();
        let npb = (frames / PAGEBLOCK_PAGES) as usize;
        PhysMem {
            page_shift,
            block_pages,
            map: MemMap::new(frames as usize),
            pb_type: vec![MigrateType::Movable; npb],
            pb_zone: vec![NO_ZONE; npb],
            zones,
            nodes: (0..nodes)
                .map(|id| Node {
                    id,
                    online: false,
                    pgdat: None,
                    movable: movable.get(id as usize).copied().unwrap_or(false),
                    present: false,
                })
                .collect(),
            blocks,
            zonelists: vec![Vec::new(); nodes as usize],
            distance,
            stats: MmStats::default(),
            log: Vec::new(),
            alloc_from_isolated: false,
            keep_offline_pages_listed: false,
        }
    }

    /// Physical address of frame `pfn`.
    #[inline]
    pub fn addr(&self, pfn: u32) -> u64 {
        u64::from(pfn) << self.page_shift
    }

    /// Frame of physical address `a`.
    #[inline]
    pub fn pfn(&self, a: u64) -> u32 {
        (a >> self.page_shift) as u32
    }

    /// The block holding `pfn`.
    pub fn block_of(&self, pfn: u32) -> u32 {
        pfn / self.block_pages
    }

    /// The zone index of `(node, kind)`.
    pub fn zone_index(node: u32, kind: ZoneKind) -> u16 {
        (node * 2) as u16
            + match kind {
                ZoneKind::Normal => 0,
                ZoneKind::Movable => 1,
            }
    }

    /// The zone holding `pfn`, if it is online.
    pub fn zone_of(&self, pfn: u32) -> Option<u16> {
        let z = self.pb_zone[(pfn / PAGEBLOCK_PAGES) as usize];
        (z != NO_ZONE).then_some(z)
    }

    /// Page descriptor pages one block needs.
    pub fn memmap_pages(&self) -> u32 {
        let bytes = u64::from(self.block_pages) * PAGE_DESC_BYTES;
        bytes.div_ceil(1 << self.page_shift) as u32
    }

    /// Rebuilds every node's zonelist: for each node, the zones of every node with memory,
    /// nearest first (ties by node id), movable before normal within a node.
    pub fn rebuild_zonelists(&mut self) {
        self.stats.zonelist_rebuilds += 1;
        for n in 0..self.nodes.len() {
            let mut order: Vec<u32> = self
                .nodes
                .iter()
                .filter(|x| x.online)
                .map(|x| x.id)
                .collect();
            order.sort_by_key(|&m| {
                let d = self
                    .distance
                    .get(n)
                    .and_then(|r| r.get(m as usize))
                    .copied()
                    .unwrap_or(u8::MAX);
                (d, m)
            });
            self.zonelists[n] = order
                .into_iter()
                .flat_map(|m| {
                    [
                        Self::zone_index(m, ZoneKind::Movable),
                        Self::zone_index(m, ZoneKind::Normal),
                    ]
                })
                .filter(|&z| self.zones[z as usize].present > 0)
                .collect();
        }
    }

    /// Allocates `1 << order` frames for `owner`, preferring `node`, following its zonelist.
    pub fn alloc(&mut self, node: u32, order: u8, gfp: Gfp, owner: Owner) -> Result<u32, NoMemory> {
        let list = self
            .zonelists
            .get(node as usize)
            .filter(|l| !l.is_empty())
            .or_else(|| self.zonelists.iter().find(|l| !l.is_empty()))
            .cloned()
            .unwrap_or_default();
        let mt = match gfp {
            Gfp::Kernel => MigrateType::Unmovable,
            Gfp::Movable => MigrateType::Movable,
        };
        for z in list {
            let zone = &mut self.zones[z as usize];
            if gfp == Gfp::Kernel && zone.kind == ZoneKind::Movable {
                continue;
            }
            let isolated_too = self.alloc_from_isolated;
            if let Some((pfn, from)) =
                zone.area
                    .alloc(&mut self.map, order, mt, owner, isolated_too)
            {
                // Stealing a whole free pageblock converts it (as Linux does).
                let pb = (pfn / PAGEBLOCK_PAGES) as usize;
                if from != mt
                    && from != MigrateType::Isolate
                    && order == PAGEBLOCK_ORDER
                    && zone.kind == ZoneKind::Normal
                {
                    self.pb_type[pb] = mt;
                }
                self.stats.allocs += 1 << order;
                self.log.push(PhysLog::Alloc { pfn, order });
                return Ok(pfn);
            }
        }
        Err(NoMemory { node, order })
    }

    /// Hands out the whole free, isolated pageblock at `pb` (kept aside by compaction for a
    /// hugetlb page) to `owner`; its migrate type goes back to movable. `false` if it is not
    /// one free isolated block.
    pub fn alloc_isolated_pageblock(&mut self, pb: u32, owner: Owner) -> bool {
        let Some(z) = self.zone_of(pb) else {
            return false;
        };
        let area = &mut self.zones[z as usize].area;
        if !area.contains(pb, PAGEBLOCK_ORDER, MigrateType::Isolate) {
            return false;
        }
        area.take_pageblock(&mut self.map, pb, MigrateType::Isolate);
        for p in pb..pb + PAGEBLOCK_PAGES {
            self.map.set_owner(p, owner);
            self.map.set_flags(p, 0);
        }
        self.map.set_order(pb, PAGEBLOCK_ORDER);
        self.pb_type[(pb / PAGEBLOCK_PAGES) as usize] = MigrateType::Movable;
        self.stats.allocs += u64::from(PAGEBLOCK_PAGES);
        self.log.push(PhysLog::Isolation {
            pb,
            isolated: false,
        });
        self.log.push(PhysLog::Alloc {
            pfn: pb,
            order: PAGEBLOCK_ORDER,
        });
        true
    }

    /// Frees `1 << order` frames at `pfn` (they must be out of every mapping).
    pub fn free(&mut self, pfn: u32, order: u8) {
        let Some(z) = self.zone_of(pfn) else {
            return;
        };
        let mt = self.pb_type[(pfn / PAGEBLOCK_PAGES) as usize];
        self.zones[z as usize]
            .area
            .free(&mut self.map, pfn, order, mt);
        self.stats.frees += 1 << order;
    }

    /// Brings block `b` online in `zone` of its node: the `mem_map` goes on the block's own
    /// first pages (`memmap` `None`) or is the given frames elsewhere; every other frame is
    /// freed to the buddy allocator. Pages in `reserved` stay with `Owner::Firmware`.
    pub fn online_block(
        &mut self,
        b: u32,
        zone: ZoneKind,
        memmap: Option<Vec<u32>>,
        reserved: u32,
    ) {
        let blk = self.blocks[b as usize].clone();
        let zi = Self::zone_index(blk.node, zone);
        let own = self.memmap_pages();
        let place = match memmap {
            None => MemmapPlace::OnBlock,
            Some(v) => MemmapPlace::Elsewhere(v),
        };
        let skip = if place == MemmapPlace::OnBlock {
            own
        } else {
            0
        };
        for pb in (blk.start..blk.start + blk.pages).step_by(PAGEBLOCK_PAGES as usize) {
            let i = (pb / PAGEBLOCK_PAGES) as usize;
            self.pb_zone[i] = zi;
            self.pb_type[i] = MigrateType::Movable;
        }
        for k in 0..blk.pages {
            let pfn = blk.start + k;
            self.map.set_flags(pfn, 0);
            let owner = if k < skip {
                self.map.set_flags(pfn, flags::RESERVED);
                Owner::MemMap { block: b }
            } else if k < skip + reserved {
                self.map.set_flags(pfn, flags::RESERVED);
                Owner::Firmware
            } else {
                Owner::Offline
            };
            self.map.set_owner(pfn, owner);
        }
        // Whole free pageblocks go in at the top order; partly used ones page by page.
        let first_free = blk.start + skip + reserved;
        self.log.push(PhysLog::Managed {
            pfn: first_free,
            pages: (blk.start + blk.pages).saturating_sub(first_free),
            on: true,
        });
        for pb in (blk.start..blk.start + blk.pages).step_by(PAGEBLOCK_PAGES as usize) {
            if pb >= first_free {
                self.zones[zi as usize].area.free(
                    &mut self.map,
                    pb,
                    PAGEBLOCK_ORDER,
                    MigrateType::Movable,
                );
            } else {
                for pfn in first_free.max(pb)..pb + PAGEBLOCK_PAGES {
                    self.zones[zi as usize]
                        .area
                        .free(&mut self.map, pfn, 0, MigrateType::Movable);
                }
            }
        }
        let blk = &mut self.blocks[b as usize];
        blk.state = BlockState::Online;
        blk.zone = zone;
        blk.memmap = Some(place);
        self.zones[zi as usize].present += u64::from(blk.pages);
    }

    /// The first kernel page in block `b` that is not the block's own `mem_map`: what makes
    /// it unremovable.
    pub fn unmovable_in(&self, b: u32) -> Option<(u32, Owner)> {
        let blk = &self.blocks[b as usize];
        (blk.start..blk.start + blk.pages).find_map(|pfn| {
            let o = self.map.owner(pfn);
            let own_memmap = o == Owner::MemMap { block: b };
            let kernel = o.is_kernel() || matches!(o, Owner::MemMap { .. });
            (kernel && !own_memmap).then_some((pfn, o))
        })
    }

    /// What makes block `b` unremovable, spelled out: the kernel pages in it by kind, with
    /// the first one. `None` if it has none.
    pub fn unmovable_summary(&self, b: u32) -> Option<(u32, String)> {
        let blk = &self.blocks[b as usize];
        let mut first = None;
        let mut kinds: BTreeMap<String, u32> = BTreeMap::new();
        for pfn in blk.start..blk.start + blk.pages {
            let o = self.map.owner(pfn);
            let own_memmap = o == Owner::MemMap { block: b };
            if !(o.is_kernel() || matches!(o, Owner::MemMap { .. })) || own_memmap {
                continue;
            }
            first.get_or_insert(pfn);
            let kind = match o {
                Owner::Slab { .. } => "slab".to_owned(),
                Owner::PageTable { .. } => "page tables".to_owned(),
                Owner::DmaBuffer { .. } => "DMA buffers".to_owned(),
                Owner::Offline
                | Owner::Free
                | Owner::Firmware
                | Owner::MemMap { .. }
                | Owner::NodeData { .. }
                | Owner::ZeroPage
                | Owner::Anon { .. }
                | Owner::File { .. }
                | Owner::Huge { .. } => o.to_string(),
            };
            *kinds.entry(kind).or_default() += 1;
        }
        let what: Vec<String> = kinds
            .into_iter()
            .map(|(k, n)| {
                if n == 1 {
                    k
                } else {
                    format!("{k} ({n} pages)")
                }
            })
            .collect();
        first.map(|f| (f, what.join(", ")))
    }

    /// Gives the pageblock at `pb` the migrate type `to`, its free pages moving to the lists
    /// of that type (as `set_pageblock_migratetype` + `move_freepages_block`).
    pub fn set_pageblock_type(&mut self, pb: u32, to: MigrateType) {
        let i = (pb / PAGEBLOCK_PAGES) as usize;
        let from = self.pb_type[i];
        if from == to {
            return;
        }
        if let Some(z) = self.zone_of(pb) {
            self.zones[z as usize]
                .area
                .move_pageblock(&mut self.map, pb, from, to);
        }
        self.pb_type[i] = to;
        if (from == MigrateType::Isolate) != (to == MigrateType::Isolate) {
            self.log.push(PhysLog::Isolation {
                pb,
                isolated: to == MigrateType::Isolate,
            });
        }
    }

    /// Isolates every pageblock of block `b`: nothing more is allocated from it.
    pub fn isolate_block(&mut self, b: u32) {
        let blk = self.blocks[b as usize].clone();
        let mut saved = Vec::new();
        for pb in (blk.start..blk.start + blk.pages).step_by(PAGEBLOCK_PAGES as usize) {
            saved.push(self.pb_type[(pb / PAGEBLOCK_PAGES) as usize]);
            self.set_pageblock_type(pb, MigrateType::Isolate);
        }
        let blk = &mut self.blocks[b as usize];
        blk.saved = saved;
        blk.state = BlockState::GoingOffline;
    }

    /// Undoes [`PhysMem::isolate_block`]: the saved types come back with their free pages.
    pub fn undo_isolation(&mut self, b: u32) {
        let blk = self.blocks[b as usize].clone();
        for (k, pb) in (blk.start..blk.start + blk.pages)
            .step_by(PAGEBLOCK_PAGES as usize)
            .enumerate()
        {
            let to = blk.saved.get(k).copied().unwrap_or(MigrateType::Movable);
            self.set_pageblock_type(pb, to);
        }
        let blk = &mut self.blocks[b as usize];
        blk.saved.clear();
        blk.state = BlockState::Online;
    }

    /// Frames of block `b` still in use (not free, not its own `mem_map`), in order.
    pub fn used_in(&self, b: u32) -> Vec<u32> {
        let blk = &self.blocks[b as usize];
        (blk.start..blk.start + blk.pages)
            .filter(|&pfn| {
                let o = self.map.owner(pfn);
                o != Owner::Free && o != Owner::MemMap { block: b } && o != Owner::Offline
            })
            .collect()
    }

    /// Takes the emptied, isolated block `b` out of the allocator: its frames go offline,
    /// its `mem_map` is released (returned: frames elsewhere to free). Fails, changing
    /// nothing, naming a frame still in use.
    pub fn offline_block(&mut self, b: u32) -> Result<Vec<u32>, (u32, Owner)> {
        if let Some(&pfn) = self.used_in(b).first() {
            return Err((pfn, self.map.owner(pfn)));
        }
        let blk = self.blocks[b as usize].clone();
        let zi = Self::zone_index(blk.node, blk.zone);
        self.log.push(PhysLog::Managed {
            pfn: blk.start,
            pages: blk.pages,
            on: false,
        });
        for pb in (blk.start..blk.start + blk.pages).step_by(PAGEBLOCK_PAGES as usize) {
            let i = (pb / PAGEBLOCK_PAGES) as usize;
            if !self.keep_offline_pages_listed {
                self.zones[zi as usize].area.take_pageblock(
                    &mut self.map,
                    pb,
                    MigrateType::Isolate,
                );
            }
            self.pb_zone[i] = NO_ZONE;
            if self.pb_type[i] == MigrateType::Isolate {
                self.log.push(PhysLog::Isolation {
                    pb,
                    isolated: false,
                });
            }
            self.pb_type[i] = MigrateType::Movable;
        }
        for pfn in blk.start..blk.start + blk.pages {
            self.map.set_owner(pfn, Owner::Offline);
            self.map.set_flags(pfn, 0);
        }
        self.zones[zi as usize].present -= u64::from(blk.pages);
        let elsewhere = match blk.memmap {
            Some(MemmapPlace::Elsewhere(v)) => v,
            Some(MemmapPlace::OnBlock) | None => Vec::new(),
        };
        let blk = &mut self.blocks[b as usize];
        blk.state = BlockState::Offline;
        blk.memmap = None;
        blk.saved.clear();
        Ok(elsewhere)
    }

    /// Blocks of `node` that are online or going offline.
    pub fn node_blocks(&self, node: u32) -> Vec<u32> {
        self.blocks
            .iter()
            .filter(|b| b.node == node && b.state != BlockState::Offline)
            .map(|b| b.index)
            .collect()
    }

    /// Free pages per zone that can be allocated.
    pub fn free_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.area.allocatable_pages()).sum()
    }

    /// The frames some zone's free lists hold (by pfn), and the first listed block that
    /// overlaps another, if one does.
    pub fn listed(&self) -> (bitvec::vec::BitVec, Option<u32>) {
        let n = self.map.len();
        let mut listed = bitvec::vec::BitVec::repeat(false, n);
        let mut overlap = None;
        for z in &self.zones {
            for (pfn, order, _) in z.area.blocks() {
                let (lo, hi) = (pfn as usize, (pfn as usize + (1 << order)).min(n));
                if overlap.is_none() && listed[lo..hi].any() {
                    overlap = Some(pfn);
                }
                listed[lo..hi].fill(true);
            }
        }
        (listed, overlap)
    }

    /// The allocator's own consistency check (CHK-7 counts a failure as corroboration, beside
    /// its own record): each zone's lists against the `mem_map`, and every
    /// free frame of an online block inside some free block.
    pub fn audit(&self) -> Vec<buddy::BuddyFault> {
        let mut out = Vec::new();
        for z in &self.zones {
            z.area.audit(
                &self.map,
                |pfn| self.pb_type[(pfn / PAGEBLOCK_PAGES) as usize],
                &mut out,
            );
        }
        // Every frame marked free is covered by a listed block.
        let (covered, _) = self.listed();
        for (pfn, o) in self.map.owners().iter().enumerate() {
            if *o == Owner::Free && !covered[pfn] {
                out.push(buddy::BuddyFault {
                    pfn: pfn as u32,
                    message: format!("pfn {pfn:#x} is marked free but is on no free list (leaked)"),
                });
                break;
            }
        }
        out
    }

    /// Per-zone summary: `(node, zone, present, free)`.
    pub fn zone_summary(&self) -> BTreeMap<(u32, ZoneKind), (u64, u64)> {
        self.zones
            .iter()
            .filter(|z| z.present > 0)
            .map(|z| ((z.node, z.kind), (z.present, z.area.free_pages())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_nodes() -> PhysMem {
        // 2 nodes × 2 blocks × 256 frames, 16 KiB pages.
        let dist = vec![vec![10, 20], vec![20, 10]];
        let mut m = PhysMem::new(1024, 14, 256, 2, 512, &[false, true], dist);
        for b in 0..4 {
            let zone = if b < 2 {
                ZoneKind::Normal
            } else {
                ZoneKind::Movable
            };
            m.online_block(b, zone, None, 0);
        }
        m.nodes[0].online = true;
        m.nodes[1].online = true;
        m.rebuild_zonelists();
        m
    }

    #[test]
    fn zonelists_follow_distance_and_kernel_allocations_avoid_movable_zones() {
        let mut m = two_nodes();
        assert_eq!(m.zonelists[1][0], PhysMem::zone_index(1, ZoneKind::Movable));
        let pfn = m.alloc(1, 0, Gfp::Kernel, Owner::Slab { slab: 1 }).unwrap();
        assert_eq!(m.blocks[m.block_of(pfn) as usize].node, 0);
        let user = m
            .alloc(1, 0, Gfp::Movable, Owner::Anon { mm: 0, page: 0 })
            .unwrap();
        assert_eq!(m.blocks[m.block_of(user) as usize].node, 1);
        assert!(m.audit().is_empty(), "{:?}", m.audit());
    }

    #[test]
    fn offline_needs_an_empty_isolated_block_and_undo_restores_exactly() {
        let mut m = two_nodes();
        let before: Vec<_> = m.zones.iter().map(|z| z.area.buddyinfo()).collect();
        let pfn = m
            .alloc(1, 0, Gfp::Movable, Owner::Anon { mm: 0, page: 0 })
            .unwrap();
        let b = m.block_of(pfn);
        m.isolate_block(b);
        assert!(m.offline_block(b).is_err());
        m.undo_isolation(b);
        m.map.set_owner(pfn, Owner::Free);
        m.free(pfn, 0);
        let after: Vec<_> = m.zones.iter().map(|z| z.area.buddyinfo()).collect();
        assert_eq!(before, after);
        m.isolate_block(b);
        assert!(m.offline_block(b).unwrap().is_empty());
        assert_eq!(m.blocks[b as usize].state, BlockState::Offline);
        assert!(m.audit().is_empty(), "{:?}", m.audit());
    }

    #[test]
    fn kernel_pages_make_a_block_unremovable() {
        let mut m = two_nodes();
        let pfn = m.alloc(0, 0, Gfp::Kernel, Owner::Slab { slab: 7 }).unwrap();
        let b = m.block_of(pfn);
        assert_eq!(m.unmovable_in(b), Some((pfn, Owner::Slab { slab: 7 })));
        assert_eq!(m.unmovable_in(3), None);
    }
}
