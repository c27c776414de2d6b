//! CHK-7, memory side: the allocator, `mem_map`, page tables and reverse maps agree with what
//! the event stream says.

use std::collections::{BTreeMap, BTreeSet};

use acpi_model::Platform;
use sim_core::{CheckerId, Entity, SimTime, Violations};

use super::{CHK_ALLOC, OsChecker, by_kernel};
use crate::event::OsEvent;
use crate::kernel::Os;

/// CHK-7, memory side: no page is freed while a page-table word still maps it (the kernel's
/// "bad page state", judged from its own record of the words stored, not the kernel's reverse
/// map), none is allocated from a pageblock the event stream says is isolated, a failed
/// memory operation releases every pageblock it isolated, no memory goes offline with a
/// frame in it still handed out; after each operation every frame handed out has an owner
/// that still exists (the leak audit); at audits, the isolation it was told of is the
/// allocator's, the free lists hold exactly the frames its own record says are free (given
/// to the allocator by a block coming online and not handed out, or freed since — none
/// lost, none offline, none listed while handed out), every page-table word read from
/// memory is the kernel's copy and maps an allocated frame whose reverse map names it, and
/// every kernel object lies on a frame the allocator handed out and has not got back.
#[derive(Debug, Default)]
pub struct AllocChecker {
    /// Pageblocks isolated, as the event stream says (index: pfn / pageblock pages).
    isolated: Vec<bool>,
    /// Freed DMA buffers already reported as written after free, and leaked windows
    /// already reported: `(kind, address)`.
    reported: Vec<(u8, u64)>,
    /// Its own record of the page tables, from the words stored into them.
    ptes: PteRecord,
    /// Its own record of the frames the allocator handed out and has not taken back, from
    /// the allocation and free events (index: pfn).
    allocated: bitvec::vec::BitVec,
    /// Its own record of the frames the allocator was given and has not had taken away
    /// again (online memory but its `mem_map` and reserve), from [`OsEvent::FramesManaged`]
    /// (index: pfn).
    managed: bitvec::vec::BitVec,
    /// Frames the leak audit reported (not reported again until allocated anew).
    leaked: bitvec::vec::BitVec,
    /// A hot-plug operation ended since the last leak audit.
    leak_audit_due: bool,
    /// Memory operations running, with the pageblocks isolated since each started.
    mem_ops: BTreeMap<u32, BTreeSet<usize>>,
}

/// What the page-table words the kernel stored map, kept from [`OsEvent::PteWritten`]: per
/// address space and virtual page the frame its word references (present or under
/// migration), per frame how many words reference it, per page-table page (a page of one
/// address space, holding consecutive virtual pages) the span of entries written into it —
/// they go with it when it is freed. All dense, by frame or virtual page.
#[derive(Debug, Default)]
struct PteRecord {
    entries: Vec<Vec<u32>>,
    refs: Vec<u32>,
    /// By page-table frame: `(mm, lowest vpn, highest vpn)` written there (`mm` NONE: none).
    tables: Vec<(u32, u32, u32)>,
}

impl PteRecord {
    const NONE: u32 = u32::MAX;

    fn set(&mut self, mm: u32, vpn: u32, pfn: u32) {
        let (m, v) = (mm as usize, vpn as usize);
        if self.entries.len() <= m {
            self.entries.resize_with(m + 1, Vec::new);
        }
        let e = &mut self.entries[m];
        if e.len() <= v {
            e.resize(v + 1, Self::NONE);
        }
        let old = std::mem::replace(&mut e[v], pfn);
        if old != Self::NONE {
            self.refs[old as usize] -= 1;
        }
        if pfn != Self::NONE {
            if self.refs.len() <= pfn as usize {
                self.refs.resize(pfn as usize + 1, 0);
            }
            self.refs[pfn as usize] += 1;
        }
    }

