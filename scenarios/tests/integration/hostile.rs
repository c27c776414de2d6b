//! Hostile input: every malformed scenario exits 2 with one line naming the file, the line and
//! the field — never a panic.

use crate::common::{scratch, sim};

/// (file in scenarios/tests/hostile, line, field) — the field is `None` when the error is not
/// about one field (a syntax error, an empty file).
const CORPUS: &[(&str, Option<usize>, Option<&str>)] = &[
    (
        "inject_os_defect_without_os.toml",
        Some(8),
        Some("timeline[0].defect"),
    ),
    (
        "inject_defect_twice.toml",
        Some(9),
        Some("timeline[0].defect"),
    ),
    (
        "inject_unknown_defect.toml",
        Some(8),
        Some("timeline[0].defect"),
    ),
    (
        "expect_unknown_figure.toml",
        Some(6),
        Some("expect.figures[0].figure"),
    ),
    (
        "expect_figure_bounds_reversed.toml",
        Some(8),
        Some("expect.figures[0].max"),
    ),
    (
        "expect_figure_nan.toml",
        Some(7),
        Some("expect.figures[0].max"),
    ),
    (
        "expect_silent_and_firing.toml",
        Some(7),
        Some("expect.silent[1]"),
    ),
    ("os_unknown_field.toml", Some(5), Some("os.tick_ns")),
    (
        "os_files_without_disk.toml",
        Some(6),
        Some("os.memory.files"),
    ),
    (
        "os_disk_slot_empty.toml",
        Some(10),
        Some("os.memory.disk_slot"),
    ),
    ("os_bad_probability.toml", Some(5), Some("os.sleep_chance")),
    (
        "os_bound_cpu_not_present.toml",
        Some(8),
        Some("os.bound[1].cpu"),
    ),
    (
        "os_action_without_os.toml",
        Some(7),
        Some("timeline[0].action"),
    ),
    ("os_defect_without_os.toml", Some(2), Some("defects[0]")),
    ("export_name_bad.toml", Some(8), Some("timeline[0].name")),
    (
        "expect_report_count_zero.toml",
        Some(7),
        Some("expect.reports[0].count"),
    ),
    ("export_name_twice.toml", Some(13), Some("timeline[1].name")),
    (
        "os_exerciser_action.toml",
        Some(7),
        Some("timeline[0].action"),
    ),
    (
        "expect_unknown_outcome.toml",
        Some(9),
        Some("timeline[0].expect"),
    ),
    (
        "expect_errno_on_hardware.toml",
        Some(9),
        Some("timeline[0].expect"),
    ),
    ("os_workload_cpus.toml", Some(4), Some("workload.cpus")),
    ("unknown_field.toml", Some(4), Some("machine.cels")),
    ("zero_cells.toml", Some(4), Some("machine.cells")),
    (
        "line_not_power_of_two.toml",
        Some(5),
        Some("machine.cache.line"),
    ),
    (
        "memory_not_page_multiple.toml",
        Some(5),
        Some("machine.memory_per_cell"),
    ),
    ("empty.toml", None, None),
    ("bad_type.toml", Some(4), Some("machine.cells")),
    ("huge_number.toml", Some(1), Some("seed")),
    (
        "negative_count.toml",
        Some(4),
        Some("machine.cpus_per_cell"),
    ),
    (
        "workload_cpu_out_of_range.toml",
        Some(5),
        Some("workload.cpus[1]"),
    ),
    (
        "timeline_cpu_out_of_range.toml",
        Some(9),
        Some("timeline[0].cpu"),
    ),
    (
        "timeline_out_of_order.toml",
        Some(11),
        Some("timeline[1].at"),
    ),
    ("timeline_after_end.toml", Some(7), Some("timeline[0].at")),
    ("unknown_action.toml", Some(8), Some("timeline[0].action")),
    ("unknown_defect.toml", Some(2), Some("defects[0]")),
    ("missing_duration.toml", Some(1), Some("duration")),
    ("missing_workload.toml", Some(1), Some("workload")),
    ("syntax_error.toml", Some(3), None),
    ("duplicate_key.toml", Some(2), Some("seed")),
    ("bad_duration.toml", Some(1), Some("duration")),
    (
        "cache_size_not_sets.toml",
        Some(4),
        Some("machine.cache.size"),
    ),
    (
        "present_cell_out_of_range.toml",
        Some(5),
        Some("machine.present_cells[2]"),
    ),
    ("action_missing_cpu.toml", Some(6), Some("timeline[0].cpu")),
    ("unknown_checker.toml", Some(7), Some("expect.checkers[0]")),
    (
        "read_fraction_out_of_range.toml",
        Some(7),
        Some("workload.tester.read_fraction"),
    ),
    ("duplicate_cpu.toml", Some(5), Some("workload.cpus[1]")),
    ("zero_duration.toml", Some(1), Some("duration")),
    (
        "memory_too_large.toml",
        Some(4),
        Some("machine.memory_per_cell"),
    ),
    ("misaligned_addr.toml", Some(9), Some("timeline[0].addr")),
    ("irrelevant_field.toml", Some(10), Some("timeline[0].cpu")),
    ("unknown_workload.toml", Some(4), Some("workload.kind")),
    ("bad_cpu_selection.toml", Some(5), Some("workload.cpus")),
    (
        "tester_too_large.toml",
        Some(7),
        Some("workload.tester.private_lines"),
    ),
    ("page_too_large.toml", Some(4), Some("machine.page_size")),
    (
        "io_two_cards_one_slot.toml",
        Some(10),
        Some("io.device[1].slot"),
    ),
    ("io_overlapping_gsi.toml", Some(5), Some("io.gsi_bases[2]")),
    ("io_window_too_small.toml", Some(6), Some("io.device[0]")),
    (
        "io_irq_cpu_not_a_cpu.toml",
        Some(7),
        Some("io.device[0].irq_cpu"),
    ),
    (
        "io_unknown_card_kind.toml",
        Some(6),
        Some("io.device[0].kind"),
    ),
    (
        "timeline_slot_out_of_range.toml",
        Some(9),
        Some("timeline[0].slot"),
    ),
    (
        "timeline_path_not_in_namespace.toml",
        Some(9),
        Some("timeline[0].path"),
    ),
];

