//! Methods evaluated against the live hardware.

use acpi_model::resources::{self, Resource};
use acpi_model::{AcpiError, AcpiValue, NotifyCode};
use cells::CpuState;
use sim_core::{CellId, CpuId, SlotId};

use crate::common::*;

fn int(v: AcpiValue) -> u64 {
    v.as_integer().unwrap()
}

#[test]
fn a_cells_sta_follows_its_power_and_ej0_powers_it_off() {
    let (mut p, mut probe) = booted();
    assert_eq!(
        int(p
            .evaluate(t(0), "\\_SB_.CL02._STA", &[], &mut probe)
            .unwrap()),
        0x0F
    );
    assert_eq!(
        int(p
            .evaluate(t(0), "\\_SB_.CL02.MEM0._STA", &[], &mut probe)
            .unwrap()),
        0x0F
    );
    p.evaluate(
        t(1),
        "\\_SB_.CL02._EJ0",
        &[AcpiValue::Integer(1)],
        &mut probe,
    )
    .unwrap();
    assert_eq!(
        int(p
            .evaluate(t(2), "\\_SB_.CL02._STA", &[], &mut probe)
            .unwrap()),
        0
    );
    assert_eq!(
        int(p
            .evaluate(t(2), "\\_SB_.CL02.CP01._STA", &[], &mut probe)
            .unwrap()),
        0
    );
    assert_eq!(
        int(p
            .evaluate(t(2), "\\_SB_.CL02.CSB_.CCS_._STA", &[], &mut probe)
            .unwrap()),
        0
    );
    assert_eq!(p.machine().cpu(CpuId(9)).unwrap().state, CpuState::Absent);
    // Ejecting running CPUs is allowed (real firmware does it) and noted; the checkers see
    // what was lost.
    let note = probe
        .trace
        .records()
        .iter()
        .find(|r| r.name == "_EJ0")
        .unwrap();
    assert!(
        format!("{note}").contains("still running: cpu8,cpu9,cpu10,cpu11"),
        "{note}"
    );
}

#[test]
fn memory_and_processor_devices_eject_on_their_own() {
    let (mut p, mut probe) = booted();
    p.evaluate(
        t(0),
        "\\_SB_.CL05.MEM0._EJ0",
        &[AcpiValue::Integer(1)],
        &mut probe,
    )
    .unwrap();
    assert_eq!(
        int(p
            .evaluate(t(1), "\\_SB_.CL05.MEM0._STA", &[], &mut probe)
            .unwrap()),
        0
    );
    assert_eq!(
        int(p
            .evaluate(t(1), "\\_SB_.CL05._STA", &[], &mut probe)
            .unwrap()),
        0x0F
    );
    assert!(!p.machine().cell(CellId(5)).unwrap().memory_online());
    p.machine_mut()
        .flush_cache(t(2), CpuId(3), &mut probe)
        .unwrap();
    p.evaluate(
        t(3),
        "\\_SB_.CL00.CP03._EJ0",
        &[AcpiValue::Integer(1)],
        &mut probe,
    )
    .unwrap();
    assert_eq!(
        int(p
            .evaluate(t(4), "_SB.CL00.CP03._STA", &[], &mut probe)
            .unwrap()),
        0
    );
}

