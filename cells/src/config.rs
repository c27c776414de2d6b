//! Machine configuration: what the scenario's `[machine]` table holds, and its validation.
//!
//! Defaults are the seed paper's machine (NEC TX7/i9000, seed 000 §2.1): 8 cells of 4
//! Itanium 2 CPUs and memory each, 16 KiB pages, a 3 MiB 12-way L3 with 128-byte lines per CPU.
//! Nothing in the model hard-codes these numbers; every count comes from here.
//!
//! [`MachineConfig::validate`] checks the whole configuration before anything is built and
//! returns a [`ConfigError`] naming the offending field (relative to the `[machine]` table) and
//! its value.

use serde::{Deserialize, Serialize};
use sim_core::ByteSize;
use thiserror::Error;

/// Width of the directory's sharer vector: the most CPUs a machine can have.
pub const MAX_CPUS: usize = 256;
/// The most page frames a machine can have (dense per-frame arrays are sized by it).
pub const MAX_FRAMES: u64 = 1 << 24;

/// The coherence protocol of the caches and directories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Modified / Exclusive / Shared / Invalid: a read of a modified line writes it back.
    Mesi,
    /// MESI plus Owned: a read of a modified line leaves the writer as owner of a dirty line
    /// shared with the readers; memory is updated only when the owner evicts it.
    #[default]
    Moesi,
}

/// How physical memory is spread over the cells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryMode {
    /// Each cell owns one contiguous range (`cell * memory_per_cell ..`); removable per cell.
    #[default]
    PerCell,
    /// Consecutive cache lines are spread round-robin over the cells. Faster for some loads,
    /// but no cell's memory can be removed (SPEC HW-3).
    Interleaved,
}

/// Per-CPU cache geometry (one level: the coherence point, Itanium 2's L3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Total capacity.
    pub size: ByteSize,
    /// Associativity.
    pub ways: u32,
    /// Line size; a power of two of at least 8 bytes.
    pub line: ByteSize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            size: ByteSize(3 << 20),
            ways: 12,
            line: ByteSize(128),
        }
    }
}

/// Latencies, in nanoseconds of simulated time. See `latency` in the crate docs for how an
/// access's latency is composed from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// A hit in the CPU's own cache.
    pub hit_ns: u64,
    /// A miss served by memory on the requester's own cell.
    pub local_memory_ns: u64,
    /// A miss served by memory on another cell, through the crossbar.
    pub remote_memory_ns: u64,
    /// A lookup in a home directory (paid on misses served by another cache).
    pub directory_ns: u64,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            hit_ns: 10,
            local_memory_ns: 200,
            remote_memory_ns: 350,
            directory_ns: 50,
        }
    }
}

/// The whole `[machine]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineConfig {
    /// Number of cell slots.
    pub cells: u16,
    /// CPUs on each cell board.
    pub cpus_per_cell: u16,
    /// Memory on each cell board.
    pub memory_per_cell: ByteSize,
    /// Page (frame) size; a power of two.
    pub page_size: ByteSize,
    /// Slots holding a powered cell at start; all slots when absent. The others are empty
    /// and can receive a cell later (hot-add).
    pub present_cells: Option<Vec<u16>>,
    /// Per-cell or interleaved memory.
    pub memory_mode: MemoryMode,
    /// Coherence protocol.
    pub protocol: Protocol,
    /// Per-CPU cache.
    pub cache: CacheConfig,
    /// Latencies.
    pub latency: LatencyConfig,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            cells: 8,
            cpus_per_cell: 4,
            memory_per_cell: ByteSize(512 << 20),
            page_size: ByteSize(16 << 10),
            present_cells: None,
            memory_mode: MemoryMode::PerCell,
            protocol: Protocol::Moesi,
            cache: CacheConfig::default(),
            latency: LatencyConfig::default(),
        }
    }
}

/// A configuration value that cannot be built, naming the field (a dotted path relative to the
/// `[machine]` table, e.g. `cache.line`) and why.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Dotted path of the offending field.
    pub field: String,
    /// What is wrong, with the value.
    pub message: String,
}

fn err(field: &str, message: String) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        message,
    }
}

