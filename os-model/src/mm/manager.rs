//! The kernel's memory management at work: boot of the page allocator from the ACPI memory
//! devices and the SLIT, kernel allocations, process address spaces with page tables in
//! simulated memory, the page cache, the hardware page walk on a TLB miss, page faults (swap
//! in, file read, waiting on a page under migration) and the disk that serves them: a storage
//! card in a slot, driven through its block engine (SPEC OS-MEM-1..3).
//!
//! ```text
//!  task access ─► TLB ─hit─► load/store through the machine
//!                  └miss─► page walk: load the PTE word through the machine
//!                          present ─► fill TLB │ migration entry ─► sleep on the page
//!                          swap / file hole ─► allocate, device DMA, then map and wake
//! ```

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use sim_core::abi::device::BLK_QUEUE;
use sim_core::{SimTime, SlotId};

use crate::ids::{MemObj, TaskId};
use crate::mm::vm::{AddressSpace, DiskLayout, File, Pte, SwapMap, Tlb, VmaKind};
use crate::mm::{Owner, PAGEBLOCK_PAGES, PhysMem, flags};

/// The kernel's disk: the storage card its files and swap area are on, and the commands it
/// has for it.
#[derive(Clone, Debug)]
pub struct Disk {
    /// The card, by the driver's index.
    pub card: usize,
    /// Its slot.
    pub slot: SlotId,
    /// Where the files and the swap area are on it.
    pub layout: DiskLayout,
    /// The card went away: every transfer fails.
    pub gone: bool,
    /// Reads waiting for room in the card's queue, by tag (served before the writes, as a
    /// deadline scheduler serves them: a task waits for each).
    pub(crate) reads: VecDeque<u64>,
    /// Writes waiting for room in the card's queue, by tag.
    pub(crate) writes: VecDeque<u64>,
}

impl Disk {
    /// Commands the card has and has not completed, given the `in_flight` transfers (every
    /// transfer is either waiting here or at the card until it ends).
    pub(crate) fn at_card(&self, in_flight: usize) -> usize {
        in_flight.saturating_sub(self.reads.len() + self.writes.len())
    }

    /// Transfers the card could still take before it is full, counting those waiting for it
    /// (the block layer's congestion limit: what queues beyond it only makes reads wait),
    /// given the `in_flight` transfers.
    pub(crate) fn room(&self, in_flight: usize) -> usize {
        if self.gone {
            return 0;
        }
        BLK_QUEUE.saturating_sub(in_flight)
    }
}

/// A disk transfer in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Io {
    /// Read a swapped-out page back into `pfn`, then map it at `mm`/`vpn`.
    SwapIn {
        pfn: u32,
        slot: u32,
        mm: u32,
        vpn: u32,
    },
    /// Read file page `page` into `pfn` (page cache), then map it at `mm`/`vpn`.
    FileRead {
        pfn: u32,
        file: u32,
        page: u32,
        mm: u32,
        vpn: u32,
    },
    /// A page written to swap slot `slot` (memory offline): free `pfn` when done.
    SwapOut { pfn: u32, slot: u32 },
    /// Dirty file page `page` in `pfn` written back to the disk (read at completion).
    Writeback { pfn: u32, file: u32, page: u32 },
    /// A direct-I/O write of a task's page to the disk: pinned until the device read it.
    DirectWrite { pfn: u32 },
}

impl Io {
    /// The frame it moves data into or out of.
    pub(crate) fn pfn(self) -> u32 {
        match self {
            Io::SwapIn { pfn, .. }
            | Io::FileRead { pfn, .. }
            | Io::SwapOut { pfn, .. }
            | Io::Writeback { pfn, .. }
            | Io::DirectWrite { pfn } => pfn,
        }
    }

    /// Whether it writes to the disk.
    pub(crate) fn writes(self) -> bool {
        matches!(
            self,
            Io::SwapOut { .. } | Io::Writeback { .. } | Io::DirectWrite { .. }
        )
    }

    /// What the card does for it: `(writes to the medium, first sector, frame)`.
    pub(crate) fn transfer(self, layout: &DiskLayout) -> (bool, u64, u32) {
        match self {
            Io::SwapIn { pfn, slot, .. } => (false, layout.swap_lba(slot), pfn),
            Io::FileRead {
                pfn, file, page, ..
            } => (false, layout.file_lba(file, page), pfn),
            Io::SwapOut { pfn, slot } => (true, layout.swap_lba(slot), pfn),
            Io::Writeback { pfn, file, page } => (true, layout.file_lba(file, page), pfn),
            // Direct I/O goes to the scratch page past the swap area.
            Io::DirectWrite { pfn } => (true, layout.swap_lba(layout.swap_slots), pfn),
        }
    }
}

