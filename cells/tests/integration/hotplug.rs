//! Presence and power of CPUs and cells (HW-2, HW-7), and MCA counters (HW-3).

use cells::config::{MachineConfig, Protocol};
use cells::{CellState, CpuError, CpuState, Machine, McaTarget, Probe};
use sim_core::{CellId, CpuId, Trace, TraceLevel};

use crate::common::*;

#[test]
fn power_cycling_a_cell_loses_its_memory_and_restarts_its_cpus() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 2, 0x1000);
    m.store(t(0), CpuId(4), a, 77, &mut p).unwrap();
    m.flush_cache(t(1), CpuId(4), &mut p).unwrap();
    assert_eq!(m.memory().store().read(a.raw()), 77);
    for c in [4, 5] {
        m.cpu_event(t(2), CpuId(c), cells::cpu::CpuEvent::Halt, &mut p)
            .unwrap();
    }
    m.cell_event(t(3), CellId(2), cells::cell::CellEvent::PowerOff, &mut p)
        .unwrap();
    assert_eq!(m.cpu(CpuId(4)).unwrap().state, CpuState::Absent);
    m.cell_event(t(4), CellId(2), cells::cell::CellEvent::PowerOn, &mut p)
        .unwrap();
    assert_eq!(m.cpu(CpuId(5)).unwrap().state, CpuState::PresentHalted);
    assert_eq!(
        m.memory().store().read(a.raw()),
        0,
        "memory was lost with power"
    );
    m.cpu_event(t(5), CpuId(5), cells::cpu::CpuEvent::Start, &mut p)
        .unwrap();
    assert_eq!(m.load(t(6), CpuId(5), a, &mut p).unwrap().value, 0);
    p.audit(t(7), &m);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn an_empty_slot_takes_a_new_board() {
    let cfg = MachineConfig {
        present_cells: Some(vec![0, 1, 2]),
        ..small_config(Protocol::Moesi)
    };
    let (mut m, mut p) = booted(&cfg);
    assert_eq!(m.cell(CellId(3)).unwrap().state, CellState::Absent);
    assert_eq!(m.cpu(CpuId(7)).unwrap().state, CpuState::Absent);
    assert!(
        m.cell_event(t(0), CellId(3), cells::cell::CellEvent::PowerOn, &mut p)
            .is_err()
    );
    m.cell_event(t(1), CellId(3), cells::cell::CellEvent::Insert, &mut p)
        .unwrap();
    assert!(
        m.cell_event(t(1), CellId(3), cells::cell::CellEvent::Insert, &mut p)
            .is_err(),
        "no second board"
    );
    m.cell_event(t(2), CellId(3), cells::cell::CellEvent::PowerOn, &mut p)
        .unwrap();
    m.cpu_event(t(3), CpuId(7), cells::cpu::CpuEvent::Start, &mut p)
        .unwrap();
    let a = addr_on(&m, 3, 0);
    m.store(t(4), CpuId(7), a, 1, &mut p).unwrap();
    assert_eq!(m.load(t(5), CpuId(0), a, &mut p).unwrap().value, 1);
    assert_eq!(m.cell(CellId(3)).unwrap().generation, 1);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn refused_cpu_transitions_name_the_cpu_and_state() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let e = m
        .cpu_event(t(0), CpuId(1), cells::cpu::CpuEvent::Start, &mut p)
        .unwrap_err();
    assert_eq!(e.to_string(), "cannot start cpu1: it is running");
    m.cpu_event(t(0), CpuId(1), cells::cpu::CpuEvent::Halt, &mut p)
        .unwrap();
    assert!(matches!(
        m.flush_cache(t(0), CpuId(1), &mut p),
        Err(CpuError::NotRunning { .. })
    ));
    m.cpu_event(t(0), CpuId(1), cells::cpu::CpuEvent::PowerOff, &mut p)
        .unwrap();
    assert!(matches!(
        m.cpu_event(t(0), CpuId(1), cells::cpu::CpuEvent::Halt, &mut p),
        Err(CpuError::Transition {
            state: CpuState::Absent,
            ..
        })
    ));
    m.cell_event(t(0), CellId(0), cells::cell::CellEvent::PowerOff, &mut p)
        .unwrap();
    assert!(matches!(
        m.cpu_event(t(0), CpuId(1), cells::cpu::CpuEvent::PowerOn, &mut p),
        Err(CpuError::CellNotPowered { .. })
    ));
}

#[test]
fn restarting_a_halted_cpu_reinitialises_its_cache() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 0, 0);
    m.load(t(0), CpuId(1), a, &mut p).unwrap();
    m.cpu_event(t(1), CpuId(1), cells::cpu::CpuEvent::Halt, &mut p)
        .unwrap();
    m.cpu_event(t(2), CpuId(1), cells::cpu::CpuEvent::Start, &mut p)
        .unwrap();
    assert_eq!(m.cache(CpuId(1)).unwrap().valid_lines(), 0);
    // The directory still names cpu1 (nobody told it); the next transaction cleans it up.
    m.store(t(3), CpuId(0), a, 3, &mut p).unwrap();
    assert_eq!(m.load(t(4), CpuId(1), a, &mut p).unwrap().value, 3);
    p.audit(t(5), &m);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn corrected_errors_are_counted_per_cpu_and_per_memory_range() {
    let mut m = Machine::new(&small_config(Protocol::Moesi)).unwrap();
    let mut p = Probe::new(Trace::new(TraceLevel::Info, 100));
    assert_eq!(
        m.inject_corrected_error(t(0), McaTarget::Cpu(CpuId(3)), 2, &mut p),
        Ok(2)
    );
    assert_eq!(
        m.inject_corrected_error(t(1), McaTarget::Cpu(CpuId(3)), 1, &mut p),
        Ok(3)
    );
    let a = addr_on(&m, 1, 0x2000);
    assert_eq!(
        m.inject_corrected_error(t(2), McaTarget::Memory(a), 4, &mut p),
        Ok(4)
    );
    assert_eq!(m.cpu(CpuId(3)).unwrap().corrected_errors, 3);
    let (base, len) = m.address_map().cell_range(CellId(1)).unwrap();
    assert_eq!(m.corrected_errors_in(base, len), 4);
    let (base0, len0) = m.address_map().cell_range(CellId(0)).unwrap();
    assert_eq!(m.corrected_errors_in(base0, len0), 0);
    assert!(
        m.inject_corrected_error(t(3), McaTarget::Cpu(CpuId(99)), 1, &mut p)
            .is_err()
    );
    assert_eq!(p.trace.records().len(), 3, "each report is a trace record");
}

#[test]
fn consuming_poison_raises_a_machine_check() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 1, 0x40);
    m.inject_uncorrected_error(t(0), a, &mut p).unwrap();
    m.load(t(1), CpuId(0), a, &mut p).unwrap();
    assert_eq!(m.stats().machine_checks, 1);
    assert_eq!(m.cell(CellId(1)).unwrap().uncorrected_errors, 1);
}
