//! Small machines and helpers shared by the tests.

use cells::config::{CacheConfig, MachineConfig, Protocol};
use cells::{Machine, Probe};
use sim_core::{ByteSize, CpuId, PhysAddr, SimTime, Trace, TraceLevel};

/// 4 cells x 2 CPUs, 1 MiB per cell, 4 KiB pages, a 4 KiB 2-way cache with 64-byte lines: small
/// enough that evictions happen all the time.
pub(crate) fn small_config(protocol: Protocol) -> MachineConfig {
    MachineConfig {
        cells: 4,
        cpus_per_cell: 2,
        memory_per_cell: ByteSize(1 << 20),
        page_size: ByteSize(4 << 10),
        protocol,
        cache: CacheConfig {
            size: ByteSize(4 << 10),
            ways: 2,
            line: ByteSize(64),
        },
        ..MachineConfig::default()
    }
}

/// A machine with every present CPU started, and a probe with CHK-1 and CHK-2 (deep).
pub(crate) fn booted(cfg: &MachineConfig) -> (Machine, Probe) {
    let mut m = Machine::new(cfg).unwrap();
    let mut p = Probe::with_hw_checkers(Trace::new(TraceLevel::Info, 100_000), &m, true);
    let ids: Vec<CpuId> = m
        .cpus()
        .iter()
        .filter(|c| c.state == cells::CpuState::PresentHalted)
        .map(|c| c.id)
        .collect();
    for c in ids {
        m.cpu_event(SimTime::ZERO, c, cells::cpu::CpuEvent::Start, &mut p)
            .unwrap();
    }
    (m, p)
}

/// Address of word `w` of cell `cell`'s memory at byte offset `off`.
pub(crate) fn addr_on(m: &Machine, cell: u16, off: u64) -> PhysAddr {
    let (base, _) = m.address_map().cell_range(sim_core::CellId(cell)).unwrap();
    base.checked_add(off).unwrap()
}

/// Simulated time `n` ns.
pub(crate) fn t(n: u64) -> SimTime {
    SimTime::from_nanos(n)
}
