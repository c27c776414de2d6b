//! IO SAPIC semantics and the two injected defects CHK-6 must catch.

use io_subsystem::device::regs;
use io_subsystem::sapic;
use io_subsystem::{DeviceId, IoDefect};
use sim_core::{IoSubsystemId, LsapicId, PhysAddr};

use crate::common::*;

const DEST: LsapicId = LsapicId { id: 1, eid: 0 };

fn sapic_reg(io: &io_subsystem::IoFabric, off: u64) -> PhysAddr {
    PhysAddr::new(io.subsystem(IoSubsystemId(0)).unwrap().sapic.base + off)
}

fn mask(io: &mut io_subsystem::IoFabric, env: &mut Env, entry: u64, vector: u8, masked: bool) {
    let v = u64::from(vector)
        | u64::from(sapic::rte::LEVEL)
        | if masked {
            u64::from(sapic::rte::MASK)
        } else {
            0
        };
    io.mmio_write(
        t(0),
        CPU,
        sapic_reg(io, sapic::IOREGSEL),
        0x10 + 2 * entry,
        env,
    );
    io.mmio_write(t(0), CPU, sapic_reg(io, sapic::IOWIN), v, env);
}

#[test]
fn entries_reset_masked_and_report_their_geometry() {
    let mut io = fabric();
    let mut env = Env::new();
    io.mmio_write(t(0), CPU, sapic_reg(&io, sapic::IOREGSEL), 1, &mut env);
    let version = io.mmio_read(t(0), CPU, sapic_reg(&io, sapic::IOWIN), &mut env);
    assert_eq!(version >> 16 & 0xFF, 23, "24 entries");
    io.mmio_write(t(0), CPU, sapic_reg(&io, sapic::IOREGSEL), 0x12, &mut env);
    let low = io.mmio_read(t(0), CPU, sapic_reg(&io, sapic::IOWIN), &mut env);
    assert_ne!(low & u64::from(sapic::rte::MASK), 0);
}

#[test]
fn an_interrupt_asserted_while_masked_is_held_and_delivered_on_unmask() {
    let mut io = fabric();
    let mut env = Env::new();
    let d = DeviceId(0);
    route(&mut io, &mut env, d, 0x61, DEST);
    mask(&mut io, &mut env, 1, 0x61, true);
    start(&mut io, &mut env, d, 0x10_0000, 512);
    io.device_tick(t(1000), d, &mut env);
    assert!(env.delivered.is_empty());
    assert_eq!(io.stats().interrupts_held, 1);
    mask(&mut io, &mut env, 1, 0x61, false);
    assert_eq!(env.delivered, vec![(DEST, 0x61)]);
    env.audit(&io);
    assert!(env.violations.is_empty(), "{:?}", env.violations.kept());
}

#[test]
fn a_masked_line_left_asserted_is_not_a_loss_but_an_unmasked_undelivered_one_is() {
    let mut io = fabric();
    let mut env = Env::new();
    io.inject_defect(IoDefect::SapicIgnoresEoi);
    let d = DeviceId(0);
    route(&mut io, &mut env, d, 0x62, DEST);
    start(&mut io, &mut env, d, 0x10_0000, 512);
    io.device_tick(t(1000), d, &mut env);
    io.mmio_write(t(1100), CPU, sapic_reg(&io, sapic::EOI), 0x62, &mut env);
    let v = &env.violations.kept()[0];
    assert_eq!(v.checker.code, "CHK-6");
    assert!(
        v.message.contains("left remote IRR set on gsi1"),
        "{}",
        v.message
    );
}

#[test]
fn a_sapic_that_ignores_its_mask_is_caught() {
    let mut io = fabric();
    let mut env = Env::new();
    io.inject_defect(IoDefect::SapicIgnoresMask);
    let d = DeviceId(0);
    route(&mut io, &mut env, d, 0x63, DEST);
    mask(&mut io, &mut env, 1, 0x63, true);
    start(&mut io, &mut env, d, 0x10_0000, 512);
    io.device_tick(t(1000), d, &mut env);
    assert_eq!(env.delivered.len(), 1);
    assert!(
        env.violations.kept()[0]
            .message
            .contains("while its entry is masked")
    );
}

