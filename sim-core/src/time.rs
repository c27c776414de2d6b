//! Simulated time.
//!
//! Time is an integer count of **nanoseconds** since the start of the run. Model code never
//! reads the host clock; everything that takes time returns a [`SimDuration`] and the engine
//! advances a [`SimTime`].
//!
//! Arithmetic is explicit: `checked_*` methods return `None` on overflow, and the operator
//! impls saturate at [`SimTime::MAX`] (584 years of simulated time, far beyond any scenario),
//! so a runaway computation stops at the end of time instead of wrapping to the past.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

use serde::{Deserialize, Serialize};

/// A point in simulated time, in nanoseconds since the start of the run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SimTime(u64);

/// A span of simulated time, in nanoseconds. Serialised as a number of nanoseconds; read
/// from a number of nanoseconds or from a string with a unit (see [`SimDuration::parse`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SimDuration(u64);

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SimDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a time such as \"5ms\", \"250us\" or an integer number of ns")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SimDuration, E> {
                u64::try_from(v)
                    .map(SimDuration)
                    .map_err(|_| E::custom(format!("a time cannot be negative ({v})")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SimDuration, E> {
                Ok(SimDuration(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SimDuration, E> {
                SimDuration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl SimTime {
    /// The start of every run.
    pub const ZERO: SimTime = SimTime(0);
    /// The end of time; saturating arithmetic stops here.
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// A time `ns` nanoseconds after the start.
    pub const fn from_nanos(ns: u64) -> Self {
        SimTime(ns)
    }

    /// Nanoseconds since the start.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, or `None` on overflow.
    pub const fn checked_add(self, d: SimDuration) -> Option<SimTime> {
        match self.0.checked_add(d.0) {
            Some(v) => Some(SimTime(v)),
            None => None,
        }
    }

    /// The duration from `earlier` to `self`, or `None` if `earlier` is later.
    pub const fn checked_since(self, earlier: SimTime) -> Option<SimDuration> {
        match self.0.checked_sub(earlier.0) {
            Some(v) => Some(SimDuration(v)),
            None => None,
        }
    }

    /// The duration from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
}

impl SimDuration {
    /// No time at all.
    pub const ZERO: SimDuration = SimDuration(0);

    /// `ns` nanoseconds.
    pub const fn from_nanos(ns: u64) -> Self {
        SimDuration(ns)
    }
    /// `us` microseconds (saturating).
    pub const fn from_micros(us: u64) -> Self {
        SimDuration(us.saturating_mul(1_000))
    }
    /// `ms` milliseconds (saturating).
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(ms.saturating_mul(1_000_000))
    }
    /// `s` seconds (saturating).
    pub const fn from_secs(s: u64) -> Self {
        SimDuration(s.saturating_mul(1_000_000_000))
    }
    /// Length in nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// `self + other`, or `None` on overflow.
    pub const fn checked_add(self, other: SimDuration) -> Option<SimDuration> {
        match self.0.checked_add(other.0) {
            Some(v) => Some(SimDuration(v)),
            None => None,
        }
    }
    /// `self * n`, or `None` on overflow.
    pub const fn checked_mul(self, n: u64) -> Option<SimDuration> {
        match self.0.checked_mul(n) {
            Some(v) => Some(SimDuration(v)),
            None => None,
        }
    }
    /// Whether it is no time at all.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
    /// `self * n`, saturating.
    pub const fn saturating_mul(self, n: u64) -> SimDuration {
        SimDuration(self.0.saturating_mul(n))
    }
    /// The larger of two durations.
    pub const fn max(self, other: SimDuration) -> SimDuration {
        if self.0 >= other.0 { self } else { other }
    }

    /// Parses a human duration: `"250ns"`, `"3us"`, `"1.5ms"`, `"2s"`, or a bare integer
    /// number of nanoseconds. Returns a message naming what was wrong.
    pub fn parse(text: &str) -> Result<SimDuration, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: String = num.chars().filter(|&c| c != '_').collect();
        let scale: u64 = match unit.trim() {
            "" | "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            other => {
                return Err(format!(
                    "unknown time unit `{other}` in `{text}` (use ns, us, ms or s)"
                ));
            }
        };
        if num.is_empty() {
            return Err(format!("`{text}` is not a duration (expected e.g. `5ms`)"));
        }
        let ns = if let Some((int, frac)) = num.split_once('.') {
            let int: u64 = int
                .parse()
                .map_err(|_| format!("`{text}` is not a duration (expected e.g. `1.5ms`)"))?;
            let digits = frac.len() as u32;
            let frac_v: u64 = if frac.is_empty() {
                0
            } else {
                frac.parse()
                    .map_err(|_| format!("`{text}` is not a duration (expected e.g. `1.5ms`)"))?
            };
            let denom = 10u64
                .checked_pow(digits)
                .ok_or_else(|| format!("too many decimals in `{text}`"))?;
            let whole = int.checked_mul(scale);
            let part = frac_v.checked_mul(scale).map(|v| v / denom);
            match (whole, part) {
                (Some(w), Some(p)) => w.checked_add(p),
                _ => None,
            }
        } else {
            num.parse::<u64>().ok().and_then(|v| v.checked_mul(scale))
        };
        ns.map(SimDuration)
            .ok_or_else(|| format!("duration `{text}` does not fit in 64-bit nanoseconds"))
    }
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    fn add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
}

impl AddAssign<SimDuration> for SimTime {
    fn add_assign(&mut self, d: SimDuration) {
        self.0 = self.0.saturating_add(d.0);
    }
}

impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, d: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(d.0))
    }
}

impl AddAssign for SimDuration {
    fn add_assign(&mut self, d: SimDuration) {
        self.0 = self.0.saturating_add(d.0);
    }
}

impl Sub for SimTime {
    type Output = SimDuration;
    /// Saturating: a later `rhs` gives zero.
    fn sub(self, rhs: SimTime) -> SimDuration {
        self.saturating_since(rhs)
    }
}

fn fmt_ns(ns: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if ns < 1_000 {
        write!(f, "{ns}ns")
    } else if ns < 1_000_000 {
        write!(f, "{}.{:03}us", ns / 1_000, ns % 1_000)
    } else if ns < 1_000_000_000 {
        write!(f, "{}.{:06}ms", ns / 1_000_000, ns % 1_000_000)
    } else {
        write!(f, "{}.{:09}s", ns / 1_000_000_000, ns % 1_000_000_000)
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t=")?;
        fmt_ns(self.0, f)
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_ns(self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_units_and_fractions() {
        assert_eq!(
            SimDuration::parse("250ns"),
            Ok(SimDuration::from_nanos(250))
        );
        assert_eq!(SimDuration::parse("3us"), Ok(SimDuration::from_micros(3)));
        assert_eq!(
            SimDuration::parse("1.5ms"),
            Ok(SimDuration::from_micros(1500))
        );
        assert_eq!(SimDuration::parse("2s"), Ok(SimDuration::from_secs(2)));
        assert_eq!(
            SimDuration::parse("1_000"),
            Ok(SimDuration::from_nanos(1000))
        );
        assert_eq!(SimDuration::parse(" 7 ms"), Ok(SimDuration::from_millis(7)));
    }

    #[test]
    fn parse_rejects_garbage_with_a_message() {
        assert!(
            SimDuration::parse("5 parsecs")
                .unwrap_err()
                .contains("parsecs")
        );
        assert!(SimDuration::parse("ms").is_err());
        assert!(SimDuration::parse("99999999999999999999s").is_err());
        assert!(SimDuration::parse("1.2.3ms").is_err());
    }

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = SimTime::MAX + SimDuration::from_nanos(5);
        assert_eq!(t, SimTime::MAX);
        assert_eq!(
            SimTime::from_nanos(3) - SimTime::from_nanos(9),
            SimDuration::ZERO
        );
        assert_eq!(SimTime::MAX.checked_add(SimDuration::from_nanos(1)), None);
    }

    #[test]
    fn display_picks_a_readable_unit() {
        assert_eq!(SimDuration::from_nanos(12).to_string(), "12ns");
        assert_eq!(SimDuration::from_nanos(1_500).to_string(), "1.500us");
        assert_eq!(SimTime::from_nanos(2_000_000).to_string(), "t=2.000000ms");
    }
}
