//! Every OS defect is caught by its checker (SPEC CHK-9), in the same run that is clean
//! without it.

use acpi_model::hw::MachineConfig;
use os_model::{OpKind, OsConfig, OsDefect, Trigger};
use sim_core::SimDuration;

use crate::common::{Sim, ms, some_cards};

fn offline_run(defect: Option<OsDefect>) -> Sim {
    let cfg = OsConfig {
        // Sleepers outlive the removal: their dirty lines stay in the removed CPU's cache.
        sleep: SimDuration::from_millis(1),
        sleep_chance: 0.01,
        // Many readers of the online map in flight at any time.
        shootdown_chance: 0.03,
        ..OsConfig::default()
    };
    let defects: Vec<OsDefect> = defect.into_iter().collect();
    let mut s = Sim::new(MachineConfig::default(), some_cards(8), &cfg, &defects, 5);
    s.run_to(ms(3));
    let now = s.now;
    for c in [4, 5, 6, 7] {
        s.os.request(now, OpKind::Down, c, Trigger::User).unwrap();
    }
    s.run_to(ms(9));
    s.audit();
    s
}

#[test]
fn the_run_is_clean_without_a_defect() {
    let s = offline_run(None);
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}

#[test]
fn each_defect_fires_its_checker() {
    let cases = [
        (OsDefect::SkipRcuGracePeriod, "CHK-5"),
        (OsDefect::SkipIrqReroute, "CHK-6"),
        (OsDefect::SkipTaskMigration, "CHK-4"),
        (OsDefect::SkipCacheFlushOnCpuRemove, "CHK-1"),
        (OsDefect::HaltBeforeOffline, "CHK-4"),
    ];
    for (d, code) in cases {
        let s = offline_run(Some(d));
        assert!(s.count(code) > 0, "{d} must fire {code}:{}", s.violations());
    }
}
