//! The OS checkers: CHK-3 (task data), CHK-4 (scheduler), CHK-5 (RCU), the OS side of
//! CHK-6 (interrupts and IPIs) and the memory side of CHK-7 (allocator).
//!
//! Each rebuilds its own picture of the OS from the [`OsEvent`] stream alone — which task
//! is where, which map versions are live, who reads what, which CPUs are online — and
//! reports the moment the stream contradicts an invariant. At audits it compares that
//! picture with the OS's data structures and with the hardware.
//!
//! | checker | catches (defect that proves it) |
//! |---|---|
//! | CHK-3 task data | a task reads back something else than it last stored (`skip_cache_flush_on_cpu_remove`) |
//! | CHK-4 scheduler | a runnable task left on an offline or halted CPU, moved by anyone but the migration thread, on two runqueues, lost (`skip_task_migration`, `halt_before_offline`) |
//! | CHK-5 RCU | an object freed while a reader may hold it, used after free, a grace period ending under an older reader (`skip_rcu_grace_period`) |
//! | CHK-6 interrupts | an interrupt handled on an offline CPU, delivered and never handled, a cross-call never acknowledged (`skip_irq_reroute`) |
//! | CHK-7 allocator | a page freed while mapped or under I/O (`free_before_copy`, `ignore_writeback`), allocated from an isolated pageblock (`alloc_from_isolated`), buddy lists / mem_map / PTEs / reverse maps / kernel objects disagreeing at audits (`skip_unmovable_check`) |

use std::collections::BTreeMap;

use acpi_model::Platform;
use rustc_hash::FxHashMap;
use sim_core::{CheckerId, CpuId, Entity, Gsi, SimTime, Violation, Violations};

use crate::cpumask::{CpuMask, LogicalCpu};
use crate::event::{MemObj, OsEvent, TaskId};
use crate::kernel::Os;
use crate::sched::TaskState;

/// CHK-3.
pub const CHK_TASK_DATA: CheckerId = CheckerId {
    code: "CHK-3",
    name: "task-data",
};
/// CHK-4.
pub const CHK_SCHED: CheckerId = CheckerId {
    code: "CHK-4",
    name: "scheduler",
};
/// CHK-5.
pub const CHK_RCU: CheckerId = CheckerId {
    code: "CHK-5",
    name: "rcu",
};
/// CHK-6, OS side.
pub const CHK_OS_IRQ: CheckerId = CheckerId {
    code: "CHK-6",
    name: "os-interrupts",
};

/// CHK-7, memory side.
pub const CHK_ALLOC: CheckerId = CheckerId {
    code: "CHK-7",
    name: "allocator",
};

/// A checker of the OS.
pub trait OsChecker: Send {
    /// Who it is.
    fn id(&self) -> CheckerId;
    /// One event, as it happened.
    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations);
    /// The hardware as the event left it (read right after the OS step that emitted it),
    /// for a checker that must note where a hardware counter stood at that point.
    fn sample(&mut self, _now: SimTime, _ev: &OsEvent, _p: &Platform) {}
    /// A full comparison with the OS and the hardware.
    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations);
}

/// Every OS checker.
pub struct OsCheckers {
    list: Vec<Box<dyn OsChecker>>,
}

impl Default for OsCheckers {
    fn default() -> Self {
        OsCheckers {
            list: vec![
                Box::new(TaskDataChecker::default()),
                Box::new(SchedChecker::default()),
                Box::new(RcuChecker::default()),
                Box::new(IrqChecker::default()),
                Box::new(AllocChecker::default()),
            ],
        }
    }
}

impl OsCheckers {
    /// Their ids.
    pub fn ids(&self) -> Vec<CheckerId> {
        self.list.iter().map(|c| c.id()).collect()
    }
    /// Shows one event to all.
    pub fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        for c in &mut self.list {
            c.observe(now, ev, out);
        }
    }
    /// Shows one event to all, with the hardware as the OS step that emitted it left it.
    pub fn observe_on(&mut self, now: SimTime, ev: &OsEvent, p: &Platform, out: &mut Violations) {
        for c in &mut self.list {
            c.sample(now, ev, p);
            c.observe(now, ev, out);
        }
    }
    /// Audits all.
    pub fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        for c in &mut self.list {
            c.audit(now, os, p, out);
        }
    }
}

/// Logical → hardware CPU names, learnt from `CpuMapped` events.
#[derive(Clone, Debug, Default)]
struct Names(Vec<Option<CpuId>>);

impl Names {
    fn learn(&mut self, ev: &OsEvent) {
        if let OsEvent::CpuMapped { cpu, hw, .. } = ev {
            if self.0.len() <= cpu.index() {
                self.0.resize(cpu.index() + 1, None);
            }
            self.0[cpu.index()] = Some(*hw);
        }
    }
    fn entity(&self, c: LogicalCpu) -> Entity {
        match self.0.get(c.index()).copied().flatten() {
            Some(hw) => Entity::Cpu(hw),
            None => Entity::Object("logical-cpu", u64::from(c.0)),
        }
    }
}

fn violation(
    now: SimTime,
    checker: CheckerId,
    agent: Entity,
    target: Entity,
    message: String,
) -> Violation {
    Violation {
        time: now,
        checker,
        agent,
        target,
        message,
    }
}

/// Keeps the online and active maps as published.
#[derive(Clone, Debug, Default)]
struct Maps {
    online: Option<CpuMask>,
    active: Option<CpuMask>,
}

