//! Generative whole-system testing: random machines × random timelines, run as real
//! scenarios, whose failures shrink to a minimal scenario file.
//!
//! ```text
//!  case index ─► ChaCha stream ─► proptest strategy ─► GenCase (machine + timeline + seed)
//!                                                        │ to_toml
//!                                                        ▼
//!                        Scenario::parse ─► runner::run ─► exit status 0?
//!                                                        │ no: proptest shrinks the case
//!                                                        ▼     (fewer actions, a smaller
//!                                    DIR/gen-<index>.toml       machine, smaller numbers)
//! ```
//!
//! A case is a [`GenCase`]: a machine (1–16 cells of 1–8 CPUs, 64–256 MiB each, 16 or 64 KiB
//! pages, MOESI or MESI, per-cell or interleaved memory, cells present or absent, I/O
//! subsystems with slots and cards), an OS workload and policies, and a timeline over the whole
//! action vocabulary an operator, a user or firmware has: CPU offline / online, memory block
//! offline / online, a cell's eject request, its board pulled once firmware has powered it off,
//! a board inserted, powered and announced by a device check, slot power writes and attention
//! buttons, cards and whole I/O subsystems pulled out by surprise or added, corrected errors,
//! jobs started, audits. Operands are drawn as free numbers and fitted to the machine when the
//! file is written (`n % cells`), so every shrunk case is still a valid scenario.
//!
//! The property is the exit status `sim FILE` gives: 0. Every action carries
//! `expect = "any"` — it may succeed or be refused with a reason (an errno, or the hardware's
//! refusal), and the runner fails any refusal that changed state — every checker must stay
//! silent (the accesses that discover a card or subsystem pulled out by surprise are CHK-1's
//! discoveries, not reports), and no scenario may be invalid. A failing case is shrunk
//! by proptest and written as a TOML file that `sim FILE` replays as it is.
//!
//! Cases are numbered: case `i` is drawn from its own stream (seeded by `i`), so a range of
//! cases can be cut into shards ([`crate::sweep::shard`]) and run on many machines, and any
//! case can be run again alone.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use rayon::prelude::*;

use crate::runner::{RunOptions, run};
use crate::scenario::Scenario;

/// How large the generated machines and timelines may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Cells at most (1–16).
    pub max_cells: u16,
    /// CPUs per cell at most (1–8).
    pub max_cpus_per_cell: u16,
    /// Timeline actions at most (compound actions write several entries).
    pub max_actions: usize,
    /// Simulated milliseconds after boot at most.
    pub max_ms_after_boot: u32,
    /// Shrinking steps at most for one failing case.
    pub max_shrink_iters: u32,
}

impl Limits {
    /// The whole space the issue asks for: up to 16 cells × 8 CPUs.
    pub const FULL: Limits = Limits {
        max_cells: 16,
        max_cpus_per_cell: 8,
        max_actions: 24,
        max_ms_after_boot: 12,
        max_shrink_iters: 400,
    };
    /// Small machines and short timelines: what CI runs in a few minutes.
    pub const CI: Limits = Limits {
        max_cells: 8,
        max_cpus_per_cell: 4,
        max_actions: 14,
        max_ms_after_boot: 8,
        max_shrink_iters: 200,
    };
}

/// A random machine, its I/O, the OS's workload and policies. Free numbers are fitted when
/// the file is written; see [`GenCase::to_toml`].
#[derive(Clone, Debug, PartialEq)]
pub struct GenMachine {
    /// Cell slots.
    pub cells: u16,
    /// CPUs per cell.
    pub cpus_per_cell: u16,
    /// Memory per cell, as an index into 64 / 128 / 256 MiB.
    pub memory: u8,
    /// 64 KiB pages instead of 16 KiB.
    pub big_pages: bool,
    /// MESI instead of MOESI.
    pub mesi: bool,
    /// Interleaved memory (then every cell is present).
    pub interleaved: bool,
    /// Bit `i` clear: cell `i` absent at start (cell 0 present if none is).
    pub present: u16,
    /// Memory block size, as an index into 16 / 32 / 64 MiB (at most a cell's memory).
    pub block: u8,
    /// Cache, as an index into 256 KiB / 1 MiB / 3 MiB.
    pub cache: u8,
    /// I/O subsystem slots (0–4).
    pub subsystems: u16,
    /// Bit `i` clear: subsystem `i` absent at start.
    pub io_present: u8,
    /// Hot-plug slots per bridge (1–4).
    pub slots: u8,
    /// Bit `k` set: slot `k` (counted over the machine) holds a card at start.
    pub cards: u16,
    /// Bit `k` set: that card is a disk (else a NIC).
    pub disks: u16,
    /// Worker tasks per CPU.
    pub tasks_per_cpu: u8,
    /// Anonymous pages per task.
    pub anon_pages: u16,
    /// Mlocked pages per task.
    pub mlock_pages: u8,
    /// Hugetlb pages per task.
    pub huge_pages: u8,
    /// Files.
    pub files: u8,
    /// Pages per file.
    pub file_pages: u16,
    /// File systems used (bit 0 ext3, 1 ext2, 2 tmpfs; none: ext3).
    pub fs: u8,
    /// Files each task maps.
    pub maps_per_task: u8,
    /// Hot fraction, as an index into 0 / 0.5 / 0.9.
    pub hot: u8,
    /// A fast disk (2 µs a command) instead of the default: swap and file I/O alike.
    pub fast_swap: bool,
    /// Direct I/O after some bursts.
    pub direct_io: bool,
    /// Hot-added blocks keep their `mem_map` on the boot node instead of the new memory.
    pub memmap_on_boot_node: bool,
    /// A task hard-bound to one of the CPUs present at boot.
    pub bound: Option<u16>,
    /// The RAS policy on (low thresholds).
    pub ras: bool,
    /// The power policy on.
    pub power: bool,
}

