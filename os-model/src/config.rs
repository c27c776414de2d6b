//! The `[os]` table of a scenario: kernel parameters, the synthetic workload, and the OS
//! defects a scenario can inject (SPEC CHK-9).

use std::fmt;

use serde::{Deserialize, Serialize};
use sim_core::SimDuration;
use thiserror::Error;

/// A user task hard-bound to one CPU (`sched_setaffinity` to a single CPU): that CPU cannot
/// be taken offline while the task lives.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BoundTask {
    /// The logical CPU.
    pub cpu: u32,
}

/// Kernel parameters and the synthetic workload (see `scenarios/README.md`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OsConfig {
    /// `NR_CPUS`: size of every CPU mask and per-CPU area.
    pub nr_cpus: u32,
    /// Timer tick period on every online CPU.
    pub tick: SimDuration,
    /// Ticks a user task runs before it is preempted.
    pub timeslice_ticks: u32,
    /// Every this many ticks a CPU runs the load balancer (0: never).
    pub balance_ticks: u32,
    /// User tasks created at boot per online CPU.
    pub tasks_per_cpu: u32,
    /// Memory management and the memory side of the workload (`[os.memory]`).
    pub memory: MemConfig,
    /// The ACPI PCI hot-plug driver (`[os.pci]`).
    pub pci: PciConfig,
    /// The RAS policy (`[os.ras]`).
    pub ras: RasConfig,
    /// The power-saving policy (`[os.power]`).
    pub power: PowerConfig,
    /// Memory accesses per burst of a user task.
    pub burst: u32,
    /// Computation between bursts.
    pub compute: SimDuration,
    /// Fraction of a task's accesses that are stores.
    pub store_ratio: f64,
    /// Chance, after each burst, that a task sleeps.
    pub sleep_chance: f64,
    /// How long a sleeping task sleeps.
    pub sleep: SimDuration,
    /// Chance, after each burst, that a task unmaps memory and shoots down the TLBs of every
    /// other online CPU (a cross-call IPI broadcast that waits for every acknowledgement).
    pub shootdown_chance: f64,
    /// Time to send one IPI (the sender sends them one after the other).
    pub ipi_send: SimDuration,
    /// Time an IPI handler runs.
    pub ipi_handler: SimDuration,
    /// A cross-call not acknowledged after this long is reported (the kernel's CSD lock
    /// timeout) and abandoned.
    pub csd_timeout: SimDuration,
    /// Time the migration thread takes to move one task.
    pub migrate_cost: SimDuration,
    /// Base time of every hot-plug step (bookkeeping on the controlling CPU).
    pub step_cost: SimDuration,
    /// Time a new CPU spends initialising itself (idle task, registers, per-CPU areas).
    pub init_cost: SimDuration,
    /// A hot-plug step waiting longer than this is reported and the operation abandoned
    /// (the hung-task detector).
    pub hung_timeout: SimDuration,
    /// User tasks hard-bound to one CPU each.
    pub bound: Vec<BoundTask>,
    /// The cells (NUMA nodes) this kernel owns — its partition: it sees only their
    /// processors, memory, IO SAPICs, host bridges, slots and chipset functions. Absent:
    /// the whole machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<Vec<u32>>,
}

impl Default for OsConfig {
    fn default() -> Self {
        OsConfig {
            nr_cpus: 256,
            tick: SimDuration::from_micros(100),
            timeslice_ticks: 2,
            balance_ticks: 4,
            tasks_per_cpu: 3,
            memory: MemConfig::default(),
            pci: PciConfig::default(),
            ras: RasConfig::default(),
            power: PowerConfig::default(),
            burst: 8,
            compute: SimDuration::from_nanos(400),
            store_ratio: 0.5,
            sleep_chance: 0.002,
            sleep: SimDuration::from_micros(300),
            shootdown_chance: 0.004,
            ipi_send: SimDuration::from_nanos(1500),
            ipi_handler: SimDuration::from_nanos(600),
            csd_timeout: SimDuration::from_millis(2),
            migrate_cost: SimDuration::from_micros(3),
            step_cost: SimDuration::from_micros(5),
            init_cost: SimDuration::from_micros(40),
            hung_timeout: SimDuration::from_millis(5),
            bound: Vec::new(),
            cells: None,
        }
    }
}

