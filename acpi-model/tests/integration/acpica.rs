//! The exported tables are real ACPI: Debian's `acpica-tools` disassemble them without errors
//! (`iasl -d`) and evaluate the DSDT's methods to the same values as the model (`acpiexec`).
//!
//! The tools are installed by the README's test command. Without them these tests are skipped
//! with a message — unless `CI` or `CELLSIM_REQUIRE_TOOLS` is set (the README's test
//! command, `scripts/test.sh`, sets it), where a missing tool is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use acpi_model::{AcpiValue, Platform};

use crate::common::*;

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("-v").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("CELLSIM_REQUIRE_TOOLS").is_none(),
            "{name} is missing; CI must install acpica-tools (scripts/test.sh does)"
        );
        eprintln!("skipping: {name} not installed (apt-get install acpica-tools)");
    }
    found
}

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `iasl -d` on `file`; returns its output, panicking on failure or reported errors.
fn disassemble(file: &Path) -> String {
    let out = Command::new("iasl")
        .arg("-d")
        .arg(file.file_name().unwrap())
        .current_dir(file.parent().unwrap())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "iasl -d {} failed:\n{text}",
        file.display()
    );
    for bad in ["Error", "error ", "Warning", "Invalid"] {
        assert!(
            !text.contains(bad),
            "iasl -d {} reported `{bad}`:\n{text}",
            file.display()
        );
    }
    let dsl = file.with_extension("dsl");
    std::fs::read_to_string(dsl).unwrap()
}

/// `acpiexec -b "evaluate P1; evaluate P2; …"` on `file`: the integer printed for each path.
fn acpiexec_integers(file: &Path, paths: &[&str]) -> Vec<u64> {
    let batch: Vec<String> = paths.iter().map(|p| format!("evaluate {p}")).collect();
    let out = Command::new("acpiexec")
        .arg("-b")
        .arg(batch.join("; "))
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // acpiexec exits 0 even when an evaluation fails: read what it printed, in order.
    let mut values = Vec::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Evaluating ") {
            current = paths.iter().copied().find(|p| rest.trim() == *p);
        } else if line.contains("failed with status") {
            panic!("acpiexec: {line}\n{text}");
        } else if let (Some(_), Some((_, hex))) = (current, line.split_once("[Integer] =")) {
            values.push(u64::from_str_radix(hex.trim(), 16).unwrap());
            current = None;
        }
    }
    assert_eq!(values.len(), paths.len(), "acpiexec printed:\n{text}");
    values
}

fn model_integer(p: &Platform, path: &str) -> u64 {
    p.read(path).and_then(|v| v.as_integer()).unwrap()
}

#[test]
fn iasl_disassembles_every_table_without_errors() {
    if !tool("iasl") {
        return;
    }
    let (p, _) = booted();
    let d = dir("iasl_tables");
    for (name, bytes) in [
        ("dsdt.aml", p.dsdt()),
        ("apic.aml", p.madt()),
        ("srat.aml", p.srat()),
        ("slit.aml", p.slit()),
        ("facp.aml", p.fadt()),
    ] {
        let f = d.join(name);
        std::fs::write(&f, bytes).unwrap();
        let dsl = disassemble(&f);
        match name {
            "dsdt.aml" => {
                for expect in [
                    "Device (CL07)",
                    "Name (_HID, \"ACPI0004\"",
                    "Device (SL02)",
                    "Name (_HID, EisaId (\"PNP0A08\")",
                    "Name (_HID, EisaId (\"PNP0C80\")",
                    "OperationRegion (FWMB, SystemMemory",
                    "Method (_EJ0, 1, Serialized)",
                    "QWordMemory",
                    "WordBusNumber",
                    "Name (_PRT, Package",
                ] {
                    assert!(dsl.contains(expect), "DSDT lacks `{expect}`");
                }
            }
            "apic.aml" => assert!(dsl.contains("Local SAPIC"), "{dsl}"),
            "srat.aml" => assert!(
                dsl.contains("Memory Affinity") && dsl.contains("Hot Pluggable : 1"),
                "{dsl}"
            ),
            "facp.aml" => {
                let sci = format!("SCI Interrupt : {:04X}", p.io().sci_gsi().0);
                assert!(dsl.contains(&sci), "FADT lacks `{sci}`: {dsl}");
            }
            _ => assert!(dsl.contains("Locality"), "{dsl}"),
        }
    }
}

#[test]
fn acpiexec_evaluates_sta_as_the_model_does_before_and_after_an_eject() {
    if !tool("acpiexec") {
        return;
    }
    let (mut p, mut probe) = booted();
    let d = dir("acpiexec_sta");
    let paths = [
        "\\_SB_.CL02._STA",
        "\\_SB_.CL03._STA",
        "\\_SB_.CL02.MEM0._STA",
        "\\_SB_.IO00.PCI0.SL02._STA",
        "\\_SB_.IO00.PCI0.SL01._STA",
    ];
    let before = d.join("before.aml");
    std::fs::write(&before, p.dsdt()).unwrap();
    let model: Vec<u64> = paths.iter().map(|x| model_integer(&p, x)).collect();
    assert_eq!(
        acpiexec_integers(&before, &paths),
        model,
        "before the eject"
    );
    assert_eq!(model[0], 0x0F);
    p.evaluate(
        t(1),
        "\\_SB_.CL02._EJ0",
        &[AcpiValue::Integer(1)],
        &mut probe,
    )
    .unwrap();
    p.evaluate(t(2), "\\_SB_.IO00.PCI0.SL02._PS3", &[], &mut probe)
        .unwrap();
    let after = d.join("after.aml");
    std::fs::write(&after, p.dsdt()).unwrap();
    let model: Vec<u64> = paths.iter().map(|x| model_integer(&p, x)).collect();
    assert_eq!(acpiexec_integers(&after, &paths), model, "after the eject");
    assert_eq!(model[0], 0, "an ejected cell is not present");
    assert_eq!(
        acpiexec_integers(
            &after,
            &["\\_SB_.IO00.SAPC._GSB", "\\_SB_.IO03.PCI0.SL01._SUN"]
        ),
        vec![0, 13]
    );
}

#[test]
fn acpiexec_runs_the_eject_method_against_the_mailbox() {
    if !tool("acpiexec") {
        return;
    }
    let (p, _) = booted();
    let d = dir("acpiexec_ej0");
    let f = d.join("dsdt.aml");
    std::fs::write(&f, p.dsdt()).unwrap();
    let out = Command::new("acpiexec")
        .arg("-b")
        .arg("evaluate \\_SB_.CL01._EJ0 1")
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Evaluating \\_SB_.CL01._EJ0"), "{text}");
    assert!(text.contains("No object was returned"), "{text}");
    assert!(!text.contains("failed with status"), "{text}");
}
