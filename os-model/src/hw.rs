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

/// `cpu` loads the word at `addr`; `t` advances by the latency.
pub fn load(
    p: &mut Platform,
    probe: &mut PlatformProbe,
    t: &mut SimTime,
    cpu: CpuId,
    addr: u64,
) -> u64 {
    match p.load(*t, cpu, PhysAddr::new(addr), probe) {
        Ok((v, lat)) => {
            *t += lat;
            v
        }
        Err(_) => ALL_ONES,
    }
}

/// `cpu` stores `v` at `addr`; `t` advances by the latency.
pub fn store(
    p: &mut Platform,
    probe: &mut PlatformProbe,
    t: &mut SimTime,
    cpu: CpuId,
    addr: u64,
    v: u64,
) {
    if let Ok(lat) = p.store(*t, cpu, PhysAddr::new(addr), v, probe) {
        *t += lat;
    }
}

/// Latency charged for one SAL configuration call.
const CONFIG_NS: u64 = acpi_model::platform::UNCACHED_NS;

/// `cpu` reads configuration register `off` of `bdf` (SAL_PCI_CONFIG_READ).
pub fn cfg_read(
    p: &mut Platform,
    probe: &mut PlatformProbe,
    t: &mut SimTime,
    cpu: CpuId,
    bdf: Bdf,
    off: u16,
) -> u32 {
    let v = p.config_read(*t, cpu, bdf, off, probe).unwrap_or(u32::MAX);
    *t += sim_core::SimDuration::from_nanos(CONFIG_NS);
    v
}

/// `cpu` writes configuration register `off` of `bdf` (SAL_PCI_CONFIG_WRITE).
pub fn cfg_write(
    p: &mut Platform,
    probe: &mut PlatformProbe,
    t: &mut SimTime,
    cpu: CpuId,
    bdf: Bdf,
    off: u16,
    v: u32,
) {
    let _ = p.config_write(*t, cpu, bdf, off, v, probe);
    *t += sim_core::SimDuration::from_nanos(CONFIG_NS);
}
