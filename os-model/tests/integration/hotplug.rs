//! CPU hot-remove and hot-add under load: clean, with every step reported, refusals with
//! their errors, a whole cell's CPUs, and bring-up through the same path as boot.

use acpi_model::hw::MachineConfig;
use os_model::{Accepted, HotplugError, OpKind, OsConfig, OsEvent, Step, Trigger};

use crate::common::{Sim, ms, some_cards};

fn default_sim(cfg: &OsConfig) -> Sim {
    Sim::new(MachineConfig::default(), some_cards(8), cfg, &[], 7)
}

#[test]
fn boot_brings_every_cpu_up_through_the_hot_add_path() {
    let mut s = default_sim(&OsConfig::default());
    s.run_to(ms(4));
    let ops = s.os.hotplug().done();
    assert_eq!(ops.len(), 31, "one bring-up per secondary CPU");
    for op in ops {
        assert_eq!(op.trigger, Trigger::Boot);
        let steps: Vec<Step> = op.steps.iter().map(|x| x.step).collect();
        assert_eq!(
            steps,
            [
                Step::Wake,
                Step::InitCpu,
                Step::StartKthreads,
                Step::PublishOnline,
                Step::MarkActive
            ]
        );
    }
    assert!(s.os.booted_at().is_some());
    assert_eq!(s.os.maps().online.weight(), 32);
    assert_eq!(s.os.irqs().len(), 9, "one IRQ per card, and the SCI");
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}

#[test]
fn offline_and_online_under_load_including_a_whole_cell() {
    let mut s = default_sim(&OsConfig::default());
    s.run_to(ms(3));
    let now = s.now;
    // All four CPUs of cell 1, and two more elsewhere.
    for c in [4, 5, 6, 7, 13, 22] {
        let r = s.os.request(now, OpKind::Down, c, Trigger::User).unwrap();
        assert!(matches!(r, Accepted::Queued { .. }));
    }
    s.run_to(ms(8));
    for c in [4, 5, 6, 7, 13, 22] {
        assert!(!s.os.maps().online.contains(os_model::LogicalCpu(c)));
        assert_eq!(
            s.cpu_state(c),
            acpi_model::hw::CpuState::Halted,
            "cpu{c} halted"
        );
    }
    let downs: Vec<_> =
        s.os.hotplug()
            .done()
            .iter()
            .filter(|o| o.kind == OpKind::Down)
            .collect();
    assert_eq!(downs.len(), 6);
    let migrated: u32 = downs.iter().map(|o| o.tasks_migrated).sum();
    let irqs: u32 = downs.iter().map(|o| o.irqs_rerouted).sum();
    assert!(migrated > 0, "tasks were moved by the migration threads");
    assert!(irqs > 0, "cpu4..7 had IRQs");
    for op in &downs {
        assert_eq!(op.result, Some(Ok(())));
        let steps: Vec<Step> = op.steps.iter().map(|x| x.step).collect();
        assert_eq!(
            steps,
            [
                Step::MarkInactive,
                Step::MigrateTasks,
                Step::MigrateIrqs,
                Step::MigrateWork,
                Step::StopKthreads,
                Step::PublishOffline,
                Step::GracePeriod,
                Step::FlushCache,
                Step::Halt
            ]
        );
        // The steps follow each other in simulated time.
        for w in op.steps.windows(2) {
            assert!(w[1].start >= w[0].start + w[0].duration);
        }
    }
    let now = s.now;
    for c in [5, 4, 22] {
        s.os.request(now, OpKind::Up, c, Trigger::User).unwrap();
    }
    s.run_to(ms(12));
    assert!(s.os.maps().online.contains(os_model::LogicalCpu(5)));
    assert!(s.os.maps().active.contains(os_model::LogicalCpu(22)));
    assert_eq!(s.os.maps().online.to_string(), "0-5,8-12,14-31");
    // The CPUs that came back get work again (the balancer pulls tasks to them).
    assert!(s.os.per_cpu()[5].switches > 0);
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
    let st = s.os.stats();
    assert!(st.irqs_handled > 0 && st.shootdowns > 0 && st.balance_moves > 0);
}

