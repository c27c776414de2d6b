//! CHK-5, RCU: no published object freed or used while a reader may hold it.

use std::collections::BTreeMap;

use acpi_model::Platform;
use sim_core::{CheckerId, Entity, SimTime, Violations};

use super::{CHK_RCU, Names, OsChecker, violation};
use crate::cpumask::LogicalCpu;
use crate::event::OsEvent;
use crate::kernel::Os;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Obj {
    Live,
    Freed(SimTime),
}

#[derive(Clone, Copy, Debug)]
struct Reader {
    version: u64,
    since: SimTime,
    seq: u64,
    purpose: &'static str,
}

/// CHK-5: no reader uses a published object after it was freed, no object is freed while a
/// reader that could hold it is inside its section, and a grace period never ends while a
/// reader that started before it is still inside.
#[derive(Debug, Default)]
pub struct RcuChecker {
    names: Names,
    objects: BTreeMap<u64, Obj>,
    current: Option<u64>,
    /// Per CPU, the read-side sections it is inside, innermost last (they nest).
    readers: BTreeMap<LogicalCpu, Vec<Reader>>,
    gp_start: BTreeMap<u64, u64>,
    seq: u64,
}

impl OsChecker for RcuChecker {
    fn id(&self) -> CheckerId {
        CHK_RCU
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        self.seq += 1;
        let mut report = |agent: Entity, target: Entity, msg: String| {
            out.push(violation(now, CHK_RCU, agent, target, msg));
        };
        let obj = |v: u64| Entity::Object("cpu-maps", v);
        match ev {
            OsEvent::CpuMapped { .. } => self.names.learn(ev),
            OsEvent::MapsPublished { version, .. } => {
                self.objects.insert(*version, Obj::Live);
                self.current = Some(*version);
            }
            OsEvent::MapsFreed { version, by } => {
                if self.current == Some(*version) {
                    report(
                        self.names.entity(*by),
                        obj(*version),
                        format!("cpu maps v{version} freed while still published"),
                    );
                }
                for (c, r) in self
                    .readers
                    .iter()
                    .flat_map(|(c, v)| v.iter().map(move |r| (c, r)))
                {
                    if r.version == *version {
                        report(
                            self.names.entity(*by),
                            obj(*version),
                            format!(
                                "cpu maps v{version} freed while the reader on {c} (inside since {}, for {}) still holds it",
                                r.since, r.purpose
                            ),
                        );
                    }
                }
                self.objects.insert(*version, Obj::Freed(now));
            }
            OsEvent::RcuLock {
                cpu,
                version,
                purpose,
            } => {
                if self.current != Some(*version) {
                    report(
                        self.names.entity(*cpu),
                        obj(*version),
                        format!(
                            "{cpu} dereferenced cpu maps v{version}, but v{} is the published one",
                            self.current.unwrap_or(0)
                        ),
                    );
                }
                self.readers.entry(*cpu).or_default().push(Reader {
                    version: *version,
                    since: now,
                    seq: self.seq,
                    purpose,
                });
            }
            OsEvent::RcuUse {
                cpu,
                version,
                about,
            } => {
                let held = self
                    .readers
                    .get(cpu)
                    .is_some_and(|v| v.iter().any(|r| r.version == *version));
                if !held {
                    report(
                        self.names.entity(*cpu),
                        obj(*version),
                        format!(
                            "{cpu} used cpu maps v{version} outside a read-side section that holds it"
                        ),
                    );
                }
                if let Some(Obj::Freed(at)) = self.objects.get(version) {
                    report(
                        self.names.entity(*cpu),
                        obj(*version),
                        format!(
                            "{cpu} used cpu maps v{version} (freed at {at}) to act on {about}: use after free"
                        ),
                    );
                }
            }
            OsEvent::RcuUnlock { cpu } => {
                let popped = self.readers.get_mut(cpu).and_then(Vec::pop);
                if popped.is_none() {
                    report(
                        self.names.entity(*cpu),
                        self.names.entity(*cpu),
                        format!("{cpu} left a read-side section it was not in"),
                    );
                }
            }
            OsEvent::GpStart { seq, .. } => {
                self.gp_start.insert(*seq, self.seq);
            }
            OsEvent::GpEnd { seq, .. } => {
                if let Some(start) = self.gp_start.remove(seq) {
                    for (c, r) in self
                        .readers
                        .iter()
                        .flat_map(|(c, v)| v.iter().map(move |r| (c, r)))
                    {
                        if r.seq < start {
                            report(
                                self.names.entity(*c),
                                obj(r.version),
                                format!(
                                    "grace period {seq} ended while the reader on {c} (inside since {}, for {}) that began before it is still inside",
                                    r.since, r.purpose
                                ),
                            );
                        }
                    }
                }
            }
            OsEvent::Booted { .. }
            | OsEvent::QuiescentState { .. }
            | OsEvent::RcuCpu { .. }
            | OsEvent::TaskCreated { .. }
            | OsEvent::Enqueue { .. }
            | OsEvent::Migrate { .. }
            | OsEvent::Switch { .. }
            | OsEvent::Sleep { .. }
            | OsEvent::Block { .. }
            | OsEvent::Park { .. }
            | OsEvent::TimersMoved { .. }
            | OsEvent::TaskAccess { .. }
            | OsEvent::IpiSent { .. }
            | OsEvent::IpiHandled { .. }
            | OsEvent::CsdQueued { .. }
            | OsEvent::CsdDone { .. }
            | OsEvent::CsdTimeout { .. }
            | OsEvent::IrqRouted { .. }
            | OsEvent::IrqHandled { .. }
            | OsEvent::IrqDisabled { .. }
            | OsEvent::IrqFreed { .. }
            | OsEvent::CpuHalted { .. }
            | OsEvent::OpStart { .. }
            | OsEvent::OpStep { .. }
            | OsEvent::OpEnd { .. }
            | OsEvent::OpQueued { .. }
            | OsEvent::MemObject { .. }
            | OsEvent::PageAllocated { .. }
            | OsEvent::PageblockIsolation { .. }
            | OsEvent::PageFreed { .. }
            | OsEvent::PageDiscarded { .. }
            | OsEvent::PteWritten { .. }
            | OsEvent::HotplugRefused { .. }
            | OsEvent::RequestRefused { .. }
            | OsEvent::AcpiNotify { .. } => {}
        }
    }

    fn audit(&mut self, _now: SimTime, _os: &Os, _p: &Platform, _out: &mut Violations) {}
}