/// One timeline action; `sel` operands pick a CPU, block, cell, slot or subsystem modulo
/// their number, `at` is in thousandths of the time after boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GenAction {
    /// `cpu_offline` (a logical number; some beyond the possible CPUs).
    CpuOffline(u16),
    /// `cpu_online`.
    CpuOnline(u16),
    /// `memory_offline`.
    MemoryOffline(u16),
    /// `memory_online`.
    MemoryOnline(u16),
    /// Firmware's eject request on a cell's module device.
    CellEject(u16),
    /// The cell's board pulled — only once firmware has powered it off (`if_off`).
    CellPull(u16),
    /// A board inserted, powered on, and announced by firmware's device check.
    CellAdd(u16),
    /// A write of 0 to a slot's `power`.
    SlotPowerOff(u16),
    /// A write of 1.
    SlotPowerOn(u16),
    /// The slot's attention button.
    Attention(u16),
    /// A card pulled out of its slot (a surprise if powered), then firmware's bus check.
    CardPull(u16),
    /// A card pushed into a slot, then firmware's device check (`true`: a disk).
    CardAdd(u16, bool),
    /// A whole I/O subsystem pulled out by surprise, then firmware's bus check.
    IoPull(u16),
    /// An I/O subsystem inserted, powered, and announced by a device check.
    IoAdd(u16),
    /// Firmware's eject request on an I/O subsystem.
    IoEject(u16),
    /// Corrected errors on a CPU.
    CpuErrors(u16, u8),
    /// Corrected errors in a memory frame (chosen by number).
    MemoryErrors(u32, u8),
    /// A job of that many tasks starts.
    Spawn(u8),
    /// A full audit.
    Audit,
}

/// A timed action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenStep {
    /// Thousandths of the time after boot.
    pub at: u16,
    /// What.
    pub action: GenAction,
}

/// One generated case: a machine, a timeline and the scenario's seed.
#[derive(Clone, Debug, PartialEq)]
pub struct GenCase {
    /// The machine.
    pub machine: GenMachine,
    /// The timeline.
    pub steps: Vec<GenStep>,
    /// Milliseconds the run goes on after the estimated end of boot.
    pub ms_after_boot: u32,
    /// The scenario's seed.
    pub seed: u64,
    /// A defect injected from the start (none in the property run; one to show that the
    /// property bites and a failure shrinks).
    pub defect: Option<String>,
}

/// The strategy of machines within `l`.
pub fn machine_strategy(l: Limits) -> impl Strategy<Value = GenMachine> {
    let hw = (
        1..=l.max_cells.max(1),
        1..=l.max_cpus_per_cell.max(1),
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.15),
        any::<u16>(),
        0u8..3,
        0u8..3,
    );
    let io = (0u16..=4, any::<u8>(), 1u8..=4, any::<u16>(), any::<u16>());
    let os = (
        (
            0u8..=3,
            0u16..=32,
            0u8..=4,
            0u8..=1,
            0u8..=8,
            1u16..=64,
            any::<u8>(),
            0u8..=2,
        ),
        (
            0u8..3,
            any::<bool>(),
            prop::bool::weighted(0.3),
            prop::bool::weighted(0.2),
            prop::option::weighted(0.2, any::<u16>()),
            prop::bool::weighted(0.25),
            prop::bool::weighted(0.25),
        ),
    );
    (hw, io, os).prop_map(
        |(
            (cells, cpus_per_cell, memory, big_pages, mesi, interleaved, present, block, cache),
            (subsystems, io_present, slots, cards, disks),
            (
                (tasks_per_cpu, anon_pages, mlock_pages, huge_pages, files, file_pages, fs, maps),
                (hot, fast_swap, direct_io, memmap_on_boot_node, bound, ras, power),
            ),
        )| GenMachine {
            cells,
            cpus_per_cell,
            memory,
            big_pages,
            mesi,
            interleaved,
            present,
            block,
            cache,
            subsystems,
            io_present,
            slots,
            cards,
            disks,
            tasks_per_cpu,
            anon_pages,
            mlock_pages,
            huge_pages,
            files,
            file_pages,
            fs,
            maps_per_task: maps,
            hot,
            fast_swap,
            direct_io,
            memmap_on_boot_node,
            bound,
            ras,
            power,
        },
    )
}

