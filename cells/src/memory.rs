//! Physical memory: real contents, allocated lazily per page, with per-frame metadata in dense
//! arrays indexed by frame number (as Linux's `struct page` array).
//!
//! A page that was never written reads as zeros and costs no host memory, so a machine of
//! 8 × 512 MiB fits comfortably in a test. Contents are 64-bit words; a line or a page is a
//! slice of words.

use bitvec::vec::BitVec;

/// Sparse word storage over a dense frame index: `Vec<Option<Box<[u64]>>>`.
#[derive(Clone, Debug)]
pub struct PageStore {
    pages: Vec<Option<Box<[u64]>>>,
    page_shift: u32,
    words_per_page: usize,
    allocated: usize,
    /// Freed page buffers kept for reuse by copies and first writes (contents undefined).
    spare: Vec<Box<[u64]>>,
}

/// Freed page buffers kept at most.
const SPARE_PAGES: usize = 256;

impl PageStore {
    /// Storage for `frames` pages of `1 << page_shift` bytes, all reading as zero.
    pub fn new(frames: usize, page_shift: u32) -> Self {
        PageStore {
            pages: vec![None; frames],
            page_shift,
            words_per_page: 1 << (page_shift - 3),
            allocated: 0,
            spare: Vec::new(),
        }
    }

    #[inline]
    fn split(&self, addr: u64) -> (usize, usize) {
        (
            (addr >> self.page_shift) as usize,
            ((addr >> 3) as usize) & (self.words_per_page - 1),
        )
    }

    /// The word at byte address `addr` (8-aligned, inside the store).
    #[inline]
    pub fn read(&self, addr: u64) -> u64 {
        let (p, w) = self.split(addr);
        match &self.pages[p] {
            Some(page) => page[w],
            None => 0,
        }
    }

    #[inline]
    fn page_mut(&mut self, p: usize) -> &mut [u64] {
        if self.pages[p].is_none() {
            // A freed buffer, zeroed, before new host memory (whose first touch costs a
            // host page fault).
            let b = match self.spare.pop() {
                Some(mut b) => {
                    b.fill(0);
                    b
                }
                None => vec![0u64; self.words_per_page].into_boxed_slice(),
            };
            self.pages[p] = Some(b);
            self.allocated += 1;
        }
        self.pages[p].as_deref_mut().unwrap_or_default()
    }

    /// Writes the word at `addr`.
    #[inline]
    pub fn write(&mut self, addr: u64, value: u64) {
        let (p, w) = self.split(addr);
        self.page_mut(p)[w] = value;
    }

    /// Copies `out.len()` words starting at `addr` (which must not cross a page) into `out`.
    #[inline]
    pub fn read_words(&self, addr: u64, out: &mut [u64]) {
        let (p, w) = self.split(addr);
        match &self.pages[p] {
            Some(page) => out.copy_from_slice(&page[w..w + out.len()]),
            None => out.fill(0),
        }
    }

    /// Writes `data` starting at `addr` (not crossing a page).
    #[inline]
    pub fn write_words(&mut self, addr: u64, data: &[u64]) {
        let (p, w) = self.split(addr);
        self.page_mut(p)[w..w + data.len()].copy_from_slice(data);
    }

    /// The words starting at `addr`, `None` if the page was never written (all zero).
    #[inline]
    pub fn words(&self, addr: u64, len: usize) -> Option<&[u64]> {
        let (p, w) = self.split(addr);
        self.pages[p].as_deref().map(|page| &page[w..w + len])
    }

    /// Zeroes `count` words from `addr` (not crossing a page); frees the page when the whole
    /// page is zeroed.
    pub fn zero_words(&mut self, addr: u64, count: usize) {
        let (p, w) = self.split(addr);
        if count == self.words_per_page && w == 0 {
            if self.pages[p].take().is_some() {
                self.allocated -= 1;
            }
        } else if let Some(page) = self.pages[p].as_deref_mut() {
            page[w..w + count].fill(0);
        }
    }

