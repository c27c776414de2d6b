//! One CPU's write-back, set-associative cache with LRU replacement.
//!
//! Storage is dense and flat, indexed by *slot* = `set * ways + way`: tag words (line number
//! and state), LRU stamps and the line data (`words_per_line` 64-bit words per slot). A lookup
//! is one scan of `ways` contiguous `u64`s. Lines hold real data: a dirty line's memory copy is stale until it
//! is written back, which is what lets a missing flush be observed.

use std::fmt;

use serde::Serialize;

use crate::config::Geometry;

/// Tag word of an invalid slot (no packed line number reaches it).
pub const INVALID_TAG: u64 = u64::MAX;

/// MOESI line states (MESI machines never use [`LineState::Owned`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum LineState {
    /// Not present.
    Invalid,
    /// Clean (or owned elsewhere), read-only, possibly in other caches.
    Shared,
    /// Clean, only copy, writable without a transaction.
    Exclusive,
    /// Dirty, read-only, shared with other caches; this cache must write it back.
    Owned,
    /// Dirty, only copy.
    Modified,
}

impl LineState {
    /// Present in the cache.
    #[inline]
    pub const fn is_valid(self) -> bool {
        !matches!(self, LineState::Invalid)
    }
    /// Memory is stale; this cache must write the line back.
    #[inline]
    pub const fn is_dirty(self) -> bool {
        matches!(self, LineState::Owned | LineState::Modified)
    }
    /// A store may proceed without a coherence transaction.
    #[inline]
    pub const fn is_writable(self) -> bool {
        matches!(self, LineState::Exclusive | LineState::Modified)
    }
    /// One-letter name.
    pub const fn letter(self) -> char {
        match self {
            LineState::Invalid => 'I',
            LineState::Shared => 'S',
            LineState::Exclusive => 'E',
            LineState::Owned => 'O',
            LineState::Modified => 'M',
        }
    }
}

impl fmt::Display for LineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

/// A set-associative write-back cache (see the module docs).
///
/// Each slot's tag word packs the line number and the state: `line << 3 | state`, and an
/// invalid slot holds [`INVALID_TAG`], so a lookup reads nothing but the set's tag words and a
/// hit touches one more host cache line (the data). LRU stamps are 32-bit and renormalised when
/// the per-cache tick would wrap.
#[derive(Clone, Debug)]
pub struct Cache {
    ways: usize,
    set_mask: u64,
    words_per_line: usize,
    tags: Vec<u64>,
    stamps: Vec<u32>,
    data: Vec<u64>,
    tick: u32,
    valid: usize,
}

const STATE_BITS: u32 = 3;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;

#[inline]
const fn state_of(tag: u64) -> LineState {
    match tag & STATE_MASK {
        1 => LineState::Shared,
        2 => LineState::Exclusive,
        3 => LineState::Owned,
        4 => LineState::Modified,
        _ => LineState::Invalid,
    }
}

#[inline]
const fn pack(line: u64, st: LineState) -> u64 {
    (line << STATE_BITS) | st as u64
}

impl Cache {
    /// An empty cache of the geometry's size.
    pub fn new(g: &Geometry) -> Self {
        let slots = g.sets * g.ways;
        Cache {
            ways: g.ways,
            set_mask: (g.sets - 1) as u64,
            words_per_line: g.words_per_line,
            tags: vec![INVALID_TAG; slots],
            stamps: vec![0; slots],
            data: vec![0; slots * g.words_per_line],
            tick: 0,
            valid: 0,
        }
    }

    /// Number of slots (`sets * ways`).
    pub fn slots(&self) -> usize {
        self.tags.len()
    }

    /// Number of valid lines.
    pub fn valid_lines(&self) -> usize {
        self.valid
    }

    /// The first slot of the set `line` maps to.
    #[inline]
    fn set_base(&self, line: u64) -> usize {
        (line & self.set_mask) as usize * self.ways
    }

    /// The slot holding `line`, if present.
    #[inline]
    pub fn lookup(&self, line: u64) -> Option<usize> {
        let base = self.set_base(line);
        let want = line << STATE_BITS;
        self.tags[base..base + self.ways]
            .iter()
            // INVALID_TAG never matches: no line number packs to all-ones.
            .position(|&t| t & !STATE_MASK == want)
            .map(|w| base + w)
    }

    /// State and data of `line`, if present.
    pub fn probe(&self, line: u64) -> Option<(LineState, &[u64])> {
        self.lookup(line)
            .map(|s| (self.state(s), self.line_data(s)))
    }

    /// Marks a slot most recently used.
    #[inline]
    pub(crate) fn touch(&mut self, slot: usize) {
        if self.tick == u32::MAX {
            self.renormalise();
        }
        self.tick += 1;
        self.stamps[slot] = self.tick;
    }

    /// Replaces every set's stamps by their ranks within the set (same LRU order) and restarts
    /// the clock after them; runs once every 4 billion touches.
    #[cold]
    fn renormalise(&mut self) {
        let ways = self.ways;
        for set in self.stamps.chunks_mut(ways) {
            let mut order: Vec<usize> = (0..ways).collect();
            order.sort_by_key(|&w| set[w]);
            for (rank, w) in order.into_iter().enumerate() {
                set[w] = rank as u32;
            }
        }
        self.tick = ways as u32;
    }

    /// The slot to fill for `line`: an invalid way of its set, else the least recently used.
    #[inline]
    pub(crate) fn victim(&self, line: u64) -> usize {
        let base = self.set_base(line);
        let set = base..base + self.ways;
        if let Some(w) = self.tags[set.clone()]
            .iter()
            .position(|&t| t == INVALID_TAG)
        {
            return base + w;
        }
        let mut best = base;
        for s in set {
            if self.stamps[s] < self.stamps[best] {
                best = s;
            }
        }
        best
    }

