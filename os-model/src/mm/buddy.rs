//! The buddy allocator of one zone: free lists per order and per pageblock migrate type
//! (SPEC OS-MEM-1).
//!
//! ```text
//!   order 0 ── [movable] [unmovable] [reclaimable] [isolate]   sets of head frame numbers,
//!   order 1 ── ...                                             lowest address first
//!   ...
//!   order 6 ── one whole pageblock per entry (the largest block, a hugetlb page)
//! ```
//!
//! A free block's head carries [`flags::BUDDY`] and its order in the `mem_map`; freeing merges
//! with the buddy while it is free and of the same order. Blocks never span pageblocks, so a
//! pageblock's migrate type says which list each of its free blocks is on; isolating a
//! pageblock moves its free blocks to the isolate list, from which nothing is allocated.

use std::collections::BTreeSet;

use super::page::{MemMap, Owner, flags};

/// log2 of the pages in a pageblock; also the largest buddy order and the hugetlb order.
pub const PAGEBLOCK_ORDER: u8 = 6;
/// Pages in a pageblock.
pub const PAGEBLOCK_PAGES: u32 = 1 << PAGEBLOCK_ORDER;

/// A pageblock's migrate type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrateType {
    /// Kernel allocations.
    Unmovable,
    /// User pages (migration can move them).
    Movable,
    /// Reclaimable kernel caches.
    Reclaimable,
    /// Being offlined: nothing is allocated from it.
    Isolate,
}

impl MigrateType {
    const ALL: [MigrateType; 4] = [
        MigrateType::Unmovable,
        MigrateType::Movable,
        MigrateType::Reclaimable,
        MigrateType::Isolate,
    ];

    const fn index(self) -> usize {
        self as usize
    }

    /// Name, as `/proc/pagetypeinfo` spells it (lower case).
    pub const fn name(self) -> &'static str {
        match self {
            MigrateType::Unmovable => "unmovable",
            MigrateType::Movable => "movable",
            MigrateType::Reclaimable => "reclaimable",
            MigrateType::Isolate => "isolate",
        }
    }

    /// Types an allocation of this type may steal from, in order.
    const fn fallbacks(self) -> [MigrateType; 2] {
        match self {
            MigrateType::Unmovable | MigrateType::Isolate => {
                [MigrateType::Reclaimable, MigrateType::Movable]
            }
            MigrateType::Movable => [MigrateType::Reclaimable, MigrateType::Unmovable],
            MigrateType::Reclaimable => [MigrateType::Unmovable, MigrateType::Movable],
        }
    }
}

/// Why the allocator's lists disagree with the `mem_map` (CHK-7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuddyFault {
    /// The frame.
    pub pfn: u32,
    /// What is wrong.
    pub message: String,
}

/// The free lists of one zone.
#[derive(Clone, Debug, Default)]
pub struct FreeArea {
    lists: Vec<[BTreeSet<u32>; 4]>,
    free_pages: u64,
}

impl FreeArea {
    /// Empty lists.
    pub fn new() -> Self {
        FreeArea {
            lists: (0..=PAGEBLOCK_ORDER).map(|_| Default::default()).collect(),
            free_pages: 0,
        }
    }

    /// Free pages in the lists (isolated ones included).
    pub fn free_pages(&self) -> u64 {
        self.free_pages
    }

    /// Free pages that can be allocated (not isolated).
    pub fn allocatable_pages(&self) -> u64 {
        self.free_pages - self.count_type(MigrateType::Isolate)
    }

    /// Free pages on the lists of `mt`.
    pub fn count_type(&self, mt: MigrateType) -> u64 {
        self.lists
            .iter()
            .enumerate()
            .map(|(o, l)| (l[mt.index()].len() as u64) << o)
            .sum()
    }

    /// Free blocks per order (all types), as `/proc/buddyinfo` prints them.
    pub fn buddyinfo(&self) -> Vec<usize> {
        self.lists
            .iter()
            .map(|l| l.iter().map(BTreeSet::len).sum())
            .collect()
    }

    fn insert(&mut self, mm: &mut MemMap, pfn: u32, order: u8, mt: MigrateType) {
        mm.set(pfn, flags::BUDDY);
        mm.set_order(pfn, order);
        self.lists[order as usize][mt.index()].insert(pfn);
        self.free_pages += 1 << order;
    }

    fn remove(&mut self, mm: &mut MemMap, pfn: u32, order: u8, mt: MigrateType) -> bool {
        if !self.lists[order as usize][mt.index()].remove(&pfn) {
            return false;
        }
        mm.clear(pfn, flags::BUDDY);
        mm.set_order(pfn, 0);
        self.free_pages -= 1 << order;
        true
    }

