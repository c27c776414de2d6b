//! The page descriptors (`mem_map`): one entry per physical frame of the whole address space,
//! kept as dense arrays indexed by frame number (SPEC OS-MEM-1, OS-MEM-2).

/// Page flags (the ones memory hot-remove cares about).
pub mod flags {
    /// I/O or migration in progress; whoever wants the page waits.
    pub const LOCKED: u16 = 1 << 0;
    /// Contents newer than the backing store.
    pub const DIRTY: u16 = 1 << 1;
    /// Being written to its backing store.
    pub const WRITEBACK: u16 = 1 << 2;
    /// Accessed since the last scan (hot).
    pub const REFERENCED: u16 = 1 << 3;
    /// File-system private data attached (buffers).
    pub const PRIVATE: u16 = 1 << 4;
    /// On an LRU list (a user page the reclaim and migration code may take).
    pub const LRU: u16 = 1 << 5;
    /// Locked in memory by `mlock`: never swapped out.
    pub const MLOCKED: u16 = 1 << 6;
    /// Reserved (firmware, kernel image, `mem_map` itself).
    pub const RESERVED: u16 = 1 << 7;
    /// Head of a free buddy block.
    pub const BUDDY: u16 = 1 << 8;
    /// Head of a compound page (hugetlb).
    pub const HEAD: u16 = 1 << 9;
    /// Tail of a compound page.
    pub const TAIL: u16 = 1 << 10;
    /// In the swap cache (has a swap slot).
    pub const SWAPCACHE: u16 = 1 << 11;
    /// Contents valid.
    pub const UPTODATE: u16 = 1 << 12;

    /// Names of the flags, for reports.
    pub const NAMES: [(u16, &str); 13] = [
        (LOCKED, "locked"),
        (DIRTY, "dirty"),
        (WRITEBACK, "writeback"),
        (REFERENCED, "referenced"),
        (PRIVATE, "private"),
        (LRU, "lru"),
        (MLOCKED, "mlocked"),
        (RESERVED, "reserved"),
        (BUDDY, "buddy"),
        (HEAD, "head"),
        (TAIL, "tail"),
        (SWAPCACHE, "swapcache"),
        (UPTODATE, "uptodate"),
    ];
}

/// I/O states a frame can be in when it is freed (a bad page state).
pub mod busy {
    /// Locked.
    pub const LOCKED: u8 = 1;
    /// Under writeback.
    pub const WRITEBACK: u8 = 2;
    /// Pinned (DMA, a reference held).
    pub const PINNED: u8 = 4;

    /// The states, spelled out (`locked|writeback`).
    pub fn describe(b: u8) -> String {
        [
            (LOCKED, "locked"),
            (WRITEBACK, "writeback"),
            (PINNED, "pinned"),
        ]
        .iter()
        .filter(|(bit, _)| b & bit != 0)
        .map(|&(_, n)| n)
        .collect::<Vec<_>>()
        .join("|")
    }
}

/// What a frame is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// No memory there (hole, absent cell) or memory not online.
    Offline,
    /// In the buddy allocator.
    Free,
    /// Firmware and kernel image (never freed).
    Firmware,
    /// The page descriptors of memory block `block` (freed with the block).
    MemMap {
        /// The memory block described.
        block: u32,
    },
    /// The node descriptor (`pg_data`) of `node`.
    NodeData {
        /// The NUMA node (the cell, by `_PXM`).
        node: u32,
    },
    /// A slab page of kernel objects (unmovable).
    Slab {
        /// Slab number.
        slab: u32,
    },
    /// A page-table page of an address space (unmovable).
    PageTable {
        /// The address space.
        mm: u32,
        /// Which page-table page.
        index: u32,
    },
    /// A driver's DMA buffer (unmovable while the device uses it).
    DmaBuffer {
        /// Buffer number.
        buf: u32,
    },
    /// The shared zero page.
    ZeroPage,
    /// Anonymous page `page` of address space `mm`.
    Anon {
        /// Address space.
        mm: u32,
        /// Page index in its anonymous object.
        page: u32,
    },
    /// Page-cache page `page` of file `file`.
    File {
        /// The file's number in the page cache.
        file: u32,
        /// Page index in the file.
        page: u32,
    },
    /// Subpage `sub` of hugetlb page `huge` of address space `mm`.
    Huge {
        /// Address space.
        mm: u32,
        /// Huge page index.
        huge: u32,
        /// Subpage.
        sub: u32,
    },
}

