//! Golden runs: every scenario of the library (`scenarios/`, `scenarios/defects/`,
//! `scenarios/regressions/`) at three seeds — its own and the next two — must give exactly
//! the trace hash, exit status, figures and `--json` report recorded in
//! `scenarios/goldens.jsonl`. A refactor keeps them all; a change meant to alter behaviour
//! rewrites the file in the same commit and says why:
//!
//! ```sh
//! CELLSIM_BLESS_GOLDENS=1 cargo test --release -p scenarios --test integration goldens
//! ```
//!
//! The report is pinned by a hash of its canonical JSON (less the `file` key, the only
//! value that depends on where the checkout lives; the report holds no host time); its
//! figures and per-checker counts are kept legibly, so a failure says what moved. The actual
//! reports of the runs that differ are written to `target/goldens-actual/` for a diff
//! against a run of the previous commit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rayon::prelude::*;
use scenarios::{RunOptions, Scenario, report, run};
use serde_json::{Map, Value, json};

use crate::common::root;

/// Seeds per scenario: the file's and the next ones.
const SEEDS: u64 = 3;

const GOLDEN_FILE: &str = "scenarios/goldens.jsonl";

/// The scenario files the goldens cover, relative to the repository root, sorted.
fn library() -> Vec<String> {
    let mut v = Vec::new();
    for dir in ["scenarios", "scenarios/defects", "scenarios/regressions"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") && p.file_name().unwrap() != "Cargo.toml"
            {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                v.push(format!("{dir}/{name}"));
            }
        }
    }
    v.sort();
    v
}

