//! Memory hot-remove and hot-add, and the whole-cell operations that combine them with the
//! CPU flow, as state machines over simulated time (SPEC OS-MEM-4, OS-MEM-5; seed 000 §3.3,
//! seed 001).
//!
//! ```text
//!  offline: isolate ─► migrate (passes of batches) ─► offline blocks ─► teardown ─► flush ─► [eject]
//!           │ unmovable kernel page: EBUSY,        │ per batch: unmap through rmap (migration /
//!           │ nothing changed                      │ swap entries, file holes) ─► TLB shootdown
//!           │                                      │ (cross-calls, wait for every ack) ─► copy
//!           │                                      │ coherently ─► page cache / rmap ─► remap
//!           │                                      └ busy pages (locked, writeback, pinned by DMA,
//!           │                                        private data to write back) wait for the
//!           │                                        next pass; after the last: EBUSY, undone
//!  online:  online blocks (mem_map on the new memory or on another node) ─► zonelists
//!  cell remove: cpus down ─► memory offline ─► firmware _EJ0 of the module ─► _OST
//!  cell add (device check): memory online ─► zonelists ─► cpus up ─► _OST
//! ```
//!
//! One operation runs at a time; requests queue. Every step's simulated duration is
//! recorded, as are the pages moved by each method.

use acpi_model::{AcpiValue, Platform, PlatformProbe};
use serde::Serialize;
use sim_core::{PhysAddr, SimDuration, SimTime};
use thiserror::Error;

use crate::config::{MemmapOn, OsDefect};
use crate::cpumask::LogicalCpu;
use crate::event::OsEvent;
use crate::hotplug::{Accepted, CpuFlow, OpKind, Trigger};
use crate::irq::CALL_FUNCTION_VECTOR;
use crate::kernel::Os;
use crate::memory::{Io, SWAP_DEVICE};
use crate::mm::vm::Pte;
use crate::mm::{
    BlockState, Gfp, Owner, PAGEBLOCK_ORDER, PAGEBLOCK_PAGES, PteRef, ZoneKind, flags,
};
use crate::ops::{
    Begun, Engine, Flow, FlowKind, KindName, Next, Op, OpError, OpTarget, OstStatus, Report,
    StepName,
};
use crate::pcihp::PciFlow;

/// What a memory operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemOpKind {
    /// Take memory blocks offline (`memoryN/state` ← offline, or an ACPI eject of a memory
    /// device).
    Offline,
    /// Bring memory blocks online (`memoryN/state` ← online, or a device check).
    Online,
    /// Remove a whole cell: its CPUs, its memory, then the firmware eject.
    CellRemove,
    /// Add a whole cell after its device check: memory, then CPUs.
    CellAdd,
}

impl MemOpKind {
    /// Name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            MemOpKind::Offline => "memory offline",
            MemOpKind::Online => "memory online",
            MemOpKind::CellRemove => "cell remove",
            MemOpKind::CellAdd => "cell add",
        }
    }
}

/// The steps, in their order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemStep {
    /// Take the cell's CPUs offline (the CPU flow).
    CpusDown,
    /// Check for unmovable pages; isolate every pageblock.
    Isolate,
    /// Move every used page out.
    Migrate,
    /// Take the emptied blocks out of the allocator; release their `mem_map`.
    OfflineBlocks,
    /// Free the node's `pg_data` if it has no memory left; rebuild the zonelists.
    Teardown,
    /// Flush every CPU's cache and TLB of the removed range.
    FlushCaches,
    /// Remove the `pci_dev` of the cell's chipset function (no power control).
    RemoveChipset,
    /// Firmware `_EJ0`.
    Eject,
    /// Add a `pci_dev` for the new cell's chipset function.
    AddChipset,
    /// Put the new blocks' memory under the allocator.
    OnlineBlocks,
    /// Rebuild the zonelists.
    Zonelists,
    /// Bring the cell's CPUs online (the CPU flow).
    CpusUp,
}

impl MemStep {
    /// Name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            MemStep::CpusDown => "cpus_down",
            MemStep::Isolate => "isolate",
            MemStep::Migrate => "migrate",
            MemStep::OfflineBlocks => "offline_blocks",
            MemStep::Teardown => "teardown",
            MemStep::FlushCaches => "flush_caches",
            MemStep::RemoveChipset => "remove_chipset",
            MemStep::Eject => "eject",
            MemStep::AddChipset => "add_chipset",
            MemStep::OnlineBlocks => "online_blocks",
            MemStep::Zonelists => "zonelists",
            MemStep::CpusUp => "cpus_up",
        }
    }
}

impl std::fmt::Display for MemStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a memory operation was refused or failed.
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize)]
pub enum MemError {
    /// No such block.
    #[error("memory{block} does not exist ({blocks} blocks)")]
    NoSuchBlock {
        /// The block.
        block: u32,
        /// Blocks in all.
        blocks: u32,
    },
    /// The block is not in the state the request needs.
    #[error("memory{block} is {state}")]
    WrongState {
        /// The block.
        block: u32,
        /// Its state.
        state: &'static str,
    },
    /// No memory is present there.
    #[error("memory{block} is not present")]
    NotPresent {
        /// The block.
        block: u32,
    },
    /// Kernel pages that nothing can move.
    #[error("memory{block} holds unmovable pages from pfn {pfn:#x}: {owner}")]
    Unmovable {
        /// The block.
        block: u32,
        /// The first one.
        pfn: u32,
        /// What they hold, by kind.
        owner: String,
    },
    /// Pages were still busy after the last pass.
    #[error("{pages} pages still busy after {passes} passes (first pfn {first:#x}: {why})")]
    Busy {
        /// Pages left.
        pages: u32,
        /// Passes made.
        passes: u32,
        /// First one.
        first: u32,
        /// Why it could not move.
        why: String,
    },
    /// The CPU flow of a cell operation failed.
    #[error("cpu{cpu}: {error}")]
    Cpu {
        /// The CPU.
        cpu: u32,
        /// Its error.
        error: String,
    },
    /// Memory ran out while moving pages.
    #[error("no free memory outside the range to move pfn {pfn:#x} to")]
    NoMemory {
        /// The page.
        pfn: u32,
    },
    /// The cell is not a node with memory of this OS.
    #[error("{what}")]
    Invalid {
        /// Why.
        what: String,
    },
    /// Memory is interleaved over the cells: every cell holds lines of every page, so none
    /// can leave.
    #[error(
        "{path} cannot be removed: memory is interleaved over every cell ({memory} spans all \
         of them and cannot be ejected), so each cell holds lines of every page"
    )]
    Interleaved {
        /// The module asked for.
        path: String,
        /// The interleaved memory device.
        memory: String,
    },
    /// Another operation on the same node or block is queued or running.
    #[error("memory operation {op} ({what}) on {on} is in progress")]
    InProgress {
        /// Its number.
        op: u32,
        /// What it does.
        what: &'static str,
        /// What it works on (`node3`, `memory12`).
        on: String,
    },
    /// Boot is still bringing CPUs up: requests are taken once it has finished.
    #[error("boot has not finished (secondary CPUs are still being brought up)")]
    Booting,
    /// A step waited too long (the operation was abandoned).
    #[error("memory operation {op}: step {step} did not finish within {waited}")]
    Hung {
        /// The operation.
        op: u32,
        /// The step.
        step: MemStep,
        /// How long it waited.
        waited: SimDuration,
    },
}

