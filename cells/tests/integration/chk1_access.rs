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
