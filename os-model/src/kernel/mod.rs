//! The kernel: boot, the per-CPU executor, ticks, IPIs and cross-calls, interrupts, the
//! synthetic workload, RCU-published CPU maps.
//!
//! ```text
//!   OS event queue ── Run(cpu) ──► take interrupts ─► continue the kernel operation in progress
//!                 │                              └──► or schedule() and run the current task:
//!                 │                                   user burst │ migration thread │ ksoftirqd
//!                 ├─ Tick(cpu) ─► quiescent state, time slice, timers, balancing
//!                 └─ Hotplug(op) ─► next step of the CPU hot-plug operation (crate::hotplug)
//! ```
//!
//! Each CPU executes one step at a time and is busy until the step's simulated end; a halted
//! CPU executes nothing, whatever the OS believes. Every memory access, MMIO write, IPI and
//! HALT goes through the platform as the hardware CPU executing it.

use crate::hw::Cx;
use std::collections::BTreeMap;

use acpi_model::{AcpiValue, Platform};
use sim_core::{CpuId, EventQueue, LsapicId, RngStreams, SimDuration, SimTime, Violation};
use thiserror::Error;

mod boot;
mod events;
mod interrupts;
mod kthreads;
mod maps;
mod requests;
mod tasks;
mod views;

use crate::acpi::AcpiScan;
use crate::config::{OsConfig, OsDefect, OsDefects};
use crate::cpumask::{CpuMask, LogicalCpu};
use crate::driver::CardDriver;
use crate::event::OsEvent;
use crate::hotplug::{CpuFlow, Hotplug};
use crate::irq::{IrqDesc, IrqTable};
use crate::memhotplug::MemFlow;
use crate::mm::bootmem::BootMem;
use crate::ops::{self, FlowKind, Input};
use crate::pcihp::PciFlow;
use crate::rcu::Rcu;
use crate::sched::{CpuLife, PerCpu, Task};

/// Time the AML interpreter takes to evaluate one object through firmware (`_STA`, `_PS0`,
/// `_PS3`, `_EJ0`, `_OST`: every method the kernel evaluates).
pub const AML_EVAL: SimDuration = SimDuration::from_nanos(1_500);
/// Time of a context switch.
pub const CONTEXT_SWITCH: SimDuration = SimDuration::from_nanos(250);
/// Bytes of one RCU-published CPU-maps object.
const MAPS_BYTES: u64 = 128;
/// What freed kernel memory is overwritten with: SLUB's `POISON_FREE` bytes (0x6b), in the
/// first word of a freed CPU-maps object and in every word of a freed DMA buffer, so that a
/// late reader or a device still writing there shows (CHK-5, the driver check).
pub const POISON: u64 = 0x6B6B_6B6B_6B6B_6B6B;

/// The CPU maps published through RCU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuMaps {
    /// CPUs running the OS (IPIs may be sent to them).
    pub online: CpuMask,
    /// CPUs the scheduler may place tasks on.
    pub active: CpuMask,
}

#[derive(Clone, Debug)]
pub(crate) struct MapsObj {
    pub(crate) maps: CpuMaps,
    pub(crate) addr: u64,
}

/// A cross-call request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Csd {
    pub(crate) from: LogicalCpu,
    pub(crate) to: LogicalCpu,
    pub(crate) done: bool,
    /// The address space whose translations the target drops (`None`: its whole TLB).
    pub(crate) asid: Option<u32>,
}