impl MemError {
    /// The errno a Linux write to `memoryN/state` returns.
    pub const fn errno(&self) -> &'static str {
        match self {
            MemError::NoSuchBlock { .. }
            | MemError::NotPresent { .. }
            | MemError::Invalid { .. } => "EINVAL",
            MemError::WrongState { .. } => "EINVAL",
            MemError::Unmovable { .. }
            | MemError::Busy { .. }
            | MemError::Cpu { .. }
            | MemError::Interleaved { .. }
            | MemError::InProgress { .. }
            | MemError::Booting => "EBUSY",
            MemError::NoMemory { .. } => "ENOMEM",
            MemError::Hung { .. } => "ETIMEDOUT",
        }
    }

    /// The `_OST` status OSPM reports for an ACPI-triggered request that ends this way.
    pub const fn ost_status(&self) -> OstStatus {
        match self {
            MemError::Unmovable { .. } | MemError::Busy { .. } | MemError::Cpu { .. } => {
                OstStatus::InUse
            }
            MemError::InProgress { .. } | MemError::Booting => OstStatus::Busy,
            MemError::NoSuchBlock { .. }
            | MemError::WrongState { .. }
            | MemError::NotPresent { .. }
            | MemError::NoMemory { .. }
            | MemError::Invalid { .. }
            | MemError::Interleaved { .. } => OstStatus::NotSupported,
            MemError::Hung { .. } => OstStatus::Failure,
        }
    }
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemRequest {
    /// What to do.
    pub kind: MemOpKind,
    /// The blocks (offline / online).
    pub blocks: Vec<u32>,
    /// The node (cell operations, and node-wide offline).
    pub node: Option<u32>,
    /// Who asked.
    pub trigger: Trigger,
    /// The ACPI device to `_EJ0` and to report `_OST` to.
    pub acpi_path: Option<String>,
    /// When.
    pub requested: SimTime,
}

/// Pages moved, by method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MoveCounts {
    /// Copied to a new frame and remapped.
    pub remapped: u32,
    /// Of which mlocked (force-moved).
    pub mlocked: u32,
    /// Hugetlb pages moved in two stages (allocate a huge page elsewhere, move it).
    pub huge: u32,
    /// Anonymous pages written to swap.
    pub swapped: u32,
    /// Clean page-cache pages dropped.
    pub dropped: u32,
    /// Dirty pages with private data written back before they could move.
    pub written_back: u32,
    /// Times a page was found busy and retried in a later pass.
    pub retries: u32,
    /// Passes over the range that left pages busy (each followed by another pass after
    /// `retry_delay`, or by `EBUSY` after the last).
    pub passes: u32,
    /// Batches (unmap, shootdown, copy, remap).
    pub batches: u32,
    /// TLB shootdown IPIs sent.
    pub shootdown_ipis: u32,
    /// Bytes copied.
    pub bytes_copied: u64,
    /// Pageblocks compacted to make a free huge page (stage one of a hugetlb move).
    pub compactions: u32,
    /// Pages moved by compaction.
    pub compacted_pages: u32,
}

/// What a memory operation's report records beyond the common fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemOpDetail {
    /// The blocks.
    pub blocks: Vec<u32>,
    /// The node.
    pub node: Option<u32>,
    /// The ACPI device it answers for.
    pub path: Option<String>,
    /// Whether a failed operation left allocator, mappings and block states exactly as they
    /// were (`None`: it did not fail, or it had moved pages before failing).
    pub restored_exactly: Option<bool>,
    /// Pages moved.
    pub moved: MoveCounts,
}

/// The report of one memory operation.
pub type MemOpReport = Report<MemFlow>;
/// One finished step of a memory operation.
pub type MemStepRecord = crate::ops::StepRecord<MemStep>;
/// The memory hot-plug lock, queue and history.
pub type MemHotplug = Engine<MemFlow>;

/// Memory block and whole-cell operations as an engine flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemFlow {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Remap,
    Swap(u32),
    Drop,
}

#[derive(Clone, Debug)]
struct Move {
    pfn: u32,
    order: u8,
    method: Method,
    /// Every PTE mapping the page (or one of its subpages), with the frame it maps.
    ptes: Vec<(PteRef, u32)>,
    /// Moved to empty a pageblock (compaction), not out of the range.
    compaction: bool,
}

/// What a memory step waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemWait {
    /// The shootdown acknowledgements of the batch (cross-call ids), until the deadline.
    Acks {
        /// The cross-calls.
        csds: Vec<u64>,
        /// When waiting stops (unanswered calls time out).
        deadline: SimTime,
    },
    /// CPU hot-plug operations (their numbers).
    CpuOps(Vec<u32>),
}

/// The running memory operation's working state.
#[derive(Clone, Debug, Default)]
pub struct MemState {
    batch: Vec<Move>,
    /// Pages of the batch to write back before they move (dirty, private data, no
    /// `migrate_page`).
    writeback: Vec<u32>,
    isolated: Vec<u32>,
    cpus_down: Vec<LogicalCpu>,
    /// Digest of the memory state when isolation started, and when.
    digest: Option<(SimTime, u64)>,
    /// The pageblock being compacted to make room for a hugetlb page (stage one).
    compact: Option<u32>,
    /// Pageblocks that could not be compacted.
    compact_failed: Vec<u32>,
    /// A hugetlb page found no huge page and no pageblock to compact.
    no_huge: Option<u32>,
    /// A pageblock compaction emptied, kept (isolated) for the next hugetlb page.
    reserved_huge: Option<u32>,
    /// Batches in a row that moved nothing (no memory outside the range), and a page of
    /// the last one.
    stalled: (u32, u32),
}

impl KindName for MemOpKind {
    fn name(self) -> &'static str {
        MemOpKind::name(self)
    }
}

impl StepName for MemStep {
    fn name(self) -> &'static str {
        MemStep::name(self)
    }
    fn index(self) -> u8 {
        self as u8
    }
}

impl OpError for MemError {
    fn ost(&self) -> OstStatus {
        self.ost_status()
    }
}

impl Flow for MemFlow {
    type Kind = MemOpKind;
    type Step = MemStep;
    type Error = MemError;
    type Detail = MemOpDetail;
    const KIND: FlowKind = FlowKind::Memory;
    const RECORD_FAILED_STEP: bool = true;
    type Request = MemRequest;
    type Wait = MemWait;
    type State = MemState;

    fn engine(os: &Os) -> &Engine<Self> {
        &os.memhp
    }

    fn engine_mut(os: &mut Os) -> &mut Engine<Self> {
        &mut os.memhp
    }

    fn begin(os: &mut Os, now: SimTime, id: u32, req: &MemRequest) -> Begun<Self> {
        let node_of_req = req.node;
        let controller = {
            let online = &os.cur_maps().online;
            online
                .iter()
                .find(|&c| Some(os.pcpu[c.index()].node) != node_of_req)
                .or_else(|| online.first())
                .unwrap_or(os.bsp)
        };
        let report = Report {
            id,
            kind: req.kind,
            trigger: req.trigger,
            controller,
            requested: req.requested,
            started: now,
            ended: None,
            result: None,
            steps: Vec::new(),
            detail: MemOpDetail {
                blocks: req.blocks.clone(),
                node: req.node,
                path: req.acpi_path.clone(),
                restored_exactly: None,
                moved: MoveCounts::default(),
            },
        };
        Begun {
            report,
            plan: MemFlow::plan(os, req),
            state: MemState::default(),
            refused: None,
        }
    }

    fn target(op: &Op<Self>) -> OpTarget {
        OpTarget::Blocks(op.req.blocks.clone())
    }

    fn refresh(os: &mut Os) {
        let Some(cur) = os.memhp.running() else {
            return;
        };
        let ctl = os.live_controller(cur.report.controller, cur.req.node);
        if let Some(cur) = os.memhp.running_mut() {
            cur.report.controller = ctl;
        }
    }

