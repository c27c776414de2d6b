//! The sysfs export read by the tools kernel engineers already use: util-linux's `lsmem` and
//! `lscpu` with `--sysroot`, on a view taken mid-scenario (a cell out, a block and a CPU
//! offline) and on the view at the end, checked against the model.

use std::path::Path;
use std::process::Command;

use scenarios::{RunOptions, Scenario, run};

use crate::common::{root, scratch, sim};

const SCENARIO: &str = "scenarios/tests/sysfs/cell_out.toml";

/// The tool's output with `args`, or `None` when the tool is missing and `CI` is not set
/// (with `CI` or `CELLSIM_REQUIRE_TOOLS` set — `scripts/test.sh` sets it — a missing tool
/// fails the test).
fn tool(name: &str, args: &[&str]) -> Option<String> {
    match Command::new(name).args(args).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{name} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none()
                    && std::env::var_os("CELLSIM_REQUIRE_TOOLS").is_none(),
                "{name} is needed (util-linux): {e}"
            );
            eprintln!("skipping: {name} not found ({e})");
            None
        }
    }
}

/// `lsmem --all --raw` rows: (block, state, node, zone).
fn lsmem(sysroot: &Path) -> Option<Vec<(u32, String, u32, String)>> {
    let root = sysroot.to_str().unwrap();
    let out = tool(
        "lsmem",
        &[
            "--sysroot",
            root,
            "-a",
            "-r",
            "-n",
            "-o",
            "BLOCK,STATE,NODE,ZONES",
        ],
    )?;
    Some(
        out.lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].parse().unwrap(),
                    f[1].to_owned(),
                    f[2].parse().unwrap(),
                    f[3].to_owned(),
                )
            })
            .collect(),
    )
}

/// `lscpu -p` rows of every present CPU: (cpu, node if online, online).
fn lscpu(sysroot: &Path) -> Option<Vec<(u32, Option<u32>, bool)>> {
    let root = sysroot.to_str().unwrap();
    let out = tool("lscpu", &["--sysroot", root, "-a", "-p=CPU,NODE,ONLINE"])?;
    Some(
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0].parse().unwrap(), f[1].parse().ok(), f[2] == "Y")
            })
            .collect(),
    )
}

#[test]
fn lsmem_and_lscpu_read_the_export_as_the_model_has_it() {
    let d = scratch("sysfs_cell_out");
    let out = sim(&[SCENARIO, "--quiet", "--sysfs-out", d.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Mid-scenario: cell 2 (node 2, blocks 8-11, CPUs 8-11) is out; memory5 and cpu13 are
    // offline.
    let mid = d.join("cell2_out");
    if let Some(rows) = lsmem(&mid) {
        let blocks: Vec<u32> = rows.iter().map(|r| r.0).collect();
        let want: Vec<u32> = (0..16).filter(|b| !(8..12).contains(b)).collect();
        assert_eq!(blocks, want, "the removed cell's blocks are gone");
        for (b, state, node, zone) in &rows {
            assert_eq!(*node, b / 4, "memory{b}");
            let want = if *b == 5 { "offline" } else { "online" };
            assert_eq!(state, want, "memory{b}");
            let want = if *b < 4 { "Normal" } else { "Movable" };
            assert_eq!(zone, want, "memory{b}");
        }
    }
    if let Some(rows) = lscpu(&mid) {
        let cpus: Vec<u32> = rows.iter().map(|r| r.0).collect();
        let want: Vec<u32> = (0..16).filter(|c| !(8..12).contains(c)).collect();
        assert_eq!(cpus, want, "the removed cell's CPUs are not present");
        for (c, node, online) in &rows {
            assert_eq!(*online, *c != 13, "cpu{c}");
            if *online {
                assert_eq!(*node, Some(c / 4), "cpu{c}");
            }
        }
    }

    // At the end: the same as the model's own state.
    let scn = Scenario::load(&root().join(SCENARIO)).unwrap();
    let res = run(&scn, &RunOptions::default()).unwrap();
    let os = res.os.as_ref().unwrap();
    let vm = os.vm().unwrap();
    if let Some(rows) = lsmem(&d) {
        assert_eq!(rows.len(), vm.phys.blocks.len());
        for ((b, state, node, zone), blk) in rows.iter().zip(&vm.phys.blocks) {
            assert_eq!(*b, blk.index);
            assert_eq!(state, blk.state.name(), "memory{b}");
            assert_eq!(*node, blk.node, "memory{b}");
            assert_eq!(zone, blk.zone.name(), "memory{b}");
        }
        assert!(rows.iter().any(|r| r.1 == "offline"));
    }
    if let Some(rows) = lscpu(&d) {
        let online = &os.maps().online;
        assert_eq!(rows.len(), os.present().weight());
        for (c, node, up) in &rows {
            let l = os_model::LogicalCpu(*c);
            assert!(os.present().contains(l), "cpu{c}");
            assert_eq!(*up, online.contains(l), "cpu{c}");
            if *up {
                assert_eq!(*node, Some(os.per_cpu()[l.index()].node), "cpu{c}");
            }
        }
    }
}
