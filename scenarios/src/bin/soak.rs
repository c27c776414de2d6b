//! `soak` — thousands of cell swaps in one run, every checker on: the state must come back
//! after every cycle and the host's memory must stay flat.
//!
//! Exit status: 0 when every cycle came back to the start and the run is clean, 1 otherwise,
//! 2 on bad usage.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Parser;
use scenarios::runner::{Inspect, RunOptions, run};
use scenarios::scenario::Scenario;

/// Swap one cell out and back in, cycle after cycle, in one run of a scenario's machine and
/// workload (scenarios/soak.toml), with every checker on. At the start of each cycle the
/// kernel's state — CPU maps, memory blocks, each zone's pages, the free pages in all, the
/// tasks — must be what it was at the start, and each node's free pages what they were after
/// the first cycle (which moved the cell's pages to its neighbours for good); the host's RSS
/// is printed as the cycles go by.
#[derive(Parser, Debug)]
#[command(name = "soak", version, about)]
struct Cli {
    /// The machine and workload (a scenario file; its timeline is replaced).
    #[arg(long, default_value = "scenarios/soak.toml")]
    scenario: PathBuf,
    /// Cell swaps.
    #[arg(long, default_value_t = 1000)]
    cycles: u64,
    /// The cell swapped.
    #[arg(long, default_value_t = 1)]
    cell: u16,
    /// Simulated microseconds per cycle.
    #[arg(long, default_value_t = 6000)]
    period_us: u64,
    /// Microseconds into the cycle at which the board is pulled (the removal must be over).
    #[arg(long, default_value_t = 4500)]
    pull_us: u64,
    /// Print a line every this many cycles.
    #[arg(long, default_value_t = 100)]
    every: u64,
}

/// What must come back after a cycle, as the kernel keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    online: String,
    active: String,
    present: String,
    blocks_online: usize,
    zones: Vec<(u32, String, u64)>,
    free_pages: u64,
    tasks: usize,
}

fn state_of(os: &os_model::Os) -> State {
    let vm = os.vm();
    let zones = vm.map_or(Vec::new(), |v| {
        v.phys
            .zone_summary()
            .into_iter()
            .map(|((n, z), (present, _))| (n, z.name().to_owned(), present))
            .collect()
    });
    State {
        online: os.maps().online.to_string(),
        active: os.maps().active.to_string(),
        present: os.present().to_string(),
        blocks_online: vm.map_or(0, |v| {
            v.phys
                .blocks
                .iter()
                .filter(|b| b.state == os_model::mm::BlockState::Online)
                .count()
        }),
        zones,
        free_pages: vm.map_or(0, |v| v.phys.free_pages()),
        tasks: os.tasks().len(),
    }
}