    /// Frees `1 << order` pages at `pfn` (aligned) into the lists of `mt` (the pageblock's
    /// type), merging with free buddies.
    pub fn free(&mut self, mm: &mut MemMap, mut pfn: u32, mut order: u8, mt: MigrateType) {
        for p in pfn..pfn + (1 << order) {
            mm.set_owner(p, Owner::Free);
            mm.set_flags(p, 0);
            mm.set_pins(p, 0);
        }
        while order < PAGEBLOCK_ORDER {
            let buddy = pfn ^ (1 << order);
            let free_buddy = (buddy as usize) < mm.len()
                && mm.has(buddy, flags::BUDDY)
                && mm.order(buddy) == order;
            if !free_buddy || !self.remove(mm, buddy, order, mt) {
                break;
            }
            pfn = pfn.min(buddy);
            order += 1;
        }
        self.insert(mm, pfn, order, mt);
    }

    /// Allocates `1 << order` pages of type `mt` (stealing from the fallback types if it
    /// must; never from isolated pageblocks — unless `isolated_too`, the injected defect
    /// `alloc_from_isolated`, which takes them last). Returns the head frame and the type of
    /// the pageblock it came from; the frames are marked `owner`.
    pub fn alloc(
        &mut self,
        mm: &mut MemMap,
        order: u8,
        mt: MigrateType,
        owner: Owner,
        isolated_too: bool,
    ) -> Option<(u32, MigrateType)> {
        let last = isolated_too.then_some(MigrateType::Isolate);
        let want = std::iter::once(mt).chain(mt.fallbacks()).chain(last);
        for (k, ty) in want.enumerate() {
            if ty == MigrateType::Isolate && (k < 3 || !isolated_too) {
                continue;
            }
            for o in order..=PAGEBLOCK_ORDER {
                let Some(&pfn) = self.lists[o as usize][ty.index()].first() else {
                    continue;
                };
                self.remove(mm, pfn, o, ty);
                // Split: the upper halves go back.
                let mut cur = o;
                while cur > order {
                    cur -= 1;
                    self.insert(mm, pfn + (1 << cur), cur, ty);
                }
                for p in pfn..pfn + (1 << order) {
                    mm.set_owner(p, owner);
                    mm.set_flags(p, 0);
                }
                mm.set_order(pfn, order);
                return Some((pfn, ty));
            }
        }
        None
    }

    /// Moves the free blocks of the pageblock at `pb_pfn` from the lists of `from` to the
    /// lists of `to`. Returns the pages moved.
    pub fn move_pageblock(
        &mut self,
        mm: &mut MemMap,
        pb_pfn: u32,
        from: MigrateType,
        to: MigrateType,
    ) -> u64 {
        let mut moved = 0;
        let mut p = pb_pfn;
        while p < pb_pfn + PAGEBLOCK_PAGES {
            if mm.has(p, flags::BUDDY) {
                let o = mm.order(p);
                if self.remove(mm, p, o, from) {
                    self.insert(mm, p, o, to);
                    moved += 1 << o;
                }
                p += 1 << o;
            } else {
                p += 1;
            }
        }
        moved
    }

    /// Takes every free block of the (isolated) pageblock at `pb_pfn` out of the lists:
    /// the frames leave the allocator (memory offline). Returns the pages taken.
    pub fn take_pageblock(&mut self, mm: &mut MemMap, pb_pfn: u32, mt: MigrateType) -> u64 {
        let mut taken = 0;
        let mut p = pb_pfn;
        while p < pb_pfn + PAGEBLOCK_PAGES {
            if mm.has(p, flags::BUDDY) {
                let o = mm.order(p);
                if self.remove(mm, p, o, mt) {
                    taken += 1 << o;
                }
                p += 1 << o;
            } else {
                p += 1;
            }
        }
        taken
    }

    /// Whether `pfn` heads a free block on the lists of `mt`.
    pub fn contains(&self, pfn: u32, order: u8, mt: MigrateType) -> bool {
        self.lists
            .get(order as usize)
            .is_some_and(|l| l[mt.index()].contains(&pfn))
    }

