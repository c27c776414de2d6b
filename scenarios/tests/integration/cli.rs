//! The command line: help, the JSON report's keys, the Chrome trace, sweeps listing failures.

use crate::common::{SMALL, scratch, sim, sim_json};

#[test]
fn help_documents_every_flag() {
    let out = sim(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let h = String::from_utf8_lossy(&out.stdout);
    let guide = std::fs::read_to_string(crate::common::root().join("scenarios/README.md")).unwrap();
    // Every option clap knows, each with its explanation on the following lines, and each
    // explained in the scenario guide too.
    let lines: Vec<&str> = h.lines().collect();
    let mut flags = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let Some(flag) = t
            .split([' ', ','])
            .find(|w| w.starts_with("--"))
            .filter(|_| t.starts_with('-'))
        else {
            continue;
        };
        let explained = lines.get(i + 1).is_some_and(|n| n.trim().len() > 10);
        assert!(explained, "{flag} has no explanation in --help:\n{h}");
        if flag != "--help" && flag != "--version" {
            assert!(
                guide.contains(&format!("{flag} ")) || guide.contains(&format!("{flag}`")),
                "{flag} is not explained in scenarios/README.md"
            );
        }
        flags.push(flag.to_owned());
    }
    for flag in [
        "--seed",
        "--json",
        "--trace",
        "--sysfs-out",
        "--dsdt-out",
        "--seeds",
        "--shard",
        "--quiet",
    ] {
        assert!(
            flags.iter().any(|f| f == flag),
            "{flag} missing from --help:\n{h}"
        );
    }
    assert!(h.contains("Exit status"));
    assert!(h.contains("Examples:"));
}

#[test]
fn json_report_has_the_documented_keys() {
    let d = scratch("json_keys");
    let p = d.join("small.toml");
    std::fs::write(&p, SMALL).unwrap();
    let j = d.join("r.json");
    let (v, _) = sim_json(&[p.to_str().unwrap(), "--seed", "5"], "--json", &j, 0);
    for k in [
        "scenario",
        "seed",
        "trace_hash",
        "violations",
        "expectations",
        "stats",
        "result",
        "timeline",
    ] {
        assert!(!v[k].is_null(), "missing {k}");
    }
    // The top-level keys are exactly the ones the schema in report.rs documents.
    let src =
        std::fs::read_to_string(crate::common::root().join("scenarios/src/report.rs")).unwrap();
    let mut documented: Vec<&str> = src
        .lines()
        .filter_map(|l| l.strip_prefix("//!   \""))
        .filter_map(|l| l.split_once('"').map(|(k, _)| k))
        .collect();
    documented.sort_unstable();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, documented, "top-level keys of the JSON report");
    assert_eq!(
        v["figures"].as_object().unwrap().len(),
        scenarios::figures::FIGURES.len()
    );
    assert_eq!(v["seed"], 5);
    assert_eq!(v["scenario"], "small");
    assert_eq!(v["trace_hash"].as_str().unwrap().len(), 16);
    assert!(v["stats"]["machine"]["loads"].as_u64().unwrap() > 0);
    assert_eq!(v["timeline"][0]["action"], "halt_cpu");
}

#[test]
fn the_trace_is_valid_chrome_trace_json_with_a_track_per_cpu() {
    let d = scratch("trace");
    let p = d.join("small.toml");
    std::fs::write(&p, SMALL).unwrap();
    let t = d.join("trace.json");
    let (v, _) = sim_json(&[p.to_str().unwrap(), "--quiet"], "--trace", &t, 0);
    let evs = v["traceEvents"].as_array().unwrap();
    let cpu_tracks: Vec<&str> = evs
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .filter(|n| n.starts_with("cpu"))
        .collect();
    assert_eq!(cpu_tracks.len(), 32, "{cpu_tracks:?}");
    for e in evs {
        assert!(
            e["ph"].is_string() && e["pid"].is_u64() && e["tid"].is_u64(),
            "{e}"
        );
        if e["ph"] != "M" {
            assert!(e["ts"].is_number(), "{e}");
        }
    }
    assert!(
        evs.iter()
            .any(|e| e["name"] == "halt_cpu" && e["cat"] == "timeline")
    );
}