/// `[os.ras]`: the RAS policy.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RasConfig {
    /// Run the policy.
    pub enabled: bool,
    /// Period of the firmware error-log poll.
    pub poll_interval: SimDuration,
    /// Corrected errors of one CPU after which it is taken offline (0: never).
    pub cpu_threshold: u64,
    /// Corrected errors in one memory block after which it is taken offline (0: never).
    pub memory_threshold: u64,
    /// Corrected errors in one cell (its CPUs and memory) after which the whole cell is
    /// swapped (0: never).
    pub cell_threshold: u64,
}

impl Default for RasConfig {
    fn default() -> Self {
        RasConfig {
            enabled: false,
            poll_interval: SimDuration::from_micros(500),
            cpu_threshold: 10,
            memory_threshold: 10,
            cell_threshold: 40,
        }
    }
}

/// `[os.power]`: the power-saving policy.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowerConfig {
    /// Run the policy.
    pub enabled: bool,
    /// Period of its decisions.
    pub interval: SimDuration,
    /// Runnable user tasks per online CPU below which an idle CPU goes offline.
    pub low_load: f64,
    /// Runnable user tasks per online CPU above which a CPU comes back.
    pub high_load: f64,
    /// CPUs always kept online.
    pub min_online: u32,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig {
            enabled: false,
            interval: SimDuration::from_micros(500),
            low_load: 0.5,
            high_load: 1.5,
            min_online: 2,
        }
    }
}

/// `[os.pci]`: the ACPI PCI hot-plug driver's timing (SPEC OS-IO-1).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PciConfig {
    /// Time the driver waits after `_PS0` before it reads the slot's configuration space
    /// (power and reset settle).
    pub power_delay: SimDuration,
    /// Time the driver waits after stopping a card's DMA engine for the transfers in flight
    /// to drain, and after masking its interrupt for a handler already running to finish
    /// (`synchronize_irq`).
    pub quiesce_delay: SimDuration,
    /// Debug poisoning of freed DMA buffers (as SLUB's `POISON_FREE`): a word a device writes
    /// into one after the driver freed it is reported (CHK-7).
    pub poison_freed_buffers: bool,
}

impl Default for PciConfig {
    fn default() -> Self {
        PciConfig {
            power_delay: SimDuration::from_micros(100),
            quiesce_delay: SimDuration::from_micros(20),
            poison_freed_buffers: true,
        }
    }
}

/// Where a hot-added block's page descriptors go (SPEC OS-MEM-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MemmapOn {
    /// On the new memory itself (the block's first pages): the block stays removable.
    NewMemory,
    /// On an existing node's kernel memory, which then cannot be removed while the new
    /// memory is there.
    Node(u32),
}