    /// Copies the whole of frame `src` over frame `dst` (a frame never written stays
    /// unbacked: the copy of zeros frees the destination). Freed page buffers are reused, so
    /// a stream of copies that frees its sources allocates nothing.
    pub fn copy_page(&mut self, src: usize, dst: usize) {
        if src == dst {
            return;
        }
        if self.pages[src].is_none() {
            if let Some(b) = self.pages[dst].take() {
                self.allocated -= 1;
                self.spare.push(b);
            }
            return;
        }
        if self.pages[dst].is_none() {
            let b = match (self.spare.pop(), self.pages[src].as_deref()) {
                (Some(b), _) => b,
                (None, Some(from)) => from.into(),
                (None, None) => vec![0u64; self.words_per_page].into_boxed_slice(),
            };
            self.pages[dst] = Some(b);
            self.allocated += 1;
        }
        let (a, b) = if src < dst {
            let (lo, hi) = self.pages.split_at_mut(dst);
            (&lo[src], &mut hi[0])
        } else {
            let (lo, hi) = self.pages.split_at_mut(src);
            (&hi[0], &mut lo[dst])
        };
        if let (Some(from), Some(to)) = (a.as_deref(), b.as_deref_mut()) {
            to.copy_from_slice(from);
        }
    }

    /// Copies frame `src` over frame `dst` for every pair, in parallel (rayon) when `parallel`
    /// and there are several. The pairs' destinations must be distinct and no destination may
    /// be a source. The result does not depend on the number of threads: each destination is
    /// written by exactly one copy.
    pub fn copy_pages(&mut self, pairs: &[(usize, usize)], parallel: bool) {
        use rayon::prelude::*;
        if !parallel || pairs.len() < 2 {
            for &(s, d) in pairs {
                self.copy_page(s, d);
            }
            return;
        }
        // Take every destination buffer out (its own, or a spare), copy into them side by
        // side — a destination without a buffer gets a new one holding the copy — then put
        // them back.
        let mut outs: Vec<(usize, Option<Box<[u64]>>)> = pairs
            .iter()
            .map(|&(s, d)| {
                let had = self.pages[d].take();
                if had.is_some() {
                    self.allocated -= 1;
                }
                let buf = if self.pages[s].is_some() {
                    had.or_else(|| self.spare.pop())
                } else {
                    if let Some(b) = had {
                        self.spare.push(b);
                    }
                    None
                };
                (s, buf)
            })
            .collect();
        let pages = &self.pages;
        outs.par_iter_mut().for_each(|(s, buf)| {
            if let Some(src) = pages[*s].as_deref() {
                match buf.as_deref_mut() {
                    Some(b) => b.copy_from_slice(src),
                    None => *buf = Some(src.into()),
                }
            }
        });
        for (&(_, d), (_, buf)) in pairs.iter().zip(outs) {
            if buf.is_some() {
                self.allocated += 1;
            }
            self.pages[d] = buf;
        }
    }

    /// The whole of frame `pfn`, if it was ever written.
    pub fn page(&self, pfn: usize) -> Option<&[u64]> {
        self.pages[pfn].as_deref()
    }

    /// Frees (zeroes) frames `first..first + count`.
    pub fn drop_frames(&mut self, first: usize, count: usize) {
        for slot in &mut self.pages[first..first + count] {
            if let Some(b) = slot.take() {
                self.allocated -= 1;
                if self.spare.len() < SPARE_PAGES {
                    self.spare.push(b);
                }
            }
        }
    }

    /// Pages currently backed by host memory.
    pub fn allocated_pages(&self) -> usize {
        self.allocated
    }

    /// Number of frames.
    pub fn frames(&self) -> usize {
        self.pages.len()
    }
}

/// All physical memory of the machine and its per-frame metadata.
#[derive(Clone, Debug)]
pub struct Memory {
    store: PageStore,
    /// Corrected (single-bit) errors reported per frame.
    corrected: Vec<u32>,
    /// The frames with corrected errors, in order (what firmware's error log walks).
    erring: std::collections::BTreeSet<usize>,
    /// Frames holding an uncorrected error (poison).
    poisoned: BitVec,
    /// Lines of each frame that some directory currently tracks (i.e. cached somewhere).
    /// A frame with zero here has no cached copy anywhere: a coherent copy of it can read
    /// memory directly.
    cached_lines: Vec<u32>,
}

impl Memory {
    /// Memory of `frames` frames of `1 << page_shift` bytes.
    pub fn new(frames: usize, page_shift: u32) -> Self {
        Memory {
            store: PageStore::new(frames, page_shift),
            corrected: vec![0; frames],
            erring: std::collections::BTreeSet::new(),
            poisoned: BitVec::repeat(false, frames),
            cached_lines: vec![0; frames],
        }
    }

    /// The contents.
    pub fn store(&self) -> &PageStore {
        &self.store
    }

    pub(crate) fn store_mut(&mut self) -> &mut PageStore {
        &mut self.store
    }