impl Owner {
    /// A word naming the owner, for digests and the trace hash.
    pub fn word(self) -> u64 {
        let (tag, a, b): (u64, u32, u32) = match self {
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

    /// Pages the migration code can move (user pages).
    pub const fn is_movable(self) -> bool {
        matches!(
            self,
            Owner::Free | Owner::Anon { .. } | Owner::File { .. } | Owner::Huge { .. }
        )
    }

    /// Kernel pages nothing can move.
    pub const fn is_kernel(self) -> bool {
        matches!(
            self,
            Owner::Firmware
                | Owner::NodeData { .. }
                | Owner::Slab { .. }
                | Owner::PageTable { .. }
                | Owner::DmaBuffer { .. }
                | Owner::ZeroPage
        )
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Offline => f.write_str("offline"),
            Owner::Free => f.write_str("free"),
            Owner::Firmware => f.write_str("firmware"),
            Owner::MemMap { block } => write!(f, "mem_map of memory{block}"),
            Owner::NodeData { node } => write!(f, "pg_data of node{node}"),
            Owner::Slab { slab } => write!(f, "slab {slab}"),
            Owner::PageTable { mm, index } => write!(f, "page table {index} of mm{mm}"),
            Owner::DmaBuffer { buf } => write!(f, "DMA buffer {buf}"),
            Owner::ZeroPage => f.write_str("zero page"),
            Owner::Anon { mm, page } => write!(f, "anon page {page} of mm{mm}"),
            Owner::File { file, page } => write!(f, "page {page} of file{file}"),
            Owner::Huge { mm, huge, sub } => write!(f, "hugetlb page {huge}+{sub} of mm{mm}"),
        }
    }
}

/// A page-table entry that maps a page: address space and virtual page number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PteRef {
    /// Address space.
    pub mm: u32,
    /// Virtual page number.
    pub vpn: u32,
}

/// The page descriptors of every frame: dense arrays indexed by frame number, reached only
/// through these methods (a pin count never goes below zero).
#[derive(Clone, Debug, Default)]
pub struct MemMap {
    /// Page flags ([`flags`]).
    flags: Vec<u16>,
    /// What each frame is used for.
    owner: Vec<Owner>,
    /// Buddy order of a free head; compound order of a head page.
    order: Vec<u8>,
    /// Extra references that keep a page where it is (DMA pins, I/O in flight).
    pins: Vec<u16>,
    /// Reverse map: every PTE mapping the frame.
    rmap: Vec<Vec<PteRef>>,
}

