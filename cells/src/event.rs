//! What the hardware reports: one [`HwEvent`] for every access, coherence request that needs an
//! answer, state change and error, delivered to an [`HwObserver`] together with a read-only view
//! of the machine after the event took effect.
//!
//! The machine never calls into the OS; it only tells its observer what happened. The usual
//! observer is a [`Probe`]: the run's trace plus the hardware checkers.

use std::fmt;

use serde::Serialize;
use sim_core::trace::{ArgValue, Phase, Track};
use sim_core::{
    CellId, CheckerSet, CpuId, Delivery, Entity, LsapicId, MsgTag, PhysAddr, SimDuration, SimTime,
    StableHash, StableHasher, Trace, TraceEvent, TraceLevel, TraceRecord, Violations,
};

use crate::cell::{CellEvent, CellState};
use crate::cpu::{CpuEvent, CpuState};
use crate::machine::Machine;

/// Load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    /// A coherent read.
    Load,
    /// A coherent write.
    Store,
}

impl AccessKind {
    /// `"load"` or `"store"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AccessKind::Load => "load",
            AccessKind::Store => "store",
        }
    }
}

impl fmt::Display for AccessKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of uncached access a CPU issues outside memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UncachedSpace {
    /// Memory-mapped I/O.
    Mmio,
    /// PCI configuration space (through firmware).
    Config,
    /// I/O ports.
    Port,
    /// The processor interrupt block: a write there sends an IPI (or wakes a CPU waiting in
    /// the firmware's boot rendezvous).
    Pib,
}

impl fmt::Display for UncachedSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UncachedSpace::Mmio => "MMIO",
            UncachedSpace::Config => "config",
            UncachedSpace::Port => "I/O port",
            UncachedSpace::Pib => "interrupt block",
        })
    }
}

/// Where an access got its line from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Served {
    /// The requester's own cache, no transaction.
    Hit,
    /// A store to a line held shared: the others were invalidated.
    Upgrade,
    /// Memory at the home cell.
    Memory,
    /// Another CPU's cache.
    Cache(CpuId),
    /// Not served (see [`Outcome`]).
    Nothing,
}

/// Whether an access took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did.
    Performed,
    /// The issuing CPU is not running: nothing happened (a load returns all-ones).
    IssuerNotRunning,
    /// The line's home memory is not online (its cell is unpowered or absent, or the memory
    /// was disabled). A hit on a still-cached line returns the stale data; anything needing the
    /// home fails (loads return all-ones, stores are dropped).
    HomeNotPowered,
}

/// A coherence request sent by a home directory to a CPU's cache; each needs an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnoopKind {
    /// Forward the line to a reader and keep a shared copy (Fwd-GetS).
    Downgrade,
    /// Forward the line to a writer and drop it (Fwd-GetM).
    FetchInvalidate,
    /// Drop a shared copy and acknowledge (Inv).
    Invalidate,
    /// Supply the line's data to a DMA read and keep it unchanged.
    Fetch,
}

impl fmt::Display for SnoopKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SnoopKind::Downgrade => "downgrade",
            SnoopKind::FetchInvalidate => "fetch-invalidate",
            SnoopKind::Invalidate => "invalidate",
            SnoopKind::Fetch => "fetch",
        })
    }
}

/// The unit a machine-check error is reported against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McaTarget {
    /// A CPU (cache or TLB error).
    Cpu(CpuId),
    /// A memory word (the error is counted on its frame).
    Memory(PhysAddr),
}

impl fmt::Display for McaTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McaTarget::Cpu(c) => write!(f, "{c}"),
            McaTarget::Memory(a) => write!(f, "mem {a}"),
        }
    }
}

/// The name of an access by whether it went through the caches and whether it wrote:
/// `load`, `store`, `uncached read`, `uncached write` (messages and the trace).
pub const fn access_name(coherent: bool, write: bool) -> &'static str {
    match (coherent, write) {
        (true, false) => "load",
        (true, true) => "store",
        (false, false) => "uncached read",
        (false, true) => "uncached write",
    }
}

