//! The platform: the cell hardware and the I/O hardware wired together, and the firmware on top.
//!
//! ```text
//!   CPUs ── load/store ──► Platform ──► memory: cells::Machine (coherent path)
//!                              │      └► I/O region: io_subsystem::IoFabric (MMIO)
//!                              │      └► mailbox: firmware (eject, power, _OST)
//!   SAL config / ports ───────►│
//!   IoFabric ── DmaPort / InterruptPort ──► Env ──► cells::Machine
//!   every event ──► PlatformProbe (trace, CHK-1/2/6 hardware, CHK-1/6/7 I/O)
//! ```
//!
//! # What `_EJ0` does
//!
//! Real firmware powers a component off when told to, whatever still runs on it, and so does
//! this one: ejecting a cell powers it off (its memory, caches and CPUs are lost, its chipset
//! function disappears, its `_STA` becomes 0) even if CPUs still run there or its memory is
//! still in use; ejecting a processor powers that CPU off; ejecting a memory device disables
//! the cell's memory controller; ejecting an I/O subsystem powers it off; ejecting a slot
//! powers the slot off. The eject event notes what was still running or enabled, and the
//! checkers report everything the OS touches afterwards — that is how an OS that ejects too
//! early is caught.

use cells::cell::CellEvent;
use cells::config::{MachineConfig, MemoryMode};
use cells::cpu::{CpuEvent, CpuState, Taken};
use cells::{
    AccessError, CellError, CpuError, HwEvent, HwObserver, Machine, UncachedSpace,
    machine::ALL_ONES,
};
use io_subsystem::{
    DeviceId, DeviceKind, IoConfig, IoError, IoEvent, IoFabric, IoObserver, IoScope,
    SubsystemEvent, SubsystemState, Surroundings,
};
use serde::{Deserialize, Serialize};
use sim_core::{
    Bdf, CellId, CheckerId, CheckerSet, CpuId, Delivery, DmaError, DmaPort, Entity, InterruptPort,
    IoSubsystemId, LsapicId, MsgTag, PhysAddr, SimDuration, SimTime, SlotId, Trace, Violations,
};
use thiserror::Error;

use crate::firmware::{Firmware, FwEvent, Notification, NotifyCode, NotifyId, OstRecord, mailbox};
use crate::namespace::{Namespace, Node, NodeKind, normalise};
use crate::resources::{self, Resource};
use crate::tables::{self, CpuEntry, IoSapicEntry, MemoryEntry};
use crate::value::{AcpiValue, eisa_id};

/// Latency of an uncached access (MMIO, configuration, port, mailbox).
pub const UNCACHED_NS: u64 = 400;

/// The machine and its I/O, as a scenario's `[machine]` and `[io]` tables describe them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformConfig {
    /// Cells, CPUs, memory, caches.
    pub machine: MachineConfig,
    /// I/O subsystems and cards.
    pub io: IoConfig,
}

/// A platform that cannot be built: the field (`machine.…` or `io.…`) and why.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct PlatformError {
    /// Dotted path of the offending field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Why firmware could not evaluate something.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AcpiError {
    /// No such object.
    #[error("{path} does not exist in the namespace")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// Wrong arguments.
    #[error("{path} takes {expected} arguments, got {got}")]
    Arguments {
        /// The method.
        path: String,
        /// How many it takes.
        expected: usize,
        /// How many it got.
        got: usize,
    },
}

/// Why firmware could not start an OS.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum BootError {
    /// No CPU is present.
    #[error("no CPU is present: nothing to boot")]
    NoPresentCpu,
    /// The boot CPU would not start.
    #[error("{0}")]
    Cpu(#[from] CpuError),
}

/// Every event of the platform goes here: hashed into the trace and shown to the checkers.
pub struct PlatformProbe {
    /// The run's trace.
    pub trace: Trace,
    /// Checkers of the cell hardware.
    pub hw: CheckerSet<HwEvent, Machine>,
    /// Checkers of the I/O hardware.
    pub io: CheckerSet<IoEvent, IoFabric>,
    /// What they reported.
    pub violations: Violations,
}

impl PlatformProbe {
    /// A probe with no checkers.
    pub fn bare(trace: Trace) -> Self {
        PlatformProbe {
            trace,
            hw: CheckerSet::default(),
            io: CheckerSet::default(),
            violations: Violations::default(),
        }
    }

    /// A probe with every hardware checker: CHK-1, CHK-2 (deep or not), CHK-6 on the cell
    /// side; CHK-1, CHK-6, CHK-7 on the I/O side.
    pub fn with_checkers(trace: Trace, machine: &Machine, deep: bool) -> Self {
        let mut p = PlatformProbe::bare(trace);
        p.hw.add(Box::new(cells::check::AccessChecker));
        p.hw.add(Box::new(cells::check::InterruptChecker));
        p.hw.add(Box::new(cells::check::CoherenceChecker::new(machine, deep)));
        p.io.add(Box::new(io_subsystem::check::IoAccessChecker::default()));
        p.io.add(Box::new(io_subsystem::check::IrqChecker::default()));
        p.io.add(Box::new(io_subsystem::check::ResourceChecker));
        p
    }

    /// The checkers installed, each once.
    pub fn checker_ids(&self) -> Vec<CheckerId> {
        let mut ids = self.hw.ids();
        ids.extend(self.io.ids());
        ids.sort();
        ids.dedup();
        ids
    }

    /// Full audits of both sides.
    pub fn audit(&mut self, now: SimTime, p: &Platform) {
        self.hw.audit(now, &p.machine, &mut self.violations);
        self.io.audit(now, &p.io, &mut self.violations);
    }

    /// A firmware event.
    pub fn firmware(&mut self, now: SimTime, ev: &FwEvent) {
        self.trace.emit(now, ev);
    }
}

impl HwObserver for PlatformProbe {
    #[inline]
    fn on_event(&mut self, now: SimTime, event: &HwEvent, hw: &Machine) {
        self.trace.emit(now, event);
        self.hw.observe(now, event, hw, &mut self.violations);
    }
}

impl IoObserver for PlatformProbe {
    fn io_event(&mut self, now: SimTime, event: &IoEvent, io: &IoFabric) {
        self.trace.emit(now, event);
        self.io.observe(now, event, io, &mut self.violations);
    }
}

