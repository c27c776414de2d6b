//! CHK-7, memory side: the allocator, `mem_map`, page tables and reverse maps agree with what
//! the event stream says.

use acpi_model::Platform;
use sim_core::{CheckerId, Entity, SimTime, Violations};

use super::{CHK_ALLOC, OsChecker, violation};
use crate::event::OsEvent;
use crate::kernel::Os;

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

    /// CHK-7, PCI side: every range the kernel reserved in a bridge window is held by some
    /// card's BAR, as read from its configuration space, unless the kernel still uses the slot
    /// (none left behind by a removal); a device it enabled decodes its range;
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
                        c.read(0x10 + 4 * u16::from(def.index)) & 1 == 0,
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
                    map.owner(i as u32),
                    crate::mm::Owner::Free | crate::mm::Owner::Offline
                ) {
                    Some(format!("pfn {pfn:#x}, which is {}", map.owner(i as u32)))
                } else if !map.rmap(i as u32).contains(&r) {
                    Some(format!(
                        "pfn {pfn:#x} ({}), whose reverse map does not name it",
                        map.owner(i as u32)
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
            let ok = i < map.len() && map.owner(i as u32).is_kernel();
            if !ok {
                let owner = map
                    .owners()
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