impl MemMap {
    /// Descriptors for `frames` frames, all offline.
    pub fn new(frames: usize) -> Self {
        MemMap {
            flags: vec![0; frames],
            owner: vec![Owner::Offline; frames],
            order: vec![0; frames],
            pins: vec![0; frames],
            rmap: vec![Vec::new(); frames],
        }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// What `pfn` is used for.
    #[inline]
    pub fn owner(&self, pfn: u32) -> Owner {
        self.owner[pfn as usize]
    }

    /// Gives `pfn` to `o`.
    #[inline]
    pub fn set_owner(&mut self, pfn: u32, o: Owner) {
        self.owner[pfn as usize] = o;
    }

    /// Every frame's owner, in frame order.
    pub fn owners(&self) -> &[Owner] {
        &self.owner
    }

    /// The flags of `pfn`.
    #[inline]
    pub fn flags(&self, pfn: u32) -> u16 {
        self.flags[pfn as usize]
    }

    /// Replaces the flags of `pfn`.
    #[inline]
    pub fn set_flags(&mut self, pfn: u32, f: u16) {
        self.flags[pfn as usize] = f;
    }

    /// Clears flag `f` on every frame (the reclaim scan's pass over the referenced bits).
    pub fn clear_all(&mut self, f: u16) {
        for x in &mut self.flags {
            *x &= !f;
        }
    }

    /// The buddy order of a free head, or the compound order of a head page.
    #[inline]
    pub fn order(&self, pfn: u32) -> u8 {
        self.order[pfn as usize]
    }

    /// Sets the order of `pfn`.
    #[inline]
    pub fn set_order(&mut self, pfn: u32, o: u8) {
        self.order[pfn as usize] = o;
    }

    /// The pins on `pfn` (DMA, I/O in flight).
    #[inline]
    pub fn pins(&self, pfn: u32) -> u16 {
        self.pins[pfn as usize]
    }

    /// One more pin on `pfn`.
    #[inline]
    pub fn pin(&mut self, pfn: u32) {
        self.pins[pfn as usize] += 1;
    }

    /// One pin less on `pfn` (never below none).
    #[inline]
    pub fn unpin(&mut self, pfn: u32) {
        let p = &mut self.pins[pfn as usize];
        *p = p.saturating_sub(1);
    }

    /// Sets the pins on `pfn`.
    #[inline]
    pub fn set_pins(&mut self, pfn: u32, n: u16) {
        self.pins[pfn as usize] = n;
    }

    /// Every PTE mapping `pfn`.
    #[inline]
    pub fn rmap(&self, pfn: u32) -> &[PteRef] {
        &self.rmap[pfn as usize]
    }

    /// `pte` maps `pfn` now.
    #[inline]
    pub fn add_rmap(&mut self, pfn: u32, pte: PteRef) {
        self.rmap[pfn as usize].push(pte);
    }

    /// Keeps the mappings of `pfn` for which `keep` holds.
    pub fn retain_rmap(&mut self, pfn: u32, keep: impl FnMut(&PteRef) -> bool) {
        self.rmap[pfn as usize].retain(keep);
    }

    /// No PTE maps `pfn` any more.
    pub fn clear_rmap(&mut self, pfn: u32) {
        self.rmap[pfn as usize].clear();
    }

    /// Takes the mappings of `pfn` (a page moving to another frame).
    pub fn take_rmap(&mut self, pfn: u32) -> Vec<PteRef> {
        std::mem::take(&mut self.rmap[pfn as usize])
    }

    /// Sets the mappings of `pfn` (a page arriving from another frame).
    pub fn set_rmap(&mut self, pfn: u32, r: Vec<PteRef>) {
        self.rmap[pfn as usize] = r;
    }

    /// Whether `pfn` has flag `f`.
    #[inline]
    pub fn has(&self, pfn: u32, f: u16) -> bool {
        self.flags[pfn as usize] & f != 0
    }

    /// Sets flag `f` on `pfn`.
    #[inline]
    pub fn set(&mut self, pfn: u32, f: u16) {
        self.flags[pfn as usize] |= f;
    }

    /// Clears flag `f` on `pfn`.
    #[inline]
    pub fn clear(&mut self, pfn: u32, f: u16) {
        self.flags[pfn as usize] &= !f;
    }

    /// The flags of `pfn`, spelled out.
    pub fn describe_flags(&self, pfn: u32) -> String {
        let f = self.flags[pfn as usize];
        let names: Vec<&str> = flags::NAMES
            .iter()
            .filter(|(b, _)| f & b != 0)
            .map(|&(_, n)| n)
            .collect();
        if names.is_empty() {
            "-".into()
        } else {
            names.join("|")
        }
    }
}