    fn act(
        os: &mut Os,
        now: SimTime,
        step: MemStep,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Next<Self> {
        MemFlow::mem_act(os, now, step, p, probe)
    }

    fn resume(
        os: &mut Os,
        now: SimTime,
        wait: MemWait,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Option<Next<Self>> {
        Some(match wait {
            MemWait::Acks { csds, deadline } => {
                let pending = csds
                    .iter()
                    .any(|id| os.csds.get(id).is_some_and(|x| !x.done));
                if pending && now < deadline {
                    Next::Poll(
                        MemWait::Acks { csds, deadline },
                        now + os.cfg.ipi_handler,
                        String::new(),
                    )
                } else {
                    for id in &csds {
                        if let Some(x) = os.csds.remove(id) {
                            if !x.done {
                                os.stats.csd_timeouts += 1;
                                os.pcpu[x.to.index()].csd.retain(|q| q != id);
                                os.emit(
                                    now,
                                    OsEvent::CsdTimeout {
                                        id: *id,
                                        from: x.from,
                                        to: x.to,
                                        waited: os.cfg.csd_timeout,
                                    },
                                );
                            }
                        }
                    }
                    let t = MemFlow::mem_copy_batch(os, now, p, probe);
                    Next::Again(t)
                }
            }
            MemWait::CpuOps(ids) => {
                let finished: Vec<_> = ids
                    .iter()
                    .filter_map(|id| os.hotplug().done().iter().find(|r| r.id == *id))
                    .cloned()
                    .collect();
                if finished.len() < ids.len() {
                    Next::Poll(MemWait::CpuOps(ids), now + os.cfg.step_cost, String::new())
                } else {
                    let failed = finished.iter().find_map(|r| match &r.result {
                        Some(Err(e)) => Some((r.cpu.0, e.to_string())),
                        Some(Ok(())) | None => None,
                    });
                    match failed {
                        Some((cpu, error)) => Next::Fail(now, MemError::Cpu { cpu, error }),
                        None => {
                            let note = format!("{} CPUs", finished.len());
                            Next::Done(now, note)
                        }
                    }
                }
            }
        })
    }

    fn hung(op: &Op<Self>, step: MemStep, waited: SimDuration) -> MemError {
        MemError::Hung {
            op: op.report.id,
            step,
            waited,
        }
    }

    /// Restores what a failed offline changed: isolation undone, CPUs brought back.
    fn undo(os: &mut Os, t: SimTime, _p: &mut Platform, _probe: &mut PlatformProbe) -> SimTime {
        let Some(cur) = os.memhp.running_mut() else {
            return t;
        };
        let isolated = std::mem::take(&mut cur.state.isolated);
        let cpus = std::mem::take(&mut cur.state.cpus_down);
        if let Some(vm) = os.vm.as_mut() {
            for b in isolated {
                if vm.phys.blocks[b as usize].state == BlockState::GoingOffline {
                    vm.phys.undo_isolation(b);
                }
            }
        }
        for c in cpus {
            let _ = os.request(t, OpKind::Up, c.0, Trigger::Cell);
        }
        t
    }

    fn ending(os: &mut Os, now: SimTime, op: &mut Op<Self>, result: &Result<(), MemError>) {
        if let (MemOpKind::CellAdd, Ok(()), Some(n)) = (op.req.kind, result, op.req.node) {
            os.policy_cell_replaced(n);
        }
        // A refusal while isolating (same instant, nothing moved yet) must leave the memory
        // state exactly as it was: the digest taken when isolation began says whether it did.
        if let (Err(_), Some((at, before))) = (result, op.state.digest) {
            if at == now && op.report.moved.batches == 0 {
                let after = os.vm.as_ref().map(crate::memory::Vm::digest);
                op.report.restored_exactly = Some(after == Some(before));
            }
        }
    }

    fn acpi_path(_os: &Os, op: &Op<Self>) -> Option<String> {
        op.req.acpi_path.clone()
    }

    fn restart_delay(os: &Os) -> SimDuration {
        os.cfg.step_cost
    }
}

impl MemFlow {
    /// The steps of request `req`.
    fn plan(os: &Os, req: &MemRequest) -> Vec<MemStep> {
        match req.kind {
            MemOpKind::Offline => {
                let mut v = vec![
                    MemStep::Isolate,
                    MemStep::Migrate,
                    MemStep::OfflineBlocks,
                    MemStep::Teardown,
                    MemStep::FlushCaches,
                ];
                if req.acpi_path.is_some() {
                    v.push(MemStep::Eject);
                }
                v
            }
            MemOpKind::CellRemove => {
                if os.has_defect(OsDefect::EjectBeforeOffline) {
                    vec![
                        MemStep::CpusDown,
                        MemStep::RemoveChipset,
                        MemStep::Eject,
                        MemStep::Isolate,
                        MemStep::Migrate,
                        MemStep::OfflineBlocks,
                        MemStep::Teardown,
                        MemStep::FlushCaches,
                    ]
                } else {
                    vec![
                        MemStep::CpusDown,
                        MemStep::Isolate,
                        MemStep::Migrate,
                        MemStep::OfflineBlocks,
                        MemStep::Teardown,
                        MemStep::FlushCaches,
                        MemStep::RemoveChipset,
                        MemStep::Eject,
                    ]
                }
            }
            MemOpKind::Online => vec![MemStep::OnlineBlocks, MemStep::Zonelists],
            MemOpKind::CellAdd => vec![
                MemStep::AddChipset,
                MemStep::OnlineBlocks,
                MemStep::Zonelists,
                MemStep::CpusUp,
            ],
        }
    }
}

impl MemFlow {
    /// [`Os::mem_request`] on behalf of `trigger`.
    pub(crate) fn mem_request_by(
        os: &mut Os,
        now: SimTime,
        block: u32,
        online: bool,
        trigger: Trigger,
    ) -> Result<u32, MemError> {
        let r = MemFlow::check_mem_request(os, block, online);
        if let Err(e) = &r {
            CpuFlow::refuse(os, now, format!("memory{block}"), e.errno(), e.to_string());
        }
        r?;
        Ok(MemFlow::mem_enqueue(
            os,
            MemRequest {
                kind: if online {
                    MemOpKind::Online
                } else {
                    MemOpKind::Offline
                },
                blocks: vec![block],
                node: None,
                trigger,
                acpi_path: None,
                requested: now,
            },
        ))
    }

    /// The refusals of a request for block `block` to go offline or online.
    pub(crate) fn check_mem_request(os: &Os, block: u32, online: bool) -> Result<(), MemError> {
        if os.booted_at.is_none() {
            return Err(MemError::Booting);
        }
        let vm = os.vm.as_ref().ok_or(MemError::Booting)?;
        let blocks = vm.phys.blocks.len() as u32;
        let b = vm
            .phys
            .blocks
            .get(block as usize)
            .ok_or(MemError::NoSuchBlock { block, blocks })?;
        if let Some((op, kind)) = MemFlow::node_op_on(os, b.node) {
            return Err(MemError::InProgress {
                op,
                what: kind.name(),
                on: format!("node{}", b.node),
            });
        }
        if let Some((op, what)) = MemFlow::mem_op_on_block(os, block) {
            return Err(MemError::InProgress {
                op,
                what,
                on: format!("memory{block}"),
            });
        }
        let want = if online {
            BlockState::Offline
        } else {
            BlockState::Online
        };
        if b.state != want {
            return Err(MemError::WrongState {
                block,
                state: b.state.name(),
            });
        }
        Ok(())
    }

    /// The refusals of an ACPI request for a whole cell (its module at `path`, node `node`)
    /// to go (`remove`) or come: none while another operation on the node is queued or
    /// running; a removal needs the node's memory to be movable — no kernel page in it — and
    /// the cell's lines not to be interleaved with everyone else's.
    pub(crate) fn check_cell_request(
        os: &Os,
        path: &str,
        node: u32,
        remove: bool,
    ) -> Result<(), MemError> {
        if let Some((op, kind)) = MemFlow::node_op_on(os, node) {
            return Err(MemError::InProgress {
                op,
                what: kind.name(),
                on: format!("node{node}"),
            });
        }
        if !remove {
            return Ok(());
        }
        if let Some(m) = os.scan.interleaved_memory() {
            return Err(MemError::Interleaved {
                path: path.to_owned(),
                memory: m.path.clone(),
            });
        }
        let Some(vm) = os.vm.as_ref() else {
            return Err(MemError::Booting);
        };
        if os.has_defect(OsDefect::SkipUnmovableCheck) {
            return Ok(());
        }
        for b in vm.phys.node_blocks(node) {
            if let Some((pfn, owner)) = vm.phys.unmovable_summary(b) {
                return Err(MemError::Unmovable {
                    block: b,
                    pfn,
                    owner,
                });
            }
        }
        Ok(())
    }

    /// The first operation queued or running on the whole of `node` (a cell's, or a memory
    /// device's): its number and kind.
    pub(crate) fn node_op_on(os: &Os, node: u32) -> Option<(u32, MemOpKind)> {
        os.memhp
            .pending()
            .find(|(_, r)| r.node == Some(node))
            .map(|(id, r)| (id, r.kind))
    }

    /// The whole-cell operation queued or running on `node`, if any: its number and kind.
    pub(crate) fn cell_op_on(os: &Os, node: u32) -> Option<(u32, &'static str)> {
        MemFlow::node_op_on(os, node)
            .filter(|(_, k)| matches!(k, MemOpKind::CellRemove | MemOpKind::CellAdd))
            .map(|(id, k)| (id, k.name()))
    }

    /// The block operation queued or running on block `block`, if any.
    pub(crate) fn mem_op_on_block(os: &Os, block: u32) -> Option<(u32, &'static str)> {
        os.memhp
            .pending()
            .find(|(_, r)| r.blocks.contains(&block))
            .map(|(id, r)| (id, r.kind.name()))
    }

    pub(crate) fn mem_enqueue(os: &mut Os, r: MemRequest) -> u32 {
        let at = r.requested;
        crate::ops::enqueue::<MemFlow>(os, at, r)
    }

    /// The blocks the running operation has isolated.
    pub(crate) fn isolated_blocks(os: &Os) -> Vec<u32> {
        os.memhp
            .running()
            .map(|c| c.state.isolated.clone())
            .unwrap_or_default()
    }

    pub(crate) fn cur_blocks(os: &Os) -> Vec<u32> {
        let Some(cur) = os.memhp.running() else {
            return Vec::new();
        };
        match cur.req.node {
            Some(n) if cur.req.blocks.is_empty() => os
                .vm
                .as_ref()
                .map(|vm| {
                    vm.phys
                        .blocks
                        .iter()
                        .filter(|b| b.node == n)
                        .map(|b| b.index)
                        .collect()
                })
                .unwrap_or_default(),
            Some(_) | None => cur.req.blocks.clone(),
        }
    }

    pub(crate) fn mem_act(
        os: &mut Os,
        now: SimTime,
        step: MemStep,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Next<MemFlow> {
        let Some(cur) = os.memhp.running() else {
            return Next::Done(now, String::new());
        };
        let ctl = cur.report.controller;
        let node = cur.req.node;
        let mut t = now;
        match step {
            MemStep::CpusDown => {
                let Some(n) = node else {
                    return Next::Done(now, "no CPUs".into());
                };
                let cpus: Vec<LogicalCpu> = os
                    .cur_maps()
                    .online
                    .iter()
                    .filter(|c| os.pcpu[c.index()].node == n)
                    .collect();
                let mut ids = Vec::new();
                for c in &cpus {
                    match os.request(now, OpKind::Down, c.0, Trigger::Cell) {
                        Ok(Accepted::Queued { op }) => ids.push(op),
                        Ok(Accepted::NoChange) => {}
                        Err(e) => {
                            return Next::Fail(
                                now,
                                MemError::Cpu {
                                    cpu: c.0,
                                    error: e.to_string(),
                                },
                            );
                        }
                    }
                }
                if let Some(cur) = os.memhp.running_mut() {
                    cur.state.cpus_down = cpus.clone();
                }
                let note = format!("{} CPUs of node{n} queued for hot-remove", cpus.len());
                Next::Poll(MemWait::CpuOps(ids), now + os.cfg.step_cost, note)
            }
            MemStep::CpusUp => {
                let Some(n) = node else {
                    return Next::Done(now, "no CPUs".into());
                };
                let cpus: Vec<LogicalCpu> = os
                    .possible
                    .iter()
                    .filter(|c| os.pcpu[c.index()].node == n && os.present.contains(*c))
                    .collect();
                let mut ids = Vec::new();
                for c in &cpus {
                    if let Ok(Accepted::Queued { op }) =
                        os.request(now, OpKind::Up, c.0, Trigger::Cell)
                    {
                        ids.push(op);
                    }
                }
                let note = format!("{} CPUs of node{n} queued for hot-add", ids.len());
                Next::Poll(MemWait::CpuOps(ids), now + os.cfg.step_cost, note)
            }
            MemStep::Isolate => {
                // As start_isolate_page_range: block by block, each checked for unmovable
                // pages first; on a refusal the blocks isolated so far are put back.
                let blocks = MemFlow::cur_blocks(os);
                let check = !os.has_defect(OsDefect::SkipUnmovableCheck);
                let digest = os.vm.as_ref().map(crate::memory::Vm::digest);
                if let Some(cur) = os.memhp.running_mut() {
                    cur.state.digest = digest.map(|d| (now, d));
                }
                let mut isolated: Vec<u32> = Vec::new();
                let mut used = 0;
                let mut refusal = None;
                for &b in &blocks {
                    let vm = os.vmm();
                    let blk = &vm.phys.blocks[b as usize];
                    match blk.state {
                        BlockState::Online => {}
                        BlockState::Offline if node.is_some() => continue,
                        BlockState::Offline | BlockState::GoingOffline => {
                            refusal = Some(MemError::WrongState {
                                block: b,
                                state: blk.state.name(),
                            });
                            break;
                        }
                    }
                    if check {
                        if let Some((pfn, owner)) = vm.phys.unmovable_summary(b) {
                            refusal = Some(MemError::Unmovable {
                                block: b,
                                pfn,
                                owner,
                            });
                            break;
                        }
                    }
                    vm.phys.isolate_block(b);
                    used += vm.phys.used_in(b).len();
                    isolated.push(b);
                }
                let n = isolated.len() as u64;
                let names = isolated
                    .iter()
                    .map(|b| format!("memory{b}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                if let Some(cur) = os.memhp.running_mut() {
                    cur.state.isolated = isolated;
                }
                if let Some(e) = refusal {
                    // mem_undo puts the isolated blocks back.
                    return Next::Fail(now, e);
                }
                let note = format!(
                    "{n} blocks isolated ({names}), {used} pages in use{}",
                    if check {
                        ""
                    } else {
                        "; unmovable check skipped (defect skip_unmovable_check)"
                    }
                );
                Next::Done(now + os.cfg.memory.page_cost.saturating_mul(n), note)
            }
            MemStep::Migrate => MemFlow::mem_migrate_pass(os, &mut t, ctl, p, probe),
            MemStep::OfflineBlocks => {
                let blocks = MemFlow::isolated_blocks(os);
                let force = os.has_defect(OsDefect::SkipUnmovableCheck);
                let mut freed = Vec::new();
                let mut left = 0usize;
                for &b in &blocks {
                    let vm = os.vmm();
                    if force {
                        // The defect: whatever is left (kernel pages) is dropped with the block.
                        let used = vm.phys.used_in(b);
                        left += used.len();
                        for pfn in used {
                            vm.phys.map.owner[pfn as usize] = Owner::Free;
                            vm.phys.map.rmap[pfn as usize].clear();
                            vm.phys.map.flags[pfn as usize] = 0;
                            vm.phys.free(pfn, 0);
                        }
                    }
                    match os.vmm().phys.offline_block(b) {
                        Ok(v) => freed.extend(v),
                        Err((pfn, owner)) => {
                            return Next::Fail(
                                now,
                                MemError::Unmovable {
                                    block: b,
                                    pfn,
                                    owner: owner.to_string(),
                                },
                            );
                        }
                    }
                }
                let n_memmap = freed.len();
                for pfn in freed {
                    os.vmm().phys.map.owner[pfn as usize] = Owner::Free;
                    os.free_frame(t, pfn, 0);
                }
                if let Some(cur) = os.memhp.running_mut() {
                    cur.state.isolated.clear();
                }
                let mut note = format!("{} blocks offline; mem_map released", blocks.len());
                if n_memmap > 0 {
                    note.push_str(&format!(" ({n_memmap} pages on another node freed)"));
                }
                if force && left > 0 {
                    note.push_str(&format!("; {left} unmovable pages dropped with the blocks"));
                }
                Next::Done(
                    t + os.cfg.memory.page_cost.saturating_mul(blocks.len() as u64),
                    note,
                )
            }
            MemStep::Teardown => {
                let vm = os.vmm();
                let mut notes = Vec::new();
                for n in 0..vm.phys.nodes.len() as u32 {
                    if vm.phys.nodes[n as usize].online && vm.phys.node_blocks(n).is_empty() {
                        vm.phys.nodes[n as usize].online = false;
                        if let Some(pg) = vm.phys.nodes[n as usize].pgdat.take() {
                            vm.phys.map.owner[pg as usize] = Owner::Free;
                            notes.push((n, pg));
                        }
                    }
                }
                let freed: Vec<String> = notes.iter().map(|(n, _)| format!("node{n}")).collect();
                for (_, pg) in notes {
                    os.free_frame(t, pg, 0);
                }
                let vm = os.vmm();
                vm.phys.rebuild_zonelists();
                let note = if freed.is_empty() {
                    "zonelists rebuilt".to_owned()
                } else {
                    format!("pg_data of {} freed; zonelists rebuilt", freed.join(" "))
                };
                Next::Done(t, note)
            }
            MemStep::FlushCaches => {
                // Every CPU writes back and drops what it caches of the removed range (a
                // cross-call that runs PAL_CACHE_FLUSH), and flushes its TLB.
                let cpus: Vec<LogicalCpu> = os.cur_maps().online.iter().collect();
                let mut lines = 0u64;
                let mut end = t;
                for c in cpus {
                    let hw = os.hw(c);
                    if let Ok(r) = p.machine.flush_cache(t, hw, probe) {
                        lines += r.lines as u64;
                        end = end.max(t + r.latency);
                    }
                    os.vmm().tlbs[c.index()].flush();
                }
                Next::Done(
                    end,
                    format!("caches and TLBs of every online CPU flushed ({lines} lines)"),
                )
            }
            MemStep::Eject => {
                let Some(path) = os.memhp.running().and_then(|c| c.req.acpi_path.clone()) else {
                    return Next::Done(now, "nothing to eject".into());
                };
                let r = os.acpi_eval(
                    now,
                    ctl,
                    &format!("{path}._EJ0"),
                    &[AcpiValue::Integer(1)],
                    p,
                    probe,
                );
                let gone = !crate::acpi::is_present(p, &path);
                if gone {
                    if let Some(n) = node {
                        // Its memory block devices go with it.
                        if let Some(nd) = os.vmm().phys.nodes.get_mut(n as usize) {
                            nd.present = false;
                        }
                        for c in os.possible.iter().collect::<Vec<_>>() {
                            if os.pcpu[c.index()].node == n
                                && !crate::acpi::is_present(p, &os.pcpu[c.index()].path)
                            {
                                os.present.clear(c);
                                os.pcpu[c.index()].life = crate::sched::CpuLife::NotPresent;
                            }
                        }
                    }
                }
                let note = match r {
                    Ok(_) if gone => format!("_EJ0: firmware powered {path} off"),
                    Ok(_) => "_EJ0 evaluated; _STA still reports it present".to_owned(),
                    Err(e) => format!("_EJ0 failed: {e}"),
                };
                Next::Done(now, note)
            }
            MemStep::RemoveChipset => match node {
                Some(n) => Next::Done(t, PciFlow::chipset_remove(os, n)),
                None => Next::Done(t, "no cell".into()),
            },
            MemStep::AddChipset => match node {
                Some(n) => {
                    let note = PciFlow::chipset_add(os, &mut t, ctl, Some(n), p, probe);
                    Next::Done(t, note)
                }
                None => Next::Done(t, "no cell".into()),
            },
            MemStep::OnlineBlocks => MemFlow::mem_online_blocks(os, now, ctl, p, probe),
            MemStep::Zonelists => {
                let vm = os.vmm();
                vm.phys.rebuild_zonelists();
                let n = vm.phys.stats.zonelist_rebuilds;
                Next::Done(now, format!("zonelists rebuilt (rebuild {n})"))
            }
        }
    }

    pub(crate) fn mem_online_blocks(
        os: &mut Os,
        now: SimTime,
        _ctl: LogicalCpu,
        p: &mut Platform,
        _probe: &mut PlatformProbe,
    ) -> Next<MemFlow> {
        let blocks = MemFlow::cur_blocks(os);
        let policy = os.cfg.memory.memmap_on;
        let node_req = os.memhp.running().and_then(|c| c.req.node);
        let mut onlined = Vec::new();
        let mut t = now;
        for b in blocks {
            let vm = os.vmm();
            let blk = vm.phys.blocks[b as usize].clone();
            if blk.state != BlockState::Offline {
                if node_req.is_some() {
                    continue;
                }
                return Next::Fail(
                    now,
                    MemError::WrongState {
                        block: b,
                        state: blk.state.name(),
                    },
                );
            }
            // The memory must be there: its memory device's _STA says present.
            let device = os
                .scan
                .memory
                .iter()
                .find(|m| m.node == blk.node)
                .map(|m| m.path.clone());
            if !device.is_some_and(|d| crate::acpi::is_present(p, &d)) {
                return Next::Fail(now, MemError::NotPresent { block: b });
            }
            let vm = os.vmm();
            let movable = vm.phys.nodes[blk.node as usize].movable;
            let zone = if movable {
                ZoneKind::Movable
            } else {
                ZoneKind::Normal
            };
            let memmap = match policy {
                MemmapOn::NewMemory => None,
                MemmapOn::Node(n) => {
                    let k = vm.phys.memmap_pages();
                    let mut frames = Vec::new();
                    for _ in 0..k {
                        match vm.phys.alloc(n, 0, Gfp::Kernel, Owner::MemMap { block: b }) {
                            Ok(f) => frames.push(f),
                            Err(_) => break,
                        }
                    }
                    if frames.len() < k as usize {
                        for f in frames {
                            vm.phys.map.owner[f as usize] = Owner::Free;
                            vm.phys.free(f, 0);
                        }
                        return Next::Fail(now, MemError::NoMemory { pfn: blk.start });
                    }
                    Some(frames)
                }
            };
            vm.phys.online_block(b, zone, memmap, 0);
            vm.phys.nodes[blk.node as usize].present = true;
            if !vm.phys.nodes[blk.node as usize].online {
                // A new node: its pg_data (on memory that stays).
                let n = blk.node;
                vm.phys.nodes[n as usize].online = true;
                vm.phys.rebuild_zonelists();
                let near = vm.phys.zonelists[n as usize]
                    .iter()
                    .map(|&z| vm.phys.zones[z as usize].node)
                    .find(|&m| !vm.phys.nodes[m as usize].movable)
                    .unwrap_or(0);
                if let Ok(pg) = vm
                    .phys
                    .alloc(near, 0, Gfp::Kernel, Owner::NodeData { node: n })
                {
                    vm.phys.nodes[n as usize].pgdat = Some(pg);
                }
            }
            t += os
                .cfg
                .memory
                .page_cost
                .saturating_mul(u64::from(blk.pages / PAGEBLOCK_PAGES));
            onlined.push(format!("memory{b}"));
        }
        let place = match policy {
            MemmapOn::NewMemory => "mem_map on the new memory".to_owned(),
            MemmapOn::Node(n) => format!("mem_map on node{n}"),
        };
        Next::Done(t, format!("{} online ({place})", onlined.join(" ")))
    }

    /// One pass step of the migration: picks the next batch, unmaps it and starts the TLB
    /// shootdown; or ends the step when nothing is left; or waits for busy pages.
    pub(crate) fn mem_migrate_pass(
        os: &mut Os,
        t: &mut SimTime,
        ctl: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Next<MemFlow> {
        let now = *t;
        let blocks = MemFlow::isolated_blocks(os);
        let mc = os.cfg.memory.clone();
        let defect_wb = os.has_defect(OsDefect::IgnoreWriteback);
        let compact = os.memhp.running().and_then(|c| c.state.compact);
        // Batch after batch finding no memory to move to: give up (isolation is undone).
        if let Some(c) = os.memhp.running() {
            if c.state.stalled.0 >= mc.migrate_passes {
                let pfn = c.state.no_huge.unwrap_or(c.state.stalled.1);
                return Next::Fail(now, MemError::NoMemory { pfn });
            }
        }
        let vm = os.vmm();
        let mut busy: Vec<(u32, &'static str)> = Vec::new();
        let mut picked: Vec<Move> = Vec::new();
        let mut unmovable = 0u32;
        let mut writeback: Vec<u32> = Vec::new();
        // Stage one of a hugetlb move may need a pageblock emptied first (compaction): its
        // pages are the batch until it is free.
        let frames: Vec<u32> = match compact {
            Some(pb) => (pb..pb + PAGEBLOCK_PAGES)
                .filter(|&f| !matches!(vm.phys.map.owner[f as usize], Owner::Free | Owner::Offline))
                .collect(),
            None => blocks.iter().flat_map(|&b| vm.phys.used_in(b)).collect(),
        };
        if let Some(pb) = compact {
            let blocked = frames.iter().any(|&f| {
                let i = f as usize;
                let o = vm.phys.map.owner[i];
                !matches!(o, Owner::Anon { .. } | Owner::File { .. })
                    || vm.phys.map.flags[i] & (flags::LOCKED | flags::WRITEBACK) != 0
                    || vm.phys.map.pins[i] > 0
            });
            if frames.is_empty() {
                // Done: a free huge page, kept isolated for the hugetlb page waiting for it.
                if let Some(c) = os.memhp.running_mut() {
                    c.state.compact = None;
                    c.state.reserved_huge = Some(pb);
                    c.report.moved.compactions += 1;
                }
                return Next::Again(now);
            }
            if blocked {
                // It cannot be emptied now: give it back and try another one.
                vm.phys
                    .set_pageblock_type(pb, crate::mm::MigrateType::Movable);
                if let Some(c) = os.memhp.running_mut() {
                    c.state.compact = None;
                    c.state.compact_failed.push(pb);
                }
                return Next::Again(now);
            }
        }
        'scan: for &pfn in &frames {
            {
                let i = pfn as usize;
                let owner = vm.phys.map.owner[i];
                let f = vm.phys.map.flags[i];
                if f & flags::TAIL != 0 {
                    continue;
                }
                if owner.is_kernel() || matches!(owner, Owner::MemMap { .. }) {
                    unmovable += 1;
                    continue;
                }
                if f & flags::LOCKED != 0 {
                    busy.push((pfn, "locked (I/O in flight)"));
                    continue;
                }
                if f & flags::WRITEBACK != 0 && !defect_wb {
                    busy.push((pfn, "under writeback"));
                    continue;
                }
                if vm.phys.map.pins[i] > 0 && f & flags::WRITEBACK == 0 {
                    busy.push((pfn, "pinned by DMA"));
                    continue;
                }
                let method = match owner {
                    Owner::File { file, .. } => {
                        let fs = vm.files[file as usize].fs;
                        let dirty = f & flags::DIRTY != 0;
                        let private = f & flags::PRIVATE != 0;

                        if dirty && private && !fs.migrates_private() && fs.has_backing() {
                            // No migrate_page: under the page lock, unmapped, it is written
                            // back first, then moved.
                            writeback.push(pfn);
                            Method::Remap
                        } else if !dirty
                            && fs.has_backing()
                            && mc.swapout_cold
                            && f & flags::REFERENCED == 0
                        {
                            Method::Drop
                        } else {
                            Method::Remap
                        }
                    }
                    Owner::Anon { .. } => {
                        let cold = f & flags::REFERENCED == 0 && f & flags::MLOCKED == 0;
                        match (mc.swapout_cold && cold)
                            .then(|| vm.swap.take_slot())
                            .flatten()
                        {
                            Some(slot) => Method::Swap(slot),
                            None => Method::Remap,
                        }
                    }
                    Owner::Huge { .. }
                    | Owner::Offline
                    | Owner::Free
                    | Owner::Firmware
                    | Owner::MemMap { .. }
                    | Owner::NodeData { .. }
                    | Owner::Slab { .. }
                    | Owner::PageTable { .. }
                    | Owner::DmaBuffer { .. }
                    | Owner::ZeroPage => Method::Remap,
                };
                let method = if compact.is_some() {
                    Method::Remap
                } else {
                    method
                };
                let order = if f & flags::HEAD != 0 {
                    PAGEBLOCK_ORDER
                } else {
                    0
                };
                let mut ptes = Vec::new();
                for k in 0..1u32 << order {
                    ptes.extend(
                        vm.phys.map.rmap[(pfn + k) as usize]
                            .iter()
                            .map(|&r| (r, pfn + k)),
                    );
                }
                picked.push(Move {
                    pfn,
                    order,
                    method,
                    ptes,
                    compaction: compact.is_some(),
                });
                if picked.len() >= mc.copy_batch as usize {
                    break 'scan;
                }
            }
        }
        if picked.is_empty() {
            if busy.is_empty() {
                let moved = os
                    .memhp
                    .running()
                    .map(|c| c.report.moved.clone())
                    .unwrap_or_default();
                let note = format!(
                    "{} remapped ({} mlocked, {} hugetlb in two stages: {} pageblocks compacted, \
                     {} pages), {} swapped out, {} clean page-cache pages dropped, {} written \
                     back first; {} passes, {} batches, {} retries{}",
                    moved.remapped,
                    moved.mlocked,
                    moved.huge,
                    moved.compactions,
                    moved.compacted_pages,
                    moved.swapped,
                    moved.dropped,
                    moved.written_back,
                    moved.passes + 1,
                    moved.batches,
                    moved.retries,
                    if unmovable > 0 {
                        format!("; {unmovable} unmovable pages left")
                    } else {
                        String::new()
                    }
                );
                return Next::Done(now, note);
            }
            let passes = {
                let Some(c) = os.memhp.running_mut() else {
                    return Next::Done(now, String::new());
                };
                c.report.moved.passes += 1;
                c.report.moved.retries += busy.len() as u32;
                c.report.moved.passes
            };
            if passes >= mc.migrate_passes {
                if let Some(pfn) = os.memhp.running().and_then(|c| c.state.no_huge) {
                    return Next::Fail(now, MemError::NoMemory { pfn });
                }
                let (first, why) = busy[0];
                return Next::Fail(
                    now,
                    MemError::Busy {
                        pages: busy.len() as u32,
                        passes,
                        first,
                        why: why.to_owned(),
                    },
                );
            }
            return Next::Again(now + mc.retry_delay);
        }
        // Unmap every picked page through the reverse map.
        let mut mms: Vec<u32> = Vec::new();
        for m in &mut picked {
            let vm = os.vmm();
            vm.phys.map.set(m.pfn, flags::LOCKED);
            if let Method::Swap(slot) = m.method {
                // Into the swap cache: a fault on the swap entry finds the page here.
                vm.phys.map.set(m.pfn, flags::SWAPCACHE);
                vm.swap_cache.insert(slot, m.pfn);
            }
            for (r, sub) in m.ptes.clone() {
                let entry = match m.method {
                    Method::Remap => Pte::Migration { pfn: sub },
                    Method::Swap(slot) => Pte::Swap { slot },
                    Method::Drop => Pte::FileHole,
                };
                os.write_pte(t, ctl, r, entry, p, probe);
                mms.push(r.mm);
            }
            *t += mc.page_cost;
        }
        mms.sort_unstable();
        mms.dedup();
        // Swap-outs and drops lose their mappings now.
        let vm = os.vmm();
        for m in &picked {
            if m.method != Method::Remap {
                vm.phys.map.rmap[m.pfn as usize].clear();
            }
        }
        // The TLB shootdown: the CPUs that may cache these translations.
        let mut targets: Vec<LogicalCpu> = Vec::new();
        for &mm in &mms {
            for c in vm.spaces[mm as usize].cpu_list() {
                targets.push(LogicalCpu(c));
            }
        }
        vm.tlbs[ctl.index()].flush();
        targets.sort_unstable();
        targets.dedup();
        let mut csds = Vec::new();
        if !os.has_defect(OsDefect::SkipTlbShootdown) {
            let v = os.reader_begin(t, ctl, "memory offline shootdown", p, probe);
            let online: Vec<LogicalCpu> = os
                .maps_version(v)
                .online
                .iter()
                .filter(|c| *c != ctl && targets.contains(c))
                .collect();
            for to in online {
                os.reader_use(t, ctl, v, to, p, probe);
                let id = os.next_csd;
                os.next_csd += 1;
                os.csds.insert(
                    id,
                    crate::kernel::Csd {
                        from: ctl,
                        to,
                        done: false,
                        asid: None,
                    },
                );
                os.pcpu[to.index()].csd.push_back(id);
                os.emit(*t, OsEvent::CsdQueued { id, from: ctl, to });
                os.send_ipi(*t, ctl, to, CALL_FUNCTION_VECTOR, p, probe);
                *t += os.cfg.ipi_send;
                csds.push(id);
            }
            os.reader_end(*t, ctl);
        }
        if let Some(c) = os.memhp.running_mut() {
            c.report.moved.batches += 1;
            c.report.moved.shootdown_ipis += csds.len() as u32;
            c.state.batch = picked;
            c.state.writeback = writeback;
        }
        let deadline = *t + os.cfg.csd_timeout;
        Next::Poll(MemWait::Acks { csds, deadline }, *t, String::new())
    }

    /// The second half of a batch, after every TLB acknowledged: copy, update, remap, free.
    pub(crate) fn mem_copy_batch(
        os: &mut Os,
        now: SimTime,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> SimTime {
        let Some(cur) = os.memhp.running_mut() else {
            return now;
        };
        let batch = std::mem::take(&mut cur.state.batch);
        let writeback = std::mem::take(&mut cur.state.writeback);
        let ctl = cur.report.controller;
        let home = cur.req.node;
        let mut t = now;
        let hw = os.hw(ctl);
        let coherent = !os.has_defect(OsDefect::CopyNoncoherent);
        let free_first = os.has_defect(OsDefect::FreeBeforeCopy);
        let page_cost = os.cfg.memory.page_cost;
        // Pages whose file system has no migrate_page are written back first (they are
        // locked and unmapped: nobody can dirty them again).
        if !writeback.is_empty() {
            for &pfn in &writeback {
                os.write_back_now(t, pfn, p, probe);
            }
            t += os.cfg.memory.disk_latency;
            if let Some(c) = os.memhp.running_mut() {
                c.report.moved.written_back += writeback.len() as u32;
            }
        }
        // Allocate every destination first, then copy the whole batch, then remap.
        let mut copies: Vec<(u32, u32, u8)> = Vec::new();
        for m in &batch {
            match m.method {
                Method::Drop => {
                    let vm = os.vmm();
                    if let Owner::File { file, page } = vm.phys.map.owner[m.pfn as usize] {
                        vm.files[file as usize].cache[page as usize] = None;
                    }
                    vm.phys.map.clear(m.pfn, flags::LOCKED);
                    os.free_frame(t, m.pfn, 0);
                    // A task that faulted on the page meanwhile reads it from the disk now.
                    os.wake_page(&mut t, ctl, m.pfn, p, probe);
                    if let Some(c) = os.memhp.running_mut() {
                        c.report.moved.dropped += 1;
                    }
                }
                Method::Swap(slot) => {
                    // The swap device reads the page (DMA), then the frame is freed.
                    let vm = os.vmm();
                    let addr = PhysAddr::new(vm.phys.addr(m.pfn));
                    let mut buf = vec![0u64; vm.wpp as usize];
                    let _ = p.machine.dma_read(t, &SWAP_DEVICE, addr, &mut buf, probe);
                    let vm = os.vmm();
                    vm.swap.write(slot, buf.into_boxed_slice());
                    vm.phys.map.clear(m.pfn, flags::LOCKED);
                    vm.phys.map.set(m.pfn, flags::WRITEBACK);
                    vm.phys.map.pins[m.pfn as usize] += 1;
                    vm.stats.swap_outs += 1;
                    os.start_io(t, Io::SwapOut { pfn: m.pfn, slot });
                    if let Some(c) = os.memhp.running_mut() {
                        c.report.moved.swapped += 1;
                    }
                }
                Method::Remap => {
                    let vm = os.vmm();
                    let owner = vm.phys.map.owner[m.pfn as usize];
                    let prefer = match owner {
                        Owner::Anon { mm, .. } | Owner::Huge { mm, .. } => {
                            vm.spaces[mm as usize].node
                        }
                        Owner::File { file, .. } => vm.files[file as usize].node,
                        Owner::Offline
                        | Owner::Free
                        | Owner::Firmware
                        | Owner::MemMap { .. }
                        | Owner::NodeData { .. }
                        | Owner::Slab { .. }
                        | Owner::PageTable { .. }
                        | Owner::DmaBuffer { .. }
                        | Owner::ZeroPage => home.unwrap_or(0),
                    };
                    // Stage one for a hugetlb page: a new huge page elsewhere (the one
                    // compaction emptied for it, if any).
                    let reserved = if m.order == PAGEBLOCK_ORDER {
                        os.memhp
                            .running_mut()
                            .and_then(|c| c.state.reserved_huge.take())
                    } else {
                        None
                    };
                    let vm = os.vmm();
                    let got = match reserved {
                        Some(pb) if vm.phys.alloc_isolated_pageblock(pb, owner) => Ok(pb),
                        Some(_) | None => vm.phys.alloc(prefer, m.order, Gfp::Movable, owner),
                    };
                    match got {
                        Ok(new) => copies.push((m.pfn, new, m.order)),
                        Err(_) => {
                            // Nothing free outside the range: put the mappings back. For a
                            // hugetlb page, stage one continues by compacting a pageblock
                            // elsewhere; the page moves in a later pass.
                            if m.order > 0 {
                                MemFlow::start_compaction(os, prefer, m.pfn);
                            }
                            let vm = os.vmm();
                            vm.phys.map.clear(m.pfn, flags::LOCKED);
                            for (r, sub) in m.ptes.clone() {
                                os.write_pte(&mut t, ctl, r, Pte::Present { pfn: sub }, p, probe);
                            }
                            for k in 0..1u32 << m.order {
                                os.wake_page(&mut t, ctl, m.pfn + k, p, probe);
                            }
                        }
                    }
                }
            }
        }
        if free_first {
            // The defect: the old pages go back to the allocator before their data moved.
            for &(old, _, order) in &copies {
                os.free_frame(t, old, order);
            }
        }
        // The whole batch is copied at once (OS-MEM-6: in parallel on the host when
        // `parallel_copy`; contents and trace do not depend on the thread count).
        let vm = os.vmm();
        let pairs: Vec<(PhysAddr, PhysAddr)> = copies
            .iter()
            .flat_map(|&(old, new, order)| (0..1u32 << order).map(move |k| (old + k, new + k)))
            .map(|(o, n)| {
                (
                    PhysAddr::new(vm.phys.addr(o)),
                    PhysAddr::new(vm.phys.addr(n)),
                )
            })
            .collect();
        let bytes = (pairs.len() as u64) << vm.phys.page_shift;
        let parallel = os.cfg.memory.parallel_copy;
        if let Ok(lat) = p
            .machine
            .copy_pages(t, hw, &pairs, coherent, parallel, probe)
        {
            t += lat;
        }
        if let Some(c) = os.memhp.running_mut() {
            c.report.moved.bytes_copied += bytes;
        }
        let compaction = batch.first().is_some_and(|m| m.compaction);
        let progress = !copies.is_empty() || batch.iter().any(|m| m.method != Method::Remap);
        if let (Some(c), Some(first)) = (os.memhp.running_mut(), batch.first()) {
            c.state.stalled = if progress {
                (0, 0)
            } else {
                (c.state.stalled.0 + 1, first.pfn)
            };
        }
        for &(old, new, order) in &copies {
            // Move the descriptors, the page-cache entry and the reverse map; remap.
            let mut remaps = Vec::new();
            let vm = os.vmm();
            for k in 0..1u32 << order {
                let (o, n) = ((old + k) as usize, (new + k) as usize);
                vm.phys.map.owner[n] = vm.phys.map.owner[o];
                vm.phys.map.flags[n] = vm.phys.map.flags[o] & !flags::LOCKED;
                vm.phys.map.order[n] = vm.phys.map.order[o];
                let r = std::mem::take(&mut vm.phys.map.rmap[o]);
                for x in &r {
                    remaps.push((x.mm, x.vpn, old + k, new + k));
                }
                vm.phys.map.rmap[n] = r;
            }
            let owner = vm.phys.map.owner[new as usize];
            let mlocked = vm.phys.map.has(new, flags::MLOCKED);
            if let Owner::File { file, page } = owner {
                vm.files[file as usize].cache[page as usize] = Some(new);
            }
            for (mm, vpn, _, to) in remaps {
                os.write_pte(
                    &mut t,
                    ctl,
                    PteRef { mm, vpn },
                    Pte::Present { pfn: to },
                    p,
                    probe,
                );
            }
            if !free_first {
                // The old page is unlocked and freed (under the defect ignore_writeback it
                // may still be under writeback: the free-time check sees it).
                let vm = os.vmm();
                for k in 0..1u32 << order {
                    let i = (old + k) as usize;
                    vm.phys.map.owner[i] = owner;
                    vm.phys.map.flags[i] &= !flags::LOCKED;
                }
                os.free_frame(t, old, order);
            }
            t += page_cost;
            if let Some(c) = os.memhp.running_mut() {
                if compaction {
                    c.report.moved.compacted_pages += 1;
                } else {
                    c.report.moved.remapped += 1;
                    if mlocked {
                        c.report.moved.mlocked += 1;
                    }
                    if order > 0 {
                        c.report.moved.huge += 1;
                    }
                }
            }
            for k in 0..1u32 << order {
                os.wake_page(&mut t, ctl, old + k, p, probe);
            }
        }
        t
    }

    /// Stage one of a hugetlb move found no free huge page: pick the pageblock nearest to
    /// `node` that holds only movable base pages (fewest first) and isolate it; the next
    /// batches empty it (compaction).
    pub(crate) fn start_compaction(os: &mut Os, node: u32, huge: u32) {
        let Some(cur) = os.memhp.running() else {
            return;
        };
        if cur.state.compact.is_some() || cur.state.reserved_huge.is_some() {
            return;
        }
        let failed = cur.state.compact_failed.clone();
        let vm = os.vm.as_ref().expect("memory management is up");
        let zl = vm
            .phys
            .zonelists
            .get(node as usize)
            .cloned()
            .unwrap_or_default();
        let mut best: Option<(u32, u32)> = None;
        for z in zl {
            let free = vm.phys.zones[z as usize].area.allocatable_pages();
            for (i, &pz) in vm.phys.pb_zone.iter().enumerate() {
                if pz != z || vm.phys.pb_type[i] != crate::mm::MigrateType::Movable {
                    continue;
                }
                let pb = i as u32 * PAGEBLOCK_PAGES;
                if failed.contains(&pb) {
                    continue;
                }
                let mut used = 0u32;
                let mut movable = true;
                for f in pb..pb + PAGEBLOCK_PAGES {
                    let k = f as usize;
                    match vm.phys.map.owner[k] {
                        Owner::Free => {}
                        Owner::Anon { .. } | Owner::File { .. } => {
                            used += 1;
                            if vm.phys.map.flags[k] & (flags::LOCKED | flags::WRITEBACK) != 0
                                || vm.phys.map.pins[k] > 0
                            {
                                movable = false;
                            }
                        }
                        Owner::Offline
                        | Owner::Firmware
                        | Owner::MemMap { .. }
                        | Owner::NodeData { .. }
                        | Owner::Slab { .. }
                        | Owner::PageTable { .. }
                        | Owner::DmaBuffer { .. }
                        | Owner::ZeroPage
                        | Owner::Huge { .. } => movable = false,
                    }
                }
                // Its pages must fit in the zone's free pages outside it.
                let outside = free.saturating_sub(u64::from(PAGEBLOCK_PAGES - used));
                if movable
                    && used > 0
                    && u64::from(used) <= outside
                    && best.is_none_or(|b| used < b.1)
                {
                    best = Some((pb, used));
                }
            }
            if best.is_some() {
                break;
            }
        }
        let vm = os.vmm();
        match best {
            Some((pb, _)) => {
                vm.phys
                    .set_pageblock_type(pb, crate::mm::MigrateType::Isolate);
                if let Some(c) = os.memhp.running_mut() {
                    c.state.compact = Some(pb);
                }
            }
            None => {
                if let Some(c) = os.memhp.running_mut() {
                    c.state.no_huge = Some(huge);
                }
            }
        }
    }

    /// Starts writing dirty file page `pfn` back to the disk.
    pub(crate) fn start_writeback(
        os: &mut Os,
        now: SimTime,
        pfn: u32,
        _p: &mut Platform,
        _probe: &mut PlatformProbe,
    ) {
        let vm = os.vmm();
        let Owner::File { file, page } = vm.phys.map.owner[pfn as usize] else {
            return;
        };
        if vm.phys.map.has(pfn, flags::WRITEBACK) {
            return;
        }
        vm.phys.map.set(pfn, flags::WRITEBACK);
        vm.phys.map.clear(pfn, flags::DIRTY);
        vm.phys.map.pins[pfn as usize] += 1;
        os.start_io(now, Io::Writeback { pfn, file, page });
    }
}
