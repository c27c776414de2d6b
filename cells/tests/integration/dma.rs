//! Coherent DMA: a device reads the newest data even when a CPU holds it dirty, its writes
//! invalidate every cached copy, and DMA to memory that is gone is reported.

use cells::cache::LineState;
use cells::cell::CellEvent;
use cells::config::Protocol;
use sim_core::{Bdf, CellId, CpuId, DmaPort, Entity};

use crate::common::*;

const DEV: Entity = Entity::Pci(Bdf {
    segment: 0,
    bus: 0x10,
    device: 2,
    function: 0,
});

#[test]
fn a_dma_read_sees_the_dirty_cached_copy() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 1, 0x100);
    m.store(t(0), CpuId(0), a, 0xbeef, &mut p).unwrap();
    let mut buf = [0u64; 4];
    m.dma_read(t(10), &DEV, a, &mut buf, &mut p).unwrap();
    assert_eq!(buf[0], 0xbeef);
    assert_eq!(m.stats().dma_fetches, 1);
    let line = a.raw() >> m.geometry().line_shift;
    assert_eq!(
        m.cache(CpuId(0)).unwrap().probe(line).unwrap().0,
        LineState::Modified,
        "a DMA read leaves the owner's line alone"
    );
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn a_dma_write_invalidates_every_copy_and_merges_partial_lines() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 2, 0x200);
    m.store(t(0), CpuId(0), a.checked_add(8).unwrap(), 7, &mut p)
        .unwrap();
    m.load(t(1), CpuId(3), a, &mut p).unwrap();
    // Write only the first word: the owner's newer second word must survive.
    m.dma_write(t(2), &DEV, a, &[0x11], &mut p).unwrap();
    let line = a.raw() >> m.geometry().line_shift;
    for c in [0, 3] {
        assert!(
            m.cache(CpuId(c)).unwrap().probe(line).is_none(),
            "cpu{c} still caches it"
        );
    }
    assert_eq!(m.load(t(3), CpuId(5), a, &mut p).unwrap().value, 0x11);
    assert_eq!(
        m.load(t(4), CpuId(5), a.checked_add(8).unwrap(), &mut p)
            .unwrap()
            .value,
        7
    );
    p.audit(t(5), &m);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn large_transfers_cross_lines_pages_and_cells_and_use_the_fast_path() {
    let (mut m, mut p) = booted(&small_config(Protocol::Mesi));
    let end_of_cell0 = addr_on(&m, 1, 0).checked_sub(4096).unwrap();
    let data: Vec<u64> = (0..1024u64).collect(); // 8 KiB: the last 4 KiB of cell 0, 4 KiB of cell 1
    m.store(t(0), CpuId(6), addr_on(&m, 1, 64), 99, &mut p)
        .unwrap();
    m.dma_write(t(1), &DEV, end_of_cell0, &data, &mut p)
        .unwrap();
    let mut back = vec![0u64; 1024];
    m.dma_read(t(2), &DEV, end_of_cell0, &mut back, &mut p)
        .unwrap();
    assert_eq!(back, data);
    assert_eq!(
        m.load(t(3), CpuId(6), addr_on(&m, 1, 64), &mut p)
            .unwrap()
            .value,
        520
    );
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn dma_into_a_removed_cells_memory_is_reported() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    for c in [6, 7] {
        m.flush_cache(t(0), CpuId(c), &mut p).unwrap();
        m.cpu_event(t(0), CpuId(c), cells::cpu::CpuEvent::Halt, &mut p)
            .unwrap();
    }
    m.cell_event(t(1), CellId(3), CellEvent::PowerOff, &mut p)
        .unwrap();
    m.cell_event(t(2), CellId(3), CellEvent::Remove, &mut p)
        .unwrap();
    assert!(p.violations.is_empty());
    let a = addr_on(&m, 3, 0x400);
    m.dma_write(t(3), &DEV, a, &[1, 2, 3], &mut p).unwrap();
    let v = &p.violations.kept()[0];
    assert_eq!(v.checker.code, "CHK-1");
    assert_eq!(v.agent, DEV);
    assert_eq!(v.target, Entity::Memory(a));
    assert!(v.message.contains("DMA write"), "{}", v.message);
    let mut buf = [0u64; 2];
    m.dma_read(t(4), &DEV, a, &mut buf, &mut p).unwrap();
    assert_eq!(buf, [u64::MAX; 2]);
    assert_eq!(p.violations.count("CHK-1"), 2);
}

#[test]
fn disabled_memory_behaves_like_missing_memory() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 2, 0x80);
    m.set_memory_enabled(t(0), CellId(2), false, &mut p)
        .unwrap();
    assert_eq!(m.load(t(1), CpuId(0), a, &mut p).unwrap().value, u64::MAX);
    assert!(
        p.violations.kept()[0]
            .message
            .contains("has its memory disabled")
    );
    m.set_memory_enabled(t(2), CellId(2), true, &mut p).unwrap();
    assert_eq!(m.load(t(3), CpuId(0), a, &mut p).unwrap().value, 0);
    m.cell_event(t(4), CellId(2), CellEvent::PowerOff, &mut p)
        .unwrap();
    assert!(m.set_memory_enabled(t(5), CellId(2), true, &mut p).is_err());
}

#[test]
fn the_port_adapter_reports_range_errors() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let mut port = cells::machine::Port {
        machine: &mut m,
        obs: &mut p,
    };
    let mut buf = [0u64; 2];
    let end = sim_core::PhysAddr::new(4 << 20);
    assert!(matches!(
        port.dma_read(t(0), &DEV, end.checked_sub(8).unwrap(), &mut buf),
        Err(sim_core::DmaError::OutOfRange { .. })
    ));
    assert!(matches!(
        port.dma_write(t(0), &DEV, sim_core::PhysAddr::new(4), &[1]),
        Err(sim_core::DmaError::Misaligned { .. })
    ));
}