#[test]
fn a_sweep_lists_failing_seeds_for_replay() {
    let out = sim(&[
        "scenarios/defects/hw_halt_without_flush.toml",
        "--seeds",
        "0..3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("3 of 3 seeds failed"), "{s}");
    assert!(s.contains("--seed N"), "{s}");
    // Each listed seed replays alone to the same run: the hash in its row is the replay's.
    let row = s
        .lines()
        .find(|l| l.split_whitespace().next() == Some("2"))
        .unwrap_or_else(|| panic!("no row for seed 2: {s}"));
    let hash = row.split_whitespace().nth(1).unwrap();
    assert!(
        row.contains("CHK-"),
        "the row names the first violation: {row}"
    );
    let replay = sim(&[
        "scenarios/defects/hw_halt_without_flush.toml",
        "--seed",
        "2",
        "--quiet",
    ]);
    assert_eq!(replay.status.code(), Some(1));
    let r = String::from_utf8_lossy(&replay.stdout);
    assert!(r.contains(&format!("(trace {hash})")), "{r} vs {row}");
}

#[test]
fn dsdt_out_writes_tables_that_iasl_disassembles() {
    let d = scratch("dsdt_out");
    let f = d.join("dsdt.aml");
    let out = sim(&[
        "scenarios/io_smoke.toml",
        "--quiet",
        "--dsdt-out",
        f.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["dsdt.aml", "apic.aml", "srat.aml", "slit.aml", "facp.aml"] {
        let bytes = std::fs::read(d.join(name)).unwrap();
        let sum = bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        assert_eq!(sum, 0, "{name}: table checksum");
    }
    let iasl = std::process::Command::new("iasl")
        .arg("-v")
        .output()
        .is_ok();
    if !iasl {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("CELLSIM_REQUIRE_TOOLS").is_none(),
            "iasl is missing; scripts/test.sh installs it"
        );
        eprintln!("skipping the iasl half: iasl not installed");
        return;
    }
    let out = std::process::Command::new("iasl")
        .args(["-d", "dsdt.aml"])
        .current_dir(&d)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("Error") && !text.contains("Warning"),
        "{text}"
    );
    let dsl = std::fs::read_to_string(d.join("dsdt.dsl")).unwrap();
    assert!(
        dsl.contains("Device (SL01)") && dsl.contains("_PS3"),
        "the slots are there"
    );
}

#[test]
fn the_cell_swap_trace_has_a_row_per_cpu_with_what_runs_and_hot_plug_spans() {
    let d = scratch("trace_cell_swap");
    let t = d.join("trace.json");
    let (v, _) = sim_json(&["scenarios/cell_swap.toml", "--quiet"], "--trace", &t, 0);
    let evs = v["traceEvents"].as_array().unwrap();
    // Process and thread names: which pid is which group.
    let group_of = |pid: u64| {
        evs.iter()
            .find(|e| e["name"] == "process_name" && e["pid"] == pid)
            .and_then(|e| e["args"]["name"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    let os_cpu_rows: std::collections::BTreeSet<u64> = evs
        .iter()
        .filter(|e| e["ph"] == "X" && group_of(e["pid"].as_u64().unwrap()) == "os-cpu")
        .map(|e| e["tid"].as_u64().unwrap())
        .collect();
    assert_eq!(os_cpu_rows.len(), 32, "what each CPU runs: {os_cpu_rows:?}");
    let names: std::collections::BTreeSet<&str> = evs
        .iter()
        .filter(|e| e["ph"] == "X" && group_of(e["pid"].as_u64().unwrap()) == "os-cpu")
        .filter_map(|e| e["name"].as_str())
        .map(|n| n.split([' ', '/']).next().unwrap_or(n))
        .collect();
    for want in ["task", "idle", "migration", "ksoftirqd", "halted"] {
        assert!(names.contains(want), "{want} spans: {names:?}");
    }
    // The four CPUs of cell 3 are halted from their hot-remove until the new board's CPUs
    // come up (about 9.7 ms of the run), and no other CPU is.
    let halted: std::collections::BTreeMap<u64, f64> = evs
        .iter()
        .filter(|e| {
            e["ph"] == "X"
                && e["name"] == "halted"
                && group_of(e["pid"].as_u64().unwrap()) == "os-cpu"
        })
        .map(|e| (e["tid"].as_u64().unwrap(), e["dur"].as_f64().unwrap()))
        .collect();
    assert_eq!(halted.len(), 4, "{halted:?}");
    assert!(
        halted.values().all(|&us| us > 5_000.0 && us < 12_000.0),
        "{halted:?}"
    );
    for e in evs {
        assert!(
            e["ph"].is_string() && e["pid"].is_u64() && e["tid"].is_u64(),
            "{e}"
        );
        if e["ph"] == "X" {
            assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
        }
    }
    let spans = |group: &str| {
        evs.iter()
            .filter(|e| e["ph"] == "X" && group_of(e["pid"].as_u64().unwrap()) == group)
            .filter_map(|e| e["name"].as_str())
            .collect::<Vec<_>>()
    };
    assert!(spans("memory hotplug").contains(&"migrate"));
    assert!(spans("hotplug").contains(&"grace_period"));
    assert!(evs.iter().any(|e| e["name"] == "migrate task"));
    assert!(evs.iter().any(|e| e["name"] == "irq handled"));
}

#[test]
fn no_progress_bar_is_drawn_when_stderr_is_not_a_terminal() {
    // About 1.5 s of host time: past the point where a terminal would get a bar.
    let out = sim(&["scenarios/cpu_offline_online.toml"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("result: CLEAN"));
}
