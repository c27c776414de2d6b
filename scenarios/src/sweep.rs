//! Seed sweeps: one scenario across many seeds in parallel.
//!
//! Each seed is an independent run (its own machine, streams and trace), so the per-seed
//! results do not depend on how rayon schedules them; the results are sorted by seed before
//! they are reported. `--shard I/N` keeps the I-th of N contiguous slices of the seed range, so
//! a job array can spread a sweep (`sim f.toml --seeds 0..100000 --shard $I/64 --json s$I.json`)
//! and the shards' JSON arrays concatenate into the whole sweep.

use std::collections::BTreeMap;
use std::ops::Range;

use rayon::prelude::*;
use serde::Serialize;

use crate::runner::{RunError, RunOptions, run};
use crate::scenario::Scenario;

/// One seed's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Its trace hash.
    pub trace_hash: String,
    /// Exit status the seed alone would give.
    pub exit_code: u8,
    /// Violations reported.
    pub violations_total: u64,
    /// The first violation no `[[expect.reports]]` entry covers, formatted (in a scenario
    /// that shows a failure — a defect, a checker expected to fire — the first violation).
    pub first_violation: Option<String>,
    /// The first action refused unexpectedly (or not as expected), formatted.
    pub first_refused_action: Option<String>,
    /// The first expectation not met, with what happened instead.
    pub first_unmet_expectation: Option<String>,
    /// Every figure of the run (`figures::FIGURES`), by name.
    pub figures: BTreeMap<&'static str, f64>,
}

impl SeedResult {
    /// Why the seed failed, in one line (`None` for a clean seed).
    pub fn why(&self) -> Option<&str> {
        self.first_violation
            .as_deref()
            .or(self.first_refused_action.as_deref())
            .or(self.first_unmet_expectation.as_deref())
    }
}

/// Parses `A..B` (end exclusive).
pub fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("`{s}` is not a seed range; write A..B, e.g. 0..1000"))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("`{a}` is not a seed number"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("`{b}` is not a seed number"))?;
    if b <= a {
        return Err(format!("the seed range {a}..{b} is empty"));
    }
    Ok(a..b)
}

/// Parses `I/N` (0 ≤ I < N).
pub fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a shard; write I/N, e.g. 3/16"))?;
    let i: u64 = i
        .trim()
        .parse()
        .map_err(|_| format!("`{i}` is not a shard index"))?;
    let n: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a shard count"))?;
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n} does not exist (need 0 <= I < N)"));
    }
    Ok((i, n))
}

/// The `i`-th of `n` contiguous slices of `r`.
pub fn shard(r: Range<u64>, i: u64, n: u64) -> Range<u64> {
    let len = r.end - r.start;
    let lo = r.start + len * i / n;
    let hi = r.start + len * (i + 1) / n;
    lo..hi
}

/// Runs every seed of `seeds`, in parallel, results sorted by seed. `done` is told each time
/// a seed has finished (it only watches).
pub fn sweep(
    scn: &Scenario,
    seeds: Range<u64>,
    done: Option<&(dyn Fn() + Sync)>,
) -> Result<Vec<SeedResult>, RunError> {
    let mut out: Vec<SeedResult> = seeds
        .into_par_iter()
        .map(|seed| {
            let r = run(
                scn,
                &RunOptions {
                    seed: Some(seed),
                    ..RunOptions::default()
                },
            )?;
            if let Some(f) = done {
                f();
            }
            Ok(SeedResult {
                seed,
                trace_hash: r.trace_hash.to_string(),
                exit_code: r.exit_code(),
                violations_total: r.violations.total(),
                first_violation: r
                    .violations
                    .kept()
                    .iter()
                    .find(|v| {
                        r.shows_a_failure || !scn.file.expect.reports.iter().any(|e| e.matches(v))
                    })
                    .map(ToString::to_string),
                first_refused_action: r.actions.iter().find(|a| a.failed()).map(|a| {
                    let (Ok(what) | Err(what)) = &a.result;
                    if let Some(changed) = &a.changed_on_refusal {
                        return format!(
                            "{} {} {}: {what} (refused, yet it changed: {changed})",
                            a.time, a.action, a.target
                        );
                    }
                    match &a.expected {
                        Some((e, _)) => {
                            format!(
                                "{} {} {}: {what} (expected {e})",
                                a.time, a.action, a.target
                            )
                        }
                        None => format!("{} {} {}: {what}", a.time, a.action, a.target),
                    }
                }),
                first_unmet_expectation: r
                    .expectations
                    .iter()
                    .find(|e| !e.met)
                    .map(|e| format!("expected {}: {}", e.what, e.detail)),
                figures: crate::figures::all(&r),
            })
        })
        .collect::<Result<_, RunError>>()?;
    out.sort_by_key(|s| s.seed);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_shards_parse_and_partition() {
        assert_eq!(parse_range("0..1000"), Ok(0..1000));
        assert!(parse_range("5..5").is_err());
        assert!(parse_range("x..3").is_err());
        assert_eq!(parse_shard("3/16"), Ok((3, 16)));
        assert!(parse_shard("16/16").is_err());
        let all: Vec<u64> = (0..7).flat_map(|i| shard(10..110, i, 7)).collect();
        assert_eq!(all, (10..110).collect::<Vec<_>>());
    }
}
