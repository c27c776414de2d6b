//! The generative whole-system test (`scenarios/src/generate.rs`) as CI runs it: random
//! machines × random timelines through the same runner as `sim`, and the proof that it bites
//! — a defect makes it fail, the failure shrinks, and `sim` replays the file it wrote.
//! Long runs: `gentest --cases A..B [--shard I/N]` (README).

use scenarios::generate::{self, Limits};

use crate::common::{scratch, sim};

/// Cases CI runs: small machines (up to 8 cells × 4 CPUs), a couple of minutes on two cores.
const CI_CASES: u64 = 120;

#[test]
fn random_machines_and_timelines_keep_every_promise() {
    let out = scratch("gentest");
    let outcomes = generate::explore_range(0..CI_CASES, Limits::CI, None, Some(&out), None);
    assert_eq!(outcomes.len() as u64, CI_CASES);
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            let f = o.failure.as_ref()?;
            Some(format!(
                "case {} ({}): {}\n  minimal ({} entries): {}",
                o.index,
                o.what,
                f.why,
                f.entries.1,
                f.file
                    .as_ref()
                    .map_or_else(|| "not written".into(), |p| format!("sim {}", p.display()))
            ))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_full_size_case_runs_clean() {
    // One of the largest machines the full space draws (the CI space stops at 8 × 4).
    let (i, c) = (0..200)
        .map(|i| (i, generate::case(i, Limits::FULL)))
        .find(|(_, c)| c.machine.cells >= 12 && c.machine.cpus_per_cell >= 6)
        .unwrap();
    let o = generate::explore(i, Limits::FULL, None, None);
    assert!(
        o.failure.is_none(),
        "case {i} ({}): {:?}",
        c.describe(),
        o.failure
    );
}

#[test]
fn an_injected_defect_fails_the_property_and_shrinks_to_a_file_sim_replays() {
    let out = scratch("gentest_defect");
    let found = (0..16)
        .map(|i| generate::explore(i, Limits::CI, Some("eject_before_offline"), Some(&out)))
        .find(|o| o.failure.is_some())
        .expect("a cell removal that ejects before its memory is offline is caught");
    let f = found.failure.unwrap();
    assert!(f.entries.1 <= f.entries.0, "{f:?}");
    assert!(f.entries.1 >= 1, "a defect needs an action to show: {f:?}");
    let file = f.file.unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("defects = [\"eject_before_offline\"]"),
        "{text}"
    );
    // The file replays as it is: the same failure, exit 1.
    let r = sim(&[file.to_str().unwrap(), "--quiet"]);
    assert_eq!(
        r.status.code(),
        Some(1),
        "{}\n{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    // And without the defect the shrunk case is clean: the defect is what fails it.
    let clean = text.replace("defects = [\"eject_before_offline\"]\n", "");
    let path = out.join("without_defect.toml");
    std::fs::write(&path, clean).unwrap();
    let r = sim(&[path.to_str().unwrap(), "--quiet"]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
}