/// What the I/O fabric sees of the rest of the platform during one call.
struct Env<'a> {
    machine: &'a mut Machine,
    probe: &'a mut PlatformProbe,
}

impl DmaPort for Env<'_> {
    fn dma_read(
        &mut self,
        now: SimTime,
        agent: &Entity,
        addr: PhysAddr,
        buf: &mut [u64],
    ) -> Result<SimDuration, DmaError> {
        cells::machine::Port {
            machine: self.machine,
            obs: self.probe,
        }
        .dma_read(now, agent, addr, buf)
    }

    fn dma_write(
        &mut self,
        now: SimTime,
        agent: &Entity,
        addr: PhysAddr,
        data: &[u64],
    ) -> Result<SimDuration, DmaError> {
        cells::machine::Port {
            machine: self.machine,
            obs: self.probe,
        }
        .dma_write(now, agent, addr, data)
    }
}

impl InterruptPort for Env<'_> {
    fn deliver(
        &mut self,
        now: SimTime,
        source: &Entity,
        dest: LsapicId,
        vector: u8,
        tag: MsgTag,
    ) -> Delivery {
        self.machine
            .deliver_interrupt(now, source, dest, vector, tag, self.probe)
    }
}

impl IoObserver for Env<'_> {
    fn io_event(&mut self, now: SimTime, event: &IoEvent, io: &IoFabric) {
        self.probe.io_event(now, event, io);
    }
}

/// The platform (see the module docs).
pub struct Platform {
    /// Cells, CPUs, caches, memory.
    machine: Machine,
    /// I/O subsystems, cards, IO SAPICs.
    io: IoFabric,
    firmware: Firmware,
    namespace: Namespace,
    mailbox_base: u64,
}

fn prefixed(prefix: &str, field: &str, message: String) -> PlatformError {
    PlatformError {
        field: format!("{prefix}.{field}"),
        message,
    }
}

/// The firmware mailbox code of a device (see [`crate::firmware`]), for the ejectable and
/// power-controlled ones.
pub fn device_code_of(kind: NodeKind) -> Option<u32> {
    match kind {
        NodeKind::Cell(c) => Some(1 << 16 | u32::from(c.0)),
        NodeKind::Processor(c) => Some(2 << 16 | c.0),
        NodeKind::Memory(c) => Some(3 << 16 | u32::from(c.0)),
        NodeKind::IoModule(i) => Some(4 << 16 | u32::from(i.0)),
        NodeKind::Slot(s) => Some(5 << 16 | u32::from(s.0)),
        NodeKind::SystemBus
        | NodeKind::ChipsetBridge(_)
        | NodeKind::ChipsetFn(_)
        | NodeKind::HostBridge(..)
        | NodeKind::IoSapic(_)
        | NodeKind::InterleavedMemory => None,
    }
}

fn kind_of_code(code: u32) -> Option<NodeKind> {
    let i = code & 0xFFFF;
    match code >> 16 {
        1 => Some(NodeKind::Cell(CellId(i as u16))),
        2 => Some(NodeKind::Processor(CpuId(i))),
        3 => Some(NodeKind::Memory(CellId(i as u16))),
        4 => Some(NodeKind::IoModule(IoSubsystemId(i as u16))),
        5 => Some(NodeKind::Slot(SlotId(i as u16))),
        _ => None,
    }
}

const PRESENT: u64 = 0x0F;

impl Platform {
    /// The machine (cells, CPUs, caches, memory), for harnesses, checkers and tests; the OS
    /// reaches it only through the named operations of `Platform`.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The machine, to drive it (harnesses and tests: hardware events, error injection).
    pub fn machine_mut(&mut self) -> &mut Machine {
        &mut self.machine
    }

    /// The I/O fabric (subsystems, slots, cards, IO SAPICs), for harnesses, checkers and
    /// tests.
    pub fn io(&self) -> &IoFabric {
        &self.io
    }

    /// The I/O fabric, to drive it (harnesses and tests).
    pub fn io_mut(&mut self) -> &mut IoFabric {
        &mut self.io
    }