#[test]
fn the_audit_finds_a_held_interrupt_lost_on_unmask() {
    let mut io = fabric();
    let mut env = Env::new();
    io.inject_defect(IoDefect::SapicLosesHeld);
    let d = DeviceId(0);
    route(&mut io, &mut env, d, 0x64, DEST);
    mask(&mut io, &mut env, 1, 0x64, true);
    start(&mut io, &mut env, d, 0x10_0000, 512);
    io.device_tick(t(1000), d, &mut env);
    mask(&mut io, &mut env, 1, 0x64, false);
    assert!(env.delivered.is_empty(), "the defect lost it");
    assert!(env.violations.is_empty(), "nothing visible yet");
    env.audit(&io);
    let v = &env.violations.kept()[0];
    assert_eq!(v.checker.code, "CHK-6");
    assert!(
        v.message
            .contains("gsi1 is asserted and unmasked but was never delivered"),
        "{}",
        v.message
    );
    let b = bar0(&io, d);
    assert_ne!(
        io.mmio_read(t(1001), CPU, b.checked_add(regs::STATUS).unwrap(), &mut env),
        0
    );
}

#[test]
fn delivery_to_a_halted_cpu_is_reported_by_the_platform_not_the_sapic() {
    // The IO SAPIC cannot know a CPU's state; the cells-side CHK-6 checker reports it. Here
    // the mock says NotRunning and the SAPIC just records what happened.
    let mut io = fabric();
    let mut env = Env::new();
    env.halted.push(DEST);
    let d = DeviceId(0);
    route(&mut io, &mut env, d, 0x65, DEST);
    start(&mut io, &mut env, d, 0x10_0000, 512);
    io.device_tick(t(1000), d, &mut env);
    assert!(env.events.iter().any(|e| matches!(
        e,
        io_subsystem::IoEvent::SapicDeliver {
            delivery: sim_core::Delivery::NotRunning(_),
            ..
        }
    )));
}

#[test]
fn a_level_line_left_in_service_past_its_bound_is_reported_once() {
    // Before: nothing audited remote IRR, so a lost EOI left a level line silent for ever.
    let mut io = fabric();
    let mut env = Env::new();
    let d = DeviceId(0);
    route(&mut io, &mut env, d, 0x61, DEST);
    start(&mut io, &mut env, d, 0x10_0000, 512);
    io.device_tick(t(1000), d, &mut env);
    assert_eq!(env.delivered, vec![(DEST, 0x61)]);
    // Within the bound: a handler may still be running.
    env.audit(&io);
    assert!(env.violations.is_empty(), "{:?}", env.violations.kept());
    // Past it, with no EOI: stuck.
    let late = 1000 + io_subsystem::check::REMOTE_IRR_BOUND.as_nanos() + 10;
    io.mmio_read(t(late), CPU, sapic_reg(&io, sapic::IOWIN), &mut env);
    env.audit(&io);
    env.audit(&io);
    assert_eq!(
        env.violations.count("CHK-6"),
        1,
        "{:?}",
        env.violations.kept()
    );
    assert!(env.violations.kept()[0].message.contains("no EOI"));
    // The EOI frees it; a new delivery starts a new episode, judged afresh.
    io.mmio_write(t(late + 1), CPU, sapic_reg(&io, sapic::EOI), 0x61, &mut env);
    env.audit(&io);
    assert_eq!(env.violations.count("CHK-6"), 1);
}

#[test]
fn a_redelivery_before_the_eoi_is_reported() {
    // Before: the IO SAPIC returned before the check could see it, so it could never fire.
    let mut io = fabric();
    let mut env = Env::new();
    io.inject_defect(IoDefect::SapicRedeliversInService);
    let d = DeviceId(0);
    route(&mut io, &mut env, d, 0x61, DEST);
    start(&mut io, &mut env, d, 0x10_0000, 512);
    io.device_tick(t(1000), d, &mut env);
    // Re-evaluated (an unmask) while still in service and still asserted.
    mask(&mut io, &mut env, 1, 0x61, true);
    mask(&mut io, &mut env, 1, 0x61, false);
    assert_eq!(env.delivered.len(), 2, "{:?}", env.delivered);
    assert!(
        env.violations
            .kept()
            .iter()
            .any(|v| v.message.contains("again before its EOI")),
        "{:?}",
        env.violations.kept()
    );
}
