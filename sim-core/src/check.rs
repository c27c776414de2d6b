//! The checker framework: observers of the event stream that report violations.
//!
//! A checker implements [`Checker<E, V>`]: it is shown every event `E` a model emits, together
//! with a read-only view `V` of the model *after* the event took effect, and may also run a
//! full-state [`audit`](Checker::audit) at quiet points (end of a run, after a hot-plug step).
//! It reports by pushing a [`Violation`] — simulated time, checker, the agent that acted, the
//! target it acted on, and a message — into [`Violations`].
//!
//! Each domain crate owns the checkers of its domain (`cells` has CHK-1's hardware side and
//! CHK-2). Every checker comes with an injectable defect that it must catch (SPEC CHK-9).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::hash::{StableHash, StableHasher};
use crate::ids::Entity;
use crate::time::SimTime;

/// Names a checker: its SPEC requirement code and a short name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CheckerId {
    /// The SPEC code, e.g. `"CHK-2"`.
    pub code: &'static str,
    /// A short name, e.g. `"coherence"`.
    pub name: &'static str,
}

impl fmt::Display for CheckerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.name)
    }
}

/// One reported violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// When it was detected.
    pub time: SimTime,
    /// Who detected it.
    pub checker: CheckerId,
    /// The entity that acted (issued the access, sent the message).
    pub agent: Entity,
    /// The entity acted upon.
    pub target: Entity,
    /// What went wrong, with the values involved.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {} -> {}: {}",
            self.time, self.checker, self.agent, self.target, self.message
        )
    }
}

impl StableHash for Violation {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.word(self.time.as_nanos());
        h.str(self.checker.code);
        h.str(self.checker.name);
        h.str(&self.agent.to_string());
        h.str(&self.target.to_string());
        h.str(&self.message);
    }
}

/// Says which of up to 64 expected-report entries a violation matches, as a bit set (bit `i`
/// for entry `i`): see [`Violations::classify_with`].
pub type Classifier = std::sync::Arc<dyn Fn(&Violation) -> u64 + Send + Sync>;

/// Collects violations. Keeps the first `cap` in full and counts all of them per checker, so a
/// defect that breaks every access cannot exhaust memory. With a [`Classifier`], every
/// violation (kept or not) is also matched against expected reports as it arrives.
#[derive(Clone)]
pub struct Violations {
    kept: Vec<Violation>,
    cap: usize,
    total: u64,
    per_checker: BTreeMap<CheckerId, u64>,
    tallies: BTreeMap<(CheckerId, &'static str), u64>,
    hasher: StableHasher,
    classifier: Option<Classifier>,
    matched: Vec<u64>,
    covered: u64,
}

impl fmt::Debug for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Violations")
            .field("total", &self.total)
            .field("per_checker", &self.per_checker)
            .field("tallies", &self.tallies)
            .field("covered", &self.covered)
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

impl Default for Violations {
    fn default() -> Self {
        Self::with_cap(10_000)
    }
}

impl Violations {
    /// A collector keeping at most `cap` violations in full.
    pub fn with_cap(cap: usize) -> Self {
        Violations {
            kept: Vec::new(),
            cap,
            total: 0,
            per_checker: BTreeMap::new(),
            tallies: BTreeMap::new(),
            hasher: StableHasher::new(),
            classifier: None,
            matched: Vec::new(),
            covered: 0,
        }
    }

    /// Matches every violation reported from now on against `entries` (at most 64) expected
    /// reports with `classify`: see [`Violations::matched`] and [`Violations::covered`].
    pub fn classify_with(&mut self, classify: Classifier, entries: usize) {
        self.classifier = Some(classify);
        self.matched = vec![0; entries.min(64)];
    }

    /// How many violations matched expected-report entry `i`.
    pub fn matched(&self, i: usize) -> u64 {
        self.matched.get(i).copied().unwrap_or(0)
    }

    /// How many violations matched at least one expected-report entry.
    pub fn covered(&self) -> u64 {
        self.covered
    }

    /// Reports one violation.
    pub fn push(&mut self, v: Violation) {
        self.total += 1;
        *self.per_checker.entry(v.checker).or_insert(0) += 1;
        v.stable_hash(&mut self.hasher);
        if let Some(c) = &self.classifier {
            let bits = c(&v);
            if bits != 0 {
                self.covered += 1;
                for (i, m) in self.matched.iter_mut().enumerate() {
                    *m += bits >> i & 1;
                }
            }
        }
        if self.kept.len() < self.cap {
            self.kept.push(v);
        }
    }

    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Number reported (kept or not).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The violations kept in full, in the order reported.
    pub fn kept(&self) -> &[Violation] {
        &self.kept
    }

