//! Property: for random cache geometries, protocols and access streams (loads, stores,
//! flushes), every load returns what a flat reference memory holds, the checkers stay silent,
//! and the directory never tracks more lines than the caches can hold.

use std::collections::BTreeMap;

use cells::config::{CacheConfig, MachineConfig, Protocol};
use cells::{Machine, Probe};
use proptest::prelude::*;
use sim_core::{ByteSize, CpuId, PhysAddr, SimTime, Trace, TraceLevel};

#[derive(Clone, Debug)]
enum Op {
    Load(u32, u64),
    Store(u32, u64, u64),
    Flush(u32),
}

fn geometry() -> impl Strategy<Value = MachineConfig> {
    (
        1u16..5,
        1u16..4,
        0u32..3,
        1u32..5,
        0u32..3,
        prop_oneof![Just(Protocol::Mesi), Just(Protocol::Moesi)],
    )
        .prop_map(|(cells, per, sets_log, ways, line_log, protocol)| {
            let line = 8u64 << (line_log + 2);
            MachineConfig {
                cells,
                cpus_per_cell: per,
                memory_per_cell: ByteSize(64 << 10),
                page_size: ByteSize(4 << 10),
                protocol,
                cache: CacheConfig {
                    size: ByteSize((line * u64::from(ways)) << sets_log),
                    ways,
                    line: ByteSize(line),
                },
                ..MachineConfig::default()
            }
        })
}

fn ops(cpus: u32, words: u64) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        8 => (0..cpus, 0..words).prop_map(|(c, w)| Op::Load(c, w)),
        8 => (0..cpus, 0..words, any::<u64>()).prop_map(|(c, w, v)| Op::Store(c, w, v)),
        1 => (0..cpus).prop_map(Op::Flush),
    ];
    proptest::collection::vec(op, 1..400)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn loads_return_the_last_store(
        (cfg, ops, spread) in geometry().prop_flat_map(|cfg| {
            let cpus = u32::from(cfg.cells) * u32::from(cfg.cpus_per_cell);
            (Just(cfg), ops(cpus, 96), 1u64..64)
        })
    ) {
        let mut m = Machine::new(&cfg).unwrap();
        let mut p = Probe::with_hw_checkers(Trace::new(TraceLevel::Off, 0), &m, true);
        for c in 0..m.cpus().len() as u32 {
            m.cpu_event(SimTime::ZERO, CpuId(c), cells::cpu::CpuEvent::Start, &mut p).unwrap();
        }
        let total = m.address_map().total_bytes();
        // Word w lives at w * 8 * spread: small spreads share lines, large ones conflict.
        let addr = |w: u64| PhysAddr::new(((w * 8 * spread) % total) & !7);
        let mut reference: BTreeMap<u64, u64> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            let now = SimTime::from_nanos(i as u64);
            match *op {
                Op::Load(c, w) => {
                    let a = addr(w);
                    let r = m.load(now, CpuId(c), a, &mut p).unwrap();
                    prop_assert_eq!(r.value, reference.get(&a.raw()).copied().unwrap_or(0));
                }
                Op::Store(c, w, v) => {
                    let a = addr(w);
                    m.store(now, CpuId(c), a, v, &mut p).unwrap();
                    reference.insert(a.raw(), v);
                }
                Op::Flush(c) => {
                    m.flush_cache(now, CpuId(c), &mut p).unwrap();
                }
            }
            prop_assert!(m.directory_entries() <= m.cache_capacity_lines());
        }
        p.audit(SimTime::from_nanos(1 << 40), &m);
        prop_assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
        for (&a, &v) in &reference {
            prop_assert_eq!(m.coherent_peek(PhysAddr::new(a)).unwrap(), v);
        }
    }
}