/// `[os.memory]`: memory management parameters and the memory side of the workload.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemConfig {
    /// Size of a memory block (`block_size_bytes`), a power of two of at least 64 pages.
    pub block_size: sim_core::ByteSize,
    /// Nodes whose memory is all in the movable zone (hot-removable). Absent: every node
    /// except the boot CPU's.
    pub movable_nodes: Option<Vec<u32>>,
    /// Where hot-added memory's page descriptors go.
    pub memmap_on: MemmapOn,
    /// Private anonymous pages of each user task (swappable).
    pub anon_pages: u32,
    /// Anonymous pages each user task locks with `mlock`.
    pub mlock_pages: u32,
    /// Hugetlb pages (64 base pages each) of each user task.
    pub huge_pages: u32,
    /// Shared files (their pages live in the page cache).
    pub files: u32,
    /// Pages per file.
    pub file_pages: u32,
    /// File systems of the files, in turn.
    pub fs: Vec<crate::mm::vm::FsKind>,
    /// Files each user task maps (shared mappings, files taken in turn).
    pub maps_per_task: u32,
    /// Words per page a task works on (spread over the page).
    pub probe_words: u32,
    /// Fraction of a task's accesses to its file mappings that are stores (files are mostly
    /// read; `store_ratio` applies to its anonymous memory).
    pub file_store_ratio: f64,
    /// Fraction of a task's accesses that go to the first quarter of each of its areas (its
    /// hot set); the rest are spread over the whole area. 0: uniform.
    pub hot_fraction: f64,
    /// Entries of each CPU's TLB.
    pub tlb_entries: u32,
    /// Page slots of the swap area (cut to what fits on the disk behind the files).
    pub swap_slots: u32,
    /// The `_SUN` of the slot whose storage card is the kernel's disk (its files and swap
    /// area). Absent: the storage card in the lowest-numbered slot at boot. No storage card:
    /// no swap, and no files.
    pub disk_slot: Option<u16>,
    /// How long a transfer may stay at the disk's card before the kernel gives up on it (the
    /// block layer's request timeout): it reads the card's status — a card that answers
    /// all-ones is gone — and fails the transfer.
    pub disk_timeout: SimDuration,
    /// Kernel bookkeeping per page migrated (allocation, rmap, page-cache update).
    pub page_cost: SimDuration,
    /// Pages unmapped, shot down, copied and remapped together.
    pub copy_batch: u32,
    /// Copy each batch's pages in parallel on the host (rayon). The simulated result and
    /// the trace are the same either way; only host time differs.
    pub parallel_copy: bool,
    /// Passes over the pages still to move before an offline gives up (`migrate_pages`
    /// makes 10).
    pub migrate_passes: u32,
    /// Pause between two passes (busy pages get time to finish their I/O).
    pub retry_delay: SimDuration,
    /// Offline swaps cold (unreferenced) anonymous pages out and drops clean cold file
    /// pages instead of copying them.
    pub swapout_cold: bool,
    /// Kernel slab pages allocated at boot (unmovable; they land in normal zones), spread
    /// over the nodes that have a normal zone; the kernel keeps touching them.
    pub slab_pages: u32,
    /// Period of the flusher: it starts writeback of dirty file pages and ages the
    /// referenced bits (a page not touched for a period is cold).
    pub writeback_interval: SimDuration,
    /// Dirty file pages the flusher writes back per period.
    pub writeback_batch: u32,
    /// Chance, after each burst, that a task writes one of its anonymous pages to the disk
    /// with direct I/O (the page stays pinned for DMA until the disk has read it).
    pub direct_io_chance: f64,
}

impl Default for MemConfig {
    fn default() -> Self {
        MemConfig {
            block_size: sim_core::ByteSize(64 << 20),
            movable_nodes: None,
            memmap_on: MemmapOn::NewMemory,
            anon_pages: 4,
            mlock_pages: 0,
            huge_pages: 0,
            files: 0,
            file_pages: 8,
            fs: vec![crate::mm::vm::FsKind::Ext3],
            maps_per_task: 1,
            probe_words: 8,
            file_store_ratio: 0.1,
            hot_fraction: 0.0,
            tlb_entries: 512,
            swap_slots: 1 << 14,
            disk_slot: None,
            disk_timeout: SimDuration::from_millis(20),
            page_cost: SimDuration::from_nanos(300),
            copy_batch: 32,
            parallel_copy: true,
            migrate_passes: 10,
            retry_delay: SimDuration::from_micros(50),
            swapout_cold: true,
            slab_pages: 16,
            writeback_interval: SimDuration::from_millis(1),
            writeback_batch: 16,
            direct_io_chance: 0.0,
        }
    }
}

