//! Interrupts: IO SAPIC programming, IRQ descriptors with affinity, vectors (SPEC OS-CPU-4,
//! OS-IO-3, HW-6).
//!
//! Each device interrupt has a descriptor: its GSI, the IO SAPIC and entry serving it (from
//! `_GSB`/`_CRS` and the SAPIC's version register), its vector, the CPUs it may go to and the
//! CPU it goes to now. The entry is programmed with memory-mapped writes through the
//! platform (`IOREGSEL`/`IOWIN`), as the CPU doing it; the handler EOIs through the SAPIC's
//! EOI register.

use crate::hw::Cx;
use sim_core::abi::sapic;
use sim_core::{CpuId, LsapicId, SimTime};

use crate::cpumask::{CpuMask, LogicalCpu};
use crate::hw::{load, store};

/// The first vector handed to devices.
pub const FIRST_DEVICE_VECTOR: u8 = 0x30;
/// The last vector handed to devices.
pub const LAST_DEVICE_VECTOR: u8 = 0xEF;
/// IPI: reschedule.
pub const RESCHEDULE_VECTOR: u8 = 0xFD;
/// IPI: run the queued cross-calls (TLB shootdown and friends).
pub const CALL_FUNCTION_VECTOR: u8 = 0xFE;

/// Number of redirection entries of the IO SAPIC at `base` (version register, bits 23:16
/// hold the highest entry), read by `cpu`.
pub fn sapic_entries(cx: &mut Cx<'_>, t: &mut SimTime, cpu: CpuId, base: u64) -> u32 {
    store(cx, t, cpu, base + sapic::IOREGSEL, 0x01);
    let v = load(cx, t, cpu, base + sapic::IOWIN);
    if v == u64::MAX {
        0
    } else {
        ((v >> 16) & 0xFF) as u32 + 1
    }
}

/// `cpu` programs entry `entry` of the IO SAPIC at `base`: destination first (high word),
/// then vector, level trigger and mask (low word).
#[allow(clippy::too_many_arguments)]
pub fn program_rte(
    cx: &mut Cx<'_>,
    t: &mut SimTime,
    cpu: CpuId,
    base: u64,
    entry: u32,
    vector: u8,
    dest: LsapicId,
    masked: bool,
) {
    let e = u64::from(entry);
    store(cx, t, cpu, base + sapic::IOREGSEL, 0x11 + 2 * e);
    store(
        cx,
        t,
        cpu,
        base + sapic::IOWIN,
        u64::from(dest.id) << 24 | u64::from(dest.eid) << 16,
    );
    store(cx, t, cpu, base + sapic::IOREGSEL, 0x10 + 2 * e);
    let mask = if masked {
        u64::from(sapic::rte::MASK)
    } else {
        0
    };
    store(
        cx,
        t,
        cpu,
        base + sapic::IOWIN,
        u64::from(vector) | u64::from(sapic::rte::LEVEL) | mask,
    );
}

/// `cpu` signals end of interrupt for `vector` to the IO SAPIC at `base`.
pub fn eoi(cx: &mut Cx<'_>, t: &mut SimTime, cpu: CpuId, base: u64, vector: u8) {
    store(cx, t, cpu, base + sapic::EOI, u64::from(vector));
}

/// One device interrupt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrqDesc {
    /// Its GSI (the IRQ number).
    pub gsi: u32,
    /// The interrupt vector the CPU takes it on.
    pub vector: u8,
    /// Register block of its IO SAPIC.
    pub sapic_base: u64,
    /// Entry within it.
    pub entry: u32,
    /// CPUs it may be routed to.
    pub affinity: CpuMask,
    /// Where it goes now.
    pub target: LogicalCpu,
    /// Whose handler runs.
    pub handler: IrqHandler,
    /// Handler runs.
    pub handled: u64,
    /// Times it was re-routed.
    pub rerouted: u64,
    /// Freed by its driver (`free_irq`): its entry is masked; an interrupt still arriving
    /// is acknowledged and dropped. The vector stays with the GSI for its next user.
    pub freed: bool,
    /// Interrupts in a row that no handler claimed (`note_interrupt`).
    pub unhandled: u32,
    /// The messages its last handler run served, as the hardware tagged them (what a
    /// software resend of that interrupt would replay).
    pub last_served: Vec<sim_core::MsgTag>,
}