/// Why a cache gave up a line's data ([`HwEvent::WriteBack`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteBackCause {
    /// Replaced to make room for a miss.
    Evict,
    /// A whole-cache flush (PAL_CACHE_FLUSH).
    Flush,
    /// A MESI owner downgraded to shared by a read: memory is updated, the copy stays.
    Downgrade,
    /// A partial DMA write merged the owner's line into memory before writing its part.
    DmaMerge,
}

impl WriteBackCause {
    /// Lower-case name, as in messages and the trace.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteBackCause::Evict => "eviction",
            WriteBackCause::Flush => "flush",
            WriteBackCause::Downgrade => "downgrade",
            WriteBackCause::DmaMerge => "DMA merge",
        }
    }
}

impl fmt::Display for WriteBackCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the hardware reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HwEvent {
    /// A coherent load or store by a CPU.
    Access {
        /// Load or store.
        kind: AccessKind,
        /// Issuer.
        cpu: CpuId,
        /// Word address.
        addr: PhysAddr,
        /// Value read or written.
        value: u64,
        /// Where the line came from.
        served: Served,
        /// Whether it took effect.
        outcome: Outcome,
        /// Latency charged.
        latency: SimDuration,
    },
    /// A read that bypasses every cache.
    NcRead {
        /// Who read (a CPU's uncached access, a device, firmware).
        agent: Entity,
        /// Word address.
        addr: PhysAddr,
        /// Value read from memory.
        value: u64,
        /// A cache held a dirty copy with a different value: the read saw stale data.
        stale: bool,
    },
    /// A write that bypasses every cache (cached copies are *not* invalidated).
    NcWrite {
        /// Who wrote.
        agent: Entity,
        /// Word address.
        addr: PhysAddr,
        /// Value written.
        value: u64,
    },
    /// A coherence request from a home directory to a CPU's cache.
    Snoop {
        /// Home cell of the line.
        home: CellId,
        /// Destination CPU.
        to: CpuId,
        /// First byte of the line.
        line: PhysAddr,
        /// What was asked.
        kind: SnoopKind,
        /// The CPU (or, for DMA, the device) whose access caused it.
        requester: Entity,
        /// Whether the destination answered (it did not if halted or absent).
        answered: bool,
    },
    /// A CPU's cache was flushed and invalidated.
    Flush {
        /// The CPU.
        cpu: CpuId,
        /// Lines dropped.
        lines: u32,
        /// Of which dirty (written back).
        dirty: u32,
        /// Time it took.
        latency: SimDuration,
    },
    /// A CPU changed state.
    CpuTransition {
        /// The CPU.
        cpu: CpuId,
        /// What happened.
        event: CpuEvent,
        /// Before.
        from: CpuState,
        /// After.
        to: CpuState,
        /// Valid lines in its cache at the transition (kept for `Halt`, lost for power-off and
        /// for a restart, which re-initialises the cache).
        cache_lines: u32,
        /// Of which dirty.
        dirty_lines: u32,
        /// The lowest dirty line, if any.
        first_dirty: Option<PhysAddr>,
        /// Interrupt vectors pending in its local SAPIC at the transition (lost if it stops).
        pending_interrupts: u32,
    },
    /// A cell slot changed state.
    CellTransition {
        /// The slot.
        cell: CellId,
        /// What happened.
        event: CellEvent,
        /// Before.
        from: CellState,
        /// After.
        to: CellState,
    },
    /// Corrected errors were reported.
    CorrectedError {
        /// Where.
        target: McaTarget,
        /// The new total for the target (per CPU, or per frame for memory).
        total: u64,
    },
    /// An uncorrected error poisoned a frame.
    UncorrectedError {
        /// Address of the error.
        addr: PhysAddr,
    },
    /// A CPU consumed poisoned data: a machine check.
    MachineCheck {
        /// The CPU.
        cpu: CpuId,
        /// The line read.
        addr: PhysAddr,
    },
    /// A coherent DMA transfer by a device, one event per stretch of one home cell's memory.
    Dma {
        /// The device.
        agent: Entity,
        /// First word.
        addr: PhysAddr,
        /// Write (device to memory) or read (memory to device).
        write: bool,
        /// Whether it took effect (the home memory online).
        outcome: Outcome,
        /// The words transferred (what the device read, or what it wrote).
        data: Box<[u64]>,
    },
    /// A CPU copied a whole page with non-temporal loads and stores (page migration).
    Copy {
        /// The CPU.
        cpu: CpuId,
        /// Source page.
        src: PhysAddr,
        /// Destination page.
        dst: PhysAddr,
        /// Bytes (one page).
        bytes: u64,
        /// Whether the source was read coherently (dirty cached lines included).
        coherent: bool,
        /// What the reads did (source memory not online: all-ones were copied).
        read: Outcome,
        /// What the writes did (destination memory not online: dropped).
        write: Outcome,
    },
    /// An interrupt message reached (or failed to reach) a local SAPIC.
    Interrupt {
        /// Who sent it (an IO SAPIC, or a CPU for an IPI).
        source: Entity,
        /// Destination LSAPIC id.
        dest: LsapicId,
        /// The vector.
        vector: u8,
        /// Which message it is (not hashed: it follows from the events before it).
        tag: MsgTag,
        /// What happened.
        delivery: Delivery,
    },
    /// A CPU took a pending interrupt (its IRR bit cleared).
    InterruptTaken {
        /// The CPU.
        cpu: CpuId,
        /// The vector.
        vector: u8,
    },
    /// A CPU issued an uncached access outside memory (MMIO, configuration, I/O port); where
    /// it lands is the I/O side's business. A CPU that is not running issues nothing.
    Uncached {
        /// The CPU.
        cpu: CpuId,
        /// Which space.
        space: UncachedSpace,
        /// Address, port or configuration offset.
        target: u64,
        /// Write or read.
        write: bool,
        /// Whether it went out (the CPU was running).
        performed: bool,
    },
    /// An access to an address that decodes to no memory: nothing answers it (a load reads
    /// all-ones, a store is dropped). On the machines modelled this is a machine check.
    Unmapped {
        /// Who issued it (a CPU, or an agent of an uncached access).
        agent: Entity,
        /// The address.
        addr: PhysAddr,
        /// A store (or uncached write) rather than a load.
        write: bool,
        /// Through the caches (a coherent access) or around them.
        coherent: bool,
    },
    /// A cache gave up a line's data: an eviction (to make room or in a flush; a clean line
    /// has nothing to write), a MESI downgrade, or the merge before a partial DMA write.
    WriteBack {
        /// The cache's CPU.
        cpu: CpuId,
        /// First byte of the line.
        line: PhysAddr,
        /// Its home cell.
        home: CellId,
        /// Why the line left (or was copied out of) the cache.
        cause: WriteBackCause,
        /// The cache held it modified or owned: its data must reach memory.
        dirty: bool,
        /// Memory took the data (false for a clean line, and for dirty data that was lost).
        written: bool,
    },
    /// Firmware enabled or disabled a cell's memory controller.
    MemoryEnable {
        /// The cell.
        cell: CellId,
        /// Enabled after the change.
        enabled: bool,
    },
}