#[test]
fn refusals_change_nothing_and_name_their_errno() {
    let cfg = OsConfig {
        bound: vec![os_model::BoundTask { cpu: 2 }],
        ..OsConfig::default()
    };
    let machine = MachineConfig {
        cells: 3,
        cpus_per_cell: 2,
        present_cells: Some(vec![0, 2]),
        ..MachineConfig::default()
    };
    let mut s = Sim::new(machine, acpi_model::hw::IoConfig::default(), &cfg, &[], 3);
    s.run_to(ms(2));
    let now = s.now;
    let before = s.os.maps().clone();
    // Logical numbering: boot CPU 0, the present ones, then the absent cell's.
    assert_eq!(s.os.possible().to_string(), "0-5");
    assert_eq!(s.os.present().to_string(), "0-3");
    let err = |r: Result<Accepted, HotplugError>| r.unwrap_err().errno();
    assert_eq!(
        err(s.os.request(now, OpKind::Down, 9, Trigger::User)),
        "EINVAL"
    );
    assert_eq!(
        err(s.os.request(now, OpKind::Up, 300, Trigger::User)),
        "EINVAL"
    );
    assert_eq!(
        err(s.os.request(now, OpKind::Up, 4, Trigger::User)),
        "EINVAL",
        "not present"
    );
    let e =
        s.os.request(now, OpKind::Down, 2, Trigger::User)
            .unwrap_err();
    assert!(matches!(e, HotplugError::BoundTask { cpu: 2, .. }), "{e}");
    assert_eq!(e.errno(), "EBUSY");
    assert_eq!(
        s.os.request(now, OpKind::Up, 1, Trigger::User),
        Ok(Accepted::NoChange)
    );
    for c in [0, 1, 3] {
        assert!(s.os.request(now, OpKind::Down, c, Trigger::User).is_ok());
    }
    // 0, 1 and 3 are on their way out: 2 will be the last online CPU.
    let e =
        s.os.request(now, OpKind::Down, 2, Trigger::User)
            .unwrap_err();
    assert!(matches!(e, HotplugError::LastOnline { cpu: 2 }), "{e}");
    assert_eq!(e.errno(), "EBUSY");
    assert_eq!(
        s.os.maps(),
        &before,
        "refusals and queued requests change nothing yet"
    );
    s.run_to(ms(5));
    assert_eq!(s.os.maps().online.to_string(), "2");
    let refused = s
        .log
        .iter()
        .filter(|(_, e)| matches!(e, OsEvent::HotplugRefused { .. }))
        .count();
    assert_eq!(refused, 5);
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}

#[test]
fn acpi_eject_request_offlines_ejects_and_reports_ost_then_device_check_brings_it_back() {
    let mut s = default_sim(&OsConfig::default());
    s.run_to(ms(3));
    let now = s.now;
    s.p.notify(
        now,
        "\\_SB_.CL02.CP01",
        acpi_model::NotifyCode::EjectRequest,
        &mut s.probe,
    )
    .unwrap();
    s.run_to(ms(5));
    let op = s.os.hotplug().done().last().unwrap().clone();
    assert_eq!(op.trigger, Trigger::AcpiEject);
    assert_eq!(op.cpu.0, 9);
    assert_eq!(op.steps.last().unwrap().step, Step::Eject);
    assert_eq!(
        s.cpu_state(9),
        acpi_model::hw::CpuState::Absent,
        "firmware powered it off"
    );
    assert!(!s.os.present().contains(os_model::LogicalCpu(9)));
    let ost = s.p.ost_log().last().unwrap().clone();
    assert_eq!((ost.event, ost.status), (3, 0));
    // Power it back and tell the OS.
    let now = s.now;
    s.p.cpu_event(
        now,
        sim_core::CpuId(9),
        acpi_model::hw::CpuEvent::PowerOn,
        &mut s.probe,
    )
    .unwrap();
    s.p.notify(
        now,
        "\\_SB_.CL02.CP01",
        acpi_model::NotifyCode::DeviceCheck,
        &mut s.probe,
    )
    .unwrap();
    s.run_to(ms(7));
    assert!(s.os.maps().online.contains(os_model::LogicalCpu(9)));
    let ost = s.p.ost_log().last().unwrap().clone();
    assert_eq!((ost.event, ost.status), (1, 0));
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}
