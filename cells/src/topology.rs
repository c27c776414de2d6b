//! Where memory lives and what distance costs.
//!
//! # Address map
//!
//! Physical memory starts at 0. In [`MemoryMode::PerCell`] cell `k` owns
//! `[k * memory_per_cell, (k + 1) * memory_per_cell)`; the range is reserved even while the
//! slot is empty, so a cell inserted later appears at its own place (as firmware does with
//! hot-pluggable ranges in SRAT). In [`MemoryMode::Interleaved`] line `n` lives on cell
//! `n % cells`.
//!
//! # Latency model
//!
//! Transactions are atomic: an access completes entirely when issued and returns its
//! latency; there are no transient states or queueing. With `x(a, b)` the one-way crossbar
//! delay between cells (`0` on the same cell, `(remote_memory_ns - local_memory_ns) / 2`
//! otherwise):
//!
//! * hit: `hit_ns`;
//! * miss served by memory at home `h`: `hit_ns + local_memory_ns + 2·x(req, h)`;
//! * miss served by the cache of owner `o`:
//!   `hit_ns + directory_ns + x(req, h) + x(h, o) + hit_ns + x(o, req)`;
//! * invalidations (write miss or upgrade with sharers `s…`): the requester waits for the
//!   slowest acknowledgement, `directory_ns + x(req, h) + max_s (x(h, s) + x(s, req))`, in
//!   parallel with the data fetch;
//! * write-backs and eviction notices leave through a write buffer and add no latency.
//!
//! The NUMA distance (ACPI SLIT units) is 10 on the same cell and
//! `10 * remote_memory_ns / local_memory_ns` across the crossbar.

use sim_core::{CellId, PhysAddr};

use crate::config::{Geometry, LatencyConfig, MemoryMode};

/// Maps addresses to home cells.
#[derive(Clone, Debug)]
pub struct AddressMap {
    mode: MemoryMode,
    cells: u64,
    cell_bytes: u64,
    cell_shift: Option<u32>,
    total_lines: u64,
    total_bytes: u64,
    line_shift: u32,
}

impl AddressMap {
    /// The map of a validated geometry.
    pub fn new(g: &Geometry) -> Self {
        AddressMap {
            mode: g.memory_mode,
            cells: g.cells as u64,
            cell_bytes: g.cell_bytes,
            cell_shift: g
                .cell_bytes
                .is_power_of_two()
                .then(|| g.cell_bytes.trailing_zeros()),
            total_lines: g.total_bytes >> g.line_shift,
            total_bytes: g.total_bytes,
            line_shift: g.line_shift,
        }
    }

    /// Total bytes of physical address space backed by cell slots.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The home cell of line number `line` (`addr >> line_shift`), or `None` past the end.
    #[inline]
    pub fn home_of_line(&self, line: u64) -> Option<CellId> {
        if line >= self.total_lines {
            return None;
        }
        let cell = match self.mode {
            MemoryMode::PerCell => {
                let addr = line << self.line_shift;
                match self.cell_shift {
                    Some(s) => addr >> s,
                    None => addr / self.cell_bytes,
                }
            }
            MemoryMode::Interleaved => line % self.cells,
        };
        Some(CellId(cell as u16))
    }

    /// The home cell of `addr`, or `None` if no cell slot backs it.
    #[inline]
    pub fn home_of(&self, addr: PhysAddr) -> Option<CellId> {
        self.home_of_line(addr.raw() >> self.line_shift)
    }

    /// The contiguous range a cell owns (per-cell mode), `None` when interleaved.
    pub fn cell_range(&self, cell: CellId) -> Option<(PhysAddr, u64)> {
        match self.mode {
            MemoryMode::PerCell => {
                let base = u64::from(cell.0).checked_mul(self.cell_bytes)?;
                Some((PhysAddr::new(base), self.cell_bytes))
            }
            MemoryMode::Interleaved => None,
        }
    }

    /// The memory mode.
    pub fn mode(&self) -> MemoryMode {
        self.mode
    }

    /// Calls `f` with each maximal run of consecutive line numbers homed on `cell`, as
    /// `(first_line, count)`.
    pub fn for_each_line_run(&self, cell: CellId, mut f: impl FnMut(u64, u64)) {
        match self.mode {
            MemoryMode::PerCell => {
                let lines = self.cell_bytes >> self.line_shift;
                f(u64::from(cell.0) * lines, lines);
            }
            MemoryMode::Interleaved => {
                let mut l = u64::from(cell.0);
                while l < self.total_lines {
                    f(l, 1);
                    l += self.cells;
                }
            }
        }
    }
}