impl MemConfig {
    /// Checks every field on its own.
    pub fn validate(&self) -> Result<(), OsConfigError> {
        let b = self.block_size.0;
        if !b.is_power_of_two() || b < 1 << 20 {
            return Err(bad(
                "block_size",
                format!(
                    "{} must be a power of two of at least 1MiB",
                    self.block_size
                ),
            ));
        }
        if self.probe_words == 0 || self.probe_words > 64 {
            return Err(bad(
                "probe_words",
                format!("{} must be between 1 and 64", self.probe_words),
            ));
        }
        if self.anon_pages
            + self.mlock_pages
            + self.huge_pages * 64
            + self.maps_per_task * self.file_pages
            == 0
        {
            return Err(bad(
                "anon_pages",
                "each task needs some memory: anon_pages, mlock_pages, huge_pages or file maps"
                    .into(),
            ));
        }
        if self.anon_pages > 1 << 16 || self.mlock_pages > 1 << 16 || self.huge_pages > 1 << 10 {
            return Err(bad(
                "anon_pages",
                "at most 65536 anonymous or mlocked and 1024 huge pages per task".into(),
            ));
        }
        if self.files > 1 << 12 || self.file_pages > 1 << 16 {
            return Err(bad("files", "at most 4096 files of 65536 pages".into()));
        }
        if self.fs.is_empty() {
            return Err(bad("fs", "needs at least one file system".into()));
        }
        if self.tlb_entries == 0 || self.tlb_entries > 1 << 16 {
            return Err(bad(
                "tlb_entries",
                format!("{} must be between 1 and 65536", self.tlb_entries),
            ));
        }
        if self.copy_batch == 0 || self.copy_batch > 4096 {
            return Err(bad(
                "copy_batch",
                format!("{} must be between 1 and 4096", self.copy_batch),
            ));
        }
        if !(0.0..=1.0).contains(&self.file_store_ratio) {
            return Err(bad(
                "file_store_ratio",
                format!(
                    "{} is not a probability between 0 and 1",
                    self.file_store_ratio
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.hot_fraction) {
            return Err(bad(
                "hot_fraction",
                format!("{} is not a fraction between 0 and 1", self.hot_fraction),
            ));
        }
        if !(0.0..=1.0).contains(&self.direct_io_chance) {
            return Err(bad(
                "direct_io_chance",
                format!(
                    "{} is not a probability between 0 and 1",
                    self.direct_io_chance
                ),
            ));
        }
        if self.writeback_interval.is_zero() {
            return Err(bad("writeback_interval", "must be longer than 0".into()));
        }
        if self.migrate_passes == 0 || self.migrate_passes > 1000 {
            return Err(bad(
                "migrate_passes",
                format!("{} must be between 1 and 1000", self.migrate_passes),
            ));
        }
        Ok(())
    }
}

/// A field of `[os]` that cannot be used: its name and why.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct OsConfigError {
    /// Field within `[os]`, e.g. `tick` or `bound[1].cpu`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn bad(field: &str, message: String) -> OsConfigError {
    OsConfigError {
        field: field.to_owned(),
        message,
    }
}

impl OsConfig {
    /// Checks every field on its own (what depends on the machine is checked at boot).
    pub fn validate(&self) -> Result<(), OsConfigError> {
        if self.nr_cpus == 0 || self.nr_cpus > 4096 {
            return Err(bad(
                "nr_cpus",
                format!("{} must be between 1 and 4096", self.nr_cpus),
            ));
        }
        if self.cells.as_ref().is_some_and(Vec::is_empty) {
            return Err(bad(
                "cells",
                "a kernel needs at least one cell (leave `cells` out for the whole machine)".into(),
            ));
        }
        let positive = [
            ("tick", self.tick),
            ("ipi_send", self.ipi_send),
            ("csd_timeout", self.csd_timeout),
            ("hung_timeout", self.hung_timeout),
        ];
        for (f, d) in positive {
            if d.is_zero() {
                return Err(bad(f, "must be longer than 0".into()));
            }
        }
        if self.tick < SimDuration::from_micros(1) {
            return Err(bad(
                "tick",
                format!("{} is shorter than 1us; the run would only tick", self.tick),
            ));
        }
        if self.timeslice_ticks == 0 {
            return Err(bad("timeslice_ticks", "must be at least 1".into()));
        }
        if self.ras.poll_interval.is_zero() {
            return Err(bad("ras.poll_interval", "must be longer than 0".into()));
        }
        if self.power.interval.is_zero() {
            return Err(bad("power.interval", "must be longer than 0".into()));
        }
        if !(self.power.low_load >= 0.0 && self.power.low_load < self.power.high_load) {
            return Err(bad(
                "power.low_load",
                format!(
                    "{} must be at least 0 and below high_load ({})",
                    self.power.low_load, self.power.high_load
                ),
            ));
        }
        self.memory.validate().map_err(|e| OsConfigError {
            field: format!("memory.{}", e.field),
            message: e.message,
        })?;
        if self.burst == 0 || self.burst > 4096 {
            return Err(bad(
                "burst",
                format!("{} must be between 1 and 4096", self.burst),
            ));
        }
        if self.tasks_per_cpu > 64 {
            return Err(bad(
                "tasks_per_cpu",
                format!("{} is more than 64", self.tasks_per_cpu),
            ));
        }
        let chances = [
            ("store_ratio", self.store_ratio),
            ("sleep_chance", self.sleep_chance),
            ("shootdown_chance", self.shootdown_chance),
        ];
        for (f, p) in chances {
            if !(0.0..=1.0).contains(&p) {
                return Err(bad(f, format!("{p} is not a probability between 0 and 1")));
            }
        }
        if self.sleep_chance > 0.0 && self.sleep.is_zero() {
            return Err(bad(
                "sleep",
                "must be longer than 0 when tasks sleep".into(),
            ));
        }
        for (i, b) in self.bound.iter().enumerate() {
            if b.cpu >= self.nr_cpus {
                return Err(bad(
                    &format!("bound[{i}].cpu"),
                    format!("cpu{} is beyond nr_cpus ({})", b.cpu, self.nr_cpus),
                ));
            }
        }
        Ok(())
    }
}

/// A mistake the OS model can be told to make (SPEC CHK-9); each has a checker that catches
/// it and a scenario in `scenarios/defects/` proving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OsDefect {
    /// CPU hot-remove publishes the new online map and frees the old one at once, without
    /// waiting for a grace period, and halts the CPU while readers may still use the old map
    /// (CHK-5; the IPIs they then send hit a halted CPU: CHK-6).
    SkipRcuGracePeriod,
    /// CPU hot-remove leaves the IO SAPIC entries that point at the CPU alone (CHK-6).
    SkipIrqReroute,
    /// CPU hot-remove leaves the tasks on the CPU's runqueue (CHK-4).
    SkipTaskMigration,
    /// CPU hot-remove halts the CPU without flushing its cache: its dirty lines are lost
    /// (CHK-1 sees the requests to the halted cache, CHK-3 the task data that went stale).
    SkipCacheFlushOnCpuRemove,
    /// CPU hot-remove halts the CPU right after marking it inactive, before anything was
    /// moved off it (CHK-4, and CHK-6 for the interrupts that then reach it).
    HaltBeforeOffline,
    /// Memory offline unmaps pages without shooting down the TLBs: CPUs keep using the old
    /// frames (CHK-3 sees the stores that went there and the values read back from them).
    SkipTlbShootdown,
    /// Page migration copies with plain memory reads that bypass the caches: a dirty line
    /// is lost (CHK-2, CHK-3).
    CopyNoncoherent,
    /// Page migration frees the old page before copying it (CHK-7: a page freed while
    /// mapped).
    FreeBeforeCopy,
    /// Page migration moves pages under writeback without waiting (CHK-7: pages freed while
    /// locked or pinned by the I/O in flight, and the free lists that then disagree).
    IgnoreWriteback,
    /// Memory offline does not check for unmovable pages and drops them with the block
    /// (CHK-7: kernel objects in removed memory; CHK-1 when the kernel touches them).
    SkipUnmovableCheck,
    /// Cell hot-remove evaluates `_EJ0` before its memory is offline (CHK-1, CHK-3).
    EjectBeforeOffline,
    /// The page allocator hands out free pages of isolated pageblocks when nothing else is
    /// left in a zone: a cell being emptied gets its pages back (CHK-7).
    AllocFromIsolated,
    /// PCI hot-remove frees the driver's DMA buffers and interrupt without stopping the
    /// card first: it keeps writing into the freed memory until its slot loses power (CHK-7,
    /// the poisoned buffers).
    SkipDriverQuiesce,
    /// PCI hot-remove never gives the card's BARs back to its bridge's window: the space
    /// stays reserved for a device that is gone (CHK-7), and the window runs out.
    LeakBarOnRemove,
    /// I/O-subsystem hot-add skips the new IO SAPIC's initialisation: it is neither
    /// registered nor masked, so the interrupts of the devices behind it are never routed
    /// (CHK-6: an enabled device's interrupt is never delivered).
    SkipSapicInitOnHotAdd,
    /// `free_irq` forgets to mask the IO SAPIC entry: the line of a device that is gone (or
    /// still running) keeps interrupting a vector nobody owns any more (CHK-6, read from the
    /// entry itself).
    FreeIrqLeavesUnmasked,
    /// The interrupt handler writes its EOI with the vector of another line: the entry it
    /// served stays in service (remote IRR set) and its line never interrupts again (CHK-6,
    /// from the IO SAPIC's own state at audits).
    EoiWrongLine,
    /// A failed slot enable skips its undo: the slot stays powered (and whatever the steps
    /// before the failure did stays done) (CHK-7, slot undo, from the hardware).
    SkipEnableUndo,
    /// Page migration forgets the tasks that waited for a page while it moved: they stay
    /// blocked for ever (CHK-4 liveness: blocked past its bound with no wakeup).
    LosePageWaiters,
    /// RCU readers keep the CPU-maps pointer their CPU loaded first instead of loading the
    /// published one each time: after a CPU hot-remove publishes new maps they dereference
    /// a version that is no longer published, then one that was freed and poisoned, and act
    /// on the poison they load as if it were a mask (CHK-5, from what they loaded; the CPU
    /// removals then hang on cross-calls sent by it).
    RcuReaderKeepsStalePointer,
    /// Page migration updates its own copy of a moved page's PTE but never stores the word
    /// into the page-table page: the hardware walker still finds the migration entry of the
    /// old frame, which is then freed (CHK-7: the word in memory disagrees with the kernel,
    /// and the old frame is freed while that word maps it; CHK-4: the tasks that touch the
    /// page wait for a migration that already ended, for ever).
    PteNotWrittenToMemory,
    /// Memory offline forgets the page descriptors of a block whose `mem_map` lives on
    /// another node: those frames stay allocated for a block that is gone (CHK-7, the leak
    /// audit after each operation).
    LeakMemmapOnOffline,
    /// A failed memory offline forgets to undo the isolation of its blocks: their pageblocks
    /// stay isolated, and nothing is allocated from that memory again (CHK-7: a failed
    /// operation that did not release what it isolated, from the checker's own record).
    SkipIsolationUndo,
    /// CPU hot-remove hands the version of the CPU maps it has just published, instead of
    /// the old one, to RCU to free after the grace period: the published object is freed
    /// and poisoned under every reader that comes after (CHK-5: freed while still
    /// published, and the poison every later reader loads).
    FreePublishedMaps,
    /// Load balancing takes the task it picked off the busiest CPU's runqueue itself, from
    /// the balancing CPU's softirq thread, instead of asking that CPU's migration thread to
    /// push it (CHK-4: a task moved between runqueues by someone other than the migration
    /// thread of the CPU it left).
    BalancePullsDirectly,
    /// Memory offline takes the block's frames away from the allocator but leaves its free
    /// blocks on the free lists: frames of memory about to be ejected stay allocatable, and
    /// the next online of the block lists them a second time (CHK-7: the free lists disagree
    /// with the checker's own record of what the allocator was given, handed out and got
    /// back).
    KeepOfflinePagesListed,
    /// CPU hot-remove, having moved an IRQ to another CPU, always retriggers it there by
    /// sending the line's vector as an IPI (as ia64's `hw_resend_irq` does for an interrupt
    /// that was pending), whether or not one was pending: the handler runs for a message
    /// no line sent (CHK-6: a handling with no message, from the hardware's tags).
    RetriggerMovedIrqs,
    /// CPU hot-remove, having moved an IRQ to another CPU, runs its handler once more by
    /// hand for the last interrupt the line delivered (a software resend of a message that
    /// was already served) (CHK-6: a message handled twice, from the hardware's tags).
    ReplayLastIrqOnMove,
    /// CPU hot-remove reprograms a moved line's IO SAPIC entry with the vector of another
    /// IRQ (an index off by one): the line's interrupts reach the other line's handler
    /// (CHK-6: a message served by another line's handler, from the hardware's tags).
    RerouteWrongVector,
    /// A hot-plug operation that a firmware notification started ends without `_OST`:
    /// firmware never hears how its eject request or device check ended (CHK-7, `_OST`
    /// answers, from firmware's own log of the `_OST`s it was given).
    SkipOst,
}

impl OsDefect {
    /// Every defect.
    pub const ALL: [OsDefect; 30] = [
        OsDefect::SkipRcuGracePeriod,
        OsDefect::SkipIrqReroute,
        OsDefect::SkipTaskMigration,
        OsDefect::SkipCacheFlushOnCpuRemove,
        OsDefect::HaltBeforeOffline,
        OsDefect::SkipTlbShootdown,
        OsDefect::CopyNoncoherent,
        OsDefect::FreeBeforeCopy,
        OsDefect::IgnoreWriteback,
        OsDefect::SkipUnmovableCheck,
        OsDefect::EjectBeforeOffline,
        OsDefect::AllocFromIsolated,
        OsDefect::SkipDriverQuiesce,
        OsDefect::LeakBarOnRemove,
        OsDefect::SkipSapicInitOnHotAdd,
        OsDefect::FreeIrqLeavesUnmasked,
        OsDefect::EoiWrongLine,
        OsDefect::SkipEnableUndo,
        OsDefect::LosePageWaiters,
        OsDefect::RcuReaderKeepsStalePointer,
        OsDefect::PteNotWrittenToMemory,
        OsDefect::LeakMemmapOnOffline,
        OsDefect::SkipIsolationUndo,
        OsDefect::FreePublishedMaps,
        OsDefect::BalancePullsDirectly,
        OsDefect::KeepOfflinePagesListed,
        OsDefect::RetriggerMovedIrqs,
        OsDefect::ReplayLastIrqOnMove,
        OsDefect::RerouteWrongVector,
        OsDefect::SkipOst,
    ];

