//! A random coherence tester in the style of gem5 Ruby's random tester.
//!
//! Chosen CPUs, spread over the cells, write unique values to, and read back from, address sets
//! built to stress the protocol:
//!
//! * **private lines** — a small working set per CPU on its own cell, mostly hits (they set the
//!   hit rate of the mix; `locality` is the fraction of accesses going there);
//! * **false sharing** — lines homed round-robin on every cell whose individual words are read
//!   and written by every CPU, so lines bounce between caches in every state;
//! * **set conflicts** — for a few cache sets, every CPU gets more lines than the cache has
//!   ways, homed on different cells; it mostly uses its own and sometimes another CPU's, so
//!   evictions and write-backs of dirty and shared lines happen constantly and race with
//!   sharing.
//!
//! Every value written is unique (`(cpu + 1) << 48 | sequence`), and the tester remembers, for
//! every word, the last value written, by whom and when. A read that returns anything else is
//! reported with the CPU, address, expected and actual data and time. These checks are the
//! tester's own, independent of CHK-2's golden shadow.

use serde::{Deserialize, Serialize};
use sim_core::{
    CellId, CpuId, Entity, PhysAddr, RngStreams, SimDuration, SimRng, SimTime, Violation,
};
use thiserror::Error;

use crate::check::TESTER;
use crate::config::MemoryMode;
use crate::event::{HwObserver, Outcome};
use crate::machine::{AccessError, Machine};

/// The most words the tester tracks an expected value for.
pub const MAX_LOCATIONS: u64 = 1 << 24;

/// Tester knobs (the scenario's `[workload]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TesterConfig {
    /// Fraction of accesses that are reads (the rest are writes).
    pub read_fraction: f64,
    /// Fraction of accesses to the CPU's private lines.
    pub locality: f64,
    /// Private lines per CPU.
    pub private_lines: u32,
    /// Lines whose words are shared by all CPUs.
    pub false_sharing_lines: u32,
    /// Cache sets attacked with conflicting lines.
    pub conflict_sets: u32,
    /// Lines per tested CPU in each attacked set; 0 means twice the associativity.
    pub conflict_depth: u32,
    /// Each CPU waits a random 0..=`think_ns` between accesses.
    pub think_ns: u64,
}

impl Default for TesterConfig {
    fn default() -> Self {
        TesterConfig {
            read_fraction: 0.6,
            locality: 0.75,
            private_lines: 256,
            false_sharing_lines: 16,
            conflict_sets: 4,
            conflict_depth: 0,
            think_ns: 20,
        }
    }
}

/// Why the tester cannot be set up.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum TesterError {
    /// A knob is out of range; names the field.
    #[error("{field}: {message}")]
    Invalid {
        /// Field name within `[workload]`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A CPU to test does not exist or is not running.
    #[error("{cpu} cannot run the tester: {reason}")]
    Cpu {
        /// The CPU.
        cpu: CpuId,
        /// Why not.
        reason: String,
    },
}

/// The tester's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TesterStats {
    /// Reads issued.
    pub reads: u64,
    /// Writes issued.
    pub writes: u64,
    /// Reads compared against an expected value.
    pub checks: u64,
    /// Reads that returned something else.
    pub mismatches: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Expect {
    value: u64,
    writer: Option<CpuId>,
    time: SimTime,
}

/// A pool of lines; locations are `(line, word)` pairs numbered densely from `base`.
#[derive(Clone, Debug)]
struct Pool {
    lines: Vec<u64>,
    base: usize,
}

/// The random tester (see the module docs).
#[derive(Debug)]
pub struct RandomTester {
    cfg: TesterConfig,
    cpus: Vec<CpuId>,
    slot_of: Vec<Option<usize>>,
    active: Vec<bool>,
    rngs: Vec<SimRng>,
    private: Vec<Pool>,
    false_sharing: Pool,
    conflict: Pool,
    expected: Vec<Expect>,
    words_per_line: usize,
    line_shift: u32,
    seq: u64,
    stats: TesterStats,
}

