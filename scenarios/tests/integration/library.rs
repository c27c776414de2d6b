//! The scenario library: clean scenarios (and the regressions in `scenarios/regressions/`)
//! exit 0; defect scenarios exit 1 and the checkers they name fire.

use scenarios::{RunOptions, Scenario, run};

use crate::common::root;

fn all_scenarios() -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for dir in ["scenarios", "scenarios/defects", "scenarios/regressions"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") && p.file_name().unwrap() != "Cargo.toml"
            {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

#[test]
fn every_scenario_in_the_library_behaves() {
    let files = all_scenarios();
    assert!(files.len() >= 14, "{files:?}");
    assert!(
        files
            .iter()
            .filter(|p| p.parent().unwrap().ends_with("regressions"))
            .count()
            >= 3,
        "the regressions of issue 14 are kept and run"
    );
    // In parallel: the library is the test of every mutant in scripts/mutants.sh.
    let judge = |p: &std::path::PathBuf| {
        let scn = Scenario::load(p).unwrap_or_else(|e| panic!("{e}"));
        let r = run(&scn, &RunOptions::default()).unwrap();
        let why = if p.parent().unwrap().ends_with("defects") {
            if r.exit_code() != 1 {
                Some("a defect scenario must fail".to_string())
            } else if scn.file.expect.checkers.is_empty() {
                Some("names no checker".to_string())
            } else if !r.expectations_met() {
                Some(format!("{:?}", r.expectations))
            } else if r.unexpected_violations != 0 {
                Some(format!(
                    "{} reports it does not name",
                    r.unexpected_violations
                ))
            } else {
                None
            }
        } else {
            (r.exit_code() != 0)
                .then(|| format!("{:?} {:?}", r.violations.kept().first(), r.actions))
        };
        why.map(|why| format!("{}: {why}", p.display()))
    };
    let failures = crate::common::judge_all(&files, judge);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_binary_reports_the_checker_of_a_defect() {
    let out = crate::common::sim(&[
        "scenarios/defects/cache_store_skips_invalidate.toml",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let d = crate::common::scratch("defect_json");
    let j = d.join("r.json");
    let args = ["scenarios/defects/hw_halt_without_flush.toml"];
    let (v, text) = crate::common::sim_json(&args, "--json", &j, 1);
    assert!(text.contains("CHK-1 no-access-after-remove: "), "{text}");
    assert!(v["violations_per_checker"]["CHK-1"].as_u64().unwrap() > 0);
    assert!(v["violations_per_checker"]["CHK-2"].as_u64().unwrap() > 0);
    let first = &v["violations"][0];
    for k in ["time_ns", "checker", "agent", "target", "message"] {
        assert!(!first[k].is_null(), "violation field {k}");
    }
    assert_eq!(v["expectations"][0]["met"], true);
}

#[test]
fn the_documented_examples_are_valid_scenarios() {
    let doc = std::fs::read_to_string(root().join("scenarios/README.md")).unwrap();
    let mut examples = Vec::new();
    let mut rest = doc.as_str();
    while let Some(i) = rest.find("```toml\n") {
        let body = &rest[i + "```toml\n".len()..];
        let len = body.find("```").unwrap();
        examples.push(&body[..len]);
        rest = &body[len..];
    }
    assert_eq!(examples.len(), 2);
    for (i, example) in examples.iter().enumerate() {
        let scn = Scenario::parse(std::path::Path::new("README.md"), example)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scn.file.timeline.len(), 4);
        if i == 1 {
            let r = run(&scn, &RunOptions::default()).unwrap();
            assert_eq!(r.exit_code(), 0, "{:?}", r.actions);
        }
        // Every key of the example is documented in a table row of the same file.
        for line in example.lines() {
            let Some((key, _)) = line.split_once(" = ") else {
                continue;
            };
            let key = key.trim();
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "`{key}` is not documented"
            );
        }
    }
}

/// The keys of the rows of the first table after `heading` in the scenario guide.
fn documented_keys(doc: &str, heading: &str) -> Vec<String> {
    let start = doc.find(heading).unwrap_or_else(|| panic!("{heading}"));
    let rest = &doc[start + heading.len()..];
    let end = rest.find("\n#").unwrap_or(rest.len());
    rest[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(k, _)| k.to_owned()))
        .collect()
}

#[test]
fn every_os_key_of_every_table_is_documented_and_nothing_else() {
    let doc = std::fs::read_to_string(root().join("scenarios/README.md")).unwrap();
    // Every key serialised (an optional one only when set).
    let all = os_model::OsConfig {
        cells: Some(vec![0]),
        ..os_model::OsConfig::default()
    };
    let os = serde_json::to_value(all).unwrap();
    let mut keys: Vec<String> = os.as_object().unwrap().keys().cloned().collect();
    keys.retain(|k| !["memory", "pci", "ras", "power"].contains(&k.as_str()));
    keys.sort();
    let mut rows = documented_keys(&doc, "## `[os]`");
    rows.sort();
    assert_eq!(rows, keys, "[os] table of scenarios/README.md");
    let mut keys: Vec<String> = os["memory"].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    let mut rows = documented_keys(&doc, "### `[os.memory]`");
    rows.sort();
    assert_eq!(rows, keys, "[os.memory] table of scenarios/README.md");
    for table in ["pci", "ras", "power"] {
        let mut keys: Vec<String> = os[table].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut rows = documented_keys(&doc, &format!("### `[os.{table}]`"));
        rows.sort();
        assert_eq!(rows, keys, "[os.{table}] table of scenarios/README.md");
    }
    let defects = documented_keys(&doc, "## Defects");
    for d in os_model::OsDefect::ALL {
        assert!(
            defects.contains(&d.name().to_owned()),
            "defect {d} undocumented"
        );
    }
}

#[test]
fn expected_reports_are_exact_both_ways() {
    let path = root().join("scenarios/defects/os_leak_bar_on_remove.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let outcome = |text: &str| {
        let scn = Scenario::parse(&path, text).unwrap();
        let r = run(&scn, &RunOptions::default()).unwrap();
        (r.exit_code(), r.unexpected_violations, r.expectations_met())
    };
    // Both leaked windows (MMIO and I/O port) are reported and expected: a defect caught,
    // exactly as the file says (exit 1: the scenario shows a failure).
    assert_eq!(outcome(&text), (1, 0, true));
    // Without the entry, both reports are unexpected.
    let entry = "\n[[expect.reports]]\nchecker = \"CHK-7\"\nmessage = \"no card's BAR holds it (read from configuration space), the range was never released\"\n";
    assert!(text.contains(entry));
    assert_eq!(outcome(&text.replace(entry, "")), (1, 2, true));
    // A count that is not what happened: the expectation is not met.
    let once = text.replace(entry, &format!("{entry}count = 1\n"));
    assert_eq!(outcome(&once), (1, 0, false));
}

/// The fields a table of the scenario language accepts, as the parser itself lists them when
/// it refuses an unknown key in that table.
fn accepted_fields(header: &str) -> Vec<String> {
    let text = format!("{header}\nzzz_not_a_field = 1\n");
    let e = Scenario::parse(std::path::Path::new("probe.toml"), &text)
        .expect_err("an unknown key is refused")
        .to_string();
    let list = e
        .split_once("expected one of ")
        .or_else(|| e.split_once("expected "))
        .unwrap_or_else(|| panic!("{header}: {e}"))
        .1;
    list.replace(" or ", ", ")
        .split(", ")
        .map(|k| k.trim().trim_matches('`').to_owned())
        .collect()
}

#[test]
fn every_field_of_every_table_is_documented() {
    let doc = std::fs::read_to_string(root().join("scenarios/README.md")).unwrap();
    // (TOML header that opens the table, heading of its section in the guide, whether the
    // section holds only the table of its keys)
    let tables = [
        ("", "## Top level", false),
        ("[machine]", "## `[machine]`", false),
        ("[machine.cache]", "### `[machine.cache]`", true),
        ("[machine.latency]", "### `[machine.latency]`", true),
        ("[io]", "## `[io]`", true),
        ("[[io.device]]", "### `[[io.device]]`", true),
        ("[workload]", "## `[workload]`", false),
        ("[workload.tester]", "### `[workload.tester]`", true),
        ("[workload.io]", "### `[workload.io]`", true),
        ("[os]", "## `[os]`", false),
        ("[os.memory]", "### `[os.memory]`", true),
        ("[os.pci]", "### `[os.pci]`", true),
        ("[os.ras]", "### `[os.ras]`", true),
        ("[os.power]", "### `[os.power]`", true),
        ("[checks]", "## `[checks]`", true),
        ("[trace]", "## `[trace]`", true),
        ("[[timeline]]", "## `[[timeline]]`", false),
        ("[expect]", "## `[expect]`", false),
        ("[[expect.reports]]", "### `[[expect.reports]]`", true),
        ("[[expect.figures]]", "### `[[expect.figures]]`", true),
    ];
    for (header, heading, only) in tables {
        let fields = accepted_fields(header);
        assert!(!fields.is_empty(), "{header}");
        let rows = documented_keys(&doc, heading);
        // A key that opens a sub-table is documented by its own section.
        let own_section = |k: &str| {
            let path = if header.is_empty() {
                k.to_owned()
            } else {
                format!("{}.{k}", header.trim_matches(['[', ']']))
            };
            doc.contains(&format!("`[{path}]`")) || doc.contains(&format!("`[[{path}]]`"))
        };
        for f in &fields {
            assert!(
                rows.contains(f) || own_section(f),
                "`{f}` of {header:?} is not documented under {heading}"
            );
        }
        if only {
            for r in &rows {
                assert!(
                    fields.contains(r),
                    "{heading} documents `{r}`, which {header:?} does not accept"
                );
            }
        }
    }
    // Every timeline action and every defect has its row.
    let variants = |text: &str| {
        let e = Scenario::parse(std::path::Path::new("probe.toml"), text)
            .expect_err("an unknown name is refused")
            .to_string();
        let list = e
            .split_once("expected one of ")
            .unwrap_or_else(|| panic!("{e}"))
            .1;
        list.split(", ")
            .map(|k| k.trim().trim_matches('`').to_owned())
            .collect::<Vec<_>>()
    };
    let actions = variants(
        "duration = \"1ms\"\n[workload]\nkind = \"os\"\n[[timeline]]\nat = \"0ns\"\naction = \"zzz\"\n",
    );
    assert!(actions.len() >= 30, "{actions:?}");
    let rows = documented_keys(&doc, "## `[[timeline]]`");
    for a in &actions {
        assert!(rows.contains(a), "action `{a}` is not documented");
    }
    let defects = variants("duration = \"1ms\"\ndefects = [\"zzz\"]\n[workload]\nkind = \"os\"\n");
    let rows = documented_keys(&doc, "## Defects");
    for d in &defects {
        assert!(rows.contains(d), "defect `{d}` is not documented");
    }
    // Every figure of `[[expect.figures]]` is listed, and nothing else.
    let mut figures: Vec<String> = scenarios::figures::FIGURES
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    figures.sort();
    let mut rows = documented_keys(&doc, "### Figures");
    rows.sort();
    assert_eq!(rows, figures, "### Figures of scenarios/README.md");
}