    fn written(&mut self, mm: u32, vpn: u32, table: u32, word: u64) {
        let pfn = match crate::mm::vm::Pte::decode(word) {
            crate::mm::vm::Pte::Present { pfn } | crate::mm::vm::Pte::Migration { pfn } => pfn,
            crate::mm::vm::Pte::None
            | crate::mm::vm::Pte::Swap { .. }
            | crate::mm::vm::Pte::FileHole => Self::NONE,
        };
        self.set(mm, vpn, pfn);
        let t = table as usize;
        if self.tables.len() <= t {
            self.tables.resize(t + 1, (Self::NONE, 0, 0));
        }
        let span = &mut self.tables[t];
        *span = if span.0 == mm {
            (mm, span.1.min(vpn), span.2.max(vpn))
        } else {
            (mm, vpn, vpn)
        };
    }

    /// Frames `pfn .. pfn + n` were freed: words in them are gone. Returns how many words
    /// still referenced them.
    fn freed(&mut self, pfn: u32, n: u32) -> u32 {
        let refs = (pfn..pfn + n)
            .map(|f| self.refs.get(f as usize).copied().unwrap_or(0))
            .sum();
        for f in pfn..pfn + n {
            let Some(span) = self.tables.get_mut(f as usize) else {
                break;
            };
            let (mm, lo, hi) = std::mem::replace(span, (Self::NONE, 0, 0));
            if mm != Self::NONE {
                for vpn in lo..=hi {
                    self.set(mm, vpn, Self::NONE);
                }
            }
        }
        refs
    }
}

impl AllocChecker {
    fn pageblock(pfn: u32) -> usize {
        (pfn / crate::mm::PAGEBLOCK_PAGES) as usize
    }

    /// A memory operation ended: if it failed, every pageblock it isolated is released
    /// again (this checker's own record of the isolation events), as a failed
    /// `offline_pages` undoes `start_isolate_page_range`.
    fn judge_failed_op(
        &mut self,
        now: SimTime,
        op: u32,
        result: &Result<(), String>,
        out: &mut Violations,
    ) {
        let Some(pbs) = self.mem_ops.remove(&op) else {
            return;
        };
        let Err(why) = result else {
            return;
        };
        let left: Vec<usize> = pbs
            .into_iter()
            .filter(|&i| self.isolated.get(i) == Some(&true))
            .collect();
        if let Some(&first) = left.first() {
            out.push(by_kernel(
 now,
 CHK_ALLOC,
 Entity::Object("memory-op", u64::from(op)),
                format!(
                    "memory operation {op} failed ({why}) but left {} pageblock{} it isolated still isolated, from pfn {:#x}: nothing can be allocated there any more",
                    left.len(),
                    if left.len() == 1 { "" } else { "s" },
                    first as u32 * crate::mm::PAGEBLOCK_PAGES
                ),
            ));
        }
    }

    /// Records frames `pfn .. pfn + 2^order` as handed out (or taken back).
    fn mark(&mut self, pfn: u32, order: u8, on: bool) {
        fill(&mut self.allocated, pfn, 1 << order, on);
        fill(&mut self.leaked, pfn, 1 << order, false);
    }

    /// Frames `pfn .. pfn + pages` entered the allocator or left it. Memory leaves only
    /// when nothing in it is handed out: a frame this checker saw allocated and never
    /// freed goes offline with it otherwise (what it held is lost with the memory).
    fn managed(&mut self, now: SimTime, pfn: u32, pages: u32, on: bool, out: &mut Violations) {
        if !on {
            let (lo, hi) = (pfn as usize, (pfn + pages) as usize);
            let held = self
                .allocated
                .get(lo..hi.min(self.allocated.len()))
                .map_or(0, |r| r.count_ones());
            if held > 0 {
                let first = lo + self.allocated[lo..].first_one().unwrap_or(0);
                fill(&mut self.allocated, pfn, pages, false);
                out.push(by_kernel(
                    now,
                    CHK_ALLOC,
                    Entity::Object("pfn", first as u64),
                    format!(
                        "frames {pfn:#x}..{:#x} went offline with {held} of them still handed out (from pfn {first:#x}), never freed: what they held is gone with the memory",
                        pfn + pages
                    ),
                ));
            }
        }
        fill(&mut self.managed, pfn, pages, on);
    }

