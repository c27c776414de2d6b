//! The non-coherent path reads memory behind the caches' back, so a missing flush shows.

use cells::config::Protocol;
use sim_core::{CpuId, Entity};

use crate::common::*;

#[test]
fn an_uncached_read_sees_stale_memory_until_the_flush() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 1, 0x80);
    m.store(t(0), CpuId(2), a, 0xfeed, &mut p).unwrap();
    let stale = m.read_uncached(t(1), Entity::Firmware, a, &mut p).unwrap();
    assert_eq!(stale, 0);
    assert_eq!(m.stats().uncached_stale_reads, 1);
    m.flush_cache(t(2), CpuId(2), &mut p).unwrap();
    assert_eq!(
        m.read_uncached(t(3), Entity::Firmware, a, &mut p).unwrap(),
        0xfeed
    );
    assert_eq!(m.stats().uncached_stale_reads, 1);
    assert!(
        p.violations.is_empty(),
        "reading stale data is legal; using it is the bug"
    );
}

#[test]
fn an_uncached_write_under_a_cached_copy_is_caught() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    let a = addr_on(&m, 0, 0x80);
    m.load(t(0), CpuId(1), a, &mut p).unwrap();
    m.write_uncached(t(1), Entity::Firmware, a, 9, &mut p)
        .unwrap();
    let r = m.load(t(2), CpuId(1), a, &mut p).unwrap();
    assert_eq!(r.value, 0, "the cached copy is stale");
    assert_eq!(p.violations.count("CHK-2"), 1);
}