    /// Corrected errors counted on frame `pfn`.
    pub fn corrected_errors(&self, pfn: usize) -> u32 {
        self.corrected.get(pfn).copied().unwrap_or(0)
    }

    /// Sum of corrected errors over frames `first..first + count`.
    pub fn corrected_errors_in(&self, first: usize, count: usize) -> u64 {
        let end = (first + count).min(self.corrected.len());
        self.corrected
            .get(first..end)
            .map(|s| s.iter().map(|&c| u64::from(c)).sum())
            .unwrap_or(0)
    }

    pub(crate) fn add_corrected(&mut self, pfn: usize, n: u32) -> u32 {
        let c = &mut self.corrected[pfn];
        *c = c.saturating_add(n);
        if *c > 0 {
            self.erring.insert(pfn);
        }
        *c
    }

    /// The frames with corrected errors and their counts, in frame order.
    pub fn erring_frames(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.erring.iter().map(|&p| (p, self.corrected[p]))
    }

    /// Whether frame `pfn` holds an uncorrected error.
    pub fn is_poisoned(&self, pfn: usize) -> bool {
        self.poisoned.get(pfn).is_some_and(|b| *b)
    }

    pub(crate) fn set_poison(&mut self, pfn: usize, on: bool) {
        self.poisoned.set(pfn, on);
    }

    /// Lines of frame `pfn` cached anywhere.
    pub fn cached_lines(&self, pfn: usize) -> u32 {
        self.cached_lines[pfn]
    }

    #[inline]
    pub(crate) fn cached_inc(&mut self, pfn: usize) {
        self.cached_lines[pfn] += 1;
    }

    #[inline]
    pub(crate) fn cached_dec(&mut self, pfn: usize) {
        debug_assert!(self.cached_lines[pfn] > 0);
        self.cached_lines[pfn] = self.cached_lines[pfn].saturating_sub(1);
    }

    /// Forgets contents and metadata of frames `first..first + count` (power lost).
    pub(crate) fn reset_frames(&mut self, first: usize, count: usize) {
        self.store.drop_frames(first, count);
        self.corrected[first..first + count].fill(0);
        self.cached_lines[first..first + count].fill(0);
        for f in first..first + count {
            self.poisoned.set(f, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwritten_pages_read_zero_and_cost_nothing() {
        let mut s = PageStore::new(1024, 14);
        assert_eq!(s.read(0x4008), 0);
        assert_eq!(s.allocated_pages(), 0);
        s.write(0x4008, 42);
        assert_eq!(s.read(0x4008), 42);
        assert_eq!(s.allocated_pages(), 1);
        let mut line = [7u64; 16];
        s.read_words(0x4000, &mut line);
        assert_eq!(line[1], 42);
        assert_eq!(line[0], 0);
        s.read_words(0x8000, &mut line);
        assert_eq!(line, [0; 16]);
        s.drop_frames(1, 1);
        assert_eq!(s.read(0x4008), 0);
        assert_eq!(s.allocated_pages(), 0);
    }

    #[test]
    fn zeroing_a_whole_page_frees_it() {
        let mut s = PageStore::new(4, 14);
        s.write(0x4000, 1);
        s.zero_words(0x4000, 16);
        assert_eq!(s.allocated_pages(), 1, "a partial zero keeps the page");
        s.zero_words(0x4000, 2048);
        assert_eq!(s.allocated_pages(), 0);
    }

    #[test]
    fn a_reused_buffer_reads_zero_where_it_was_not_written() {
        let mut s = PageStore::new(4, 14);
        s.write_words(0, &[7; 2048]);
        s.drop_frames(0, 1);
        assert_eq!(s.allocated_pages(), 0);
        // Frame 2's first write takes the freed buffer of frame 0.
        s.write(2 << 14 | 8, 5);
        assert_eq!(s.allocated_pages(), 1);
        let page = s.page(2).unwrap();
        assert_eq!(page[1], 5);
        assert!(page.iter().enumerate().all(|(i, &w)| i == 1 || w == 0));
        assert_eq!(s.page(0), None);
    }

    #[test]
    fn metadata_is_per_frame() {
        let mut m = Memory::new(8, 14);
        assert_eq!(m.add_corrected(3, 2), 2);
        assert_eq!(m.add_corrected(3, 1), 3);
        assert_eq!(m.corrected_errors_in(0, 8), 3);
        m.set_poison(5, true);
        assert!(m.is_poisoned(5));
        m.reset_frames(3, 3);
        assert_eq!(m.corrected_errors(3), 0);
        assert!(!m.is_poisoned(5));
    }
}
