//! The I/O paths through the whole platform: a card DMAs into real memory, its interrupt
//! reaches a CPU's local SAPIC, and the four things issue 3 must catch are caught.

use acpi_model::{Platform, PlatformProbe};
use cells::cell::CellEvent;
use cells::cpu::CpuEvent;
use io_subsystem::DeviceId;
use io_subsystem::device::{RECORD_WORDS, record_word, regs};
use io_subsystem::pci::{cmd, reg};
use io_subsystem::sapic;
use sim_core::{CellId, CpuId, Entity, PhysAddr, SlotId};

use crate::common::*;

const CPU: CpuId = CpuId(0);

fn route(p: &mut Platform, probe: &mut PlatformProbe, d: DeviceId, vector: u8, dest: CpuId) {
    let dev = p.io().device(d).unwrap().clone();
    let (sid, e) = p.io().gsi_entry(dev.gsi).unwrap();
    let base = p.io().subsystem(sid).unwrap().sapic.base;
    let l = p.machine().cpu(dest).unwrap().lsapic;
    let r = |o: u64| PhysAddr::new(base + o);
    p.store(t(0), CPU, r(sapic::IOREGSEL), 0x11 + 2 * e as u64, probe)
        .unwrap();
    p.store(
        t(0),
        CPU,
        r(sapic::IOWIN),
        u64::from(l.id) << 24 | u64::from(l.eid) << 16,
        probe,
    )
    .unwrap();
    p.store(t(0), CPU, r(sapic::IOREGSEL), 0x10 + 2 * e as u64, probe)
        .unwrap();
    p.store(
        t(0),
        CPU,
        r(sapic::IOWIN),
        u64::from(vector) | u64::from(sapic::rte::LEVEL),
        probe,
    )
    .unwrap();
}

fn bar(p: &Platform, d: DeviceId) -> u64 {
    let dev = p.io().device(d).unwrap();
    dev.config().bar_address(&dev.config().bar_defs()[0])
}

fn start(p: &mut Platform, probe: &mut PlatformProbe, d: DeviceId, ring: u64) {
    let bdf = p.io().device(d).unwrap().bdf;
    let b = bar(p, d);
    p.config_write(
        t(0),
        CPU,
        bdf,
        reg::COMMAND,
        cmd::MEMORY | cmd::IO | cmd::BUS_MASTER,
        probe,
    )
    .unwrap();
    p.store(t(0), CPU, PhysAddr::new(b + regs::RING_BASE), ring, probe)
        .unwrap();
    p.store(
        t(0),
        CPU,
        PhysAddr::new(b + regs::RING_SIZE),
        8 * 128,
        probe,
    )
    .unwrap();
    p.store(
        t(0),
        CPU,
        PhysAddr::new(b + regs::CTRL),
        regs::CTRL_RUN | regs::CTRL_IRQ_EN,
        probe,
    )
    .unwrap();
}

#[test]
fn records_reach_memory_coherently_and_interrupts_reach_the_cpu() {
    let (mut p, mut probe) = booted();
    let d = DeviceId(0);
    let ring = 0x10_0000; // cell 0
    route(&mut p, &mut probe, d, 0x41, CpuId(1));
    start(&mut p, &mut probe, d, ring);
    // The driver CPU reads the ring first, so the line sits in its cache: the DMA must
    // invalidate it.
    p.load(t(10), CpuId(1), PhysAddr::new(ring), &mut probe)
        .unwrap();
    let wake = p.take_wakeups();
    assert_eq!(wake.len(), 1);
    let next = p.device_tick(wake[0].1, d, &mut probe).unwrap();
    assert!(next > wake[0].1);
    let serial = p.io().device(d).unwrap().serial;
    for i in 0..RECORD_WORDS {
        let (v, _) = p
            .load(
                t(3000),
                CpuId(1),
                PhysAddr::new(ring + 8 * i as u64),
                &mut probe,
            )
            .unwrap();
        assert_eq!(v, record_word(serial, 0, i), "word {i}");
    }
    assert_eq!(
        p.take_interrupt(t(3000), CpuId(1), &mut probe)
            .unwrap()
            .map(|x| (x.vector, x.tags)),
        Some((0x41, vec![sim_core::MsgTag::Line { gsi: 1, n: 1 }])),
        "the card's first message on its line"
    );
    probe.audit(t(4000), &p);
    assert!(probe.violations.is_empty(), "{:?}", probe.violations.kept());
}