/// The OS's own timed events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OsEv {
    Run(LogicalCpu),
    Tick(LogicalCpu),
    /// An event of the hot-plug engine.
    Op(ops::OpEvent),
    /// A CPU operation's wait for a grace period (`grace`) or for its CPU is over.
    Resume {
        op: u32,
        grace: bool,
    },
    /// A disk transfer that failed without the card (by tag).
    Io(u64),
    /// A disk transfer's timeout (by tag).
    IoDeadline(u64),
    RasPoll,
    PowerPoll,
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OsStats {
    /// Times a CPU switched from one task to another.
    pub context_switches: u64,
    /// ACPI method evaluations through firmware.
    pub aml_evals: u64,
    /// Timer ticks.
    pub ticks: u64,
    /// User-task memory loads.
    pub task_loads: u64,
    /// User-task memory stores.
    pub task_stores: u64,
    /// Tasks put to sleep.
    pub sleeps: u64,
    /// Tasks woken from sleep.
    pub wakeups: u64,
    /// Wakeups placed on another CPU than the one the task last ran on.
    pub wakeups_moved: u64,
    /// Tasks moved by migration threads for load balancing.
    pub balance_moves: u64,
    /// Tasks moved by migration threads for hot-remove.
    pub evacuations: u64,
    /// TLB shootdowns (cross-call broadcasts).
    pub shootdowns: u64,
    /// Inter-processor interrupts sent (reschedule and cross-call).
    pub ipis_sent: u64,
    /// IPI vectors handled.
    pub ipis_handled: u64,
    /// Cross-calls run.
    pub csds_done: u64,
    /// Cross-calls abandoned (never acknowledged).
    pub csd_timeouts: u64,
    /// Device interrupts handled.
    pub irqs_handled: u64,
    /// Vectors nobody owned.
    pub spurious: u64,
    /// Versions of the CPU maps published.
    pub maps_published: u64,
    /// User tasks that could not be created (out of memory at boot).
    pub spawn_failures: u64,
}

/// Why the OS could not boot.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum OsError {
    /// A field of `[os]` cannot be used.
    #[error("os.{field}: {message}")]
    Config {
        /// The `[os]` key at fault (`tick`, `bound[1].cpu`).
        field: String,
        /// Why.
        message: String,
    },
    /// The boot CPU is not in the namespace.
    #[error("the boot CPU ({lsapic}) has no processor object in the ACPI namespace")]
    NoBootCpu {
        /// Its local SAPIC id.
        lsapic: LsapicId,
    },
    /// No memory was found.
    #[error("the ACPI namespace describes no present memory")]
    NoMemory,
    /// Memory ran out at boot.
    #[error("boot: {0}")]
    OutOfMemory(#[from] crate::mm::bootmem::OutOfMemory),
    /// The kernel has files but found no storage card to keep them on.
    #[error(
        "os.memory.files: {files} files need a disk, and no storage card was found in {slot} \
         (declare one: [[io.device]] with kind = \"disk\")"
    )]
    NoDisk {
        /// Files configured.
        files: u32,
        /// Where the kernel looked (`any slot`, `slot 3`).
        slot: String,
    },
    /// The SCI could not be routed.
    #[error("the SCI (GSI {gsi}) is not routed: {why}; no ACPI notification reaches this kernel")]
    NoSci {
        /// The FADT's `SCI_INT`.
        gsi: u32,
        /// Why.
        why: String,
    },
    /// The files do not fit the disk.
    #[error(
        "os.memory.files: {files} files of {file_pages} pages do not fit the {capacity} \
         sectors of the storage card in slot {slot}"
    )]
    DiskTooSmall {
        /// The disk's slot.
        slot: u16,
        /// Its sectors.
        capacity: u64,
        /// Files configured.
        files: u32,
        /// Pages per file.
        file_pages: u32,
    },
}

