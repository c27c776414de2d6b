//! The long-run commands, run short: `soak` swaps a cell over and over and must find the
//! kernel back where it started every cycle (and fail when a defect breaks a swap); `gentest`
//! runs generated cases through the runner and says how many failed.

use std::process::Command;

use crate::common::{root, scratch};

fn soak(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_short_soak_comes_back_to_the_start_every_cycle() {
    let (code, out) = soak(&["--cycles", "12", "--every", "4"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("12 cycles (12 cell removals done)"), "{out}");
    assert!(
        out.contains("result: clean (0 violations, 0 cycles whose state was not the start's)"),
        "{out}"
    );
    // RSS and the kept history are reported at the last cycle.
    assert!(out.contains("RSS after 12 cycles"), "{out}");
}

#[test]
fn a_soak_under_a_defect_fails() {
    // Firmware ejects the cell before the OS has emptied it: the checkers fire and the
    // soak must say so, not report a clean run.
    let text = std::fs::read_to_string(root().join("scenarios/soak.toml")).unwrap();
    let text = text.replacen(
        "seed = 1\n",
        "seed = 1\ndefects = [\"eject_before_offline\"]\n",
        1,
    );
    let f = scratch("soak_defect").join("soak.toml");
    std::fs::write(&f, text).unwrap();
    let (code, out) = soak(&["--scenario", f.to_str().unwrap(), "--cycles", "3"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("result: FAILED"), "{out}");
    assert!(out.contains("first violation:"), "{out}");
}

#[test]
fn gentest_runs_cases_and_counts_failures() {
    let dir = scratch("gentest_cli");
    let out = Command::new(env!("CARGO_BIN_EXE_gentest"))
        .args(["--cases", "3..6", "--limits", "ci", "--quiet", "--out"])
        .arg(&dir)
        .current_dir(root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("result: 0 of 3 cases failed (cases 3..6"),
        "{text}"
    );
    // A case is a scenario file `sim` reads as it is.
    let shown = Command::new(env!("CARGO_BIN_EXE_gentest"))
        .args(["--show", "4", "--limits", "ci"])
        .output()
        .unwrap();
    let toml = String::from_utf8_lossy(&shown.stdout);
    assert!(
        toml.contains("[machine]") && toml.contains("[[timeline]]"),
        "{toml}"
    );
}
