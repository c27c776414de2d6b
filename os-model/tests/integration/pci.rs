//! ACPI PCI hot-plug under load: a slot disabled and enabled again, the refusals that change
//! nothing, an exhausted window, the leak defect, and random sequences of slot operations
//! and card insertions and removals that keep the kernel's windows equal to its devices.

use acpi_model::NotifyCode;
use acpi_model::hw::IoConfig;
use acpi_model::hw::MachineConfig;
use acpi_model::hw::{DeviceConfig, DeviceKind};
use os_model::pcihp::{PciOpKind, PciStep};
use os_model::{Accepted, OsConfig, OsDefect, Trigger};
use proptest::prelude::*;
use sim_core::{ByteSize, SimDuration, SimTime, SlotId};

use crate::common::{Sim, ms};

fn card(subsystem: u16, slot: u8, kind: DeviceKind, bar: Option<u64>) -> DeviceConfig {
    DeviceConfig {
        subsystem,
        bridge: 0,
        slot,
        kind,
        bar_size: bar.map(ByteSize),
        irq_cpu: None,
        period_ns: Some(6000),
        capacity: None,
        latency_ns: None,
        bandwidth: None,
    }
}

/// Two cells, two I/O subsystems with 1 MiB windows; subsystem 0's two cards fill its window,
/// subsystem 1 has one card (slot 5).
fn machine() -> (MachineConfig, IoConfig) {
    let m = MachineConfig {
        cells: 2,
        ..MachineConfig::default()
    };
    let io = IoConfig {
        subsystems: 2,
        mmio: ByteSize(1 << 20),
        device: vec![
            card(0, 0, DeviceKind::Nic, Some(512 << 10)),
            card(0, 1, DeviceKind::Disk, Some(512 << 10)),
            card(1, 0, DeviceKind::Nic, None),
        ],
        ..IoConfig::default()
    };
    (m, io)
}

fn sim(defects: &[OsDefect], seed: u64) -> Sim {
    let (m, io) = machine();
    let cfg = OsConfig {
        tasks_per_cpu: 1,
        ..OsConfig::default()
    };
    let mut s = Sim::new(m, io, &cfg, defects, seed);
    s.run_to(ms(3));
    s
}

fn settle(s: &mut Sim) {
    let limit = s.now + SimDuration::from_millis(5);
    while !s.os.pci_hotplug().is_idle() && s.now < limit {
        let next = s.now + SimDuration::from_micros(50);
        s.run_to(next);
    }
}

fn last(s: &Sim) -> os_model::pcihp::PciOpReport {
    s.os.pci_hotplug().done().last().cloned().unwrap()
}

/// Every window allocation is a BAR of an enabled slot, and every enabled slot's BARs are
/// allocated.
fn windows_match_devices(s: &Sim) -> Result<(), String> {
    let hp = s.os.pci_hotplug();
    for (b, br) in hp.bridges.iter().enumerate() {
        let mut want: Vec<(u64, u64)> = hp
            .slots
            .iter()
            .filter(|x| x.bridge == b && x.enabled)
            .filter_map(|x| x.bars.map(|m| m.0))
            .collect();
        want.sort_unstable();
        let got: Vec<(u64, u64)> = br.mmio.allocations().collect();
        if got != want {
            return Err(format!("{}: reserved {got:x?}, devices {want:x?}", br.path));
        }
    }
    Ok(())
}

fn clean(s: &mut Sim) -> Result<(), String> {
    s.audit();
    for code in ["CHK-1", "CHK-2", "CHK-3", "CHK-6", "CHK-7", "DRIVER"] {
        if s.count(code) != 0 {
            return Err(format!("{code}:{}", s.violations()));
        }
    }
    Ok(())
}