    /// The name used in scenario files.
    pub const fn name(self) -> &'static str {
        match self {
            OsDefect::SkipRcuGracePeriod => "skip_rcu_grace_period",
            OsDefect::SkipIrqReroute => "skip_irq_reroute",
            OsDefect::SkipTaskMigration => "skip_task_migration",
            OsDefect::SkipCacheFlushOnCpuRemove => "skip_cache_flush_on_cpu_remove",
            OsDefect::HaltBeforeOffline => "halt_before_offline",
            OsDefect::SkipTlbShootdown => "skip_tlb_shootdown",
            OsDefect::CopyNoncoherent => "copy_noncoherent",
            OsDefect::FreeBeforeCopy => "free_before_copy",
            OsDefect::IgnoreWriteback => "ignore_writeback",
            OsDefect::SkipUnmovableCheck => "skip_unmovable_check",
            OsDefect::EjectBeforeOffline => "eject_before_offline",
            OsDefect::AllocFromIsolated => "alloc_from_isolated",
            OsDefect::SkipDriverQuiesce => "skip_driver_quiesce",
            OsDefect::LeakBarOnRemove => "leak_bar_on_remove",
            OsDefect::SkipSapicInitOnHotAdd => "skip_sapic_init_on_hot_add",
            OsDefect::FreeIrqLeavesUnmasked => "free_irq_leaves_unmasked",
            OsDefect::EoiWrongLine => "eoi_wrong_line",
            OsDefect::SkipEnableUndo => "skip_enable_undo",
            OsDefect::LosePageWaiters => "lose_page_waiters",
            OsDefect::RcuReaderKeepsStalePointer => "rcu_reader_keeps_stale_pointer",
            OsDefect::PteNotWrittenToMemory => "pte_not_written_to_memory",
            OsDefect::LeakMemmapOnOffline => "leak_memmap_on_offline",
            OsDefect::SkipIsolationUndo => "skip_isolation_undo",
            OsDefect::FreePublishedMaps => "free_published_maps",
            OsDefect::BalancePullsDirectly => "balance_pulls_directly",
            OsDefect::KeepOfflinePagesListed => "keep_offline_pages_listed",
            OsDefect::RetriggerMovedIrqs => "retrigger_moved_irqs",
            OsDefect::ReplayLastIrqOnMove => "replay_last_irq_on_move",
            OsDefect::RerouteWrongVector => "reroute_wrong_vector",
            OsDefect::SkipOst => "skip_ost",
        }
    }