fn served_word(s: Served) -> u64 {
    match s {
        Served::Hit => 0,
        Served::Upgrade => 1,
        Served::Memory => 2,
        Served::Cache(c) => 0x100 | u64::from(c.0),
        Served::Nothing => 3,
    }
}

fn entity_word(h: &mut StableHasher, e: &Entity) {
    h.str(&e.to_string());
}

fn delivery_word(d: Delivery) -> u64 {
    match d {
        Delivery::Accepted(c) => 1 << 32 | u64::from(c.0),
        Delivery::NotRunning(c) => 2 << 32 | u64::from(c.0),
        Delivery::NoSuchCpu => 3 << 32,
    }
}

impl StableHash for HwEvent {
    fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            HwEvent::Access {
                kind,
                cpu,
                addr,
                value,
                served,
                outcome,
                latency,
            } => {
                h.word(1 | (*kind as u64) << 8 | (*outcome as u64) << 16);
                h.word(u64::from(cpu.0));
                h.word(addr.raw());
                h.word(*value);
                h.word(served_word(*served));
                h.word(latency.as_nanos());
            }
            HwEvent::NcRead {
                agent,
                addr,
                value,
                stale,
            } => {
                h.word(2 | u64::from(*stale) << 8);
                entity_word(h, agent);
                h.word(addr.raw());
                h.word(*value);
            }
            HwEvent::NcWrite { agent, addr, value } => {
                h.word(3);
                entity_word(h, agent);
                h.word(addr.raw());
                h.word(*value);
            }
            HwEvent::Snoop {
                home,
                to,
                line,
                kind,
                requester,
                answered,
            } => {
                h.word(4 | (*kind as u64) << 8 | u64::from(*answered) << 16);
                h.word(u64::from(home.0));
                h.word(u64::from(to.0));
                h.word(line.raw());
                entity_word(h, requester);
            }
            HwEvent::Flush {
                cpu,
                lines,
                dirty,
                latency,
            } => {
                h.word(5);
                h.word(u64::from(cpu.0));
                h.word(u64::from(*lines) << 32 | u64::from(*dirty));
                h.word(latency.as_nanos());
            }
            HwEvent::CpuTransition {
                cpu,
                event,
                from,
                to,
                cache_lines,
                dirty_lines,
                first_dirty,
                pending_interrupts,
            } => {
                h.word(6 | (*event as u64) << 8 | (*from as u64) << 16 | (*to as u64) << 24);
                h.word(u64::from(cpu.0) | u64::from(*pending_interrupts) << 32);
                h.word(u64::from(*cache_lines) << 32 | u64::from(*dirty_lines));
                h.word(first_dirty.map_or(u64::MAX, PhysAddr::raw));
            }
            HwEvent::CellTransition {
                cell,
                event,
                from,
                to,
            } => {
                h.word(7 | (*event as u64) << 8 | (*from as u64) << 16 | (*to as u64) << 24);
                h.word(u64::from(cell.0));
            }
            HwEvent::CorrectedError { target, total } => {
                match target {
                    McaTarget::Cpu(c) => {
                        h.word(8);
                        h.word(u64::from(c.0));
                    }
                    McaTarget::Memory(a) => {
                        h.word(9);
                        h.word(a.raw());
                    }
                }
                h.word(*total);
            }
            HwEvent::UncorrectedError { addr } => {
                h.word(10);
                h.word(addr.raw());
            }
            HwEvent::MachineCheck { cpu, addr } => {
                h.word(11);
                h.word(u64::from(cpu.0));
                h.word(addr.raw());
            }
            HwEvent::Dma {
                agent,
                addr,
                write,
                outcome,
                data,
            } => {
                h.word(12 | u64::from(*write) << 8 | (*outcome as u64) << 16);
                entity_word(h, agent);
                h.word(addr.raw());
                h.word(data.len() as u64);
                for &w in data.iter() {
                    h.word(w);
                }
            }
            HwEvent::Copy {
                cpu,
                src,
                dst,
                bytes,
                coherent,
                read,
                write,
            } => {
                h.word(
                    17 | u64::from(*coherent) << 8
                        | (*read as u64) << 12
                        | (*write as u64) << 16
                        | u64::from(cpu.0) << 32,
                );
                h.word(src.raw());
                h.word(dst.raw());
                h.word(*bytes);
            }
            HwEvent::Interrupt {
                source,
                dest,
                vector,
                delivery,
                ..
            } => {
                h.word(13 | u64::from(*vector) << 8 | u64::from(dest.physical()) << 16);
                entity_word(h, source);
                h.word(delivery_word(*delivery));
            }
            HwEvent::InterruptTaken { cpu, vector } => {
                h.word(14 | u64::from(*vector) << 8 | u64::from(cpu.0) << 32);
            }
            HwEvent::MemoryEnable { cell, enabled } => {
                h.word(15 | u64::from(*enabled) << 8 | u64::from(cell.0) << 16);
            }
            HwEvent::Unmapped {
                agent,
                addr,
                write,
                coherent,
            } => {
                h.word(18 | u64::from(*write) << 8 | u64::from(*coherent) << 9);
                entity_word(h, agent);
                h.word(addr.raw());
            }
            HwEvent::WriteBack {
                cpu,
                line,
                home,
                cause,
                dirty,
                written,
            } => {
                h.word(
                    19 | (*cause as u64) << 8
                        | u64::from(*dirty) << 12
                        | u64::from(*written) << 13
                        | u64::from(home.0) << 16
                        | u64::from(cpu.0) << 32,
                );
                h.word(line.raw());
            }
            HwEvent::Uncached {
                cpu,
                space,
                target,
                write,
                performed,
            } => {
                h.word(
                    16 | (*space as u64) << 8
                        | u64::from(*write) << 12
                        | u64::from(*performed) << 13
                        | u64::from(cpu.0) << 32,
                );
                h.word(*target);
            }
        }
    }
}

