//! The OS checkers, each fed a hand-written event stream.

use super::*;
use crate::cpumask::{CpuMask, LogicalCpu};
use crate::event::{EnqueueWhy, Step};
use crate::event::{MemObj, OsEvent, TaskId};
use sim_core::{SimTime, Violations};

fn t(ns: u64) -> SimTime {
    SimTime::from_nanos(ns)
}
fn c(n: u32) -> LogicalCpu {
    LogicalCpu(n)
}
fn mask(cpus: &[u32]) -> CpuMask {
    let mut m = CpuMask::new(8);
    for &x in cpus {
        m.set(LogicalCpu(x));
    }
    m
}
fn publish(v: u64, online: &[u32]) -> OsEvent {
    OsEvent::MapsPublished {
        version: v,
        addr: 0x1000 * v,
        online: mask(online),
        active: mask(online),
        by: c(0),
    }
}
fn feed(ch: &mut dyn OsChecker, evs: &[OsEvent]) -> Violations {
    let mut out = Violations::default();
    for (i, e) in evs.iter().enumerate() {
        ch.observe(t(i as u64), e, &mut out);
    }
    out
}

/// A reader of version `v` (at `0x1000 * v`) on CPU 1 that loaded `header`.
fn lock(v: u64, header: u64) -> OsEvent {
    OsEvent::RcuLock {
        cpu: c(1),
        addr: 0x1000 * v,
        loaded: header,
        purpose: "test",
    }
}
/// The reader on CPU 1 acts on CPU 2 of version `v` with the online word it loaded.
fn use_(v: u64, bits: u64) -> OsEvent {
    OsEvent::RcuUse {
        cpu: c(1),
        addr: 0x1000 * v,
        about: c(2),
        bits,
    }
}

#[test]
fn rcu_checker_catches_free_under_a_reader_and_use_after_free() {
    let ok = feed(
        &mut RcuChecker::default(),
        &[
            publish(1, &[0, 1, 2]),
            lock(1, 1),
            publish(2, &[0, 1]),
            use_(1, 0b111),
            OsEvent::RcuUnlock { cpu: c(1) },
            OsEvent::MapsFreed {
                version: 1,
                by: c(0),
            },
        ],
    );
    assert!(ok.is_empty(), "{:?}", ok.kept());
    let bad = feed(
        &mut RcuChecker::default(),
        &[
            publish(1, &[0, 1, 2]),
            lock(1, 1),
            publish(2, &[0, 1]),
            OsEvent::MapsFreed {
                version: 1,
                by: c(0),
            },
            use_(1, crate::kernel::POISON),
        ],
    );
    assert_eq!(bad.total(), 2, "{:?}", bad.kept());
    assert!(bad.kept()[0].message.contains("still holds it"));
    assert!(
        bad.kept()[1]
            .message
            .contains("loading the poison 0x6b6b6b6b6b6b6b6b: use after free"),
        "{:?}",
        bad.kept()
    );
}

#[test]
fn rcu_checker_judges_a_reader_by_what_it_loaded() {
    // A stale pointer to a freed version: the header holds the poison.
    let out = feed(
        &mut RcuChecker::default(),
        &[
            publish(1, &[0, 1, 2]),
            publish(2, &[0, 1]),
            OsEvent::MapsFreed {
                version: 1,
                by: c(0),
            },
            lock(1, crate::kernel::POISON),
        ],
    );
    let m: Vec<&str> = out.kept().iter().map(|v| v.message.as_str()).collect();
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].contains("dereferenced cpu maps v1, but v2 is the published one"));
    assert!(m[1].contains("loaded the poison 0x6b6b6b6b6b6b6b6b from the header of cpu maps v1"));
    // The published version, overwritten in memory: its header, then the mask the reader
    // acts on, are not what was published.
    let out = feed(
        &mut RcuChecker::default(),
        &[publish(1, &[0, 1, 2]), lock(1, 7), use_(1, 0b011)],
    );
    let m: Vec<&str> = out.kept().iter().map(|v| v.message.as_str()).collect();
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].contains("loaded 0x7 from the header of cpu maps v1, which is live"));
    assert!(m[1].contains("with 0x3 loaded from cpu maps v1, which was published with 0x7"));
}