impl RandomTester {
    /// Lays out the address sets on the machine's powered cells for `cpus`.
    pub fn new(
        cfg: TesterConfig,
        cpus: &[CpuId],
        hw: &Machine,
        streams: &RngStreams,
    ) -> Result<RandomTester, TesterError> {
        let bad = |field, message: String| TesterError::Invalid { field, message };
        for (field, v) in [
            ("read_fraction", cfg.read_fraction),
            ("locality", cfg.locality),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(field, format!("{v} is not between 0 and 1")));
            }
        }
        if cpus.is_empty() {
            return Err(bad("cpus", "no CPU to run the tester on".into()));
        }
        let g = hw.geometry();
        for &c in cpus {
            match hw.cpu(c) {
                None => {
                    return Err(TesterError::Cpu {
                        cpu: c,
                        reason: format!("the machine has {} CPUs", g.cpus),
                    });
                }
                Some(cpu) if !hw.cell(cpu.cell).is_some_and(|x| x.state.is_powered()) => {
                    return Err(TesterError::Cpu {
                        cpu: c,
                        reason: format!("its {} is not powered", cpu.cell),
                    });
                }
                Some(_) => {}
            }
        }
        let powered: Vec<CellId> = hw
            .cells()
            .iter()
            .filter(|c| c.state.is_powered())
            .map(|c| c.id)
            .collect();
        // One "bucket" of address space per powered cell: the cell's own range, or, when
        // memory is interleaved, an equal slice of all memory.
        let bucket_bytes = match g.memory_mode {
            MemoryMode::PerCell => g.cell_bytes,
            MemoryMode::Interleaved => g.total_bytes / powered.len() as u64,
        };
        let bucket_base = |i: usize| -> u64 {
            match g.memory_mode {
                MemoryMode::PerCell => u64::from(powered[i].0) * g.cell_bytes,
                MemoryMode::Interleaved => i as u64 * bucket_bytes,
            }
        };
        let line_bytes = 1u64 << g.line_shift;
        let bucket_lines = bucket_bytes / line_bytes;
        let depth = if cfg.conflict_depth == 0 {
            2 * g.ways as u32
        } else {
            cfg.conflict_depth
        };
        if cfg.conflict_sets as usize > g.sets {
            return Err(bad(
                "conflict_sets",
                format!("{} exceeds the cache's {} sets", cfg.conflict_sets, g.sets),
            ));
        }
        // Per bucket: [private blocks of the CPUs of that cell][false-sharing][conflict region]
        let private_per_bucket = u64::from(cfg.private_lines) * g.cpus_per_cell as u64;
        let fs_per_bucket = u64::from(cfg.false_sharing_lines).div_ceil(powered.len() as u64);
        let conflict_rows = (cpus.len() as u64 * u64::from(depth)).div_ceil(powered.len() as u64);
        let conflict_start = (private_per_bucket + fs_per_bucket).next_multiple_of(g.sets as u64);
        let needed = conflict_start + conflict_rows * g.sets as u64;
        if needed > bucket_lines {
            return Err(bad(
                "private_lines",
                format!(
                    "the address sets need {} per cell but a cell has {}",
                    sim_core::ByteSize(needed * line_bytes),
                    sim_core::ByteSize(bucket_bytes)
                ),
            ));
        }
        let locations = (cpus.len() as u64 * u64::from(cfg.private_lines)
            + u64::from(cfg.false_sharing_lines)
            + cpus.len() as u64 * u64::from(cfg.conflict_sets) * u64::from(depth))
            * g.words_per_line as u64;
        if locations > MAX_LOCATIONS {
            return Err(bad(
                "private_lines",
                format!(
                    "the address sets hold {locations} words, more than the tester tracks \
                     ({MAX_LOCATIONS}); use fewer lines"
                ),
            ));
        }
        let bucket_of_cell = |cell: CellId| powered.iter().position(|&c| c == cell).unwrap_or(0);
        let wpl = g.words_per_line;
        let mut next_base = 0usize;
        let mut pool = |lines: Vec<u64>| {
            let p = Pool {
                base: next_base,
                lines,
            };
            next_base += p.lines.len() * wpl;
            p
        };
        let private: Vec<Pool> = cpus
            .iter()
            .map(|&c| {
                let cpu = &hw.cpus()[c.index()];
                let b = bucket_of_cell(cpu.cell);
                let pos = c.index() % g.cpus_per_cell;
                let first =
                    (bucket_base(b) >> g.line_shift) + pos as u64 * u64::from(cfg.private_lines);
                pool((first..first + u64::from(cfg.private_lines)).collect())
            })
            .collect();
        let false_sharing = pool(
            (0..u64::from(cfg.false_sharing_lines))
                .map(|i| {
                    let b = (i % powered.len() as u64) as usize;
                    (bucket_base(b) >> g.line_shift) + private_per_bucket + i / powered.len() as u64
                })
                .collect(),
        );
        // Conflict lines: for every tested CPU, `depth` lines in each attacked set, homed
        // round-robin on the cells. A CPU mostly uses its own group (so its set overflows and
        // dirty lines are evicted) and sometimes another CPU's (so evictions race with sharing).
        let mut conflict_lines = Vec::new();
        for i in 0..cpus.len() as u64 {
            for j in 0..u64::from(cfg.conflict_sets) {
                let set =
                    (j * (g.sets as u64 / u64::from(cfg.conflict_sets.max(1))) + 7) % g.sets as u64;
                for m in 0..u64::from(depth) {
                    let k = i * u64::from(depth) + m;
                    let b = (k % powered.len() as u64) as usize;
                    let row = k / powered.len() as u64;
                    conflict_lines.push(
                        (bucket_base(b) >> g.line_shift)
                            + conflict_start
                            + row * g.sets as u64
                            + set,
                    );
                }
            }
        }
        let conflict = pool(conflict_lines);
        let mut slot_of = vec![None; g.cpus];
        for (i, &c) in cpus.iter().enumerate() {
            slot_of[c.index()] = Some(i);
        }
        Ok(RandomTester {
            rngs: cpus
                .iter()
                .map(|c| streams.stream("tester.cpu", u64::from(c.0)))
                .collect(),
            active: vec![true; cpus.len()],
            cpus: cpus.to_vec(),
            slot_of,
            private,
            false_sharing,
            conflict,
            expected: vec![Expect::default(); next_base],
            words_per_line: wpl,
            line_shift: g.line_shift,
            seq: 0,
            stats: TesterStats::default(),
            cfg,
        })
    }

    /// The CPUs the tester drives.
    pub fn cpus(&self) -> &[CpuId] {
        &self.cpus
    }

    /// Counters.
    pub fn stats(&self) -> &TesterStats {
        &self.stats
    }

    /// Whether `cpu` is still issuing accesses.
    pub fn is_active(&self, cpu: CpuId) -> bool {
        self.slot_of
            .get(cpu.index())
            .copied()
            .flatten()
            .is_some_and(|i| self.active[i])
    }

    /// Stops (`false`) or resumes (`true`) issuing accesses from `cpu`; returns whether the
    /// tester drives that CPU at all.
    pub fn set_active(&mut self, cpu: CpuId, on: bool) -> bool {
        match self.slot_of.get(cpu.index()).copied().flatten() {
            Some(i) => {
                self.active[i] = on;
                true
            }
            None => false,
        }
    }

    /// Every line the tester uses, for inspection.
    pub fn lines(&self) -> impl Iterator<Item = PhysAddr> + '_ {
        self.private
            .iter()
            .chain([&self.false_sharing, &self.conflict])
            .flat_map(|p| p.lines.iter())
            .map(|&l| PhysAddr::new(l << self.line_shift))
    }

    /// One access by `cpu` at `now`. Returns how long until the CPU's next access, and a
    /// violation if a read returned something other than the last value written.
    pub fn step<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        hw: &mut Machine,
        obs: &mut O,
    ) -> Result<(SimDuration, Option<Violation>), AccessError> {
        let Some(i) = self.slot_of.get(cpu.index()).copied().flatten() else {
            return Ok((SimDuration::ZERO, None));
        };
        let rng = &mut self.rngs[i];
        let shared_empty = self.false_sharing.lines.is_empty() && self.conflict.lines.is_empty();
        let (pool, li) = if shared_empty || rng.chance(self.cfg.locality) {
            let p = &self.private[i];
            (p, rng.index(p.lines.len()))
        } else if self.conflict.lines.is_empty()
            || (!self.false_sharing.lines.is_empty() && rng.chance(0.5))
        {
            let p = &self.false_sharing;
            (p, rng.index(p.lines.len()))
        } else {
            // The conflict pool is one equal group per CPU: mostly our own group, sometimes
            // anyone's.
            let p = &self.conflict;
            let group = p.lines.len() / self.cpus.len();
            if rng.chance(0.75) {
                (p, i * group + rng.index(group))
            } else {
                (p, rng.index(p.lines.len()))
            }
        };
        if pool.lines.is_empty() {
            return Ok((SimDuration::from_nanos(1), None));
        }
        let w = rng.index(self.words_per_line);
        let loc = pool.base + li * self.words_per_line + w;
        let addr = PhysAddr::new((pool.lines[li] << self.line_shift) + 8 * w as u64);
        let read = rng.chance(self.cfg.read_fraction);
        let think = SimDuration::from_nanos(rng.below(self.cfg.think_ns.saturating_add(1)));
        let mut mismatch = None;
        let acc = if read {
            self.stats.reads += 1;
            let a = hw.load(now, cpu, addr, obs)?;
            if a.outcome == Outcome::Performed {
                self.stats.checks += 1;
                let e = self.expected[loc];
                if a.value != e.value {
                    self.stats.mismatches += 1;
                    let who = e.writer.map_or_else(
                        || "never written: memory starts zeroed".to_owned(),
                        |c| format!("written by {c} at {}", e.time),
                    );
                    mismatch = Some(Violation {
                        time: now,
                        checker: TESTER,
                        agent: Entity::Cpu(cpu),
                        target: Entity::Memory(addr),
                        message: format!(
                            "{cpu} read {:#x} at {addr}, expected {:#x} ({who})",
                            a.value, e.value
                        ),
                    });
                }
            }
            a
        } else {
            self.stats.writes += 1;
            self.seq += 1;
            let value = (u64::from(cpu.0) + 1) << 48 | (self.seq & 0xFFFF_FFFF_FFFF);
            let a = hw.store(now, cpu, addr, value, obs)?;
            if a.outcome == Outcome::Performed {
                self.expected[loc] = Expect {
                    value,
                    writer: Some(cpu),
                    time: now,
                };
            }
            a
        };
        Ok((acc.latency + think, mismatch))
    }
}