/// The OS (see the module docs).
pub struct Os {
    cfg: OsConfig,
    defects: OsDefects,
    q: EventQueue<OsEv>,
    events: Vec<(SimTime, OsEvent)>,
    violations: Vec<Violation>,
    pub(crate) scan: AcpiScan,
    pub(crate) mem: BootMem,
    nr: usize,
    pub(crate) possible: CpuMask,
    pub(crate) present: CpuMask,
    maps_cur: u64,
    /// Where the pointer to the published CPU maps lives in kernel memory (0 before the
    /// first version).
    pub(crate) maps_ptr: u64,
    /// The maps address each CPU's readers loaded first (kept only under the defect
    /// `rcu_reader_keeps_stale_pointer`).
    stale_maps: BTreeMap<LogicalCpu, u64>,
    /// Per CPU, its open readers, innermost last: the address each dereferenced and the
    /// masks it loaded. A reader's handle is its CPU and its depth ([`Os::reader_begin`]).
    derefs: Vec<Vec<(u64, CpuMaps)>>,
    maps: BTreeMap<u64, MapsObj>,
    no_maps: CpuMaps,
    next_maps: u64,
    rcu: Rcu,
    pub(crate) pcpu: Vec<PerCpu>,
    busy_until: Vec<SimTime>,
    pub(crate) tasks: Vec<Task>,
    pub(crate) irqs: IrqTable,
    pub(crate) driver: CardDriver,
    csds: BTreeMap<u64, Csd>,
    next_csd: u64,
    pub(crate) hp: Hotplug,
    pub(crate) stats: OsStats,
    streams: RngStreams,
    bsp: LogicalCpu,
    boot_ops: u32,
    booted_at: Option<SimTime>,
    /// What the end of boot could not set up (the kernel runs on without it).
    boot_errors: Vec<OsError>,
    /// IO SAPICs (by register base) that firmware's bus check found gone with their I/O
    /// subsystem and that the removal has not forgotten yet: nothing is written to them (an
    /// interrupt taken meanwhile ends without an EOI there).
    pub(crate) sapics_gone: std::collections::BTreeSet<u64>,
    /// Firmware's notifications taken and not answered yet (see [`crate::notify`]).
    pub(crate) unanswered: BTreeMap<acpi_model::NotifyId, crate::notify::Unanswered>,
    pub(crate) sapic_sizes: BTreeMap<u64, u32>,
    seen_deliveries: u64,
    pub(crate) vm: Option<crate::mm::manager::Vm>,
    pub(crate) slab_objs: Vec<u64>,
    pub(crate) memhp: crate::memhotplug::MemHotplug,
    pub(crate) pcihp: crate::pcihp::PciHotplug,
    pub(crate) policy: crate::policy::Policies,
    refusals: Vec<crate::hotplug::Refusal>,
}

fn cfg_err(field: impl Into<String>, message: impl Into<String>) -> OsError {
    OsError::Config {
        field: field.into(),
        message: message.into(),
    }
}

impl Os {
    // ------------------------------------------------------------------ small helpers

    pub(crate) fn emit(&mut self, t: SimTime, ev: OsEvent) {
        self.drain_phys_log(t);
        self.events.push((t, ev));
    }

    /// Turns what the page allocator did since the last event into events (stamped `t`, no
    /// earlier than it happened, in the order it happened).
    pub(crate) fn drain_phys_log(&mut self, t: SimTime) {
        let Some(vm) = self.vm.as_mut() else {
            return;
        };
        if vm.phys.log.is_empty() {
            return;
        }
        self.events.extend(vm.phys.log.drain(..).map(|e| {
            let ev = match e {
                crate::mm::PhysLog::Alloc { pfn, order } => OsEvent::PageAllocated { pfn, order },
                crate::mm::PhysLog::Isolation { pb, isolated } => {
                    OsEvent::PageblockIsolation { pfn: pb, isolated }
                }
                crate::mm::PhysLog::Managed { pfn, pages, on } => {
                    OsEvent::FramesManaged { pfn, pages, on }
                }
            };
            (t, ev)
        }));
    }

    /// The hardware CPU of logical `c`.
    pub(crate) fn hw(&self, c: LogicalCpu) -> CpuId {
        self.pcpu
            .get(c.index())
            .and_then(|x| x.hw)
            .unwrap_or(CpuId(u32::MAX))
    }

    /// The CPU a long operation's work runs on from now: `ctl` while it is active; once it
    /// is being taken down, another active CPU (not on `avoid`, the node being removed, if
    /// one can be had) — as an unbound kernel worker moves off a CPU going offline.
    pub(crate) fn live_controller(&self, ctl: LogicalCpu, avoid: Option<u32>) -> LogicalCpu {
        let active = &self.cur_maps().active;
        if active.contains(ctl) {
            return ctl;
        }
        active
            .iter()
            .find(|&c| Some(self.pcpu[c.index()].node) != avoid)
            .or_else(|| active.first())
            .unwrap_or(ctl)
    }

    /// The published maps, as the writer side (under the hot-plug lock) knows them.
    pub(crate) fn cur_maps(&self) -> &CpuMaps {
        self.maps
            .get(&self.maps_cur)
            .map_or(&self.no_maps, |o| &o.maps)
    }

    /// The maps as the reader with handle `v` loaded them from memory (empty for a handle
    /// that is not open).
    pub(crate) fn loaded_maps(&self, v: u64) -> &CpuMaps {
        self.deref(v).map_or(&self.no_maps, |d| &d.1)
    }