#[test]
fn crs_mat_prt_and_friends_describe_the_hardware() {
    let (mut p, mut probe) = booted();
    let crs = p
        .evaluate(t(0), "\\_SB_.CL01.MEM0._CRS", &[], &mut probe)
        .unwrap();
    assert_eq!(
        resources::decode(crs.as_buffer().unwrap()),
        Some(vec![Resource::Memory {
            base: 512 << 20,
            len: 512 << 20,
            producer: false
        }])
    );
    let crs = p
        .evaluate(t(0), "\\_SB_.IO01.PCI0._CRS", &[], &mut probe)
        .unwrap();
    let r = resources::decode(crs.as_buffer().unwrap()).unwrap();
    assert_eq!(
        r[0],
        Resource::BusNumbers {
            first: 16,
            last: 31
        }
    );
    assert_eq!(
        r[1],
        Resource::Io {
            base: 0x2000,
            len: 0x1000
        }
    );
    let mat = p
        .evaluate(t(0), "\\_SB_.CL03.CP02._MAT", &[], &mut probe)
        .unwrap();
    assert_eq!(
        &mat.as_buffer().unwrap()[..5],
        &[7, 17, 14, 3, 2],
        "type 7, uid 14, id 3, eid 2"
    );
    let prt = p
        .evaluate(t(0), "\\_SB_.IO01.PCI0._PRT", &[], &mut probe)
        .unwrap();
    let prt = prt.as_package().unwrap();
    assert_eq!(prt.len(), 16);
    assert_eq!(
        prt[5],
        AcpiValue::Package(vec![
            AcpiValue::Integer(0x2FFFF),
            AcpiValue::Integer(1),
            AcpiValue::Integer(0),
            AcpiValue::Integer(25),
        ])
    );
    assert_eq!(
        int(p
            .evaluate(t(0), "\\_SB_.IO03.SAPC._GSB", &[], &mut probe)
            .unwrap()),
        72
    );
    assert_eq!(
        int(p
            .evaluate(t(0), "\\_SB_.IO03.PCI0.SL03._SUN", &[], &mut probe)
            .unwrap()),
        15
    );
    assert_eq!(
        int(p
            .evaluate(t(0), "\\_SB_.IO03._PXM", &[], &mut probe)
            .unwrap()),
        3
    );
    assert_eq!(
        p.evaluate(t(0), "\\_SB_.IO00.PCI0._HID", &[], &mut probe)
            .unwrap(),
        AcpiValue::Integer(0x080A_D041)
    );
}

#[test]
fn slot_power_goes_through_ps0_and_ps3() {
    let (mut p, mut probe) = booted();
    assert_eq!(
        int(p
            .evaluate(t(0), "\\_SB_.IO00.PCI0.SL02._STA", &[], &mut probe)
            .unwrap()),
        0x0F
    );
    assert_eq!(
        int(p
            .evaluate(t(0), "\\_SB_.IO00.PCI0.SL01._STA", &[], &mut probe)
            .unwrap()),
        0
    );
    p.evaluate(t(1), "\\_SB_.IO00.PCI0.SL02._PS3", &[], &mut probe)
        .unwrap();
    assert!(!p.io().slot(SlotId(2)).unwrap().powered);
    assert_eq!(
        int(p
            .evaluate(t(2), "\\_SB_.IO00.PCI0.SL02._STA", &[], &mut probe)
            .unwrap()),
        0x01
    );
    p.evaluate(t(3), "\\_SB_.IO00.PCI0.SL02._PS0", &[], &mut probe)
        .unwrap();
    assert!(p.io().slot(SlotId(2)).unwrap().powered);
    assert!(probe.violations.is_empty(), "{:?}", probe.violations.kept());
}

#[test]
fn ost_is_recorded_and_sci_notifications_queue_for_the_os() {
    let (mut p, mut probe) = booted();
    p.notify(t(0), "\\_SB_.CL04", NotifyCode::EjectRequest, &mut probe)
        .unwrap();
    p.press_attention(t(1), SlotId(5), &mut probe).unwrap();
    let n = p.take_notifications(t(1), &mut probe);
    assert_eq!(n.len(), 2);
    assert_eq!(
        (n[0].path.as_str(), n[0].code),
        ("\\_SB_.CL04", NotifyCode::EjectRequest)
    );
    assert_eq!(n[1].path, "\\_SB_.IO01.PCI0.SL01");
    assert!(p.take_notifications(t(1), &mut probe).is_empty());
    p.evaluate(
        t(2),
        "\\_SB_.CL04._OST",
        &[AcpiValue::Integer(3), AcpiValue::Integer(0x80)],
        &mut probe,
    )
    .unwrap();
    let log = p.ost_log();
    assert_eq!(
        (log[0].path.as_str(), log[0].event, log[0].status),
        ("\\_SB_.CL04", 3, 0x80)
    );
}

#[test]
fn bad_paths_and_arguments_are_errors() {
    let (mut p, mut probe) = booted();
    assert!(matches!(
        p.evaluate(t(0), "\\_SB_.CL09._STA", &[], &mut probe),
        Err(AcpiError::NotFound { .. })
    ));
    assert!(matches!(
        p.evaluate(t(0), "\\_SB_.CL00._CRS", &[], &mut probe),
        Err(AcpiError::NotFound { .. })
    ));
    assert!(matches!(
        p.evaluate(t(0), "\\_SB_.CL00._EJ0", &[], &mut probe),
        Err(AcpiError::Arguments {
            expected: 1,
            got: 0,
            ..
        })
    ));
    assert!(
        p.notify(t(0), "\\_SB_.NOPE", NotifyCode::BusCheck, &mut probe)
            .is_err()
    );
}
