//! CHK-3, task data: what every task reads back is what it stored, wherever its pages went.

use std::collections::BTreeMap;

use acpi_model::Platform;
use sim_core::{CheckerId, Entity, SimTime, Violations};

use super::{CHK_TASK_DATA, OsChecker, by_kernel, violation};
use crate::event::{MemObj, OsEvent};
use crate::kernel::Os;
use crate::mm::manager::Where;
use crate::mm::vm::DiskLayout;

/// CHK-3: every load of a user task returns what was last stored at that place of its
/// memory object (its anonymous memory, or a file shared with other tasks) — whatever page
/// migration, swap and removal did in between; and, at audits, every page of every object
/// holds exactly what it should, wherever it is (a frame, a swap slot or a file's place on
/// the disk). Audits sweep the pages in turn, [`FULL_PAGES_PER_AUDIT`] at a time (every page
/// is compared within `pages / FULL_PAGES_PER_AUDIT` audits), and find each one as the
/// hardware would: through its page-table word loaded from memory, not the kernel's copy of
/// it; a page on the disk is read from the storage card's medium.
#[derive(Debug, Default)]
pub struct TaskDataChecker {
    /// Per object: the last value of each word slot of each page (dense), starting with the
    /// object's initial contents.
    objects: BTreeMap<MemObj, (u32, Vec<u64>)>,
    /// Where the next full-page audit starts.
    cursor: usize,
    /// The serial number of the card in the disk's slot at the first audit: a card found
    /// there later with another one is not the disk the pages were written to.
    disk_serial: Option<u64>,
}

/// Pages whose every word an audit compares.
pub const FULL_PAGES_PER_AUDIT: usize = 64;

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
        // The kernel's disk, as the card in its slot holds it, and where things are on it (from
        // the configuration and the medium's size, as the kernel lays them out).
        let mc = &os.config().memory;
        let slot = mc
            .disk_slot
            .map(sim_core::SlotId)
            .or(vm.disk.as_ref().map(|d| d.slot));
        let card = slot
            .and_then(|s| p.io().slot(s))
            .and_then(|s| s.card)
            .and_then(|id| p.io().device(id));
        let first = card.map(|dev| *self.disk_serial.get_or_insert(dev.serial));
        let medium = card
            .filter(|dev| Some(dev.serial) == first)
            .and_then(|dev| {
                let page_bytes = u64::from(wpp) * 8;
                DiskLayout::new(
                    page_bytes,
                    mc.files,
                    mc.file_pages,
                    mc.swap_slots,
                    dev.capacity(),
                )
                .map(|l| (dev, l))
            });
        let mut sector_words = vec![0u64; wpp as usize];
        for k in 0..take {
            let (obj, page) = pages[(start + k) % pages.len()];
            let peek = |a: u64| {
                p.machine()
                    .coherent_peek(sim_core::PhysAddr::new(a))
                    .unwrap_or(u64::MAX)
            };
            let Some(src) = crate::mm::manager::locate(vm, &peek, obj, page) else {
                continue;
            };
            // A page on the disk is read from the medium (none, or another card: not judged).
            let lba = match (&src, medium) {
                (Where::Swap(slot), Some((_, l))) if *slot < l.swap_slots => {
                    Some(l.swap_lba(*slot))
                }
                (Where::File { file, page }, Some((_, l))) => Some(l.file_lba(*file, *page)),
                (Where::Swap(_) | Where::File { .. }, _) => continue,
                (Where::Frame(_) | Where::Initial, _) => None,
            };
            if let (Some(lba), Some((dev, _))) = (lba, medium) {
                dev.peek_media(lba, &mut sector_words);
            }
            let (slots, words) = &self.objects[&obj];
            let mut bad: Option<(u32, u64, u64)> = None;
            for w in 0..wpp {
                let got = match &src {
                    Where::Frame(pfn) => {
                        let a = vm.phys.addr(*pfn) + 8 * u64::from(w);
                        match p.machine().coherent_peek(sim_core::PhysAddr::new(a)) {
                            Ok(v) => v,
                            Err(_) => continue,
                        }
                    }
                    Where::Swap(_) | Where::File { .. } => sector_words[w as usize],
                    Where::Initial => Self::initial(obj, page, w),
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
                out.push(by_kernel(
                    now,
                    CHK_TASK_DATA,
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
