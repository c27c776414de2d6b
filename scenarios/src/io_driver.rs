//! The I/O exerciser: the OS model's card driver ([`os_model::driver`]) run on the bare
//! platform for `random_tester` workloads, so that cards really DMA into memory, raise
//! interrupts and are serviced while the coherence tester runs.
//!
//! Per card: a receive ring at the top of the memory of the cell its I/O subsystem is attached
//! to; the card's INTA routed level-triggered to the configured CPU (`irq_cpu`, default the
//! first CPU of that cell) through its IO SAPIC entry, found from `_PRT`, `_GSB`, `_CRS` and
//! the processor's `_MAT`. The handler runs the driver's top and bottom halves on that CPU
//! and EOIs the IO SAPIC. Quiescing a card (before its slot is powered off) stops its engine
//! and bus mastering and masks its entry; bringing it up again reprograms everything.

use os_model::hw::Cx;
use std::collections::BTreeMap;

use acpi_model::{Platform, PlatformProbe};
use os_model::acpi::{self, AcpiScan};
use os_model::driver::{CardDriver, TopHalf};
use os_model::irq;
use sim_core::{CpuId, IoSubsystemId, LsapicId, SimDuration, SimTime, SlotId, Violation};

pub use os_model::driver::{DRIVER, DriverConfig as IoExerciserConfig, DriverStats};

#[derive(Clone, Copy, Debug)]
struct Route {
    cpu: CpuId,
    lsapic: LsapicId,
    vector: u8,
    sapic_base: u64,
    entry: u32,
}

/// The exerciser (see the module docs).
#[derive(Debug)]
pub struct IoExerciser {
    driver: CardDriver,
    scan: AcpiScan,
    routes: Vec<Option<Route>>,
    cpus: Vec<CpuId>,
    by_vector: BTreeMap<u8, usize>,
    sizes: BTreeMap<u64, u32>,
}