/// The strategy of one timed action.
pub fn step_strategy() -> impl Strategy<Value = GenStep> {
    let sel = any::<u16>;
    let action = prop_oneof![
        3 => sel().prop_map(GenAction::CpuOffline),
        3 => sel().prop_map(GenAction::CpuOnline),
        2 => sel().prop_map(GenAction::MemoryOffline),
        2 => sel().prop_map(GenAction::MemoryOnline),
        3 => sel().prop_map(GenAction::CellEject),
        2 => sel().prop_map(GenAction::CellPull),
        2 => sel().prop_map(GenAction::CellAdd),
        1 => sel().prop_map(GenAction::SlotPowerOff),
        1 => sel().prop_map(GenAction::SlotPowerOn),
        1 => sel().prop_map(GenAction::Attention),
        1 => sel().prop_map(GenAction::CardPull),
        1 => (sel(), any::<bool>()).prop_map(|(s, d)| GenAction::CardAdd(s, d)),
        1 => sel().prop_map(GenAction::IoPull),
        1 => sel().prop_map(GenAction::IoAdd),
        1 => sel().prop_map(GenAction::IoEject),
        1 => (sel(), 1u8..=16).prop_map(|(c, n)| GenAction::CpuErrors(c, n)),
        1 => (any::<u32>(), 1u8..=16).prop_map(|(f, n)| GenAction::MemoryErrors(f, n)),
        1 => (1u8..=8).prop_map(GenAction::Spawn),
        1 => Just(GenAction::Audit),
    ];
    (0u16..1000, action).prop_map(|(at, action)| GenStep { at, action })
}

/// The strategy of whole cases within `l`.
pub fn case_strategy(l: Limits) -> impl Strategy<Value = GenCase> {
    (
        machine_strategy(l),
        prop::collection::vec(step_strategy(), 0..=l.max_actions),
        1..=l.max_ms_after_boot.max(1),
        any::<u64>(),
    )
        .prop_map(|(machine, steps, ms_after_boot, seed)| GenCase {
            machine,
            steps,
            ms_after_boot,
            seed,
            defect: None,
        })
}

const MEMORY_MIB: [u64; 3] = [64, 128, 256];
const BLOCK_MIB: [u64; 3] = [16, 32, 64];
const CACHES: [(&str, u32); 3] = [("256KiB", 8), ("1MiB", 8), ("3MiB", 12)];
const HOT: [&str; 3] = ["0.0", "0.5", "0.9"];
/// Simulated microseconds after the last action for the operations it started to end…
const SETTLE_US: u64 = 6000;
/// …and more for each memory or cell operation the timeline asks for (they run one at a
/// time; a cell removal on a large machine takes several milliseconds).
const SETTLE_PER_MEMORY_OP_US: u64 = 5000;

/// The machine's shape once the free numbers are fitted.
struct Shape {
    cells: u16,
    present: Vec<bool>,
    cpus: u32,
    blocks: u64,
    frames: u64,
    subsystems: u16,
    io_present: Vec<bool>,
    slots: u16,
}

impl Shape {
    fn of(m: &GenMachine) -> Shape {
        let cells = m.cells.max(1);
        let mut present: Vec<bool> = (0..cells)
            .map(|i| m.interleaved || m.present & (1 << (i % 16)) != 0)
            .collect();
        if !present.iter().any(|&p| p) {
            present[0] = true;
        }
        let mem = MEMORY_MIB[usize::from(m.memory % 3)] << 20;
        let block = (BLOCK_MIB[usize::from(m.block % 3)] << 20).min(mem);
        let page = if m.big_pages { 64 << 10 } else { 16 << 10 };
        let subsystems = m.subsystems.min(4);
        Shape {
            cells,
            cpus: u32::from(cells) * u32::from(m.cpus_per_cell.max(1)),
            blocks: u64::from(cells) * mem / block,
            frames: u64::from(cells) * mem / page,
            io_present: (0..subsystems)
                .map(|i| m.io_present & (1 << i) != 0)
                .collect(),
            present,
            subsystems,
            slots: u16::from(m.slots.clamp(1, 4)),
        }
    }

    fn present_cpus(&self, per: u16) -> u32 {
        self.present.iter().filter(|&&p| p).count() as u32 * u32::from(per.max(1))
    }

