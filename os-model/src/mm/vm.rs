//! Address spaces, page-table entries, TLBs, files, the swap area and the disk layout (SPEC OS-MEM-2,
//! OS-MEM-3).
//!
//! A process's page table is a set of page-table pages in simulated memory (kernel pages);
//! the kernel keeps a mirror of each entry it writes, and the hardware walker (the task's
//! access path) reads the entry from memory through the machine. TLBs cache translations per
//! CPU and must be shot down when an entry changes.

use serde::Serialize;

/// A page-table entry, as stored in the 64-bit word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pte {
    /// Nothing mapped.
    None,
    /// Mapped to a frame.
    Present {
        /// The frame.
        pfn: u32,
    },
    /// Swapped out to a slot of the swap area (on the kernel's disk).
    Swap {
        /// The swap slot that holds the page.
        slot: u32,
    },
    /// Being migrated away from `pfn`: an access waits until migration finishes.
    Migration {
        /// The frame being migrated.
        pfn: u32,
    },
    /// A file page not in the page cache (or dropped from it): an access faults it in.
    FileHole,
}

const P_PRESENT: u64 = 1;
const T_SWAP: u64 = 1 << 1;
const T_MIGRATION: u64 = 2 << 1;
const T_FILE: u64 = 3 << 1;

impl Pte {
    /// The word in the page table.
    pub const fn encode(self) -> u64 {
        match self {
            Pte::None => 0,
            Pte::Present { pfn } => (pfn as u64) << 12 | P_PRESENT,
            Pte::Swap { slot } => (slot as u64) << 12 | T_SWAP,
            Pte::Migration { pfn } => (pfn as u64) << 12 | T_MIGRATION,
            Pte::FileHole => T_FILE,
        }
    }

    /// The entry a word holds (all-ones, what a read of removed memory returns, decodes as
    /// present at a frame that does not exist: the walker then faults on it).
    pub const fn decode(w: u64) -> Pte {
        let v = (w >> 12) as u32;
        if w & P_PRESENT != 0 {
            return Pte::Present { pfn: v };
        }
        match w & (3 << 1) {
            T_SWAP => Pte::Swap { slot: v },
            T_MIGRATION => Pte::Migration { pfn: v },
            T_FILE => Pte::FileHole,
            _ => Pte::None,
        }
    }
}

/// What a VMA maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum VmaKind {
    /// Private anonymous memory (swappable).
    Anon,
    /// Anonymous memory locked by `mlock` (never swapped; migration force-moves it).
    Mlocked,
    /// A shared mapping of a whole file.
    File {
        /// The file's number in the page cache.
        file: u32,
    },
    /// Hugetlb pages (one compound page per `PAGEBLOCK_PAGES` virtual pages).
    Huge,
}

/// A virtual memory area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Vma {
    /// First virtual page.
    pub start: u32,
    /// How many pages.
    pub pages: u32,
    /// What it maps.
    pub kind: VmaKind,
}

/// A process address space.
#[derive(Clone, Debug)]
pub struct AddressSpace {
    /// Address-space id (also the TLB tag).
    pub id: u32,
    /// The task using it.
    pub task: u32,
    /// Its home node (allocations prefer it).
    pub node: u32,
    /// Areas, by start.
    pub vmas: Vec<Vma>,
    /// Mirror of every entry (dense by virtual page).
    pub ptes: Vec<Pte>,
    /// Frames of the page-table pages (entry `vpn` lives in page `vpn / ptes_per_page`).
    pub pt_pages: Vec<u32>,
    /// Logical CPUs that may cache its translations (`mm_cpumask`), as a bit set.
    pub cpus: Vec<u64>,
}

impl AddressSpace {
    /// The VMA holding `vpn`.
    pub fn vma_of(&self, vpn: u32) -> Option<&Vma> {
        self.vmas
            .iter()
            .find(|v| (v.start..v.start + v.pages).contains(&vpn))
    }

    /// Virtual pages in all.
    pub fn span(&self) -> u32 {
        self.vmas
            .iter()
            .map(|v| v.start + v.pages)
            .max()
            .unwrap_or(0)
    }

    /// Records that `cpu` may now cache its translations.
    pub fn note_cpu(&mut self, cpu: u32) {
        let (w, b) = ((cpu / 64) as usize, cpu % 64);
        if self.cpus.len() <= w {
            self.cpus.resize(w + 1, 0);
        }
        self.cpus[w] |= 1 << b;
    }

    /// The CPUs that may cache its translations.
    pub fn cpu_list(&self) -> Vec<u32> {
        let mut v = Vec::new();
        for (w, &bits) in self.cpus.iter().enumerate() {
            for b in 0..64 {
                if bits & (1 << b) != 0 {
                    v.push(w as u32 * 64 + b);
                }
            }
        }
        v
    }
}

