//! A mock platform: flat memory, CPUs that accept every interrupt, and the I/O checkers.

use std::collections::BTreeMap;

use io_subsystem::check::{IoAccessChecker, IrqChecker, ResourceChecker};
use io_subsystem::device::regs;
use io_subsystem::pci::{cmd, reg};
use io_subsystem::sapic;
use io_subsystem::{
    DeviceConfig, DeviceId, DeviceKind, IoConfig, IoEvent, IoFabric, IoObserver, Surroundings,
};
use sim_core::{
    CheckerSet, CpuId, Delivery, DmaError, DmaPort, Entity, InterruptPort, LsapicId, MsgTag,
    PhysAddr, SimDuration, SimTime, Violations,
};

pub(crate) const AROUND: Surroundings = Surroundings {
    cells: 8,
    cpus_per_cell: 4,
    memory_end: 1 << 30,
};
pub(crate) const CPU: Entity = Entity::Cpu(CpuId(0));

pub(crate) struct Env {
    pub(crate) mem: BTreeMap<u64, u64>,
    pub(crate) delivered: Vec<(LsapicId, u8)>,
    pub(crate) halted: Vec<LsapicId>,
    pub(crate) checkers: CheckerSet<IoEvent, IoFabric>,
    pub(crate) violations: Violations,
    pub(crate) events: Vec<IoEvent>,
    /// The time of the last event: audits run then.
    pub(crate) last: SimTime,
}

impl Env {
    pub(crate) fn new() -> Env {
        let mut checkers: CheckerSet<IoEvent, IoFabric> = CheckerSet::default();
        checkers.add(Box::new(IoAccessChecker::default()));
        checkers.add(Box::new(IrqChecker::default()));
        checkers.add(Box::new(ResourceChecker));
        Env {
            mem: BTreeMap::new(),
            delivered: Vec::new(),
            halted: Vec::new(),
            checkers,
            violations: Violations::default(),
            events: Vec::new(),
            last: SimTime::ZERO,
        }
    }

    pub(crate) fn audit(&mut self, io: &IoFabric) {
        self.checkers.audit(self.last, io, &mut self.violations);
    }
}

impl DmaPort for Env {
    fn dma_read(
        &mut self,
        _: SimTime,
        _: &Entity,
        addr: PhysAddr,
        buf: &mut [u64],
    ) -> Result<SimDuration, DmaError> {
        check(addr, buf.len())?;
        for (i, w) in buf.iter_mut().enumerate() {
            *w = self
                .mem
                .get(&(addr.raw() + 8 * i as u64))
                .copied()
                .unwrap_or(0);
        }
        Ok(SimDuration::from_nanos(300))
    }

    fn dma_write(
        &mut self,
        _: SimTime,
        _: &Entity,
        addr: PhysAddr,
        data: &[u64],
    ) -> Result<SimDuration, DmaError> {
        check(addr, data.len())?;
        for (i, &w) in data.iter().enumerate() {
            self.mem.insert(addr.raw() + 8 * i as u64, w);
        }
        Ok(SimDuration::from_nanos(300))
    }
}

fn check(addr: PhysAddr, words: usize) -> Result<(), DmaError> {
    if addr.raw() % 8 != 0 {
        return Err(DmaError::Misaligned { addr });
    }
    if addr.raw() + 8 * words as u64 > AROUND.memory_end {
        return Err(DmaError::OutOfRange {
            addr,
            words,
            end: PhysAddr::new(AROUND.memory_end),
        });
    }
    Ok(())
}

impl InterruptPort for Env {
    fn deliver(
        &mut self,
        _: SimTime,
        _: &Entity,
        dest: LsapicId,
        vector: u8,
        _: MsgTag,
    ) -> Delivery {
        self.delivered.push((dest, vector));
        let cpu = CpuId(u32::from(dest.id) * 4 + u32::from(dest.eid));
        if self.halted.contains(&dest) {
            Delivery::NotRunning(cpu)
        } else {
            Delivery::Accepted(cpu)
        }
    }
}

impl IoObserver for Env {
    fn io_event(&mut self, now: SimTime, ev: &IoEvent, io: &IoFabric) {
        self.events.push(ev.clone());
        self.last = self.last.max(now);
        self.checkers.observe(now, ev, io, &mut self.violations);
    }
}

pub(crate) fn card(subsystem: u16, slot: u8, kind: DeviceKind) -> DeviceConfig {
    DeviceConfig {
        subsystem,
        bridge: 0,
        slot,
        kind,
        bar_size: None,
        irq_cpu: None,
        period_ns: Some(1000),
        capacity: None,
        latency_ns: None,
        bandwidth: None,
    }
}

/// Default fabric with a NIC in subsystem 0 slot 1 and a disk in subsystem 2 slot 0.
pub(crate) fn fabric() -> IoFabric {
    let cfg = IoConfig {
        device: vec![card(0, 1, DeviceKind::Nic), card(2, 0, DeviceKind::Disk)],
        ..IoConfig::default()
    };
    IoFabric::new(&cfg, &AROUND, &[true; 8]).unwrap()
}

pub(crate) fn t(n: u64) -> SimTime {
    SimTime::from_nanos(n)
}

pub(crate) fn bar0(io: &IoFabric, d: DeviceId) -> PhysAddr {
    let dev = io.device(d).unwrap();
    let def = dev.config().bar_defs()[0];
    PhysAddr::new(dev.config().bar_address(&def))
}

/// Programs the device's IO SAPIC entry (level, vector, destination, unmasked).
pub(crate) fn route(io: &mut IoFabric, env: &mut Env, d: DeviceId, vector: u8, dest: LsapicId) {
    let dev = io.device(d).unwrap().clone();
    let (sid, e) = io.gsi_entry(dev.gsi).unwrap();
    let base = PhysAddr::new(io.subsystem(sid).unwrap().sapic.base);
    let sel = |o: u64| base.checked_add(o).unwrap();
    io.mmio_write(t(0), CPU, sel(sapic::IOREGSEL), 0x11 + 2 * e as u64, env);
    io.mmio_write(
        t(0),
        CPU,
        sel(sapic::IOWIN),
        u64::from(dest.id) << 24 | u64::from(dest.eid) << 16,
        env,
    );
    io.mmio_write(t(0), CPU, sel(sapic::IOREGSEL), 0x10 + 2 * e as u64, env);
    io.mmio_write(
        t(0),
        CPU,
        sel(sapic::IOWIN),
        u64::from(vector) | u64::from(sapic::rte::LEVEL),
        env,
    );
}

/// Starts the card's receive engine into a ring at `ring`.
pub(crate) fn start(io: &mut IoFabric, env: &mut Env, d: DeviceId, ring: u64, size: u64) {
    let bdf = io.device(d).unwrap().bdf;
    let b = bar0(io, d);
    let r = |o: u64| b.checked_add(o).unwrap();
    io.config_write(
        t(0),
        CPU,
        bdf,
        reg::COMMAND,
        cmd::MEMORY | cmd::IO | cmd::BUS_MASTER,
        env,
    );
    io.mmio_write(t(0), CPU, r(regs::RING_BASE), ring, env);
    io.mmio_write(t(0), CPU, r(regs::RING_SIZE), size, env);
    io.mmio_write(
        t(0),
        CPU,
        r(regs::CTRL),
        regs::CTRL_RUN | regs::CTRL_IRQ_EN,
        env,
    );
}
