//! The kernel: boot, the per-CPU executor, ticks, IPIs and cross-calls, interrupts, the
//! synthetic workload, RCU-published CPU maps.
//!
//! ```text
//!   OS event queue ── Run(cpu) ──► take interrupts ─► continue the kernel operation in progress
//!                 │                              └──► or schedule() and run the current task:
//!                 │                                   user burst │ migration thread │ ksoftirqd
//!                 ├─ Tick(cpu) ─► quiescent state, time slice, timers, balancing, SCI
//!                 └─ Hotplug(op) ─► next step of the CPU hot-plug operation (crate::hotplug)
//! ```
//!
//! Each CPU executes one step at a time and is busy until the step's simulated end; a halted
//! CPU executes nothing, whatever the OS believes. Every memory access, MMIO write, IPI and
//! HALT goes through the platform as the hardware CPU executing it.

use std::collections::BTreeMap;

use acpi_model::{AcpiValue, Platform, PlatformProbe};
use sim_core::{CpuId, EventQueue, LsapicId, RngStreams, SimDuration, SimTime, SlotId, Violation};
use thiserror::Error;

mod requests;

use crate::acpi::{self, AcpiScan};
use crate::config::{OsConfig, OsDefect, OsDefects};
use crate::cpumask::{CpuMask, LogicalCpu};
use crate::driver::{CardDriver, DriverConfig, TopHalf};
use crate::event::{EnqueueWhy, OsEvent, TaskId};
use crate::hotplug::{CpuFlow, Hotplug};
use crate::hw::{load, store};
use crate::irq::{self, CALL_FUNCTION_VECTOR, IrqDesc, IrqTable, RESCHEDULE_VECTOR};
use crate::mem::BootMem;
use crate::memhotplug::MemFlow;
use crate::mm::PteRef;
use crate::ops::{self, FlowKind, Input};
use crate::pcihp::PciFlow;
use crate::rcu::{Callback, Rcu};
use crate::sched::{CpuLife, IpiOp, MigReq, PerCpu, Task, TaskKind, TaskState, Work};

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
    /// Start the flow's next queued operation.
    OpStart(FlowKind),
    /// The flow's running operation `op` acts (or looks at its wait) at transition `epoch`.
    OpStep {
        flow: FlowKind,
        op: u32,
        epoch: u32,
    },
    /// The hung-op watchdog of the wait `epoch` of the flow's operation `op`.
    OpWatchdog {
        flow: FlowKind,
        op: u32,
        epoch: u32,
    },
    /// A CPU operation's wait for a grace period (`grace`) or for its CPU is over.
    Resume {
        op: u32,
        grace: bool,
    },
    Io(u64),
    RasPoll,
    PowerPoll,
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OsStats {
    /// Context switches.
    pub context_switches: u64,
    /// Timer ticks.
    pub ticks: u64,
    /// User-task memory loads.
    pub task_loads: u64,
    /// User-task memory stores.
    pub task_stores: u64,
    /// Tasks put to sleep.
    pub sleeps: u64,
    /// Wakeups.
    pub wakeups: u64,
    /// Wakeups placed on another CPU than the one the task last ran on.
    pub wakeups_moved: u64,
    /// Tasks moved by migration threads for load balancing.
    pub balance_moves: u64,
    /// Tasks moved by migration threads for hot-remove.
    pub evacuations: u64,
    /// TLB shootdowns (cross-call broadcasts).
    pub shootdowns: u64,
    /// IPIs sent.
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
        /// Field.
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
    OutOfMemory(#[from] crate::mem::OutOfMemory),
}

/// The OS (see the module docs).
pub struct Os {
    pub(crate) cfg: OsConfig,
    pub(crate) defects: OsDefects,
    pub(crate) q: EventQueue<OsEv>,
    pub(crate) events: Vec<(SimTime, OsEvent)>,
    pub(crate) violations: Vec<Violation>,
    pub(crate) scan: AcpiScan,
    pub(crate) mem: BootMem,
    pub(crate) nr: usize,
    pub(crate) possible: CpuMask,
    pub(crate) present: CpuMask,
    pub(crate) maps_cur: u64,
    pub(crate) maps: BTreeMap<u64, MapsObj>,
    no_maps: CpuMaps,
    pub(crate) next_maps: u64,
    pub(crate) rcu: Rcu,
    pub(crate) pcpu: Vec<PerCpu>,
    pub(crate) busy_until: Vec<SimTime>,
    pub(crate) tasks: Vec<Task>,
    pub(crate) irqs: IrqTable,
    pub(crate) driver: CardDriver,
    pub(crate) csds: BTreeMap<u64, Csd>,
    pub(crate) next_csd: u64,
    pub(crate) hp: Hotplug,
    pub(crate) stats: OsStats,
    streams: RngStreams,
    pub(crate) bsp: LogicalCpu,
    pub(crate) boot_ops: u32,
    pub(crate) booted_at: Option<SimTime>,
    pub(crate) sapic_sizes: BTreeMap<u64, u32>,
    seen_deliveries: u64,
    pub(crate) vm: Option<crate::memory::Vm>,
    pub(crate) slab_objs: Vec<u64>,
    pub(crate) memhp: crate::memhotplug::MemHotplug,
    pub(crate) pcihp: crate::pcihp::PciHotplug,
    pub(crate) policy: crate::policy::Policies,
    pub(crate) refusals: Vec<crate::hotplug::Refusal>,
}

fn cfg_err(field: impl Into<String>, message: impl Into<String>) -> OsError {
    OsError::Config {
        field: field.into(),
        message: message.into(),
    }
}

impl Os {
    // ------------------------------------------------------------------ boot

    /// Boots on the CPU whose local SAPIC is `bsp` (the one firmware started): scans the
    /// namespace, maps logical CPUs, sets itself up, and queues the bring-up of every other
    /// present CPU through the hot-add path. User tasks and drivers start when the last CPU
    /// is up.
    #[allow(clippy::too_many_arguments)]
    pub fn boot(
        cfg: &OsConfig,
        driver: &DriverConfig,
        defects: &[OsDefect],
        now: SimTime,
        bsp: LsapicId,
        streams: &RngStreams,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<Os, OsError> {
        cfg.validate().map_err(|e| cfg_err(e.field, e.message))?;
        let scan = acpi::scan(p);
        let nr = cfg.nr_cpus as usize;
        let mut d = OsDefects::default();
        for &x in defects {
            d.insert(x);
        }
        let bsp_index = scan
            .processors
            .iter()
            .position(|c| c.lsapic == bsp && c.present)
            .ok_or(OsError::NoBootCpu { lsapic: bsp })?;
        // Logical numbering: the boot CPU is 0, then the enabled processors in namespace
        // order, then the ones that are not present (possible for hot-add), up to NR_CPUS.
        let mut order: Vec<usize> = vec![bsp_index];
        order.extend(
            (0..scan.processors.len()).filter(|&i| i != bsp_index && scan.processors[i].present),
        );
        order.extend((0..scan.processors.len()).filter(|&i| !scan.processors[i].present));
        let memory: Vec<(u32, u64, u64)> = scan
            .memory
            .iter()
            .filter(|m| m.present)
            .map(|m| (m.node, m.base, m.len))
            .collect();
        if memory.is_empty() {
            return Err(OsError::NoMemory);
        }
        let mut os = Os {
            cfg: cfg.clone(),
            defects: d,
            q: EventQueue::new(),
            events: Vec::new(),
            violations: Vec::new(),
            mem: BootMem::new(Vec::new()),
            nr,
            possible: CpuMask::new(nr),
            present: CpuMask::new(nr),
            maps_cur: 0,
            maps: BTreeMap::new(),
            no_maps: CpuMaps {
                online: CpuMask::new(nr),
                active: CpuMask::new(nr),
            },
            next_maps: 1,
            rcu: Rcu::new(nr),
            pcpu: (0..nr).map(|i| PerCpu::new(LogicalCpu(i as u32))).collect(),
            busy_until: vec![SimTime::ZERO; nr],
            tasks: Vec::new(),
            irqs: IrqTable::default(),
            driver: CardDriver::new(driver.clone()),
            csds: BTreeMap::new(),
            next_csd: 1,
            hp: Hotplug::default(),
            stats: OsStats::default(),
            streams: *streams,
            bsp: LogicalCpu(0),
            boot_ops: 0,
            booted_at: None,
            sapic_sizes: BTreeMap::new(),
            seen_deliveries: 0,
            vm: None,
            slab_objs: Vec::new(),
            memhp: crate::memhotplug::MemHotplug::default(),
            pcihp: crate::pcihp::PciHotplug::default(),
            policy: crate::policy::Policies::default(),
            refusals: Vec::new(),
            scan,
        };
        PciFlow::pci_init(&mut os);
        let boot_node = os.scan.processors[bsp_index].node;
        os.mm_boot(boot_node, p)?;
        for (logical, &i) in order.iter().enumerate().take(nr) {
            let info = os.scan.processors[i].clone();
            let c = LogicalCpu(logical as u32);
            let pc = &mut os.pcpu[logical];
            pc.hw = Some(CpuId(info.uid));
            pc.lsapic = info.lsapic;
            pc.node = info.node;
            pc.path = info.path.clone();
            pc.life = if info.present {
                CpuLife::Offline
            } else {
                CpuLife::NotPresent
            };
            os.possible.set(c);
            if info.present {
                os.present.set(c);
            }
            os.emit(
                now,
                OsEvent::CpuMapped {
                    cpu: c,
                    hw: CpuId(info.uid),
                    present: info.present,
                },
            );
        }
        for (i, b) in cfg.bound.iter().enumerate() {
            if !os.present.contains(LogicalCpu(b.cpu)) {
                return Err(cfg_err(
                    format!("bound[{i}].cpu"),
                    format!("cpu{} is not a present CPU at boot", b.cpu),
                ));
            }
        }
        // The boot CPU sets itself up: kernel threads, RCU, tick, the first CPU maps.
        let b = LogicalCpu(0);
        let mut t = now;
        os.pcpu[0].life = CpuLife::Up;
        os.init_cpu(&mut t, b, p, probe);
        os.start_kthreads(t, b);
        let mut first = CpuMaps {
            online: CpuMask::new(nr),
            active: CpuMask::new(nr),
        };
        first.online.set(b);
        first.active.set(b);
        os.publish_maps(&mut t, b, first, p, probe)?;
        os.init_sapics(&mut t, b, p, probe);
        // Every other present CPU comes up through the hot-add path.
        for c in os.present.iter().filter(|&c| c != b).collect::<Vec<_>>() {
            os.boot_ops += 1;
            ops::queue_only::<CpuFlow>(
                &mut os,
                crate::hotplug::Request {
                    kind: crate::hotplug::OpKind::Up,
                    cpu: c,
                    trigger: crate::hotplug::Trigger::Boot,
                    eject: false,
                    requested: t,
                },
            );
        }
        if os.boot_ops == 0 {
            os.finish_boot(t, p, probe);
        } else {
            ops::kick::<CpuFlow>(&mut os, t);
        }
        Ok(os)
    }

    /// Masks every entry of every present IO SAPIC (before any device is enabled).
    fn init_sapics(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let hw = self.hw(c);
        let sapics: Vec<u64> = self
            .scan
            .sapics
            .iter()
            .filter(|s| s.present)
            .map(|s| s.base)
            .collect();
        for base in sapics {
            let n = irq::sapic_entries(p, probe, t, hw, base);
            self.sapic_sizes.insert(base, n);
            for e in 0..n {
                irq::program_rte(
                    p,
                    probe,
                    t,
                    hw,
                    base,
                    e,
                    0,
                    LsapicId { id: 0, eid: 0 },
                    true,
                );
            }
        }
    }

    /// Boot is over: start the user tasks and the drivers.
    pub(crate) fn finish_boot(
        &mut self,
        now: SimTime,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let mut t = now;
        let online: Vec<LogicalCpu> = self.cur_maps().online.iter().collect();
        let b0 = self.bsp;
        self.mm_boot_slabs(&mut t, b0, p, probe);
        self.create_files(&mut t, p, probe);
        // Each task is created, and its memory populated (its page faults at start-up), on
        // its own CPU, so the CPUs do it side by side: the few hard-bound tasks here (a CPU
        // cannot go offline under them, so they must exist before any request is taken),
        // the workers by each CPU's softirq thread, a task per work item, taking interrupts
        // in between.
        let mut asked = 0u32;
        for b in self.cfg.bound.clone() {
            let c = LogicalCpu(b.cpu);
            let mut tc = t.max(self.busy_until[c.index()]);
            if self.spawn_user(&mut tc, c, Some(c), p, probe).is_err() {
                self.stats.spawn_failures += 1;
            }
            self.busy_until[c.index()] = tc;
            asked += 1;
        }
        for &c in &online {
            for _ in 0..self.cfg.tasks_per_cpu {
                self.pcpu[c.index()].work.push_back(Work::Spawn);
                asked += 1;
            }
        }
        // Enumeration of the slotless chipset functions, then the cards.
        let _ = PciFlow::chipset_add(self, &mut t, b0, None, p, probe);
        if self.driver.config().enabled {
            self.start_drivers(&mut t, p, probe);
        }
        self.booted_at = Some(t);
        self.policies_start(t);
        let online_mask = self.cur_maps().online.clone();
        self.emit(
            t,
            OsEvent::Booted {
                online: online_mask,
                tasks: asked,
            },
        );
        for c in online {
            let k = self.pcpu[c.index()].ksoftirqd;
            self.wake_kthread(t, c, k);
            self.kick(c, t);
        }
    }

    pub(crate) fn spawn_user(
        &mut self,
        tm: &mut SimTime,
        c: LogicalCpu,
        bound: Option<LogicalCpu>,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<TaskId, crate::mm::NoMemory> {
        let id = TaskId(self.tasks.len() as u32);
        let node = self.pcpu[c.index()].node;
        let mm = self.create_space(tm, c, id, node, p, probe)?;
        let t = *tm;
        let affinity = match bound {
            Some(b) => {
                let mut m = CpuMask::new(self.nr);
                m.set(b);
                m
            }
            None => self.possible.clone(),
        };
        self.tasks.push(Task {
            id,
            name: match bound {
                Some(b) => format!("bound/{}", b.0),
                None => format!("worker/{}", id.0),
            },
            kind: TaskKind::User,
            state: TaskState::Blocked,
            affinity,
            bound: bound.is_some(),
            cpu: c,
            slice: self.cfg.timeslice_ticks,
            mm: Some(mm),
            rng: self.streams.stream("os-task", u64::from(id.0)),
            stores: 0,
            bursts: 0,
            migrations: 0,
        });
        let name = self.tasks[id.0 as usize].name.clone();
        self.emit(
            t,
            OsEvent::TaskCreated {
                task: id,
                name,
                kind: "user",
                cpu: c,
            },
        );
        self.enqueue(t, id, c, EnqueueWhy::Fork);
        Ok(id)
    }

    fn start_drivers(&mut self, t: &mut SimTime, p: &mut Platform, probe: &mut PlatformProbe) {
        let b = self.bsp;
        let hw = self.hw(b);
        let span = self.driver.config().card_span();
        let slots: Vec<(SlotId, u32)> = self
            .scan
            .slots
            .iter()
            .filter(|s| self.scan.bridges.get(s.bridge).is_some_and(|br| br.present))
            .map(|s| (s.sun, self.scan.bridges[s.bridge].node))
            .collect();
        for (slot, node) in slots {
            let Some(bus) = self
                .scan
                .slot(slot)
                .and_then(|s| self.scan.bridges.get(s.bridge))
                .map(|br| br.bus)
            else {
                continue;
            };
            let device = self.scan.slot(slot).map_or(0, |s| s.device);
            let bdf = sim_core::Bdf {
                segment: 0,
                bus,
                device,
                function: 0,
            };
            let id = crate::hw::cfg_read(p, probe, t, hw, bdf, sim_core::abi::pci::reg::ID);
            if id == u32::MAX {
                continue;
            }
            // Enumeration: the BARs firmware gave it, sized and claimed in the windows.
            if !PciFlow::pci_claim(self, t, slot, p, probe) {
                continue;
            }
            let Ok(ring) = self.kmalloc(node, span, 4096) else {
                continue;
            };
            let Ok(k) = self.driver.attach(&self.scan, slot, ring) else {
                continue;
            };
            if self
                .driver
                .bring_up(t, k, hw, false, &self.scan, p, probe)
                .is_ok()
            {
                let irq = PciFlow::route_irq(self, t, k, b, false, p, probe).ok();
                PciFlow::pci_bound(self, slot, k, irq);
            }
        }
    }

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

    pub(crate) fn cur_maps(&self) -> &CpuMaps {
        self.maps_version(self.maps_cur)
    }

    pub(crate) fn maps_version(&self, v: u64) -> &CpuMaps {
        // A freed version reads as empty (only a defect frees a version a reader holds).
        self.maps.get(&v).map_or(&self.no_maps, |o| &o.maps)
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
        self.pcpu[c.index()]
            .hw
            .and_then(|h| p.machine.cpu(h))
            .is_some_and(|x| x.state.is_running())
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
    /// An engine event of `flow`, handed to that flow's engine.
    #[allow(clippy::too_many_arguments)]
    fn op_event(
        &mut self,
        flow: FlowKind,
        now: SimTime,
        op: Option<u32>,
        epoch: u32,
        input: Input,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        match flow {
            FlowKind::Cpu => ops::on_event::<CpuFlow>(self, now, op, epoch, input, p, probe),
            FlowKind::Memory => ops::on_event::<MemFlow>(self, now, op, epoch, input, p, probe),
            FlowKind::Pci => ops::on_event::<PciFlow>(self, now, op, epoch, input, p, probe),
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

    // ------------------------------------------------------------------ RCU

    /// `rcu_read_lock` and `rcu_dereference` of the CPU maps on `c`: the reader loads the
    /// object's header through the machine. Returns the version it holds.
    pub(crate) fn reader_begin(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        purpose: &'static str,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> u64 {
        let v = self.maps_cur;
        self.rcu.read_lock(c);
        if let Some(addr) = self.maps.get(&v).map(|o| o.addr) {
            load(p, probe, t, self.hw(c), addr);
        }
        self.emit(
            *t,
            OsEvent::RcuLock {
                cpu: c,
                version: v,
                purpose,
            },
        );
        v
    }

    /// The reader on `c` acts on what version `v` says about `about` (reads its bit).
    pub(crate) fn reader_use(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        v: u64,
        about: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        if let Some(addr) = self.maps.get(&v).map(|o| o.addr) {
            load(
                p,
                probe,
                t,
                self.hw(c),
                addr + 8 + 8 * u64::from(about.0 / 64),
            );
        }
        self.emit(
            *t,
            OsEvent::RcuUse {
                cpu: c,
                version: v,
                about,
            },
        );
    }

    /// `rcu_read_unlock` on `c`.
    pub(crate) fn reader_end(&mut self, t: SimTime, c: LogicalCpu) {
        if self.rcu.read_unlock(c) {
            self.emit(t, OsEvent::RcuUnlock { cpu: c });
        }
    }

    /// Publishes a new version of the CPU maps (written to kernel memory by `by`); returns
    /// the old version, which is still live until freed.
    pub(crate) fn publish_maps(
        &mut self,
        t: &mut SimTime,
        by: LogicalCpu,
        maps: CpuMaps,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<u64, crate::mem::OutOfMemory> {
        let node = self.pcpu[by.index()].node;
        let addr = self.kmalloc(node, MAPS_BYTES, MAPS_BYTES)?;
        let v = self.next_maps;
        self.next_maps += 1;
        let hw = self.hw(by);
        store(p, probe, t, hw, addr, v);
        let words = self.nr.div_ceil(64).min(7) as u64;
        for w in 0..words {
            let bits = maps
                .online
                .iter()
                .filter(|c| u64::from(c.0) / 64 == w)
                .fold(0u64, |acc, c| acc | 1 << (c.0 % 64));
            store(p, probe, t, hw, addr + 8 + 8 * w, bits);
        }
        let old = self.maps_cur;
        self.maps.insert(
            v,
            MapsObj {
                maps: maps.clone(),
                addr,
            },
        );
        self.maps_cur = v;
        self.stats.maps_published += 1;
        self.emit(
            *t,
            OsEvent::MapsPublished {
                version: v,
                online: maps.online,
                active: maps.active,
                by,
            },
        );
        Ok(old)
    }

    /// Frees version `v` of the maps (`by` poisons it).
    pub(crate) fn free_maps(
        &mut self,
        t: &mut SimTime,
        v: u64,
        by: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        if v == self.maps_cur {
            return;
        }
        if let Some(o) = self.maps.remove(&v) {
            store(p, probe, t, self.hw(by), o.addr, POISON);
            self.mem.free(o.addr, MAPS_BYTES);
            self.emit(*t, OsEvent::MapsFreed { version: v, by });
        }
    }

    /// Runs RCU callbacks that became ready (on `c`).
    pub(crate) fn run_callbacks(
        &mut self,
        t: SimTime,
        c: LogicalCpu,
        cbs: Vec<Callback>,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let mut t = t;
        for cb in cbs {
            match cb {
                Callback::FreeMaps(v) => {
                    // Callbacks run on a CPU that is up (the one that ended the grace period,
                    // or the boot CPU when the ending one is going away).
                    let by = if self.hw_running(c, p) {
                        c
                    } else {
                        self.any_running_cpu(p)
                    };
                    self.free_maps(&mut t, v, by, p, probe);
                }
                Callback::Wake(op) => CpuFlow::hp_resume(self, t, op),
            }
        }
    }

    /// `c` passed a quiescent state.
    pub(crate) fn rcu_qs(
        &mut self,
        t: SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        if self.rcu.grace_period().is_none() {
            return;
        }
        let idle = self.idle_mask();
        let mut ev = Vec::new();
        let cbs = self.rcu.quiescent(t, c, &idle, &mut ev);
        self.events.extend(ev);
        self.run_callbacks(t, c, cbs, p, probe);
    }

    /// Queues `cb` after a grace period.
    pub(crate) fn call_rcu(
        &mut self,
        t: SimTime,
        c: LogicalCpu,
        cb: Callback,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let idle = self.idle_mask();
        let mut ev = Vec::new();
        let cbs = self.rcu.call(t, cb, &idle, &mut ev);
        self.events.extend(ev);
        self.run_callbacks(t, c, cbs, p, probe);
    }

    // ------------------------------------------------------------------ the event loop

    /// When the OS next has something to do.
    pub fn next_time(&mut self) -> Option<SimTime> {
        self.q.peek_time()
    }

    /// Runs the OS's next event.
    pub fn step(&mut self, p: &mut Platform, probe: &mut PlatformProbe) {
        let Some((now, ev)) = self.q.pop() else {
            return;
        };
        match ev {
            OsEv::Run(c) => self.run(now, c, p, probe),
            OsEv::Tick(c) => self.tick(now, c, p, probe),
            OsEv::OpStart(flow) => self.op_event(flow, now, None, 0, Input::Go, p, probe),
            OsEv::OpStep { flow, op, epoch } => {
                self.op_event(flow, now, Some(op), epoch, Input::Go, p, probe);
            }
            OsEv::OpWatchdog { flow, op, epoch } => {
                self.op_event(flow, now, Some(op), epoch, Input::Timeout, p, probe);
            }
            OsEv::Resume { op, grace } => CpuFlow::hp_wait_over(self, now, op, grace, p, probe),
            OsEv::Io(id) => self.io_done(now, id, p, probe),
            OsEv::RasPoll => self.ras_poll(now, p, probe),
            OsEv::PowerPoll => self.power_poll(now),
        }
        self.drain_phys_log(now);
    }

    /// After the hardware raised interrupts: CPUs with an interrupt pending take it.
    pub fn interrupts_raised(&mut self, now: SimTime, p: &Platform) {
        // Nothing to look at unless the hardware delivered an interrupt since the last time.
        let delivered = p.machine.stats().interrupts_delivered;
        if delivered == self.seen_deliveries {
            return;
        }
        self.seen_deliveries = delivered;
        for i in 0..self.nr {
            let pc = &self.pcpu[i];
            if pc.life != CpuLife::Up {
                continue;
            }
            let pending = pc
                .hw
                .and_then(|h| p.machine.cpu(h))
                .is_some_and(|x| x.state.is_running() && x.pending_interrupts() > 0);
            if pending {
                self.kick(LogicalCpu(i as u32), now);
            }
        }
    }

    /// Takes the OS events emitted since the last call.
    pub fn take_events(&mut self) -> Vec<(SimTime, OsEvent)> {
        std::mem::take(&mut self.events)
    }

    /// Takes the driver's data-check violations.
    pub fn take_violations(&mut self) -> Vec<Violation> {
        std::mem::take(&mut self.violations)
    }

    fn run(&mut self, now: SimTime, c: LogicalCpu, p: &mut Platform, probe: &mut PlatformProbe) {
        let i = c.index();
        self.pcpu[i].next_run = None;
        if !matches!(self.pcpu[i].life, CpuLife::Up | CpuLife::Coming) || !self.hw_running(c, p) {
            // A halted CPU executes nothing, whatever the OS believes.
            return;
        }
        let mut t = now;
        self.take_interrupts(&mut t, c, p, probe);
        // The dying CPU halts once it is out of any kernel operation (it never stops inside
        // a read-side section).
        if let Some(op) = self.pcpu[i].dying.filter(|_| self.pcpu[i].op.is_none()) {
            self.die(t, c, op, p, probe);
            return;
        }
        if self.pcpu[i].op.is_some() {
            self.continue_op(&mut t, c, p, probe);
            return;
        }
        let curr_runnable = self.pcpu[i]
            .curr
            .is_some_and(|tid| matches!(self.tasks[tid.0 as usize].state, TaskState::Running(_)));
        if self.pcpu[i].need_resched || !curr_runnable {
            self.schedule(&mut t, c, p, probe);
        }
        let Some(tid) = self.pcpu[i].curr else {
            // Idle: a quiescent state; wait for an interrupt or a wakeup.
            self.busy_until[i] = t;
            self.rcu_qs(t, c, p, probe);
            return;
        };
        match self.tasks[tid.0 as usize].kind {
            TaskKind::User => self.user_burst(&mut t, c, tid, p, probe),
            TaskKind::Migration(_) => self.migration_work(&mut t, c, tid, p, probe),
            TaskKind::Ksoftirqd(_) => self.softirq_work(&mut t, c, tid, p, probe),
        }
        self.finish_step(c, now, t);
    }

    /// The step on `c` that began at `now` ended at `t`: run again then.
    fn finish_step(&mut self, c: LogicalCpu, now: SimTime, t: SimTime) {
        let end = t.max(now + SimDuration::from_nanos(1));
        self.busy_until[c.index()] = end;
        let pc = &self.pcpu[c.index()];
        if pc.curr.is_some() || pc.op.is_some() || !pc.kq.is_empty() || !pc.rq.is_empty() {
            self.kick(c, end);
        }
    }

    fn schedule(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let i = c.index();
        self.pcpu[i].need_resched = false;
        if let Some(prev) = self.pcpu[i].curr.take() {
            let task = &mut self.tasks[prev.0 as usize];
            if task.state == TaskState::Running(c) {
                task.state = TaskState::Queued(c);
                if task.kind.is_stopper() {
                    self.pcpu[i].kq.push_back(prev);
                } else {
                    self.pcpu[i].rq.push_back(prev);
                }
            }
        }
        let next = {
            let pc = &mut self.pcpu[i];
            pc.kq.pop_front().or_else(|| pc.rq.pop_front())
        };
        if let Some(n) = next {
            let slice = self.cfg.timeslice_ticks;
            let task = &mut self.tasks[n.0 as usize];
            task.state = TaskState::Running(c);
            task.cpu = c;
            task.slice = slice;
        }
        self.pcpu[i].curr = next;
        self.pcpu[i].switches += 1;
        self.stats.context_switches += 1;
        let what = match next.map(|n| self.tasks[n.0 as usize].kind) {
            None => "idle",
            Some(TaskKind::User) => "task",
            Some(TaskKind::Migration(_)) => "migration",
            Some(TaskKind::Ksoftirqd(_)) => "ksoftirqd",
        };
        self.emit(
            *t,
            OsEvent::Switch {
                cpu: c,
                task: next,
                kthread: what == "migration" || what == "ksoftirqd",
                what,
            },
        );
        *t += CONTEXT_SWITCH;
        self.rcu_qs(*t, c, p, probe);
    }

    /// Puts `tid` on `c`'s runqueue.
    pub(crate) fn enqueue(&mut self, t: SimTime, tid: TaskId, c: LogicalCpu, why: EnqueueWhy) {
        let kthread;
        {
            let task = &mut self.tasks[tid.0 as usize];
            task.state = TaskState::Queued(c);
            kthread = task.kind != TaskKind::User;
        }
        let stopper = self.tasks[tid.0 as usize].kind.is_stopper();
        let pc = &mut self.pcpu[c.index()];
        if stopper {
            // The migration thread preempts everything.
            pc.kq.push_back(tid);
            pc.need_resched = true;
        } else {
            pc.rq.push_back(tid);
            if kthread {
                // Wakeup preemption: ksoftirqd's work (bottom halves, timers) is urgent.
                pc.need_resched = true;
            }
        }
        self.emit(
            t,
            OsEvent::Enqueue {
                task: tid,
                cpu: c,
                why,
                kthread,
            },
        );
    }

    /// Wakes a per-CPU kernel thread of `c` that waits for work (the caller sends the IPI
    /// if `c` is another CPU).
    pub(crate) fn wake_kthread(&mut self, t: SimTime, c: LogicalCpu, tid: Option<TaskId>) {
        let Some(tid) = tid else {
            return;
        };
        if self.tasks[tid.0 as usize].state == TaskState::Blocked {
            self.enqueue(t, tid, c, EnqueueWhy::Kthread);
        }
    }

    /// Creates (first time) or unparks `c`'s kernel threads; they wait for work.
    pub(crate) fn start_kthreads(&mut self, t: SimTime, c: LogicalCpu) {
        for kind in [TaskKind::Migration(c), TaskKind::Ksoftirqd(c)] {
            let existing = match kind {
                TaskKind::Migration(_) => self.pcpu[c.index()].migration,
                TaskKind::Ksoftirqd(_) | TaskKind::User => self.pcpu[c.index()].ksoftirqd,
            };
            match existing {
                Some(tid) => {
                    if self.tasks[tid.0 as usize].state == TaskState::Parked {
                        self.tasks[tid.0 as usize].state = TaskState::Blocked;
                        self.emit(
                            t,
                            OsEvent::Park {
                                task: tid,
                                cpu: c,
                                parked: false,
                            },
                        );
                    }
                }
                None => {
                    let id = TaskId(self.tasks.len() as u32);
                    let mut affinity = CpuMask::new(self.nr);
                    affinity.set(c);
                    self.tasks.push(Task {
                        id,
                        name: match kind {
                            TaskKind::Migration(_) => format!("migration/{}", c.0),
                            TaskKind::Ksoftirqd(_) | TaskKind::User => {
                                format!("ksoftirqd/{}", c.0)
                            }
                        },
                        kind,
                        state: TaskState::Blocked,
                        affinity,
                        bound: true,
                        cpu: c,
                        slice: 0,
                        mm: None,
                        rng: self.streams.stream("os-kthread", u64::from(id.0)),
                        stores: 0,
                        bursts: 0,
                        migrations: 0,
                    });
                    let name = self.tasks[id.0 as usize].name.clone();
                    let kind_name = match kind {
                        TaskKind::Migration(_) => {
                            self.pcpu[c.index()].migration = Some(id);
                            "migration"
                        }
                        TaskKind::Ksoftirqd(_) | TaskKind::User => {
                            self.pcpu[c.index()].ksoftirqd = Some(id);
                            "ksoftirqd"
                        }
                    };
                    self.emit(
                        t,
                        OsEvent::TaskCreated {
                            task: id,
                            name,
                            kind: kind_name,
                            cpu: c,
                        },
                    );
                }
            }
        }
    }

    /// The new CPU `c` sets itself up (idle task, registers, timer, interrupts, per-CPU
    /// area) and joins RCU.
    pub(crate) fn init_cpu(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let i = c.index();
        let hw = self.hw(c);
        // Its per-CPU area lives on its own node.
        if let Some(vm) = self.vm.as_mut() {
            vm.tlbs[i].flush();
        }
        if let Ok(area) = self.kmalloc(self.pcpu[i].node, 4096, 4096) {
            for w in 0..8 {
                store(p, probe, t, hw, area + 8 * w, u64::from(c.0) << 32 | w);
            }
            self.mem.free(area, 4096);
        }
        let pc = &mut self.pcpu[i];
        pc.life = CpuLife::Up;
        pc.curr = None;
        pc.need_resched = false;
        pc.dying = None;
        pc.op = None;
        self.busy_until[i] = *t;
        let idle = self.idle_mask();
        let mut ev = Vec::new();
        self.rcu.set_watched(*t, c, true, &idle, &mut ev);
        self.events.extend(ev);
        self.start_tick(*t, c);
    }

    // ------------------------------------------------------------------ interrupts

    fn take_interrupts(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let hw = self.hw(c);
        while let Ok(Some(vector)) = p.take_interrupt(*t, hw, probe) {
            match vector {
                RESCHEDULE_VECTOR => {
                    self.pcpu[c.index()].need_resched = true;
                    self.stats.ipis_handled += 1;
                    self.emit(*t, OsEvent::IpiHandled { cpu: c, vector });
                    *t += SimDuration::from_nanos(100);
                }
                CALL_FUNCTION_VECTOR => {
                    self.stats.ipis_handled += 1;
                    self.emit(*t, OsEvent::IpiHandled { cpu: c, vector });
                    let queued: Vec<u64> = self.pcpu[c.index()].csd.drain(..).collect();
                    for id in queued {
                        let Some(csd) = self.csds.get_mut(&id) else {
                            continue;
                        };
                        if csd.done {
                            continue;
                        }
                        csd.done = true;
                        let from = csd.from;
                        // Every cross-call here is a TLB shootdown: of one address space
                        // (flush_tlb_mm) or of everything (flush_tlb_all).
                        let asid = csd.asid;
                        if let Some(vm) = self.vm.as_mut() {
                            match asid {
                                Some(a) => vm.tlbs[c.index()].flush_asid(a),
                                None => vm.tlbs[c.index()].flush(),
                            }
                        }
                        *t += self.cfg.ipi_handler;
                        self.stats.csds_done += 1;
                        self.emit(*t, OsEvent::CsdDone { id, cpu: c });
                        self.kick(from, *t);
                    }
                }
                _ => self.device_interrupt(t, c, vector, p, probe),
            }
        }
    }

    fn device_interrupt(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        vector: u8,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let Some(i) = self.irqs.by_vector(vector) else {
            self.stats.spurious += 1;
            self.driver.spurious();
            return;
        };
        let (gsi, card, base, freed) = {
            let d = &self.irqs.descs()[i];
            (d.gsi, d.card, d.sapic_base, d.freed)
        };
        if let Some(d) = self.irqs.get_mut(i) {
            d.handled += 1;
        }
        self.stats.irqs_handled += 1;
        self.emit(
            *t,
            OsEvent::IrqHandled {
                gsi,
                vector,
                cpu: c,
            },
        );
        let hw = self.hw(c);
        if freed {
            // Raised before the entry was masked: acknowledged, no driver to run — unless its
            // IO SAPIC is gone with its I/O subsystem (ejected and forgotten while the
            // interrupt waited on this CPU): no chip is left to end the interrupt at, so
            // nothing is written (Linux: the vector has no irq any more, `ack_bad_irq`).
            self.driver.spurious();
            if self.sapic_sizes.contains_key(&base) {
                irq::eoi(p, probe, t, hw, base, vector);
            }
            return;
        }
        let top = self.driver.top_half(t, card, hw, p, probe);
        if top == TopHalf::Gone {
            PciFlow::pci_card_gone(self, *t, card);
        }
        if let Some(d) = self.irqs.get_mut(i) {
            d.unhandled = match top {
                TopHalf::Inactive => d.unhandled + 1,
                TopHalf::Gone | TopHalf::Status(_) => 0,
            };
        }
        if self.irqs.descs()[i].unhandled >= irq::NOBODY_CARED {
            // "irq N: nobody cared": the line is disabled, the interrupt storm ends.
            let d = self.irqs.descs()[i].clone();
            PciFlow::set_irq_masked(self, t, hw, &d, true, p, probe);
            self.irqs.free(i);
            self.emit(
                *t,
                OsEvent::IrqDisabled {
                    gsi,
                    vector,
                    unhandled: d.unhandled,
                },
            );
        }
        if let TopHalf::Status(status) = top {
            // Like NAPI: one pending bottom half per card, with the statuses merged.
            let work = &mut self.pcpu[c.index()].work;
            let pending = work.iter_mut().find_map(|w| match w {
                Work::Card { card: k, status } if *k == card => Some(status),
                Work::Card { .. } | Work::Wake(_) | Work::Balance | Work::Spawn => None,
            });
            match pending {
                Some(s) => *s |= status,
                None => work.push_back(Work::Card { card, status }),
            }
            let k = self.pcpu[c.index()].ksoftirqd;
            self.wake_kthread(*t, c, k);
        }
        irq::eoi(p, probe, t, hw, base, vector);
    }

    // ------------------------------------------------------------------ IPIs

    /// Starts sending `vector` to `targets` from `c`, as a reader of maps version `v`
    /// (already locked); `wait`: a cross-call that waits for every acknowledgement.
    pub(crate) fn start_ipis(
        &mut self,
        c: LogicalCpu,
        v: u64,
        purpose: &'static str,
        vector: u8,
        targets: Vec<LogicalCpu>,
        wait: bool,
    ) {
        self.pcpu[c.index()].op = Some(IpiOp {
            version: v,
            purpose,
            vector,
            targets,
            next: 0,
            csds: Vec::new(),
            wait,
            deadline: SimTime::MAX,
            asid: None,
            free_after: None,
        });
    }

    fn continue_op(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let i = c.index();
        let now = *t;
        let Some(op) = self.pcpu[i].op.clone() else {
            return;
        };
        if op.next < op.targets.len() {
            let to = op.targets[op.next];
            self.reader_use(t, c, op.version, to, p, probe);
            let mut csd = None;
            if op.wait {
                let id = self.next_csd;
                self.next_csd += 1;
                self.csds.insert(
                    id,
                    Csd {
                        from: c,
                        to,
                        done: false,
                        asid: op.asid,
                    },
                );
                self.pcpu[to.index()].csd.push_back(id);
                self.emit(*t, OsEvent::CsdQueued { id, from: c, to });
                csd = Some(id);
            }
            self.send_ipi(*t, c, to, op.vector, p, probe);
            *t += self.cfg.ipi_send;
            let send_done = op.next + 1 == op.targets.len();
            let deadline = *t + self.cfg.csd_timeout;
            if let Some(o) = self.pcpu[i].op.as_mut() {
                o.next += 1;
                o.csds.extend(csd);
                if send_done {
                    o.deadline = deadline;
                }
            }
            self.finish_step(c, now, *t);
            return;
        }
        let waiting: Vec<u64> = op
            .csds
            .iter()
            .copied()
            .filter(|id| self.csds.get(id).is_some_and(|x| !x.done))
            .collect();
        if op.wait && !waiting.is_empty() {
            if *t < op.deadline {
                // Spin until the acknowledgements arrive (they kick this CPU) or time runs out.
                self.busy_until[i] = *t;
                self.run_by(c, op.deadline);
                return;
            }
            for id in waiting {
                if let Some(x) = self.csds.remove(&id) {
                    self.stats.csd_timeouts += 1;
                    self.pcpu[x.to.index()].csd.retain(|&q| q != id);
                    self.emit(
                        *t,
                        OsEvent::CsdTimeout {
                            id,
                            from: c,
                            to: x.to,
                            waited: self.cfg.csd_timeout,
                        },
                    );
                }
            }
        }
        for id in &op.csds {
            self.csds.remove(id);
        }
        self.pcpu[i].op = None;
        self.reader_end(*t, c);
        if let Some(pfn) = op.free_after {
            // Every TLB that could hold the old translation has dropped it.
            self.free_discarded(*t, pfn);
        }
        self.finish_step(c, now, *t);
    }

    /// `c` sends an IPI with `vector` to `to` through the machine.
    pub(crate) fn send_ipi(
        &mut self,
        t: SimTime,
        c: LogicalCpu,
        to: LogicalCpu,
        vector: u8,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let dest = self.pcpu[to.index()].lsapic;
        let _ = p.send_ipi(t, self.hw(c), dest, vector, probe);
        self.stats.ipis_sent += 1;
        self.emit(
            t,
            OsEvent::IpiSent {
                from: c,
                to,
                vector,
            },
        );
        self.kick(to, t);
    }

    // ------------------------------------------------------------------ the tick

    fn tick(&mut self, now: SimTime, c: LogicalCpu, p: &mut Platform, probe: &mut PlatformProbe) {
        let i = c.index();
        if self.pcpu[i].life != CpuLife::Up || !self.hw_running(c, p) {
            // The local timer of a CPU that is not running does not interrupt it.
            self.pcpu[i].ticking = false;
            return;
        }
        self.pcpu[i].ticks += 1;
        self.stats.ticks += 1;
        let curr = self.pcpu[i].curr;
        let user = curr.is_some_and(|t| self.tasks[t.0 as usize].kind == TaskKind::User);
        let in_kernel = self.pcpu[i].op.is_some() || self.rcu.in_reader(c);
        if (curr.is_none() || user) && !in_kernel {
            self.rcu_qs(now, c, p, probe);
        }
        let fair = curr.is_some_and(|t| !self.tasks[t.0 as usize].kind.is_stopper());
        if let Some(tid) = curr.filter(|_| fair) {
            let task = &mut self.tasks[tid.0 as usize];
            task.slice = task.slice.saturating_sub(1);
            if task.slice == 0 {
                self.pcpu[i].need_resched = true;
            }
        }
        while let Some(&(when, tid)) = self.pcpu[i].timers.first() {
            if when > now {
                break;
            }
            self.pcpu[i].timers.pop_first();
            self.tasks[tid.0 as usize].state = TaskState::Waking(c);
            self.pcpu[i].work.push_back(Work::Wake(tid));
        }
        let ticks = self.pcpu[i].ticks;
        if self.cfg.balance_ticks > 0
            && ticks % u64::from(self.cfg.balance_ticks) == 0
            && self.cur_maps().active.contains(c)
            && !self.pcpu[i].work.contains(&Work::Balance)
        {
            self.pcpu[i].work.push_back(Work::Balance);
        }
        if !self.pcpu[i].work.is_empty() {
            let k = self.pcpu[i].ksoftirqd;
            self.wake_kthread(now, c, k);
        }
        // The kernel touches its own objects (a slab object per tick).
        if !self.slab_objs.is_empty() {
            let k = (self.pcpu[i].ticks as usize + i) % self.slab_objs.len();
            let a = self.slab_objs[k];
            let mut t = now;
            load(p, probe, &mut t, self.hw(c), a);
        }
        // The flusher runs on the lowest online CPU.
        if self.cur_maps().online.first() == Some(c) {
            self.flusher(now, p, probe);
        }
        // The SCI: the lowest online CPU looks at firmware's notifications — once boot is
        // over. As in Linux, where the ACPI scan handlers attach after SMP bring-up (and the
        // SCI is enabled with them), a notification raised during boot stays pending in
        // firmware until then: no eject races the bring-up of the CPUs it would take away.
        if self.booted_at.is_some()
            && self.cur_maps().online.first() == Some(c)
            && p.firmware().pending().next().is_some()
        {
            CpuFlow::acpi_notifications(self, now, c, p, probe);
        }
        let _ = self.post(now + self.cfg.tick, OsEv::Tick(c));
        let pc = &self.pcpu[i];
        if pc.need_resched || (pc.curr.is_none() && (!pc.kq.is_empty() || !pc.rq.is_empty())) {
            self.kick(c, now);
        }
    }

    // ------------------------------------------------------------------ user tasks

    fn user_burst(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let hw = self.hw(c);
        let burst = self.cfg.burst as usize;
        let slots = self.cfg.memory.probe_words;
        let ratio = self.cfg.store_ratio;
        let hot = self.cfg.memory.hot_fraction;
        let file_ratio = self.cfg.memory.file_store_ratio;
        let Some(mm) = self.tasks[tid.0 as usize].mm else {
            return;
        };
        let span = self
            .vm
            .as_ref()
            .map_or(0, |vm| vm.spaces[mm as usize].span());
        for _ in 0..burst {
            let (vpn, slot, st) = {
                let task = &mut self.tasks[tid.0 as usize];
                let mut vpn = task.rng.index(span as usize) as u32;
                if hot > 0.0 && task.rng.chance(hot) {
                    // Fold into the hot quarter of its area.
                    if let Some(v) = self
                        .vm
                        .as_ref()
                        .and_then(|vm| vm.spaces[mm as usize].vma_of(vpn).copied())
                    {
                        vpn = v.start + (vpn - v.start) % (v.pages / 4).max(1);
                    }
                }
                let slot = task.rng.index(slots as usize) as u32;
                let file = self.vm.as_ref().is_some_and(|vm| {
                    matches!(
                        vm.spaces[mm as usize].vma_of(vpn).map(|v| v.kind),
                        Some(crate::mm::vm::VmaKind::File { .. })
                    )
                });
                let ratio = if file { file_ratio } else { ratio };
                let st = if task.rng.chance(ratio) {
                    task.stores += 1;
                    Some(u64::from(tid.0) << 40 | task.stores)
                } else {
                    None
                };
                (vpn, slot, st)
            };
            // An address in no area (the alignment gap before a hugetlb area) is not the
            // task's to touch: it would take a SIGSEGV. The worker leaves it alone.
            if self
                .vm
                .as_ref()
                .is_none_or(|vm| vm.spaces[mm as usize].vma_of(vpn).is_none())
            {
                continue;
            }
            let pfn = match self.translate(t, c, tid, PteRef { mm, vpn }, p, probe) {
                Ok(pfn) => pfn,
                Err(u32::MAX) => continue,
                Err(wait) => {
                    // A page under migration or I/O: sleep until it is ready.
                    self.wait_page(*t, c, tid, wait);
                    self.schedule(t, c, p, probe);
                    return;
                }
            };
            let vm = self.vm.as_mut().expect("user tasks exist after boot");
            let (obj, page) = match vm.spaces[mm as usize]
                .vma_of(vpn)
                .map(|v| (v.kind, v.start))
            {
                Some((crate::mm::vm::VmaKind::File { file }, start)) => {
                    (crate::event::MemObj::File(file), vpn - start)
                }
                Some(_) | None => (crate::event::MemObj::Anon(mm), vpn),
            };
            let word = vm.probe_word(slots, page, slot);
            let addr = vm.phys.addr(pfn) + 8 * u64::from(word);
            if (pfn as usize) < vm.phys.map.len() {
                let buffers = match obj {
                    crate::event::MemObj::File(fi) => vm.files[fi as usize].fs.has_backing(),
                    crate::event::MemObj::Anon(_) => false,
                };
                let f = match (st.is_some(), buffers) {
                    (true, true) => {
                        crate::mm::flags::REFERENCED
                            | crate::mm::flags::DIRTY
                            | crate::mm::flags::PRIVATE
                    }
                    (true, false) => crate::mm::flags::REFERENCED | crate::mm::flags::DIRTY,
                    (false, _) => crate::mm::flags::REFERENCED,
                };
                vm.phys.map.set(pfn, f);
            }
            let value = match st {
                Some(value) => {
                    store(p, probe, t, hw, addr, value);
                    self.stats.task_stores += 1;
                    value
                }
                None => {
                    self.stats.task_loads += 1;
                    load(p, probe, t, hw, addr)
                }
            };
            self.emit(
                *t,
                OsEvent::TaskAccess {
                    task: tid,
                    cpu: c,
                    obj,
                    page,
                    slot,
                    word,
                    addr,
                    value,
                    store: st.is_some(),
                },
            );
        }
        let (shootdown, sleep) = {
            let task = &mut self.tasks[tid.0 as usize];
            let shootdown = task.rng.chance(self.cfg.shootdown_chance);
            let sleep = !shootdown && task.rng.chance(self.cfg.sleep_chance);
            task.bursts += 1;
            (shootdown, sleep)
        };
        let dio = self.cfg.memory.direct_io_chance;
        if dio > 0.0 && self.tasks[tid.0 as usize].rng.chance(dio) {
            let pick = self.tasks[tid.0 as usize]
                .rng
                .index(self.cfg.memory.anon_pages.max(1) as usize);
            self.direct_io(*t, mm, pick as u32);
        }
        *t += self.cfg.compute;
        if shootdown {
            // madvise(MADV_DONTNEED) of one anonymous page: the PTE is cleared, the TLBs of
            // every other online CPU are shot down, and the frame is freed once all have
            // acknowledged.
            let discarded = self.discard_page(t, c, tid, mm, p, probe);
            let v = self.reader_begin(t, c, "tlb shootdown", p, probe);
            let targets: Vec<LogicalCpu> = self
                .maps_version(v)
                .online
                .iter()
                .filter(|&x| x != c)
                .collect();
            if targets.is_empty() {
                self.reader_end(*t, c);
                if let Some(pfn) = discarded {
                    self.free_discarded(*t, pfn);
                }
            } else {
                self.stats.shootdowns += 1;
                self.start_ipis(c, v, "tlb shootdown", CALL_FUNCTION_VECTOR, targets, true);
                // Only this address space's translations go (flush_tlb_mm).
                if let Some(op) = self.pcpu[c.index()].op.as_mut() {
                    op.asid = Some(mm);
                    op.free_after = discarded;
                }
                if let Some(vm) = self.vm.as_mut() {
                    vm.tlbs[c.index()].flush_asid(mm);
                }
            }
        } else if sleep {
            let until = *t + self.cfg.sleep;
            self.tasks[tid.0 as usize].state = TaskState::Sleeping {
                timer_cpu: c,
                until,
            };
            self.pcpu[c.index()].timers.insert((until, tid));
            self.stats.sleeps += 1;
            self.emit(
                *t,
                OsEvent::Sleep {
                    task: tid,
                    cpu: c,
                    timer_cpu: c,
                    until,
                },
            );
            self.schedule(t, c, p, probe);
        }
    }

    /// `cpu` flushes every other online CPU's TLB (`flush_tlb_all`), starting now: a
    /// cross-call broadcast to the CPUs of the current online map, one IPI after the other,
    /// inside an RCU read-side section that lasts until every CPU has acknowledged. The
    /// workload does this on its own (`shootdown_chance`); tests call it to place a reader
    /// at a chosen moment.
    pub fn tlb_shootdown(
        &mut self,
        now: SimTime,
        cpu: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<usize, String> {
        let i = cpu.index();
        if i >= self.nr || self.pcpu[i].life != CpuLife::Up || !self.hw_running(cpu, p) {
            return Err(format!("{cpu} is not up"));
        }
        if self.pcpu[i].op.is_some() {
            return Err(format!("{cpu} is already in a kernel operation"));
        }
        let mut t = now.max(self.busy_until[i]);
        let v = self.reader_begin(&mut t, cpu, "tlb shootdown", p, probe);
        let targets: Vec<LogicalCpu> = self
            .maps_version(v)
            .online
            .iter()
            .filter(|&x| x != cpu)
            .collect();
        let n = targets.len();
        if n == 0 {
            self.reader_end(t, cpu);
            return Ok(0);
        }
        self.stats.shootdowns += 1;
        self.start_ipis(cpu, v, "tlb shootdown", CALL_FUNCTION_VECTOR, targets, true);
        self.busy_until[i] = t;
        self.kick(cpu, t);
        Ok(n)
    }

    // ------------------------------------------------------------------ kernel threads

    fn block(&mut self, t: SimTime, c: LogicalCpu, tid: TaskId) {
        self.tasks[tid.0 as usize].state = TaskState::Blocked;
        self.emit(t, OsEvent::Block { task: tid, cpu: c });
    }

    fn softirq_work(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        // Between two work items a kernel thread holds nothing: a quiescent state
        // (`cond_resched`).
        self.rcu_qs(*t, c, p, probe);
        let Some(w) = self.pcpu[c.index()].work.pop_front() else {
            self.block(*t, c, tid);
            self.schedule(t, c, p, probe);
            return;
        };
        *t += SimDuration::from_nanos(200);
        match w {
            Work::Wake(task) => self.wakeup(t, c, task, p, probe),
            Work::Balance => self.balance(t, c, p, probe),
            Work::Spawn => self.boot_spawn(t, c, p, probe),
            Work::Card { card, status } => {
                let hw = self.hw(c);
                let mut out = Vec::new();
                self.driver
                    .bottom_half(t, card, hw, status, p, probe, &mut out);
                self.violations.extend(out);
                if !self.driver.cards()[card].active {
                    PciFlow::pci_card_gone(self, *t, card);
                }
            }
        }
    }

    /// One of the boot's worker tasks is created on `c` — if `c` is still active (read
    /// under RCU, like fork's placement); a CPU on its way offline hands the work to the
    /// least loaded active CPU instead (and tells it by IPI).
    fn boot_spawn(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let v = self.reader_begin(t, c, "spawn", p, probe);
        self.reader_use(t, c, v, c, p, probe);
        if self.maps_version(v).active.contains(c) {
            self.reader_end(*t, c);
            if self.spawn_user(t, c, None, p, probe).is_err() {
                self.stats.spawn_failures += 1;
            }
            return;
        }
        let active = self.maps_version(v).active.clone();
        let Some(to) = self.least_loaded(active.iter(), Some(c)) else {
            self.reader_end(*t, c);
            self.stats.spawn_failures += 1;
            return;
        };
        self.reader_use(t, c, v, to, p, probe);
        self.pcpu[to.index()].work.push_back(Work::Spawn);
        let k = self.pcpu[to.index()].ksoftirqd;
        self.wake_kthread(*t, to, k);
        self.start_ipis(c, v, "spawn", RESCHEDULE_VECTOR, vec![to], false);
    }

    /// Picks the CPU a waking task goes to: where it last ran if that CPU is active and
    /// allowed, else the waker's, else the least loaded allowed active CPU, else (affinity
    /// broken) any active CPU.
    pub(crate) fn select_task_rq(
        &self,
        tid: TaskId,
        v: u64,
        waker: LogicalCpu,
    ) -> Option<LogicalCpu> {
        let task = &self.tasks[tid.0 as usize];
        let maps = self.maps_version(v);
        let ok = |x: LogicalCpu| maps.active.contains(x) && task.affinity.contains(x);
        if ok(task.cpu) {
            return Some(task.cpu);
        }
        if ok(waker) {
            return Some(waker);
        }
        self.least_loaded(
            maps.active.iter().filter(|&x| task.affinity.contains(x)),
            None,
        )
        .or_else(|| self.least_loaded(maps.active.iter(), None))
    }

    /// The least loaded CPU of `cpus` other than `except` (lowest id on ties).
    fn least_loaded(
        &self,
        cpus: impl Iterator<Item = LogicalCpu>,
        except: Option<LogicalCpu>,
    ) -> Option<LogicalCpu> {
        cpus.filter(|&x| Some(x) != except)
            .min_by_key(|x| (self.pcpu[x.index()].load(&self.tasks), x.0))
    }

    fn wakeup(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        if self.tasks[tid.0 as usize].state != TaskState::Waking(c) {
            return;
        }
        let v = self.reader_begin(t, c, "wakeup", p, probe);
        let Some(target) = self.select_task_rq(tid, v, c) else {
            self.reader_end(*t, c);
            return;
        };
        self.reader_use(t, c, v, target, p, probe);
        self.stats.wakeups += 1;
        if target != self.tasks[tid.0 as usize].cpu {
            self.stats.wakeups_moved += 1;
        }
        self.enqueue(*t, tid, target, EnqueueWhy::Wakeup);
        if target != c && self.pcpu[target.index()].curr.is_none() {
            self.start_ipis(c, v, "wakeup", RESCHEDULE_VECTOR, vec![target], false);
        } else {
            self.reader_end(*t, c);
        }
    }

    fn balance(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let v = self.reader_begin(t, c, "load balance", p, probe);
        let maps = self.maps_version(v).clone();
        if !maps.active.contains(c) {
            self.reader_end(*t, c);
            return;
        }
        *t += SimDuration::from_nanos(50 * maps.active.weight() as u64);
        let mine = self.pcpu[c.index()].load(&self.tasks);
        let busiest = maps.active.iter().filter(|&x| x != c).max_by_key(|x| {
            (
                self.pcpu[x.index()].load(&self.tasks),
                std::cmp::Reverse(x.0),
            )
        });
        let Some(b) = busiest else {
            self.reader_end(*t, c);
            return;
        };
        if self.pcpu[b.index()].load(&self.tasks) < mine + 2 {
            self.reader_end(*t, c);
            return;
        }
        let candidate = self.pcpu[b.index()].rq.iter().copied().find(|&x| {
            let task = &self.tasks[x.0 as usize];
            task.affinity.contains(c) && !task.bound
        });
        let Some(task) = candidate else {
            self.reader_end(*t, c);
            return;
        };
        self.reader_use(t, c, v, b, p, probe);
        self.pcpu[b.index()]
            .mig
            .push_back(MigReq::Pull { task, to: c });
        let m = self.pcpu[b.index()].migration;
        self.wake_kthread(*t, b, m);
        self.start_ipis(c, v, "load balance", RESCHEDULE_VECTOR, vec![b], false);
    }

    /// The migration thread moves `tid` from `from`'s runqueue to `to`'s.
    fn move_task(&mut self, t: SimTime, tid: TaskId, from: LogicalCpu, to: LogicalCpu, by: TaskId) {
        self.pcpu[from.index()].rq.retain(|&x| x != tid);
        self.pcpu[to.index()].rq.push_back(tid);
        let task = &mut self.tasks[tid.0 as usize];
        task.state = TaskState::Queued(to);
        task.migrations += 1;
        self.emit(
            t,
            OsEvent::Migrate {
                task: tid,
                from,
                to,
                by,
            },
        );
    }

    fn migration_work(
        &mut self,
        t: &mut SimTime,
        c: LogicalCpu,
        tid: TaskId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let i = c.index();
        self.rcu_qs(*t, c, p, probe);
        let Some(&req) = self.pcpu[i].mig.front() else {
            self.block(*t, c, tid);
            self.schedule(t, c, p, probe);
            return;
        };
        match req {
            MigReq::Pull { task, to } => {
                self.pcpu[i].mig.pop_front();
                let v = self.reader_begin(t, c, "migrate", p, probe);
                let ok = self.tasks[task.0 as usize].state == TaskState::Queued(c)
                    && self.maps_version(v).active.contains(to)
                    && self.tasks[task.0 as usize].affinity.contains(to);
                if !ok {
                    self.reader_end(*t, c);
                    return;
                }
                self.reader_use(t, c, v, to, p, probe);
                *t += self.cfg.migrate_cost;
                self.move_task(*t, task, c, to, tid);
                self.stats.balance_moves += 1;
                if self.pcpu[to.index()].curr.is_none() {
                    self.start_ipis(c, v, "migrate", RESCHEDULE_VECTOR, vec![to], false);
                } else {
                    self.reader_end(*t, c);
                }
            }
            MigReq::Evacuate { op } => {
                let user = self.pcpu[i]
                    .rq
                    .iter()
                    .copied()
                    .find(|t| self.tasks[t.0 as usize].kind == TaskKind::User);
                let Some(task) = user else {
                    self.pcpu[i].mig.pop_front();
                    CpuFlow::hp_signal(self, *t, op);
                    return;
                };
                let v = self.reader_begin(t, c, "evacuate", p, probe);
                let maps = self.maps_version(v).clone();
                let allowed = self.tasks[task.0 as usize].affinity.clone();
                let to = self
                    .least_loaded(maps.active.iter().filter(|&x| allowed.contains(x)), Some(c))
                    .or_else(|| self.least_loaded(maps.active.iter(), Some(c)));
                let Some(to) = to else {
                    // Nowhere to go: leave it (the request is refused before this happens).
                    self.reader_end(*t, c);
                    self.pcpu[i].mig.pop_front();
                    CpuFlow::hp_signal(self, *t, op);
                    return;
                };
                self.reader_use(t, c, v, to, p, probe);
                *t += self.cfg.migrate_cost;
                self.move_task(*t, task, c, to, tid);
                self.stats.evacuations += 1;
                CpuFlow::hp_count_migrated(self, op);
                if self.pcpu[to.index()].curr.is_none() {
                    self.start_ipis(c, v, "evacuate", RESCHEDULE_VECTOR, vec![to], false);
                } else {
                    self.reader_end(*t, c);
                }
            }
            MigReq::Takeover { op, to } => {
                self.pcpu[i].mig.pop_front();
                let timers: Vec<(SimTime, TaskId)> = std::mem::take(&mut self.pcpu[i].timers)
                    .into_iter()
                    .collect();
                let moved: Vec<TaskId> = timers.iter().map(|x| x.1).collect();
                for (when, task) in timers {
                    self.tasks[task.0 as usize].state = TaskState::Sleeping {
                        timer_cpu: to,
                        until: when,
                    };
                    self.pcpu[to.index()].timers.insert((when, task));
                }
                let work: Vec<Work> = self.pcpu[i].work.drain(..).collect();
                let mut moved = moved;
                for w in &work {
                    if let Work::Wake(task) = *w {
                        self.tasks[task.0 as usize].state = TaskState::Waking(to);
                        moved.push(task);
                    }
                }
                let nwork = work.iter().filter(|w| **w != Work::Balance).count();
                self.pcpu[to.index()]
                    .work
                    .extend(work.into_iter().filter(|w| *w != Work::Balance));
                *t += SimDuration::from_nanos(100 * (moved.len() + nwork) as u64);
                CpuFlow::hp_count_work(self, op, moved.len(), nwork);
                if !moved.is_empty() {
                    self.emit(
                        *t,
                        OsEvent::TimersMoved {
                            from: c,
                            to,
                            tasks: moved,
                        },
                    );
                }
                if nwork > 0 {
                    let k = self.pcpu[to.index()].ksoftirqd;
                    self.wake_kthread(*t, to, k);
                    let v = self.reader_begin(t, c, "takeover", p, probe);
                    self.start_ipis(c, v, "takeover", RESCHEDULE_VECTOR, vec![to], false);
                }
                CpuFlow::hp_signal(self, *t, op);
            }
            MigReq::Park { op } => {
                self.pcpu[i].mig.pop_front();
                if let Some(k) = self.pcpu[i].ksoftirqd {
                    self.pcpu[i].kq.retain(|&x| x != k);
                    self.pcpu[i].rq.retain(|&x| x != k);
                    self.tasks[k.0 as usize].state = TaskState::Parked;
                    self.emit(
                        *t,
                        OsEvent::Park {
                            task: k,
                            cpu: c,
                            parked: true,
                        },
                    );
                }
                self.tasks[tid.0 as usize].state = TaskState::Parked;
                self.emit(
                    *t,
                    OsEvent::Park {
                        task: tid,
                        cpu: c,
                        parked: true,
                    },
                );
                CpuFlow::hp_signal(self, *t, op);
                self.schedule(t, c, p, probe);
            }
        }
    }

    // ------------------------------------------------------------------ dying

    /// The last thing a CPU going down does: take what is pending, leave RCU, flush and
    /// invalidate its cache, HALT.
    fn die(
        &mut self,
        now: SimTime,
        c: LogicalCpu,
        op: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) {
        let i = c.index();
        let mut t = now;
        self.pcpu[i].dying = None;
        let idle = self.idle_mask();
        let mut ev = Vec::new();
        let cbs = self.rcu.set_watched(t, c, false, &idle, &mut ev);
        self.events.extend(ev);
        let hw = self.hw(c);
        let (lines, dirty) = if self.defects.has(OsDefect::SkipCacheFlushOnCpuRemove) {
            (0, 0)
        } else {
            let r = p.machine.flush_cache(t, hw, probe);
            match r {
                Ok(f) => {
                    t += f.latency;
                    (f.lines, f.dirty)
                }
                Err(_) => (0, 0),
            }
        };
        let flushed_at = t;
        let _ = p.pal_halt(t, hw, probe);
        t += SimDuration::from_nanos(100);
        self.pcpu[i].life = CpuLife::Dead;
        self.pcpu[i].ticking = false;
        self.emit(
            t,
            OsEvent::CpuHalted {
                cpu: c,
                flushed_lines: lines,
                dirty_lines: dirty,
            },
        );
        let by = self.any_running_cpu(p);
        self.run_callbacks(t, by, cbs, p, probe);
        CpuFlow::hp_died(self, op, flushed_at, t, lines, dirty);
    }

    // ------------------------------------------------------------------ ACPI

    /// Evaluates `path` with `args` as CPU `c` (AML runs on a CPU; its mailbox writes are
    /// that CPU's stores).
    pub(crate) fn acpi_eval(
        &mut self,
        now: SimTime,
        c: LogicalCpu,
        path: &str,
        args: &[AcpiValue],
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<AcpiValue, String> {
        p.evaluate_as(now, Some(self.hw(c)), path, args, probe)
            .map_err(|e| e.to_string())
    }

    // ------------------------------------------------------------------ views

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
    /// `mem_map`, mappings, block states: [`crate::memory::Vm::digest`]), the memory
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
                self.vm.as_ref().map_or(0, crate::memory::Vm::digest),
            ),
            ("memory hot-plug operations", self.memhp.state_word()),
            ("PCI slots and operations", self.pcihp.state_word()),
            ("tasks", tasks.finish()),
        ]
    }
}
