//! Paths and process helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs the `sim` binary from the repository root.
pub(crate) fn sim(args: &[&str]) -> Output {
    sim_env(args, &[])
}

/// Runs the `sim` binary from the repository root with extra environment variables.
pub(crate) fn sim_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .output()
        .unwrap()
}

/// A fresh scratch directory for one test.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small, fast scenario on the default machine.
pub(crate) const SMALL: &str = r#"
name = "small"
seed = 1
duration = "60us"

[workload]
kind = "random_tester"
cpus = "all"

[[timeline]]
at = "30us"
action = "halt_cpu"
cpu = 3
"#;

/// Runs `sim` with `args` plus `flag path` (`--json` or `--trace`), checks the exit code
/// (showing stderr when it differs), and returns the JSON the run wrote to `path` with the
/// run's standard output.
pub(crate) fn sim_json(
    args: &[&str],
    flag: &str,
    path: &Path,
    code: i32,
) -> (serde_json::Value, String) {
    let mut all = args.to_vec();
    all.extend([flag, path.to_str().unwrap()]);
    let out = sim(&all);
    assert_eq!(
        out.status.code(),
        Some(code),
        "sim {}: {}",
        all.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (v, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Judges every item in parallel (`Some(why)`: it failed) and returns the failures, in the
/// items' order. With `CELLSIM_FIRST_FAILURE` set (scripts/mutants.sh sets it) it stops at
/// the first failure found: one is enough to kill a mutant.
pub(crate) fn judge_all<T: Sync>(
    items: &[T],
    judge: impl Fn(&T) -> Option<String> + Sync + Send,
) -> Vec<String> {
    use rayon::prelude::*;
    if std::env::var_os("CELLSIM_FIRST_FAILURE").is_some() {
        items.par_iter().find_map_any(judge).into_iter().collect()
    } else {
        items.par_iter().filter_map(judge).collect()
    }
}