/// Why the exerciser cannot be set up; names the field of `[workload.io]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupError {
    /// Field within `[workload.io]`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl IoExerciser {
    /// Plans rings and interrupt destinations for every card present at start.
    pub fn new(cfg: IoExerciserConfig, p: &Platform) -> Result<IoExerciser, SetupError> {
        cfg.validate().map_err(|e| SetupError {
            field: e.field,
            message: e.message,
        })?;
        let enabled = cfg.enabled;
        let mut ex = IoExerciser {
            driver: CardDriver::new(cfg),
            scan: acpi::scan(p),
            routes: Vec::new(),
            cpus: Vec::new(),
            by_vector: BTreeMap::new(),
            sizes: BTreeMap::new(),
        };
        if !enabled {
            return Ok(ex);
        }
        let live: Vec<SlotId> = p
            .io()
            .devices()
            .iter()
            .filter(|d| d.is_live())
            .map(|d| d.slot)
            .collect();
        for slot in live {
            ex.plan(p, slot)?;
        }
        Ok(ex)
    }

    /// Ring and destination CPU for the card in `slot`.
    fn plan(&mut self, p: &Platform, slot: SlotId) -> Result<usize, SetupError> {
        let bad = |message: String| SetupError {
            field: "enabled",
            message,
        };
        let dev = p
            .io()
            .slot(slot)
            .and_then(|s| s.card)
            .and_then(|c| p.io().device(c))
            .ok_or_else(|| bad(format!("slot {} holds no card", slot.0)))?
            .clone();
        let sub = p
            .io()
            .subsystem(dev.subsystem)
            .ok_or_else(|| bad(format!("{} does not exist", dev.subsystem)))?;
        let g = p.machine().geometry();
        let cell = sim_core::CellId(sub.attached_cell);
        let (base, len) = p
            .machine()
            .address_map()
            .cell_range(cell)
            .map_or((0, g.total_bytes), |(b, l)| (b.raw(), l));
        let k = self
            .driver
            .card_in(slot)
            .unwrap_or(self.driver.cards().len());
        let from_top = self.driver.config().card_span() * (k as u64 + 1);
        if from_top > len / 4 {
            return Err(SetupError {
                field: "ring_records",
                message: format!(
                    "{} cards' rings of {} bytes do not fit in the top quarter of {cell}'s memory",
                    k + 1,
                    self.driver.config().ring_bytes()
                ),
            });
        }
        let per = g.cpus_per_cell as u32;
        let cpu = CpuId(dev.irq_cpu.unwrap_or(u32::from(sub.attached_cell) * per));
        let k = self
            .driver
            .attach(&self.scan, slot, base + len - from_top)
            .map_err(bad)?;
        if self.cpus.len() <= k {
            self.cpus.resize(k + 1, cpu);
            self.routes.resize(k + 1, None);
        }
        self.cpus[k] = cpu;
        Ok(k)
    }

    /// Counters.
    pub fn stats(&self) -> &DriverStats {
        self.driver.stats()
    }

    /// Time from delivery to handler.
    pub fn service_delay(&self) -> SimDuration {
        SimDuration::from_nanos(self.driver.config().service_ns)
    }

    /// CPUs that receive the cards' interrupts.
    pub fn irq_cpus(&self) -> Vec<CpuId> {
        let mut v = self.cpus.clone();
        v.sort();
        v.dedup();
        v
    }

    /// Brings up every planned card (boot).
    pub fn boot(
        &mut self,
        now: SimTime,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for k in 0..self.driver.cards().len() {
            if let Err(e) = self.bring_up(now, k, false, p, probe) {
                problems.push(e);
            }
        }
        problems
    }

    /// Programs card `k` and routes its interrupt.
    fn bring_up(
        &mut self,
        now: SimTime,
        k: usize,
        new_bars: bool,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<(), String> {
        let mut t = now;
        let cpu = self.cpus[k];
        self.driver
            .bring_up(&mut t, k, cpu, new_bars, &self.scan, &mut Cx::new(p, probe))?;
        let gsi = self.driver.cards()[k].gsi;
        let lsapic = self
            .scan
            .processor_by_uid(cpu.0)
            .map(|c| c.lsapic)
            .ok_or_else(|| format!("{cpu} has no processor object"))?;
        let route = match self.routes[k] {
            Some(r) => r,
            None => {
                let mut sizes = std::mem::take(&mut self.sizes);
                for s in self.scan.sapics.iter().filter(|s| s.present) {
                    if let std::collections::btree_map::Entry::Vacant(e) = sizes.entry(s.base) {
                        e.insert(irq::sapic_entries(
                            &mut Cx::new(p, probe),
                            &mut t,
                            cpu,
                            s.base,
                        ));
                    }
                }
                let found = self
                    .scan
                    .sapic_of(gsi, |b| sizes.get(&b).copied().unwrap_or(0))
                    .map(|(s, e)| (s.base, e));
                self.sizes = sizes;
                let (sapic_base, entry) =
                    found.ok_or_else(|| format!("no IO SAPIC for gsi{gsi}"))?;
                let vector = irq::FIRST_DEVICE_VECTOR + k as u8;
                if vector > irq::LAST_DEVICE_VECTOR {
                    return Err("out of interrupt vectors".into());
                }
                Route {
                    cpu,
                    lsapic,
                    vector,
                    sapic_base,
                    entry,
                }
            }
        };
        self.routes[k] = Some(route);
        self.by_vector.insert(route.vector, k);
        irq::program_rte(
            &mut Cx::new(p, probe),
            &mut t,
            cpu,
            route.sapic_base,
            route.entry,
            route.vector,
            route.lsapic,
            false,
        );
        Ok(())
    }

    /// Handles every interrupt pending on `cpu`; returns the violations its checks found.
    pub fn service(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut t = now;
        while let Ok(Some(taken)) = p.take_interrupt(t, cpu, probe) {
            let vector = taken.vector;
            let Some(&k) = self.by_vector.get(&vector) else {
                self.driver.spurious();
                continue;
            };
            let Some(route) = self.routes[k] else {
                continue;
            };
            if let TopHalf::Status(status) =
                self.driver.top_half(&mut t, k, cpu, &mut Cx::new(p, probe))
            {
                self.driver
                    .bottom_half(&mut t, k, cpu, status, &mut Cx::new(p, probe), &mut out);
            }
            irq::eoi(
                &mut Cx::new(p, probe),
                &mut t,
                cpu,
                route.sapic_base,
                vector,
            );
        }
        out
    }

    /// The watchdog interval, if any.
    pub fn poll_interval(&self) -> Option<SimDuration> {
        let ns = self.driver.config().poll_ns;
        (ns > 0 && !self.driver.cards().is_empty()).then(|| SimDuration::from_nanos(ns))
    }

    /// The watchdog: reads every active card's status; a card answering all-ones is gone.
    pub fn poll(&mut self, now: SimTime, p: &mut Platform, probe: &mut PlatformProbe) {
        let cpus = self.cpus.clone();
        self.driver.poll(now, |k| cpus[k], &mut Cx::new(p, probe));
    }

    /// Masks or unmasks the IO SAPIC entry of the card in `slot` (`disable_irq` /
    /// `enable_irq`): while masked the card's interrupts are held, not lost.
    pub fn set_masked(
        &mut self,
        now: SimTime,
        slot: SlotId,
        masked: bool,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<String, String> {
        let k = self
            .driver
            .card_in(slot)
            .filter(|&k| self.driver.cards()[k].active)
            .ok_or_else(|| format!("no active card in slot {}", slot.0))?;
        let r = self.routes[k].ok_or("the card has no interrupt route")?;
        let mut t = now;
        irq::program_rte(
            &mut Cx::new(p, probe),
            &mut t,
            r.cpu,
            r.sapic_base,
            r.entry,
            r.vector,
            r.lsapic,
            masked,
        );
        Ok(format!(
            "gsi entry {} of pci {} {}",
            r.entry,
            self.driver.cards()[k].bdf,
            if masked { "masked" } else { "unmasked" }
        ))
    }

    /// Stops the card in `slot` before its slot loses power: engine off, bus mastering off,
    /// its IO SAPIC entry masked. Returns what it did.
    pub fn quiesce(
        &mut self,
        now: SimTime,
        slot: SlotId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> String {
        let Some(k) = self
            .driver
            .card_in(slot)
            .filter(|&k| self.driver.cards()[k].active)
        else {
            return "no active card to quiesce".into();
        };
        let mut t = now;
        let cpu = self.cpus[k];
        self.driver.quiesce(&mut t, k, cpu, &mut Cx::new(p, probe));
        if let Some(r) = self.routes[k] {
            irq::program_rte(
                &mut Cx::new(p, probe),
                &mut t,
                cpu,
                r.sapic_base,
                r.entry,
                r.vector,
                r.lsapic,
                true,
            );
        }
        format!("driver stopped pci {}", self.driver.cards()[k].bdf)
    }

    /// Brings the card in `slot` up after its slot was powered on: its configuration was
    /// reset, so its BARs are assigned again (sized anew: it may be another card).
    pub fn resume(
        &mut self,
        now: SimTime,
        slot: SlotId,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> Result<String, String> {
        let k = match self.driver.card_in(slot) {
            Some(k) => k,
            None => self.plan(p, slot).map_err(|e| e.message)?,
        };
        self.bring_up(now, k, true, p, probe)?;
        Ok(format!(
            "driver brought up pci {}",
            self.driver.cards()[k].bdf
        ))
    }

    /// Whether a slot's card is driven now.
    pub fn is_active(&self, slot: SlotId) -> bool {
        self.driver
            .card_in(slot)
            .is_some_and(|k| self.driver.cards()[k].active)
    }

    /// The ACPI path of a slot.
    pub fn slot_path(&self, slot: SlotId) -> Option<String> {
        self.scan.slot(slot).map(|s| s.path.clone())
    }

    /// An I/O subsystem's module path.
    pub fn module_path(id: IoSubsystemId) -> String {
        format!("\\_SB_.IO{:02X}", id.0)
    }
}