    /// Builds the hardware and firmware of `cfg`, every present CPU present-halted.
    pub fn new(cfg: &PlatformConfig) -> Result<Platform, PlatformError> {
        let geo = cfg
            .machine
            .validate()
            .map_err(|e| prefixed("machine", &e.field, e.message))?;
        let around = Surroundings {
            cells: geo.cells as u16,
            cpus_per_cell: geo.cpus_per_cell as u16,
            memory_end: geo.total_bytes,
        };
        let io = IoFabric::new(&cfg.io, &around, &geo.present)
            .map_err(|e| prefixed("io", &e.field, e.message))?;
        for (k, d) in cfg.io.device.iter().enumerate() {
            if let Some(c) = d.irq_cpu {
                let cell = c as usize / geo.cpus_per_cell;
                if !geo.present[cell] {
                    return Err(prefixed(
                        "io",
                        &format!("device[{k}].irq_cpu"),
                        format!("cpu{c} is on cell {cell}, which is not present at start"),
                    ));
                }
            }
        }
        let machine =
            Machine::new(&cfg.machine).map_err(|e| prefixed("machine", &e.field, e.message))?;
        let namespace = Namespace::new(&geo, &io);
        let mailbox_base = io.region_end();
        Ok(Platform {
            machine,
            io,
            firmware: Firmware::default(),
            namespace,
            mailbox_base,
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }
    /// Firmware's state (notifications, `_OST` log, mailbox).
    pub fn firmware(&self) -> &Firmware {
        &self.firmware
    }
    /// Address of the firmware mailbox.
    pub fn mailbox_base(&self) -> PhysAddr {
        PhysAddr::new(self.mailbox_base)
    }

    /// The I/O fabric and, for it, the rest of the platform.
    fn split<'a>(&'a mut self, probe: &'a mut PlatformProbe) -> (&'a mut IoFabric, Env<'a>) {
        (
            &mut self.io,
            Env {
                machine: &mut self.machine,
                probe,
            },
        )
    }

    fn is_mailbox(&self, addr: PhysAddr) -> bool {
        (self.mailbox_base..self.mailbox_base + mailbox::BYTES).contains(&addr.raw())
    }

    fn uncached(&self, addr: PhysAddr) -> bool {
        self.is_mailbox(addr) || self.io.is_io_address(addr)
    }

    // ------------------------------------------------------------ CPU access paths

    /// A 64-bit load by `cpu`: coherent if `addr` is memory, uncached if it is MMIO or the
    /// firmware mailbox. Returns the value and the latency.
    pub fn load(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        addr: PhysAddr,
        probe: &mut PlatformProbe,
    ) -> Result<(u64, SimDuration), AccessError> {
        if !self.uncached(addr) {
            let a = self.machine.load(now, cpu, addr, probe)?;
            return Ok((a.value, a.latency));
        }
        if !self
            .machine
            .issue_uncached(now, cpu, UncachedSpace::Mmio, addr.raw(), false, probe)?
        {
            return Ok((ALL_ONES, SimDuration::ZERO));
        }
        let v = if self.is_mailbox(addr) {
            u64::from(self.firmware.register(addr.raw() - self.mailbox_base))
        } else {
            let (io, mut env) = self.split(probe);
            io.mmio_read(now, Entity::Cpu(cpu), addr, &mut env)
        };
        Ok((v, SimDuration::from_nanos(UNCACHED_NS)))
    }

    /// A 64-bit store by `cpu` (see [`Platform::load`]). Returns the latency.
    pub fn store(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        addr: PhysAddr,
        value: u64,
        probe: &mut PlatformProbe,
    ) -> Result<SimDuration, AccessError> {
        if !self.uncached(addr) {
            return Ok(self.machine.store(now, cpu, addr, value, probe)?.latency);
        }
        if !self
            .machine
            .issue_uncached(now, cpu, UncachedSpace::Mmio, addr.raw(), true, probe)?
        {
            return Ok(SimDuration::ZERO);
        }
        if self.is_mailbox(addr) {
            self.mailbox_write(now, addr.raw() - self.mailbox_base, value as u32, probe);
        } else {
            let (io, mut env) = self.split(probe);
            io.mmio_write(now, Entity::Cpu(cpu), addr, value, &mut env);
        }
        Ok(SimDuration::from_nanos(UNCACHED_NS))
    }

    /// A configuration read on behalf of `cpu` (SAL_PCI_CONFIG_READ).
    pub fn config_read(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        bdf: Bdf,
        offset: u16,
        probe: &mut PlatformProbe,
    ) -> Result<u32, AccessError> {
        if !self.machine.issue_uncached(
            now,
            cpu,
            UncachedSpace::Config,
            u64::from(offset),
            false,
            probe,
        )? {
            return Ok(u32::MAX);
        }
        let (io, mut env) = self.split(probe);
        Ok(io.config_read(now, Entity::Cpu(cpu), bdf, offset, &mut env))
    }

    /// A configuration write on behalf of `cpu` (SAL_PCI_CONFIG_WRITE).
    pub fn config_write(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        bdf: Bdf,
        offset: u16,
        value: u32,
        probe: &mut PlatformProbe,
    ) -> Result<(), AccessError> {
        if self.machine.issue_uncached(
            now,
            cpu,
            UncachedSpace::Config,
            u64::from(offset),
            true,
            probe,
        )? {
            let (io, mut env) = self.split(probe);
            io.config_write(now, Entity::Cpu(cpu), bdf, offset, value, &mut env);
        }
        Ok(())
    }

    /// A 32-bit I/O port read by `cpu`.
    pub fn port_read(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        port: u16,
        probe: &mut PlatformProbe,
    ) -> Result<u32, AccessError> {
        if !self.machine.issue_uncached(
            now,
            cpu,
            UncachedSpace::Port,
            u64::from(port),
            false,
            probe,
        )? {
            return Ok(u32::MAX);
        }
        let (io, mut env) = self.split(probe);
        Ok(io.port_read(now, Entity::Cpu(cpu), port, &mut env))
    }

    /// `cpu` takes its highest pending interrupt, with the messages it merged.
    pub fn take_interrupt(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        probe: &mut PlatformProbe,
    ) -> Result<Option<Taken>, CpuError> {
        self.machine.take_interrupt(now, cpu, probe)
    }

    /// `from` sends an IPI with `vector` to local SAPIC `dest`; `None` if `from` could not
    /// issue it (it is not running).
    pub fn send_ipi(
        &mut self,
        now: SimTime,
        from: CpuId,
        dest: LsapicId,
        vector: u8,
        probe: &mut PlatformProbe,
    ) -> Result<Option<Delivery>, AccessError> {
        self.machine.send_ipi(now, from, dest, vector, probe)
    }

    /// `from` wakes the CPU waiting in the firmware's boot rendezvous at `dest` (SAL wakeup).
    pub fn wake_cpu(
        &mut self,
        now: SimTime,
        from: CpuId,
        dest: LsapicId,
        probe: &mut PlatformProbe,
    ) -> Result<CpuId, CpuError> {
        self.machine.wake_cpu(now, from, dest, probe)
    }

    // ------------------------------------------------------------ hardware events

    /// A CPU state change.
    pub fn cpu_event(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        event: CpuEvent,
        probe: &mut PlatformProbe,
    ) -> Result<(), CpuError> {
        self.machine.cpu_event(now, cpu, event, probe)
    }

    /// `PAL_HALT`: the CPU leaves the OS and goes back to the firmware rendezvous (what an
    /// OS calls on a CPU it took offline, once its cache is flushed).
    pub fn pal_halt(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        probe: &mut PlatformProbe,
    ) -> Result<(), CpuError> {
        self.cpu_event(now, cpu, CpuEvent::Halt, probe)
    }

    /// `PAL_CACHE_FLUSH` on `cpu`: every line written back (if dirty) and invalidated; what an
    /// OS does before it halts a CPU or lets memory leave.
    pub fn pal_cache_flush(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        probe: &mut PlatformProbe,
    ) -> Result<cells::machine::FlushReport, CpuError> {
        self.machine.flush_cache(now, cpu, probe)
    }

    /// Page copies issued by `cpu` (a block-copy engine driven by the kernel: page migration,
    /// zeroing from the zero page): `pairs` of (source, destination) page addresses;
    /// `coherent` fetches dirty lines from caches and invalidates stale copies; `parallel`
    /// copies the pages side by side on the host (same result).
    pub fn copy_pages(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        pairs: &[(PhysAddr, PhysAddr)],
        coherent: bool,
        parallel: bool,
        probe: &mut PlatformProbe,
    ) -> Result<SimDuration, AccessError> {
        self.machine
            .copy_pages(now, cpu, pairs, coherent, parallel, probe)
    }

    /// Whether `cpu` is running and has interrupts pending at its local SAPIC (the signal an
    /// idle CPU wakes on).
    pub fn interrupt_pending(&self, cpu: CpuId) -> bool {
        self.machine
            .cpu(cpu)
            .is_some_and(|c| c.state.is_running() && c.pending_interrupts() > 0)
    }

    /// Whether `cpu` is running (executes instructions; not halted, not powered off).
    pub fn cpu_running(&self, cpu: CpuId) -> bool {
        self.machine.cpu(cpu).is_some_and(|c| c.state.is_running())
    }

    /// Interrupts the hardware has delivered to any CPU so far (a cheap "anything new?").
    pub fn interrupts_delivered(&self) -> u64 {
        self.machine.stats().interrupts_delivered
    }

    /// The machine's geometry (cells, page and line sizes, memory per cell).
    pub fn geometry(&self) -> &cells::config::Geometry {
        self.machine.geometry()
    }

    /// Firmware boot for an OS: starts the boot CPU — the first present one — and leaves the
    /// others waiting in the rendezvous for the OS to wake them. Returns the boot CPU and its
    /// local SAPIC id (what the OS reads from its own LID register).
    pub fn start_boot_cpu(
        &mut self,
        now: SimTime,
        probe: &mut PlatformProbe,
    ) -> Result<(CpuId, LsapicId), BootError> {
        let (cpu, lsapic) = self
            .machine
            .cpus()
            .iter()
            .find(|c| c.state == CpuState::PresentHalted)
            .map(|c| (c.id, c.lsapic))
            .ok_or(BootError::NoPresentCpu)?;
        self.cpu_event(now, cpu, CpuEvent::Start, probe)?;
        Ok((cpu, lsapic))
    }

    /// A cell state change; its chipset function follows.
    pub fn cell_event(
        &mut self,
        now: SimTime,
        cell: CellId,
        event: CellEvent,
        probe: &mut PlatformProbe,
    ) -> Result<(), CellError> {
        self.machine.cell_event(now, cell, event, probe)?;
        let powered = self
            .machine
            .cell(cell)
            .is_some_and(|c| c.state.is_powered());
        let (io, mut env) = self.split(probe);
        io.set_chipset_present(now, cell.0, powered, &mut env);
        Ok(())
    }

    /// An I/O subsystem state change.
    pub fn subsystem_event(
        &mut self,
        now: SimTime,
        id: IoSubsystemId,
        event: SubsystemEvent,
        probe: &mut PlatformProbe,
    ) -> Result<(), IoError> {
        let (io, mut env) = self.split(probe);
        io.subsystem_event(now, id, event, &mut env)
    }

    /// Slot power.
    pub fn set_slot_power(
        &mut self,
        now: SimTime,
        slot: SlotId,
        on: bool,
        probe: &mut PlatformProbe,
    ) -> Result<(), IoError> {
        let (io, mut env) = self.split(probe);
        io.set_slot_power(now, slot, on, &mut env)
    }

    /// A card pushed into an empty slot.
    pub fn insert_card(
        &mut self,
        now: SimTime,
        slot: SlotId,
        kind: DeviceKind,
        probe: &mut PlatformProbe,
    ) -> Result<DeviceId, IoError> {
        let (io, mut env) = self.split(probe);
        io.insert_card(now, slot, kind, &mut env)
    }

    /// A card pulled out of its slot (a surprise removal if the slot is powered).
    pub fn remove_card(
        &mut self,
        now: SimTime,
        slot: SlotId,
        probe: &mut PlatformProbe,
    ) -> Result<DeviceId, IoError> {
        let (io, mut env) = self.split(probe);
        io.remove_card(now, slot, &mut env)
    }

    /// Someone presses a slot's attention button: firmware raises an eject request for it.
    /// Returns the notification's number (`None`: the slot has no device in the namespace).
    pub fn press_attention(
        &mut self,
        now: SimTime,
        slot: SlotId,
        probe: &mut PlatformProbe,
    ) -> Result<Option<NotifyId>, IoError> {
        let (io, mut env) = self.split(probe);
        io.press_attention(now, slot, &mut env)?;
        Ok(self
            .namespace
            .node_of(NodeKind::Slot(slot))
            .map(|n| n.path.clone())
            .map(|path| self.raise(now, path, NotifyCode::EjectRequest, probe)))
    }

    /// Card `d` does its periodic work; returns when it wants to run again.
    pub fn device_tick(
        &mut self,
        now: SimTime,
        d: DeviceId,
        probe: &mut PlatformProbe,
    ) -> Option<SimTime> {
        let (io, mut env) = self.split(probe);
        io.device_tick(now, d, &mut env)
    }

    /// Cards that asked to run, and when.
    pub fn take_wakeups(&mut self) -> Vec<(DeviceId, SimTime)> {
        self.io.take_wakeups()
    }

    // ------------------------------------------------------------ firmware

    fn raise(
        &mut self,
        now: SimTime,
        path: String,
        code: NotifyCode,
        probe: &mut PlatformProbe,
    ) -> NotifyId {
        probe.firmware(
            now,
            &FwEvent::Notify {
                path: path.clone(),
                code,
            },
        );
        self.firmware.notified += 1;
        let id = self.firmware.notified;
        self.firmware.pending.push_back(Notification {
            id,
            time: now,
            path,
            code,
        });
        self.drive_sci(now, probe);
        id
    }

    /// The SCI line follows firmware's queue: asserted while a notification waits for the OS
    /// (its event status bit set), released once the OS took them all (the bit cleared).
    fn drive_sci(&mut self, now: SimTime, probe: &mut PlatformProbe) {
        let want = !self.firmware.pending.is_empty();
        if want != self.firmware.sci_asserted {
            self.firmware.sci_asserted = want;
            let (io, mut env) = self.split(probe);
            io.set_sci(now, want, &mut env);
        }
    }

    /// Raises an SCI with a Notify on the device at `path`; returns the notification's
    /// number, which the operation the OS starts for it (or its refusal) carries.
    pub fn notify(
        &mut self,
        now: SimTime,
        path: &str,
        code: NotifyCode,
        probe: &mut PlatformProbe,
    ) -> Result<NotifyId, AcpiError> {
        let node = self
            .namespace
            .find(path)
            .ok_or_else(|| AcpiError::NotFound { path: path.into() })?;
        let p = node.path.clone();
        Ok(self.raise(now, p, code, probe))
    }

    /// The OS takes the pending notifications, oldest first, at `now`. A notification about a
    /// slot or an I/O subsystem (or a part of one) is reported to the I/O side
    /// ([`IoEvent::Announced`]): from now on software has been told about that hardware.
    pub fn take_notifications(
        &mut self,
        now: SimTime,
        probe: &mut PlatformProbe,
    ) -> Vec<Notification> {
        let taken: Vec<Notification> = self.firmware.pending.drain(..).collect();
        self.drive_sci(now, probe);
        for n in &taken {
            let scope = self
                .namespace
                .find(&n.path)
                .and_then(|node| match node.kind {
                    NodeKind::Slot(s) => Some(IoScope::Slot(s)),
                    NodeKind::IoModule(s) | NodeKind::HostBridge(s, _) | NodeKind::IoSapic(s) => {
                        Some(IoScope::Subsystem(s))
                    }
                    NodeKind::SystemBus
                    | NodeKind::Cell(_)
                    | NodeKind::Processor(_)
                    | NodeKind::Memory(_)
                    | NodeKind::InterleavedMemory
                    | NodeKind::ChipsetBridge(_)
                    | NodeKind::ChipsetFn(_) => None,
                });
            if let Some(scope) = scope {
                probe.io_event(now, &IoEvent::Announced { scope }, &self.io);
            }
        }
        taken
    }

    /// Every `_OST` the OS reported.
    pub fn ost_log(&self) -> &[OstRecord] {
        self.firmware.ost_log()
    }

    /// Evaluates the object or method at `path` (e.g. `\_SB_.CL00._STA`) with `args`.
    /// `_EJ0`, `_PS0`, `_PS3` and `_OST` act through the firmware mailbox, exactly as the
    /// exported AML does; everything else reads the hardware's current state.
    pub fn evaluate(
        &mut self,
        now: SimTime,
        path: &str,
        args: &[AcpiValue],
        probe: &mut PlatformProbe,
    ) -> Result<AcpiValue, AcpiError> {
        self.evaluate_as(now, None, path, args, probe)
    }

    /// The SAL procedures `GET_STATE_INFO` and `CLEAR_STATE_INFO` for corrected errors,
    /// called by processor `cpu` (a firmware call, not a device access): every corrected
    /// error the hardware's error banks recorded — per processor (CMC) and per memory page
    /// (CPE) — since the last call, then cleared from the log.
    pub fn sal_corrected_errors(&mut self, cpu: CpuId) -> crate::firmware::CorrectedLog {
        let mut log = crate::firmware::CorrectedLog::default();
        let running = self.machine.cpu(cpu).is_some_and(|c| c.state.is_running());
        if !running {
            return log;
        }
        let fw = &mut self.firmware;
        if fw.cleared_cpu.len() < self.machine.cpus().len() {
            fw.cleared_cpu.resize(self.machine.cpus().len(), 0);
        }
        for (i, c) in self.machine.cpus().iter().enumerate() {
            let new = c.corrected_errors.saturating_sub(fw.cleared_cpu[i]);
            if new > 0 {
                log.cpus.push((c.id, new));
                fw.cleared_cpu[i] = c.corrected_errors;
            }
        }
        let shift = self.machine.geometry().page_shift;
        for (pfn, n) in self.machine.memory().erring_frames() {
            let seen = fw.cleared_mem.entry(pfn).or_insert(0);
            if n > *seen {
                log.memory.push((
                    sim_core::PhysAddr::new((pfn as u64) << shift),
                    u64::from(n - *seen),
                ));
                *seen = n;
            }
        }
        log
    }

    /// [`Platform::evaluate`] run by the AML interpreter on `cpu`: the method's mailbox
    /// writes are that CPU's uncached stores (and are not performed if it is not running).
    /// `None`: evaluated from outside the machine (a scenario, a test).
    pub fn evaluate_as(
        &mut self,
        now: SimTime,
        cpu: Option<CpuId>,
        path: &str,
        args: &[AcpiValue],
        probe: &mut PlatformProbe,
    ) -> Result<AcpiValue, AcpiError> {
        let norm = normalise(path);
        let not_found = || AcpiError::NotFound { path: norm.clone() };
        let (parent, method) = norm.rsplit_once('.').ok_or_else(not_found)?;
        let node = self.namespace.find(parent).ok_or_else(not_found)?;
        if !node.kind.objects().contains(&method) {
            return Err(not_found());
        }
        let kind = node.kind;
        let code = device_code_of(kind);
        let want = |n: usize| {
            if args.len() < n {
                Err(AcpiError::Arguments {
                    path: norm.clone(),
                    expected: n,
                    got: args.len(),
                })
            } else {
                Ok(())
            }
        };
        match (method, code) {
            ("_EJ0", Some(c)) => {
                want(1)?;
                self.aml_write(now, cpu, mailbox::EJDV, c, probe);
                Ok(AcpiValue::None)
            }
            ("_PS0" | "_PS3", Some(c)) => {
                self.aml_write(now, cpu, mailbox::PSDV, c, probe);
                self.aml_write(now, cpu, mailbox::PSST, u32::from(method == "_PS0"), probe);
                Ok(AcpiValue::None)
            }
            ("_OST", Some(c)) => {
                want(2)?;
                let arg = |i: usize| args[i].as_integer().unwrap_or(0) as u32;
                self.aml_write(now, cpu, mailbox::OSDV, c, probe);
                self.aml_write(now, cpu, mailbox::OSEV, arg(0), probe);
                self.aml_write(now, cpu, mailbox::OSST, arg(1), probe);
                Ok(AcpiValue::None)
            }
            _ => self.object(kind, method).ok_or_else(not_found),
        }
    }

    /// A mailbox write by AML: a store by `cpu` when the interpreter runs on one.
    fn aml_write(
        &mut self,
        now: SimTime,
        cpu: Option<CpuId>,
        offset: u64,
        value: u32,
        probe: &mut PlatformProbe,
    ) {
        match cpu {
            Some(c) => {
                let addr = PhysAddr::new(self.mailbox_base + offset);
                let _ = self.store(now, c, addr, u64::from(value), probe);
            }
            None => self.mailbox_write(now, offset, value, probe),
        }
    }

    /// A write to the firmware mailbox (by AML or by an OS that knows the register).
    pub fn mailbox_write(
        &mut self,
        now: SimTime,
        offset: u64,
        value: u32,
        probe: &mut PlatformProbe,
    ) {
        if let Some(r) = self.firmware.regs.get_mut((offset / 4) as usize) {
            *r = value;
        }
        match offset {
            mailbox::EJDV => self.eject(now, value, probe),
            mailbox::PSST => {
                let dev = self.firmware.register(mailbox::PSDV);
                self.power(now, dev, value != 0, probe);
            }
            mailbox::OSST => {
                let dev = self.firmware.register(mailbox::OSDV);
                let event = self.firmware.register(mailbox::OSEV);
                let path = kind_of_code(dev)
                    .and_then(|k| self.namespace.node_of(k))
                    .map_or_else(|| format!("device code {dev:#x}"), |n| n.path.clone());
                probe.firmware(
                    now,
                    &FwEvent::Ost {
                        path: path.clone(),
                        event,
                        status: value,
                    },
                );
                self.firmware.ost.push(OstRecord {
                    time: now,
                    path,
                    event,
                    status: value,
                });
            }
            _ => {}
        }
    }

    fn refuse(now: SimTime, register: u64, value: u32, reason: String, probe: &mut PlatformProbe) {
        probe.firmware(
            now,
            &FwEvent::Refused {
                register,
                value,
                reason,
            },
        );
    }

    fn eject(&mut self, now: SimTime, code: u32, probe: &mut PlatformProbe) {
        let Some(node) = kind_of_code(code)
            .and_then(|k| self.namespace.node_of(k))
            .cloned()
        else {
            Self::refuse(
                now,
                mailbox::EJDV,
                code,
                format!("no ejectable device {code:#x}"),
                probe,
            );
            return;
        };
        let note = match node.kind {
            NodeKind::Cell(cell) => {
                let running: Vec<String> = self
                    .machine
                    .cpus_of(cell)
                    .filter(|c| c.state == CpuState::Running)
                    .map(|c| c.id.to_string())
                    .collect();
                let memory_on = self.machine.cell(cell).is_some_and(|c| c.memory_online());
                match self.cell_event(now, cell, CellEvent::PowerOff, probe) {
                    Ok(()) => {
                        let mut n = "cell powered off".to_owned();
                        if !running.is_empty() {
                            n += &format!("; still running: {}", running.join(","));
                        }
                        if memory_on {
                            n += "; its memory was still enabled";
                        }
                        n
                    }
                    Err(e) => format!("nothing done: {e}"),
                }
            }
            NodeKind::Processor(cpu) => {
                let was = self.machine.cpu(cpu).map(|c| c.state);
                match self.cpu_event(now, cpu, CpuEvent::PowerOff, probe) {
                    Ok(()) => format!(
                        "{cpu} powered off (it was {})",
                        was.map_or_else(String::new, |s| s.to_string())
                    ),
                    Err(e) => format!("nothing done: {e}"),
                }
            }
            NodeKind::Memory(cell) => {
                match self.machine.set_memory_enabled(now, cell, false, probe) {
                    Ok(()) => format!("memory of {cell} disabled"),
                    Err(e) => format!("nothing done: {e}"),
                }
            }
            NodeKind::IoModule(id) => {
                let busy = self
                    .io
                    .devices()
                    .iter()
                    .filter(|d| d.subsystem == id && d.is_live())
                    .count();
                match self.subsystem_event(now, id, SubsystemEvent::PowerOff, probe) {
                    Ok(()) => format!("I/O subsystem powered off; {busy} cards were still powered"),
                    Err(e) => format!("nothing done: {e}"),
                }
            }
            NodeKind::Slot(slot) => match self.set_slot_power(now, slot, false, probe) {
                Ok(()) => "slot powered off".to_owned(),
                Err(e) => format!("nothing done: {e}"),
            },
            NodeKind::SystemBus
            | NodeKind::ChipsetBridge(_)
            | NodeKind::ChipsetFn(_)
            | NodeKind::HostBridge(..)
            | NodeKind::IoSapic(_)
            | NodeKind::InterleavedMemory => "not ejectable".to_owned(),
        };
        probe.firmware(
            now,
            &FwEvent::Eject {
                path: node.path,
                note,
            },
        );
    }

    fn power(&mut self, now: SimTime, code: u32, on: bool, probe: &mut PlatformProbe) {
        let node = kind_of_code(code)
            .and_then(|k| self.namespace.node_of(k))
            .cloned();
        match node {
            Some(Node {
                kind: NodeKind::Slot(slot),
                path,
                ..
            }) => match self.set_slot_power(now, slot, on, probe) {
                Ok(()) => probe.firmware(now, &FwEvent::Power { path, on }),
                Err(e) => Self::refuse(now, mailbox::PSST, u32::from(on), e.to_string(), probe),
            },
            Some(_) | None => Self::refuse(
                now,
                mailbox::PSST,
                u32::from(on),
                format!("device {code:#x} has no power control"),
                probe,
            ),
        }
    }

    /// The value of a non-method object (or of a side-effect-free method such as `_STA`) of
    /// node `kind`, read from the hardware's current state.
    pub fn object(&self, kind: NodeKind, name: &str) -> Option<AcpiValue> {
        use AcpiValue::{Buffer, Integer, Package, String as Str};
        let sta = |on: bool| Integer(if on { PRESENT } else { 0 });
        let cell_on = |c: CellId| self.machine.cell(c).is_some_and(|x| x.state.is_powered());
        let sub_on = |i: IoSubsystemId| self.io.subsystem(i).is_some_and(|s| s.state.is_powered());
        let attached = |i: IoSubsystemId| {
            self.io
                .subsystem(i)
                .map_or(0, |s| u64::from(s.attached_cell))
        };
        let eisa = |s: &str| eisa_id(s).map(|v| Integer(u64::from(v)));
        let v = match (kind, name) {
            (NodeKind::Cell(_), "_HID") => Str("ACPI0004".into()),
            (NodeKind::Cell(c), "_UID") => Integer(u64::from(c.0)),
            (NodeKind::Cell(c), "_STA") => sta(cell_on(c)),
            (NodeKind::Cell(c), "_PXM") => Integer(u64::from(c.0)),
            (NodeKind::Processor(_), "_HID") => Str("ACPI0007".into()),
            (NodeKind::Processor(c), "_UID") => Integer(u64::from(c.0)),
            (NodeKind::Processor(c), "_STA") => sta(self
                .machine
                .cpu(c)
                .is_some_and(|x| x.state != CpuState::Absent)),
            (NodeKind::Processor(c), "_MAT") => {
                Buffer(tables::lsapic_structure(&self.cpu_entry(c)?))
            }
            (NodeKind::Processor(c), "_PXM") => Integer(u64::from(self.machine.cpu(c)?.cell.0)),
            (NodeKind::Memory(_), "_HID") => eisa("PNP0C80")?,
            (NodeKind::Memory(c), "_UID") => Integer(u64::from(c.0)),
            (NodeKind::Memory(c), "_STA") => {
                sta(self.machine.cell(c).is_some_and(|x| x.memory_online()))
            }
            (NodeKind::Memory(c), "_CRS") => {
                let (base, len) = self.cell_memory(c);
                Buffer(resources::encode(&[Resource::Memory {
                    base,
                    len,
                    producer: false,
                }]))
            }
            (NodeKind::Memory(c), "_PXM") => Integer(u64::from(c.0)),
            (NodeKind::InterleavedMemory, "_HID") => eisa("PNP0C80")?,
            (NodeKind::InterleavedMemory, "_UID") => Integer(0x100),
            // Present while every cell's share of the lines is there.
            (NodeKind::InterleavedMemory, "_STA") => {
                sta(self.machine.cells().iter().all(|c| c.memory_online()))
            }
            (NodeKind::InterleavedMemory, "_CRS") => {
                Buffer(resources::encode(&[Resource::Memory {
                    base: 0,
                    len: self.machine.geometry().total_bytes,
                    producer: false,
                }]))
            }
            // No line is nearer to one cell than to another: firmware files it under the
            // boot cell's domain, as firmware without per-line affinity does.
            (NodeKind::InterleavedMemory, "_PXM") => Integer(0),
            (NodeKind::ChipsetBridge(_), "_HID") => eisa("PNP0A03")?,
            (NodeKind::ChipsetBridge(c), "_UID") => Integer(0x100 + u64::from(c.0)),
            (NodeKind::ChipsetBridge(c), "_STA") => sta(cell_on(c)),
            (NodeKind::ChipsetBridge(c), "_BBN") => Integer(u64::from(self.chipset_bus(c)?)),
            (NodeKind::ChipsetBridge(_), "_SEG") => Integer(0),
            (NodeKind::ChipsetBridge(c), "_CRS") => {
                let bus = self.chipset_bus(c)?;
                Buffer(resources::encode(&[Resource::BusNumbers {
                    first: bus,
                    last: bus,
                }]))
            }
            (NodeKind::ChipsetBridge(c), "_PXM") => Integer(u64::from(c.0)),
            (NodeKind::ChipsetFn(_), "_ADR") => Integer(0),
            (NodeKind::ChipsetFn(c), "_STA") => sta(cell_on(c)),
            (NodeKind::IoModule(_), "_HID") => Str("ACPI0004".into()),
            (NodeKind::IoModule(i), "_UID") => Integer(0x100 + u64::from(i.0)),
            (NodeKind::IoModule(i), "_STA") => sta(sub_on(i)),
            (NodeKind::IoModule(i), "_PXM") => Integer(attached(i)),
            (NodeKind::HostBridge(..), "_HID") => eisa("PNP0A08")?,
            (NodeKind::HostBridge(..), "_CID") => eisa("PNP0A03")?,
            (NodeKind::HostBridge(i, b), "_UID") => {
                Integer(u64::from(i.0) * u64::from(self.io.config().bridges) + u64::from(b))
            }
            (NodeKind::HostBridge(i, _), "_STA") => sta(sub_on(i)),
            (NodeKind::HostBridge(i, b), "_BBN") => Integer(u64::from(self.bridge(i, b)?.buses.0)),
            (NodeKind::HostBridge(..), "_SEG") => Integer(0),
            (NodeKind::HostBridge(i, b), "_CRS") => {
                let br = self.bridge(i, b)?;
                Buffer(resources::encode(&[
                    Resource::BusNumbers {
                        first: br.buses.0,
                        last: br.buses.1,
                    },
                    Resource::Io {
                        base: br.io_window.0 as u16,
                        len: br.io_window.1 as u16,
                    },
                    Resource::Memory {
                        base: br.mmio_window.0,
                        len: br.mmio_window.1,
                        producer: true,
                    },
                ]))
            }
            (NodeKind::HostBridge(i, b), "_PRT") => {
                let br = self.bridge(i, b)?;
                let mut entries = Vec::new();
                for s in br.slots.iter().filter_map(|s| self.io.slot(*s)) {
                    for pin in 0..4u64 {
                        entries.push(Package(vec![
                            Integer(u64::from(s.device_number) << 16 | 0xFFFF),
                            Integer(pin),
                            Integer(0),
                            Integer(u64::from(s.gsi.0)),
                        ]));
                    }
                }
                Package(entries)
            }
            (NodeKind::HostBridge(i, _), "_PXM") => Integer(attached(i)),
            (NodeKind::Slot(s), "_ADR") => {
                Integer(u64::from(self.io.slot(s)?.device_number) << 16 | 0xFFFF)
            }
            (NodeKind::Slot(s), "_SUN") => Integer(u64::from(s.0)),
            (NodeKind::Slot(s), "_STA") => {
                let slot = self.io.slot(s)?;
                // A slot of an I/O subsystem that is not in the machine holds nothing the
                // OS could reach (a card may wait in it for the module to go in).
                let inserted = self
                    .io
                    .subsystem(slot.subsystem)
                    .is_some_and(|x| x.state != SubsystemState::Absent);
                Integer(
                    match (
                        slot.card.is_some() && inserted,
                        slot.powered && sub_on(slot.subsystem),
                    ) {
                        (true, true) => PRESENT,
                        (true, false) => 0x01,
                        (false, _) => 0,
                    },
                )
            }
            (NodeKind::IoSapic(_), "_HID") => Str("ACPI0009".into()),
            (NodeKind::IoSapic(i), "_UID") => Integer(u64::from(i.0)),
            (NodeKind::IoSapic(i), "_STA") => sta(sub_on(i)),
            (NodeKind::IoSapic(i), "_GSB") => {
                Integer(u64::from(self.io.subsystem(i)?.sapic.gsi_base))
            }
            (NodeKind::IoSapic(i), "_CRS") => Buffer(resources::encode(&[Resource::Memory {
                base: self.io.subsystem(i)?.sapic.base,
                len: io_subsystem::sapic::REGISTER_BYTES,
                producer: false,
            }])),
            (NodeKind::IoSapic(i), "_MAT") => {
                Buffer(tables::iosapic_structure(&self.sapic_entry(i)?))
            }
            (NodeKind::IoSapic(i), "_PXM") => Integer(attached(i)),
            _ => return None,
        };
        Some(v)
    }

    /// The paths of the children of the node at `path`, in namespace order
    /// (`AcpiGetNextObject`); empty if there is no such node.
    pub fn children(&self, path: &str) -> Vec<String> {
        let norm = normalise(path);
        let Some(i) = self.namespace.nodes().iter().position(|n| n.path == norm) else {
            return Vec::new();
        };
        self.namespace
            .children(i)
            .map(|(_, n)| n.path.clone())
            .collect()
    }

    /// The value of the object at `path`, without side effects (`None` for methods that act).
    pub fn read(&self, path: &str) -> Option<AcpiValue> {
        let norm = normalise(path);
        let (parent, name) = norm.rsplit_once('.')?;
        let node = self.namespace.find(parent)?;
        self.object(node.kind, name)
    }

    fn bridge(&self, i: IoSubsystemId, b: u8) -> Option<&io_subsystem::fabric::Bridge> {
        self.io.subsystem(i)?.bridges.get(usize::from(b))
    }

    fn chipset_bus(&self, c: CellId) -> Option<u8> {
        self.io.chipset().get(c.index()).map(|f| f.bdf.bus)
    }

    fn cell_memory(&self, c: CellId) -> (u64, u64) {
        let g = self.machine.geometry();
        self.machine
            .address_map()
            .cell_range(c)
            .map_or((0, g.total_bytes), |(b, l)| (b.raw(), l))
    }

    fn cpu_entry(&self, c: CpuId) -> Option<CpuEntry> {
        let cpu = self.machine.cpu(c)?;
        Some(CpuEntry {
            uid: c.0,
            lsapic: cpu.lsapic,
            enabled: cpu.state != CpuState::Absent,
            proximity: u32::from(cpu.cell.0),
        })
    }

    fn sapic_entry(&self, i: IoSubsystemId) -> Option<IoSapicEntry> {
        let s = self.io.subsystem(i)?;
        Some(IoSapicEntry {
            id: i.0 as u8,
            gsi_base: s.sapic.gsi_base,
            address: s.sapic.base,
        })
    }

    /// The MADT as it stands: every CPU (enabled if present), every working IO SAPIC.
    pub fn madt(&self) -> Vec<u8> {
        let cpus: Vec<CpuEntry> = self
            .machine
            .cpus()
            .iter()
            .filter_map(|c| self.cpu_entry(c.id))
            .collect();
        let sapics: Vec<IoSapicEntry> = self
            .io
            .sapic_holders()
            .iter()
            .filter(|s| s.state.is_powered())
            .filter_map(|s| self.sapic_entry(s.id))
            .collect();
        tables::madt(&cpus, &sapics)
    }

    /// The FADT: where the SCI is wired.
    pub fn fadt(&self) -> Vec<u8> {
        tables::fadt(
            u16::try_from(self.io.sci_gsi().0).unwrap_or(u16::MAX),
            self.mailbox_base,
        )
    }

    /// The SRAT: every CPU, and every cell's memory with its proximity domain (hot-pluggable);
    /// with interleaved memory, one range in domain 0 that is not hot-pluggable.
    pub fn srat(&self) -> Vec<u8> {
        let cpus: Vec<CpuEntry> = self
            .machine
            .cpus()
            .iter()
            .filter_map(|c| self.cpu_entry(c.id))
            .collect();
        let memory: Vec<MemoryEntry> = match self.machine.address_map().mode() {
            MemoryMode::PerCell => self
                .machine
                .cells()
                .iter()
                .map(|c| {
                    let (base, len) = self.cell_memory(c.id);
                    MemoryEntry {
                        proximity: u32::from(c.id.0),
                        base,
                        len,
                        enabled: c.memory_online(),
                        hotpluggable: true,
                    }
                })
                .collect(),
            MemoryMode::Interleaved => vec![MemoryEntry {
                proximity: 0,
                base: 0,
                len: self.machine.geometry().total_bytes,
                enabled: self.machine.cells().iter().all(|c| c.memory_online()),
                hotpluggable: false,
            }],
        };
        tables::srat(&cpus, &memory)
    }

    /// The SLIT: distances between cells.
    pub fn slit(&self) -> Vec<u8> {
        let n = self.machine.cells().len();
        let lat = self.machine.latency_model();
        let rows: Vec<Vec<u8>> = (0..n)
            .map(|a| {
                (0..n)
                    .map(|b| lat.distance(CellId(a as u16), CellId(b as u16)))
                    .collect()
            })
            .collect();
        tables::slit(&rows)
    }

    /// The DSDT as it stands (see [`crate::aml`]).
    pub fn dsdt(&self) -> Vec<u8> {
        crate::aml::dsdt(self)
    }
}
