//! The random tester: clean on a correct model, deterministic, and its address sets really
//! produce false sharing and set conflicts.

use cells::config::{MachineConfig, MemoryMode};
use cells::{Machine, Probe, RandomTester, TesterConfig};
use sim_core::{CpuId, EventQueue, RngStreams, SimTime, Trace, TraceLevel};

fn run(cfg: &MachineConfig, seed: u64, accesses: u64) -> (u64, cells::MachineStats, u64) {
    let mut m = Machine::new(cfg).unwrap();
    let mut p = Probe::with_hw_checkers(Trace::new(TraceLevel::Off, 0), &m, true);
    let cpus: Vec<CpuId> = m.cpus().iter().map(|c| c.id).collect();
    for &c in &cpus {
        m.cpu_event(SimTime::ZERO, c, cells::cpu::CpuEvent::Start, &mut p)
            .unwrap();
    }
    let mut tester =
        RandomTester::new(TesterConfig::default(), &cpus, &m, &RngStreams::new(seed)).unwrap();
    let mut q = EventQueue::new();
    for &c in &cpus {
        q.schedule(SimTime::ZERO, c).unwrap();
    }
    for _ in 0..accesses {
        let (now, c) = q.pop().unwrap();
        let (dt, bad) = tester.step(now, c, &mut m, &mut p).unwrap();
        assert!(bad.is_none(), "{bad:?}");
        q.schedule(now + dt, c).unwrap();
    }
    p.audit(q.now(), &m);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
    (p.trace.hash().0, m.stats().clone(), tester.stats().checks)
}

#[test]
fn default_machine_runs_clean_and_deterministically() {
    let cfg = MachineConfig::default();
    let (h1, s1, checks) = run(&cfg, 1, 100_000);
    let (h2, s2, _) = run(&cfg, 1, 100_000);
    let (h3, _, _) = run(&cfg, 2, 100_000);
    assert_eq!(h1, h2, "same seed, same trace");
    assert_eq!(s1, s2);
    assert_ne!(h1, h3, "another seed, another trace");
    assert!(checks > 50_000);
    assert!(s1.hit_rate() > 0.5, "hit rate {}", s1.hit_rate());
    assert!(
        s1.served_cache_to_cache > 1000,
        "false sharing moves lines between caches"
    );
    assert!(s1.writebacks > 1000, "set conflicts evict dirty lines");
    assert!(s1.invalidations > 1000);
    assert!(s1.remote_messages > 0);
}

#[test]
fn interleaved_memory_runs_clean() {
    let cfg = MachineConfig {
        memory_mode: MemoryMode::Interleaved,
        ..MachineConfig::default()
    };
    run(&cfg, 3, 30_000);
}

#[test]
fn odd_geometries_run_clean() {
    let cfg = MachineConfig {
        cells: 3,
        cpus_per_cell: 3,
        memory_per_cell: sim_core::ByteSize(3 << 20),
        cache: cells::config::CacheConfig {
            size: sim_core::ByteSize(64 * 5 * 16),
            ways: 5,
            line: sim_core::ByteSize(64),
        },
        ..MachineConfig::default()
    };
    run(&cfg, 4, 30_000);
}

#[test]
fn tester_refuses_impossible_layouts() {
    let m = Machine::new(&MachineConfig::default()).unwrap();
    let cfg = TesterConfig {
        private_lines: 1 << 30,
        ..TesterConfig::default()
    };
    let e = RandomTester::new(cfg, &[CpuId(0)], &m, &RngStreams::new(0)).unwrap_err();
    assert!(e.to_string().starts_with("private_lines:"), "{e}");
    let cfg = TesterConfig {
        read_fraction: 1.5,
        ..TesterConfig::default()
    };
    assert!(RandomTester::new(cfg, &[CpuId(0)], &m, &RngStreams::new(0)).is_err());
    assert!(
        RandomTester::new(
            TesterConfig::default(),
            &[CpuId(999)],
            &m,
            &RngStreams::new(0)
        )
        .is_err()
    );
}
