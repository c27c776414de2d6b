//! Random sequences of CPU offline/online requests, valid and invalid, while the workload
//! runs: the scheduler, RCU and interrupt checkers stay clean, every refusal is the
//! documented one, and the machine ends in the state the accepted requests asked for.

use acpi_model::hw::MachineConfig;
use os_model::{Accepted, BoundTask, CpuMask, LogicalCpu, OpKind, OsConfig, Trigger};
use proptest::prelude::*;
use sim_core::SimTime;

use crate::common::{Sim, ms, some_cards, us};

/// What the documentation says a request must return, given the online map all accepted
/// requests will leave (`projected`).
fn expected(
    kind: OpKind,
    cpu: u32,
    possible: &CpuMask,
    present: &CpuMask,
    bound: u32,
    projected: &mut CpuMask,
) -> Result<bool, &'static str> {
    let c = LogicalCpu(cpu);
    if !possible.contains(c) || !present.contains(c) {
        return Err("EINVAL");
    }
    match kind {
        OpKind::Down if !projected.contains(c) => Ok(false),
        OpKind::Down if projected.weight() == 1 || cpu == bound => Err("EBUSY"),
        OpKind::Down => {
            projected.clear(c);
            Ok(true)
        }
        OpKind::Up if projected.contains(c) => Ok(false),
        OpKind::Up => {
            projected.set(c);
            Ok(true)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_keep_the_checkers_clean(
        seed in 0u64..1000,
        reqs in prop::collection::vec((any::<bool>(), 0u32..10, 0u64..400), 1..14),
    ) {
        // Three cell slots of two CPUs, the middle one empty: CPUs 0-3 present, 4-5 possible
        // but absent, 6-9 not possible at all. A task is bound to cpu3.
        let machine = MachineConfig {
            cells: 3,
            cpus_per_cell: 2,
            present_cells: Some(vec![0, 2]),
            ..MachineConfig::default()
        };
        let cfg = OsConfig {
            bound: vec![BoundTask { cpu: 3 }],
            shootdown_chance: 0.02,
            ..OsConfig::default()
        };
        let mut s = Sim::new(machine, some_cards(2), &cfg, &[], seed);
        s.run_to(ms(1));
        let possible = s.os.possible().clone();
        let present = s.os.present().clone();
        let mut projected = s.os.maps().online.clone();
        let mut t = s.now;
        for (down, cpu, gap) in reqs {
            t = t.max(s.now) + sim_core::SimDuration::from_micros(gap);
            s.run_to(t);
            let kind = if down { OpKind::Down } else { OpKind::Up };
            let want = expected(kind, cpu, &possible, &present, 3, &mut projected);
            let got = s.os.request(t, kind, cpu, Trigger::User);
            match (want, got) {
                (Ok(true), Ok(Accepted::Queued { .. })) | (Ok(false), Ok(Accepted::NoChange)) => {}
                (Err(errno), Err(e)) => prop_assert_eq!(errno, e.errno(), "{:?} cpu{}: {}", kind, cpu, e),
                (w, g) => prop_assert!(false, "{:?} cpu{}: expected {:?}, got {:?}", kind, cpu, w, g),
            }
        }
        // Let every queued operation finish.
        let end = t + sim_core::SimDuration::from_millis(8);
        s.run_to(end);
        prop_assert!(s.os.hotplug().is_idle());
        prop_assert_eq!(s.os.maps().online.to_string(), projected.to_string());
        for op in s.os.hotplug().done() {
            prop_assert_eq!(&op.result, &Some(Ok(())), "op {}", op.id);
        }
        s.audit();
        for code in ["CHK-1", "CHK-2", "CHK-3", "CHK-4", "CHK-5", "CHK-6"] {
            prop_assert_eq!(s.count(code), 0, "{}:{}", code, s.violations());
        }
        let _ = (us(0), SimTime::ZERO);
    }
}
