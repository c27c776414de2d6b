//! Injectable cache-model defects: deliberate bugs that prove the coherence checker bites
//! (SPEC CHK-9). Each names the checker expected to catch it.

use std::fmt;

use serde::{Deserialize, Serialize};
use sim_core::CheckerId;

use crate::check::{CHK_COHERENCE, TESTER};

/// A bug that can be switched on in the cache model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheDefect {
    /// A write miss or upgrade records exclusive ownership in the directory but never sends
    /// the invalidations: other caches keep reading their stale shared copies.
    StoreSkipsInvalidate,
    /// Evicting a dirty line drops it instead of writing it back to memory.
    EvictionDropsDirty,
    /// A read miss on a line owned dirty by another cache reads (stale) memory instead of
    /// forwarding the request to the owner.
    ReadSkipsOwner,
}

impl CacheDefect {
    /// Every defect.
    pub const ALL: [CacheDefect; 3] = [
        CacheDefect::StoreSkipsInvalidate,
        CacheDefect::EvictionDropsDirty,
        CacheDefect::ReadSkipsOwner,
    ];

    /// The name used in scenario files.
    pub const fn name(self) -> &'static str {
        match self {
            CacheDefect::StoreSkipsInvalidate => "store_skips_invalidate",
            CacheDefect::EvictionDropsDirty => "eviction_drops_dirty",
            CacheDefect::ReadSkipsOwner => "read_skips_owner",
        }
    }

    /// The defect called `name`, if any.
    pub fn from_name(name: &str) -> Option<CacheDefect> {
        CacheDefect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The checkers expected to report it.
    pub const fn caught_by(self) -> &'static [CheckerId] {
        match self {
            CacheDefect::StoreSkipsInvalidate => &[CHK_COHERENCE, TESTER],
            CacheDefect::EvictionDropsDirty => &[CHK_COHERENCE, TESTER],
            CacheDefect::ReadSkipsOwner => &[CHK_COHERENCE, TESTER],
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for CacheDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of defects switched on in a machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defects(u8);

// One bit per defect.
const _: () = assert!(CacheDefect::ALL.len() <= 8);

impl Defects {
    /// Switches a defect on.
    pub fn insert(&mut self, d: CacheDefect) {
        self.0 |= d.bit();
    }
    /// Whether a defect is on.
    #[inline]
    pub fn has(self, d: CacheDefect) -> bool {
        self.0 & d.bit() != 0
    }
    /// Whether any defect is on.
    pub fn any(self) -> bool {
        self.0 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in CacheDefect::ALL {
            assert_eq!(CacheDefect::from_name(d.name()), Some(d));
        }
        assert_eq!(CacheDefect::from_name("nope"), None);
        let mut s = Defects::default();
        s.insert(CacheDefect::ReadSkipsOwner);
        assert!(s.has(CacheDefect::ReadSkipsOwner));
        assert!(!s.has(CacheDefect::EvictionDropsDirty));
    }
}
