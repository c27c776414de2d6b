//! A first-fit allocator over one bridge window (bus numbers, I/O ports or MMIO).
//!
//! Used by firmware at boot to place the BARs of the cards present, and by the OS model for
//! hot-plug (here, in sim-core, so that both use it without depending on each other). It is bookkeeping, not hardware: the hardware only holds BAR values.

use std::collections::BTreeMap;

use thiserror::Error;

/// Why an allocation or reservation failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AllocError {
    /// No aligned gap of that size is left.
    #[error(
        "no free range of {size:#x} bytes (aligned to {align:#x}) in the window {base:#x}+{len:#x}; {free:#x} bytes free in all"
    )]
    Exhausted {
        /// Requested size.
        size: u64,
        /// Requested alignment.
        align: u64,
        /// Window start.
        base: u64,
        /// Window length.
        len: u64,
        /// Bytes still free (possibly fragmented).
        free: u64,
    },
    /// The range is outside the window or overlaps something allocated.
    #[error("range {start:#x}+{size:#x} is outside the window or overlaps an allocation")]
    Conflict {
        /// Start asked for.
        start: u64,
        /// Size asked for.
        size: u64,
    },
    /// Nothing is allocated at that start.
    #[error("nothing is allocated at {start:#x}")]
    NotAllocated {
        /// The start given.
        start: u64,
    },
}

/// First-fit allocator over `[base, base + len)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowAllocator {
    base: u64,
    len: u64,
    used: BTreeMap<u64, u64>,
}

impl WindowAllocator {
    /// An empty window.
    pub fn new(base: u64, len: u64) -> Self {
        WindowAllocator {
            base,
            len,
            used: BTreeMap::new(),
        }
    }

    /// Window start.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Window length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window has no length.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes not allocated.
    pub fn free(&self) -> u64 {
        self.len - self.used.values().sum::<u64>()
    }

    /// Allocations, in address order.
    pub fn allocations(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.used.iter().map(|(&s, &l)| (s, l))
    }

    /// The lowest `align`-aligned free range of `size` bytes (`align` a power of two).
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<u64, AllocError> {
        let align = align.max(1);
        let mut cursor = self.base;
        let end = self.base + self.len;
        let gaps = self
            .used
            .iter()
            .map(|(&s, &l)| (s, s + l))
            .chain(std::iter::once((end, end)));
        for (s, e) in gaps {
            let start = cursor.next_multiple_of(align);
            if start.checked_add(size).is_some_and(|x| x <= s) && size > 0 {
                self.used.insert(start, size);
                return Ok(start);
            }
            cursor = cursor.max(e);
        }
        Err(AllocError::Exhausted {
            size,
            align,
            base: self.base,
            len: self.len,
            free: self.free(),
        })
    }

    /// Marks `[start, start + size)` used.
    pub fn reserve(&mut self, start: u64, size: u64) -> Result<(), AllocError> {
        let conflict = AllocError::Conflict { start, size };
        let end = start.checked_add(size).ok_or(conflict.clone())?;
        if start < self.base || end > self.base + self.len || size == 0 {
            return Err(conflict);
        }
        let overlaps = self
            .used
            .range(..end)
            .next_back()
            .is_some_and(|(&s, &l)| s + l > start);
        if overlaps {
            return Err(conflict);
        }
        self.used.insert(start, size);
        Ok(())
    }

    /// Frees the allocation starting at `start`.
    pub fn release(&mut self, start: u64) -> Result<u64, AllocError> {
        self.used
            .remove(&start)
            .ok_or(AllocError::NotAllocated { start })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_fit_respects_alignment_and_reuses_holes() {
        let mut a = WindowAllocator::new(0x1000, 0x10000);
        assert_eq!(a.alloc(0x100, 0x100), Ok(0x1000));
        assert_eq!(a.alloc(0x4000, 0x4000), Ok(0x4000));
        assert_eq!(a.alloc(0x100, 0x100), Ok(0x1100));
        assert_eq!(a.release(0x1000), Ok(0x100));
        assert_eq!(a.alloc(0x80, 0x80), Ok(0x1000));
        assert!(a.reserve(0x4100, 0x10).is_err(), "overlaps");
        assert!(a.reserve(0x8000, 0x1000).is_ok());
        let e = a.alloc(0x10000, 0x10000).unwrap_err();
        assert!(e.to_string().starts_with("no free range of 0x10000"), "{e}");
        assert!(a.release(0x9999).is_err());
    }

    proptest! {
        #[test]
        fn allocations_never_overlap_and_stay_inside(reqs in proptest::collection::vec((0u32..12, 0u32..8, any::<bool>()), 1..60)) {
            let mut a = WindowAllocator::new(0x10_0000, 0x4_0000);
            let mut live: Vec<u64> = Vec::new();
            for (sz, al, free) in reqs {
                if free && !live.is_empty() {
                    let s = live.remove(0);
                    a.release(s).unwrap();
                    continue;
                }
                if let Ok(s) = a.alloc(1 << (sz + 4), 1 << (al + 4)) {
                    prop_assert_eq!(s % (1 << (al + 4)), 0);
                    live.push(s);
                }
                let v: Vec<_> = a.allocations().collect();
                for w in v.windows(2) {
                    prop_assert!(w[0].0 + w[0].1 <= w[1].0);
                }
                if let Some(&(s, l)) = v.last() {
                    prop_assert!(s + l <= 0x14_0000);
                }
            }
        }
    }
}
