//! A minimal driver loop: the card fills its ring by DMA, raises its line once per batch, and
//! the IO SAPIC delivers exactly once until the EOI.

use io_subsystem::device::{RECORD_WORDS, record_word, regs};
use io_subsystem::sapic;
use io_subsystem::{DeviceId, IoEvent};
use sim_core::{LsapicId, PhysAddr};

use crate::common::*;

const DEST: LsapicId = LsapicId { id: 0, eid: 2 };

#[test]
fn records_arrive_by_dma_and_interrupt_once_per_eoi() {
    let mut io = fabric();
    let mut env = Env::new();
    let d = DeviceId(0);
    route(&mut io, &mut env, d, 0x51, DEST);
    start(&mut io, &mut env, d, 0x10_0000, 4 * 128);
    let wake = io.take_wakeups();
    assert_eq!(wake, vec![(d, t(1000))]);
    let next = io.device_tick(t(1000), d, &mut env).unwrap();
    assert_eq!(next, t(2000));
    let serial = io.device(d).unwrap().serial;
    for i in 0..RECORD_WORDS {
        assert_eq!(
            env.mem[&(0x10_0000 + 8 * i as u64)],
            record_word(serial, 0, i)
        );
    }
    assert_eq!(env.delivered, vec![(DEST, 0x51)]);
    // More records while in service: no new message.
    io.device_tick(t(2000), d, &mut env);
    assert_eq!(env.delivered.len(), 1);
    // The driver acknowledges the card, consumes, and EOIs: the line is low, no redelivery.
    let b = bar0(&io, d);
    let r = |o: u64| b.checked_add(o).unwrap();
    assert_eq!(io.mmio_read(t(2100), CPU, r(regs::HEAD), &mut env), 256);
    io.mmio_write(t(2100), CPU, r(regs::STATUS), regs::STATUS_RX, &mut env);
    io.mmio_write(t(2100), CPU, r(regs::TAIL), 256, &mut env);
    let sapic_base = PhysAddr::new(io.subsystem(sim_core::IoSubsystemId(0)).unwrap().sapic.base);
    io.mmio_write(
        t(2200),
        CPU,
        sapic_base.checked_add(sapic::EOI).unwrap(),
        0x51,
        &mut env,
    );
    assert_eq!(env.delivered.len(), 1);
    io.device_tick(t(3000), d, &mut env);
    assert_eq!(
        env.delivered.len(),
        2,
        "a new record after the EOI interrupts again"
    );
    env.audit(&io);
    assert!(env.violations.is_empty(), "{:?}", env.violations.kept());
}

#[test]
fn an_eoi_while_the_line_is_still_high_redelivers() {
    let mut io = fabric();
    let mut env = Env::new();
    let d = DeviceId(0);
    route(&mut io, &mut env, d, 0x52, DEST);
    start(&mut io, &mut env, d, 0x20_0000, 8 * 128);
    io.device_tick(t(1000), d, &mut env);
    let sapic_base = PhysAddr::new(io.subsystem(sim_core::IoSubsystemId(0)).unwrap().sapic.base);
    io.mmio_write(
        t(1100),
        CPU,
        sapic_base.checked_add(sapic::EOI).unwrap(),
        0x52,
        &mut env,
    );
    assert_eq!(
        env.delivered.len(),
        2,
        "level-triggered: still asserted, delivered again"
    );
    assert!(env.violations.is_empty(), "{:?}", env.violations.kept());
}

#[test]
fn a_full_ring_stalls_the_card_until_the_driver_consumes() {
    let mut io = fabric();
    let mut env = Env::new();
    let d = DeviceId(1);
    start(&mut io, &mut env, d, 0x30_0000, 2 * 128);
    for k in 1..=5 {
        io.device_tick(t(k * 1000), d, &mut env);
    }
    let dev = io.device(d).unwrap();
    assert_eq!(dev.records, 2);
    assert_eq!(dev.overruns, 3);
}

#[test]
fn transmit_reads_memory_by_dma() {
    let mut io = fabric();
    let mut env = Env::new();
    let d = DeviceId(0);
    start(&mut io, &mut env, d, 0x10_0000, 128);
    for i in 0..8u64 {
        env.mem.insert(0x40_0000 + 8 * i, i + 1);
    }
    let b = bar0(&io, d);
    let r = |o: u64| b.checked_add(o).unwrap();
    io.mmio_write(t(0), CPU, r(regs::TX_ADDR), 0x40_0000, &mut env);
    io.mmio_write(t(0), CPU, r(regs::TX_LEN), 64, &mut env);
    io.mmio_write(t(0), CPU, r(regs::TX_GO), 1, &mut env);
    assert_eq!(io.mmio_read(t(1), CPU, r(regs::TX_SUM), &mut env), 36);
    assert_eq!(
        io.mmio_read(t(1), CPU, r(regs::STATUS), &mut env) & regs::STATUS_TX_DONE,
        2
    );
}

#[test]
fn dma_to_an_address_that_is_not_memory_is_a_fault() {
    let mut io = fabric();
    let mut env = Env::new();
    let d = DeviceId(0);
    start(&mut io, &mut env, d, (1 << 30) - 64, 128);
    assert_eq!(
        io.device_tick(t(1000), d, &mut env),
        None,
        "the engine stops"
    );
    assert!(
        env.events
            .iter()
            .any(|e| matches!(e, IoEvent::DmaFault { .. }))
    );
    assert_eq!(env.violations.count("CHK-1"), 1);
    assert!(
        env.violations.kept()[0]
            .message
            .contains("runs past the end of memory")
    );
}
