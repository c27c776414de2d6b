//! The directory at each home cell.
//!
//! For every line homed on the cell that is cached anywhere, one [`DirEntry`]: the owner (a
//! cache holding it E, M or O) and the sharers (caches holding it S). Lines cached nowhere have
//! no entry, and caches notify the directory when they drop a line, so the number of entries is
//! bounded by the total cache capacity of the machine, not by memory size: the directory is
//! *sparse*. Entries live in a hash map keyed by line number with the Fx hash (never SipHash on
//! this path); its order is never used for anything observable (audits sort first).

use rustc_hash::FxHashMap;
use sim_core::CpuId;

use crate::config::MAX_CPUS;

const WORDS: usize = MAX_CPUS / 64;

/// A set of CPUs as a fixed bit vector of [`MAX_CPUS`] bits (the directory's sharer vector).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuMask([u64; WORDS]);

impl CpuMask {
    /// The empty set.
    pub const EMPTY: CpuMask = CpuMask([0; WORDS]);

    /// `{cpu}`.
    #[inline]
    pub fn only(cpu: CpuId) -> Self {
        let mut m = CpuMask::EMPTY;
        m.insert(cpu);
        m
    }
    /// Adds a CPU.
    #[inline]
    pub fn insert(&mut self, cpu: CpuId) {
        let i = cpu.index();
        self.0[i / 64] |= 1 << (i % 64);
    }
    /// Removes a CPU.
    #[inline]
    pub fn remove(&mut self, cpu: CpuId) {
        let i = cpu.index();
        self.0[i / 64] &= !(1 << (i % 64));
    }
    /// Membership.
    #[inline]
    pub fn contains(&self, cpu: CpuId) -> bool {
        let i = cpu.index();
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    /// Whether no CPU is in the set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
    /// Number of CPUs in the set.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
    /// The members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = CpuId> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut bits = w;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                Some(CpuId((wi * 64) as u32 + b))
            })
        })
    }
}

/// What a home directory knows about one cached line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirEntry {
    /// The cache holding the line E, M (alone) or O (with sharers).
    pub owner: Option<CpuId>,
    /// Caches holding the line S. Never contains the owner.
    pub sharers: CpuMask,
}

impl DirEntry {
    /// Whether nothing holds the line any more.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.owner.is_none() && self.sharers.is_empty()
    }
    /// Whether `cpu` is recorded as holding the line in any state.
    #[inline]
    pub fn holds(&self, cpu: CpuId) -> bool {
        self.owner == Some(cpu) || self.sharers.contains(cpu)
    }
    /// Removes `cpu` wherever it is recorded.
    #[inline]
    pub fn forget(&mut self, cpu: CpuId) {
        if self.owner == Some(cpu) {
            self.owner = None;
        }
        self.sharers.remove(cpu);
    }
}

/// One home cell's sparse directory.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    entries: FxHashMap<u64, DirEntry>,
    peak: usize,
}

impl Directory {
    /// The entry for line number `line`.
    #[inline]
    pub fn get(&self, line: u64) -> Option<&DirEntry> {
        self.entries.get(&line)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, line: u64) -> Option<&mut DirEntry> {
        self.entries.get_mut(&line)
    }

    /// Inserts or replaces; returns whether the line was new.
    #[inline]
    pub(crate) fn put(&mut self, line: u64, e: DirEntry) -> bool {
        let new = self.entries.insert(line, e).is_none();
        if new && self.entries.len() > self.peak {
            self.peak = self.entries.len();
        }
        new
    }

    /// Removes an entry; returns whether there was one.
    #[inline]
    pub(crate) fn remove(&mut self, line: u64) -> bool {
        self.entries.remove(&line).is_some()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Number of lines tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no line is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most lines tracked at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Every entry, sorted by line number (a deterministic order for audits and reports).
    pub fn sorted_entries(&self) -> Vec<(u64, DirEntry)> {
        let mut v: Vec<_> = self.entries.iter().map(|(&l, &e)| (l, e)).collect();
        v.sort_unstable_by_key(|&(l, _)| l);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_iterates_in_order_across_words() {
        let mut m = CpuMask::EMPTY;
        for c in [200u32, 3, 64, 63] {
            m.insert(CpuId(c));
        }
        assert_eq!(m.count(), 4);
        let v: Vec<u32> = m.iter().map(|c| c.0).collect();
        assert_eq!(v, vec![3, 63, 64, 200]);
        m.remove(CpuId(64));
        assert!(!m.contains(CpuId(64)));
        assert!(CpuMask::only(CpuId(9)).contains(CpuId(9)));
    }

    #[test]
    fn entries_forget_and_empty() {
        let mut e = DirEntry {
            owner: Some(CpuId(1)),
            sharers: CpuMask::only(CpuId(2)),
        };
        assert!(e.holds(CpuId(1)) && e.holds(CpuId(2)));
        e.forget(CpuId(1));
        e.forget(CpuId(2));
        assert!(e.is_empty());
        let mut d = Directory::default();
        assert!(d.put(7, e));
        assert!(!d.put(7, e));
        assert_eq!(d.peak(), 1);
        assert!(d.remove(7));
        assert!(d.is_empty());
    }
}