    fn total_slots(&self) -> u16 {
        self.subsystems * self.slots
    }

    /// `(subsystem, slot index)` of slot number `sun` (from 1).
    fn slot_of(&self, sun: u16) -> (u16, u16) {
        ((sun - 1) / self.slots, (sun - 1) % self.slots)
    }

    fn slot_path(&self, sun: u16) -> String {
        let (sub, idx) = self.slot_of(sun);
        format!("\\\\_SB_.IO{sub:02X}.PCI0.SL{:02X}", idx + 1)
    }
}

impl GenCase {
    /// Simulated time boot takes at most, roughly: each secondary CPU's bring-up.
    fn boot_us(&self, s: &Shape) -> u64 {
        500 + 90 * u64::from(s.present_cpus(self.machine.cpus_per_cell))
    }

    /// Simulated time after the last action: room for every operation the timeline started
    /// to finish, one after another.
    fn settle_us(&self) -> u64 {
        let ops = self
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    s.action,
                    GenAction::MemoryOffline(_)
                        | GenAction::MemoryOnline(_)
                        | GenAction::CellEject(_)
                        | GenAction::CellAdd(_)
                        | GenAction::CpuErrors(..)
                        | GenAction::MemoryErrors(..)
                )
            })
            .count() as u64;
        SETTLE_US + SETTLE_PER_MEMORY_OP_US * ops
    }

    /// The scenario file of the case, as `sim` reads it.
    pub fn to_toml(&self) -> String {
        let m = &self.machine;
        let s = Shape::of(m);
        let boot = self.boot_us(&s);
        let after = u64::from(self.ms_after_boot.max(1)) * 1000;
        let duration = boot + after + self.settle_us();
        let mut o = String::new();
        let _ = writeln!(o, "name = \"generated\"");
        let _ = writeln!(
            o,
            "description = \"A random machine and timeline (scenarios/src/generate.rs).\""
        );
        let _ = writeln!(o, "seed = {}", self.seed);
        let _ = writeln!(o, "duration = \"{duration}us\"");
        if let Some(d) = &self.defect {
            let _ = writeln!(o, "defects = [\"{d}\"]");
        }
        let _ = writeln!(o, "\n[machine]");
        let _ = writeln!(o, "cells = {}", s.cells);
        let _ = writeln!(o, "cpus_per_cell = {}", m.cpus_per_cell.max(1));
        let _ = writeln!(
            o,
            "memory_per_cell = \"{}MiB\"",
            MEMORY_MIB[usize::from(m.memory % 3)]
        );
        let _ = writeln!(
            o,
            "page_size = \"{}\"",
            if m.big_pages { "64KiB" } else { "16KiB" }
        );
        let _ = writeln!(
            o,
            "protocol = \"{}\"",
            if m.mesi { "mesi" } else { "moesi" }
        );
        if m.interleaved {
            let _ = writeln!(o, "memory_mode = \"interleaved\"");
        }
        if s.present.iter().any(|&p| !p) {
            let list: Vec<String> = (0..s.cells)
                .filter(|&i| s.present[usize::from(i)])
                .map(|i| i.to_string())
                .collect();
            let _ = writeln!(o, "present_cells = [{}]", list.join(", "));
        }
        let (size, ways) = CACHES[usize::from(m.cache % 3)];
        let _ = writeln!(o, "\n[machine.cache]\nsize = \"{size}\"\nways = {ways}");
        // I/O: each subsystem hangs off a present cell, cards in the slots asked for.
        let _ = writeln!(o, "\n[io]");
        let _ = writeln!(o, "subsystems = {}", s.subsystems);
        let _ = writeln!(o, "slots = {}", s.slots);
        if s.subsystems > 0 {
            let present: Vec<String> = (0..s.subsystems)
                .filter(|&i| s.io_present[usize::from(i)])
                .map(|i| i.to_string())
                .collect();
            let _ = writeln!(o, "present = [{}]", present.join(", "));
            let cells: Vec<u16> = (0..s.cells)
                .filter(|&c| s.present[usize::from(c)])
                .collect();
            let attached: Vec<String> = (0..s.subsystems)
                .map(|i| cells[usize::from(i) % cells.len()].to_string())
                .collect();
            let _ = writeln!(o, "attached_cells = [{}]", attached.join(", "));
        }
        for sun in 1..=s.total_slots() {
            let k = sun - 1;
            let (sub, idx) = s.slot_of(sun);
            if s.io_present[usize::from(sub)] && m.cards & (1 << (k % 16)) != 0 {
                let disk = m.disks & (1 << (k % 16)) != 0;
                let kind = if disk { "disk" } else { "nic" };
                let _ = writeln!(
                    o,
                    "\n[[io.device]]\nsubsystem = {sub}\nslot = {idx}\nkind = \"{kind}\""
                );
                if disk && m.fast_swap {
                    let _ = writeln!(o, "latency_ns = 2000");
                }
            }
        }
        let _ = writeln!(o, "\n[workload]\nkind = \"os\"");
        let _ = writeln!(o, "\n[os]");
        let _ = writeln!(o, "tasks_per_cpu = {}", m.tasks_per_cpu.min(3));
        if let Some(b) = m.bound {
            let _ = writeln!(
                o,
                "bound = [{{ cpu = {} }}]",
                u32::from(b) % s.present_cpus(m.cpus_per_cell)
            );
        }
        let _ = writeln!(o, "\n[os.memory]");
        let _ = writeln!(
            o,
            "block_size = \"{}MiB\"",
            BLOCK_MIB[usize::from(m.block % 3)].min(MEMORY_MIB[usize::from(m.memory % 3)])
        );
        // At least one anonymous page: a task needs some memory.
        let _ = writeln!(o, "anon_pages = {}", 1 + m.anon_pages.min(31));
        let _ = writeln!(o, "mlock_pages = {}", m.mlock_pages.min(4));
        let _ = writeln!(o, "huge_pages = {}", m.huge_pages.min(1));
        // Files need the kernel's disk; without a storage card there are none.
        let disk = self.disk_slot(&s);
        let files = if disk.is_some() { m.files.min(8) } else { 0 };
        let _ = writeln!(o, "files = {files}");
        if let Some(d) = disk {
            let _ = writeln!(o, "disk_slot = {d}");
        }
        let _ = writeln!(o, "file_pages = {}", m.file_pages.clamp(1, 64));
        let _ = writeln!(o, "maps_per_task = {}", m.maps_per_task.min(2));
        let fs: Vec<&str> = [(1, "ext3"), (2, "ext2"), (4, "tmpfs")]
            .iter()
            .filter(|(b, _)| m.fs & b != 0)
            .map(|(_, n)| *n)
            .collect();
        let fs = if fs.is_empty() { vec!["ext3"] } else { fs };
        let _ = writeln!(
            o,
            "fs = [{}]",
            fs.iter()
                .map(|f| format!("\"{f}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(o, "hot_fraction = {}", HOT[usize::from(m.hot % 3)]);
        if m.direct_io {
            let _ = writeln!(o, "direct_io_chance = 0.02");
        }
        if m.memmap_on_boot_node {
            let boot = s.present.iter().position(|&p| p).unwrap_or(0);
            let _ = writeln!(o, "memmap_on = {{ node = {boot} }}");
        }
        if m.ras {
            let _ = writeln!(
                o,
                "\n[os.ras]\nenabled = true\ncpu_threshold = 6\nmemory_threshold = 6\ncell_threshold = 20"
            );
        }
        if m.power {
            let _ = writeln!(o, "\n[os.power]\nenabled = true\nmin_online = 1");
        }
        let _ = writeln!(o, "\n[checks]\naudit_interval = \"1ms\"");
        self.write_timeline(&mut o, &s, boot, after);
        o
    }

    /// The slot of the kernel's disk: the lowest one holding a storage card at start. The
    /// timeline never pulls it out nor its I/O subsystem (that loses data, rightly reported).
    fn disk_slot(&self, s: &Shape) -> Option<u16> {
        let m = &self.machine;
        (1..=s.total_slots()).find(|&sun| {
            let k = sun - 1;
            s.io_present[usize::from(s.slot_of(sun).0)]
                && m.cards & (1 << (k % 16)) != 0
                && m.disks & (1 << (k % 16)) != 0
        })
    }

    fn write_timeline(&self, o: &mut String, s: &Shape, boot: u64, after: u64) {
        let m = &self.machine;
        let disk = self.disk_slot(s);
        let disk_sub = disk.map(|d| s.slot_of(d).0);
        let mut steps: Vec<&GenStep> = self.steps.iter().collect();
        steps.sort_by_key(|x| x.at);
        // Entries in the order they are made; a compound action's later entries are sorted
        // in by time below (equal times keep this order).
        let mut entries: Vec<(u64, String)> = Vec::new();
        let entry = |o: &mut Vec<(u64, String)>, at: u64, body: String| o.push((at, body));
        let cell_path = |c: u16| format!("\\\\_SB_.CL{c:02X}");
        let io_path = |i: u16| format!("\\\\_SB_.IO{i:02X}");
        for st in steps {
            // Actions spread over [boot/10, boot + after]: a few land while boot runs.
            let at = boot / 10 + (boot + after - boot / 10) * u64::from(st.at.min(999)) / 1000;
            let cell = |x: u16| x % s.cells;
            let sun = |x: u16| x % s.total_slots().max(1) + 1;
            let sub = |x: u16| x % s.subsystems.max(1);
            match &st.action {
                GenAction::CpuOffline(x) | GenAction::CpuOnline(x) => {
                    let name = if matches!(st.action, GenAction::CpuOffline(_)) {
                        "cpu_offline"
                    } else {
                        "cpu_online"
                    };
                    let cpu = u32::from(*x) % (s.cpus + 2);
                    entry(
                        &mut entries,
                        at,
                        format!("action = \"{name}\"\ncpu = {cpu}"),
                    );
                }
                GenAction::MemoryOffline(x) | GenAction::MemoryOnline(x) => {
                    let name = if matches!(st.action, GenAction::MemoryOffline(_)) {
                        "memory_offline"
                    } else {
                        "memory_online"
                    };
                    let b = u64::from(*x) % s.blocks.max(1);
                    entry(
                        &mut entries,
                        at,
                        format!("action = \"{name}\"\nblock = {b}"),
                    );
                }
                GenAction::CellEject(x) => entry(
                    &mut entries,
                    at,
                    format!(
                        "action = \"notify\"\npath = \"{}\"\ncode = \"eject_request\"",
                        cell_path(cell(*x))
                    ),
                ),
                GenAction::CellPull(x) => entry(
                    &mut entries,
                    at,
                    format!(
                        "action = \"remove_cell\"\ncell = {}\nif_off = true",
                        cell(*x)
                    ),
                ),
                GenAction::CellAdd(x) => {
                    let c = cell(*x);
                    entry(
                        &mut entries,
                        at,
                        format!("action = \"insert_cell\"\ncell = {c}"),
                    );
                    entry(
                        &mut entries,
                        at + 300,
                        format!("action = \"power_on_cell\"\ncell = {c}"),
                    );
                    entry(
                        &mut entries,
                        at + 400,
                        format!(
                            "action = \"notify\"\npath = \"{}\"\ncode = \"device_check\"",
                            cell_path(c)
                        ),
                    );
                }
                GenAction::SlotPowerOff(x)
                | GenAction::SlotPowerOn(x)
                | GenAction::Attention(x)
                    if s.total_slots() > 0 =>
                {
                    let name = if matches!(st.action, GenAction::SlotPowerOff(_)) {
                        "slot_power_off"
                    } else if matches!(st.action, GenAction::SlotPowerOn(_)) {
                        "slot_power_on"
                    } else {
                        "press_attention"
                    };
                    entry(
                        &mut entries,
                        at,
                        format!("action = \"{name}\"\nslot = {}", sun(*x)),
                    );
                }
                GenAction::CardPull(x) if s.total_slots() > 0 && Some(sun(*x)) != disk => {
                    let n = sun(*x);
                    entry(
                        &mut entries,
                        at,
                        format!("action = \"remove_card\"\nslot = {n}"),
                    );
                    entry(
                        &mut entries,
                        at + 200,
                        format!(
                            "action = \"notify\"\npath = \"{}\"\ncode = \"bus_check\"",
                            s.slot_path(n)
                        ),
                    );
                }
                GenAction::CardAdd(x, disk) if s.total_slots() > 0 => {
                    let n = sun(*x);
                    let kind = if *disk { "disk" } else { "nic" };
                    entry(
                        &mut entries,
                        at,
                        format!("action = \"insert_card\"\nslot = {n}\nkind = \"{kind}\""),
                    );
                    entry(
                        &mut entries,
                        at + 200,
                        format!(
                            "action = \"notify\"\npath = \"{}\"\ncode = \"device_check\"",
                            s.slot_path(n)
                        ),
                    );
                }
                GenAction::IoPull(x) if s.subsystems > 0 && Some(sub(*x)) != disk_sub => {
                    let i = sub(*x);
                    entry(
                        &mut entries,
                        at,
                        format!("action = \"remove_io\"\nsubsystem = {i}"),
                    );
                    entry(
                        &mut entries,
                        at + 200,
                        format!(
                            "action = \"notify\"\npath = \"{}\"\ncode = \"bus_check\"",
                            io_path(i)
                        ),
                    );
                }
                GenAction::IoAdd(x) if s.subsystems > 0 => {
                    let i = sub(*x);
                    entry(
                        &mut entries,
                        at,
                        format!("action = \"insert_io\"\nsubsystem = {i}"),
                    );
                    entry(
                        &mut entries,
                        at + 300,
                        format!("action = \"power_on_io\"\nsubsystem = {i}"),
                    );
                    entry(
                        &mut entries,
                        at + 400,
                        format!(
                            "action = \"notify\"\npath = \"{}\"\ncode = \"device_check\"",
                            io_path(i)
                        ),
                    );
                }
                GenAction::IoEject(x) if s.subsystems > 0 => entry(
                    &mut entries,
                    at,
                    format!(
                        "action = \"notify\"\npath = \"{}\"\ncode = \"eject_request\"",
                        io_path(sub(*x))
                    ),
                ),
                GenAction::CpuErrors(x, n) => entry(
                    &mut entries,
                    at,
                    format!(
                        "action = \"inject_corrected_error\"\ncpu = {}\ncount = {n}",
                        u32::from(*x) % s.cpus
                    ),
                ),
                GenAction::MemoryErrors(f, n) => {
                    let page = if m.big_pages { 64 << 10 } else { 16 << 10 };
                    let addr = (u64::from(*f) % s.frames.max(1)) * page;
                    entry(
                        &mut entries,
                        at,
                        format!(
                            "action = \"inject_corrected_error\"\naddr = {addr:#x}\ncount = {n}"
                        ),
                    );
                }
                GenAction::Spawn(n) => entry(
                    &mut entries,
                    at,
                    format!("action = \"spawn_tasks\"\ncount = {n}"),
                ),
                GenAction::Audit => entry(&mut entries, at, "action = \"audit\"".into()),
                // Slot and subsystem actions on a machine without any.
                GenAction::SlotPowerOff(_)
                | GenAction::SlotPowerOn(_)
                | GenAction::Attention(_)
                | GenAction::CardPull(_)
                | GenAction::CardAdd(..)
                | GenAction::IoPull(_)
                | GenAction::IoAdd(_)
                | GenAction::IoEject(_) => {}
            }
        }
        entries.sort_by_key(|e| e.0);
        for (at, body) in entries {
            let _ = writeln!(
                o,
                "\n[[timeline]]\nat = \"{at}us\"\n{body}\nexpect = \"any\""
            );
        }
    }

    /// Timeline entries the case writes (a measure of its size).
    pub fn entries(&self) -> usize {
        self.to_toml().matches("[[timeline]]").count()
    }

    /// A one-line description of the machine.
    pub fn describe(&self) -> String {
        let m = &self.machine;
        let s = Shape::of(m);
        format!(
            "{} cells ({} present) x {} CPUs, {} MiB, {} pages, {}{}, {} I/O subsystems; {} \
             actions, {} ms after boot",
            s.cells,
            s.present.iter().filter(|&&p| p).count(),
            m.cpus_per_cell.max(1),
            MEMORY_MIB[usize::from(m.memory % 3)],
            if m.big_pages { "64 KiB" } else { "16 KiB" },
            if m.mesi { "MESI" } else { "MOESI" },
            if m.interleaved { ", interleaved" } else { "" },
            s.subsystems,
            self.steps.len(),
            self.ms_after_boot
        )
    }
}

/// Runs the case as `sim` would and judges it: `Ok` when `sim FILE` would exit 0, else why.
pub fn check(case: &GenCase) -> Result<(), String> {
    let text = case.to_toml();
    let scn = Scenario::parse(Path::new("generated.toml"), &text)
        .map_err(|e| format!("the generated scenario is invalid: {e}"))?;
    check_scenario(&scn)
}

/// Runs a parsed scenario and tells why it would not exit 0.
pub fn check_scenario(scn: &Scenario) -> Result<(), String> {
    let r = run(scn, &RunOptions::default()).map_err(|e| format!("the run failed: {e}"))?;
    if r.exit_code() == 0 {
        return Ok(());
    }
    let kept = r.violations.kept();
    let covered = |v: &sim_core::Violation| scn.file.expect.reports.iter().any(|e| e.matches(v));
    if let Some(v) = kept.iter().find(|v| !covered(v)) {
        return Err(format!(
            "{} violations; first: {} [{}] {} -> {}: {}",
            r.unexpected_violations, v.time, v.checker.code, v.agent, v.target, v.message
        ));
    }
    if let Some(a) = r.actions.iter().find(|a| a.failed()) {
        let (Ok(what) | Err(what)) = &a.result;
        return Err(match &a.changed_on_refusal {
            Some(c) => format!(
                "{} {} {}: refused ({what}) yet it changed: {c}",
                a.time, a.action, a.target
            ),
            None => format!("{} {} {}: {what}", a.time, a.action, a.target),
        });
    }
    if let Some(e) = r.expectations.iter().find(|e| !e.met) {
        return Err(format!("expectation not met: {}: {}", e.what, e.detail));
    }
    Err(format!("{} violations", r.unexpected_violations))
}

/// The proptest stream of case `index`.
fn rng_of(index: u64) -> TestRng {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&index.to_le_bytes());
    seed[8..16].copy_from_slice(b"cellsim!");
    TestRng::from_seed(RngAlgorithm::ChaCha, &seed)
}

/// The cases of `l`, each with `defect` injected.
fn strategy_with(l: Limits, defect: Option<&str>) -> impl Strategy<Value = GenCase> {
    let defect = defect.map(str::to_owned);
    case_strategy(l).prop_map(move |mut c| {
        c.defect.clone_from(&defect);
        c
    })
}

/// Case `index` as drawn (before any shrinking).
pub fn case(index: u64, l: Limits) -> GenCase {
    let mut runner = TestRunner::new_with_rng(Config::default(), rng_of(index));
    case_strategy(l)
        .new_tree(&mut runner)
        .map(|t| t.current())
        .unwrap_or_else(|_| unreachable!("the case strategy never rejects"))
}

/// What exploring one case found.
#[derive(Clone, Debug)]
pub struct CaseOutcome {
    /// The case's number.
    pub index: u64,
    /// Its machine and size, in one line.
    pub what: String,
    /// `None`: the property held. Otherwise why it failed, after shrinking, the minimal
    /// case and the file it was written to.
    pub failure: Option<Failure>,
}

/// A failing case, shrunk.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Why the shrunk case fails.
    pub why: String,
    /// Timeline entries before and after shrinking.
    pub entries: (usize, usize),
    /// The shrunk case.
    pub minimal: GenCase,
    /// Where its scenario file was written.
    pub file: Option<PathBuf>,
}

