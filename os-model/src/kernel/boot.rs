//! Boot: the ACPI scan, logical CPU numbering, the boot CPU's setup, the bring-up of the others.

use super::{CpuMaps, Os, OsError, OsStats, cfg_err};
use crate::acpi::{self};
use crate::config::{OsConfig, OsDefect, OsDefects};
use crate::cpumask::{CpuMask, LogicalCpu};
use crate::driver::{CardDriver, DriverConfig};
use crate::event::{EnqueueWhy, OsEvent, TaskId};
use crate::hotplug::{CpuFlow, Hotplug};
use crate::hw::Cx;
use crate::irq::{self, IrqTable};
use crate::mm::bootmem::BootMem;
use crate::mm::kernel::Mm;
use crate::ops::{self};
use crate::pcihp::PciFlow;
use crate::policy::Policies;
use crate::rcu::Rcu;
use crate::sched::{CpuLife, PerCpu, Task, TaskKind, TaskState, Work};
use acpi_model::{Platform, PlatformProbe};
use sim_core::{CpuId, EventQueue, LsapicId, RngStreams, SimTime, SlotId};
use std::collections::BTreeMap;

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
        let cx = &mut Cx { p, probe };
        cfg.validate().map_err(|e| cfg_err(e.field, e.message))?;
        let mut scan = acpi::scan_static(cx.p);
        if let Some(cells) = &cfg.cells {
            scan.restrict(cells);
        }
        // Every device's `_STA`, evaluated by the boot CPU through firmware at the
        // interpreter's cost: boot goes on once they are all known.
        let boot_hw = cx.p.machine().cpu_by_lsapic(bsp);
        let mut evals = 0u64;
        let mut t_scan = now;
        scan.refresh_presence(|path| {
            evals += 1;
            let sta = format!("{path}._STA");
            super::sta_says_present(super::aml_eval(cx, &mut t_scan, boot_hw, &sta, &[]))
        });
        let now = t_scan;
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
            maps_ptr: 0,
            stale_maps: BTreeMap::new(),
            derefs: vec![Vec::new(); nr],
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
            stats: OsStats {
                aml_evals: evals,
                ..OsStats::default()
            },
            streams: *streams,
            bsp: LogicalCpu(0),
            boot_ops: 0,
            booted_at: None,
            boot_errors: Vec::new(),
            sapic_sizes: BTreeMap::new(),
            sapics_gone: std::collections::BTreeSet::new(),
            unanswered: BTreeMap::new(),
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
        Mm::mm_boot(&mut os, boot_node, cx.p)?;
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
        os.init_cpu(&mut t, b, cx);
        os.start_kthreads(t, b);
        let mut first = CpuMaps {
            online: CpuMask::new(nr),
            active: CpuMask::new(nr),
        };
        first.online.set(b);
        first.active.set(b);
        os.publish_maps(&mut t, b, first, cx)?;
        os.init_sapics(&mut t, b, cx);
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
                    cause: None,
                },
            );
        }
        if os.boot_ops == 0 {
            os.finish_boot(t, cx);
        } else {
            ops::kick::<CpuFlow>(&mut os, t);
        }
        Ok(os)
    }

    /// Masks every entry of every present IO SAPIC (before any device is enabled).
    pub(super) fn init_sapics(&mut self, t: &mut SimTime, c: LogicalCpu, cx: &mut Cx<'_>) {
        let hw = self.hw(c);
        let sapics: Vec<u64> = self
            .scan
            .sapics
            .iter()
            .filter(|s| s.present)
            .map(|s| s.base)
            .collect();
        for base in sapics {
            let n = irq::sapic_entries(cx, t, hw, base);
            self.sapic_sizes.insert(base, n);
            for e in 0..n {
                irq::program_rte(cx, t, hw, base, e, 0, LsapicId { id: 0, eid: 0 }, true);
            }
        }
    }

    /// Boot is over: start the user tasks and the drivers.
    pub(crate) fn finish_boot(&mut self, now: SimTime, cx: &mut Cx<'_>) {
        let mut t = now;
        let online: Vec<LogicalCpu> = self.cur_maps().online.iter().collect();
        let b0 = self.bsp;
        Mm::mm_boot_slabs(self, &mut t, b0, cx);
        // Enumeration of the slotless chipset functions, then the cards; the kernel's disk
        // among them holds the files and the swap area. Without one there are no files.
        let _ = PciFlow::chipset_add(self, &mut t, b0, None, cx);
        if self.driver.config().enabled {
            self.start_drivers(&mut t, cx);
        }
        match Mm::mount_disk(self) {
            Ok(()) => Mm::create_files(self, &mut t),
            Err(e) => self.boot_errors.push(e),
        }
        // Each task is created, and its memory populated (its page faults at start-up), on
        // its own CPU, so the CPUs do it side by side: the few hard-bound tasks here (a CPU
        // cannot go offline under them, so they must exist before any request is taken),
        // the workers by each CPU's softirq thread, a task per work item, taking interrupts
        // in between.
        let mut asked = 0u32;
        for b in self.cfg.bound.clone() {
            let c = LogicalCpu(b.cpu);
            let mut tc = t.max(self.busy_until[c.index()]);
            if self.spawn_user(&mut tc, c, Some(c), cx).is_err() {
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
        // As in Linux, where the ACPI scan handlers attach after SMP bring-up and the SCI is
        // enabled with them: a notification raised during boot has held the line in its
        // masked entry and is delivered now; no eject races the bring-up of the CPUs it would
        // take away.
        self.route_sci(&mut t, b0, cx);
        self.booted_at = Some(t);
        Policies::policies_start(self, t);
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
        cx: &mut Cx<'_>,
    ) -> Result<TaskId, crate::mm::NoMemory> {
        let id = TaskId(self.tasks.len() as u32);
        let node = self.pcpu[c.index()].node;
        let mm = Mm::create_space(self, tm, c, id, node, cx)?;
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

    pub(super) fn start_drivers(&mut self, t: &mut SimTime, cx: &mut Cx<'_>) {
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
            let id = crate::hw::cfg_read(cx, t, hw, bdf, sim_core::abi::pci::reg::ID);
            if id == u32::MAX {
                continue;
            }
            // Enumeration: the BARs firmware gave it, sized and claimed in the windows.
            if !PciFlow::pci_claim(self, t, slot, cx) {
                continue;
            }
            let Ok(ring) = Mm::kmalloc(self, node, span, 4096) else {
                continue;
            };
            let Ok(k) = self.driver.attach(&self.scan, slot, ring) else {
                continue;
            };
            if self
                .driver
                .bring_up(t, k, hw, false, &self.scan, cx)
                .is_ok()
            {
                let irq = PciFlow::route_irq(self, t, k, b, false, cx).ok();
                PciFlow::pci_bound(self, slot, k, irq);
            }
        }
    }
}
