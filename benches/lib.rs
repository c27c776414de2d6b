//! # benches — criterion benchmarks of cellsim
//!
//! ```text
//!   benches/coherent_access.rs ── cells::Machine (bare, and with the trace + CHK-1 + CHK-2)
//!   benches/migration.rs ──────── os_model::Os memory offline on acpi_model::Platform
//!                                 vs a raw memcpy of the same pages (1 and 2 threads)
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

/// A machine with the OS booted and a node full of user pages, ready for a memory offline:
/// what the `migration` bench times.
pub mod migration {
    use acpi_model::{Platform, PlatformConfig, PlatformProbe};
    use os_model::config::MemConfig;
    use os_model::{DriverConfig, Os, OsConfig};
    use sim_core::{Entity, PhysAddr, RngStreams, SimDuration, SimTime, Trace, TraceLevel};

    /// Platform, probe (no checkers: the bench times the kernel's work) and OS.
    pub struct Rig {
        /// The platform.
        pub p: Platform,
        /// A bare probe.
        pub probe: PlatformProbe,
        /// The OS.
        pub os: Os,
    }

    /// Block offlined by the bench: node 1's first.
    pub const BLOCK: u32 = 8;

    impl Rig {
        /// Two default cells (512 MiB, 16 KiB pages, 64 MiB blocks); 16 tasks per node, each
        /// with `pages_per_task` anonymous pages whose every word holds data; the tasks sleep
        /// (the bench measures the migration, not the workload).
        pub fn new(pages_per_task: u32) -> Rig {
            let machine = cells::MachineConfig {
                cells: 2,
                ..cells::MachineConfig::default()
            };
            let cfg = PlatformConfig {
                machine,
                io: Default::default(),
            };
            let mut p = Platform::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
            let mut probe = PlatformProbe::bare(Trace::new(TraceLevel::Off, 0));
            let (_, bsp) = p
                .start_boot_cpu(SimTime::ZERO, &mut probe)
                .unwrap_or_else(|e| panic!("{e}"));
            let os_cfg = OsConfig {
                tasks_per_cpu: 4,
                burst: 1,
                compute: SimDuration::from_micros(50),
                shootdown_chance: 0.0,
                // The tasks go to sleep after their first burst: the bench times the kernel's
                // migration work, not the workload.
                sleep_chance: 1.0,
                sleep: SimDuration::from_millis(1000),
                memory: MemConfig {
                    anon_pages: pages_per_task,
                    swapout_cold: false,
                    copy_batch: 256,
                    ..MemConfig::default()
                },
                ..OsConfig::default()
            };
            let mut os = Os::boot(
                &os_cfg,
                &DriverConfig::default(),
                &[],
                SimTime::ZERO,
                bsp,
                &RngStreams::new(1),
                &mut p,
                &mut probe,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let end = SimTime::from_nanos(1_000_000);
            while os.next_time().is_some_and(|t| t < end) {
                os.step(&mut p, &mut probe);
                let _ = os.take_events();
            }
            let mut rig = Rig { p, probe, os };
            // Every used page of the block gets a full page of data.
            let frames = rig.frames();
            let words = rig.p.machine().geometry().words_per_page;
            let now = SimTime::from_nanos(1_000_000);
            for (k, a) in frames.iter().enumerate() {
                let data: Vec<u64> = (0..words as u64).map(|w| (k as u64) << 32 | w).collect();
                let _ =
                    rig.p
                        .machine_mut()
                        .dma_write(now, &Entity::Tester, *a, &data, &mut rig.probe);
            }
            // The next block, where the pages will go, has held data before (its host memory
            // exists, as a running machine's DRAM does): the copy then costs what copying
            // costs, not the host's first-touch page faults of the lazily allocated store.
            let shift = rig.p.machine().geometry().page_shift;
            let block_pages = rig.os.vm().map_or(0, |vm| vm.phys.block_pages);
            let zeros = vec![0u64; words];
            for f in 0..block_pages {
                let a = (u64::from((BLOCK + 1) * block_pages + f)) << shift;
                let _ = rig.p.machine_mut().dma_write(
                    now,
                    &Entity::Tester,
                    PhysAddr::new(a),
                    &zeros,
                    &mut rig.probe,
                );
            }
            rig
        }

        /// The used user frames of [`BLOCK`].
        pub fn frames(&self) -> Vec<PhysAddr> {
            let Some(vm) = self.os.vm() else {
                return Vec::new();
            };
            vm.phys
                .used_in(BLOCK)
                .into_iter()
                .filter(|&f| matches!(vm.phys.map.owner(f), os_model::mm::Owner::Anon { .. }))
                .map(|f| PhysAddr::new(vm.phys.addr(f)))
                .collect()
        }

        /// Offlines [`BLOCK`] and runs until the operation ends. Returns the pages it remapped.
        pub fn offline(&mut self) -> u32 {
            let now = self.os.next_time().unwrap_or(SimTime::ZERO);
            if let Err(e) = self.os.mem_request(now, BLOCK, false) {
                panic!("{e}");
            }
            while !self.os.mem_hotplug().is_idle() {
                self.os.step(&mut self.p, &mut self.probe);
                let _ = self.os.take_events();
            }
            let r = self
                .os
                .mem_hotplug()
                .done()
                .last()
                .map(|r| (r.result.clone(), r.moved.remapped));
            match r {
                Some((Some(Ok(())), n)) => n,
                other => panic!("offline failed: {other:?}"),
            }
        }
    }