/// Free pages of each node, for the progress lines.
fn free_per_node(os: &os_model::Os) -> String {
    let Some(v) = os.vm() else {
        return String::new();
    };
    let mut per: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    for ((n, _), (_, free)) in v.phys.zone_summary() {
        *per.entry(n).or_default() += free;
    }
    per.iter()
        .map(|(n, f)| format!("node{n} {f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The host's resident memory, from /proc (0 where there is none).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Host bytes the kernel's kept history holds — the report of every finished CPU, memory and
/// PCI operation with its step records, and the refusal log — which a run keeps by design (the
/// JSON report lists it) and which grows with every cycle. Counted from the vectors' capacities
/// and the strings' lengths, so it is a floor: allocator overhead comes on top.
fn history_bytes(os: &os_model::Os) -> usize {
    use std::mem::size_of_val;
    let cpu = os.hotplug().done();
    let mem = os.mem_hotplug().done();
    let pci = os.pci_hotplug().done();
    let refusals = os.refusals();
    let strings = |notes: &mut dyn Iterator<Item = usize>| notes.sum::<usize>();
    size_of_val(cpu)
        + size_of_val(mem)
        + size_of_val(pci)
        + size_of_val(refusals)
        + cpu
            .iter()
            .map(|o| o.steps.capacity() * size_of::<os_model::hotplug::StepRecord>())
            .sum::<usize>()
        + strings(
            &mut cpu
                .iter()
                .flat_map(|o| o.steps.iter().map(|s| s.note.capacity())),
        )
        + mem
            .iter()
            .map(|o| {
                o.steps.capacity() * size_of::<os_model::memhotplug::MemStepRecord>()
                    + o.blocks.capacity() * 4
                    + o.path.as_ref().map_or(0, String::capacity)
            })
            .sum::<usize>()
        + strings(
            &mut mem
                .iter()
                .flat_map(|o| o.steps.iter().map(|s| s.note.capacity())),
        )
        + pci
            .iter()
            .map(|o| o.steps.capacity() * size_of::<os_model::pcihp::PciStepRecord>())
            .sum::<usize>()
        + strings(
            &mut refusals
                .iter()
                .map(|r| r.target.capacity() + r.error.capacity()),
        )
}

#[derive(Default)]
struct Watch {
    start: Option<State>,
    /// Free pages per node after the first cycle: the first swap moves the cell's pages to
    /// its neighbours for good; every later cycle must leave each node exactly so.
    steady: Option<String>,
    mismatches: Vec<String>,
    lines: Vec<String>,
    /// (cycle, RSS in MiB, bytes of kept history).
    rss: Vec<(u64, f64, usize)>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let text = match std::fs::read_to_string(&cli.scenario) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("soak: {}: {e}", cli.scenario.display());
            return ExitCode::from(2);
        }
    };
    if cli.pull_us + 1000 > cli.period_us || cli.cycles == 0 {
        eprintln!("soak: --pull-us must leave 1 ms of the period for the new board to come in");
        return ExitCode::from(2);
    }
    // The cycles: an audit (the state is compared there), the eject request, the pull once
    // firmware has powered the board off, a new board, power, the device check.
    let boot_us = 2000;
    let end_us = boot_us + cli.cycles * cli.period_us + 1000;
    let mut t = String::new();
    let path = format!("\\\\_SB_.CL{:02X}", cli.cell);
    for k in 0..cli.cycles {
        let at = boot_us + k * cli.period_us;
        let c = cli.cell;
        let _ = write!(
            t,
            "\n[[timeline]]\nat = \"{at}us\"\naction = \"audit\"\n\
             \n[[timeline]]\nat = \"{}us\"\naction = \"notify\"\npath = \"{path}\"\ncode = \"eject_request\"\nexpect = \"ok\"\n\
             \n[[timeline]]\nat = \"{}us\"\naction = \"remove_cell\"\ncell = {c}\n\
             \n[[timeline]]\nat = \"{}us\"\naction = \"insert_cell\"\ncell = {c}\n\
             \n[[timeline]]\nat = \"{}us\"\naction = \"power_on_cell\"\ncell = {c}\n\
             \n[[timeline]]\nat = \"{}us\"\naction = \"notify\"\npath = \"{path}\"\ncode = \"device_check\"\nexpect = \"ok\"\n",
            at + 100,
            at + cli.pull_us,
            at + cli.pull_us + 200,
            at + cli.pull_us + 400,
            at + cli.pull_us + 500,
        );
    }
    let _ = write!(
        t,
        "\n[[timeline]]\nat = \"{}us\"\naction = \"audit\"\n",
        end_us - 500
    );
    let body: String = text
        .lines()
        .map(|l| {
            if l.starts_with("duration") {
                format!("duration = \"{end_us}us\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let scn = match Scenario::parse(&cli.scenario, &format!("{body}\n{t}")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let watch = Arc::new(Mutex::new(Watch::default()));
    let w = Arc::clone(&watch);
    let (every, cycles) = (cli.every.max(1), cli.cycles);
    let look = move |now: sim_core::SimTime,
                     i: usize,
                     _p: &acpi_model::Platform,
                     os: Option<&os_model::Os>,
                     violations: u64| {
        // Action 6k is the audit at the start of cycle k (k = cycles: the end).
        if i % 6 != 0 {
            return;
        }
        let Some(os) = os else { return };
        let k = (i / 6) as u64;
        let Ok(mut w) = w.lock() else { return };
        let s = state_of(os);
        match &w.start {
            None => w.start = Some(s),
            Some(s0) if *s0 != s => {
                let m = format!("cycle {k} ({now}): {s:?}\n  the start was {s0:?}");
                w.mismatches.push(m);
            }
            Some(_) => {}
        }
        let per_node = free_per_node(os);
        match (&w.steady, k) {
            (_, 0) => {}
            (None, _) => w.steady = Some(per_node),
            (Some(s1), _) if *s1 != per_node => {
                let m = format!("cycle {k} ({now}): free pages {per_node}; after cycle 1: {s1}");
                w.mismatches.push(m);
            }
            (Some(_), _) => {}
        }
        if k == 100 || k == cycles {
            let r = rss_mib();
            w.rss.push((k, r, history_bytes(os)));
        }
        if k % every == 0 || k == cycles {
            let line = format!(
                "cycle {k:>6}  {now}  host {:>7.1} s  RSS {:>6.1} MiB  violations {violations}  free: {}",
                started.elapsed().as_secs_f64(),
                rss_mib(),
                free_per_node(os)
            );
            println!("{line}");
            w.lines.push(line);
        }
    };
    let opts = RunOptions {
        inspect: Some(Inspect(Arc::new(look))),
        ..RunOptions::default()
    };
    let r = match run(&scn, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let host = started.elapsed().as_secs_f64();
    let Ok(w) = watch.lock() else {
        return ExitCode::from(1);
    };
    let swaps = r.os.as_ref().map_or(0, |o| {
        o.mem_hotplug()
            .done()
            .iter()
            .filter(|op| {
                op.kind == os_model::memhotplug::MemOpKind::CellRemove
                    && matches!(op.result, Some(Ok(())))
            })
            .count()
    });
    println!(
        "soak: {} cycles ({swaps} cell removals done), {} of simulated time, {host:.1} s of host time \
         ({:.1} ms per cycle)",
        cli.cycles,
        r.end,
        1000.0 * host / cli.cycles as f64
    );
    for (k, m, h) in &w.rss {
        println!(
            "RSS after {k} cycles: {m:.1} MiB (of which the kernel's kept operation history at least {:.2} MiB)",
            *h as f64 / 1048576.0
        );
    }
    if let [(k0, m0, h0), .., (k1, m1, h1)] = w.rss[..] {
        let per = |x: f64| x * 1048576.0 / 1024.0 / (k1 - k0) as f64;
        println!(
            "RSS growth from cycle {k0} to {k1}: {:.2} KiB per cycle; kept history {:.2} KiB per cycle, \
             runner's action records ~{:.2} KiB per cycle",
            per(m1 - m0),
            per((h1 - h0) as f64 / 1048576.0),
            per(
                (6 * (k1 - k0) as usize * size_of::<scenarios::runner::ActionRecord>()) as f64
                    / 1048576.0
            )
        );
    }
    let failed = r.exit_code() != 0 || !w.mismatches.is_empty() || swaps as u64 != cli.cycles;
    if let Some(v) = r.violations.kept().first() {
        println!(
            "first violation: {} [{}] {}",
            v.time, v.checker.code, v.message
        );
    }
    if let Some(a) = r.actions.iter().find(|a| a.failed()) {
        let (Ok(what) | Err(what)) = &a.result;
        println!(
            "first failed action: {} {} {}: {what}",
            a.time, a.action, a.target
        );
    }
    for m in w.mismatches.iter().take(3) {
        println!("state not back: {m}");
    }
    println!(
        "result: {} ({} violations, {} cycles whose state was not the start's)",
        if failed { "FAILED" } else { "clean" },
        r.violations.total(),
        w.mismatches.len()
    );
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
