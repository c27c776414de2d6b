//! CHK-1, hardware side: accesses by or to hardware that is not there are reported, naming
//! both ends.

use cells::config::Protocol;
use cells::{Outcome, machine::ALL_ONES};
use sim_core::{CellId, CpuId, Entity};

use crate::common::*;

#[test]
fn an_access_to_a_removed_cells_memory_is_reported() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 3, 0x200);
    m.store(t(0), CpuId(0), a, 5, &mut p).unwrap();
    m.flush_cache(t(10), CpuId(0), &mut p).unwrap();
    for c in [6, 7] {
        m.cpu_event(t(20), CpuId(c), cells::cpu::CpuEvent::Halt, &mut p)
            .unwrap();
    }
    m.cell_event(t(30), CellId(3), cells::cell::CellEvent::PowerOff, &mut p)
        .unwrap();
    m.cell_event(t(40), CellId(3), cells::cell::CellEvent::Remove, &mut p)
        .unwrap();
    assert!(
        p.violations.is_empty(),
        "orderly removal: {:?}",
        p.violations.kept()
    );

    let r = m.load(t(50), CpuId(0), a, &mut p).unwrap();
    assert_eq!(r.value, ALL_ONES);
    assert_eq!(r.outcome, Outcome::HomeNotPowered);
    let v = &p.violations.kept()[0];
    assert_eq!(v.checker.code, "CHK-1");
    assert_eq!(v.agent, Entity::Cpu(CpuId(0)));
    assert_eq!(v.target, Entity::Memory(a));
    assert!(v.message.contains("cell3 is absent"), "{}", v.message);
    assert_eq!(p.violations.count("CHK-1"), 1);
}

#[test]
fn a_stale_cached_line_of_a_removed_cell_still_counts() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 3, 0x200);
    m.load(t(0), CpuId(0), a, &mut p).unwrap();
    m.cell_event(t(30), CellId(3), cells::cell::CellEvent::PowerOff, &mut p)
        .unwrap();
    let r = m.load(t(50), CpuId(0), a, &mut p).unwrap();
    assert!(r.is_hit(), "the CPU still has the line and does not know");
    assert_eq!(r.outcome, Outcome::HomeNotPowered);
    assert_eq!(p.violations.count("CHK-1"), 1);
    p.audit(t(60), &m);
    assert!(
        p.violations
            .kept()
            .iter()
            .any(|v| v.checker.code == "CHK-2"
                && v.message.contains("its home cell3 is powered off")),
        "{:?}",
        p.violations.kept()
    );
}

#[test]
fn an_access_issued_by_a_halted_cpu_is_reported() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    m.flush_cache(t(0), CpuId(5), &mut p).unwrap();
    m.cpu_event(t(10), CpuId(5), cells::cpu::CpuEvent::Halt, &mut p)
        .unwrap();
    let a = addr_on(&m, 1, 0x300);
    let w = m.store(t(20), CpuId(5), a, 9, &mut p).unwrap();
    assert_eq!(w.outcome, Outcome::IssuerNotRunning);
    assert_eq!(
        m.coherent_peek(a).unwrap(),
        0,
        "a halted CPU's store does nothing"
    );
    let v = &p.violations.kept()[0];
    assert_eq!(v.checker.code, "CHK-1");
    assert_eq!(v.agent, Entity::Cpu(CpuId(5)));
    assert_eq!(v.target, Entity::Memory(a));
    assert!(v.message.contains("cpu5, which is halted"), "{}", v.message);
}

#[test]
fn an_access_by_an_absent_cpu_is_reported() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    m.cpu_event(t(0), CpuId(2), cells::cpu::CpuEvent::PowerOff, &mut p)
        .unwrap();
    m.load(t(10), CpuId(2), addr_on(&m, 0, 0), &mut p).unwrap();
    assert!(
        p.violations.kept()[0]
            .message
            .contains("cpu2, which is absent")
    );
}

#[test]
fn halting_without_a_flush_leaves_lines_that_draw_snoops() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 0, 0x40);
    m.load(t(0), CpuId(3), a, &mut p).unwrap();
    m.cpu_event(t(10), CpuId(3), cells::cpu::CpuEvent::Halt, &mut p)
        .unwrap();
    assert!(
        p.violations.is_empty(),
        "a clean line is not lost by halting"
    );
    m.store(t(20), CpuId(0), a, 1, &mut p).unwrap();
    let v = &p.violations.kept()[0];
    assert_eq!(v.checker.code, "CHK-1");
    assert_eq!(v.agent, Entity::Cpu(CpuId(0)));
    assert_eq!(v.target, Entity::Cpu(CpuId(3)));
    assert!(
        v.message.contains("sent to cpu3, which is halted"),
        "{}",
        v.message
    );
    assert_eq!(m.stats().unanswered_snoops, 1);
}