#[test]
fn rcu_checker_catches_a_grace_period_ending_under_an_older_reader() {
    let out = feed(
        &mut RcuChecker::default(),
        &[
            publish(1, &[0, 1]),
            lock(1, 1),
            OsEvent::GpStart {
                seq: 1,
                waiting: mask(&[1]),
            },
            OsEvent::GpEnd {
                seq: 1,
                duration: sim_core::SimDuration::ZERO,
            },
        ],
    );
    assert_eq!(out.count("CHK-5"), 1);
}

#[test]
fn sched_checker_catches_moves_by_anyone_but_the_migration_thread_and_lost_tasks() {
    let created = |task: u32, kind: &'static str, cpu: u32| OsEvent::TaskCreated {
        task: TaskId(task),
        name: format!("t{task}"),
        kind,
        cpu: c(cpu),
    };
    let base = vec![
        publish(1, &[0, 1]),
        created(0, "migration", 0),
        created(1, "ksoftirqd", 0),
        created(2, "user", 0),
        OsEvent::Enqueue {
            task: TaskId(2),
            cpu: c(0),
            why: EnqueueWhy::Fork,
            kthread: false,
        },
    ];
    let mut good = base.clone();
    good.push(OsEvent::Migrate {
        task: TaskId(2),
        from: c(0),
        to: c(1),
        by: TaskId(0),
    });
    assert!(feed(&mut SchedChecker::default(), &good).is_empty());
    let mut bad = base.clone();
    bad.push(OsEvent::Migrate {
        task: TaskId(2),
        from: c(0),
        to: c(1),
        by: TaskId(1),
    });
    let out = feed(&mut SchedChecker::default(), &bad);
    assert!(
        out.kept()[0]
            .message
            .contains("only cpu0's migration thread")
    );
    let mut lost = base;
    lost.push(publish(2, &[1]));
    let out = feed(&mut SchedChecker::default(), &lost);
    assert!(
        out.kept()[0].message.contains("it is lost"),
        "{:?}",
        out.kept()
    );
}

fn access(obj: MemObj, page: u32, slot: u32, value: u64, store: bool) -> OsEvent {
    OsEvent::TaskAccess {
        task: TaskId(3),
        cpu: c(0),
        obj,
        page,
        slot,
        word: slot * 10,
        addr: 0x4000 + u64::from(slot) * 80,
        value,
        store,
    }
}

#[test]
fn alloc_checker_bites_on_a_page_freed_while_mapped() {
    let out = feed(
        &mut AllocChecker::default(),
        &[
            OsEvent::PageFreed {
                pfn: 5,
                order: 0,
                mapped: 0,
                busy: 0,
                owner: crate::mm::Owner::Anon { mm: 0, page: 1 },
            },
            // Two words stored in page-table page 9 map pfn 6; the kernel's reverse map
            // says nothing (its count is only quoted): the words are what count.
            OsEvent::PteWritten {
                mm: 0,
                vpn: 2,
                addr: 0x9010,
                table: 9,
                word: crate::mm::vm::Pte::Present { pfn: 6 }.encode(),
            },
            OsEvent::PteWritten {
                mm: 1,
                vpn: 2,
                addr: 0x9018,
                table: 9,
                word: crate::mm::vm::Pte::Migration { pfn: 6 }.encode(),
            },
            OsEvent::PageFreed {
                pfn: 6,
                order: 0,
                mapped: 0,
                busy: 0,
                owner: crate::mm::Owner::File { file: 1, page: 3 },
            },
            // The kernel's count alone is no finding.
            OsEvent::PageFreed {
                pfn: 8,
                order: 0,
                mapped: 2,
                busy: 0,
                owner: crate::mm::Owner::File { file: 1, page: 5 },
            },
            OsEvent::PageFreed {
                pfn: 7,
                order: 0,
                mapped: 0,
                busy: crate::mm::page::busy::WRITEBACK,
                owner: crate::mm::Owner::File { file: 1, page: 4 },
            },
        ],
    );
    assert_eq!(out.count("CHK-7"), 2, "{:?}", out.kept());
    assert!(
        out.kept()[0]
            .message
            .contains("freed while 2 page-table words in memory still map it"),
        "{:?}",
        out.kept()
    );
}