/// One golden run as a JSON object (one line of the golden file).
fn golden_of(file: &str, seed: u64) -> (Value, String) {
    let scn = Scenario::load(&root().join(file)).unwrap_or_else(|e| panic!("{e}"));
    let r = run(
        &scn,
        &RunOptions {
            seed: Some(seed),
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{file} seed {seed}: {e}"));
    let text = report::json(&scn, &r);
    let mut rep: Map<String, Value> = serde_json::from_str(&text).unwrap();
    rep.remove("file");
    let canonical = serde_json::to_string(&Value::Object(rep.clone())).unwrap();
    let mut h = sim_core::hash::StableHasher::new();
    h.str(&canonical);
    let line = json!({
        "file": file,
        "seed": seed,
        "exit_code": rep.get("exit_code").cloned().unwrap_or(Value::Null),
        "trace_hash": rep.get("trace_hash").cloned().unwrap_or(Value::Null),
        "report_hash": format!("{:016x}", h.finish()),
        "violations_per_checker": rep.get("violations_per_checker").cloned().unwrap_or(Value::Null),
        "figures": rep.get("figures").cloned().unwrap_or(Value::Null),
    });
    (line, text)
}

/// Every (file, seed) of the library.
fn runs() -> Vec<(String, u64)> {
    library()
        .into_iter()
        .flat_map(|f| {
            let scn = Scenario::load(&root().join(&f)).unwrap_or_else(|e| panic!("{e}"));
            let s = scn.file.seed;
            (0..SEEDS).map(move |k| (f.clone(), s.wrapping_add(k)))
        })
        .collect()
}

/// What differs between a recorded and an actual golden line, one item per field.
fn differences(want: &Value, got: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["exit_code", "trace_hash", "report_hash"] {
        if want.get(key) != got.get(key) {
            out.push(format!(
                "{key}: {} -> {}",
                want.get(key).unwrap_or(&Value::Null),
                got.get(key).unwrap_or(&Value::Null)
            ));
        }
    }
    for group in ["violations_per_checker", "figures"] {
        let empty = Map::new();
        let w = want.get(group).and_then(Value::as_object).unwrap_or(&empty);
        let g = got.get(group).and_then(Value::as_object).unwrap_or(&empty);
        let keys: std::collections::BTreeSet<&String> = w.keys().chain(g.keys()).collect();
        for k in keys {
            if w.get(k) != g.get(k) {
                out.push(format!(
                    "{group}.{k}: {} -> {}",
                    w.get(k).unwrap_or(&Value::Null),
                    g.get(k).unwrap_or(&Value::Null)
                ));
            }
        }
    }
    out
}

fn actual_dir() -> PathBuf {
    root().join("target").join("goldens-actual")
}

fn report_name(file: &str, seed: u64) -> String {
    format!(
        "{}-{seed}.json",
        file.replace('/', "_").trim_end_matches(".toml")
    )
}

#[test]
fn every_scenario_keeps_its_golden_trace_and_report() {
    let all = runs();
    let got: Vec<(String, u64, Value, String)> = all
        .par_iter()
        .map(|(f, s)| {
            let (line, text) = golden_of(f, *s);
            (f.clone(), *s, line, text)
        })
        .collect();
    let path = root().join(GOLDEN_FILE);
    if std::env::var_os("CELLSIM_BLESS_GOLDENS").is_some() {
        let mut text = String::new();
        for (_, _, line, _) in &got {
            // Keys in a fixed order, the run's identity first, so that a diff reads well.
            let fields: Vec<String> = [
                "file",
                "seed",
                "exit_code",
                "trace_hash",
                "report_hash",
                "violations_per_checker",
                "figures",
            ]
            .iter()
            .map(|k| format!("\"{k}\":{}", serde_json::to_string(&line[*k]).unwrap()))
            .collect();
            text.push_str(&format!("{{{}}}\n", fields.join(",")));
        }
        std::fs::write(&path, text).unwrap();
        eprintln!("goldens: wrote {} runs to {}", got.len(), path.display());
        return;
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} — record the goldens with CELLSIM_BLESS_GOLDENS=1",
            path.display()
        )
    });
    let mut want: BTreeMap<(String, u64), Value> = BTreeMap::new();
    for (n, l) in recorded.lines().enumerate() {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
        let file = v["file"].as_str().unwrap().to_owned();
        let seed = v["seed"].as_u64().unwrap();
        want.insert((file, seed), v);
    }
    let mut failures = Vec::new();
    let _ = std::fs::remove_dir_all(actual_dir());
    for (f, s, line, text) in &got {
        let Some(w) = want.remove(&(f.clone(), *s)) else {
            failures.push(format!(
                "{f} seed {s}: no golden recorded (a new scenario?)"
            ));
            continue;
        };
        let d = differences(&w, line);
        if !d.is_empty() {
            std::fs::create_dir_all(actual_dir()).unwrap();
            let out = actual_dir().join(report_name(f, *s));
            std::fs::write(&out, text).unwrap();
            failures.push(format!(
                "{f} seed {s}:\n    {}\n    (report: {})",
                d.iter()
                    .take(12)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n    "),
                out.display()
            ));
        }
    }
    for ((f, s), _) in want {
        failures.push(format!("{f} seed {s}: recorded, but the scenario is gone"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden runs differ — a change that keeps behaviour must keep them all; one \
         meant to alter it re-records them (CELLSIM_BLESS_GOLDENS=1, see {}) and says why:\n{}",
        failures.len(),
        got.len(),
        file!(),
        failures.join("\n")
    );
}

#[test]
fn a_changed_figure_is_named_in_the_difference() {
    let want = json!({"exit_code": 0, "trace_hash": "a", "report_hash": "b",
        "violations_per_checker": {"CHK-1": 0}, "figures": {"pages_moved": 971.0}});
    let mut got = want.clone();
    got["trace_hash"] = json!("c");
    got["figures"]["pages_moved"] = json!(914.0);
    let d = differences(&want, &got);
    assert_eq!(
        d,
        vec![
            "trace_hash: \"a\" -> \"c\"".to_owned(),
            "figures.pages_moved: 971.0 -> 914.0".to_owned()
        ]
    );
    assert!(differences(&want, &want).is_empty());
    assert_eq!(
        report_name("scenarios/defects/x.toml", 3),
        "scenarios_defects_x-3.json"
    );
}
