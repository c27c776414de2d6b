//! `[expect]`: checkers that must stay silent and figures within bounds, judged both ways.

use std::path::Path;

use scenarios::figures::{FIGURES, value};
use scenarios::{RunOptions, RunResult, Scenario, run};

use crate::os::SMALL_OS;

fn run_with(base: &str, expect: &str) -> RunResult {
    let text = format!("{base}\n{expect}");
    let scn = Scenario::parse(Path::new("expect.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    run(&scn, &RunOptions::default()).unwrap()
}

fn judged(r: &RunResult) -> Vec<(String, bool)> {
    r.expectations
        .iter()
        .map(|e| (e.what.clone(), e.met))
        .collect()
}

#[test]
fn every_figure_has_a_value_and_the_os_ones_count_what_happened() {
    let r = run_with(SMALL_OS, "");
    for (name, _) in FIGURES {
        let v = value(&r, name).unwrap_or_else(|| panic!("figure {name} has no value"));
        assert!(v.is_finite() && v >= 0.0, "{name} = {v}");
    }
    assert_eq!(value(&r, "nonsense"), None);
    // The small OS scenario takes one CPU down and brings it back: two operations that
    // finished ok, two refused.
    assert_eq!(value(&r, "cpu_ops"), Some(2.0));
    assert_eq!(value(&r, "sim_time_ns"), Some(3_000_000.0));
    let h = value(&r, "hit_rate").unwrap();
    assert!(h > 0.0 && h < 1.0, "{h}");
    assert!(value(&r, "cpu_op_max_ns").unwrap() > 0.0);
    assert_eq!(value(&r, "mem_ops"), Some(0.0));
}

#[test]
fn figures_within_and_outside_their_bounds() {
    let r = run_with(
        SMALL_OS,
        r#"
[[expect.figures]]
figure = "cpu_ops"
min = 2
max = 2

[[expect.figures]]
figure = "hit_rate"
min = 0.01
"#,
    );
    assert_eq!(r.exit_code(), 0, "{:?}", judged(&r));
    assert!(r.expectations.iter().all(|e| e.met));
    assert_eq!(r.expectations[0].what, "cpu_ops in 2..=2");
    assert_eq!(r.expectations[0].detail, "2");

    let r = run_with(
        SMALL_OS,
        r#"
[[expect.figures]]
figure = "cpu_ops"
max = 1

[[expect.figures]]
figure = "pages_moved"
min = 1
"#,
    );
    assert_eq!(r.exit_code(), 1);
    assert_eq!(
        judged(&r),
        vec![
            ("cpu_ops <= 1".to_owned(), false),
            ("pages_moved >= 1".to_owned(), false)
        ]
    );
    assert!(r.is_clean(), "only the expectations failed");
    assert_eq!(scenarios::report::verdict(&r), "unmet_expectations");
}

#[test]
fn silent_checkers_are_judged_and_must_have_run() {
    let r = run_with(SMALL_OS, "[expect]\nsilent = [\"CHK-2\", \"CHK-4\"]\n");
    assert_eq!(r.exit_code(), 0, "{:?}", judged(&r));
    assert_eq!(
        judged(&r),
        vec![
            ("CHK-2 stays silent".to_owned(), true),
            ("CHK-4 stays silent".to_owned(), true)
        ]
    );

    // The tester workload runs no OS checker: CHK-4 cannot be said to have stayed silent.
    let tester =
        "duration = \"200us\"\n[machine]\ncells = 2\n[workload]\nkind = \"random_tester\"\n";
    let r = run_with(tester, "[expect]\nsilent = [\"CHK-2\", \"CHK-4\"]\n");
    assert_eq!(
        judged(&r),
        vec![
            ("CHK-2 stays silent".to_owned(), true),
            ("CHK-4 stays silent".to_owned(), false)
        ]
    );
    assert_eq!(r.expectations[1].detail, "it did not run in this scenario");
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn a_defect_that_fires_breaks_a_silence() {
    // The tester catches a cache defect together with CHK-2: asking TESTER to stay silent
    // is an unmet expectation, whatever else the run shows.
    let text = "duration = \"300us\"\ndefects = [\"store_skips_invalidate\"]\n[machine]\ncells = 2\n[workload]\nkind = \"random_tester\"\n";
    let r = run_with(
        text,
        "[expect]\ncheckers = [\"CHK-2\"]\nsilent = [\"TESTER\"]\n",
    );
    let j = judged(&r);
    assert_eq!(j[0], ("CHK-2 fires".to_owned(), true));
    assert_eq!(j[1], ("TESTER stays silent".to_owned(), false));
    assert!(r.expectations[1].detail.contains("violation"));
}

#[test]
fn a_defect_injected_on_the_timeline_acts_only_from_then_on() {
    // SMALL_OS takes cpu6 offline at 1 ms and brings it back at 2 ms; its timeline closes
    // the file.
    let split = SMALL_OS.find("\n[[timeline]]").unwrap();
    let (head, timeline) = SMALL_OS.split_at(split);
    let inject = |at: &str| {
        format!(
            "\n[[timeline]]\nat = \"{at}\"\naction = \"inject_defect\"\ndefect = \"skip_task_migration\"\n"
        )
    };
    // Before the hot-remove: the tasks stay on cpu6's runqueue, CHK-4 sees them.
    let early = format!("{head}{}{timeline}", inject("500us"));
    let scn = Scenario::parse(Path::new("early.toml"), &early).unwrap_or_else(|e| panic!("{e}"));
    let r = run(&scn, &RunOptions::default()).unwrap();
    assert!(r.violations.count("CHK-4") > 0, "{:?}", r.actions);
    assert_eq!(r.actions[0].action, "inject_defect");
    assert_eq!(r.actions[0].target, "skip_task_migration");
    assert!(r.actions[0].result.is_ok());
    // After the CPU is back: nothing it could break happens any more.
    let late = format!("{head}{timeline}{}", inject("2500us"));
    let scn = Scenario::parse(Path::new("late.toml"), &late).unwrap_or_else(|e| panic!("{e}"));
    let r = run(&scn, &RunOptions::default()).unwrap();
    assert_eq!(r.violations.total(), 0, "{:?}", r.violations.kept().first());
    assert_eq!(r.exit_code(), 0);
}
