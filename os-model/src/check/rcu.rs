//! CHK-5, RCU: no published object freed or used while a reader may hold it.

use std::collections::BTreeMap;

use acpi_model::Platform;
use sim_core::{CheckerId, Entity, SimTime, Violations};

use super::{CHK_RCU, Names, OsChecker, violation};
use crate::cpumask::LogicalCpu;
use crate::event::OsEvent;
use crate::kernel::Os;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Live,
    Freed(SimTime),
}

/// A published version, as the publish event described it.
#[derive(Clone, Debug)]
struct Obj {
    state: State,
    online: crate::cpumask::CpuMask,
}

impl Obj {
    /// The online-mask word holding `cpu`'s bit, as published.
    fn online_word(&self, cpu: LogicalCpu) -> u64 {
        self.online.word(cpu.index() / 64)
    }
}

#[derive(Clone, Copy, Debug)]
struct Reader {
    version: u64,
    /// The address it dereferenced.
    addr: u64,
    since: SimTime,
    seq: u64,
    purpose: &'static str,
}

/// CHK-5: no reader uses a published object after it was freed, no object is freed while a
/// reader that could hold it is inside its section, and a grace period never ends while a
/// reader that started before it is still inside. It judges each reader from what it
/// loaded: the address it found in the pointer (which version lives there, by the checker's
/// own record of the publishes and frees) and the words it loaded from it — a freed object's
/// poison, or a version or mask that is not what was published there.
#[derive(Debug, Default)]
pub struct RcuChecker {
    names: Names,
    objects: BTreeMap<u64, Obj>,
    /// The version last published at each address.
    at: BTreeMap<u64, u64>,
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
            OsEvent::MapsPublished {
                version,
                addr,
                online,
                ..
            } => {
                self.objects.insert(
                    *version,
                    Obj {
                        state: State::Live,
                        online: online.clone(),
                    },
                );
                self.at.insert(*addr, *version);
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
                if let Some(o) = self.objects.get_mut(version) {
                    o.state = State::Freed(now);
                }
            }
            OsEvent::RcuLock {
                cpu,
                addr,
                loaded,
                purpose,
            } => {
                let version = self.at.get(addr).copied();
                match version {
                    None => report(
                        self.names.entity(*cpu),
                        self.names.entity(*cpu),
                        format!(
                            "{cpu} dereferenced {addr:#x}, where no cpu maps were ever published (it loaded {loaded:#x})"
                        ),
                    ),
                    Some(v) => {
                        if self.current != Some(v) {
                            report(
                                self.names.entity(*cpu),
                                obj(v),
                                format!(
                                    "{cpu} dereferenced cpu maps v{v}, but v{} is the published one",
                                    self.current.unwrap_or(0)
                                ),
                            );
                        }
                        match self.objects.get(&v).map(|o| o.state) {
                            Some(State::Freed(at)) => report(
                                self.names.entity(*cpu),
                                obj(v),
                                format!(
                                    "{cpu} loaded {} from the header of cpu maps v{v} (freed at {at}): use after free",
                                    what(*loaded)
                                ),
                            ),
                            Some(State::Live) if *loaded != v => report(
                                self.names.entity(*cpu),
                                obj(v),
                                format!(
                                    "{cpu} loaded {} from the header of cpu maps v{v}, which is live: its memory was overwritten",
                                    what(*loaded)
                                ),
                            ),
                            Some(State::Live) | None => {}
                        }
                    }
                }
                self.readers.entry(*cpu).or_default().push(Reader {
                    version: version.unwrap_or(0),
                    addr: *addr,
                    since: now,
                    seq: self.seq,
                    purpose,
                });
            }
            OsEvent::RcuUse {
                cpu,
                addr,
                about,
                bits,
            } => {
                // The version its reader found at that address (the memory may hold
                // another by now).
                let held = self
                    .readers
                    .get(cpu)
                    .and_then(|v| v.iter().rev().find(|r| r.addr == *addr))
                    .map(|r| r.version);
                let version = held.unwrap_or_else(|| self.at.get(addr).copied().unwrap_or(0));
                if held.is_none() {
                    report(
                        self.names.entity(*cpu),
                        obj(version),
                        format!(
                            "{cpu} used cpu maps v{version} outside a read-side section that holds it"
                        ),
                    );
                }
                match self.objects.get(&version) {
                    Some(Obj {
                        state: State::Freed(at),
                        ..
                    }) => report(
                        self.names.entity(*cpu),
                        obj(version),
                        format!(
                            "{cpu} used cpu maps v{version} (freed at {at}) to act on {about}, loading {}: use after free",
                            what(*bits)
                        ),
                    ),
                    Some(o) if o.online_word(*about) != *bits => report(
                        self.names.entity(*cpu),
                        obj(version),
                        format!(
                            "{cpu} acted on {about} with {bits:#x} loaded from cpu maps v{version}, which was published with {:#x}: its memory was overwritten",
                            o.online_word(*about)
                        ),
                    ),
                    Some(_) | None => {}
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
            | OsEvent::FramesManaged { .. }
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

/// A loaded word in words: the poison of a freed object is named.
fn what(w: u64) -> String {
    if w == crate::kernel::POISON {
        format!("the poison {w:#x}")
    } else {
        format!("{w:#x}")
    }
}
