//! CPU masks over logical CPU numbers, sized for the maximum (`nr_cpus`), printed the way Linux
//! prints them (`0-3,8-11`).

use std::fmt;

use bitvec::vec::BitVec;
use serde::{Deserialize, Serialize};

/// A logical CPU number: the OS's own numbering, assigned when a processor object is first
/// found and kept for the life of the system (so the online numbers become non-contiguous as
/// CPUs leave).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogicalCpu(pub u32);

impl LogicalCpu {
    /// As an index into per-CPU arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for LogicalCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpu{}", self.0)
    }
}

/// A set of logical CPUs (`cpumask_t`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CpuMask(BitVec);

impl fmt::Debug for CpuMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuMask({self})")
    }
}

impl CpuMask {
    /// An empty mask able to hold `nr_cpus` CPUs.
    pub fn new(nr_cpus: usize) -> Self {
        CpuMask(BitVec::repeat(false, nr_cpus))
    }
    /// Adds a CPU (ignored beyond the mask's size).
    pub fn set(&mut self, c: LogicalCpu) {
        if let Some(mut b) = self.0.get_mut(c.index()) {
            *b = true;
        }
    }
    /// Removes a CPU.
    pub fn clear(&mut self, c: LogicalCpu) {
        if let Some(mut b) = self.0.get_mut(c.index()) {
            *b = false;
        }
    }
    /// Membership.
    pub fn contains(&self, c: LogicalCpu) -> bool {
        self.0.get(c.index()).is_some_and(|b| *b)
    }
    /// Number of CPUs in the mask.
    pub fn weight(&self) -> usize {
        self.0.count_ones()
    }
    /// Whether the mask is empty.
    pub fn is_empty(&self) -> bool {
        self.0.not_any()
    }
    /// The CPUs, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = LogicalCpu> + '_ {
        self.0.iter_ones().map(|i| LogicalCpu(i as u32))
    }
    /// CPUs `64k .. 64k + 63` as a 64-bit word (bit `b`: CPU `64k + b`), as a `cpumask_t`
    /// holds them in memory.
    pub fn word(&self, k: usize) -> u64 {
        let lo = (64 * k).min(self.0.len());
        let hi = (64 * k + 64).min(self.0.len());
        self.0[lo..hi].iter_ones().fold(0, |w, b| w | 1 << b)
    }
    /// Sets CPUs `64k .. 64k + 63` from the word `bits` (bits beyond the mask's size are
    /// ignored): the inverse of [`CpuMask::word`].
    pub fn set_word(&mut self, k: usize, bits: u64) {
        for b in 0..64 {
            if bits >> b & 1 != 0 {
                self.set(LogicalCpu((64 * k + b) as u32));
            }
        }
    }
    /// The lowest CPU.
    pub fn first(&self) -> Option<LogicalCpu> {
        self.0.first_one().map(|i| LogicalCpu(i as u32))
    }
    /// The mask as Linux's `cpumap` hex string (32-bit words, most significant first,
    /// comma-separated), e.g. `00000000,0000ff0f`.
    pub fn to_hex_words(&self) -> String {
        let words = self.0.len().div_ceil(32).max(1);
        (0..words)
            .rev()
            .map(|w| {
                let v: u32 = (0..32)
                    .filter(|b| self.contains(LogicalCpu((w * 32 + b) as u32)))
                    .map(|b| 1u32 << b)
                    .sum();
                format!("{v:08x}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for CpuMask {
    /// Linux cpulist format: `0-3,8-11`; empty prints as nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut run: Option<(u32, u32)> = None;
        let flush = |f: &mut fmt::Formatter<'_>, r: (u32, u32), first: &mut bool| {
            if !*first {
                write!(f, ",")?;
            }
            *first = false;
            if r.0 == r.1 {
                write!(f, "{}", r.0)
            } else {
                write!(f, "{}-{}", r.0, r.1)
            }
        };
        for c in self.iter() {
            run = match run {
                Some((a, b)) if c.0 == b + 1 => Some((a, c.0)),
                Some(r) => {
                    flush(f, r, &mut first)?;
                    Some((c.0, c.0))
                }
                None => Some((c.0, c.0)),
            };
        }
        if let Some(r) = run {
            flush(f, r, &mut first)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_linux() {
        let mut m = CpuMask::new(64);
        for c in [0, 1, 2, 3, 8, 9, 10, 11, 13, 40] {
            m.set(LogicalCpu(c));
        }
        assert_eq!(m.to_string(), "0-3,8-11,13,40");
        assert_eq!(m.weight(), 10);
        assert_eq!(m.to_hex_words(), "00000100,00002f0f");
        m.clear(LogicalCpu(40));
        assert!(!m.contains(LogicalCpu(40)));
        assert_eq!(CpuMask::new(8).to_string(), "");
        m.set(LogicalCpu(500));
        assert!(!m.contains(LogicalCpu(500)), "beyond nr_cpus is ignored");
    }

    #[test]
    fn words_round_trip_as_memory_holds_them() {
        let mut m = CpuMask::new(100);
        for c in [0, 5, 63, 64, 99] {
            m.set(LogicalCpu(c));
        }
        assert_eq!(m.word(0), 1 | 1 << 5 | 1 << 63);
        assert_eq!(m.word(1), 1 | 1 << 35);
        assert_eq!(m.word(2), 0, "beyond the mask");
        let mut n = CpuMask::new(100);
        n.set_word(0, m.word(0));
        n.set_word(1, m.word(1) | u64::MAX << 36);
        assert_eq!(n, m, "bits beyond nr_cpus are ignored");
    }
}