/// The file system a file lives on: what migrating its dirty pages takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsKind {
    /// Has a `migrate_page` method: dirty pages with private data move as they are.
    Ext3,
    /// No `migrate_page`: a dirty page with private data is written back first.
    Ext2,
    /// No backing store (`tmpfs`/`ramfs`): pages can only be remapped, never dropped.
    Tmpfs,
}

impl FsKind {
    /// Name.
    pub const fn name(self) -> &'static str {
        match self {
            FsKind::Ext3 => "ext3",
            FsKind::Ext2 => "ext2",
            FsKind::Tmpfs => "tmpfs",
        }
    }

    /// Whether pages have a backing store (can be dropped when clean).
    pub const fn has_backing(self) -> bool {
        !matches!(self, FsKind::Tmpfs)
    }

    /// Whether the file system migrates private data itself.
    pub const fn migrates_private(self) -> bool {
        matches!(self, FsKind::Ext3)
    }
}

/// A file with its page cache.
#[derive(Clone, Debug)]
pub struct File {
    /// File number.
    pub id: u32,
    /// File system.
    pub fs: FsKind,
    /// How many pages.
    pub pages: u32,
    /// Page cache: the frame of each cached page.
    pub cache: Vec<Option<u32>>,
    /// Every PTE mapping each page (shared mappings), whether cached or not.
    pub mappers: Vec<(u32, u32)>,
    /// Node its pages prefer.
    pub node: u32,
}

/// A per-CPU TLB: direct mapped, tagged by address space.
#[derive(Clone, Debug)]
pub struct Tlb {
    entries: Vec<(u32, u32, u32)>,
    /// Lookups this TLB answered.
    pub hits: u64,
    /// Misses (page walks).
    pub misses: u64,
    /// Full flushes.
    pub flushes: u64,
}

const TLB_INVALID: u32 = u32::MAX;

impl Tlb {
    /// A TLB of `entries` entries (a power of two).
    pub fn new(entries: usize) -> Self {
        Tlb {
            entries: vec![(TLB_INVALID, 0, 0); entries.next_power_of_two().max(1)],
            hits: 0,
            misses: 0,
            flushes: 0,
        }
    }

    #[inline]
    fn slot(&self, asid: u32, vpn: u32) -> usize {
        (vpn.wrapping_mul(0x9E37_79B1) ^ asid.wrapping_mul(0x85EB_CA6B)) as usize
            & (self.entries.len() - 1)
    }

    /// The frame cached for `(asid, vpn)`.
    #[inline]
    pub fn lookup(&mut self, asid: u32, vpn: u32) -> Option<u32> {
        let e = self.entries[self.slot(asid, vpn)];
        if e.0 == asid && e.1 == vpn {
            self.hits += 1;
            Some(e.2)
        } else {
            self.misses += 1;
            None
        }
    }

    /// Caches a translation.
    #[inline]
    pub fn fill(&mut self, asid: u32, vpn: u32, pfn: u32) {
        let s = self.slot(asid, vpn);
        self.entries[s] = (asid, vpn, pfn);
    }

    /// Drops one translation.
    pub fn invalidate(&mut self, asid: u32, vpn: u32) {
        let s = self.slot(asid, vpn);
        if self.entries[s].0 == asid && self.entries[s].1 == vpn {
            self.entries[s].0 = TLB_INVALID;
        }
    }

    /// Drops everything.
    pub fn flush(&mut self) {
        self.flushes += 1;
        for e in &mut self.entries {
            e.0 = TLB_INVALID;
        }
    }

    /// Drops every translation of address space `asid`.
    pub fn flush_asid(&mut self, asid: u32) {
        self.flushes += 1;
        for e in &mut self.entries {
            if e.0 == asid {
                e.0 = TLB_INVALID;
            }
        }
    }

    /// Whether a translation to `pfn` is cached.
    pub fn maps_frame(&self, pfn: u32) -> Option<(u32, u32)> {
        self.entries
            .iter()
            .find(|e| e.0 != TLB_INVALID && e.2 == pfn)
            .map(|e| (e.0, e.1))
    }
}

/// The swap area's slots: which are taken (the pages themselves are on the disk's medium).
#[derive(Clone, Debug, Default)]
pub struct SwapMap {
    slots: u32,
    free: std::collections::BTreeSet<u32>,
}

impl SwapMap {
    /// An area of `slots` page slots (0: no swap).
    pub fn new(slots: u32) -> Self {
        SwapMap {
            slots,
            free: (0..slots).collect(),
        }
    }

    /// Takes a free slot.
    pub fn take_slot(&mut self) -> Option<u32> {
        self.free.pop_first()
    }

    /// Releases a slot.
    pub fn release(&mut self, slot: u32) {
        if slot < self.slots {
            self.free.insert(slot);
        }
    }