/// Runs case `index`: drawn from its stream (with `defect` injected, if any), checked, and
/// if it fails shrunk to a minimal case whose scenario file goes to `out`
/// (`gen-<index>.toml`).
pub fn explore(index: u64, l: Limits, defect: Option<&str>, out: Option<&Path>) -> CaseOutcome {
    let config = Config {
        max_shrink_iters: l.max_shrink_iters,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng_of(index));
    let tree = strategy_with(l, defect)
        .new_tree(&mut runner)
        .unwrap_or_else(|_| unreachable!("the case strategy never rejects"));
    let first = tree.current();
    let what = first.describe();
    let result = runner.run_one(tree, |c| check(&c).map_err(TestCaseError::fail));
    let failure = match result {
        Ok(_) => None,
        Err(TestError::Fail(_, minimal)) => {
            let why = check(&minimal)
                .err()
                .unwrap_or_else(|| "fails only as part of the unshrunk case".into());
            let file = out.and_then(|dir| write_case(dir, index, &minimal, &why).ok());
            Some(Failure {
                why,
                entries: (first.entries(), minimal.entries()),
                minimal,
                file,
            })
        }
        Err(TestError::Abort(why)) => Some(Failure {
            why: why.to_string(),
            entries: (first.entries(), first.entries()),
            minimal: first,
            file: None,
        }),
    };
    CaseOutcome {
        index,
        what,
        failure,
    }
}

