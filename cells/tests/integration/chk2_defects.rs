//! CHK-2 bites: each injected cache-model defect is caught by the coherence checker (and by
//! the random tester's own read-back checks), and the same run without the defect is clean.

use cells::config::Protocol;
use cells::{CacheDefect, RandomTester, TesterConfig};
use sim_core::{CpuId, EventQueue, RngStreams, SimTime, Violations};

use crate::common::*;

/// Runs the random tester on every CPU of the small machine for `accesses` accesses with the
/// given defect; returns the probe's violations and the tester's mismatches.
fn run(defect: Option<CacheDefect>, protocol: Protocol, accesses: u64) -> (Violations, u64) {
    let (mut m, mut p) = booted(&small_config(protocol));
    if let Some(d) = defect {
        m.inject_defect(d);
    }
    let cpus: Vec<CpuId> = m.cpus().iter().map(|c| c.id).collect();
    let cfg = TesterConfig {
        private_lines: 8,
        false_sharing_lines: 8,
        conflict_sets: 2,
        locality: 0.3,
        ..TesterConfig::default()
    };
    let mut tester = RandomTester::new(cfg, &cpus, &m, &RngStreams::new(11)).unwrap();
    let mut q = EventQueue::new();
    for &c in &cpus {
        q.schedule(SimTime::ZERO, c).unwrap();
    }
    let mut n = 0;
    while let Some((now, c)) = q.pop() {
        if n == accesses {
            break;
        }
        n += 1;
        let (dt, bad) = tester.step(now, c, &mut m, &mut p).unwrap();
        if let Some(v) = bad {
            p.violations.push(v);
        }
        q.schedule(now + dt, c).unwrap();
        if n % 5000 == 0 {
            p.audit(now, &m);
        }
    }
    p.audit(q.now(), &m);
    (p.violations, tester.stats().mismatches)
}

#[test]
fn the_defect_free_model_is_clean_under_both_protocols() {
    for proto in [Protocol::Mesi, Protocol::Moesi] {
        let (v, mismatches) = run(None, proto, 50_000);
        assert!(v.is_empty(), "{proto:?}: {:?}", v.kept());
        assert_eq!(mismatches, 0);
    }
}

#[test]
fn every_cache_defect_is_caught_by_chk2_and_the_tester() {
    for d in CacheDefect::ALL {
        for proto in [Protocol::Mesi, Protocol::Moesi] {
            if d == CacheDefect::ReadSkipsOwner || proto == Protocol::Moesi {
                // (run every defect under MOESI, and the owner defect under both)
            } else {
                continue;
            }
            let (v, mismatches) = run(Some(d), proto, 50_000);
            assert!(v.count("CHK-2") > 0, "{d} under {proto:?} escaped CHK-2");
            assert!(mismatches > 0, "{d} under {proto:?} escaped the tester");
            assert_eq!(v.count("CHK-1"), 0, "{d}: no hardware is missing here");
            for id in d.caught_by() {
                assert!(v.per_checker().contains_key(id), "{d}: {id} silent");
            }
        }
    }
}

#[test]
fn store_skipping_invalidations_breaks_single_writer_immediately() {
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    m.inject_defect(CacheDefect::StoreSkipsInvalidate);
    let a = addr_on(&m, 1, 0);
    m.load(t(0), CpuId(0), a, &mut p).unwrap();
    m.load(t(1), CpuId(2), a, &mut p).unwrap();
    m.store(t(2), CpuId(0), a, 42, &mut p).unwrap();
    let v = &p.violations.kept()[0];
    assert_eq!(v.checker.code, "CHK-2");
    assert!(
        v.message.contains("single writer violated"),
        "{}",
        v.message
    );
    // and the stale reader is caught by the golden shadow
    let r = m.load(t(3), CpuId(2), a, &mut p).unwrap();
    assert_eq!(r.value, 0, "cpu2 reads its stale copy");
    assert!(
        p.violations
            .kept()
            .iter()
            .any(|v| v.message.contains("last value written there is 0x2a"))
    );
}

#[test]
fn an_audit_compares_memory_no_cache_holds_with_the_shadow() {
    // Before: audits compared caches with memory and directories, never memory with the
    // golden shadow, so data lost on its way to memory showed only if a CPU read it again.
    let (mut m, mut p) = booted(&small_config(Protocol::Moesi));
    m.inject_defect(CacheDefect::EvictionDropsDirty);
    let a = addr_on(&m, 2, 0x400);
    m.store(t(0), CpuId(0), a, 0xabcd, &mut p).unwrap();
    m.flush_cache(t(10), CpuId(0), &mut p).unwrap();
    p.violations = Violations::default();
    p.audit(t(20), &m);
    let v = p
        .violations
        .kept()
        .iter()
        .find(|v| v.message.contains("no cache holds the line"))
        .unwrap_or_else(|| panic!("{:?}", p.violations.kept()));
    assert_eq!(v.checker.code, "CHK-2");
    assert!(v.message.contains("0xabcd"), "{}", v.message);
}