    /// Slots in use.
    pub fn used(&self) -> usize {
        self.slots as usize - self.free.len()
    }

    /// Slots in all.
    pub fn capacity(&self) -> usize {
        self.slots as usize
    }
}

/// Where the kernel keeps things on its disk, in 512-byte sectors: the files one after the
/// other from sector 0 (page `p` of file `f` at `(f · file_pages + p) · sectors_per_page`),
/// then the swap area. The installer writes the files' contents there before the machine
/// runs ([`crate::install_disk`]); the kernel reads and writes them through the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskLayout {
    /// Sectors per page.
    pub sectors_per_page: u64,
    /// Pages per file.
    pub file_pages: u32,
    /// Files.
    pub files: u32,
    /// Page slots of the swap area.
    pub swap_slots: u32,
}

impl DiskLayout {
    /// The layout for `files` files of `file_pages` pages of `page_bytes`, with up to
    /// `swap_slots` swap slots, on a medium of `capacity` sectors: the swap area is cut to
    /// what fits, keeping one page behind it (the direct-I/O scratch page). `None`: the
    /// files and that page do not fit.
    pub fn new(
        page_bytes: u64,
        files: u32,
        file_pages: u32,
        swap_slots: u32,
        capacity: u64,
    ) -> Option<DiskLayout> {
        let spp = (page_bytes / sim_core::abi::device::SECTOR_BYTES).max(1);
        let file_sectors = u64::from(files) * u64::from(file_pages) * spp;
        let room = (capacity.checked_sub(file_sectors)? / spp).checked_sub(1)?;
        Some(DiskLayout {
            sectors_per_page: spp,
            file_pages,
            files,
            swap_slots: swap_slots.min(u32::try_from(room).unwrap_or(u32::MAX)),
        })
    }

    /// The first sector of page `page` of file `file`.
    pub fn file_lba(&self, file: u32, page: u32) -> u64 {
        (u64::from(file) * u64::from(self.file_pages) + u64::from(page)) * self.sectors_per_page
    }

    /// The first sector of swap slot `slot`.
    pub fn swap_lba(&self, slot: u32) -> u64 {
        self.file_lba(self.files, 0) + u64::from(slot) * self.sectors_per_page
    }
}

/// The word of an unmodified file page (what the installer wrote to the disk).
pub const fn file_word(file: u32, page: u32, word: u32) -> u64 {
    let mut x = (file as u64) << 44 ^ (page as u64) << 16 ^ word as u64 ^ 0x5EED_F11E_0000_0000;
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pte_words_round_trip() {
        for p in [
            Pte::None,
            Pte::Present { pfn: 0x1234 },
            Pte::Swap { slot: 7 },
            Pte::Migration { pfn: 99 },
            Pte::FileHole,
        ] {
            assert_eq!(Pte::decode(p.encode()), p);
        }
    }

    #[test]
    fn the_disk_layout_puts_files_then_swap_and_cuts_swap_to_the_medium() {
        // 16 KiB pages: 32 sectors each. 2 files of 3 pages: sectors 0..192.
        let l = DiskLayout::new(16 << 10, 2, 3, 100, 1 << 20).unwrap();
        assert_eq!(l.sectors_per_page, 32);
        assert_eq!(l.file_lba(0, 0), 0);
        assert_eq!(l.file_lba(1, 2), 5 * 32);
        assert_eq!(l.swap_lba(0), 6 * 32);
        assert_eq!(l.swap_slots, 100);
        // Room for 10 pages: 6 of files, 1 scratch page, 3 swap slots.
        let l = DiskLayout::new(16 << 10, 2, 3, 100, 10 * 32).unwrap();
        assert_eq!(l.swap_slots, 3);
        assert_eq!(l.swap_lba(l.swap_slots + 1), 10 * 32);
        // The files and the scratch page must fit.
        assert_eq!(DiskLayout::new(16 << 10, 2, 3, 100, 6 * 32), None);
        let mut m = SwapMap::new(2);
        assert_eq!(
            (m.take_slot(), m.take_slot(), m.take_slot()),
            (Some(0), Some(1), None)
        );
        m.release(0);
        assert_eq!((m.used(), m.capacity()), (1, 2));
    }

    #[test]
    fn tlb_caches_and_forgets() {
        let mut t = Tlb::new(64);
        assert_eq!(t.lookup(1, 5), None);
        t.fill(1, 5, 42);
        assert_eq!(t.lookup(1, 5), Some(42));
        assert_eq!(t.lookup(2, 5), None);
        assert_eq!(t.maps_frame(42), Some((1, 5)));
        t.invalidate(1, 5);
        assert_eq!(t.lookup(1, 5), None);
        t.fill(1, 6, 43);
        t.flush();
        assert_eq!(t.maps_frame(43), None);
    }
}
