//! `gentest` — the generative whole-system test: random machines × random timelines, run as
//! real scenarios, failures shrunk to minimal scenario files (`scenarios/src/generate.rs`).
//!
//! Exit status: 0 when every case held, 1 when one failed (its minimal scenario is written
//! to the output directory), 2 on bad usage.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use scenarios::generate::{self, Limits};
use scenarios::sweep;

/// Run numbered generated cases — each a random machine with a random timeline — through the
/// same runner as `sim`; the property is that `sim` would exit 0 on each (every checker
/// silent, every action done or refused with a reason and no change). A failing case shrinks
/// to a minimal scenario file, written to --out, that `sim FILE` replays as it is.
#[derive(Parser, Debug)]
#[command(name = "gentest", version, about, after_long_help = EXAMPLES)]
struct Cli {
    /// The cases to run, A..B (end excluded). Case i is the same wherever it runs.
    #[arg(long, value_name = "A..B", default_value = "0..100")]
    cases: String,

    /// Run only the I-th (0 ≤ I < N) of N equal contiguous slices of the cases, for a job
    /// array.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,

    /// Where minimal failing scenarios go (`gen-<case>.toml`).
    #[arg(long, value_name = "DIR", default_value = "gentest-failures")]
    out: PathBuf,

    /// How large machines and timelines get: `full` (up to 16 cells × 8 CPUs, 24 actions)
    /// or `ci` (up to 8 × 4, 14 actions).
    #[arg(long, value_enum, default_value = "full")]
    limits: Size,

    /// Print only the failures and the result line.
    #[arg(long)]
    quiet: bool,

    /// Inject this defect (scenarios/README.md, Defects) into every case: the property must
    /// then fail, and each failure shrinks — the proof that the generative test bites.
    #[arg(long, value_name = "NAME")]
    defect: Option<String>,

    /// Print the scenario file of case N as drawn (before any shrinking) and exit.
    #[arg(long, value_name = "N")]
    show: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Size {
    Full,
    Ci,
}

const EXAMPLES: &str = "\
Examples:
  gentest                                   cases 0..100, full-size machines
  gentest --cases 0..20 --limits ci         what CI runs
  gentest --cases 0..1000000 --shard $SLURM_ARRAY_TASK_ID/64 --out failures/
                                            one slice of a long run on a cluster
  gentest --show 17 > case17.toml           case 17 as a scenario file
  gentest --cases 0..10 --defect skip_tlb_shootdown
                                            the property must fail, and shrink
  sim gentest-failures/gen-17.toml          replay a failure";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let range = match sweep::parse_range(&cli.cases) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gentest: --cases: {e}");
            return ExitCode::from(2);
        }
    };
    let range = match cli.shard.as_deref().map(sweep::parse_shard) {
        None => range,
        Some(Ok((i, n))) => sweep::shard(range, i, n),
        Some(Err(e)) => {
            eprintln!("gentest: --shard: {e}");
            return ExitCode::from(2);
        }
    };
    let limits = match cli.limits {
        Size::Full => Limits::FULL,
        Size::Ci => Limits::CI,
    };
    if let Some(i) = cli.show {
        print!("{}", generate::case(i, limits).to_toml());
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    let n = range.end - range.start;
    // A failure is told on standard error as soon as its minimal file is written; a
    // progress bar is drawn there when it is a terminal.
    let bar = (!cli.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(n);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} cases ({elapsed}, {eta} left) {msg}")
        {
            b.set_style(style);
        }
        b
    });
    let failures = AtomicU64::new(0);
    let done = |o: &generate::CaseOutcome| {
        if let Some(f) = &o.failure {
            let k = failures.fetch_add(1, Ordering::Relaxed) + 1;
            let line = format!(
                "case {} failed ({}); replay: sim {}",
                o.index,
                f.why,
                f.file
                    .as_ref()
                    .map_or_else(|| "(not written)".into(), |p| p.display().to_string())
            );
            match &bar {
                Some(b) => {
                    b.set_message(format!("{k} failed"));
                    b.println(line);
                }
                None => eprintln!("{line}"),
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    };
    let outcomes = generate::explore_range(
        range.clone(),
        limits,
        cli.defect.as_deref(),
        Some(&cli.out),
        Some(&done),
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let mut failed = 0;
    for o in &outcomes {
        match &o.failure {
            None if !cli.quiet => println!("case {}: ok — {}", o.index, o.what),
            None => {}
            Some(f) => {
                failed += 1;
                println!("case {}: FAILED — {}", o.index, o.what);
                println!(
                    "  shrunk from {} to {} timeline entries: {}",
                    f.entries.0,
                    f.entries.1,
                    f.minimal.describe()
                );
                println!("  {}", f.why);
                if let Some(p) = &f.file {
                    println!("  replay: sim {}", p.display());
                }
            }
        }
    }
    println!(
        "result: {failed} of {n} cases failed (cases {}..{}, {:.1} s)",
        range.start,
        range.end,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