    /// The codes of the checkers that report it on every seed of its scenario
    /// (`scenarios/defects/os_<name>.toml`, which expects exactly these to fire).
    pub const fn caught_by(self) -> &'static [&'static str] {
        match self {
            OsDefect::SkipRcuGracePeriod => &["CHK-5"],
            OsDefect::SkipIrqReroute => &["CHK-6"],
            OsDefect::SkipTaskMigration => &["CHK-4"],
            OsDefect::SkipCacheFlushOnCpuRemove => &["CHK-2"],
            OsDefect::HaltBeforeOffline => &["CHK-4", "CHK-6"],
            OsDefect::SkipTlbShootdown => &["CHK-3"],
            OsDefect::CopyNoncoherent => &["CHK-2", "CHK-3"],
            OsDefect::FreeBeforeCopy => &["CHK-7"],
            OsDefect::IgnoreWriteback => &["CHK-7"],
            OsDefect::SkipUnmovableCheck => &["CHK-1", "CHK-2", "CHK-3", "CHK-7"],
            OsDefect::EjectBeforeOffline => &["CHK-1", "CHK-2", "CHK-3"],
            OsDefect::AllocFromIsolated => &["CHK-7"],
            OsDefect::SkipDriverQuiesce => &["CHK-7"],
            OsDefect::LeakBarOnRemove => &["CHK-7"],
            OsDefect::SkipSapicInitOnHotAdd => &["CHK-6"],
            OsDefect::FreeIrqLeavesUnmasked => &["CHK-6"],
            OsDefect::EoiWrongLine => &["CHK-6"],
            OsDefect::SkipEnableUndo => &["CHK-7"],
            OsDefect::LosePageWaiters => &["CHK-4"],
            OsDefect::RcuReaderKeepsStalePointer => &["CHK-5"],
            OsDefect::PteNotWrittenToMemory => &["CHK-4", "CHK-7"],
            OsDefect::LeakMemmapOnOffline => &["CHK-7"],
            OsDefect::SkipIsolationUndo => &["CHK-7"],
            OsDefect::FreePublishedMaps => &["CHK-5"],
            OsDefect::BalancePullsDirectly => &["CHK-4"],
            OsDefect::KeepOfflinePagesListed => &["CHK-7"],
            OsDefect::RetriggerMovedIrqs => &["CHK-6"],
            OsDefect::ReplayLastIrqOnMove => &["CHK-6"],
            OsDefect::RerouteWrongVector => &["CHK-6"],
            OsDefect::SkipOst => &["CHK-7"],
        }
    }
}

