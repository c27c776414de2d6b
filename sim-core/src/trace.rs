//! The trace: one stream of events per run, hashed in full and recorded selectively.
//!
//! Every event a model emits goes through [`Trace::emit`]. All of them, at every level, are
//! folded into a [`StableHasher`] together with their time, so the **trace hash** identifies the
//! whole run (two runs with equal hashes executed the same events in the same order with the
//! same values). Only events at or above the configured [`TraceLevel`] are kept as
//! [`TraceRecord`]s, to be written out as a file; hashing a billion cache hits is cheap, keeping
//! them is not.
//!
//! [`chrome`] writes the kept records as Chrome trace-event JSON, which Perfetto
//! (<https://ui.perfetto.dev>) and `chrome://tracing` open.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::hash::{StableHash, StableHasher};
use crate::time::{SimDuration, SimTime};

pub mod chrome;

/// How much of the stream is kept as records (everything is always hashed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceLevel {
    /// Keep nothing; only the hash.
    #[default]
    Off,
    /// State changes, hot-plug phases, violations, summaries.
    Info,
    /// Additionally every coherence message and individual accesses.
    Detail,
}

/// Where a record is drawn: a group (one process in the viewer) and an index (one thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Track {
    /// Group name, e.g. `"cpu"`, `"cell"`, `"machine"`.
    pub group: &'static str,
    /// Index within the group, e.g. the CPU number.
    pub index: u32,
}

/// The shape of a record in the viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A point event.
    Instant,
    /// A span with a known length starting at the record's time.
    Complete(SimDuration),
    /// Start of a span closed by a later [`Phase::End`] on the same track.
    Begin,
    /// End of the innermost open span on the track.
    End,
    /// A counter sample; its args are the series.
    Counter,
    /// What occupies the track from this record's time until the next `Slice` on the same
    /// track (or the last record): e.g. the task a CPU runs. Written as a span.
    Slice,
}

/// A value attached to a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ArgValue {
    /// An unsigned number.
    U64(u64),
    /// A boolean.
    Bool(bool),
    /// A string (also used for hex addresses).
    Str(String),
}

impl From<u64> for ArgValue {
    fn from(v: u64) -> Self {
        ArgValue::U64(v)
    }
}
impl From<bool> for ArgValue {
    fn from(v: bool) -> Self {
        ArgValue::Bool(v)
    }
}
impl From<String> for ArgValue {
    fn from(v: String) -> Self {
        ArgValue::Str(v)
    }
}
impl From<&str> for ArgValue {
    fn from(v: &str) -> Self {
        ArgValue::Str(v.to_owned())
    }
}

/// One kept trace entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceRecord {
    /// When it happened.
    pub time: SimTime,
    /// Where it is drawn.
    pub track: Track,
    /// Category (`"hw"`, `"coherence"`, `"check"`, …).
    pub category: &'static str,
    /// Event name.
    pub name: Cow<'static, str>,
    /// Shape.
    pub phase: Phase,
    /// Named values.
    pub args: Vec<(&'static str, ArgValue)>,
}

impl fmt::Display for TraceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}{} {}",
            self.time, self.track.group, self.track.index, self.name
        )?;
        for (k, v) in &self.args {
            match v {
                ArgValue::U64(n) => write!(f, " {k}={n}")?,
                ArgValue::Bool(b) => write!(f, " {k}={b}")?,
                ArgValue::Str(s) => write!(f, " {k}={s}")?,
            }
        }
        Ok(())
    }
}

/// An event that can be put in the trace.
pub trait TraceEvent: StableHash {
    /// The least level at which the event is kept as a record.
    fn level(&self) -> TraceLevel;
    /// The record to keep.
    fn to_record(&self, time: SimTime) -> TraceRecord;
}

/// The 64-bit hash of a whole trace, printed as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TraceHash(pub u64);

impl fmt::Display for TraceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The run's trace (see the module docs).
#[derive(Clone, Debug)]
pub struct Trace {
    hasher: StableHasher,
    events: u64,
    keep: TraceLevel,
    records: Vec<TraceRecord>,
    max_records: usize,
    dropped: u64,
}

