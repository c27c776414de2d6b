//! The race the grace period exists for: a reader that read the online map before a CPU was
//! removed from it keeps sending IPIs from that map. With the grace period the CPU halts only
//! after the reader is done; without it (the defect), an IPI reaches the halted CPU.

use acpi_model::hw::MachineConfig;
use os_model::ops::FlowKind;
use os_model::{LogicalCpu, OpKind, OsConfig, OsDefect, OsEvent, Step, Trigger};
use sim_core::SimDuration;

use crate::common::{Sim, ms};

/// Takes cpu31 down; the moment its kthreads are stopped (just before the new online map is
/// published), cpu1 starts a TLB shootdown to every CPU of the map it reads — cpu31 last.
/// Returns the IPIs sent to cpu31 after it halted, and the simulation.
fn race(defect: bool) -> (usize, Sim) {
    let cfg = OsConfig {
        shootdown_chance: 0.0,
        ipi_send: SimDuration::from_micros(4),
        ..OsConfig::default()
    };
    let defects = if defect {
        vec![OsDefect::SkipRcuGracePeriod]
    } else {
        Vec::new()
    };
    let mut s = Sim::new(
        MachineConfig::default(),
        acpi_model::hw::IoConfig::default(),
        &cfg,
        &defects,
        11,
    );
    s.run_to(ms(3));
    let now = s.now;
    s.os.request(now, OpKind::Down, 31, Trigger::User).unwrap();
    let at = s
        .run(ms(6), |e| {
            matches!(
                e,
                OsEvent::OpStep {
                    flow: FlowKind::Cpu,
                    name,
                    ..
                } if *name == Step::StopKthreads.name()
            )
        })
        .unwrap();
    let targets =
        s.os.tlb_shootdown(at, LogicalCpu(1), &mut s.p, &mut s.probe)
            .unwrap();
    assert_eq!(
        targets, 31,
        "the reader holds a map in which cpu31 is online"
    );
    s.run_to(ms(6));
    let halted = s
        .log
        .iter()
        .position(|(_, e)| matches!(e, OsEvent::CpuHalted { cpu, .. } if cpu.0 == 31))
        .unwrap();
    let after = s.log[halted..]
        .iter()
        .filter(|(_, e)| matches!(e, OsEvent::IpiSent { to, .. } if to.0 == 31))
        .count();
    (after, s)
}

#[test]
fn with_the_grace_period_no_ipi_reaches_the_halted_cpu() {
    let (after, mut s) = race(false);
    assert_eq!(after, 0);
    let op = s.os.hotplug().done().last().unwrap().clone();
    let gp = op
        .steps
        .iter()
        .find(|x| x.step == Step::GracePeriod)
        .unwrap();
    assert!(
        gp.duration >= SimDuration::from_micros(100),
        "the grace period waited for the reader's 31 IPIs: {}",
        gp.duration
    );
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}

#[test]
fn without_it_the_reader_sends_an_ipi_to_the_halted_cpu_and_the_checkers_say_so() {
    let (after, s) = race(true);
    assert!(after >= 1, "the stale reader IPIs cpu31 after its HALT");
    assert!(
        s.count("CHK-5") > 0,
        "RCU: map freed under a reader, used after free"
    );
    let lost = s.probe.violations.kept().iter().any(|v| {
        v.checker.code == "CHK-6" && v.message.contains("cpu31") && v.message.contains("halted")
    });
    assert!(
        lost,
        "the hardware reports the IPI to a halted CPU:{}",
        s.violations()
    );
}