    /// The free lists against this checker's record: a frame is on them exactly when the
    /// allocator was given it (online memory) and every allocation of it was freed again,
    /// as the events told. One report per kind of disagreement, naming the first frame; a
    /// disagreement already reported is not reported again.
    fn audit_free_lists(&mut self, now: SimTime, phys: &crate::mm::PhysMem, out: &mut Violations) {
        let n = phys.map.len();
        let (listed, twice) = phys.listed();
        self.managed.resize(n, false);
        self.allocated.resize(n, false);
        // Free by the record: given to the allocator and not handed out.
        let mut expected = self.managed.clone();
        expected &= !self.allocated.clone();
        let mut diff = listed.clone();
        diff ^= &expected;
        let mut kinds: [(Option<usize>, u32); 3] = [(None, 0); 3];
        for pfn in diff.iter_ones() {
            let k = if !listed[pfn] {
                0
            } else if !self.managed[pfn] {
                1
            } else {
                2
            };
            kinds[k].0.get_or_insert(pfn);
            kinds[k].1 += 1;
        }
        let mut report = |code: u8, pfn: usize, message: String| {
            if !self.reported.contains(&(code, pfn as u64)) {
                self.reported.push((code, pfn as u64));
                out.push(by_kernel(
                    now,
                    CHK_ALLOC,
                    Entity::Object("pfn", pfn as u64),
                    message,
                ));
            }
        };
        let pages = |k: u32| if k == 1 { "frame" } else { "frames" };
        let are = |k: u32| if k == 1 { "is" } else { "are" };
        let were = |k: u32| if k == 1 { "was" } else { "were" };
        if let (Some(f), k) = kinds[0] {
            report(
                3,
                f,
                format!(
                    "{k} {} from pfn {f:#x} the allocator was given and got back {} on no free list: lost to the allocator",
                    pages(k),
                    are(k)
                ),
            );
        }
        if let (Some(f), k) = kinds[1] {
            report(
                4,
                f,
                format!(
                    "{k} {} from pfn {f:#x} {} on the free lists but {} taken from the allocator (their memory went offline) or never given to it: memory that is not there can be handed out",
                    pages(k),
                    are(k),
                    were(k)
                ),
            );
        }
        if let (Some(f), k) = kinds[2] {
            report(
                5,
                f,
                format!(
                    "{k} {} from pfn {f:#x} {} on the free lists but {} handed out and never freed: the allocator can hand {} out twice",
                    pages(k),
                    are(k),
                    were(k),
                    if k == 1 { "it" } else { "them" }
                ),
            );
        }
        if let Some(f) = twice {
            report(
                6,
                f as usize,
                format!("the free block at pfn {f:#x} overlaps another on the free lists"),
            );
        }
    }