impl fmt::Display for OsDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of injected OS defects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsDefects(u32);

// One bit per defect.
const _: () = assert!(OsDefect::ALL.len() <= 32);

impl OsDefects {
    /// Adds one.
    pub fn insert(&mut self, d: OsDefect) {
        self.0 |= 1 << d as u8;
    }
    /// Whether `d` is injected.
    pub const fn has(self, d: OsDefect) -> bool {
        self.0 & (1 << d as u8) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_fields_are_named() {
        assert_eq!(OsConfig::default().validate(), Ok(()));
        let c = OsConfig {
            sleep_chance: 1.5,
            ..OsConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "sleep_chance");
        let c = OsConfig {
            bound: vec![BoundTask { cpu: 1 }, BoundTask { cpu: 300 }],
            ..OsConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "bound[1].cpu");
        let c = OsConfig {
            tick: SimDuration::ZERO,
            ..OsConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "tick");
    }

    #[test]
    fn defect_set() {
        let mut d = OsDefects::default();
        d.insert(OsDefect::SkipIrqReroute);
        assert!(d.has(OsDefect::SkipIrqReroute));
        assert!(!d.has(OsDefect::HaltBeforeOffline));
        // The last defect has a bit of its own (the set once wrapped at 16).
        let last = *OsDefect::ALL.last().unwrap();
        assert!(!d.has(last));
        d.insert(last);
        assert!(d.has(last) && !d.has(OsDefect::SkipRcuGracePeriod));
        for (i, x) in OsDefect::ALL.into_iter().enumerate() {
            assert_eq!(x as usize, i, "ALL lists the defects in order");
        }
    }
}
