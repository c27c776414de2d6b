//! The I/O paths through the whole platform: a card DMAs into real memory, its interrupt
//! reaches a CPU's local SAPIC, and the four things issue 3 must catch are caught.

use acpi_model::{Platform, PlatformProbe};
use cells::cell::CellEvent;
use cells::cpu::CpuEvent;
use io_subsystem::DeviceId;
use io_subsystem::device::{RECORD_WORDS, record_word, regs};
use io_subsystem::pci::{cmd, reg};
use io_subsystem::sapic;
use sim_core::{CellId, CpuId, Entity, PhysAddr, SimTime, SlotId};

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

/// Queues one block command on card `d` as CPU 0.
fn block(
    p: &mut Platform,
    probe: &mut PlatformProbe,
    d: DeviceId,
    at: u64,
    cmd: (u64, u64, u64, u64, u64),
) {
    let b = bar(p, d);
    let (lba, addr, len, tag, op) = cmd;
    for (r, v) in [
        (regs::BLK_LBA, lba),
        (regs::BLK_ADDR, addr),
        (regs::BLK_LEN, len),
        (regs::BLK_TAG, tag),
        (regs::BLK_CMD, op),
    ] {
        p.store(t(at), CPU, PhysAddr::new(b + r), v, probe).unwrap();
    }
}

/// Runs card `d`'s wakeups up to `until`, in time order; `q` keeps the ones not due yet.
fn run_card(
    p: &mut Platform,
    probe: &mut PlatformProbe,
    d: DeviceId,
    q: &mut Vec<SimTime>,
    until: u64,
) {
    loop {
        q.extend(p.take_wakeups().into_iter().map(|(_, at)| at));
        q.sort();
        let Some(&at) = q.first().filter(|&&a| a <= t(until)) else {
            return;
        };
        q.remove(0);
        if let Some(next) = p.device_tick(at, d, probe) {
            q.push(next);
        }
    }
}

fn done(p: &mut Platform, probe: &mut PlatformProbe, d: DeviceId, at: u64) -> u64 {
    let b = bar(p, d);
    p.load(t(at), CPU, PhysAddr::new(b + regs::BLK_DONE), probe)
        .unwrap()
        .0
}

/// The booted platform with its storage card (device 1) decoding and mastering the bus, and
/// the card's latency as its `BLK_LATENCY` register reads.
fn disk_ready() -> (Platform, PlatformProbe, DeviceId, u64) {
    let (mut p, mut probe) = booted();
    let d = DeviceId(1);
    let bdf = p.io().device(d).unwrap().bdf;
    let on = cmd::MEMORY | cmd::BUS_MASTER;
    p.config_write(t(0), CPU, bdf, reg::COMMAND, on, &mut probe)
        .unwrap();
    let b = bar(&p, d) + regs::BLK_LATENCY;
    let latency = p.load(t(0), CPU, PhysAddr::new(b), &mut probe).unwrap().0;
    (p, probe, d, latency)
}