    /// The open reader with handle `v`.
    fn deref(&self, v: u64) -> Option<&(u64, CpuMaps)> {
        self.derefs.get((v >> 32) as usize)?.get(v as u32 as usize)
    }

    /// CPUs up and idle with nothing in progress (RCU's extended quiescent state).
    pub(crate) fn idle_mask(&self) -> CpuMask {
        let mut m = CpuMask::new(self.nr);
        for pc in &self.pcpu {
            if pc.life == CpuLife::Up && pc.curr.is_none() && pc.op.is_none() {
                m.set(pc.id);
            }
        }
        m
    }

    /// The lowest online CPU that runs (where work that must run somewhere goes).
    pub(crate) fn any_running_cpu(&self, p: &Platform) -> LogicalCpu {
        self.cur_maps()
            .online
            .iter()
            .find(|&c| self.pcpu[c.index()].life == CpuLife::Up && self.hw_running(c, p))
            .unwrap_or(self.bsp)
    }

    pub(crate) fn hw_running(&self, c: LogicalCpu, p: &Platform) -> bool {
        self.pcpu[c.index()].hw.is_some_and(|h| p.cpu_running(h))
    }

    /// Makes sure `c` runs a step no later than `at` (and not before it is free).
    pub(crate) fn kick(&mut self, c: LogicalCpu, at: SimTime) {
        let at = at.max(self.busy_until[c.index()]).max(self.q.now());
        self.run_by(c, at);
    }

    /// `c`'s next step is at `at`, or earlier if one is already scheduled earlier.
    fn run_by(&mut self, c: LogicalCpu, at: SimTime) {
        let i = c.index();
        if let Some((when, id)) = self.pcpu[i].next_run {
            if when <= at {
                return;
            }
            self.q.cancel(id);
        }
        if let Some(id) = self.post(at, OsEv::Run(c)) {
            self.pcpu[i].next_run = Some((at, id));
        }
    }

    /// Puts `ev` on the kernel's queue at `at`. Every caller schedules at or after the time
    /// it runs at, so a time in the past is the caller's bug: it stops a debug build (the
    /// queue's error names both times); a release build goes on without the event, as the
    /// queue refused it.
    /// `_EJ0` on `path` as `cpu`: whether `_STA` reads the device gone afterwards, and the
    /// step's note (`what`: how the note names the device once firmware powered it off).
    pub(crate) fn eject(
        &mut self,
        t: &mut SimTime,
        cpu: LogicalCpu,
        path: &str,
        what: &str,
        cx: &mut Cx<'_>,
    ) -> (bool, String) {
        let r = self.acpi_eval(
            t,
            cpu,
            &format!("{path}._EJ0"),
            &[AcpiValue::Integer(1)],
            cx,
        );
        let gone = !self.sta_present(t, cpu, path, cx);
        let note = match r {
            Ok(_) if gone => format!("_EJ0: firmware powered {what} off"),
            Ok(_) => "_EJ0 evaluated; _STA still reports it present".to_owned(),
            Err(e) => format!("_EJ0 failed: {e}"),
        };
        (gone, note)
    }

    /// An engine event, handed to its flow's engine.
    pub(super) fn op_event(&mut self, ev: ops::OpEvent, now: SimTime, cx: &mut Cx<'_>) {
        let (flow, op, epoch, input) = match ev {
            ops::OpEvent::Start(flow) => (flow, None, 0, Input::Go),
            ops::OpEvent::Step { flow, op, epoch } => (flow, Some(op), epoch, Input::Go),
            ops::OpEvent::Watchdog { flow, op, epoch } => (flow, Some(op), epoch, Input::Timeout),
        };
        match flow {
            FlowKind::Cpu => ops::on_event::<CpuFlow>(self, now, op, epoch, input, cx),
            FlowKind::Memory => ops::on_event::<MemFlow>(self, now, op, epoch, input, cx),
            FlowKind::Pci => ops::on_event::<PciFlow>(self, now, op, epoch, input, cx),
        }
    }

    pub(crate) fn post(&mut self, at: SimTime, ev: OsEv) -> Option<sim_core::EventId> {
        match self.q.schedule(at, ev) {
            Ok(id) => Some(id),
            Err(e) => {
                if cfg!(debug_assertions) {
                    panic!("the kernel scheduled an event in the past: {e}");
                }
                None
            }
        }
    }