    /// The line number in `slot` ([`INVALID_TAG`] when invalid).
    #[inline]
    pub fn tag(&self, slot: usize) -> u64 {
        let t = self.tags[slot];
        if t == INVALID_TAG { t } else { t >> STATE_BITS }
    }

    /// The state of `slot`.
    #[inline]
    pub fn state(&self, slot: usize) -> LineState {
        let t = self.tags[slot];
        if t == INVALID_TAG {
            LineState::Invalid
        } else {
            state_of(t)
        }
    }

    #[inline]
    pub(crate) fn set_state(&mut self, slot: usize, st: LineState) {
        debug_assert!(st.is_valid() && self.state(slot).is_valid());
        let t = &mut self.tags[slot];
        *t = (*t & !STATE_MASK) | st as u64;
    }

    /// The words of `slot`.
    #[inline]
    pub fn line_data(&self, slot: usize) -> &[u64] {
        let b = slot * self.words_per_line;
        &self.data[b..b + self.words_per_line]
    }

    /// Word `w` of `slot`.
    #[inline]
    pub fn word(&self, slot: usize, w: usize) -> u64 {
        self.data[slot * self.words_per_line + w]
    }

    #[inline]
    pub(crate) fn set_word(&mut self, slot: usize, w: usize, v: u64) {
        self.data[slot * self.words_per_line + w] = v;
    }

    /// Puts `line` into `slot` (which must be invalid) with `data`.
    #[inline]
    pub(crate) fn fill(&mut self, slot: usize, line: u64, st: LineState, data: &[u64]) {
        debug_assert!(!self.state(slot).is_valid() && st.is_valid());
        self.tags[slot] = pack(line, st);
        let b = slot * self.words_per_line;
        self.data[b..b + self.words_per_line].copy_from_slice(data);
        self.valid += 1;
        self.touch(slot);
    }

    /// Drops the line in `slot` (no write-back).
    #[inline]
    pub(crate) fn invalidate(&mut self, slot: usize) {
        if self.tags[slot] != INVALID_TAG {
            self.valid -= 1;
        }
        self.tags[slot] = INVALID_TAG;
    }

    /// Drops every line (power loss or INIT); returns `(lines, dirty lines, first dirty line)`.
    pub(crate) fn clear(&mut self) -> (u32, u32, Option<u64>) {
        let census = self.census();
        self.tags.fill(INVALID_TAG);
        self.valid = 0;
        census
    }

    /// `(valid lines, dirty lines, lowest dirty line number)`.
    pub fn census(&self) -> (u32, u32, Option<u64>) {
        let mut dirty = 0u32;
        let mut first: Option<u64> = None;
        for (s, _, st) in self.lines() {
            if st.is_dirty() {
                dirty += 1;
                let t = self.tag(s);
                first = Some(first.map_or(t, |f| f.min(t)));
            }
        }
        (self.valid as u32, dirty, first)
    }

    /// Every valid `(slot, line, state)`, in slot order.
    pub fn lines(&self) -> impl Iterator<Item = (usize, u64, LineState)> + '_ {
        self.tags
            .iter()
            .enumerate()
            .filter(|(_, t)| **t != INVALID_TAG)
            .map(|(s, &t)| (s, t >> STATE_BITS, state_of(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CacheConfig, MachineConfig};
    use sim_core::ByteSize;

    fn tiny() -> Cache {
        let c = MachineConfig {
            cache: CacheConfig {
                size: ByteSize(4 * 2 * 128),
                ways: 2,
                line: ByteSize(128),
            },
            ..MachineConfig::default()
        };
        Cache::new(&c.validate().unwrap())
    }

    #[test]
    fn fill_lookup_and_lru_victim() {
        let mut c = tiny();
        assert_eq!(c.slots(), 8);
        let d = [1u64; 16];
        // lines 0, 4, 8 all map to set 0 (4 sets)
        let s0 = c.victim(0);
        c.fill(s0, 0, LineState::Exclusive, &d);
        let s4 = c.victim(4);
        assert_ne!(s0, s4, "an invalid way is preferred");
        c.fill(s4, 4, LineState::Shared, &d);
        c.touch(s0);
        assert_eq!(c.victim(8), s4, "least recently used goes");
        assert_eq!(c.lookup(4), Some(s4));
        assert_eq!(c.lookup(8), None);
        c.invalidate(s4);
        assert_eq!(c.lookup(4), None);
        assert_eq!(c.valid_lines(), 1);
    }

    #[test]
    fn renormalising_the_clock_keeps_lru_order() {
        let mut c = tiny();
        let d = [0u64; 16];
        let a = c.victim(0);
        c.fill(a, 0, LineState::Shared, &d);
        let b = c.victim(4);
        c.fill(b, 4, LineState::Shared, &d);
        c.touch(a);
        c.tick = u32::MAX;
        c.touch(b);
        assert!(c.tick < 100);
        assert_eq!(c.victim(8), a, "b was touched last");
    }

    #[test]
    fn census_counts_dirty_lines() {
        let mut c = tiny();
        let d = [0u64; 16];
        let s = c.victim(5);
        c.fill(s, 5, LineState::Modified, &d);
        let s = c.victim(2);
        c.fill(s, 2, LineState::Owned, &d);
        let s = c.victim(3);
        c.fill(s, 3, LineState::Shared, &d);
        assert_eq!(c.census(), (3, 2, Some(2)));
        assert_eq!(c.clear(), (3, 2, Some(2)));
        assert_eq!(c.valid_lines(), 0);
        assert_eq!(c.lines().count(), 0);
    }
}