#[test]
fn halting_with_dirty_lines_loses_data_and_is_reported() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 2, 0x40);
    m.store(t(0), CpuId(1), a, 0x55, &mut p).unwrap();
    m.cpu_event(t(10), CpuId(1), cells::cpu::CpuEvent::Halt, &mut p)
        .unwrap();
    let v = &p.violations.kept()[0];
    assert_eq!(v.checker.code, "CHK-2");
    assert!(v.message.contains("1 dirty lines"), "{}", v.message);
    // Another CPU reads: the directory asks the halted owner, which cannot answer (CHK-1), and
    // memory's stale zero comes back (CHK-2 golden shadow).
    let r = m.load(t(20), CpuId(4), a, &mut p).unwrap();
    assert_eq!(r.value, 0);
    assert_eq!(p.violations.count("CHK-1"), 1);
    assert_eq!(p.violations.count("CHK-2"), 2);
}

#[test]
fn flush_then_halt_then_power_off_is_clean() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    for i in 0..64 {
        let a = addr_on(&m, (i % 4) as u16, i * 64);
        m.store(t(i), CpuId(7), a, i, &mut p).unwrap();
        m.load(t(i), CpuId(1), a, &mut p).unwrap();
    }
    m.flush_cache(t(100), CpuId(7), &mut p).unwrap();
    m.cpu_event(t(110), CpuId(7), cells::cpu::CpuEvent::Halt, &mut p)
        .unwrap();
    m.cpu_event(t(120), CpuId(7), cells::cpu::CpuEvent::PowerOff, &mut p)
        .unwrap();
    for i in 0..64 {
        let a = addr_on(&m, (i % 4) as u16, i * 64);
        assert_eq!(m.load(t(200), CpuId(0), a, &mut p).unwrap().value, i);
    }
    p.audit(t(300), &m);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn an_access_that_decodes_to_no_memory_is_reported() {
    // Before: `load` / `store` returned the decode error and sent no event, so a wild access
    // (an all-ones PTE followed into nowhere) left no trace for any checker.
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let end = m.address_map().total_bytes();
    let wild = sim_core::PhysAddr::new(0x3fff_ffff_f450);
    assert!(wild.raw() >= end);
    assert!(m.load(t(0), CpuId(1), wild, &mut p).is_err());
    assert!(m.store(t(1), CpuId(2), wild, 7, &mut p).is_err());
    assert!(
        m.read_uncached(t(2), Entity::Firmware, wild, &mut p)
            .is_err()
    );
    assert_eq!(p.violations.count("CHK-1"), 3);
    let v = &p.violations.kept()[0];
    assert_eq!(v.agent, Entity::Cpu(CpuId(1)));
    assert_eq!(v.target, Entity::Unclaimed(wild.raw()));
    assert!(
        v.message.contains("load of") && v.message.contains("decodes to no memory"),
        "{}",
        v.message
    );
    assert!(p.violations.kept()[2].message.starts_with("uncached read"));
    assert_eq!(m.stats().unmapped, 3);
}

#[test]
fn a_dirty_line_written_back_to_a_removed_home_is_reported_and_its_loss_too() {
    // Before: the eviction counted a write-back, dropped the data and told nobody, so a flush
    // after the eject erased exactly the evidence an audit would have found.
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 3, 0x200);
    m.store(t(0), CpuId(0), a, 5, &mut p).unwrap();
    m.cell_event(t(30), CellId(3), cells::cell::CellEvent::PowerOff, &mut p)
        .unwrap();
    p.violations = Default::default();
    m.flush_cache(t(40), CpuId(0), &mut p).unwrap();
    assert_eq!(m.stats().writebacks_lost, 1);
    let chk1: Vec<_> = p
        .violations
        .kept()
        .iter()
        .filter(|v| v.checker.code == "CHK-1")
        .collect();
    assert_eq!(chk1.len(), 1, "{:?}", p.violations.kept());
    assert_eq!(chk1[0].agent, Entity::Cpu(CpuId(0)));
    assert!(
        chk1[0].message.starts_with("write-back (flush) of 0x")
            && chk1[0].message.contains("cell3"),
        "{}",
        chk1[0].message
    );
    let chk2: Vec<_> = p
        .violations
        .kept()
        .iter()
        .filter(|v| v.checker.code == "CHK-2")
        .collect();
    assert_eq!(chk2.len(), 1, "{:?}", p.violations.kept());
    assert!(
        chk2[0].message.contains("never reached memory") && chk2[0].message.contains("offline"),
        "{}",
        chk2[0].message
    );
}

#[test]
fn a_clean_eviction_and_a_good_write_back_are_silent_events() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 1, 0x100);
    let b = addr_on(&m, 1, 0x180);
    m.store(t(0), CpuId(0), a, 1, &mut p).unwrap();
    m.load(t(1), CpuId(0), b, &mut p).unwrap();
    m.flush_cache(t(2), CpuId(0), &mut p).unwrap();
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
    assert_eq!(m.coherent_peek(a).unwrap(), 1);
    assert_eq!(m.stats().writebacks_lost, 0);
}