    /// Starts `c`'s tick.
    pub(crate) fn start_tick(&mut self, now: SimTime, c: LogicalCpu) {
        if self.pcpu[c.index()].ticking {
            return;
        }
        self.pcpu[c.index()].ticking = true;
        // Stagger the CPUs' ticks over the period.
        let tick = self.cfg.tick.as_nanos();
        let offset = (u64::from(c.0) * 7919) % tick.max(1);
        let _ = self
            .q
            .schedule(now + SimDuration::from_nanos(tick + offset), OsEv::Tick(c));
    }

    // ------------------------------------------------------------------ ACPI

    /// Evaluates `path` with `args` as CPU `c` (AML runs on a CPU; its mailbox writes are
    /// that CPU's stores); `t` advances by the evaluation ([`AML_EVAL`]), whatever it returns.
    pub(crate) fn acpi_eval(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        path: &str,
        args: &[AcpiValue],
        cx: &mut Cx<'_>,
    ) -> Result<AcpiValue, String> {
        self.stats.aml_evals += 1;
        aml_eval(cx, t, Some(self.hw(c)), path, args)
    }

    /// Whether the device at `path` is present: its `_STA`, evaluated by the AML interpreter
    /// on `c` through firmware (not read out of band); `t` advances by the evaluation.
    pub(crate) fn sta_present(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        path: &str,
        cx: &mut Cx<'_>,
    ) -> bool {
        sta_says_present(self.acpi_eval(t, c, &format!("{path}._STA"), &[], cx))
    }

    // ------------------------------------------------------------------ views

    /// The boot CPU (logical CPU 0 unless it went offline).
    pub fn boot_cpu(&self) -> LogicalCpu {
        self.bsp
    }

    /// `NR_CPUS`: the size of every CPU mask and per-CPU area.
    pub fn nr_cpus(&self) -> usize {
        self.nr
    }

    /// The configuration.
    pub fn config(&self) -> &OsConfig {
        &self.cfg
    }
    /// Injects defect `d` from now on (a scenario's `inject_defect` action): the kernel was
    /// correct until now, and every path that checks the defect takes the wrong turn from
    /// here.
    pub fn inject_defect(&mut self, d: OsDefect) {
        self.defects.insert(d);
    }

    /// Counters.
    pub fn stats(&self) -> &OsStats {
        &self.stats
    }
    /// RCU counters.
    pub fn rcu_stats(&self) -> &crate::rcu::RcuStats {
        self.rcu.stats()
    }
    /// The driver's counters.
    pub fn driver_stats(&self) -> &crate::driver::DriverStats {
        self.driver.stats()
    }
    /// What the ACPI scan found at boot.
    pub fn scan(&self) -> &AcpiScan {
        &self.scan
    }
    /// The current CPU maps.
    pub fn maps(&self) -> &CpuMaps {
        self.cur_maps()
    }
    /// The current maps version.
    pub fn maps_version_now(&self) -> u64 {
        self.maps_cur
    }
    /// Possible CPUs.
    pub fn possible(&self) -> &CpuMask {
        &self.possible
    }
    /// Present CPUs.
    pub fn present(&self) -> &CpuMask {
        &self.present
    }
    /// Every task.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }
    /// The per-CPU areas.
    pub fn per_cpu(&self) -> &[PerCpu] {
        &self.pcpu
    }
    /// The IRQ descriptors.
    pub fn irqs(&self) -> &[IrqDesc] {
        self.irqs.descs()
    }
    /// When boot finished.
    pub fn booted_at(&self) -> Option<SimTime> {
        self.booted_at
    }

    /// What the end of boot could not set up (the kernel runs on without it): a kernel with
    /// files found no disk for them, or they do not fit it; the SCI could not be routed (no
    /// IO SAPIC of this kernel serves its GSI, or no vector is left), so no ACPI notification
    /// reaches this kernel.
    pub fn boot_errors(&self) -> &[OsError] {
        &self.boot_errors
    }
    /// The logical CPU of hardware CPU `hw`.
    pub fn logical_of(&self, hw: CpuId) -> Option<LogicalCpu> {
        self.pcpu.iter().find(|x| x.hw == Some(hw)).map(|x| x.id)
    }
    /// The RCU state.
    pub fn rcu(&self) -> &Rcu {
        &self.rcu
    }