#[test]
fn a_storage_card_writes_its_medium_by_dma_and_reads_it_back_in_order() {
    use io_subsystem::device::{BLK_FAILED, SECTOR_BYTES, blk_done, media_word};
    let (mut p, mut probe, d, latency) = disk_ready();
    let (bdf, b) = (p.io().device(d).unwrap().bdf, bar(&p, d));
    let cap = p.io().device(d).unwrap().capacity();
    assert_eq!(cap, (1 << 30) / SECTOR_BYTES, "the kind's default medium");
    let (src, dst) = (0x30_0000u64, 0x31_0000u64);
    let mut q = Vec::new();
    let words = SECTOR_BYTES / 8 * 2;
    for i in 0..words {
        p.store(
            t(1),
            CpuId(2),
            PhysAddr::new(src + 8 * i),
            0xAB00 + i,
            &mut probe,
        )
        .unwrap();
    }
    // Write two sectors at 10, read them back elsewhere, read a sector never written, and
    // ask for one past the end of the medium.
    block(
        &mut p,
        &mut probe,
        d,
        10,
        (10, src, 2 * SECTOR_BYTES, 7, regs::BLK_WRITE),
    );
    block(
        &mut p,
        &mut probe,
        d,
        11,
        (10, dst, 2 * SECTOR_BYTES, 8, regs::BLK_READ),
    );
    block(
        &mut p,
        &mut probe,
        d,
        12,
        (99, dst + 0x1000, SECTOR_BYTES, 9, regs::BLK_READ),
    );
    block(
        &mut p,
        &mut probe,
        d,
        13,
        (cap, dst, SECTOR_BYTES, 10, regs::BLK_READ),
    );
    // The bad one completes at once, failed; the others each one latency after its doorbell
    // (their transfers take less), in order.
    assert_eq!(done(&mut p, &mut probe, d, 14), blk_done(10, true));
    assert_eq!(done(&mut p, &mut probe, d, 14), 0, "nothing else done yet");
    assert_eq!(p.io().device(d).unwrap().blk_in_flight(), 3);
    run_card(&mut p, &mut probe, d, &mut q, 10 + latency);
    assert_eq!(
        done(&mut p, &mut probe, d, 10 + latency),
        blk_done(7, false)
    );
    assert_eq!(
        done(&mut p, &mut probe, d, 10 + latency),
        0,
        "the second is not due"
    );
    // The second's transfer follows the first's (1 KiB at the medium's 8 GiB/s: 120 ns).
    run_card(&mut p, &mut probe, d, &mut q, 10 + latency + 1_000);
    assert_eq!(
        done(&mut p, &mut probe, d, 10 + latency + 1_000),
        blk_done(8, false)
    );
    assert_eq!(
        done(&mut p, &mut probe, d, 10 + latency + 1_000),
        blk_done(9, false)
    );
    let at = t(20 + 3 * latency);
    for i in 0..words {
        let (v, _) = p
            .load(at, CpuId(6), PhysAddr::new(dst + 8 * i), &mut probe)
            .unwrap();
        assert_eq!(v, 0xAB00 + i, "word {i} came back");
    }
    let serial = p.io().device(d).unwrap().serial;
    let (v, _) = p
        .load(at, CpuId(6), PhysAddr::new(dst + 0x1000 + 8), &mut probe)
        .unwrap();
    assert_eq!(
        v,
        media_word(serial, 99 * SECTOR_BYTES / 8 + 1),
        "a new medium's contents"
    );
    // The status says so, and the medium holds the data.
    let (st, _) = p
        .load(at, CPU, PhysAddr::new(b + regs::STATUS), &mut probe)
        .unwrap();
    assert!(st & regs::STATUS_BLK_DONE != 0);
    let mut back = [0u64; 2];
    p.io().device(d).unwrap().peek_media(10, &mut back);
    assert_eq!(back, [0xAB00, 0xAB01]);
    // Bus mastering off: the command fails when the medium gets to it, nothing moves.
    p.config_write(at, CPU, bdf, reg::COMMAND, cmd::MEMORY, &mut probe)
        .unwrap();
    let now = 30 + 3 * latency;
    block(
        &mut p,
        &mut probe,
        d,
        now,
        (10, dst, SECTOR_BYTES, 11, regs::BLK_READ),
    );
    run_card(&mut p, &mut probe, d, &mut q, now + latency);
    let w = done(&mut p, &mut probe, d, now + latency);
    assert_eq!(w, blk_done(11, true));
    assert!(w & BLK_FAILED != 0);
    // A command in flight when the slot loses power is lost; the medium keeps its data.
    block(
        &mut p,
        &mut probe,
        d,
        now + latency + 1,
        (10, dst, SECTOR_BYTES, 12, regs::BLK_READ),
    );
    let slot = "\\_SB_.IO01.PCI0.SL01";
    p.evaluate(
        t(now + latency + 2),
        &format!("{slot}._PS3"),
        &[],
        &mut probe,
    )
    .unwrap();
    p.evaluate(
        t(now + latency + 3),
        &format!("{slot}._PS0"),
        &[],
        &mut probe,
    )
    .unwrap();
    assert_eq!(p.io().device(d).unwrap().blk_in_flight(), 0);
    let mut back = [0u64; 2];
    p.io().device(d).unwrap().peek_media(10, &mut back);
    assert_eq!(back, [0xAB00, 0xAB01]);
    run_card(&mut p, &mut probe, d, &mut q, now + 3 * latency);
    probe.audit(t(now + 3 * latency), &p);
    assert!(probe.violations.is_empty(), "{:?}", probe.violations.kept());
}

#[test]
fn a_storage_cards_transfers_follow_one_another_at_its_bandwidth() {
    use io_subsystem::device::{BLK_MAX_BYTES, blk_done};
    // The disk: 40 us latency, 8 GiB/s by default.
    let (mut p, mut probe, d, latency) = disk_ready();
    // 1 MiB moves in 122,070 ns at 8 GiB/s: longer than the latency, so two such reads
    // queued together complete one transfer apart, not one latency after their doorbells.
    let transfer = BLK_MAX_BYTES * 1_000_000_000 / (8 << 30);
    assert!(transfer > latency);
    let mut q = Vec::new();
    block(
        &mut p,
        &mut probe,
        d,
        10,
        (0, 0x100_0000, BLK_MAX_BYTES, 1, regs::BLK_READ),
    );
    block(
        &mut p,
        &mut probe,
        d,
        11,
        (0, 0x120_0000, BLK_MAX_BYTES, 2, regs::BLK_READ),
    );
    run_card(&mut p, &mut probe, d, &mut q, 10 + transfer - 1);
    assert_eq!(done(&mut p, &mut probe, d, 10 + transfer - 1), 0);
    run_card(&mut p, &mut probe, d, &mut q, 10 + transfer);
    assert_eq!(
        done(&mut p, &mut probe, d, 10 + transfer),
        blk_done(1, false)
    );
    run_card(&mut p, &mut probe, d, &mut q, 10 + 2 * transfer - 1);
    assert_eq!(done(&mut p, &mut probe, d, 10 + 2 * transfer - 1), 0);
    run_card(&mut p, &mut probe, d, &mut q, 10 + 2 * transfer);
    assert_eq!(
        done(&mut p, &mut probe, d, 10 + 2 * transfer),
        blk_done(2, false)
    );
}