/// Numbers derived from a validated configuration; every hot path reads these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Number of cell slots.
    pub cells: usize,
    /// CPUs per cell.
    pub cpus_per_cell: usize,
    /// Total CPUs (`cells * cpus_per_cell`).
    pub cpus: usize,
    /// Bytes of memory per cell.
    pub cell_bytes: u64,
    /// Total bytes of physical memory (all slots, present or not).
    pub total_bytes: u64,
    /// `log2(page size)`.
    pub page_shift: u32,
    /// `log2(line size)`.
    pub line_shift: u32,
    /// 64-bit words per line.
    pub words_per_line: usize,
    /// 64-bit words per page.
    pub words_per_page: usize,
    /// Lines per page.
    pub lines_per_page: usize,
    /// Cache sets per CPU.
    pub sets: usize,
    /// Cache ways.
    pub ways: usize,
    /// Total page frames.
    pub frames: usize,
    /// Memory layout.
    pub memory_mode: MemoryMode,
    /// Protocol.
    pub protocol: Protocol,
    /// Latencies.
    pub latency: LatencyConfig,
    /// Which slots hold a powered cell at start.
    pub present: Vec<bool>,
}

impl MachineConfig {
    /// Checks every field and derives the [`Geometry`].
    pub fn validate(&self) -> Result<Geometry, ConfigError> {
        if self.cells == 0 {
            return Err(err("cells", "must be at least 1 (got 0)".into()));
        }
        if self.cells > 256 {
            return Err(err(
                "cells",
                format!("{} exceeds 256 (the LSAPIC id field is 8 bits)", self.cells),
            ));
        }
        if self.cpus_per_cell == 0 {
            return Err(err("cpus_per_cell", "must be at least 1 (got 0)".into()));
        }
        let cpus = usize::from(self.cells) * usize::from(self.cpus_per_cell);
        if cpus > MAX_CPUS {
            return Err(err(
                "cpus_per_cell",
                format!(
                    "{} cells x {} CPUs = {cpus} CPUs exceeds the directory width of {MAX_CPUS}",
                    self.cells, self.cpus_per_cell
                ),
            ));
        }
        let line = self.cache.line.bytes();
        if !line.is_power_of_two() || line < 8 {
            return Err(err(
                "cache.line",
                format!("{line} is not a power of two of at least 8 bytes"),
            ));
        }
        let page = self.page_size.bytes();
        if !page.is_power_of_two() {
            return Err(err("page_size", format!("{page} is not a power of two")));
        }
        if page > 1 << 30 {
            return Err(err(
                "page_size",
                format!(
                    "{} is larger than the simulator allows (1GiB)",
                    self.page_size
                ),
            ));
        }
        if page < line {
            return Err(err(
                "page_size",
                format!("{page} is smaller than the cache line ({line})"),
            ));
        }
        let mem = self.memory_per_cell.bytes();
        if mem == 0 {
            return Err(err("memory_per_cell", "must not be 0".into()));
        }
        if mem % page != 0 {
            return Err(err(
                "memory_per_cell",
                format!(
                    "{} is not a multiple of the page size {}",
                    self.memory_per_cell, self.page_size
                ),
            ));
        }
        let total = mem.checked_mul(u64::from(self.cells)).ok_or_else(|| {
            err(
                "memory_per_cell",
                format!(
                    "{} x {} cells overflows 64 bits",
                    self.memory_per_cell, self.cells
                ),
            )
        })?;
        let frames = total / page;
        if frames > MAX_FRAMES {
            return Err(err(
                "memory_per_cell",
                format!(
                    "{} cells x {} = {frames} frames of {} exceeds the simulator's limit of \
                     {MAX_FRAMES} frames (use fewer cells, less memory or larger pages)",
                    self.cells, self.memory_per_cell, self.page_size
                ),
            ));
        }
        if self.cache.ways == 0 || self.cache.ways > 64 {
            return Err(err(
                "cache.ways",
                format!("{} must be between 1 and 64", self.cache.ways),
            ));
        }
        let way_bytes = line * u64::from(self.cache.ways);
        let size = self.cache.size.bytes();
        if size == 0 || size % way_bytes != 0 {
            return Err(err(
                "cache.size",
                format!(
                    "{} is not a multiple of ways x line = {} x {line}",
                    self.cache.size, self.cache.ways
                ),
            ));
        }
        let sets = size / way_bytes;
        if !sets.is_power_of_two() {
            return Err(err(
                "cache.size",
                format!(
                    "{} gives {sets} sets of {} ways; the number of sets must be a power of two",
                    self.cache.size, self.cache.ways
                ),
            ));
        }
        if size > 1 << 30 {
            return Err(err(
                "cache.size",
                format!(
                    "{} per CPU is more than the simulator allows (1GiB)",
                    self.cache.size
                ),
            ));
        }
        let lat = self.latency;
        if lat.hit_ns == 0 {
            return Err(err("latency.hit_ns", "must be at least 1".into()));
        }
        if lat.local_memory_ns < lat.hit_ns {
            return Err(err(
                "latency.local_memory_ns",
                format!(
                    "{} is faster than a cache hit ({})",
                    lat.local_memory_ns, lat.hit_ns
                ),
            ));
        }
        if lat.remote_memory_ns < lat.local_memory_ns {
            return Err(err(
                "latency.remote_memory_ns",
                format!(
                    "{} is faster than local memory ({})",
                    lat.remote_memory_ns, lat.local_memory_ns
                ),
            ));
        }
        let mut present = vec![self.present_cells.is_none(); usize::from(self.cells)];
        if let Some(list) = &self.present_cells {
            for (i, &c) in list.iter().enumerate() {
                let slot = present.get_mut(usize::from(c)).ok_or_else(|| {
                    err(
                        &format!("present_cells[{i}]"),
                        format!("cell {c} does not exist (cells = {})", self.cells),
                    )
                })?;
                if *slot {
                    return Err(err(
                        &format!("present_cells[{i}]"),
                        format!("cell {c} is listed twice"),
                    ));
                }
                *slot = true;
            }
        }
        if self.memory_mode == MemoryMode::Interleaved && present.iter().any(|&p| !p) {
            return Err(err(
                "present_cells",
                "interleaved memory needs every cell slot populated (each cell holds every \
                 N-th line)"
                    .into(),
            ));
        }
        Ok(Geometry {
            cells: usize::from(self.cells),
            cpus_per_cell: usize::from(self.cpus_per_cell),
            cpus,
            cell_bytes: mem,
            total_bytes: total,
            page_shift: page.trailing_zeros(),
            line_shift: line.trailing_zeros(),
            words_per_line: (line / 8) as usize,
            words_per_page: (page / 8) as usize,
            lines_per_page: (page / line) as usize,
            sets: sets as usize,
            ways: self.cache.ways as usize,
            frames: frames as usize,
            memory_mode: self.memory_mode,
            protocol: self.protocol,
            latency: lat,
            present,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_seed_machine() {
        let g = MachineConfig::default().validate().unwrap();
        assert_eq!((g.cells, g.cpus_per_cell, g.cpus), (8, 4, 32));
        assert_eq!(g.page_shift, 14);
        assert_eq!(g.line_shift, 7);
        assert_eq!(g.sets * g.ways * 128, 3 << 20);
        assert_eq!(g.frames, 8 * 512 * 1024 / 16);
        assert!(g.present.iter().all(|&p| p));
    }

    fn field_of(c: MachineConfig) -> String {
        c.validate().unwrap_err().field
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let d = MachineConfig::default;
        assert_eq!(field_of(MachineConfig { cells: 0, ..d() }), "cells");
        assert_eq!(
            field_of(MachineConfig {
                cpus_per_cell: 0,
                ..d()
            }),
            "cpus_per_cell"
        );
        assert_eq!(
            field_of(MachineConfig {
                cells: 100,
                cpus_per_cell: 4,
                ..d()
            }),
            "cpus_per_cell"
        );
        let mut c = d();
        c.cache.line = ByteSize(100);
        assert_eq!(field_of(c), "cache.line");
        let mut c = d();
        c.memory_per_cell = ByteSize((512 << 20) + 4096);
        assert_eq!(field_of(c), "memory_per_cell");
        let mut c = d();
        c.page_size = ByteSize(12 << 10);
        assert_eq!(field_of(c), "page_size");
        let mut c = d();
        c.cache.size = ByteSize(3 << 20);
        c.cache.ways = 10;
        assert_eq!(field_of(c), "cache.size");
        let mut c = d();
        c.cache.ways = 0;
        assert_eq!(field_of(c), "cache.ways");
        let mut c = d();
        c.memory_per_cell = ByteSize(1 << 40);
        assert_eq!(field_of(c), "memory_per_cell");
        let mut c = d();
        c.latency.remote_memory_ns = 100;
        assert_eq!(field_of(c), "latency.remote_memory_ns");
        let c = MachineConfig {
            present_cells: Some(vec![0, 9]),
            ..d()
        };
        assert_eq!(field_of(c), "present_cells[1]");
        let c = MachineConfig {
            present_cells: Some(vec![1, 1]),
            ..d()
        };
        assert!(c.validate().unwrap_err().message.contains("twice"));
    }

    #[test]
    fn messages_carry_the_value() {
        let mut c = MachineConfig::default();
        c.cache.line = ByteSize(100);
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "cache.line: 100 is not a power of two of at least 8 bytes"
        );
    }
}