/// What an IRQ's handler serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqHandler {
    /// A card's driver (its index among the driver's cards).
    Card(usize),
    /// The ACPI SCI: firmware's notifications (Linux's `acpi_irq`).
    Sci,
}

/// Unclaimed interrupts in a row after which the kernel disables the line ("nobody cared":
/// a level interrupt no handler acknowledges would otherwise keep its CPU busy forever).
pub const NOBODY_CARED: u32 = 1000;

/// Every device interrupt, by vector.
#[derive(Clone, Debug)]
pub struct IrqTable {
    descs: Vec<IrqDesc>,
    by_vector: Vec<Option<usize>>,
    next_vector: u8,
}

impl Default for IrqTable {
    fn default() -> Self {
        IrqTable {
            descs: Vec::new(),
            by_vector: vec![None; 256],
            next_vector: FIRST_DEVICE_VECTOR,
        }
    }
}

impl IrqTable {
    /// A free vector, if any is left.
    pub fn alloc_vector(&mut self) -> Option<u8> {
        (self.next_vector <= LAST_DEVICE_VECTOR).then(|| {
            let v = self.next_vector;
            self.next_vector += 1;
            v
        })
    }

    /// Adds a descriptor; returns its index.
    pub fn add(&mut self, d: IrqDesc) -> usize {
        let i = self.descs.len();
        self.by_vector[usize::from(d.vector)] = Some(i);
        self.descs.push(d);
        i
    }

    /// The descriptors.
    pub fn descs(&self) -> &[IrqDesc] {
        &self.descs
    }

    /// Descriptor `i`.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut IrqDesc> {
        self.descs.get_mut(i)
    }

    /// The descriptor of `vector`.
    pub fn by_vector(&self, vector: u8) -> Option<usize> {
        self.by_vector[usize::from(vector)]
    }

    /// Live descriptors routed to `cpu`.
    pub fn routed_to(&self, cpu: LogicalCpu) -> Vec<usize> {
        (0..self.descs.len())
            .filter(|&i| self.descs[i].target == cpu && !self.descs[i].freed)
            .collect()
    }

    /// Frees descriptor `i` (`free_irq`).
    pub fn free(&mut self, i: usize) {
        if let Some(d) = self.descs.get_mut(i) {
            d.freed = true;
        }
    }

    /// A freed descriptor of `gsi`, to be used again.
    pub fn freed_of(&self, gsi: u32) -> Option<usize> {
        self.descs.iter().position(|d| d.freed && d.gsi == gsi)
    }

    /// Descriptors in use.
    pub fn live(&self) -> usize {
        self.descs.iter().filter(|d| !d.freed).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_handed_out_once_and_found_again() {
        let mut t = IrqTable::default();
        let v = t.alloc_vector().unwrap();
        assert_eq!(v, FIRST_DEVICE_VECTOR);
        let i = t.add(IrqDesc {
            gsi: 9,
            vector: v,
            sapic_base: 0x1000,
            entry: 3,
            affinity: CpuMask::new(4),
            target: LogicalCpu(2),
            handler: IrqHandler::Card(0),
            handled: 0,
            rerouted: 0,
            freed: false,
            unhandled: 0,
            last_served: Vec::new(),
        });
        assert_eq!(t.by_vector(v), Some(i));
        assert_eq!(t.routed_to(LogicalCpu(2)), vec![i]);
        assert!(t.routed_to(LogicalCpu(1)).is_empty());
        let n = (LAST_DEVICE_VECTOR - FIRST_DEVICE_VECTOR) as usize;
        assert!((0..n).all(|_| t.alloc_vector().is_some()));
        assert_eq!(t.alloc_vector(), None, "the device vectors are exhausted");
    }
}