    /// Every free block: `(pfn, order, type)`, in list order.
    pub fn blocks(&self) -> impl Iterator<Item = (u32, u8, MigrateType)> + '_ {
        self.lists.iter().enumerate().flat_map(|(o, l)| {
            MigrateType::ALL
                .iter()
                .flat_map(move |&mt| l[mt.index()].iter().map(move |&p| (p, o as u8, mt)))
        })
    }

    /// CHK-7: every listed block is a free head of its order whose frames are free and
    /// unmapped, on the list of its pageblock's type; the count adds up.
    pub fn audit(
        &self,
        mm: &MemMap,
        pageblock_type: impl Fn(u32) -> MigrateType,
        out: &mut Vec<BuddyFault>,
    ) {
        let mut total = 0u64;
        for (pfn, order, mt) in self.blocks() {
            total += 1 << order;
            let mut fault = |message: String| out.push(BuddyFault { pfn, message });
            if !mm.has(pfn, flags::BUDDY) || mm.order(pfn) != order {
                fault(format!(
                    "free list of order {order} holds pfn {pfn:#x}, whose mem_map says {} order {}",
                    mm.describe_flags(pfn),
                    mm.order(pfn)
                ));
            }
            if pfn % (1 << order) != 0 {
                fault(format!(
                    "free block pfn {pfn:#x} is not aligned to its order {order}"
                ));
            }
            let pb = pageblock_type(pfn);
            if pb != mt {
                fault(format!(
                    "free block pfn {pfn:#x} is on the {mt:?} list but its pageblock is {pb:?}"
                ));
            }
            for p in pfn..pfn + (1 << order) {
                let i = p as usize;
                if mm.owner(i as u32) != Owner::Free || !mm.rmap(i as u32).is_empty() {
                    fault(format!(
                        "pfn {p:#x} is in a free block but is {} with {} mappings",
                        mm.owner(i as u32),
                        mm.rmap(i as u32).len()
                    ));
                    break;
                }
            }
        }
        if total != self.free_pages {
            out.push(BuddyFault {
                pfn: 0,
                message: format!(
                    "the free lists hold {total} pages but the zone counts {}",
                    self.free_pages
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(frames: u32) -> (MemMap, FreeArea) {
        let mut mm = MemMap::new(frames as usize);
        let mut fa = FreeArea::new();
        for p in (0..frames).step_by(PAGEBLOCK_PAGES as usize) {
            fa.free(&mut mm, p, PAGEBLOCK_ORDER, MigrateType::Movable);
        }
        (mm, fa)
    }

    #[test]
    fn split_and_merge_round_trip() {
        let (mut mm, mut fa) = area(128);
        assert_eq!(fa.free_pages(), 128);
        let owner = Owner::Anon { mm: 1, page: 0 };
        let (a, _) = fa
            .alloc(&mut mm, 0, MigrateType::Movable, owner, false)
            .unwrap();
        assert_eq!(a, 0);
        assert_eq!(fa.buddyinfo(), vec![1, 1, 1, 1, 1, 1, 1]);
        let (b, _) = fa
            .alloc(&mut mm, 2, MigrateType::Movable, owner, false)
            .unwrap();
        assert_eq!(b, 4);
        fa.free(&mut mm, a, 0, MigrateType::Movable);
        fa.free(&mut mm, b, 2, MigrateType::Movable);
        assert_eq!(fa.buddyinfo(), vec![0, 0, 0, 0, 0, 0, 2]);
        let mut out = Vec::new();
        fa.audit(&mm, |_| MigrateType::Movable, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn isolated_pageblocks_are_never_allocated() {
        let (mut mm, mut fa) = area(128);
        fa.move_pageblock(&mut mm, 0, MigrateType::Movable, MigrateType::Isolate);
        assert_eq!(fa.allocatable_pages(), 64);
        let owner = Owner::Slab { slab: 0 };
        for _ in 0..64 {
            let (p, _) = fa
                .alloc(&mut mm, 0, MigrateType::Unmovable, owner, false)
                .unwrap();
            assert!(p >= 64);
        }
        assert!(
            fa.alloc(&mut mm, 0, MigrateType::Movable, owner, false)
                .is_none()
        );
        // The defect alloc_from_isolated takes them once nothing else is left.
        let (p, ty) = fa
            .alloc(&mut mm, 0, MigrateType::Movable, owner, true)
            .unwrap();
        assert!(p < 64 && ty == MigrateType::Isolate);
        assert_eq!(fa.take_pageblock(&mut mm, 0, MigrateType::Isolate), 63);
        assert_eq!(fa.free_pages(), 0);
    }

    #[test]
    fn the_audit_bites() {
        let (mut mm, fa) = area(64);
        mm.set_owner(3, Owner::Anon { mm: 0, page: 0 });
        let mut out = Vec::new();
        fa.audit(&mm, |_| MigrateType::Movable, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
    }
}
