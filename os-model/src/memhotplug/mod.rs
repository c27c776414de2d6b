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

mod migrate;
mod steps;

use crate::hw::Cx;
use serde::Serialize;
use sim_core::{SimDuration, SimTime};
use thiserror::Error;

use crate::config::OsDefect;
use crate::cpumask::LogicalCpu;
use crate::hotplug::{CpuFlow, OpKind, Trigger};
use crate::ids::{BlockId, NodeId};
use crate::kernel::Os;
use crate::mm::{BlockState, PteRef};
use crate::ops::{Begun, Engine, Flow, FlowKind, Next, Op, OpTarget, OstStatus, Report};
use crate::policy::Policies;

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
        /// The memory block (`memoryN` in sysfs).
        block: BlockId,
        /// Blocks in all.
        blocks: u32,
    },
    /// The block is not in the state the request needs.
    #[error("memory{block} is {state}")]
    WrongState {
        /// The memory block (`memoryN` in sysfs).
        block: BlockId,
        /// The block's state as sysfs spells it (`online`, `offline`, `going-offline`).
        state: &'static str,
    },
    /// No memory is present there.
    #[error("memory{block} is not present")]
    NotPresent {
        /// The memory block (`memoryN` in sysfs).
        block: BlockId,
    },
    /// Kernel pages that nothing can move.
    #[error("memory{block} holds unmovable pages from pfn {pfn:#x}: {owner}")]
    Unmovable {
        /// The memory block (`memoryN` in sysfs).
        block: BlockId,
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
        /// The logical CPU number (`cpuN` in sysfs).
        cpu: u32,
        /// Why, as the kernel words it.
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
        /// The step that waited too long.
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
    pub blocks: Vec<BlockId>,
    /// The node (cell operations, and node-wide offline).
    pub node: Option<NodeId>,
    /// Who asked.
    pub trigger: Trigger,
    /// The ACPI device to `_EJ0` and to report `_OST` to.
    pub acpi_path: Option<String>,
    /// When.
    pub requested: SimTime,
    /// The firmware notification that asked, if one did.
    pub cause: Option<acpi_model::NotifyId>,
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
    /// Bytes the page copies moved.
    pub bytes_copied: u64,
    /// Pageblocks compacted to make a free huge page (stage one of a hugetlb move).
    pub compactions: u32,
    /// Pages moved by compaction.
    pub compacted_pages: u32,
}

/// What a memory operation's report records beyond the common fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemOpDetail {
    /// The memory blocks named (empty: the whole node).
    pub blocks: Vec<BlockId>,
    /// The NUMA node (cell) it works on, if it names one.
    pub node: Option<NodeId>,
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
    /// The CPU operations it queued (its children) to end.
    Children,
}

/// The running memory operation's working state.
#[derive(Clone, Debug, Default)]
pub struct MemState {
    batch: Vec<Move>,
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

crate::ops::flow_names!(MemOpKind, MemStep, MemError);

impl Flow for MemFlow {
    type Kind = MemOpKind;
    type Step = MemStep;
    type Error = MemError;
    type Detail = MemOpDetail;
    const KIND: FlowKind = FlowKind::Memory;
    const RECORD_FAILED_STEP: bool = true;
    type Host = Os;
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
        let node_of_req = req.node.map(|n| n.0);
        let controller = {
            let online = &os.cur_maps().online;
            online
                .iter()
                .find(|&c| Some(os.pcpu[c.index()].node) != node_of_req)
                .or_else(|| online.first())
                .unwrap_or(os.boot_cpu())
        };
        let report = Report {
            id,
            kind: req.kind,
            trigger: req.trigger,
            controller,
            requested: req.requested,
            cause: req.cause,
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
        OpTarget::Blocks(op.req.blocks.iter().map(|b| b.0).collect())
    }

    fn refresh(os: &mut Os) {
        let Some(cur) = os.memhp.running() else {
            return;
        };
        let ctl = os.live_controller(cur.report.controller, cur.req.node.map(|n| n.0));
        if let Some(cur) = os.memhp.running_mut() {
            cur.report.controller = ctl;
        }
    }

