//! `sim` — run a cellsim scenario.
//!
//! Exit status: 0 clean, 1 a checker fired or an action was refused, 2 bad input.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scenarios::report;
use scenarios::runner::{Progress, RunOptions, run};
use scenarios::scenario::Scenario;
use scenarios::sweep;
use sim_core::SimTime;

/// Run a cellsim scenario: an 8-cell ccNUMA machine (by default) with its checkers.
///
/// Exit status: 0 when every checker stayed silent and every timeline action was accepted,
/// 1 when a checker fired, an action was refused or an expectation was not met, 2 on bad
/// input (usage, unreadable or invalid scenario).
#[derive(Parser, Debug)]
#[command(name = "sim", version, about, after_long_help = EXAMPLES)]
struct Cli {
    /// The scenario file (TOML; see scenarios/README.md).
    scenario: PathBuf,

    /// Seed of every random stream, instead of the file's `seed`.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Write the JSON report here (schema: scenarios/src/report.rs); with --seeds, a JSON
    /// array of per-seed results (seed, trace hash, exit code, first failure, figures).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Write the trace here as Chrome trace-event JSON (open it in the Perfetto UI,
    /// ui.perfetto.dev, or chrome://tracing): a track per CPU showing what runs on it,
    /// hot-plug steps as spans, interrupts, migrations and violations as events. What is
    /// kept is set by the scenario's `[trace]`. Not with --seeds.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,

    /// Write the OS's sysfs view at the end of the run to DIR as a system root
    /// (DIR/sys/devices/system/…, DIR/proc/cpuinfo: `lsmem --sysroot DIR`, `lscpu --sysroot
    /// DIR`), and each view the timeline's `export_sysfs` took to `DIR/<name>/`.
    #[arg(long, value_name = "DIR")]
    sysfs_out: Option<PathBuf>,

    /// Write the DSDT (AML) as it stands at the end of the run to FILE, and the MADT, SRAT,
    /// SLIT and FADT beside it as apic.aml, srat.aml, slit.aml and facp.aml (disassemble with
    /// `iasl -d`).
    #[arg(long, value_name = "FILE")]
    dsdt_out: Option<PathBuf>,

    /// Run every seed of the range A..B (end excluded) in parallel (rayon; RAYON_NUM_THREADS
    /// sets the threads) and list the failing ones with their first violation; the per-seed
    /// results do not depend on the thread count.
    #[arg(long, value_name = "A..B")]
    seeds: Option<String>,

    /// With --seeds: run only the I-th (0 ≤ I < N) of N equal contiguous slices of the
    /// range, for a job array; the slices' --json arrays concatenate into the whole sweep.
    #[arg(long, value_name = "I/N", requires = "seeds")]
    shard: Option<String>,

    /// Print only the final result line (and errors); no progress bar. (The bar is drawn on
    /// standard error only when it is a terminal and the run lasts over a second.)
    #[arg(long)]
    quiet: bool,
}

/// Shown at the end of `sim --help`.
const EXAMPLES: &str = "\
Examples:
  sim scenarios/cell_swap.toml                       run the main scenario, print the summary
  sim scenarios/cell_swap.toml --seed 3 --trace t.json --json r.json
                                                     one seed, its timeline and its report
  sim scenarios/cell_swap.toml --seeds 0..200        a sweep; replay a failing seed with --seed N
  RAYON_NUM_THREADS=1 sim f.toml --seeds 0..50       the same sweep on one thread (same hashes)
  sim f.toml --seeds 0..100000 --shard 3/64 --json s3.json
                                                     one slice of a cluster job array;
                                                     merge: jq -s 'add | sort_by(.seed)' s*.json
  sim scenarios/io_smoke.toml --dsdt-out dsdt.aml && iasl -d dsdt.aml

Every field of a scenario file, the JSON report, the trace and sweeps: scenarios/README.md.";