/// Latency arithmetic for one machine (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    cfg: LatencyConfig,
    crossbar: u64,
}

impl Latency {
    /// The latency model of a validated configuration.
    pub fn new(cfg: LatencyConfig) -> Self {
        Latency {
            cfg,
            crossbar: (cfg.remote_memory_ns - cfg.local_memory_ns) / 2,
        }
    }

    /// One-way crossbar delay between two cells.
    #[inline]
    pub fn x(&self, a: CellId, b: CellId) -> u64 {
        if a == b { 0 } else { self.crossbar }
    }

    /// A hit.
    #[inline]
    pub fn hit(&self) -> u64 {
        self.cfg.hit_ns
    }

    /// A miss served by memory at `home`.
    #[inline]
    pub fn from_memory(&self, req: CellId, home: CellId) -> u64 {
        self.cfg.hit_ns + self.cfg.local_memory_ns + 2 * self.x(req, home)
    }

    /// A miss served by the cache of a CPU on `owner`.
    #[inline]
    pub fn from_cache(&self, req: CellId, home: CellId, owner: CellId) -> u64 {
        2 * self.cfg.hit_ns
            + self.cfg.directory_ns
            + self.x(req, home)
            + self.x(home, owner)
            + self.x(owner, req)
    }

    /// Waiting for the acknowledgement of an invalidation sent to a CPU on `sharer`.
    #[inline]
    pub fn invalidation(&self, req: CellId, home: CellId, sharer: CellId) -> u64 {
        self.cfg.directory_ns + self.x(req, home) + self.x(home, sharer) + self.x(sharer, req)
    }

    /// ACPI SLIT distance between two cells.
    pub fn distance(&self, a: CellId, b: CellId) -> u8 {
        if a == b {
            10
        } else {
            let d = 10 * self.cfg.remote_memory_ns / self.cfg.local_memory_ns.max(1);
            d.clamp(11, 254) as u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MachineConfig;
    use sim_core::ByteSize;

    #[test]
    fn per_cell_homes_follow_the_ranges() {
        let g = MachineConfig::default().validate().unwrap();
        let m = AddressMap::new(&g);
        assert_eq!(m.home_of(PhysAddr::new(0)), Some(CellId(0)));
        assert_eq!(m.home_of(PhysAddr::new((512 << 20) - 8)), Some(CellId(0)));
        assert_eq!(m.home_of(PhysAddr::new(512 << 20)), Some(CellId(1)));
        assert_eq!(m.home_of(PhysAddr::new(8 * (512 << 20))), None);
        assert_eq!(
            m.cell_range(CellId(3)),
            Some((PhysAddr::new(3 * (512 << 20)), 512 << 20))
        );
    }

    #[test]
    fn non_power_of_two_cells_use_division() {
        let c = MachineConfig {
            cells: 3,
            memory_per_cell: ByteSize(48 << 10),
            ..MachineConfig::default()
        };
        let m = AddressMap::new(&c.validate().unwrap());
        assert_eq!(m.home_of(PhysAddr::new(47 << 10)), Some(CellId(0)));
        assert_eq!(m.home_of(PhysAddr::new(48 << 10)), Some(CellId(1)));
        assert_eq!(m.home_of(PhysAddr::new(144 << 10)), None);
    }

    #[test]
    fn interleaved_homes_rotate_per_line() {
        let c = MachineConfig {
            memory_mode: MemoryMode::Interleaved,
            ..MachineConfig::default()
        };
        let m = AddressMap::new(&c.validate().unwrap());
        let homes: Vec<_> = (0..10u64)
            .map(|l| m.home_of(PhysAddr::new(l * 128)).unwrap().0)
            .collect();
        assert_eq!(homes, vec![0, 1, 2, 3, 4, 5, 6, 7, 0, 1]);
        assert_eq!(m.cell_range(CellId(0)), None);
        let mut runs = 0;
        m.for_each_line_run(CellId(7), |_, n| runs += n);
        assert_eq!(runs, (8 * (512u64 << 20) / 128) / 8);
    }

    #[test]
    fn remote_costs_more_than_local() {
        let l = Latency::new(LatencyConfig::default());
        let (a, b) = (CellId(0), CellId(1));
        assert_eq!(l.from_memory(a, a), 210);
        assert_eq!(l.from_memory(a, b), 360);
        assert!(l.from_cache(a, b, b) > l.from_cache(a, a, a));
        assert_eq!(l.distance(a, a), 10);
        assert_eq!(l.distance(a, b), 17);
    }
}