impl Maps {
    fn learn(&mut self, ev: &OsEvent) {
        if let OsEvent::MapsPublished { online, active, .. } = ev {
            self.online = Some(online.clone());
            self.active = Some(active.clone());
        }
    }
    fn online(&self, c: LogicalCpu) -> bool {
        self.online.as_ref().is_some_and(|m| m.contains(c))
    }
    fn active(&self, c: LogicalCpu) -> bool {
        self.active.as_ref().is_some_and(|m| m.contains(c))
    }
}

// ---------------------------------------------------------------------------------- CHK-3

/// CHK-3: every load of a user task returns what was last stored at that place of its
/// memory object (its anonymous memory, or a file shared with other tasks) — whatever page
/// migration, swap and removal did in between; and, at audits, every page of every object
/// holds exactly what it should, wherever it is (a frame, the swap device, the disk).
#[derive(Debug, Default)]
pub struct TaskDataChecker {
    /// Per object: the last value of each word slot of each page (dense), starting with the
    /// object's initial contents.
    objects: BTreeMap<MemObj, (u32, Vec<u64>)>,
    /// Where the next full-page audit starts.
    cursor: usize,
}

/// Pages whose every word an audit compares.
const FULL_PAGES_PER_AUDIT: usize = 64;

impl TaskDataChecker {
    fn initial(obj: MemObj, page: u32, word: u32) -> u64 {
        match obj {
            MemObj::Anon(_) => 0,
            MemObj::File(f) => crate::mm::vm::file_word(f, page, word),
        }
    }
}