#[test]
fn boot_evaluates_every_devices_sta_through_firmware_at_its_cost() {
    let (m, io) = machine();
    let cfg = OsConfig {
        tasks_per_cpu: 1,
        ..OsConfig::default()
    };
    let s = Sim::new(m, io, &cfg, &[], 1);
    // Processors, memory devices, IO SAPICs, host bridges and chipset functions: one `_STA`
    // each, by the boot CPU through the AML interpreter, before anything else of the boot.
    let sc = s.os.scan();
    let devices = sc.processors.len()
        + sc.memory.len()
        + sc.sapics.len()
        + sc.bridges.len()
        + sc.chipset.len();
    assert!(devices > 10, "{devices}");
    assert_eq!(s.os.stats().aml_evals, devices as u64);
    // What they said is what firmware holds: a present processor is one whose `_STA` has
    // its present bit (bit 0) set.
    for c in &sc.processors {
        let sta =
            s.p.read(&format!("{}._STA", c.path))
                .and_then(|v| v.as_integer())
                .unwrap();
        assert_eq!(c.present, sta & 1 != 0, "{}", c.path);
    }
}

#[test]
fn a_slot_goes_down_and_up_again_under_load() {
    let mut s = sim(&[], 1);
    let before = s.os.pci_hotplug().slot(SlotId(5)).cloned().unwrap();
    assert!(before.enabled);
    let records = s.os.driver_stats().records_checked;
    let evals = s.os.stats().aml_evals;
    s.os.pci_request(s.now, 5, PciOpKind::Disable, Trigger::User)
        .unwrap();
    settle(&mut s);
    let r = last(&s);
    assert_eq!(r.result, Some(Ok(())), "{r:?}");
    // The disable first asks firmware whether the card is still there: `_STA` through the
    // AML interpreter on the controlling CPU, counted, and the step takes that long.
    assert!(
        s.os.stats().aml_evals > evals,
        "no _STA went through firmware"
    );
    assert!(
        r.steps[0].duration >= os_model::AML_EVAL,
        "{:?}",
        r.steps[0]
    );
    let steps: Vec<PciStep> = r.steps.iter().map(|x| x.step).collect();
    assert_eq!(
        steps,
        [
            PciStep::Quiesce,
            PciStep::FreeIrq,
            PciStep::FreeBuffers,
            PciStep::Release,
            PciStep::PowerOff
        ]
    );
    // Every method the kernel evaluates costs the interpreter's time, not only `_STA`: the
    // power-off is the step's own cost, the bridge's `_STA` and the slot's `_PS3`.
    assert_eq!(
        r.steps[4].duration,
        s.os.config().step_cost + os_model::AML_EVAL + os_model::AML_EVAL,
        "{:?}",
        r.steps[4]
    );
    let off = s.os.pci_hotplug().slot(SlotId(5)).cloned().unwrap();
    assert!(!off.enabled && off.bars.is_none() && off.irq.is_none());
    assert!(!s.p.io().slot(SlotId(5)).unwrap().powered);
    windows_match_devices(&s).unwrap();
    clean(&mut s).unwrap();

    s.os.pci_request(s.now, 5, PciOpKind::Enable, Trigger::User)
        .unwrap();
    settle(&mut s);
    let r = last(&s);
    assert_eq!(r.result, Some(Ok(())), "{r:?}");
    let steps: Vec<PciStep> = r.steps.iter().map(|x| x.step).collect();
    assert_eq!(
        steps,
        [
            PciStep::PowerOn,
            PciStep::Scan,
            PciStep::Assign,
            PciStep::RouteIrq,
            PciStep::Probe
        ]
    );
    let on = s.os.pci_hotplug().slot(SlotId(5)).cloned().unwrap();
    assert!(on.enabled);
    assert_eq!(on.bars, before.bars, "the freed window space is used again");
    // The card works again: its records keep being checked.
    s.run_to(s.now + SimDuration::from_millis(1));
    assert!(s.os.driver_stats().records_checked > records + 10);
    windows_match_devices(&s).unwrap();
    clean(&mut s).unwrap();
}