    /// A raw memcpy of 16 KiB pages within one arena, the reference the migration is
    /// compared with: `pairs` of (source, destination) word offsets, all destinations
    /// distinct and none a source.
    pub struct RawCopy {
        arena: Vec<u64>,
        pairs: Vec<(usize, usize)>,
        words: usize,
    }

    impl RawCopy {
        /// `pages` pages of `words` words from random places of an arena four times that
        /// size to other random places (the guide's "scattered" memcpy), or, with
        /// `scattered = false`, from the first quarter of the arena in order to the second.
        pub fn new(pages: usize, words: usize, scattered: bool, seed: u64) -> RawCopy {
            let slots = pages * 4;
            let arena: Vec<u64> = (0..(slots * words) as u64).collect();
            let order: Vec<usize> = if scattered {
                let mut order: Vec<usize> = (0..slots).collect();
                let mut rng = RngStreams::new(seed).stream("bench.scatter", 0);
                for i in (1..slots).rev() {
                    let j = rng.index(i + 1);
                    order.swap(i, j);
                }
                order
            } else {
                (0..pages).flat_map(|k| [k, pages + k]).collect()
            };
            let pairs = (0..pages)
                .map(|k| (order[2 * k] * words, order[2 * k + 1] * words))
                .collect();
            RawCopy {
                arena,
                pairs,
                words,
            }
        }

        /// Copies every page once on the calling thread.
        pub fn copy(&mut self) {
            let w = self.words;
            for &(s, d) in &self.pairs {
                self.arena.copy_within(s..s + w, d);
            }
        }

        /// Copies every page once, the pages shared out by rayon over the current pool.
        pub fn copy_parallel(&mut self) {
            use rayon::prelude::*;
            let w = self.words;
            let mut slots: Vec<Option<&mut [u64]>> = self.arena.chunks_mut(w).map(Some).collect();
            let work: Vec<(&[u64], &mut [u64])> = self
                .pairs
                .iter()
                .filter_map(|&(s, d)| {
                    let dst = slots[d / w].take()?;
                    let src = slots[s / w].take()?;
                    Some((&*src, dst))
                })
                .collect();
            work.into_par_iter()
                .for_each(|(src, dst)| dst.copy_from_slice(src));
        }

        /// Bytes one copy moves.
        pub fn bytes(&self) -> u64 {
            (self.pairs.len() * self.words * 8) as u64
        }
    }

    #[cfg(test)]
    mod tests {
        use super::RawCopy;

        #[test]
        fn parallel_and_serial_raw_copies_move_the_same_pages() {
            for scattered in [true, false] {
                let mut a = RawCopy::new(64, 16, scattered, 3);
                let mut b = RawCopy::new(64, 16, scattered, 3);
                let before = a.arena.clone();
                a.copy();
                rayon::ThreadPoolBuilder::new()
                    .num_threads(2)
                    .build()
                    .unwrap()
                    .install(|| b.copy_parallel());
                assert_eq!(a.arena, b.arena);
                for &(s, d) in &a.pairs {
                    assert_eq!(a.arena[d..d + 16], before[s..s + 16]);
                    assert_ne!(before[d], before[s]);
                }
            }
        }
    }
}
