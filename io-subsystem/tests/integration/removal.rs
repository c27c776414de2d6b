//! Slot power and surprise removal: what software still touches is reported (CHK-1).

use io_subsystem::device::regs;
use io_subsystem::pci::reg;
use io_subsystem::{DeviceId, DeviceKind, IoOutcome, SubsystemEvent};
use sim_core::{Entity, IoSubsystemId, SlotId};

use crate::common::*;

#[test]
fn mmio_to_a_powered_off_slot_is_reported() {
    let mut io = fabric();
    let mut env = Env::new();
    let d = DeviceId(0);
    let b = bar0(&io, d);
    let bdf = io.device(d).unwrap().bdf;
    io.set_slot_power(t(0), SlotId(2), false, &mut env).unwrap();
    assert!(env.violations.is_empty());
    let v = io.mmio_read(t(1), CPU, b.checked_add(regs::HEAD).unwrap(), &mut env);
    assert_eq!(v, u64::MAX);
    let x = &env.violations.kept()[0];
    assert_eq!(x.checker.code, "CHK-1");
    assert_eq!(x.agent, CPU);
    assert_eq!(x.target, Entity::Pci(bdf));
    assert!(
        x.message.contains("in slot 2: its slot is powered off"),
        "{}",
        x.message
    );
    // Powered again, the card is in its reset state: the old address decodes nothing.
    io.set_slot_power(t(2), SlotId(2), true, &mut env).unwrap();
    assert_eq!(io.config_read(t(3), CPU, bdf, reg::BAR0, &mut env), 0b0100);
    io.mmio_read(t(4), CPU, b, &mut env);
    assert_eq!(env.violations.count("CHK-1"), 2);
    assert!(
        env.violations.kept()[1]
            .message
            .contains("nothing decodes it")
    );
}

#[test]
fn a_surprise_removal_is_visible_and_late_accesses_are_named() {
    let mut io = fabric();
    let mut env = Env::new();
    let d = DeviceId(0);
    route(
        &mut io,
        &mut env,
        d,
        0x70,
        sim_core::LsapicId { id: 0, eid: 0 },
    );
    start(&mut io, &mut env, d, 0x10_0000, 512);
    io.device_tick(t(1000), d, &mut env);
    let bdf = io.device(d).unwrap().bdf;
    let b = bar0(&io, d);
    let gsi = io.device(d).unwrap().gsi;
    let input = |io: &io_subsystem::IoFabric| {
        let (sid, e) = io.gsi_entry(gsi).unwrap();
        io.subsystem(sid).unwrap().sapic.entries()[e].asserted
    };
    assert_eq!(input(&io), 1, "the card is interrupting");
    io.remove_card(t(1500), SlotId(2), &mut env).unwrap();
    assert_eq!(input(&io), 0, "its line dropped at the IO SAPIC with it");
    assert!(
        env.events
            .iter()
            .any(|e| matches!(e, io_subsystem::IoEvent::Card { surprise: true, .. }))
    );
    assert_eq!(
        io.device_tick(t(2000), d, &mut env),
        None,
        "a removed card does nothing"
    );
    // The driver notices all-ones...
    assert_eq!(
        io.config_read(t(2100), CPU, bdf, reg::ID, &mut env),
        u32::MAX
    );
    assert!(env.violations.is_empty(), "an id probe is how it notices");
    // ...but a register access after the removal is reported.
    io.mmio_write(
        t(2200),
        CPU,
        b.checked_add(regs::CTRL).unwrap(),
        0,
        &mut env,
    );
    let x = &env.violations.kept()[0];
    assert!(x.message.contains("the card was removed"), "{}", x.message);
    io.config_read(t(2300), CPU, bdf, reg::COMMAND, &mut env);
    assert_eq!(env.violations.count("CHK-1"), 2);
    env.audit(&io);
    assert_eq!(
        env.violations.count("CHK-6"),
        0,
        "the line dropped with the card"
    );
    // A new card can go in.
    let n = io
        .insert_card(t(3000), SlotId(2), DeviceKind::Disk, &mut env)
        .unwrap();
    assert_eq!(
        io.config_read(t(3001), CPU, io.device(n).unwrap().bdf, reg::ID, &mut env),
        0x0030_1000
    );
}

#[test]
fn a_whole_subsystem_can_vanish() {
    let mut io = fabric();
    let mut env = Env::new();
    let d = DeviceId(1);
    let b = bar0(&io, d);
    io.subsystem_event(t(0), IoSubsystemId(2), SubsystemEvent::Remove, &mut env)
        .unwrap();
    assert_eq!(io.mmio_read(t(1), CPU, b, &mut env), u64::MAX);
    assert!(matches!(
        env.events.last(),
        Some(io_subsystem::IoEvent::Access {
            outcome: IoOutcome::SubsystemDown,
            ..
        })
    ));
    // The card was running: the first read that finds it gone could not be avoided.
    assert_eq!(env.violations.count("CHK-1"), 0);
    assert_eq!(
        env.violations
            .tally_of("CHK-1", io_subsystem::check::DISCOVERIES),
        1
    );
    // A second one could: software had already read all-ones there.
    io.mmio_read(t(1), CPU, b, &mut env);
    assert_eq!(env.violations.count("CHK-1"), 1);
    let m = &env.violations.kept()[0].message;
    assert!(m.contains("its I/O subsystem is down (after cpu"), "{m}");
    assert!(io.set_slot_power(t(2), SlotId(9), true, &mut env).is_err());
    // Back in: SAPIC reset, slots unpowered, no cards.
    io.subsystem_event(t(3), IoSubsystemId(2), SubsystemEvent::Insert, &mut env)
        .unwrap();
    io.subsystem_event(t(4), IoSubsystemId(2), SubsystemEvent::PowerOn, &mut env)
        .unwrap();
    let s = io.subsystem(IoSubsystemId(2)).unwrap();
    assert!(s.sapic.entries().iter().all(|e| e.masked));
    assert!(io.slot(SlotId(9)).unwrap().card.is_none());
    assert!(
        io.subsystem_event(t(5), IoSubsystemId(2), SubsystemEvent::PowerOn, &mut env)
            .is_err()
    );
}