    /// Counts per checker, in checker order.
    pub fn per_checker(&self) -> &BTreeMap<CheckerId, u64> {
        &self.per_checker
    }

    /// How many the given checker reported.
    pub fn count(&self, code: &str) -> u64 {
        self.per_checker
            .iter()
            .filter(|(id, _)| id.code == code)
            .map(|(_, n)| n)
            .sum()
    }

    /// Counts one observation that is not a violation but that a checker accounts for on its
    /// own (e.g. CHK-1's accesses that discovered a surprise removal, or an OS's own
    /// diagnosis corroborating a checker): shown beside the violations, never added to them.
    pub fn tally(&mut self, checker: CheckerId, what: &'static str) {
        *self.tallies.entry((checker, what)).or_insert(0) += 1;
    }

    /// Every tally, by checker and name.
    pub fn tallies(&self) -> &BTreeMap<(CheckerId, &'static str), u64> {
        &self.tallies
    }

    /// The tally `what` summed over the checkers with `code`.
    pub fn tally_of(&self, code: &str, what: &str) -> u64 {
        self.tallies
            .iter()
            .filter(|((id, w), _)| id.code == code && *w == what)
            .map(|(_, n)| n)
            .sum()
    }

    /// A stable hash of every violation reported, in order.
    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }
}

/// An observer of events `E` with a read-only view `V` of the model after each event.
pub trait Checker<E: ?Sized, V: ?Sized> {
    /// Which checker this is.
    fn id(&self) -> CheckerId;

    /// Looks at one event. Called after the event took effect on the model.
    fn observe(&mut self, now: SimTime, event: &E, view: &V, out: &mut Violations);

    /// Checks the whole model state at a quiet point. The default checks nothing.
    fn audit(&mut self, now: SimTime, view: &V, out: &mut Violations) {
        let _ = (now, view, out);
    }
}

/// An ordered set of checkers over the same event and view types.
pub struct CheckerSet<E: ?Sized, V: ?Sized> {
    checkers: Vec<Box<dyn Checker<E, V> + Send>>,
}

impl<E: ?Sized, V: ?Sized> Default for CheckerSet<E, V> {
    fn default() -> Self {
        CheckerSet {
            checkers: Vec::new(),
        }
    }
}

impl<E: ?Sized, V: ?Sized> CheckerSet<E, V> {
    /// Adds a checker; checkers observe in the order added.
    pub fn add(&mut self, c: Box<dyn Checker<E, V> + Send>) {
        self.checkers.push(c);
    }

    /// The ids of the checkers, in order.
    pub fn ids(&self) -> Vec<CheckerId> {
        self.checkers.iter().map(|c| c.id()).collect()
    }

    /// Shows `event` to every checker.
    #[inline]
    pub fn observe(&mut self, now: SimTime, event: &E, view: &V, out: &mut Violations) {
        for c in &mut self.checkers {
            c.observe(now, event, view, out);
        }
    }

    /// Runs every checker's audit.
    pub fn audit(&mut self, now: SimTime, view: &V, out: &mut Violations) {
        for c in &mut self.checkers {
            c.audit(now, view, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CpuId;

    const ID: CheckerId = CheckerId {
        code: "CHK-T",
        name: "test",
    };

    struct EvenOnly;
    impl Checker<u64, ()> for EvenOnly {
        fn id(&self) -> CheckerId {
            ID
        }
        fn observe(&mut self, now: SimTime, ev: &u64, _: &(), out: &mut Violations) {
            if ev % 2 == 1 {
                out.push(Violation {
                    time: now,
                    checker: ID,
                    agent: Entity::Cpu(CpuId(0)),
                    target: Entity::Machine,
                    message: format!("odd value {ev}"),
                });
            }
        }
    }

    #[test]
    fn violations_are_counted_beyond_the_cap() {
        let mut set: CheckerSet<u64, ()> = CheckerSet::default();
        set.add(Box::new(EvenOnly));
        let mut out = Violations::with_cap(2);
        for v in 0..10u64 {
            set.observe(SimTime::from_nanos(v), &v, &(), &mut out);
        }
        assert_eq!(out.total(), 5);
        assert_eq!(out.kept().len(), 2);
        assert_eq!(out.count("CHK-T"), 5);
        assert_eq!(
            out.kept()[0].to_string(),
            "t=1ns [CHK-T test] cpu0 -> machine: odd value 1"
        );
    }
}
