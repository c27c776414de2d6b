//! Same scenario and seed: the same trace hash and a byte-identical report; another seed: a
//! different trace. Sweeps give the same per-seed hashes whatever the thread count.

use std::path::Path;

use scenarios::{RunOptions, Scenario, run};

use crate::common::{SMALL, scratch, sim, sim_env, sim_json};

#[test]
fn same_seed_same_trace_and_report_other_seed_other_trace() {
    let scn = Scenario::parse(Path::new("small.toml"), SMALL).unwrap();
    let a = run(&scn, &RunOptions::default()).unwrap();
    let b = run(&scn, &RunOptions::default()).unwrap();
    let c = run(
        &scn,
        &RunOptions {
            seed: Some(2),
            keep_trace: false,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        scenarios::report::json(&scn, &a),
        scenarios::report::json(&scn, &b)
    );
    assert_eq!(
        scenarios::report::summary(&scn, &a),
        scenarios::report::summary(&scn, &b)
    );
    assert_ne!(a.trace_hash, c.trace_hash);
    // Keeping the records for --trace does not change what is hashed.
    let d = run(
        &scn,
        &RunOptions {
            seed: None,
            keep_trace: true,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(a.trace_hash, d.trace_hash);
}

#[test]
fn the_binary_writes_identical_reports_twice() {
    let d = scratch("determinism");
    let p = d.join("small.toml");
    std::fs::write(&p, SMALL).unwrap();
    let run_json = |name: &str| {
        let j = d.join(name);
        let out = sim(&[p.to_str().unwrap(), "--json", j.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (std::fs::read(j).unwrap(), out.stdout)
    };
    let (j1, o1) = run_json("a.json");
    let (j2, o2) = run_json("b.json");
    assert_eq!(j1, j2);
    assert_eq!(o1, o2);
}

#[test]
fn sweeps_do_not_depend_on_the_thread_count() {
    let d = scratch("sweep_threads");
    let p = d.join("small.toml");
    std::fs::write(&p, SMALL).unwrap();
    let sweep = |threads: &str| {
        let j = d.join(format!("t{threads}.json"));
        let args = [
            p.to_str().unwrap(),
            "--seeds",
            "0..8",
            "--json",
            j.to_str().unwrap(),
        ];
        let out = sim_env(&args, &[("RAYON_NUM_THREADS", threads)]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(j).unwrap()
    };
    let one = sweep("1");
    let two = sweep("2");
    assert_eq!(one, two);
    let v: serde_json::Value = serde_json::from_slice(&one).unwrap();
    let hashes: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trace_hash"].as_str().unwrap())
        .collect();
    let mut uniq = hashes.clone();
    uniq.sort_unstable();
    uniq.dedup();
    assert_eq!(uniq.len(), 8, "every seed is a different run");
}

#[test]
fn shards_partition_the_sweep() {
    let d = scratch("shards");
    let p = d.join("small.toml");
    std::fs::write(&p, SMALL).unwrap();
    let mut merged: Vec<serde_json::Value> = Vec::new();
    for i in 0..3 {
        let j = d.join(format!("s{i}.json"));
        let shard = format!("{i}/3");
        let args = [
            p.to_str().unwrap(),
            "--seeds",
            "10..17",
            "--shard",
            &shard,
            "--quiet",
        ];
        let (v, _) = sim_json(&args, "--json", &j, 0);
        merged.extend(v.as_array().unwrap().iter().cloned());
    }
    let seeds: Vec<u64> = merged.iter().map(|r| r["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, (10..17).collect::<Vec<_>>());
    // The shards' arrays, concatenated, are the whole sweep's.
    let j = d.join("whole.json");
    let args = [p.to_str().unwrap(), "--seeds", "10..17", "--quiet"];
    let (whole, _) = sim_json(&args, "--json", &j, 0);
    assert_eq!(whole, serde_json::Value::Array(merged));
}