    fn act(os: &mut Os, now: SimTime, step: MemStep, cx: &mut Cx<'_>) -> Next<Self> {
        MemFlow::mem_act(os, now, step, cx)
    }

    fn resume(os: &mut Os, now: SimTime, wait: MemWait, cx: &mut Cx<'_>) -> Option<Next<Self>> {
        Some(match wait {
            MemWait::Acks { csds, deadline } => {
                let pending = csds.iter().any(|&id| os.csd_pending(id));
                if pending && now < deadline {
                    Next::Poll(
                        MemWait::Acks { csds, deadline },
                        now + os.config().ipi_handler,
                        String::new(),
                    )
                } else {
                    os.reap_csds(now, &csds);
                    let t = MemFlow::mem_copy_batch(os, now, cx);
                    Next::Again(t)
                }
            }
            MemWait::Children => {
                let children = &os.memhp.running()?.children;
                if !children.is_done() {
                    // Looked at again every step_cost (the goldens were recorded so; waking
                    // when the last child ends instead is a change of behaviour).
                    return Some(Next::Poll(
                        MemWait::Children,
                        now + os.config().step_cost,
                        String::new(),
                    ));
                }
                match children.failure().cloned() {
                    Some((_, op, error)) => {
                        let cpu = os.hotplug().done().iter().find(|r| r.id == op);
                        let cpu = cpu.map_or(u32::MAX, |r| r.cpu.0);
                        Next::Fail(now, MemError::Cpu { cpu, error })
                    }
                    None => Next::Done(now, format!("{} CPUs", children.ended())),
                }
            }
        })
    }

    fn hung(op: &Op<Self>, _wait: MemWait, step: MemStep, waited: SimDuration) -> MemError {
        MemError::Hung {
            op: op.report.id,
            step,
            waited,
        }
    }

    /// Restores what a failed offline changed: isolation undone, CPUs brought back.
    fn undo(os: &mut Os, t: SimTime, _cx: &mut Cx<'_>) -> SimTime {
        let Some(cur) = os.memhp.running_mut() else {
            return t;
        };
        let mut isolated = std::mem::take(&mut cur.state.isolated);
        let cpus = std::mem::take(&mut cur.state.cpus_down);
        if os.has_defect(crate::config::OsDefect::SkipIsolationUndo) {
            // The defect: the blocks stay isolated.
            isolated.clear();
        }
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
            Policies::policy_cell_replaced(os, n.0);
        }
        // A refusal while isolating (same instant, nothing moved yet) must leave the memory
        // state exactly as it was: the digest taken when isolation began says whether it did.
        if let (Err(_), Some((at, before))) = (result, op.state.digest) {
            if at == now && op.report.moved.batches == 0 {
                let after = os.vm.as_ref().map(crate::mm::manager::Vm::digest);
                op.report.restored_exactly = Some(after == Some(before));
            }
        }
    }

    fn restart_delay(os: &Os) -> SimDuration {
        os.config().step_cost
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
                blocks: vec![BlockId(block)],
                node: None,
                trigger,
                acpi_path: None,
                requested: now,
                cause: None,
            },
        ))
    }

    /// The refusals of a request for block `block` to go offline or online.
    pub(crate) fn check_mem_request(os: &Os, block: u32, online: bool) -> Result<(), MemError> {
        if os.booted_at().is_none() {
            return Err(MemError::Booting);
        }
        let vm = os.vm.as_ref().ok_or(MemError::Booting)?;
        let blocks = vm.phys.blocks.len() as u32;
        let b = vm
            .phys
            .blocks
            .get(block as usize)
            .ok_or(MemError::NoSuchBlock {
                block: BlockId(block),
                blocks,
            })?;
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
                block: BlockId(block),
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
        if let Some(m) = os.scan().interleaved_memory() {
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
                    block: BlockId(b),
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
            .find(|(_, r)| r.node == Some(NodeId(node)))
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
            .find(|(_, r)| r.blocks.contains(&BlockId(block)))
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
                        .filter(|b| b.node == n.0)
                        .map(|b| b.index)
                        .collect()
                })
                .unwrap_or_default(),
            Some(_) | None => cur.req.blocks.iter().map(|b| b.0).collect(),
        }
    }
}
