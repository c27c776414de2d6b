//! Local SAPIC delivery (CHK-6, hardware side): a running CPU latches the vector, a halted
//! one loses it and that is reported, and a CPU may not stop with interrupts pending.

use cells::config::Protocol;
use cells::cpu::CpuEvent;
use sim_core::{CpuId, Delivery, Entity, InterruptPort, IoSubsystemId, LsapicId, MsgTag};

use crate::common::*;

const SAPIC: Entity = Entity::IoSapic(IoSubsystemId(0));

fn line(n: u64) -> MsgTag {
    MsgTag::Line { gsi: 4, n }
}

#[test]
fn a_running_cpu_latches_and_takes_interrupts() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let dest = m.cpu(CpuId(3)).unwrap().lsapic;
    assert_eq!(dest, LsapicId { id: 1, eid: 1 });
    assert_eq!(m.cpu_by_lsapic(dest), Some(CpuId(3)));
    let d = m.deliver_interrupt(t(0), &SAPIC, dest, 0x41, line(1), &mut p);
    assert_eq!(d, Delivery::Accepted(CpuId(3)));
    m.deliver_interrupt(t(1), &SAPIC, dest, 0x51, line(2), &mut p);
    let taken = |x: Option<cells::Taken>| x.map(|x| (x.vector, x.tags));
    assert_eq!(
        taken(m.take_interrupt(t(2), CpuId(3), &mut p).unwrap()),
        Some((0x51, vec![line(2)]))
    );
    assert_eq!(
        taken(m.take_interrupt(t(3), CpuId(3), &mut p).unwrap()),
        Some((0x41, vec![line(1)]))
    );
    assert_eq!(m.take_interrupt(t(4), CpuId(3), &mut p).unwrap(), None);
    assert_eq!(m.stats().interrupts_delivered, 2);
    assert!(p.violations.is_empty(), "{:?}", p.violations.kept());
}

#[test]
fn a_device_interrupt_routed_to_a_halted_cpu_is_reported() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    m.flush_cache(t(0), CpuId(5), &mut p).unwrap();
    m.cpu_event(t(1), CpuId(5), CpuEvent::Halt, &mut p).unwrap();
    let dest = m.cpu(CpuId(5)).unwrap().lsapic;
    let mut port = cells::machine::Port {
        machine: &mut m,
        obs: &mut p,
    };
    assert_eq!(
        port.deliver(t(2), &SAPIC, dest, 0x60, line(1)),
        Delivery::NotRunning(CpuId(5))
    );
    let v = &p.violations.kept()[0];
    assert_eq!(v.checker.code, "CHK-6");
    assert_eq!(v.agent, SAPIC);
    assert_eq!(v.target, Entity::Cpu(CpuId(5)));
    assert!(
        v.message.contains("which is halted: it is lost"),
        "{}",
        v.message
    );
    let nobody = LsapicId { id: 9, eid: 0 };
    assert_eq!(
        m.deliver_interrupt(t(3), &SAPIC, nobody, 0x60, line(2), &mut p),
        Delivery::NoSuchCpu
    );
    assert_eq!(p.violations.count("CHK-6"), 2);
}

#[test]
fn halting_with_interrupts_pending_is_reported() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let dest = m.cpu(CpuId(2)).unwrap().lsapic;
    m.deliver_interrupt(t(0), &SAPIC, dest, 0x70, line(1), &mut p);
    m.flush_cache(t(1), CpuId(2), &mut p).unwrap();
    m.cpu_event(t(2), CpuId(2), CpuEvent::Halt, &mut p).unwrap();
    assert!(
        p.violations.kept()[0]
            .message
            .contains("1 interrupt vectors pending")
    );
    assert!(
        m.take_interrupt(t(3), CpuId(2), &mut p).is_err(),
        "a halted CPU takes nothing"
    );
    m.cpu_event(t(4), CpuId(2), CpuEvent::Start, &mut p)
        .unwrap();
    assert_eq!(
        m.cpu(CpuId(2)).unwrap().pending_interrupts(),
        0,
        "INIT clears the IRR"
    );
}

#[test]
fn an_uncached_access_by_a_halted_cpu_is_reported_and_not_issued() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    use cells::UncachedSpace;
    assert!(
        m.issue_uncached(
            t(0),
            CpuId(1),
            UncachedSpace::Mmio,
            0x80_0000_0000,
            true,
            &mut p
        )
        .unwrap()
    );
    m.flush_cache(t(1), CpuId(1), &mut p).unwrap();
    m.cpu_event(t(2), CpuId(1), CpuEvent::Halt, &mut p).unwrap();
    assert!(
        !m.issue_uncached(t(3), CpuId(1), UncachedSpace::Config, 0x10, false, &mut p)
            .unwrap()
    );
    let v = &p.violations.kept()[0];
    assert_eq!(v.checker.code, "CHK-1");
    assert!(
        v.message
            .contains("config read of 0x10 issued by cpu1, which is halted"),
        "{}",
        v.message
    );
}