impl OsChecker for TaskDataChecker {
    fn id(&self) -> CheckerId {
        CHK_TASK_DATA
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        if let OsEvent::PageDiscarded { obj, page } = ev {
            // Its contents are the object's initial ones again.
            if let Some((slots, words)) = self.objects.get_mut(obj) {
                let first = (*page * *slots) as usize;
                if let Some(w) = words.get_mut(first..first + *slots as usize) {
                    w.fill(u64::MAX);
                }
            }
            return;
        }
        if let OsEvent::MemObject { obj, pages, slots } = ev {
            // The expected contents start as the object's initial ones (u64::MAX marks them).
            self.objects
                .insert(*obj, (*slots, vec![u64::MAX; (*pages * *slots) as usize]));
            return;
        }
        let OsEvent::TaskAccess {
            task,
            cpu,
            obj,
            page,
            slot,
            word,
            addr,
            value,
            store,
        } = ev
        else {
            return;
        };
        let mut report = |message: String| {
            out.push(violation(
                now,
                CHK_TASK_DATA,
                Entity::Task(task.0),
                Entity::Memory(sim_core::PhysAddr::new(*addr)),
                message,
            ));
        };
        let Some((slots, words)) = self.objects.get_mut(obj) else {
            report(format!(
                "{task} on {cpu} accessed {obj}, which it was never given"
            ));
            return;
        };
        let Some(w) = words.get_mut((*page * *slots + *slot) as usize) else {
            report(format!(
                "{task} on {cpu} accessed page {page} slot {slot} of {obj}, outside it"
            ));
            return;
        };
        if *store {
            *w = *value;
            return;
        }
        // u64::MAX marks "initial contents".
        let want = if *w == u64::MAX {
            Self::initial(*obj, *page, *word)
        } else {
            *w
        };
        if want != *value {
            report(format!(
                "{task} on {cpu} read {value:#x} from page {page} slot {slot} of {obj} at \
                 {addr:#x}; the last value stored there is {want:#x}"
            ));
        }
        *w = *value;
    }

    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        let Some(vm) = os.vm() else {
            return;
        };
        let slots_cfg = os.config().memory.probe_words;
        let mut pages: Vec<(MemObj, u32)> = Vec::new();
        for (obj, (slots, words)) in &self.objects {
            let n = words.len() as u32 / (*slots).max(1);
            pages.extend((0..n).map(|pg| (*obj, pg)));
        }
        if pages.is_empty() {
            return;
        }
        let start = self.cursor % pages.len();
        let take = FULL_PAGES_PER_AUDIT.min(pages.len());
        self.cursor = start + take;
        let wpp = vm.wpp;
        for k in 0..take {
            let (obj, page) = pages[(start + k) % pages.len()];
            let Some(src) = crate::memory::locate(vm, obj, page) else {
                continue;
            };
            let (slots, words) = &self.objects[&obj];
            let mut bad: Option<(u32, u64, u64)> = None;
            for w in 0..wpp {
                let got = match &src {
                    crate::memory::Where::Frame(pfn) => {
                        let a = vm.phys.addr(*pfn) + 8 * u64::from(w);
                        match p.machine.coherent_peek(sim_core::PhysAddr::new(a)) {
                            Ok(v) => v,
                            Err(_) => continue,
                        }
                    }
                    crate::memory::Where::Data(d) => d.get(w as usize).copied().unwrap_or(0),
                    crate::memory::Where::Initial => Self::initial(obj, page, w),
                };
                let slot = (0..*slots).find(|&s| vm.probe_word(slots_cfg, page, s) == w);
                let want = match slot {
                    Some(s) => {
                        let v = words[(page * *slots + s) as usize];
                        if v == u64::MAX {
                            Self::initial(obj, page, w)
                        } else {
                            v
                        }
                    }
                    None => Self::initial(obj, page, w),
                };
                if got != want {
                    bad = Some((w, got, want));
                    break;
                }
            }
            if let Some((w, got, want)) = bad {
                out.push(violation(
                    now,
                    CHK_TASK_DATA,
                    Entity::Os(sim_core::OsId(0)),
                    Entity::Object("page", u64::from(page)),
                    format!(
                        "page {page} of {obj} ({}) holds {got:#x} in word {w}; it should hold \
                         {want:#x}",
                        src.describe(vm)
                    ),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------- CHK-7

/// CHK-7, memory side: no page is freed while a PTE still maps it (the kernel's "bad page
/// state"), none is allocated from a pageblock the event stream says is isolated; at audits,
/// the isolation it was told of is the allocator's, the buddy lists agree with the `mem_map` (every listed block free,
/// unmapped, on the list of its pageblock's type, nothing leaked), every present PTE maps an
/// allocated frame whose reverse map names it, and every kernel object lives in online
/// memory on a frame the allocator gave the kernel.
#[derive(Debug, Default)]
pub struct AllocChecker {
    /// Failed memory operations already judged.
    judged: Vec<u32>,
    /// Pageblocks isolated, as the event stream says (index: pfn / pageblock pages).
    isolated: Vec<bool>,
    /// Freed DMA buffers already reported as written after free, and leaked windows
    /// already reported: `(kind, address)`.
    reported: Vec<(u8, u64)>,
}

impl AllocChecker {
    fn pageblock(pfn: u32) -> usize {
        (pfn / crate::mm::PAGEBLOCK_PAGES) as usize
    }

    /// CHK-7, PCI side: every range the kernel reserved in a bridge window is a BAR of a
    /// device it has enabled (none left behind by a removal), and that device decodes it;
    /// no freed DMA buffer was written since it was freed (its poison is intact).
    fn audit_pci(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        let hp = os.pci_hotplug();
        let busy = hp.busy_slot();
        let mut report = |target: Entity, message: String| {
            out.push(violation(
                now,
                CHK_ALLOC,
                Entity::Os(sim_core::OsId(0)),
                target,
                message,
            ));
        };
        for (b, br) in hp.bridges.iter().enumerate() {
            for (what, alloc) in [("MMIO", &br.mmio), ("I/O", &br.io)] {
                for (start, len) in alloc.allocations() {
                    let owner = hp.slots.iter().find(|s| {
                        s.bridge == b
                            && s.bars.is_some_and(|((m, _), (i, _))| {
                                if what == "MMIO" {
                                    m == start
                                } else {
                                    i == start
                                }
                            })
                    });
                    let why = match owner {
                        None => Some("no device".to_owned()),
                        Some(s) if !s.enabled && busy != Some(s.sun) => Some(format!(
                            "slot {}, whose device is gone (its BARs were never released)",
                            s.sun.0
                        )),
                        Some(_) => None,
                    };
                    if let Some(why) = why {
                        if !self.reported.contains(&(1, start)) {
                            self.reported.push((1, start));
                            report(
                                Entity::Object("window", start),
                                format!(
                                    "{what} {start:#x}+{len:#x} of {} is reserved for {why}",
                                    br.path
                                ),
                            );
                        }
                    }
                }
            }
        }
        for s in hp.slots.iter().filter(|s| s.enabled) {
            let Some(((bar, size), _)) = s.bars else {
                continue;
            };
            let decodes =
                p.io.slot(s.sun)
                    .and_then(|x| x.card)
                    .and_then(|d| p.io.device(d))
                    .is_some_and(|d| d.decoded().iter().any(|&(_, b, z)| b == bar && z == size));
            let present =
                p.io.slot(s.sun)
                    .is_some_and(|x| x.card.is_some() && x.powered);
            if present && !decodes {
                report(
                    Entity::Pci(s.bdf),
                    format!(
                        "slot {}: the kernel reserved BAR0 {bar:#x}+{size:#x} for pci {}, which does not decode it",
                        s.sun.0, s.bdf
                    ),
                );
            }
        }
        for buf in &hp.poisoned {
            if self.reported.contains(&(2, buf.addr)) {
                continue;
            }
            let hit = (0..buf.len / 8).find_map(|w| {
                let a = buf.addr + 8 * w;
                p.machine
                    .coherent_peek(sim_core::PhysAddr::new(a))
                    .ok()
                    .filter(|&v| v != crate::kernel::POISON)
                    .map(|v| (a, v))
            });
            if let Some((a, v)) = hit {
                self.reported.push((2, buf.addr));
                report(
                    Entity::Memory(sim_core::PhysAddr::new(a)),
                    format!(
                        "DMA buffer {:#x}+{:#x} that the driver of pci {} freed at {} was written after it was freed ({a:#x} holds {v:#x}, not the poison): the device still writes into freed memory",
                        buf.addr, buf.len, buf.bdf, buf.freed
                    ),
                );
            }
        }
    }
}

impl OsChecker for AllocChecker {
    fn id(&self) -> CheckerId {
        CHK_ALLOC
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        if let OsEvent::PageblockIsolation { pfn, isolated } = ev {
            let i = Self::pageblock(*pfn);
            if i >= self.isolated.len() {
                self.isolated.resize(i + 1, false);
            }
            self.isolated[i] = *isolated;
            return;
        }
        if let OsEvent::PageAllocated { pfn, order } = ev {
            let first = Self::pageblock(*pfn);
            let last = Self::pageblock(pfn + (1u32 << order) - 1);
            if let Some(i) = (first..=last).find(|&i| self.isolated.get(i) == Some(&true)) {
                out.push(violation(
                    now,
                    CHK_ALLOC,
                    Entity::Os(sim_core::OsId(0)),
                    Entity::Object("pfn", u64::from(*pfn)),
                    format!(
                        "pfn {pfn:#x} (order {order}) allocated from the isolated pageblock at \
                         pfn {:#x}",
                        i as u32 * crate::mm::PAGEBLOCK_PAGES
                    ),
                ));
            }
            return;
        }
        if let OsEvent::PageFreed {
            pfn,
            order,
            mapped,
            busy,
            owner,
        } = ev
        {
            let states = crate::mm::page::busy::describe(*busy);
            let why = match (*mapped, *busy == 0) {
                (0, true) => return,
                (0, false) => format!("while {states}"),
                (m, true) => format!("while {m} PTEs still map it"),
                (m, false) => format!("while {states} and {m} PTEs still map it"),
            };
            out.push(violation(
                now,
                CHK_ALLOC,
                Entity::Os(sim_core::OsId(0)),
                Entity::Object("pfn", u64::from(*pfn)),
                format!("bad page state: pfn {pfn:#x} (order {order}, {owner}) freed {why}"),
            ));
        }
    }

    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        self.audit_pci(now, os, p, out);
        let Some(vm) = os.vm() else {
            return;
        };
        let mut report = |target: Entity, message: String| {
            out.push(violation(
                now,
                CHK_ALLOC,
                Entity::Os(sim_core::OsId(0)),
                target,
                message,
            ));
        };
        for f in vm.phys.audit().into_iter().take(4) {
            report(Entity::Object("pfn", u64::from(f.pfn)), f.message);
        }
        // The isolation the events told of is the allocator's.
        if let Some((i, t)) = vm.phys.pb_type.iter().enumerate().find(|&(i, t)| {
            (*t == crate::mm::MigrateType::Isolate) != (self.isolated.get(i) == Some(&true))
        }) {
            let pfn = i as u32 * crate::mm::PAGEBLOCK_PAGES;
            report(
                Entity::Object("pfn", u64::from(pfn)),
                format!(
                    "the pageblock at pfn {pfn:#x} is {} but its isolation was {}",
                    t.name(),
                    if self.isolated.get(i) == Some(&true) {
                        "announced and never released"
                    } else {
                        "never announced"
                    }
                ),
            );
        }
        // A failed offline that had moved nothing must leave everything as it found it.
        for op in os.mem_hotplug().done() {
            if self.judged.contains(&op.id) || op.result.as_ref().is_none_or(Result::is_ok) {
                continue;
            }
            self.judged.push(op.id);
            if op.restored_exactly == Some(false) {
                report(
                    Entity::Object("memory-op", u64::from(op.id)),
                    format!(
                        "memory operation {} failed but did not restore the allocator, mappings \
                         and block states it changed",
                        op.id
                    ),
                );
            }
        }
        let map = &vm.phys.map;
        'spaces: for sp in &vm.spaces {
            for (vpn, pte) in sp.ptes.iter().enumerate() {
                let crate::mm::vm::Pte::Present { pfn } = *pte else {
                    continue;
                };
                let i = pfn as usize;
                let r = crate::mm::PteRef {
                    mm: sp.id,
                    vpn: vpn as u32,
                };
                let bad = if i >= map.len() {
                    Some("a frame that does not exist".to_owned())
                } else if matches!(
                    map.owner[i],
                    crate::mm::Owner::Free | crate::mm::Owner::Offline
                ) {
                    Some(format!("pfn {pfn:#x}, which is {}", map.owner[i]))
                } else if !map.rmap[i].contains(&r) {
                    Some(format!(
                        "pfn {pfn:#x} ({}), whose reverse map does not name it",
                        map.owner[i]
                    ))
                } else {
                    None
                };
                if let Some(what) = bad {
                    report(
                        Entity::Object("mm", u64::from(sp.id)),
                        format!("mm{} maps virtual page {vpn} to {what}", sp.id),
                    );
                    break 'spaces;
                }
            }
        }
        for (what, addr) in os.kernel_objects() {
            let pfn = vm.phys.pfn(addr);
            let i = pfn as usize;
            let ok = i < map.len() && map.owner[i].is_kernel();
            if !ok {
                let owner = map
                    .owner
                    .get(i)
                    .map_or("nothing".to_owned(), ToString::to_string);
                report(
                    Entity::Memory(sim_core::PhysAddr::new(addr)),
                    format!(
                        "kernel object {what} at {addr:#x} lies in pfn {pfn:#x}, which is {owner}"
                    ),
                );
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------------- CHK-4

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    New,
    Queued(LogicalCpu),
    Running(LogicalCpu),
    Sleeping(LogicalCpu),
    Blocked,
    Parked,
}

#[derive(Clone, Debug)]
struct TaskInfo {
    name: String,
    /// The CPU a per-CPU kernel thread belongs to.
    kthread: Option<LogicalCpu>,
    migration: bool,
    loc: Loc,
}

/// CHK-4: every runnable task is on exactly one runqueue of an online CPU; none ever runs on
/// an offline CPU; only the migration thread moves tasks between runqueues; none is lost.
#[derive(Debug, Default)]
pub struct SchedChecker {
    names: Names,
    maps: Maps,
    tasks: Vec<Option<TaskInfo>>,
    running: BTreeMap<LogicalCpu, TaskId>,
    halted: Vec<LogicalCpu>,
    reported: Vec<(TaskId, LogicalCpu)>,
}

impl SchedChecker {
    fn task(&self, t: TaskId) -> Option<&TaskInfo> {
        self.tasks.get(t.0 as usize).and_then(Option::as_ref)
    }
    fn loc(&self, t: TaskId) -> Loc {
        self.task(t).map_or(Loc::New, |x| x.loc)
    }
    fn set(&mut self, t: TaskId, loc: Loc) {
        if let Some(Some(x)) = self.tasks.get_mut(t.0 as usize) {
            x.loc = loc;
        }
    }
    fn label(&self, t: TaskId) -> String {
        self.task(t)
            .map_or_else(|| t.to_string(), |x| format!("{t} ({})", x.name))
    }
}

impl OsChecker for SchedChecker {
    fn id(&self) -> CheckerId {
        CHK_SCHED
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        let mut report = |agent: Entity, target: Entity, msg: String| {
            out.push(violation(now, CHK_SCHED, agent, target, msg));
        };
        match ev {
            OsEvent::CpuMapped { .. } => self.names.learn(ev),
            OsEvent::TaskCreated {
                task,
                name,
                kind,
                cpu,
                ..
            } => {
                let i = task.0 as usize;
                if self.tasks.len() <= i {
                    self.tasks.resize(i + 1, None);
                }
                self.tasks[i] = Some(TaskInfo {
                    name: name.clone(),
                    kthread: (*kind != "user").then_some(*cpu),
                    migration: *kind == "migration",
                    loc: if *kind == "user" {
                        Loc::New
                    } else {
                        Loc::Blocked
                    },
                });
            }
            OsEvent::Enqueue {
                task, cpu, kthread, ..
            } => {
                match self.loc(*task) {
                    Loc::Queued(c) | Loc::Running(c) => report(
                        self.names.entity(*cpu),
                        Entity::Task(task.0),
                        format!(
                            "{} put on {cpu}'s runqueue while it is on {c}'s: on two runqueues",
                            self.label(*task)
                        ),
                    ),
                    Loc::New | Loc::Sleeping(_) | Loc::Blocked | Loc::Parked => {}
                }
                let own = self.task(*task).and_then(|x| x.kthread);
                if *kthread && own != Some(*cpu) {
                    report(
                        self.names.entity(*cpu),
                        Entity::Task(task.0),
                        format!(
                            "per-CPU thread {} put on {cpu}'s runqueue",
                            self.label(*task)
                        ),
                    );
                }
                if !*kthread && !self.maps.active(*cpu) {
                    report(
                        self.names.entity(*cpu),
                        Entity::Task(task.0),
                        format!(
                            "{} put on the runqueue of {cpu}, which is not active",
                            self.label(*task)
                        ),
                    );
                }
                self.set(*task, Loc::Queued(*cpu));
            }
            OsEvent::Migrate { task, from, to, by } => {
                if self.loc(*task) != Loc::Queued(*from) {
                    report(
                        Entity::Task(by.0),
                        Entity::Task(task.0),
                        format!(
                            "{} moved from {from}'s runqueue, where it was not queued ({:?})",
                            self.label(*task),
                            self.loc(*task)
                        ),
                    );
                }
                let mover_ok = self
                    .task(*by)
                    .is_some_and(|x| x.migration && x.kthread == Some(*from));
                if !mover_ok {
                    report(
                        Entity::Task(by.0),
                        Entity::Task(task.0),
                        format!(
                            "{} moved {} between runqueues; only {from}'s migration thread may",
                            self.label(*by),
                            self.label(*task)
                        ),
                    );
                }
                if !self.maps.active(*to) {
                    report(
                        Entity::Task(by.0),
                        self.names.entity(*to),
                        format!("{} moved to {to}, which is not active", self.label(*task)),
                    );
                }
                self.set(*task, Loc::Queued(*to));
            }
            OsEvent::Switch { cpu, task, .. } => {
                if let Some(prev) = self.running.remove(cpu) {
                    if self.loc(prev) == Loc::Running(*cpu) {
                        self.set(prev, Loc::Queued(*cpu));
                    }
                }
                if let Some(n) = task {
                    if self.loc(*n) != Loc::Queued(*cpu) {
                        report(
                            self.names.entity(*cpu),
                            Entity::Task(n.0),
                            format!(
                                "{cpu} switched to {}, which was not on its runqueue ({:?})",
                                self.label(*n),
                                self.loc(*n)
                            ),
                        );
                    }
                    let own = self.task(*n).and_then(|x| x.kthread);
                    match own {
                        Some(k) if k != *cpu => report(
                            self.names.entity(*cpu),
                            Entity::Task(n.0),
                            format!("per-CPU thread {} ran on {cpu}", self.label(*n)),
                        ),
                        Some(_) => {}
                        None => {
                            if !self.maps.online(*cpu) {
                                report(
                                    self.names.entity(*cpu),
                                    Entity::Task(n.0),
                                    format!("{} runs on {cpu}, which is offline", self.label(*n)),
                                );
                            }
                        }
                    }
                    self.set(*n, Loc::Running(*cpu));
                    self.running.insert(*cpu, *n);
                }
            }
            OsEvent::Sleep {
                task,
                cpu,
                timer_cpu,
                ..
            } => {
                if self.loc(*task) != Loc::Running(*cpu) {
                    report(
                        self.names.entity(*cpu),
                        Entity::Task(task.0),
                        format!(
                            "{} went to sleep on {cpu} without running there",
                            self.label(*task)
                        ),
                    );
                }
                self.set(*task, Loc::Sleeping(*timer_cpu));
            }
            OsEvent::Block { task, .. } => self.set(*task, Loc::Blocked),
            OsEvent::Park { task, parked, .. } => {
                self.set(*task, if *parked { Loc::Parked } else { Loc::Blocked });
            }
            OsEvent::TimersMoved { to, tasks, .. } => {
                for t in tasks {
                    self.set(*t, Loc::Sleeping(*to));
                }
            }
            OsEvent::MapsPublished { online, active, .. } => {
                let before = self.maps.online.clone();
                for c in before.iter().flat_map(|m| m.iter()) {
                    if online.contains(c) {
                        continue;
                    }
                    for (i, info) in self.tasks.iter().enumerate() {
                        let Some(info) = info else { continue };
                        let here = matches!(info.loc, Loc::Queued(x) | Loc::Running(x) if x == c);
                        if !here {
                            continue;
                        }
                        let t = TaskId(i as u32);
                        let what = if info.kthread.is_some() {
                            format!("per-CPU thread {} ({}) was not stopped", t, info.name)
                        } else {
                            format!("{t} ({}) is left on its runqueue: it is lost", info.name)
                        };
                        report(
                            self.names.entity(c),
                            Entity::Task(t.0),
                            format!("{c} left the online map but {what}"),
                        );
                        self.reported.push((t, c));
                    }
                }
                for c in online.iter() {
                    self.halted.retain(|&h| h != c);
                }
                self.maps.online = Some(online.clone());
                self.maps.active = Some(active.clone());
            }
            OsEvent::CpuHalted { cpu, .. } => {
                if self.maps.online(*cpu) {
                    report(
                        self.names.entity(*cpu),
                        self.names.entity(*cpu),
                        format!("{cpu} was halted while still in the online map"),
                    );
                }
                for (i, info) in self.tasks.iter().enumerate() {
                    let Some(info) = info else { continue };
                    if matches!(info.loc, Loc::Queued(x) | Loc::Running(x) if x == *cpu)
                        && info.kthread.is_none()
                    {
                        let t = TaskId(i as u32);
                        if !self.reported.contains(&(t, *cpu)) {
                            report(
                                self.names.entity(*cpu),
                                Entity::Task(t.0),
                                format!(
                                    "{cpu} halted with {t} ({}) runnable on its runqueue: it will never run",
                                    info.name
                                ),
                            );
                            self.reported.push((t, *cpu));
                        }
                    }
                }
                self.halted.push(*cpu);
            }
            OsEvent::Booted { .. }
            | OsEvent::MapsFreed { .. }
            | OsEvent::RcuLock { .. }
            | OsEvent::RcuUse { .. }
            | OsEvent::RcuUnlock { .. }
            | OsEvent::QuiescentState { .. }
            | OsEvent::GpStart { .. }
            | OsEvent::GpEnd { .. }
            | OsEvent::RcuCpu { .. }
            | OsEvent::TaskAccess { .. }
            | OsEvent::IpiSent { .. }
            | OsEvent::IpiHandled { .. }
            | OsEvent::CsdQueued { .. }
            | OsEvent::CsdDone { .. }
            | OsEvent::CsdTimeout { .. }
            | OsEvent::IrqRouted { .. }
            | OsEvent::IrqHandled { .. }
            | OsEvent::IrqDisabled { .. }
            | OsEvent::HotplugStart { .. }
            | OsEvent::HotplugStep { .. }
            | OsEvent::HotplugEnd { .. }
            | OsEvent::MemObject { .. }
            | OsEvent::PageAllocated { .. }
            | OsEvent::PageblockIsolation { .. }
            | OsEvent::PageFreed { .. }
            | OsEvent::PageDiscarded { .. }
            | OsEvent::MemHotplugStart { .. }
            | OsEvent::MemHotplugStep { .. }
            | OsEvent::MemHotplugEnd { .. }
            | OsEvent::PciHotplugStart { .. }
            | OsEvent::PciHotplugStep { .. }
            | OsEvent::PciHotplugEnd { .. }
            | OsEvent::HotplugRefused { .. }
            | OsEvent::RequestRefused { .. }
            | OsEvent::AcpiNotify { .. } => {}
        }
    }

    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        // Every task the checker saw is where the OS says, and on exactly one runqueue.
        let mut count: FxHashMap<u32, u32> = FxHashMap::default();
        for pc in os.per_cpu() {
            for t in pc.rq.iter().chain(pc.kq.iter()) {
                *count.entry(t.0).or_default() += 1;
            }
        }
        for task in os.tasks() {
            let id = task.id;
            let queued_on = match task.state {
                TaskState::Queued(c) => Some(c),
                TaskState::Running(_)
                | TaskState::Sleeping { .. }
                | TaskState::Waking(_)
                | TaskState::Blocked
                | TaskState::Parked => None,
            };
            let n = count.get(&id.0).copied().unwrap_or(0);
            let expect = u32::from(queued_on.is_some());
            if n != expect {
                out.push(violation(
                    now,
                    CHK_SCHED,
                    Entity::Os(sim_core::OsId(0)),
                    Entity::Task(id.0),
                    format!(
                        "{} is on {n} runqueues (state {:?})",
                        self.label(id),
                        task.state
                    ),
                ));
            }
            let shadow = self.loc(id);
            let agrees = match (task.state, shadow) {
                (TaskState::Queued(a), Loc::Queued(b))
                | (TaskState::Running(a), Loc::Running(b)) => a == b,
                (TaskState::Sleeping { timer_cpu, .. }, Loc::Sleeping(b)) => timer_cpu == b,
                (TaskState::Waking(a), Loc::Sleeping(b)) => a == b,
                (TaskState::Blocked, Loc::Blocked) | (TaskState::Parked, Loc::Parked) => true,
                _ => false,
            };
            if !agrees {
                out.push(violation(
                    now,
                    CHK_SCHED,
                    Entity::Os(sim_core::OsId(0)),
                    Entity::Task(id.0),
                    format!(
                        "{}: the OS says {:?}, its events said {shadow:?}",
                        self.label(id),
                        task.state
                    ),
                ));
                continue;
            }
            let runnable_on = match shadow {
                Loc::Queued(c) | Loc::Running(c) => Some(c),
                Loc::New | Loc::Sleeping(_) | Loc::Blocked | Loc::Parked => None,
            };
            if let Some(c) = runnable_on {
                let hw_running = os.per_cpu()[c.index()]
                    .hw
                    .and_then(|h| p.machine.cpu(h))
                    .is_some_and(|x| x.state.is_running());
                if !hw_running && !self.reported.contains(&(id, c)) {
                    out.push(violation(
                        now,
                        CHK_SCHED,
                        self.names.entity(c),
                        Entity::Task(id.0),
                        format!(
                            "{} is runnable on {c}, which is not running: it will never run",
                            self.label(id)
                        ),
                    ));
                    self.reported.push((id, c));
                }
            }
            if let Loc::Sleeping(c) = shadow {
                if !self.maps.online(c) && !self.reported.contains(&(id, c)) {
                    out.push(violation(
                        now,
                        CHK_SCHED,
                        self.names.entity(c),
                        Entity::Task(id.0),
                        format!(
                            "{}'s wakeup timer is on {c}, which is offline: it will never wake",
                            self.label(id)
                        ),
                    ));
                    self.reported.push((id, c));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------- CHK-5

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
            | OsEvent::CpuHalted { .. }
            | OsEvent::HotplugStart { .. }
            | OsEvent::HotplugStep { .. }
            | OsEvent::HotplugEnd { .. }
            | OsEvent::MemObject { .. }
            | OsEvent::PageAllocated { .. }
            | OsEvent::PageblockIsolation { .. }
            | OsEvent::PageFreed { .. }
            | OsEvent::PageDiscarded { .. }
            | OsEvent::MemHotplugStart { .. }
            | OsEvent::MemHotplugStep { .. }
            | OsEvent::MemHotplugEnd { .. }
            | OsEvent::PciHotplugStart { .. }
            | OsEvent::PciHotplugStep { .. }
            | OsEvent::PciHotplugEnd { .. }
            | OsEvent::HotplugRefused { .. }
            | OsEvent::RequestRefused { .. }
            | OsEvent::AcpiNotify { .. } => {}
        }
    }

    fn audit(&mut self, _now: SimTime, _os: &Os, _p: &Platform, _out: &mut Violations) {}
}

// ---------------------------------------------------------------------------------- CHK-6

/// Whether `vector` is pending in some running CPU's IRR.
fn vector_pending(p: &Platform, vector: u8) -> bool {
    let bit = 1u64 << (vector % 64);
    p.machine
        .cpus()
        .iter()
        .any(|c| c.state.is_running() && c.irr[usize::from(vector / 64)] & bit != 0)
}

/// CHK-6, OS side: every interrupt a device raised is delivered once and handled once, on an
/// online CPU, across re-routing; every cross-call IPI is acknowledged.
#[derive(Debug, Default)]
pub struct IrqChecker {
    names: Names,
    maps: Maps,
    handled: BTreeMap<u32, u64>,
    /// Where each GSI's count started again: when the kernel routed it afresh (a new
    /// device, or the same one after its IO SAPIC came back), the interrupts the line had
    /// delivered and the handlings seen then, and whether one was still pending in a CPU
    /// (delivered for the old routing, taken — or merged with a new one — later).
    since: BTreeMap<u32, (u64, u64, bool)>,
    lost_reported: BTreeMap<u32, u64>,
    /// GSIs of enabled devices already reported as never routed.
    unrouted_reported: Vec<u32>,
}

impl OsChecker for IrqChecker {
    fn id(&self) -> CheckerId {
        CHK_OS_IRQ
    }

    fn sample(&mut self, _now: SimTime, ev: &OsEvent, p: &Platform) {
        if let OsEvent::IrqRouted {
            gsi, from: None, ..
        } = ev
        {
            let pending = p.io.gsi_entry(Gsi(*gsi)).is_some_and(|(sid, e)| {
                p.io.subsystem(sid)
                    .and_then(|s| s.sapic.entries().get(e))
                    .is_some_and(|r| vector_pending(p, r.vector))
            });
            let handled = self.handled.get(gsi).copied().unwrap_or(0);
            self.since
                .insert(*gsi, (p.io.gsi_deliveries(Gsi(*gsi)), handled, pending));
        }
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        self.names.learn(ev);
        self.maps.learn(ev);
        let mut report = |agent: Entity, target: Entity, msg: String| {
            out.push(violation(now, CHK_OS_IRQ, agent, target, msg));
        };
        if let OsEvent::IrqHandled { gsi, vector, cpu } = ev {
            *self.handled.entry(*gsi).or_default() += 1;
            if !self.maps.online(*cpu) {
                report(
                    Entity::Gsi(Gsi(*gsi)),
                    self.names.entity(*cpu),
                    format!(
                        "interrupt gsi{gsi} (vector {vector:#04x}) handled on {cpu}, which is offline"
                    ),
                );
            }
        } else if let OsEvent::IrqRouted { gsi, cpu, from, .. } = ev {
            let n = self.handled.entry(*gsi).or_default();
            if from.is_none() {
                if let Some(s) = self.since.get_mut(gsi) {
                    s.1 = *n;
                }
            }
            if !self.maps.active(*cpu) {
                report(
                    Entity::Gsi(Gsi(*gsi)),
                    self.names.entity(*cpu),
                    format!(
                        "gsi{gsi} routed to {cpu}, which is not active{}",
                        from.map_or_else(String::new, |f| format!(" (moved from {f})"))
                    ),
                );
            }
        } else if let OsEvent::IrqDisabled {
            gsi,
            vector,
            unhandled,
        } = ev
        {
            report(
                Entity::Os(sim_core::OsId(0)),
                Entity::Gsi(Gsi(*gsi)),
                format!(
                    "irq gsi{gsi} (vector {vector:#04x}): nobody cared — {unhandled} interrupts in a row no handler claimed; the line was disabled (a device interrupts that no driver drives)"
                ),
            );
        } else if let OsEvent::CsdTimeout {
            id,
            from,
            to,
            waited,
        } = ev
        {
            report(
                self.names.entity(*from),
                self.names.entity(*to),
                format!(
                    "cross-call {id} from {from} to {to} was never acknowledged (waited {waited}): the IPI did not reach a running CPU"
                ),
            );
        }
    }

    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        // Every device the kernel enabled has its interrupt routed: an asserted line that
        // no entry delivers (held in a masked entry nobody programs) is lost for good.
        for s in os.pci_hotplug().slots.iter().filter(|s| s.enabled) {
            let Some(k) = s.card else {
                continue;
            };
            let gsi = os.driver.cards()[k].gsi;
            let routed = os.irqs.descs().iter().any(|d| d.gsi == gsi && !d.freed);
            let Some((sid, e)) = p.io.gsi_entry(Gsi(gsi)) else {
                continue;
            };
            let held =
                p.io.subsystem(sid)
                    .and_then(|x| x.sapic.entries().get(e))
                    .is_some_and(|r| r.asserted > 0 && r.masked);
            if held && !routed && !self.unrouted_reported.contains(&gsi) {
                self.unrouted_reported.push(gsi);
                out.push(violation(
                    now,
                    CHK_OS_IRQ,
                    Entity::Pci(s.bdf),
                    Entity::Gsi(Gsi(gsi)),
                    format!(
                        "pci {} in slot {} asserts gsi{gsi}, held in a masked entry of {sid}: the kernel enabled the device but never routed its interrupt",
                        s.bdf, s.sun.0
                    ),
                ));
            }
        }
        for (&gsi, &handled) in &self.handled {
            let Some((sid, e)) = p.io.gsi_entry(Gsi(gsi)) else {
                continue;
            };
            let Some(sub) = p.io.subsystem(sid).filter(|s| s.state.is_powered()) else {
                continue;
            };
            let Some(rte) = sub.sapic.entries().get(e) else {
                continue;
            };
            // Counted on the line (the entry's own counter starts again when its IO SAPIC
            // is powered on anew), since the kernel last routed the GSI afresh.
            let (d0, h0, stale) = self.since.get(&gsi).copied().unwrap_or((0, 0, false));
            let delivered = p.io.gsi_deliveries(Gsi(gsi)) - d0;
            let handled = handled - h0;
            // Vectors are per IRQ: pending in any running CPU's IRR means on its way.
            let in_flight = vector_pending(p, rte.vector);
            let missing = delivered.saturating_sub(handled + u64::from(in_flight));
            // An interrupt of the old routing still pending when the GSI was routed anew is
            // taken under the new one (or the two merge in the IRR bit).
            if handled > delivered + u64::from(stale) {
                out.push(violation(
                    now,
                    CHK_OS_IRQ,
                    Entity::Gsi(Gsi(gsi)),
                    Entity::IoSapic(sid),
                    format!("gsi{gsi} was handled {handled} times but delivered only {delivered}"),
                ));
            }
            let already = self.lost_reported.get(&gsi).copied().unwrap_or(0);
            if missing > already {
                let dest = p
                    .machine
                    .cpu_by_lsapic(rte.dest)
                    .map_or_else(|| rte.dest.to_string(), |c| c.to_string());
                out.push(violation(
                    now,
                    CHK_OS_IRQ,
                    Entity::Gsi(Gsi(gsi)),
                    Entity::IoSapic(sid),
                    format!(
                        "gsi{gsi}: {delivered} interrupts delivered, {handled} handled, {} lost (destination {dest})",
                        missing - already
                    ),
                ));
                self.lost_reported.insert(gsi, missing);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EnqueueWhy, Step};

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

    #[test]
    fn rcu_checker_catches_free_under_a_reader_and_use_after_free() {
        let lock = OsEvent::RcuLock {
            cpu: c(1),
            version: 1,
            purpose: "test",
        };
        let use_ = OsEvent::RcuUse {
            cpu: c(1),
            version: 1,
            about: c(2),
        };
        let ok = feed(
            &mut RcuChecker::default(),
            &[
                publish(1, &[0, 1, 2]),
                lock.clone(),
                publish(2, &[0, 1]),
                use_.clone(),
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
                lock,
                publish(2, &[0, 1]),
                OsEvent::MapsFreed {
                    version: 1,
                    by: c(0),
                },
                use_,
            ],
        );
        assert_eq!(bad.total(), 2, "{:?}", bad.kept());
        assert!(bad.kept()[0].message.contains("still holds it"));
        assert!(bad.kept()[1].message.contains("use after free"));
    }

    #[test]
    fn rcu_checker_catches_a_grace_period_ending_under_an_older_reader() {
        let out = feed(
            &mut RcuChecker::default(),
            &[
                publish(1, &[0, 1]),
                OsEvent::RcuLock {
                    cpu: c(1),
                    version: 1,
                    purpose: "test",
                },
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
                OsEvent::PageFreed {
                    pfn: 6,
                    order: 0,
                    mapped: 2,
                    busy: 0,
                    owner: crate::mm::Owner::File { file: 1, page: 3 },
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
        assert!(out.kept()[0].message.contains("bad page state"));
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
                },
                OsEvent::CsdTimeout {
                    id: 1,
                    from: c(0),
                    to: c(1),
                    waited: sim_core::SimDuration::from_millis(2),
                },
            ],
        );
        assert_eq!(out.count("CHK-6"), 2);
        let _ = Step::Halt;
    }
}