/// Writes the scenario file of a failing case, with a header saying where it came from.
pub fn write_case(dir: &Path, index: u64, case: &GenCase, why: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("gen-{index}.toml"));
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Found by the generative test (case {index}), shrunk to {} timeline entries.",
        case.entries()
    );
    for line in why.lines() {
        let _ = writeln!(text, "# {line}");
    }
    let _ = writeln!(text, "# Replay: sim {}\n", path.display());
    text.push_str(&case.to_toml());
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Explores the cases of `range` side by side (rayon), in index order in the result; `done`
/// hears of each case as it ends (in no particular order) — a failure as soon as its
/// minimal file is written, for runs that last hours.
pub fn explore_range(
    range: Range<u64>,
    l: Limits,
    defect: Option<&str>,
    out: Option<&Path>,
    done: Option<&(dyn Fn(&CaseOutcome) + Sync)>,
) -> Vec<CaseOutcome> {
    let mut v: Vec<CaseOutcome> = range
        .into_par_iter()
        .map(|i| {
            let o = explore(i, l, defect, out);
            if let Some(f) = done {
                f(&o);
            }
            o
        })
        .collect();
    v.sort_by_key(|o| o.index);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drawn_case_is_a_valid_scenario() {
        for i in 0..64 {
            for l in [Limits::CI, Limits::FULL] {
                let c = case(i, l);
                let text = c.to_toml();
                if let Err(e) = Scenario::parse(Path::new("generated.toml"), &text) {
                    panic!("case {i}: {e}\n{text}");
                }
            }
        }
    }

    #[test]
    fn a_case_is_a_pure_function_of_its_number() {
        assert_eq!(case(17, Limits::FULL), case(17, Limits::FULL));
        assert_ne!(case(17, Limits::FULL), case(18, Limits::FULL));
    }

    #[test]
    fn slots_are_numbered_across_the_machine_as_the_namespace_numbers_them() {
        let s = Shape {
            cells: 1,
            present: vec![true],
            cpus: 1,
            blocks: 1,
            frames: 1,
            subsystems: 4,
            io_present: vec![true; 4],
            slots: 4,
        };
        assert_eq!(s.slot_path(1), "\\\\_SB_.IO00.PCI0.SL01");
        assert_eq!(s.slot_path(9), "\\\\_SB_.IO02.PCI0.SL01");
        assert_eq!(s.slot_path(14), "\\\\_SB_.IO03.PCI0.SL02");
    }
}