    /// The leak audit, after each hot-plug operation: every frame the allocator handed out
    /// and never took back (this checker's own record) belongs to something that still
    /// exists — the `mem_map` of a block that is not offline, the page table of an address
    /// space that is there, the `pg_data` of an online node (kmemleak's question, asked of
    /// the owners the kernel can still name).
    fn audit_leaks(&mut self, now: SimTime, vm: &crate::mm::manager::Vm, out: &mut Violations) {
        use crate::mm::Owner;
        let map = &vm.phys.map;
        let mut found: BTreeMap<String, (u32, u32, String)> = BTreeMap::new();
        let mut reported = Vec::new();
        for pfn in self.allocated.iter_ones() {
            let pfn = pfn as u32;
            if pfn as usize >= map.len() || self.leaked.get(pfn as usize).is_some_and(|b| *b) {
                continue;
            }
            let owner = map.owner(pfn);
            let dead = match owner {
                Owner::MemMap { block } => vm
                    .phys
                    .blocks
                    .get(block as usize)
                    .is_none_or(|b| b.state == crate::mm::BlockState::Offline)
                    .then(|| format!("block {block} is offline")),
                Owner::PageTable { mm, index } => (vm
                    .spaces
                    .get(mm as usize)
                    .and_then(|sp| sp.pt_pages.get(index as usize))
                    != Some(&pfn))
                .then(|| format!("mm{mm} has no such page table")),
                Owner::Anon { mm, .. } | Owner::Huge { mm, .. } => vm
                    .spaces
                    .get(mm as usize)
                    .is_none()
                    .then(|| format!("mm{mm} does not exist")),
                Owner::NodeData { node } => vm
                    .phys
                    .nodes
                    .get(node as usize)
                    .is_none_or(|n| !n.online)
                    .then(|| format!("node{node} is offline")),
                // Given back without an event (a dropped block's pages), or owners whose
                // life the allocator does not see.
                Owner::Free
                | Owner::Offline
                | Owner::Firmware
                | Owner::Slab { .. }
                | Owner::DmaBuffer { .. }
                | Owner::ZeroPage
                | Owner::File { .. } => None,
            };
            if let Some(why) = dead {
                reported.push(pfn);
                let e = found.entry(owner.to_string()).or_insert((pfn, 0, why));
                e.1 += 1;
            }
        }
        // Reported once (they stay handed out in the record: the free lists must not
        // hold them either).
        for pfn in reported {
            fill(&mut self.leaked, pfn, 1, true);
        }
        // One report per owner that is gone.
        for (owner, (first, n, why)) in found {
            out.push(by_kernel(
 now,
 CHK_ALLOC,
 Entity::Object("pfn", u64::from(first)),
                format!(
                    "{n} frame{} from pfn {first:#x} leaked: the allocator handed {} out for {owner} and never got {} back, but {why}",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "it" } else { "them" },
                    if n == 1 { "it" } else { "them" },
                ),
            ));
        }
    }

    /// CHK-7, PCI side: every range the kernel reserved in a bridge window is held by some
    /// card's BAR, as read from its configuration space, unless the kernel still uses the slot
    /// (none left behind by a removal); a device it enabled decodes its range;
    /// no freed DMA buffer was written since it was freed (its poison is intact).
    fn audit_pci(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        let hp = os.pci_hotplug();
        let busy = hp.busy_slot();
        let mut report = |target: Entity, message: String| {
            out.push(by_kernel(now, CHK_ALLOC, target, message));
        };
        // What the cards' BAR registers hold, read from their configuration space (live
        // cards only: a powered-off or pulled card holds nothing).
        let programmed: Vec<(bool, u64)> = p
            .io()
            .devices()
            .iter()
            .filter(|d| d.is_live())
            .flat_map(|d| {
                let c = d.config();
                // The memory bit of a BAR's low register tells MMIO from I/O space.
                c.bar_defs().iter().map(move |def| {
                    (
                        c.read(sim_core::abi::pci::reg::BAR0 + 4 * u16::from(def.index)) & 1 == 0,
                        c.bar_address(def),
                    )
                })
            })
            .collect();
        for (b, br) in hp.bridges.iter().enumerate() {
            for (what, alloc) in [("MMIO", &br.mmio), ("I/O", &br.io)] {
                for (start, len) in alloc.allocations() {
                    // The hardware first: a range some card's BAR holds is in use.
                    if programmed.contains(&(what == "MMIO", start)) {
                        continue;
                    }
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
                    // No card holds it. The kernel still using the slot (enabled: it has not
                    // been told its card went, or an operation on it is under way) is not a
                    // leak yet.
                    let why = match owner {
                        None => Some("no slot of the kernel".to_owned()),
                        Some(s) if !s.enabled && busy != Some(s.sun) => Some(format!(
                            "slot {}, which the kernel disabled: no card's BAR holds it (read from configuration space), the range was never released",
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
            let decodes = p
                .io()
                .slot(s.sun)
                .and_then(|x| x.card)
                .and_then(|d| p.io().device(d))
                .is_some_and(|d| d.decoded().iter().any(|&(_, b, z)| b == bar && z == size));
            let present = p
                .io()
                .slot(s.sun)
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
                p.machine()
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
        if let OsEvent::PteWritten {
            mm,
            vpn,
            table,
            word,
            ..
        } = ev
        {
            self.ptes.written(*mm, *vpn, *table, *word);
            return;
        }
        if let OsEvent::PageblockIsolation { pfn, isolated } = ev {
            let i = Self::pageblock(*pfn);
            if i >= self.isolated.len() {
                self.isolated.resize(i + 1, false);
            }
            self.isolated[i] = *isolated;
            if *isolated {
                for pbs in self.mem_ops.values_mut() {
                    pbs.insert(i);
                }
            }
            return;
        }
        if let OsEvent::OpStart {
            flow: crate::ops::FlowKind::Memory,
            op,
            ..
        } = ev
        {
            self.mem_ops.insert(*op, BTreeSet::new());
            return;
        }
        if let OsEvent::OpEnd { flow, op, result } = ev {
            self.leak_audit_due = true;
            if *flow == crate::ops::FlowKind::Memory {
                self.judge_failed_op(now, *op, result, out);
            }
            return;
        }
        if let OsEvent::FramesManaged { pfn, pages, on } = ev {
            self.managed(now, *pfn, *pages, *on, out);
            return;
        }
        if let OsEvent::PageAllocated { pfn, order } = ev {
            self.mark(*pfn, *order, true);
            let first = Self::pageblock(*pfn);
            let last = Self::pageblock(pfn + (1u32 << order) - 1);
            if let Some(i) = (first..=last).find(|&i| self.isolated.get(i) == Some(&true)) {
                out.push(by_kernel(
                    now,
                    CHK_ALLOC,
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
            self.mark(*pfn, *order, false);
            // Mapped: by the words stored into page tables, as this checker recorded them;
            // the kernel's reverse-map count is only quoted.
            let words = self.ptes.freed(*pfn, 1 << order);
            let states = crate::mm::page::busy::describe(*busy);
            let maps = format!(
                "{words} page-table {} in memory still map{} it (the kernel's reverse map \
                 counts {mapped})",
                if words == 1 { "word" } else { "words" },
                if words == 1 { "s" } else { "" }
            );
            let why = match (words, *busy == 0) {
                (0, true) => return,
                (0, false) => format!("while {states}"),
                (_, true) => format!("while {maps}"),
                (_, false) => format!("while {states} and {maps}"),
            };
            out.push(by_kernel(
                now,
                CHK_ALLOC,
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
        if std::mem::take(&mut self.leak_audit_due) {
            self.audit_leaks(now, vm, out);
        }
        self.audit_free_lists(now, &vm.phys, out);
        // The allocator's own consistency check (lists against the mem_map) is its word,
        // counted beside the reports as corroboration.
        if !vm.phys.audit().is_empty() {
            out.tally(CHK_ALLOC, ALLOCATOR_SELF_AUDIT);
        }
        let mut report = |target: Entity, message: String| {
            out.push(by_kernel(now, CHK_ALLOC, target, message));
        };
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
        // The page tables as the hardware walker would load them: every entry's word read
        // from memory, compared with the kernel's copy, and what it maps with the frame it
        // names.
        let map = &vm.phys.map;
        'spaces: for sp in &vm.spaces {
            for (vpn, mine) in sp.ptes.iter().enumerate() {
                let vpn = vpn as u32;
                let Some((_, addr)) = vm.pte_at(sp, vpn) else {
                    continue;
                };
                let word = p
                    .machine()
                    .coherent_peek(sim_core::PhysAddr::new(addr))
                    .unwrap_or(u64::MAX);
                let pte = crate::mm::vm::Pte::decode(word);
                if pte != *mine {
                    report(
                        Entity::Memory(sim_core::PhysAddr::new(addr)),
                        format!(
                            "mm{} virtual page {vpn}: its page-table word at {addr:#x} holds \
                             {word:#x} ({}), the kernel's copy says {}",
                            sp.id,
                            describe(pte),
                            describe(*mine)
                        ),
                    );
                    break 'spaces;
                }
                let crate::mm::vm::Pte::Present { pfn } = pte else {
                    continue;
                };
                let r = crate::mm::PteRef { mm: sp.id, vpn };
                let bad = if pfn as usize >= map.len() {
                    Some("a frame that does not exist".to_owned())
                } else if matches!(
                    map.owner(pfn),
                    crate::mm::Owner::Free | crate::mm::Owner::Offline
                ) {
                    Some(format!("pfn {pfn:#x}, which is {}", map.owner(pfn)))
                } else if !map.rmap(pfn).contains(&r) {
                    Some(format!(
                        "pfn {pfn:#x} ({}), whose reverse map does not name it",
                        map.owner(pfn)
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
        // Every kernel object on a frame the allocator handed out and never got back (the
        // kernel's objects all live in pages it allocated): by this checker's record, not the
        // `mem_map`'s owner field.
        for (what, addr) in os.kernel_objects() {
            let pfn = vm.phys.pfn(addr);
            let bit = |v: &bitvec::vec::BitVec| v.get(pfn as usize).is_some_and(|b| *b);
            if bit(&self.allocated) {
                continue;
            }
            let why = if bit(&self.managed) {
                "free: the allocator got it back"
            } else {
                "not the allocator's: offline, or never given to it"
            };
            report(
                Entity::Memory(sim_core::PhysAddr::new(addr)),
                format!("kernel object {what} at {addr:#x} lies in pfn {pfn:#x}, {why}"),
            );
            break;
        }
    }
}

/// The allocator's own audit finding its lists and `mem_map` inconsistent, counted by CHK-7
/// as corroboration.
pub const ALLOCATOR_SELF_AUDIT: &str = "kernel diagnoses: allocator self-audit failed";

/// Sets or clears bits `pfn .. pfn + n` of `v`, growing it as needed.
fn fill(v: &mut bitvec::vec::BitVec, pfn: u32, n: u32, on: bool) {
    let end = (pfn + n) as usize;
    if v.len() < end {
        v.resize(end, false);
    }
    v[pfn as usize..end].fill(on);
}

/// A page-table entry in words.
fn describe(pte: crate::mm::vm::Pte) -> String {
    match pte {
        crate::mm::vm::Pte::None => "not mapped".to_owned(),
        crate::mm::vm::Pte::Present { pfn } => format!("pfn {pfn:#x}"),
        crate::mm::vm::Pte::Swap { slot } => format!("swap slot {slot}"),
        crate::mm::vm::Pte::Migration { pfn } => format!("pfn {pfn:#x} under migration"),
        crate::mm::vm::Pte::FileHole => "a file page not in memory".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{AllocChecker, PteRecord};
    use crate::event::OsEvent;
    use crate::mm::vm::Pte;
    use crate::mm::{Gfp, Owner, PhysLog, PhysMem, ZoneKind};
    use sim_core::{SimTime, Violations};

    /// What the allocator did, as the kernel would hand it to the checker.
    fn feed_log(c: &mut AllocChecker, m: &mut PhysMem, out: &mut Violations) {
        use super::OsChecker;
        for e in m.log.drain(..) {
            let ev = match e {
                PhysLog::Alloc { pfn, order } => OsEvent::PageAllocated { pfn, order },
                PhysLog::Isolation { pb, isolated } => {
                    OsEvent::PageblockIsolation { pfn: pb, isolated }
                }
                PhysLog::Managed { pfn, pages, on } => OsEvent::FramesManaged { pfn, pages, on },
            };
            c.observe(SimTime::ZERO, &ev, out);
        }
    }

    fn freed(pfn: u32) -> OsEvent {
        OsEvent::PageFreed {
            pfn,
            order: 0,
            mapped: 0,
            busy: 0,
            owner: Owner::Free,
        }
    }

    #[test]
    fn the_free_lists_are_judged_against_the_checkers_own_record() {
        use super::OsChecker;
        // One node, two blocks of 256 frames; block 1 is taken offline later.
        let mut m = PhysMem::new(512, 14, 256, 1, 512, &[false], vec![vec![10]]);
        m.online_block(0, ZoneKind::Normal, None, 0);
        m.online_block(1, ZoneKind::Normal, None, 0);
        m.nodes[0].online = true;
        m.rebuild_zonelists();
        let mut c = AllocChecker::default();
        let mut out = Violations::default();
        feed_log(&mut c, &mut m, &mut out);
        let a = m.alloc(0, 0, Gfp::Kernel, Owner::Slab { slab: 1 }).unwrap();
        let b = m.alloc(0, 0, Gfp::Kernel, Owner::Slab { slab: 2 }).unwrap();
        feed_log(&mut c, &mut m, &mut out);
        // Freed with its event: the lists agree.
        m.free(a, 0);
        c.observe(SimTime::ZERO, &freed(a), &mut out);
        c.audit_free_lists(SimTime::ZERO, &m, &mut out);
        assert_eq!(out.count("CHK-7"), 0, "{:?}", out.kept());
        // Freed into the lists without an event (the kernel still thinks it holds it): a
        // frame that can be handed out twice.
        m.free(b, 0);
        c.audit_free_lists(SimTime::ZERO, &m, &mut out);
        assert_eq!(out.count("CHK-7"), 1, "{:?}", out.kept());
        assert!(out.kept()[0].message.contains("handed out and never freed"));
        c.observe(SimTime::ZERO, &freed(b), &mut out);
        // A free event for a frame that never reached the lists: lost to the allocator.
        let d = m.alloc(0, 0, Gfp::Kernel, Owner::Slab { slab: 3 }).unwrap();
        feed_log(&mut c, &mut m, &mut out);
        c.observe(SimTime::ZERO, &freed(d), &mut out);
        c.audit_free_lists(SimTime::ZERO, &m, &mut out);
        assert_eq!(out.count("CHK-7"), 2, "{:?}", out.kept());
        assert!(out.kept()[1].message.contains("on no free list"));
        // Reported once, not at every audit.
        c.audit_free_lists(SimTime::ZERO, &m, &mut out);
        assert_eq!(out.count("CHK-7"), 2, "{:?}", out.kept());
        m.free(d, 0);
        // Block 1 goes offline but its free frames stay listed.
        m.keep_offline_pages_listed = true;
        m.isolate_block(1);
        m.offline_block(1).unwrap();
        feed_log(&mut c, &mut m, &mut out);
        c.audit_free_lists(SimTime::ZERO, &m, &mut out);
        assert_eq!(out.count("CHK-7"), 3, "{:?}", out.kept());
        assert!(
            out.kept()[2]
                .message
                .contains("were taken from the allocator")
        );
        assert!(
            out.kept()[2].message.contains("frames from pfn 0x10"),
            "{:?}",
            out.kept()
        );
    }

    #[test]
    fn memory_going_offline_with_a_frame_handed_out_is_reported() {
        use super::OsChecker;
        let mut c = AllocChecker::default();
        let mut out = Violations::default();
        let on = |on| OsEvent::FramesManaged {
            pfn: 256,
            pages: 256,
            on,
        };
        c.observe(SimTime::ZERO, &on(true), &mut out);
        c.observe(
            SimTime::ZERO,
            &OsEvent::PageAllocated { pfn: 300, order: 1 },
            &mut out,
        );
        c.observe(SimTime::ZERO, &on(false), &mut out);
        assert_eq!(out.count("CHK-7"), 1, "{:?}", out.kept());
        assert!(
            out.kept()[0]
                .message
                .contains("went offline with 2 of them still handed out (from pfn 0x12c)"),
            "{:?}",
            out.kept()
        );
    }

    #[test]
    fn the_record_follows_the_words_stored_not_the_kernels_copy() {
        let mut r = PteRecord::default();
        // Two entries of mm0's page-table page 7 map pfn 40: one present, one under
        // migration.
        r.written(0, 3, 7, Pte::Present { pfn: 40 }.encode());
        r.written(0, 9, 7, Pte::Migration { pfn: 40 }.encode());
        // A swap entry and a file hole map no frame.
        r.written(0, 4, 7, Pte::Swap { slot: 40 }.encode());
        r.written(0, 5, 7, Pte::FileHole.encode());
        assert_eq!(r.freed(40, 1), 2, "both words still name pfn 40");
        // Rewriting one word moves its reference.
        r.written(0, 9, 7, Pte::Present { pfn: 41 }.encode());
        assert_eq!(r.freed(40, 1), 1);
        assert_eq!(r.freed(40, 2), 2, "an order-1 free covers pfn 41 too");
        // Freeing the page-table page takes its words with it.
        assert_eq!(r.freed(7, 1), 0);
        assert_eq!(r.freed(40, 2), 0);
    }
}
