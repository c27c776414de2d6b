//! The RAS and power policies decide hot-plug operations on their own: corrected errors over
//! a threshold take a CPU or a memory block offline, or swap a cell; idle CPUs are parked
//! under low load and come back when a job starts.

use acpi_model::NotifyCode;
use acpi_model::hw::CellEvent;
use acpi_model::hw::MachineConfig;
use acpi_model::hw::McaTarget;
use os_model::OsConfig;
use os_model::memhotplug::MemOpKind;
use os_model::policy::{PowerConfig, RasConfig};
use sim_core::{CellId, CpuId, PhysAddr, SimDuration};

use crate::common::{Sim, ms};

fn ras_sim() -> Sim {
    let machine = MachineConfig {
        cells: 3,
        ..MachineConfig::default()
    };
    let cfg = OsConfig {
        tasks_per_cpu: 1,
        ras: RasConfig {
            enabled: true,
            ..RasConfig::default()
        },
        ..OsConfig::default()
    };
    let mut s = Sim::new(machine, Default::default(), &cfg, &[], 3);
    s.run_to(ms(3));
    s
}

fn inject(s: &mut Sim, target: McaTarget, n: u32) {
    let t = s.now;
    s.p.machine_mut()
        .inject_corrected_error(t, target, n, &mut s.probe)
        .unwrap();
}

#[test]
fn errors_under_the_thresholds_change_nothing_and_over_them_the_policy_acts_once() {
    let mut s = ras_sim();
    inject(&mut s, McaTarget::Cpu(CpuId(5)), 9);
    s.run_to(s.now + SimDuration::from_millis(2));
    assert!(s.os.policies().actions.is_empty());
    assert_eq!(s.os.policies().cpu_errors[5], 9, "counted from the log");
    // One more: over the threshold; more still: nothing more is done.
    inject(&mut s, McaTarget::Cpu(CpuId(5)), 1);
    s.run_to(s.now + SimDuration::from_millis(2));
    inject(&mut s, McaTarget::Cpu(CpuId(5)), 5);
    s.run_to(s.now + SimDuration::from_millis(2));
    let acts = &s.os.policies().actions;
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0].target, "cpu5");
    assert!(!s.os.maps().online.contains(os_model::LogicalCpu(5)));
    // A memory page: its block goes offline.
    let addr = PhysAddr::new((512 << 20) + (100 << 20));
    inject(&mut s, McaTarget::Memory(addr), 10);
    s.run_to(s.now + SimDuration::from_millis(4));
    let r = s.os.mem_hotplug().done().last().cloned().unwrap();
    assert_eq!(r.kind, MemOpKind::Offline);
    assert_eq!(r.blocks, [os_model::ids::BlockId(9)]);
    assert_eq!(r.result, Some(Ok(())), "{r:?}");
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}

#[test]
fn a_cell_over_its_threshold_is_swapped_and_the_new_board_starts_afresh() {
    let mut s = ras_sim();
    inject(&mut s, McaTarget::Cpu(CpuId(8)), 9);
    inject(&mut s, McaTarget::Memory(PhysAddr::new(1100 << 20)), 32);
    s.run_to(s.now + SimDuration::from_millis(1));
    let acts = s.os.policies().actions.clone();
    assert_eq!(acts.len(), 1, "the cell, not its CPU or block: {acts:?}");
    assert_eq!(acts[0].target, "cell2");
    let limit = s.now + SimDuration::from_millis(15);
    while !s.os.mem_hotplug().is_idle() && s.now < limit {
        let next = s.now + SimDuration::from_micros(200);
        s.run_to(next);
    }
    let r = s.os.mem_hotplug().done().last().cloned().unwrap();
    assert_eq!(r.kind, MemOpKind::CellRemove);
    assert_eq!(r.result, Some(Ok(())), "{r:?}");
    assert!(!s.p.machine().cell(CellId(2)).unwrap().state.is_powered());
    // The operator replaces the board.
    let t = s.now;
    for ev in [CellEvent::Remove, CellEvent::Insert, CellEvent::PowerOn] {
        s.p.cell_event(t, CellId(2), ev, &mut s.probe).unwrap();
    }
    s.p.notify(t, "\\_SB_.CL02", NotifyCode::DeviceCheck, &mut s.probe)
        .unwrap();
    s.run_to(t + SimDuration::from_millis(3));
    assert_eq!(s.os.policies().cell_errors[2], 0);
    assert_eq!(s.os.policies().cpu_errors[8], 0);
    assert!(s.os.maps().online.contains(os_model::LogicalCpu(8)));
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}

#[test]
fn idle_cpus_are_parked_and_come_back_when_a_job_starts() {
    let machine = MachineConfig {
        cells: 2,
        ..MachineConfig::default()
    };
    let cfg = OsConfig {
        tasks_per_cpu: 0,
        power: PowerConfig {
            enabled: true,
            min_online: 3,
            ..PowerConfig::default()
        },
        ..OsConfig::default()
    };
    let mut s = Sim::new(machine, Default::default(), &cfg, &[], 4);
    s.run_to(ms(8));
    assert_eq!(s.os.maps().online.weight(), 3, "{}", s.os.maps().online);
    assert!(s.os.maps().online.contains(os_model::LogicalCpu(0)));
    let t = s.now;
    assert_eq!(s.os.spawn_tasks(t, 20, &mut s.p, &mut s.probe), 20);
    s.run_to(t + SimDuration::from_millis(6));
    assert_eq!(s.os.maps().online.weight(), 8, "{}", s.os.maps().online);
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}