fn check(path: &str, line: Option<usize>, field: Option<&str>) {
    let out = sim(&[path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{path}: {stderr}");
    assert!(out.stdout.is_empty(), "{path}: nothing runs");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{path}: one line: {stderr}"
    );
    let prefix = match line {
        Some(l) => format!("sim: {path}:{l}:"),
        None => format!("sim: {path}:"),
    };
    assert!(
        stderr.starts_with(&prefix),
        "{path}: wanted `{prefix}` in: {stderr}"
    );
    if let Some(f) = field {
        assert!(
            stderr.contains(&format!(" {f}: ")),
            "{path}: field `{f}` in: {stderr}"
        );
    }
}

#[test]
fn every_malformed_scenario_is_refused_precisely() {
    assert!(CORPUS.len() >= 20);
    let dir = std::fs::read_dir(crate::common::root().join("scenarios/tests/hostile")).unwrap();
    let files = dir.count();
    assert_eq!(files, CORPUS.len(), "every corpus file has an expectation");
    for &(file, line, field) in CORPUS {
        check(&format!("scenarios/tests/hostile/{file}"), line, field);
    }
}

#[test]
fn a_missing_file_is_named() {
    let out = sim(&["scenarios/no_such_scenario.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.starts_with("sim: scenarios/no_such_scenario.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn binary_garbage_is_refused() {
    let d = scratch("garbage");
    let p = d.join("garbage.toml");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&p, bytes).unwrap();
    let out = sim(&[p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("garbage.toml:"), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1);
}

#[test]
fn bad_command_lines_exit_2() {
    for args in [
        &["scenarios/coherence_stress.toml", "--seed", "x"][..],
        &["scenarios/coherence_stress.toml", "--seeds", "9..3"][..],
        &[
            "scenarios/coherence_stress.toml",
            "--seeds",
            "0..4",
            "--shard",
            "4/4",
        ][..],
        &["scenarios/coherence_stress.toml", "--shard", "0/4"][..],
        &["scenarios/coherence_stress.toml", "--bogus"][..],
        &[][..],
    ] {
        let out = sim(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn a_sysfs_export_of_a_run_without_an_os_runs_nothing() {
    let out = sim(&[
        "scenarios/coherence_stress.toml",
        "--sysfs-out",
        "/tmp/sysfs",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs no OS"));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_dsdt_out_into_a_missing_directory_runs_nothing() {
    let out = sim(&[
        "scenarios/io_smoke.toml",
        "--dsdt-out",
        "/nonexistent/dir/dsdt.aml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the directory does not exist"));
    let d = scratch("dsdt_name_clash");
    let f = d.join("srat.aml");
    let out = sim(&["scenarios/io_smoke.toml", "--dsdt-out", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

mod property {
    use proptest::prelude::*;
    use scenarios::Scenario;
    use std::path::Path;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        /// Arbitrary text never panics the parser and every error is one line with the file.
        #[test]
        fn arbitrary_text_never_panics(text in "(\\PC|\n){0,300}") {
            if let Err(e) = Scenario::parse(Path::new("x.toml"), &text) {
                let s = e.to_string();
                prop_assert!(s.starts_with("x.toml"));
                prop_assert!(!s.contains('\n'));
            }
        }

        /// Mutations of a valid scenario's values never panic either.
        #[test]
        fn mutated_values_never_panic(cells in any::<i64>(), line in any::<i64>(), dur in any::<i64>()) {
            let text = format!(
                "duration = {dur}\n[machine]\ncells = {cells}\n[machine.cache]\nline = {line}\n\
                 [workload]\nkind = \"random_tester\"\n");
            let _ = Scenario::parse(Path::new("x.toml"), &text);
        }
    }
}