#[test]
fn refusals_change_nothing_and_name_their_errno() {
    let mut s = sim(&[], 2);
    let slots = s.os.pci_hotplug().slots.clone();
    let e =
        s.os.pci_request(s.now, 6, PciOpKind::Disable, Trigger::User)
            .unwrap_err();
    assert_eq!(e.errno(), "ENODEV", "{e}");
    let e =
        s.os.pci_request(s.now, 6, PciOpKind::Eject, Trigger::AcpiEject)
            .unwrap_err();
    assert_eq!(e.errno(), "ENODEV", "{e}");
    let e =
        s.os.pci_request(s.now, 99, PciOpKind::Enable, Trigger::User)
            .unwrap_err();
    assert_eq!(e.errno(), "EINVAL", "{e}");
    assert_eq!(
        s.os.pci_request(s.now, 5, PciOpKind::Enable, Trigger::User),
        Ok(Accepted::NoChange)
    );
    assert_eq!(s.os.pci_hotplug().slots, slots);
    assert!(s.os.pci_hotplug().is_idle());
}

#[test]
fn an_exhausted_window_refuses_the_card_and_leaves_the_slot_off() {
    let mut s = sim(&[], 3);
    let t = s.now;
    s.p.insert_card(t, SlotId(3), DeviceKind::Nic, &mut s.probe)
        .unwrap();
    let windows: Vec<Vec<(u64, u64)>> =
        s.os.pci_hotplug()
            .bridges
            .iter()
            .map(|b| b.mmio.allocations().collect())
            .collect();
    s.p.notify(
        t,
        "\\_SB_.IO00.PCI0.SL03",
        NotifyCode::DeviceCheck,
        &mut s.probe,
    )
    .unwrap();
    s.run_to(t + SimDuration::from_micros(300));
    settle(&mut s);
    let r = last(&s);
    let e = r.result.clone().unwrap().unwrap_err();
    assert_eq!(e.errno(), "ENOSPC", "{e}");
    assert_eq!(r.target, os_model::pcihp::PciTarget::Slot(SlotId(3)));
    let slot = s.os.pci_hotplug().slot(SlotId(3)).cloned().unwrap();
    assert!(!slot.enabled && slot.bars.is_none() && slot.irq.is_none());
    assert!(
        !s.p.io().slot(SlotId(3)).unwrap().powered,
        "powered off again"
    );
    let after: Vec<Vec<(u64, u64)>> =
        s.os.pci_hotplug()
            .bridges
            .iter()
            .map(|b| b.mmio.allocations().collect())
            .collect();
    assert_eq!(after, windows);
    // Firmware was told: _OST(device check, failure).
    assert!(
        s.p.ost_log()
            .iter()
            .any(|o| o.path.ends_with("SL03") && o.event == 1 && o.status == 0x80),
        "{:?}",
        s.p.ost_log()
    );
    clean(&mut s).unwrap();
}

#[test]
fn a_leaked_bar_is_reported_and_without_the_defect_nothing_is() {
    for (defects, leaks) in [(vec![], false), (vec![OsDefect::LeakBarOnRemove], true)] {
        let mut s = sim(&defects, 4);
        s.os.pci_request(s.now, 5, PciOpKind::Disable, Trigger::User)
            .unwrap();
        settle(&mut s);
        s.audit();
        assert_eq!(
            s.count("CHK-7") > 0,
            leaks,
            "{defects:?}:{}",
            s.violations()
        );
        assert_eq!(windows_match_devices(&s).is_err(), leaks);
    }
}

/// One step of a random sequence.
#[derive(Clone, Debug)]
enum Act {
    Power(u16, bool),
    Attention(u16),
    Pull(u16),
    Push(u16, bool),
    DeviceCheck(u16),
}