#[test]
fn a_device_interrupt_routed_to_a_halted_cpu_is_reported() {
    let (mut p, mut probe) = booted();
    let d = DeviceId(1);
    route(&mut p, &mut probe, d, 0x42, CpuId(5));
    p.machine_mut()
        .flush_cache(t(0), CpuId(5), &mut probe)
        .unwrap();
    p.cpu_event(t(0), CpuId(5), CpuEvent::Halt, &mut probe)
        .unwrap();
    start(&mut p, &mut probe, d, 0x20_0000);
    let (_, at) = p.take_wakeups()[0];
    p.device_tick(at, d, &mut probe);
    let v = probe
        .violations
        .kept()
        .iter()
        .find(|v| v.checker.code == "CHK-6")
        .unwrap();
    assert_eq!(v.agent, Entity::IoSapic(sim_core::IoSubsystemId(1)));
    assert_eq!(v.target, Entity::Cpu(CpuId(5)));
    assert!(
        v.message.contains("which is halted: it is lost"),
        "{}",
        v.message
    );
}

#[test]
fn dma_into_a_removed_cells_memory_is_reported() {
    let (mut p, mut probe) = booted();
    let d = DeviceId(2);
    let ring = 3 * (512 << 20) + 0x1000; // cell 3
    route(&mut p, &mut probe, d, 0x43, CpuId(13));
    start(&mut p, &mut probe, d, ring);
    let (_, at) = p.take_wakeups()[0];
    let at = p.device_tick(at, d, &mut probe).unwrap();
    assert!(probe.violations.is_empty(), "{:?}", probe.violations.kept());
    // Cell 3 goes away under the card's ring (nobody moved the buffer).
    for c in 12..16 {
        p.machine_mut()
            .flush_cache(at, CpuId(c), &mut probe)
            .unwrap();
        p.cpu_event(at, CpuId(c), CpuEvent::Halt, &mut probe)
            .unwrap();
    }
    p.cell_event(at, CellId(3), CellEvent::PowerOff, &mut probe)
        .unwrap();
    p.cell_event(at, CellId(3), CellEvent::Remove, &mut probe)
        .unwrap();
    p.device_tick(at, d, &mut probe);
    let v = probe
        .violations
        .kept()
        .iter()
        .find(|v| v.message.contains("DMA write"))
        .unwrap();
    assert_eq!(v.checker.code, "CHK-1");
    assert_eq!(v.agent, Entity::Pci(p.io().device(d).unwrap().bdf));
    assert!(
        v.message.contains("its home cell3 is absent"),
        "{}",
        v.message
    );
}

#[test]
fn mmio_to_a_powered_off_slot_is_reported() {
    let (mut p, mut probe) = booted();
    let d = DeviceId(0);
    let b = bar(&p, d);
    p.evaluate(t(0), "\\_SB_.IO00.PCI0.SL02._PS3", &[], &mut probe)
        .unwrap();
    let (v, _) = p
        .load(t(1), CpuId(2), PhysAddr::new(b + regs::STATUS), &mut probe)
        .unwrap();
    assert_eq!(v, u64::MAX);
    let x = &probe.violations.kept()[0];
    assert_eq!(x.checker.code, "CHK-1");
    assert_eq!(x.agent, Entity::Cpu(CpuId(2)));
    assert!(
        x.message.contains("in slot 2: its slot is powered off"),
        "{}",
        x.message
    );
    assert!(!p.io().slot(SlotId(2)).unwrap().powered);
}

#[test]
fn an_overlapping_bar_is_reported() {
    let (mut p, mut probe) = booted();
    let a = bar(&p, DeviceId(0));
    // Move the disk's BAR (bridge of subsystem 1) onto the NIC's (subsystem 0).
    let bdf = p.io().device(DeviceId(1)).unwrap().bdf;
    p.config_write(t(0), CPU, bdf, reg::BAR0 + 4, (a >> 32) as u32, &mut probe)
        .unwrap();
    p.config_write(t(0), CPU, bdf, reg::BAR0, a as u32, &mut probe)
        .unwrap();
    let v: Vec<_> = probe
        .violations
        .kept()
        .iter()
        .filter(|v| v.checker.code == "CHK-7")
        .collect();
    assert!(v.iter().any(|v| v.message.contains("overlaps")), "{v:?}");
    assert!(
        v.iter()
            .any(|v| v.message.contains("outside its bridge's window")),
        "{v:?}"
    );
}

#[test]
fn an_mmio_access_by_a_halted_cpu_goes_nowhere() {
    let (mut p, mut probe) = booted();
    let b = bar(&p, DeviceId(0));
    p.machine_mut()
        .flush_cache(t(0), CpuId(7), &mut probe)
        .unwrap();
    p.cpu_event(t(0), CpuId(7), CpuEvent::Halt, &mut probe)
        .unwrap();
    let before = p.io().stats().mmio;
    p.store(t(1), CpuId(7), PhysAddr::new(b + regs::CTRL), 1, &mut probe)
        .unwrap();
    assert_eq!(p.io().stats().mmio, before);
    assert!(
        probe.violations.kept()[0]
            .message
            .contains("issued by cpu7, which is halted")
    );
}
