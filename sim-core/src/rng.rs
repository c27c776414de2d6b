//! Seeded random-number streams, one per component.
//!
//! A scenario has one seed. Every component that needs randomness asks [`RngStreams`] for its
//! own stream by a stable name and an index (`streams.stream("tester.cpu", 5)`); the stream's
//! key is derived from `(seed, name, index)` with the [`StableHasher`]. A component's draws
//! therefore do not depend on how many draws other components made, on their order, or on the
//! host's thread count — adding randomness to one component never perturbs another.
//!
//! The generator is ChaCha8 (`rand_chacha`): portable, reproducible across platforms, fast.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::hash::StableHasher;

/// Derives per-component streams from the one scenario seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngStreams {
    seed: u64,
}

impl RngStreams {
    /// Streams for scenario seed `seed`.
    pub const fn new(seed: u64) -> Self {
        RngStreams { seed }
    }

    /// The scenario seed.
    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// The stream for component `name`, instance `index`.
    pub fn stream(&self, name: &str, index: u64) -> SimRng {
        let mut h = StableHasher::new();
        h.word(self.seed);
        h.str(name);
        h.word(index);
        let key = h.finish();
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        // Also separate by ChaCha's stream counter so that two keys that collide in 64 bits
        // still differ by index.
        rng.set_stream(index);
        SimRng { rng }
    }
}

/// One component's random stream.
#[derive(Clone, Debug)]
pub struct SimRng {
    rng: ChaCha8Rng,
}

impl SimRng {
    /// A uniformly random 64-bit word.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform integer in `0..n` (`n > 0`; returns 0 for `n == 0`). Unbiased (Lemire's
    /// multiply-and-reject method).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        loop {
            let x = self.rng.next_u64();
            let m = u128::from(x) * u128::from(n);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// A uniform index into a slice of length `len`.
    #[inline]
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 random bits give a uniform float in [0, 1).
        let u = (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        u < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = {
            let mut r = RngStreams::new(7).stream("tester", 3);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = RngStreams::new(7).stream("tester", 3);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn streams_are_independent_by_seed_name_and_index() {
        let s = RngStreams::new(7);
        let first = |mut r: SimRng| r.next_u64();
        let base = first(s.stream("tester", 3));
        assert_ne!(base, first(s.stream("tester", 4)));
        assert_ne!(base, first(s.stream("testes", 3)));
        assert_ne!(base, first(RngStreams::new(8).stream("tester", 3)));
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = RngStreams::new(1).stream("t", 0);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = r.below(7);
            assert!(v < 7);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn chance_respects_extremes() {
        let mut r = RngStreams::new(1).stream("t", 0);
        assert!((0..100).all(|_| !r.chance(0.0)));
        assert!((0..100).all(|_| r.chance(1.0)));
    }
}