/// Memory counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VmStats {
    /// Task accesses whose translation the TLB held.
    pub tlb_hits: u64,
    /// TLB misses (page walks through the machine).
    pub page_walks: u64,
    /// Faults that read from swap.
    pub swap_ins: u64,
    /// Pages written to swap.
    pub swap_outs: u64,
    /// Faults that read a file page.
    pub file_reads: u64,
    /// Faults that found the page in the page cache.
    pub minor_faults: u64,
    /// Accesses that waited for a page under migration.
    pub migration_waits: u64,
    /// PTE words written.
    pub pte_writes: u64,
    /// Pages freed while still mapped (a bad page state).
    pub bad_frees: u64,
    /// File pages written back.
    pub writebacks: u64,
    /// Direct-I/O transfers.
    pub direct_ios: u64,
    /// Anonymous pages discarded by their task (`MADV_DONTNEED`).
    pub discards: u64,
    /// Faults that found nothing mapped (a discarded page touched again: a cleared page).
    pub zero_fills: u64,
    /// Device transfers that finished after their page had moved or gone.
    pub stale_io: u64,
    /// Faults on a swap entry whose page was still on its way to the disk (found in
    /// the swap cache: they waited for it, then read it back).
    pub swap_cache_waits: u64,
    /// Block commands the kernel gave its disk.
    pub disk_commands: u64,
    /// Of them, the ones that waited for room in the card's queue.
    pub disk_queued: u64,
    /// Disk transfers that failed (the card refused or lost them, or went away): their data
    /// did not move.
    pub io_errors: u64,
    /// Of them, the ones the kernel gave up on after `disk_timeout`.
    pub disk_timeouts: u64,
}

/// The kernel's memory state.
#[derive(Clone, Debug)]
pub struct Vm {
    /// Physical memory: nodes, zones, buddy allocator, blocks, `mem_map`.
    pub phys: PhysMem,
    /// Address spaces.
    pub spaces: Vec<AddressSpace>,
    /// Every file of the page cache, by number.
    pub files: Vec<File>,
    /// The swap area's slots.
    pub swap: SwapMap,
    /// The disk (none: no storage card was found at boot; no swap, no files).
    pub disk: Option<Disk>,
    /// Per-CPU TLBs.
    pub tlbs: Vec<Tlb>,
    /// The shared zero page.
    pub zero_pfn: u32,
    /// Tasks waiting for a frame (under migration or I/O).
    pub(crate) waiters: BTreeMap<u32, Vec<TaskId>>,
    /// The swap cache: the frame still holding the data of each swap slot a page is being
    /// written to (from the unmap that installed the swap entry until the device has the
    /// page). A fault on such an entry waits for that frame instead of reading a slot that
    /// holds nothing yet.
    pub(crate) swap_cache: BTreeMap<u32, u32>,
    /// Disk transfers in flight, by command tag.
    pub(crate) io: BTreeMap<u64, Io>,
    pub(super) next_io: u64,
    /// Counters.
    pub stats: VmStats,
    /// Words per page.
    pub wpp: u32,
    pub(super) slabs: u32,
    pub(super) next_flush: SimTime,
    pub(super) flush_cursor: usize,
}

impl Vm {
    /// Disk transfers started and not ended (waiting for room at the card, or at it).
    pub fn transfers_in_flight(&self) -> usize {
        self.io.len()
    }

    /// PTEs per page-table page.
    pub fn ptes_per_page(&self) -> u32 {
        self.wpp
    }

    /// Where `sp`'s entry for `vpn` lives: its page-table page and the physical address of
    /// its word (what the kernel stores and the hardware walker loads).
    pub fn pte_at(&self, sp: &crate::mm::vm::AddressSpace, vpn: u32) -> Option<(u32, u64)> {
        let ppp = self.ptes_per_page();
        let table = *sp.pt_pages.get((vpn / ppp) as usize)?;
        Some((table, self.phys.addr(table) + 8 * u64::from(vpn % ppp)))
    }

    /// The word index of probe slot `slot` of `page` (spread over the page).
    pub fn probe_word(&self, slots: u32, page: u32, slot: u32) -> u32 {
        let stride = self.wpp / slots.max(1);
        slot * stride + (page.wrapping_mul(7)) % stride.max(1)
    }

    /// The object and page index a frame holds data of.
    pub fn object_of(owner: Owner) -> Option<(MemObj, u32)> {
        match owner {
            Owner::Anon { mm, page } => Some((MemObj::Anon(mm), page)),
            Owner::Huge { mm, huge, sub } => Some((MemObj::Anon(mm), huge * PAGEBLOCK_PAGES + sub)),
            Owner::File { file, page } => Some((MemObj::File(file), page)),
            Owner::Offline
            | Owner::Free
            | Owner::Firmware
            | Owner::MemMap { .. }
            | Owner::NodeData { .. }
            | Owner::Slab { .. }
            | Owner::PageTable { .. }
            | Owner::DmaBuffer { .. }
            | Owner::ZeroPage => None,
        }
    }
}

