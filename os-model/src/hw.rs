//! The OS's instructions that touch hardware: 64-bit loads and stores (memory or MMIO),
//! SAL configuration reads and writes, each issued by one CPU through the platform and each
//! advancing that CPU's clock by the access's latency.
//!
//! An access the platform refuses (the CPU is not running, the address is nothing) reads as
//! all-ones and writes nothing, exactly what software sees on real hardware; the checkers
//! have already been told.

use acpi_model::{Platform, PlatformProbe};
use sim_core::abi::ALL_ONES;
use sim_core::{Bdf, CpuId, PhysAddr, SimTime};

/// The machine as kernel code reaches it: the platform, and the probe that watches every
/// access (trace and hardware checkers). One is passed down instead of the two.
pub struct Cx<'a> {
    /// Hardware and firmware.
    pub p: &'a mut Platform,
    /// The trace and the hardware checkers.
    pub probe: &'a mut PlatformProbe,
}

impl<'a> Cx<'a> {
    /// The context of `p` watched by `probe`.
    pub fn new(p: &'a mut Platform, probe: &'a mut PlatformProbe) -> Self {
        Cx { p, probe }
    }
}

/// `cpu` loads the word at `addr`; `t` advances by the latency.
pub fn load(cx: &mut Cx<'_>, t: &mut SimTime, cpu: CpuId, addr: u64) -> u64 {
    match cx.p.load(*t, cpu, PhysAddr::new(addr), cx.probe) {
        Ok((v, lat)) => {
            *t += lat;
            v
        }
        Err(_) => ALL_ONES,
    }
}

/// `cpu` stores `v` at `addr`; `t` advances by the latency.
pub fn store(cx: &mut Cx<'_>, t: &mut SimTime, cpu: CpuId, addr: u64, v: u64) {
    if let Ok(lat) = cx.p.store(*t, cpu, PhysAddr::new(addr), v, cx.probe) {
        *t += lat;
    }
}

/// Latency charged for one SAL configuration call.
const CONFIG_NS: u64 = acpi_model::platform::UNCACHED_NS;

/// `cpu` reads configuration register `off` of `bdf` (SAL_PCI_CONFIG_READ).
pub fn cfg_read(cx: &mut Cx<'_>, t: &mut SimTime, cpu: CpuId, bdf: Bdf, off: u16) -> u32 {
    let v =
        cx.p.config_read(*t, cpu, bdf, off, cx.probe)
            .unwrap_or(u32::MAX);
    *t += sim_core::SimDuration::from_nanos(CONFIG_NS);
    v
}

/// `cpu` writes configuration register `off` of `bdf` (SAL_PCI_CONFIG_WRITE).
pub fn cfg_write(cx: &mut Cx<'_>, t: &mut SimTime, cpu: CpuId, bdf: Bdf, off: u16, v: u32) {
    let _ = cx.p.config_write(*t, cpu, bdf, off, v, cx.probe);
    *t += sim_core::SimDuration::from_nanos(CONFIG_NS);
}