fn act() -> impl Strategy<Value = Act> {
    let slot = prop_oneof![Just(1u16), Just(2), Just(3), Just(5), Just(6)];
    prop_oneof![
        (slot.clone(), any::<bool>()).prop_map(|(s, on)| Act::Power(s, on)),
        slot.clone().prop_map(Act::Attention),
        slot.clone().prop_map(Act::Pull),
        (slot.clone(), any::<bool>()).prop_map(|(s, nic)| Act::Push(s, nic)),
        slot.prop_map(Act::DeviceCheck),
    ]
}

fn path(slot: u16) -> String {
    let sub = (slot - 1) / 4;
    let dev = (slot - 1) % 4 + 1;
    format!("\\_SB_.IO{sub:02X}.PCI0.SL{dev:02X}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn random_slot_operations_keep_windows_interrupts_and_data_right(
        seed in 0u64..500,
        acts in prop::collection::vec(act(), 1..8),
    ) {
        let mut s = sim(&[], seed);
        for a in acts {
            let t: SimTime = s.now;
            match a {
                Act::Power(slot, on) => {
                    let kind = if on { PciOpKind::Enable } else { PciOpKind::Disable };
                    match s.os.pci_request(t, slot, kind, Trigger::User) {
                        Ok(_) => {}
                        Err(e) => prop_assert!(["ENODEV"].contains(&e.errno()), "{:?}: {}", a, e),
                    }
                }
                Act::Attention(slot) => {
                    let _ = s.p.press_attention(t, SlotId(slot), &mut s.probe);
                }
                Act::Pull(slot) => {
                    // Only a card whose slot is off: a surprise removal is another test.
                    if !s.p.io().slot(SlotId(slot)).is_some_and(|x| x.powered) {
                        let _ = s.p.remove_card(t, SlotId(slot), &mut s.probe);
                    }
                }
                Act::Push(slot, nic) => {
                    let kind = if nic { DeviceKind::Nic } else { DeviceKind::Disk };
                    if !s.p.io().slot(SlotId(slot)).is_some_and(|x| x.powered) {
                        let _ = s.p.insert_card(t, SlotId(slot), kind, &mut s.probe);
                    }
                }
                Act::DeviceCheck(slot) => {
                    s.p.notify(t, &path(slot), NotifyCode::DeviceCheck, &mut s.probe).unwrap();
                }
            }
            s.run_to(t + SimDuration::from_micros(300));
            settle(&mut s);
            for op in s.os.pci_hotplug().done() {
                if let Some(Err(e)) = &op.result {
                    prop_assert!(
                        ["ENODEV", "ENOSPC"].contains(&e.errno()),
                        "op {} ({:?} {}): {}", op.id, op.kind, op.target, e
                    );
                }
            }
            if let Err(e) = windows_match_devices(&s) {
                prop_assert!(false, "{}", e);
            }
        }
        s.run_to(s.now + SimDuration::from_millis(1));
        if let Err(e) = clean(&mut s) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// Subsystems 0 and 1 at boot; 2 and 3 slots empty, subsystem 3's firmware claiming
/// subsystem 1's GSIs.
fn subsystem_sim(defects: &[OsDefect]) -> Sim {
    let m = MachineConfig {
        cells: 2,
        ..MachineConfig::default()
    };
    let io = IoConfig {
        subsystems: 4,
        present: Some(vec![0, 1]),
        gsi_bases: Some(vec![0, 24, 48, 24]),
        device: vec![card(1, 0, DeviceKind::Nic, None)],
        ..IoConfig::default()
    };
    let cfg = OsConfig {
        tasks_per_cpu: 1,
        ..OsConfig::default()
    };
    let mut s = Sim::new(m, io, &cfg, defects, 7);
    s.run_to(ms(3));
    s
}

fn arrive(s: &mut Sim, sub: u16, cards: &[u16]) {
    use acpi_model::hw::SubsystemEvent;
    let t = s.now;
    let id = sim_core::IoSubsystemId(sub);
    for ev in [SubsystemEvent::Insert, SubsystemEvent::PowerOn] {
        s.p.subsystem_event(t, id, ev, &mut s.probe).unwrap();
    }
    for &c in cards {
        s.p.insert_card(t, SlotId(c), DeviceKind::Disk, &mut s.probe)
            .unwrap();
    }
    s.p.notify(
        t,
        &format!("\\_SB_.IO{sub:02X}"),
        NotifyCode::DeviceCheck,
        &mut s.probe,
    )
    .unwrap();
    s.run_to(t + SimDuration::from_micros(300));
    settle(s);
}

#[test]
fn a_hot_added_subsystem_gets_its_io_sapic_masked_before_its_devices_and_leaves_clean() {
    let mut s = subsystem_sim(&[]);
    arrive(&mut s, 2, &[9, 11]);
    let ops = s.os.pci_hotplug().done().to_vec();
    let add = ops
        .iter()
        .find(|o| o.kind == PciOpKind::AddSubsystem)
        .unwrap();
    assert_eq!(add.result, Some(Ok(())), "{add:?}");
    let steps: Vec<PciStep> = add.steps.iter().map(|x| x.step).collect();
    assert_eq!(
        steps,
        [PciStep::Rescan, PciStep::InitSapic, PciStep::EnableSlots]
    );
    // The rescan asks firmware, at the interpreter's cost, whether the module is there and
    // then whether each device in it is (its IO SAPIC, its host bridges); nothing else of the
    // namespace is evaluated again.
    let sc = s.os.scan();
    let inside = sc
        .sapics
        .iter()
        .map(|x| &x.path)
        .chain(sc.bridges.iter().map(|x| &x.path))
        .filter(|p| p.starts_with("\\_SB_.IO02."))
        .count() as u64;
    assert!(inside >= 2, "{inside}");
    assert_eq!(
        add.steps[0].duration,
        s.os.config().step_cost + os_model::AML_EVAL.saturating_mul(1 + inside),
        "{:?}",
        add.steps[0]
    );
    // Every entry of the new IO SAPIC was masked before the first device behind it was
    // enabled: the enables come after the registration.
    let init_end = add.ended.unwrap();
    for sun in [9, 11] {
        let en = ops
            .iter()
            .find(|o| o.target == os_model::pcihp::PciTarget::Slot(SlotId(sun)))
            .unwrap();
        assert_eq!(en.result, Some(Ok(())), "{en:?}");
        assert!(en.started >= init_end);
        assert!(s.os.pci_hotplug().slot(SlotId(sun)).unwrap().enabled);
    }
    let sub = s.p.io().subsystem(sim_core::IoSubsystemId(2)).unwrap();
    let unmasked: Vec<usize> = (0..sub.sapic.entries().len())
        .filter(|&e| !sub.sapic.entries()[e].masked)
        .collect();
    assert_eq!(unmasked, [0, 2], "only the two cards' entries are unmasked");
    s.run_to(s.now + SimDuration::from_millis(1));
    clean(&mut s).unwrap();

    // And away again: its devices are stopped first, then the module is ejected.
    let t = s.now;
    s.p.notify(t, "\\_SB_.IO02", NotifyCode::EjectRequest, &mut s.probe)
        .unwrap();
    s.run_to(t + SimDuration::from_micros(300));
    settle(&mut s);
    let last = last(&s);
    assert_eq!(last.kind, PciOpKind::EjectSubsystem);
    assert_eq!(last.result, Some(Ok(())), "{last:?}");
    assert!(
        !s.p.io()
            .subsystem(sim_core::IoSubsystemId(2))
            .unwrap()
            .state
            .is_powered()
    );
    assert!(!s.os.pci_hotplug().slot(SlotId(9)).unwrap().enabled);
    windows_match_devices(&s).unwrap();
    s.run_to(s.now + SimDuration::from_millis(1));
    clean(&mut s).unwrap();
}

#[test]
fn a_subsystem_whose_gsis_overlap_is_refused_and_nothing_changes() {
    let mut s = subsystem_sim(&[]);
    let slots = s.os.pci_hotplug().slots.clone();
    arrive(&mut s, 3, &[13]);
    let r = last(&s);
    assert_eq!(r.kind, PciOpKind::AddSubsystem);
    let e = r.result.clone().unwrap().unwrap_err();
    assert_eq!(e.errno(), "EBUSY", "{e}");
    assert!(e.to_string().contains("overlap"), "{e}");
    // Nothing was enabled behind it and its IO SAPIC was never touched by the kernel.
    assert_eq!(s.os.pci_hotplug().slots, slots);
    assert!(!s.p.io().slot(SlotId(13)).unwrap().powered);
    let sub = s.p.io().subsystem(sim_core::IoSubsystemId(3)).unwrap();
    assert!(
        sub.sapic
            .entries()
            .iter()
            .all(|r| r.masked && r.delivered == 0)
    );
    clean(&mut s).unwrap();
}

#[test]
fn skipping_the_io_sapic_initialisation_leaves_the_new_devices_interrupts_unrouted() {
    let mut s = subsystem_sim(&[OsDefect::SkipSapicInitOnHotAdd]);
    arrive(&mut s, 2, &[9]);
    s.run_to(s.now + SimDuration::from_millis(1));
    s.audit();
    assert!(s.count("CHK-6") > 0, "{}", s.violations());
}

/// CHK-6 (OS side) follows each interrupt message by its tag: the same run's events replayed
/// with one handling of a line dropped and another handling of that line repeated leave the
/// counts equal (a count would see nothing) and show both faults.
#[test]
fn a_duplicate_and_a_loss_on_one_line_do_not_cancel_out() {
    use os_model::OsEvent;
    use os_model::check::{IrqChecker, OsChecker};
    use sim_core::{MsgTag, Violations};

    let (m, io) = machine();
    let mut s = Sim::new(m, io, &OsConfig::default(), &[], 3);
    s.run_to(ms(2));
    s.audit();
    assert_eq!(s.count("CHK-6"), 0, "{}", s.violations());
    // Every handling of one message: (index in the log, line, tag).
    let handled: Vec<(usize, u32, MsgTag)> = s
        .log
        .iter()
        .enumerate()
        .filter_map(|(i, (_, e))| {
            if let OsEvent::IrqHandled { gsi, tags, .. } = e {
                (tags.len() == 1).then(|| (i, *gsi, tags[0]))
            } else {
                None
            }
        })
        .collect();
    let line = handled[0].1;
    let same: Vec<(usize, MsgTag)> = handled
        .iter()
        .filter(|h| h.1 == line)
        .map(|h| (h.0, h.2))
        .collect();
    assert!(same.len() >= 3, "the card interrupts more than twice");
    let ((dropped, lost_tag), (repeated, repeated_tag)) = (same[0], same[1]);
    let mut c = IrqChecker::default();
    let mut out = Violations::default();
    for (i, (t, e)) in s.log.iter().enumerate() {
        if i != dropped {
            c.observe(*t, e, &mut out);
        }
        if i == repeated {
            c.observe(*t, e, &mut out);
        }
    }
    c.audit(s.now, &s.os, &s.p, &mut out);
    let MsgTag::Line { n: lost, .. } = lost_tag else {
        panic!("a line's message");
    };
    let messages: Vec<&str> = out.kept().iter().map(|v| v.message.as_str()).collect();
    assert_eq!(out.count("CHK-6"), 2, "{messages:?}");
    assert!(
        messages[0].contains(&format!("interrupt {repeated_tag} "))
            && messages[0].contains("handled again"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with(&format!(
            "gsi{line}: 1 interrupt(s) sent and never handled (#{lost} of"
        )),
        "{messages:?}"
    );
}