impl Vm {
    /// A digest of everything a failed offline must leave as it found: block states and
    /// zones, pageblock types, every zone's free lists, every frame's owner and flags and
    /// mappings, every PTE.
    pub fn digest(&self) -> u64 {
        let mut h = sim_core::StableHasher::new();
        for b in &self.phys.blocks {
            h.word(u64::from(b.index) << 8 | b.state as u64 | (b.zone as u64) << 4);
        }
        for t in &self.phys.pb_type {
            h.word(*t as u64);
        }
        for z in &self.phys.zones {
            h.word(z.present);
            for (pfn, order, mt) in z.area.blocks() {
                h.word(u64::from(pfn) << 16 | u64::from(order) << 8 | mt as u64);
            }
        }
        let m = &self.phys.map;
        for i in 0..m.len() {
            let o = m.owner(i as u32);
            // Free frames are in the free lists hashed above.
            if matches!(o, Owner::Offline | Owner::Free) {
                continue;
            }
            h.word(i as u64);
            h.word(Owner::word(o));
            h.word(
                u64::from(m.flags(i as u32) & !flags::REFERENCED)
                    | u64::from(m.pins(i as u32)) << 16,
            );
            for r in m.rmap(i as u32) {
                h.word(u64::from(r.mm) << 32 | u64::from(r.vpn));
            }
        }
        for sp in &self.spaces {
            for p in &sp.ptes {
                h.word(p.encode());
            }
        }
        h.finish()
    }
}

/// Where the contents of one page of a memory object are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Where {
    /// In a frame.
    Frame(u32),
    /// In this swap slot, on the disk.
    Swap(u32),
    /// At its file's place on the disk.
    File {
        /// The file.
        file: u32,
        /// The page.
        page: u32,
    },
    /// Nowhere: the object's initial contents (an anonymous page never touched or
    /// discarded reads as zeros).
    Initial,
}

impl Where {
    /// For messages.
    pub fn describe(&self, vm: &Vm) -> String {
        match self {
            Where::Frame(pfn) => format!("pfn {pfn:#x}, {}", vm.phys.map.describe_flags(*pfn)),
            Where::Swap(slot) => format!("in swap slot {slot} on the disk"),
            Where::File { .. } => "on the disk".into(),
            Where::Initial => "never touched: zeros".into(),
        }
    }
}

/// The word of `sp`'s entry for `vpn`, as the hardware walker loads it (`peek` reads a word
/// of simulated memory).
fn pte_word(
    vm: &Vm,
    sp: &crate::mm::vm::AddressSpace,
    vpn: u32,
    peek: &dyn Fn(u64) -> u64,
) -> Option<u64> {
    vm.pte_at(sp, vpn).map(|(_, addr)| peek(addr))
}

/// Where page `page` of `obj` is now, found as the hardware would find it: an anonymous page
/// through its page-table word loaded from memory (`peek`), a file page through the word of
/// the first task that maps it (the page cache, then the disk, when no word maps a frame).
/// A page-cache page the kernel has locked outside a migration (a read from the disk in
/// flight, or a clean page being dropped) is what the disk holds. `None` while an anonymous
/// page is in transit, or when the word names no frame (CHK-7 reports such a word).
pub fn locate(vm: &Vm, peek: &dyn Fn(u64) -> u64, obj: MemObj, page: u32) -> Option<Where> {
    // The frame, unless it is locked outside a migration: then `locked`.
    let frame = |pfn: u32, migrating: bool, locked: Option<Where>| {
        if (pfn as usize) >= vm.phys.map.len() {
            return None;
        }
        if migrating || !vm.phys.map.has(pfn, flags::LOCKED) {
            return Some(Where::Frame(pfn));
        }
        locked
    };
    match obj {
        MemObj::Anon(mm) => {
            let sp = vm.spaces.get(mm as usize)?;
            if matches!(sp.vma_of(page)?.kind, VmaKind::File { .. }) {
                return None;
            }
            match Pte::decode(pte_word(vm, sp, page, peek)?) {
                Pte::Present { pfn } => frame(pfn, false, None),
                Pte::Migration { pfn } => frame(pfn, true, None),
                Pte::Swap { slot } => match vm.swap_cache.get(&slot) {
                    // On its way to the disk: the frame still has it until the card read it.
                    Some(&pfn) => frame(pfn, false, None),
                    None => Some(Where::Swap(slot)),
                },
                // Discarded: it reads as zeros, the initial contents.
                Pte::None => Some(Where::Initial),
                Pte::FileHole => None,
            }
        }
        MemObj::File(f) => {
            let on_disk = Where::File { file: f, page };
            let mapped = vm.spaces.iter().find_map(|sp| {
                let v = sp
                    .vmas
                    .iter()
                    .find(|v| v.kind == VmaKind::File { file: f })?;
                (page < v.pages).then(|| pte_word(vm, sp, v.start + page, peek))?
            });
            match mapped.map(Pte::decode) {
                Some(Pte::Present { pfn }) => return frame(pfn, false, Some(on_disk)),
                Some(Pte::Migration { pfn }) => return frame(pfn, true, None),
                Some(Pte::None | Pte::Swap { .. } | Pte::FileHole) | None => {}
            }
            let file = vm.files.get(f as usize)?;
            match file.cache.get(page as usize)? {
                Some(pfn) => frame(*pfn, false, Some(on_disk)),
                None => Some(on_disk),
            }
        }
    }
}