/// Progress is drawn only for runs that last longer than this (host time).
const SHOW_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A progress bar on standard error, or `None` when it is not a terminal or `--quiet` is
/// given. Hidden until the run has lasted [`SHOW_AFTER`].
fn progress_bar(cli: &Cli, unit: &str, template: &str) -> Option<ProgressBar> {
    if cli.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::hidden());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(unit.to_owned());
    Some(bar)
}

/// Tables written beside the DSDT by `--dsdt-out`.
const SIBLING_TABLES: [(&str, &str); 4] = [
    ("apic.aml", "MADT"),
    ("srat.aml", "SRAT"),
    ("slit.aml", "SLIT"),
    ("facp.aml", "FADT"),
];

fn bad_input(msg: &str) -> ExitCode {
    eprintln!("sim: {msg}");
    ExitCode::from(2)
}

fn write_file(path: &PathBuf, what: &str, bytes: &[u8]) -> Result<(), String> {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("cannot write the {what} to {}: {e}", path.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(f) = &cli.dsdt_out {
        if f.file_name()
            .is_some_and(|n| SIBLING_TABLES.iter().any(|(s, _)| n == *s))
        {
            return bad_input(&format!(
                "--dsdt-out {}: that name is taken by a table written beside the DSDT",
                f.display()
            ));
        }
        if cli.seeds.is_some() {
            return bad_input(
                "--dsdt-out writes one run's tables: it cannot be combined with --seeds",
            );
        }
        let parent = f.parent().filter(|d| !d.as_os_str().is_empty());
        if parent.is_some_and(|d| !d.is_dir()) {
            return bad_input(&format!(
                "--dsdt-out {}: the directory does not exist; nothing was run",
                f.display()
            ));
        }
    }
    let scn = match Scenario::load(&cli.scenario) {
        Ok(s) => s,
        Err(e) => return bad_input(&e.to_string()),
    };
    if let Some(d) = &cli.sysfs_out {
        if scn.file.workload.kind != scenarios::scenario::WorkloadKind::Os {
            return bad_input(&format!(
                "--sysfs-out {}: the sysfs view is the OS's, and {} runs no OS (workload.kind \
                 = \"os\"); nothing was run",
                d.display(),
                cli.scenario.display()
            ));
        }
        if cli.seeds.is_some() {
            return bad_input(
                "--sysfs-out writes one run's view: it cannot be combined with --seeds",
            );
        }
    }
    if let Some(range) = &cli.seeds {
        if cli.seed.is_some() || cli.trace.is_some() {
            return bad_input(
                "--seeds runs many seeds: it cannot be combined with --seed or --trace",
            );
        }
        let mut seeds = match sweep::parse_range(range) {
            Ok(r) => r,
            Err(e) => return bad_input(&format!("--seeds: {e}")),
        };
        if let Some(s) = &cli.shard {
            match sweep::parse_shard(s) {
                Ok((i, n)) => seeds = sweep::shard(seeds, i, n),
                Err(e) => return bad_input(&format!("--shard: {e}")),
            }
        }
        return run_sweep(&cli, &scn, seeds);
    }
    let started = Instant::now();
    let bar = progress_bar(&cli, "simulated", "{bar:40} {msg} ({elapsed})");
    let progress = bar.clone().map(|bar| {
        Progress(std::sync::Arc::new(move |at: SimTime, end: SimTime| {
            if started.elapsed() < SHOW_AFTER {
                return;
            }
            if bar.is_hidden() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            bar.set_length(end.as_nanos().max(1));
            bar.set_position(at.as_nanos());
            bar.set_message(format!("{at} of {end}"));
        }))
    });
    let res = run(
        &scn,
        &RunOptions {
            seed: cli.seed,
            keep_trace: cli.trace.is_some(),
            progress,
            inspect: None,
        },
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let res = match res {
        Ok(r) => r,
        Err(e) => return bad_input(&format!("{}: {e}", cli.scenario.display())),
    };
    if cli.quiet {
        println!(
            "{} seed {}: {} (trace {})",
            res.scenario,
            res.seed,
            report::verdict(&res),
            res.trace_hash
        );
    } else {
        print!("{}", report::summary(&scn, &res));
        if std::io::stderr().is_terminal() {
            eprintln!("(host time {:.2}s)", started.elapsed().as_secs_f64());
        }
    }
    if let Some(p) = &cli.json {
        if let Err(e) = write_file(p, "JSON report", report::json(&scn, &res).as_bytes()) {
            return bad_input(&e);
        }
    }
    if let Some(f) = &cli.dsdt_out {
        let dir = f
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let p = &res.platform;
        let tables = [
            (f.clone(), p.dsdt()),
            (dir.join(SIBLING_TABLES[0].0), p.madt()),
            (dir.join(SIBLING_TABLES[1].0), p.srat()),
            (dir.join(SIBLING_TABLES[2].0), p.slit()),
            (dir.join(SIBLING_TABLES[3].0), p.fadt()),
        ];
        for (path, bytes) in tables {
            if let Err(e) = write_file(&path, "ACPI table", &bytes) {
                return bad_input(&e);
            }
        }
    }
    if let (Some(d), Some(os)) = (&cli.sysfs_out, &res.os) {
        if let Err(e) = scenarios::sysfs_out::write_all(d, &os.sysfs(), &res.sysfs_exports) {
            return bad_input(&e);
        }
    }
    if let Some(p) = &cli.trace {
        let mut buf = Vec::new();
        if let Err(e) = sim_core::trace::chrome::write(&res.records, &mut buf) {
            return bad_input(&format!("cannot encode the trace: {e}"));
        }
        if let Err(e) = write_file(p, "trace", &buf) {
            return bad_input(&e);
        }
    }
    ExitCode::from(res.exit_code())
}

fn run_sweep(cli: &Cli, scn: &Scenario, seeds: std::ops::Range<u64>) -> ExitCode {
    let n = seeds.end - seeds.start;
    let first = seeds.start;
    let started = Instant::now();
    let bar = progress_bar(
        cli,
        "seeds",
        "{bar:40} {pos}/{len} seeds ({elapsed}, {eta} left)",
    );
    let tick = |bar: &ProgressBar| {
        bar.inc(1);
        if started.elapsed() >= SHOW_AFTER && bar.is_hidden() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    };
    if let Some(b) = &bar {
        b.set_length(n);
    }
    let done = bar.as_ref().map(|b| move || tick(b));
    let results = sweep::sweep(scn, seeds, done.as_ref().map(|f| f as &(dyn Fn() + Sync)));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let results = match results {
        Ok(r) => r,
        Err(e) => return bad_input(&format!("{}: {e}", cli.scenario.display())),
    };
    let failing: Vec<_> = results.iter().filter(|r| r.exit_code != 0).collect();
    if !cli.quiet {
        println!(
            "cellsim sweep: {} seeds {}..{} of {}",
            n,
            first,
            first + n,
            scn.name
        );
        if failing.is_empty() {
            println!("  every seed is clean");
        } else {
            println!(
                "  {:>10}  {:>16}  {:>10}  first violation (or refused action, or unmet expectation)",
                "seed", "trace hash", "violations"
            );
            for r in &failing {
                let first = r.why().unwrap_or("");
                println!(
                    "  {:>10}  {:>16}  {:>10}  {first}",
                    r.seed, r.trace_hash, r.violations_total
                );
            }
            println!(
                "  replay one alone with: sim {} --seed N",
                cli.scenario.display()
            );
        }
    }
    println!(
        "result: {} of {} seeds failed (exit {})",
        failing.len(),
        n,
        u8::from(!failing.is_empty())
    );
    if let Some(p) = &cli.json {
        let mut s = serde_json::to_string_pretty(&results).unwrap_or_default();
        s.push('\n');
        if let Err(e) = write_file(p, "JSON report", s.as_bytes()) {
            return bad_input(&e);
        }
    }
    ExitCode::from(u8::from(!failing.is_empty()))
}
