//! The coherence protocol's transitions, data flow and latencies.

use cells::cache::LineState;
use cells::config::Protocol;
use cells::{Outcome, Served};
use sim_core::{CellId, CpuId};

use crate::common::*;

fn state_of(m: &cells::Machine, cpu: u32, addr: sim_core::PhysAddr) -> LineState {
    let line = addr.raw() >> m.geometry().line_shift;
    m.cache(CpuId(cpu))
        .unwrap()
        .probe(line)
        .map_or(LineState::Invalid, |(s, _)| s)
}

#[test]
fn first_reader_gets_exclusive_then_readers_share() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 1, 0x100);
    let r = m.load(t(0), CpuId(0), a, &mut p).unwrap();
    assert_eq!(
        (r.value, r.served, r.outcome),
        (0, Served::Memory, Outcome::Performed)
    );
    assert_eq!(state_of(&m, 0, a), LineState::Exclusive);
    let r = m.load(t(1000), CpuId(4), a, &mut p).unwrap();
    assert_eq!(r.served, Served::Memory, "clean owner: memory answers");
    assert_eq!(state_of(&m, 0, a), LineState::Shared);
    assert_eq!(state_of(&m, 4, a), LineState::Shared);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn moesi_reader_of_modified_line_leaves_an_owner() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 2, 0x40);
    m.store(t(0), CpuId(0), a, 0xabc, &mut p).unwrap();
    assert_eq!(state_of(&m, 0, a), LineState::Modified);
    let r = m.load(t(1000), CpuId(6), a, &mut p).unwrap();
    assert_eq!(r.value, 0xabc);
    assert_eq!(r.served, Served::Cache(CpuId(0)));
    assert_eq!(state_of(&m, 0, a), LineState::Owned);
    assert_eq!(state_of(&m, 6, a), LineState::Shared);
    assert_eq!(
        m.memory().store().read(a.raw()),
        0,
        "MOESI does not write back on share"
    );
    assert_eq!(m.coherent_peek(a).unwrap(), 0xabc);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn mesi_reader_of_modified_line_forces_a_writeback() {
    let (mut m, mut p) = booted(&small_config(Protocol::Mesi));
    let a = addr_on(&m, 2, 0x40);
    m.store(t(0), CpuId(0), a, 0xabc, &mut p).unwrap();
    let r = m.load(t(1000), CpuId(6), a, &mut p).unwrap();
    assert_eq!(r.value, 0xabc);
    assert_eq!(state_of(&m, 0, a), LineState::Shared);
    assert_eq!(state_of(&m, 6, a), LineState::Shared);
    assert_eq!(m.memory().store().read(a.raw()), 0xabc);
    assert_eq!(m.stats().writebacks, 1);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn a_store_invalidates_every_other_copy() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 0, 0x80);
    for c in [0, 2, 4, 6] {
        m.load(t(0), CpuId(c), a, &mut p).unwrap();
    }
    let before = m.stats().invalidations;
    let w = m.store(t(100), CpuId(2), a, 7, &mut p).unwrap();
    assert_eq!(w.served, Served::Upgrade);
    assert_eq!(m.stats().invalidations - before, 3);
    for c in [0, 4, 6] {
        assert_eq!(state_of(&m, c, a), LineState::Invalid);
    }
    assert_eq!(state_of(&m, 2, a), LineState::Modified);
    for c in [0, 4, 6] {
        assert_eq!(m.load(t(200), CpuId(c), a, &mut p).unwrap().value, 7);
    }
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn evicted_dirty_lines_reach_memory() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let g = m.geometry().clone();
    let set_stride = (g.sets as u64) << g.line_shift;
    // three lines in the same set of a 2-way cache: the first is evicted
    let addrs: Vec<_> = (0..3).map(|i| addr_on(&m, 0, i * set_stride)).collect();
    for (i, &a) in addrs.iter().enumerate() {
        m.store(t(i as u64), CpuId(0), a, 100 + i as u64, &mut p)
            .unwrap();
    }
    assert_eq!(state_of(&m, 0, addrs[0]), LineState::Invalid);
    assert_eq!(m.memory().store().read(addrs[0].raw()), 100);
    assert_eq!(
        m.load(t(10), CpuId(1), addrs[0], &mut p).unwrap().value,
        100
    );
    p.audit(t(20), &m);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn remote_misses_cost_more_than_local_ones() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let local = m.load(t(0), CpuId(0), addr_on(&m, 0, 0), &mut p).unwrap();
    let remote = m.load(t(0), CpuId(0), addr_on(&m, 3, 0), &mut p).unwrap();
    let hit = m.load(t(0), CpuId(0), addr_on(&m, 3, 8), &mut p).unwrap();
    assert!(hit.latency < local.latency && local.latency < remote.latency);
    assert_eq!(m.stats().served_local_memory, 1);
    assert_eq!(m.stats().served_remote_memory, 1);
    assert!(m.stats().remote_messages > 0);
    assert_eq!(m.latency_model().distance(CellId(0), CellId(3)), 17);
}

#[test]
fn flush_writes_back_and_empties_the_cache() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    for i in 0..8 {
        m.store(t(i), CpuId(3), addr_on(&m, 2, i * 64), i + 1, &mut p)
            .unwrap();
    }
    let f = m.flush_cache(t(100), CpuId(3), &mut p).unwrap();
    assert_eq!((f.lines, f.dirty), (8, 8));
    assert_eq!(m.cache(CpuId(3)).unwrap().valid_lines(), 0);
    assert_eq!(m.directory_entries(), 0);
    for i in 0..8 {
        assert_eq!(m.memory().store().read(addr_on(&m, 2, i * 64).raw()), i + 1);
    }
    p.audit(t(200), &m);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let end = 4 << 20;
    assert!(matches!(
        m.load(t(0), CpuId(99), addr_on(&m, 0, 0), &mut p),
        Err(cells::AccessError::NoSuchCpu { .. })
    ));
    assert!(matches!(
        m.load(t(0), CpuId(0), sim_core::PhysAddr::new(3), &mut p),
        Err(cells::AccessError::Misaligned { .. })
    ));
    let e = m
        .store(t(0), CpuId(0), sim_core::PhysAddr::new(end), 1, &mut p)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "address 0x400000 is beyond physical memory (which ends at 0x400000)"
    );
    assert!(
        m.cpu_event(t(0), CpuId(77), cells::cpu::CpuEvent::Halt, &mut p)
            .is_err()
    );
    assert!(
        m.cell_event(t(0), CellId(9), cells::cell::CellEvent::PowerOff, &mut p)
            .is_err()
    );
}

#[test]
fn the_directory_stays_bounded_by_cache_capacity() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    for i in 0..20_000u64 {
        let cpu = CpuId((i % 8) as u32);
        let a = sim_core::PhysAddr::new(((i * 4160) % (4 << 20)) & !7);
        m.store(t(i), cpu, a, i, &mut p).unwrap();
    }
    assert!(m.directory_entries() <= m.cache_capacity_lines());
    let peak: usize = m
        .cells()
        .iter()
        .map(|c| m.directory(c.id).unwrap().peak())
        .sum();
    assert!(peak <= m.cache_capacity_lines() * m.geometry().cells);
    p.audit(t(1 << 30), &m);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}
