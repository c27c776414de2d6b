//! # benches — criterion benchmarks of cellsim
//!
//! ```text
//!   benches/coherent_access.rs ── cells::Machine (bare, and with the trace + CHK-1 + CHK-2)
//! ```
//!
//! Run with `cargo bench -p benches`. The workloads are built here so that tests can check
//! their shape (hit rate, miss rate) without timing anything.

use cells::{Machine, MachineConfig};
use sim_core::{CpuId, PhysAddr, RngStreams, SimTime};

/// One access of a precomputed stream.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    /// Issuing CPU.
    pub cpu: CpuId,
    /// Word address.
    pub addr: PhysAddr,
    /// Store (with this value) or load.
    pub store: Option<u64>,
}

/// The default machine with every CPU started, and the 8 bench CPUs: one per cell.
pub fn machine() -> (Machine, Vec<CpuId>) {
    let mut m = Machine::new(&MachineConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<CpuId> = m.cpus().iter().map(|c| c.id).collect();
    for c in ids {
        m.cpu_event(SimTime::ZERO, c, cells::cpu::CpuEvent::Start, &mut ())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let per = m.geometry().cpus_per_cell;
    let cpus = (0..m.geometry().cells)
        .map(|cell| CpuId((cell * per) as u32))
        .collect();
    (m, cpus)
}

fn cell_base(m: &Machine, cpu: CpuId) -> u64 {
    let cell = m.cpus()[cpu.index()].cell;
    u64::from(cell.0) * m.geometry().cell_bytes
}

/// A mix: each access goes, with probability `hot`, to the issuing CPU's 1024 private lines
/// on its own cell, else to a random line of an 8 MiB region spread over all cells; 30 % of
/// accesses are stores. CPUs issue round-robin.
pub fn mix_stream(
    m: &Machine,
    cpus: &[CpuId],
    n: usize,
    hot: f64,
    hot_lines: u64,
    seed: u64,
) -> Vec<Op> {
    let g = m.geometry();
    let line = 1u64 << g.line_shift;
    let mut rng = RngStreams::new(seed).stream("bench.mix", 0);
    let shared_lines_per_cell = (8u64 << 20) / line / g.cells as u64;
    (0..n)
        .map(|i| {
            let cpu = cpus[i % cpus.len()];
            let word = rng.below(line / 8) * 8;
            let addr = if rng.chance(hot) {
                cell_base(m, cpu) + rng.below(hot_lines) * line + word
            } else {
                let cell = rng.below(g.cells as u64);
                cell * g.cell_bytes + (64 << 20) + rng.below(shared_lines_per_cell) * line + word
            };
            Op {
                cpu,
                addr: PhysAddr::new(addr),
                store: rng.chance(0.3).then_some(i as u64),
            }
        })
        .collect()
}

/// Every access misses: each CPU walks its own region, line by line, four times the cache
/// size, homed round-robin on all cells.
pub fn miss_stream(m: &Machine, cpus: &[CpuId], n: usize) -> Vec<Op> {
    let g = m.geometry();
    let line = 1u64 << g.line_shift;
    let region_lines = 4 * (g.sets * g.ways) as u64;
    let per_cell = region_lines / g.cells as u64;
    (0..n)
        .map(|i| {
            let k = i / cpus.len();
            let c = i % cpus.len();
            let cpu = cpus[c];
            let l = k as u64 % region_lines;
            let cell = l % g.cells as u64;
            let addr = cell * g.cell_bytes
                + (128 << 20)
                + c as u64 * per_cell * line
                + (l / g.cells as u64) * line;
            Op {
                cpu,
                addr: PhysAddr::new(addr),
                store: (i % 4 == 0).then_some(i as u64),
            }
        })
        .collect()
}

/// Runs a stream; returns the sum of values read (so the work cannot be optimised away).
pub fn run<O: cells::HwObserver>(m: &mut Machine, ops: &[Op], obs: &mut O) -> u64 {
    let mut sum = 0u64;
    let now = SimTime::ZERO;
    for op in ops {
        let r = match op.store {
            Some(v) => m.store(now, op.cpu, op.addr, v, obs),
            None => m.load(now, op.cpu, op.addr, obs),
        };
        sum = sum.wrapping_add(r.map_or(0, |a| a.value));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_hits_at_least_70_percent_and_the_miss_stream_always_misses() {
        let (mut m, cpus) = machine();
        let warm = mix_stream(&m, &cpus, 200_000, 0.75, 1024, 1);
        run(&mut m, &warm, &mut ());
        let before = m.stats().clone();
        let ops = mix_stream(&m, &cpus, 200_000, 0.75, 1024, 2);
        run(&mut m, &ops, &mut ());
        let hits = m.stats().hits - before.hits;
        let rate = hits as f64 / 200_000.0;
        assert!(rate >= 0.70, "hit rate {rate}");

        let (mut m, cpus) = machine();
        let ops = miss_stream(&m, &cpus, 100_000);
        run(&mut m, &ops, &mut ());
        assert_eq!(m.stats().hits, 0);
    }
}
