//! The OS workload through the scenario runner: determinism, per-action expectations, the
//! hot-plug report, and one defect scenario per OS defect.

use std::path::Path;

use os_model::OsDefect;
use scenarios::{RunOptions, Scenario, run};

use crate::common::{root, scratch, sim_json};

/// A small OS scenario: two cells, one CPU taken down and brought back, refusals expected.
pub(crate) const SMALL_OS: &str = r#"
name = "small_os"
seed = 3
duration = "3ms"

[machine]
cells = 2

[[io.device]]
subsystem = 0
slot = 0
kind = "nic"

[workload]
kind = "os"

[os]
bound = [{ cpu = 1 }]

[[timeline]]
at = "1ms"
action = "cpu_offline"
cpu = 6

[[timeline]]
at = "1ms"
action = "cpu_offline"
cpu = 1
expect = "EBUSY"

[[timeline]]
at = "1ms"
action = "cpu_online"
cpu = 40
expect = "EINVAL"

[[timeline]]
at = "2ms"
action = "cpu_online"
cpu = 6
expect = "ok"
"#;

#[test]
fn an_os_run_is_deterministic_and_clean() {
    let scn = Scenario::parse(Path::new("small_os.toml"), SMALL_OS).unwrap();
    let a = run(&scn, &RunOptions::default()).unwrap();
    let b = run(&scn, &RunOptions::default()).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        scenarios::report::json(&scn, &a),
        scenarios::report::json(&scn, &b)
    );
    assert_eq!(
        a.exit_code(),
        0,
        "{:?} {:?}",
        a.violations.kept().first(),
        a.actions
    );
    let c = run(
        &scn,
        &RunOptions {
            seed: Some(9),
            keep_trace: false,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_ne!(a.trace_hash, c.trace_hash);
    let os = a.os.as_ref().unwrap();
    assert_eq!(os.maps().online.to_string(), "0-7");
    let summary = scenarios::report::summary(&scn, &a);
    for want in [
        "CPU hot-plug:",
        "op 7 down cpu6",
        "mark_inactive",
        "grace_period",
        "tasks migrated",
        "IRQs re-routed",
        "refused as expected (EBUSY",
        "CHK-4 scheduler: clean",
        "CHK-5 rcu: clean",
    ] {
        assert!(summary.contains(want), "{want} missing from:\n{summary}");
    }
}

#[test]
fn an_unmet_action_expectation_fails_the_run() {
    let text = SMALL_OS.replace("expect = \"EBUSY\"", "expect = \"ok\"");
    let scn = Scenario::parse(Path::new("x.toml"), &text).unwrap();
    let r = run(&scn, &RunOptions::default()).unwrap();
    assert!(r.violations.is_empty());
    assert_eq!(r.exit_code(), 1);
    assert_eq!(scenarios::report::verdict(&r), "refused_actions");
    assert!(scenarios::report::summary(&scn, &r).contains("REFUSED, NOT AS EXPECTED"));
}

#[test]
fn the_json_report_has_every_hot_plug_step() {
    let d = scratch("os_json");
    let p = d.join("small_os.toml");
    std::fs::write(&p, SMALL_OS).unwrap();
    let j = d.join("r.json");
    let (v, _) = sim_json(&[p.to_str().unwrap(), "--quiet"], "--json", &j, 0);
    let ops = v["os"]["hotplug"].as_array().unwrap();
    let down = ops.iter().find(|o| o["kind"] == "down").unwrap();
    let steps: Vec<&str> = down["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "mark_inactive",
            "migrate_tasks",
            "migrate_irqs",
            "migrate_work",
            "stop_kthreads",
            "publish_offline",
            "grace_period",
            "flush_cache",
            "halt"
        ]
    );
    assert!(down["duration_ns"].as_u64().unwrap() > 0);
    assert!(down["tasks_migrated"].is_u64() && down["irqs_rerouted"].is_u64());
    let refused = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["errno"] == "EBUSY")
        .unwrap();
    assert_eq!(refused["as_expected"], true);
}

#[test]
fn every_os_defect_has_a_scenario_that_names_its_checker() {
    for d in OsDefect::ALL {
        let p = root().join(format!("scenarios/defects/os_{}.toml", d.name()));
        let scn = Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            scn.file.defects.iter().any(|x| x.os() == Some(d)),
            "{} injects {d}",
            p.display()
        );
        assert!(!scn.file.expect.checkers.is_empty());
    }
}