impl Trace {
    /// A trace keeping records at `keep` and above, at most `max_records` of them (the hash
    /// always covers every event).
    pub fn new(keep: TraceLevel, max_records: usize) -> Self {
        Trace {
            hasher: StableHasher::new(),
            events: 0,
            keep,
            records: Vec::new(),
            max_records,
            dropped: 0,
        }
    }

    /// The level at which records are kept.
    pub fn keep_level(&self) -> TraceLevel {
        self.keep
    }

    /// Emits one event at `time`.
    #[inline]
    pub fn emit<E: TraceEvent + ?Sized>(&mut self, time: SimTime, ev: &E) {
        self.hasher.word(time.as_nanos());
        ev.stable_hash(&mut self.hasher);
        self.events += 1;
        if self.keep != TraceLevel::Off && ev.level() <= self.keep {
            self.keep_record(ev.to_record(time));
        }
    }

    /// Keeps a record that is not a model event (a summary, a counter sample); it is hashed
    /// like any event.
    pub fn record(&mut self, rec: TraceRecord) {
        self.hasher.word(rec.time.as_nanos());
        self.hasher.str(&rec.name);
        for (k, v) in &rec.args {
            self.hasher.str(k);
            match v {
                ArgValue::U64(n) => self.hasher.word(*n),
                ArgValue::Bool(b) => self.hasher.word(u64::from(*b)),
                ArgValue::Str(s) => self.hasher.str(s),
            }
        }
        self.events += 1;
        if self.keep != TraceLevel::Off {
            self.keep_record(rec);
        }
    }

    fn keep_record(&mut self, rec: TraceRecord) {
        if self.records.len() < self.max_records {
            self.records.push(rec);
        } else {
            self.dropped += 1;
        }
    }

    /// Hash of every event emitted so far.
    pub fn hash(&self) -> TraceHash {
        TraceHash(self.hasher.finish())
    }

    /// Number of events emitted (kept or not).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The kept records, in emission order.
    pub fn records(&self) -> &[TraceRecord] {
        &self.records
    }

    /// Records not kept because `max_records` was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ev(u64, TraceLevel);
    impl StableHash for Ev {
        fn stable_hash(&self, h: &mut StableHasher) {
            h.word(self.0);
        }
    }
    impl TraceEvent for Ev {
        fn level(&self) -> TraceLevel {
            self.1
        }
        fn to_record(&self, time: SimTime) -> TraceRecord {
            TraceRecord {
                time,
                track: Track {
                    group: "cpu",
                    index: 0,
                },
                category: "test",
                name: "ev".into(),
                phase: Phase::Instant,
                args: vec![("v", self.0.into())],
            }
        }
    }

    #[test]
    fn hash_covers_unkept_events_and_time() {
        let run = |v: u64, t: u64| {
            let mut tr = Trace::new(TraceLevel::Info, 10);
            tr.emit(SimTime::from_nanos(1), &Ev(1, TraceLevel::Info));
            tr.emit(SimTime::from_nanos(t), &Ev(v, TraceLevel::Detail));
            tr
        };
        let a = run(5, 2);
        assert_eq!(a.records().len(), 1, "detail event hashed but not kept");
        assert_eq!(a.events(), 2);
        assert_eq!(a.hash(), run(5, 2).hash());
        assert_ne!(a.hash(), run(6, 2).hash());
        assert_ne!(a.hash(), run(5, 3).hash());
    }

    #[test]
    fn record_cap_counts_drops() {
        let mut tr = Trace::new(TraceLevel::Detail, 2);
        for i in 0..5 {
            tr.emit(SimTime::from_nanos(i), &Ev(i, TraceLevel::Info));
        }
        assert_eq!(tr.records().len(), 2);
        assert_eq!(tr.dropped(), 3);
        assert_eq!(tr.hash().to_string().len(), 16);
    }
}