    /// What a hot-plug request may change, part by part, each as a word: the CPU masks and
    /// each CPU's life, the CPU operations queued and running, the memory (allocator,
    /// `mem_map`, mappings, block states: [`crate::mm::manager::Vm::digest`]), the memory
    /// operations, the PCI slots and operations, the tasks. A refused request leaves every
    /// word as it was.
    pub fn request_state(&self) -> [(&'static str, u64); 6] {
        let mut cpus = sim_core::StableHasher::new();
        for m in [
            &self.possible,
            &self.present,
            &self.cur_maps().online,
            &self.cur_maps().active,
        ] {
            for c in m.iter() {
                cpus.word(u64::from(c.0));
            }
            cpus.word(u64::MAX);
        }
        for pc in &self.pcpu {
            cpus.word(pc.life as u64);
        }
        let mut tasks = sim_core::StableHasher::new();
        tasks.word(self.tasks.len() as u64);
        for t in &self.tasks {
            tasks.word(u64::from(t.bound));
        }
        [
            ("CPU maps", cpus.finish()),
            ("CPU hot-plug operations", self.hp.state_word()),
            (
                "memory",
                self.vm.as_ref().map_or(0, crate::mm::manager::Vm::digest),
            ),
            ("memory hot-plug operations", self.memhp.state_word()),
            ("PCI slots and operations", self.pcihp.state_word()),
            ("tasks", tasks.finish()),
        ]
    }
}

impl ops::Host for Os {
    fn post_op(&mut self, at: SimTime, ev: ops::OpEvent) {
        self.post(at, OsEv::Op(ev));
    }

    fn emit(&mut self, t: SimTime, ev: OsEvent) {
        Os::emit(self, t, ev);
    }

    fn step_cost(&self) -> SimDuration {
        self.cfg.step_cost
    }

    fn hung_timeout(&self) -> SimDuration {
        self.cfg.hung_timeout
    }

    fn acpi_eval(
        &mut self,
        t: &mut SimTime,
        cpu: LogicalCpu,
        path: &str,
        args: &[AcpiValue],
        cx: &mut Cx<'_>,
    ) -> Result<AcpiValue, String> {
        Os::acpi_eval(self, t, cpu, path, args, cx)
    }

    /// The operation waiting for it as a child, in any flow, hears of it.
    fn op_ended(&mut self, flow: FlowKind, id: u32, error: Option<String>) {
        let e = error.as_deref();
        ops::child_ended::<CpuFlow>(self, flow, id, e);
        ops::child_ended::<MemFlow>(self, flow, id, e);
        ops::child_ended::<PciFlow>(self, flow, id, e);
    }

    fn notification_op_ended(
        &mut self,
        t: &mut SimTime,
        cpu: LogicalCpu,
        cause: acpi_model::NotifyId,
        failure: Option<ops::OstStatus>,
        cx: &mut Cx<'_>,
    ) {
        if self.has_defect(crate::config::OsDefect::SkipOst) {
            // The defect: the operation ends and firmware never hears of it.
            self.unanswered.remove(&cause);
            return;
        }
        if let Some(status) = failure {
            crate::notify::settle(self, cause, status);
        }
        crate::notify::answer_when_done(self, t, cpu, cause, cx);
    }
}

/// Evaluates `path` with `args` through firmware as hardware CPU `hw` (the AML interpreter
/// runs on it; its mailbox writes are that CPU's stores); `t` advances by the evaluation
/// ([`AML_EVAL`]), whatever it returns.
pub(crate) fn aml_eval(
    cx: &mut Cx<'_>,
    t: &mut SimTime,
    hw: Option<CpuId>,
    path: &str,
    args: &[AcpiValue],
) -> Result<AcpiValue, String> {
    let r =
        cx.p.evaluate_as(*t, hw, path, args, cx.probe)
            .map_err(|e| e.to_string());
    *t += AML_EVAL;
    r
}

/// Whether what an `_STA` evaluation returned says the device is present.
pub(crate) fn sta_says_present(v: Result<AcpiValue, String>) -> bool {
    v.ok()
        .and_then(|v| v.as_integer())
        .is_some_and(|s| s & crate::acpi::STA_PRESENT != 0)
}