fn track(group: &'static str, index: u32) -> Track {
    Track { group, index }
}

fn hex(a: PhysAddr) -> ArgValue {
    ArgValue::Str(a.to_string())
}

impl TraceEvent for HwEvent {
    fn level(&self) -> TraceLevel {
        match self {
            HwEvent::Access { .. }
            | HwEvent::NcRead { .. }
            | HwEvent::NcWrite { .. }
            | HwEvent::Snoop { .. }
            | HwEvent::Dma { .. }
            | HwEvent::Copy { .. }
            | HwEvent::Interrupt { .. }
            | HwEvent::InterruptTaken { .. }
            | HwEvent::WriteBack { .. }
            | HwEvent::Uncached { .. } => TraceLevel::Detail,
            HwEvent::Flush { .. }
            | HwEvent::CpuTransition { .. }
            | HwEvent::CellTransition { .. }
            | HwEvent::CorrectedError { .. }
            | HwEvent::UncorrectedError { .. }
            | HwEvent::MachineCheck { .. }
            | HwEvent::Unmapped { .. }
            | HwEvent::MemoryEnable { .. } => TraceLevel::Info,
        }
    }

    fn to_record(&self, time: SimTime) -> TraceRecord {
        let (track, category, name, phase, args): (Track, &'static str, String, Phase, Vec<_>) =
            match self {
                HwEvent::Access {
                    kind,
                    cpu,
                    addr,
                    value,
                    served,
                    outcome,
                    latency,
                } => (
                    track("cpu", cpu.0),
                    "access",
                    kind.to_string(),
                    Phase::Complete(*latency),
                    vec![
                        ("addr", hex(*addr)),
                        ("value", ArgValue::Str(format!("{value:#x}"))),
                        ("served", ArgValue::Str(format!("{served:?}"))),
                        ("outcome", ArgValue::Str(format!("{outcome:?}"))),
                    ],
                ),
                HwEvent::NcRead {
                    agent,
                    addr,
                    value,
                    stale,
                } => (
                    track("machine", 0),
                    "access",
                    "uncached read".into(),
                    Phase::Instant,
                    vec![
                        ("agent", ArgValue::Str(agent.to_string())),
                        ("addr", hex(*addr)),
                        ("value", ArgValue::Str(format!("{value:#x}"))),
                        ("stale", (*stale).into()),
                    ],
                ),
                HwEvent::NcWrite { agent, addr, value } => (
                    track("machine", 0),
                    "access",
                    "uncached write".into(),
                    Phase::Instant,
                    vec![
                        ("agent", ArgValue::Str(agent.to_string())),
                        ("addr", hex(*addr)),
                        ("value", ArgValue::Str(format!("{value:#x}"))),
                    ],
                ),
                HwEvent::Snoop {
                    home,
                    to,
                    line,
                    kind,
                    requester,
                    answered,
                } => (
                    track("cpu", to.0),
                    "coherence",
                    kind.to_string(),
                    Phase::Instant,
                    vec![
                        ("home", ArgValue::Str(home.to_string())),
                        ("line", hex(*line)),
                        ("requester", ArgValue::Str(requester.to_string())),
                        ("answered", (*answered).into()),
                    ],
                ),
                HwEvent::Flush {
                    cpu,
                    lines,
                    dirty,
                    latency,
                } => (
                    track("cpu", cpu.0),
                    "hw",
                    "cache flush".into(),
                    Phase::Complete(*latency),
                    vec![
                        ("lines", u64::from(*lines).into()),
                        ("dirty", u64::from(*dirty).into()),
                    ],
                ),
                HwEvent::CpuTransition {
                    cpu,
                    event,
                    from,
                    to,
                    cache_lines,
                    dirty_lines,
                    ..
                } => (
                    track("cpu", cpu.0),
                    "hw",
                    format!("{event}: {from} -> {to}"),
                    Phase::Instant,
                    vec![
                        ("cache_lines", u64::from(*cache_lines).into()),
                        ("dirty_lines", u64::from(*dirty_lines).into()),
                    ],
                ),
                HwEvent::CellTransition {
                    cell,
                    event,
                    from,
                    to,
                } => (
                    track("cell", u32::from(cell.0)),
                    "hw",
                    format!("{event}: {from} -> {to}"),
                    Phase::Instant,
                    vec![],
                ),
                HwEvent::CorrectedError { target, total } => (
                    track("machine", 0),
                    "mca",
                    "corrected error".into(),
                    Phase::Instant,
                    vec![
                        ("target", ArgValue::Str(target.to_string())),
                        ("total", (*total).into()),
                    ],
                ),
                HwEvent::UncorrectedError { addr } => (
                    track("machine", 0),
                    "mca",
                    "uncorrected error".into(),
                    Phase::Instant,
                    vec![("addr", hex(*addr))],
                ),
                HwEvent::MachineCheck { cpu, addr } => (
                    track("cpu", cpu.0),
                    "mca",
                    "machine check".into(),
                    Phase::Instant,
                    vec![("addr", hex(*addr))],
                ),
                HwEvent::Dma {
                    agent,
                    addr,
                    write,
                    outcome,
                    data,
                } => (
                    track("machine", 0),
                    "dma",
                    if *write { "dma write" } else { "dma read" }.into(),
                    Phase::Instant,
                    vec![
                        ("agent", ArgValue::Str(agent.to_string())),
                        ("addr", hex(*addr)),
                        ("words", (data.len() as u64).into()),
                        ("outcome", ArgValue::Str(format!("{outcome:?}"))),
                    ],
                ),
                HwEvent::Copy {
                    cpu,
                    src,
                    dst,
                    coherent,
                    read,
                    write,
                    ..
                } => (
                    track("cpu", cpu.0),
                    "copy",
                    "copy page".into(),
                    Phase::Instant,
                    vec![
                        ("src", hex(*src)),
                        ("dst", hex(*dst)),
                        ("coherent", ArgValue::Str(coherent.to_string())),
                        ("read", ArgValue::Str(format!("{read:?}"))),
                        ("write", ArgValue::Str(format!("{write:?}"))),
                    ],
                ),
                HwEvent::Interrupt {
                    source,
                    dest,
                    vector,
                    tag,
                    delivery,
                } => (
                    match delivery {
                        Delivery::Accepted(c) | Delivery::NotRunning(c) => track("cpu", c.0),
                        Delivery::NoSuchCpu => track("machine", 0),
                    },
                    "interrupt",
                    format!("vector {vector:#04x}"),
                    Phase::Instant,
                    vec![
                        ("source", ArgValue::Str(source.to_string())),
                        ("dest", ArgValue::Str(dest.to_string())),
                        ("tag", ArgValue::Str(tag.to_string())),
                        ("delivery", ArgValue::Str(format!("{delivery:?}"))),
                    ],
                ),
                HwEvent::InterruptTaken { cpu, vector } => (
                    track("cpu", cpu.0),
                    "interrupt",
                    format!("take {vector:#04x}"),
                    Phase::Instant,
                    vec![],
                ),
                HwEvent::Uncached {
                    cpu,
                    space,
                    target,
                    write,
                    performed,
                } => (
                    track("cpu", cpu.0),
                    "io",
                    format!("{space} {}", if *write { "write" } else { "read" }),
                    Phase::Instant,
                    vec![
                        ("target", ArgValue::Str(format!("{target:#x}"))),
                        ("performed", (*performed).into()),
                    ],
                ),
                HwEvent::MemoryEnable { cell, enabled } => (
                    track("cell", u32::from(cell.0)),
                    "hw",
                    if *enabled {
                        "memory enabled"
                    } else {
                        "memory disabled"
                    }
                    .into(),
                    Phase::Instant,
                    vec![],
                ),
                HwEvent::Unmapped {
                    agent,
                    addr,
                    write,
                    coherent,
                } => (
                    track("machine", 0),
                    "access",
                    format!("{} of no memory", access_name(*coherent, *write)),
                    Phase::Instant,
                    vec![
                        ("agent", ArgValue::Str(agent.to_string())),
                        ("addr", hex(*addr)),
                    ],
                ),
                HwEvent::WriteBack {
                    cpu,
                    line,
                    home,
                    cause,
                    dirty,
                    written,
                } => (
                    track("cpu", cpu.0),
                    "coherence",
                    format!("write-back ({cause})"),
                    Phase::Instant,
                    vec![
                        ("line", hex(*line)),
                        ("home", ArgValue::Str(home.to_string())),
                        ("dirty", (*dirty).into()),
                        ("written", (*written).into()),
                    ],
                ),
            };
        TraceRecord {
            time,
            track,
            category,
            name: name.into(),
            phase,
            args,
        }
    }
}

/// Receives every hardware event with a view of the machine after it took effect.
pub trait HwObserver {
    /// Called once per event, in the order the events happen.
    fn on_event(&mut self, now: SimTime, event: &HwEvent, hw: &Machine);
}

/// Ignores everything (for benchmarks of the bare model).
impl HwObserver for () {
    #[inline]
    fn on_event(&mut self, _: SimTime, _: &HwEvent, _: &Machine) {}
}

/// The usual observer: the run's trace plus a set of hardware checkers.
pub struct Probe {
    /// Every event is hashed here; some are kept.
    pub trace: Trace,
    /// The checkers, in order.
    pub checkers: CheckerSet<HwEvent, Machine>,
    /// What they reported.
    pub violations: Violations,
}

impl Probe {
    /// A probe with the given trace and no checkers.
    pub fn new(trace: Trace) -> Self {
        Probe {
            trace,
            checkers: CheckerSet::default(),
            violations: Violations::default(),
        }
    }

    /// A probe with CHK-1, CHK-2 and CHK-6 (hardware side) installed (see [`crate::check`]).
    pub fn with_hw_checkers(trace: Trace, hw: &Machine, deep: bool) -> Self {
        let mut p = Probe::new(trace);
        p.checkers.add(Box::new(crate::check::AccessChecker));
        p.checkers.add(Box::new(crate::check::InterruptChecker));
        p.checkers
            .add(Box::new(crate::check::CoherenceChecker::new(hw, deep)));
        p
    }

    /// Runs every checker's full-state audit now.
    pub fn audit(&mut self, now: SimTime, hw: &Machine) {
        self.checkers.audit(now, hw, &mut self.violations);
    }
}

impl HwObserver for Probe {
    #[inline]
    fn on_event(&mut self, now: SimTime, event: &HwEvent, hw: &Machine) {
        self.trace.emit(now, event);
        self.checkers.observe(now, event, hw, &mut self.violations);
    }
}