#[test]
fn alloc_checker_bites_on_an_allocation_from_an_isolated_pageblock() {
    let pb = crate::mm::PAGEBLOCK_PAGES;
    let iso = |pfn, isolated| OsEvent::PageblockIsolation { pfn, isolated };
    let alloc = |pfn, order| OsEvent::PageAllocated { pfn, order };
    let out = feed(
        &mut AllocChecker::default(),
        &[
            iso(2 * pb, true),
            // Outside it, before it, and a huge page next to it: fine.
            alloc(3, 0),
            alloc(3 * pb, crate::mm::PAGEBLOCK_ORDER),
            // Inside it: reported.
            alloc(2 * pb + 5, 0),
            // Released, then allocated (a compaction target handed to a hugetlb page).
            iso(2 * pb, false),
            alloc(2 * pb, crate::mm::PAGEBLOCK_ORDER),
        ],
    );
    assert_eq!(out.count("CHK-7"), 1, "{:?}", out.kept());
    assert!(
        out.kept()[0]
            .message
            .contains("allocated from the isolated pageblock at pfn 0x80"),
        "{:?}",
        out.kept()
    );
}

#[test]
fn task_data_and_irq_checkers_bite() {
    let out = feed(
        &mut TaskDataChecker::default(),
        &[
            OsEvent::MemObject {
                obj: MemObj::File(1),
                pages: 2,
                slots: 4,
            },
            // A slot of a page beyond the object.
            access(MemObj::File(1), 2, 0, 0, false),
            // The first load sees the disk's contents.
            access(
                MemObj::File(1),
                1,
                3,
                crate::mm::vm::file_word(1, 1, 30),
                false,
            ),
            access(MemObj::File(1), 0, 1, 7, true),
            // A load that misses the last store.
            access(MemObj::File(1), 0, 1, 0, false),
            // An object never created.
            access(MemObj::Anon(9), 0, 0, 0, false),
        ],
    );
    assert_eq!(out.count("CHK-3"), 3, "{:?}", out.kept());
    assert!(out.kept()[0].message.contains("outside it"));
    assert!(
        out.kept()[1]
            .message
            .contains("last value stored there is 0x7")
    );
    let out = feed(
        &mut IrqChecker::default(),
        &[
            publish(1, &[0]),
            OsEvent::IrqHandled {
                gsi: 5,
                vector: 0x30,
                cpu: c(1),
                tags: vec![sim_core::MsgTag::Line { gsi: 5, n: 1 }],
            },
            OsEvent::CsdTimeout {
                id: 1,
                from: c(0),
                to: c(1),
                waited: sim_core::SimDuration::from_millis(2),
            },
        ],
    );
    // The handling on an offline CPU is a report; the kernel's own timeout diagnosis is
    // corroboration, counted apart.
    assert_eq!(out.count("CHK-6"), 1);
    assert_eq!(out.tally_of("CHK-6", super::irq::CSD_TIMEOUT), 1);
    // A handler that serves another line's message, or none at all.
    let out = feed(
        &mut IrqChecker::default(),
        &[
            publish(1, &[0, 1]),
            OsEvent::IrqHandled {
                gsi: 5,
                vector: 0x30,
                cpu: c(1),
                tags: vec![sim_core::MsgTag::Line { gsi: 6, n: 4 }],
            },
            OsEvent::IrqHandled {
                gsi: 5,
                vector: 0x30,
                cpu: c(1),
                tags: Vec::new(),
            },
        ],
    );
    let m: Vec<&str> = out.kept().iter().map(|v| v.message.as_str()).collect();
    assert_eq!(out.count("CHK-6"), 2, "{m:?}");
    assert!(m[0].starts_with("interrupt gsi6#4 was handled on cpu1 by the handler of gsi5"));
    assert!(m[1].contains("for no message of any line"));
    let _ = Step::Halt;
}
