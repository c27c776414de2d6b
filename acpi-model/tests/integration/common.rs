//! A default platform with a few cards, booted, with every checker.

use acpi_model::{Platform, PlatformConfig, PlatformProbe};
use cells::cpu::CpuEvent;
use io_subsystem::{DeviceConfig, DeviceKind, IoConfig};
use sim_core::{CpuId, SimTime, Trace, TraceLevel};

pub(crate) fn card(subsystem: u16, slot: u8, kind: DeviceKind, irq_cpu: u32) -> DeviceConfig {
    DeviceConfig {
        subsystem,
        bridge: 0,
        slot,
        kind,
        bar_size: None,
        irq_cpu: Some(irq_cpu),
        period_ns: Some(2000),
        capacity: None,
        latency_ns: None,
        bandwidth: None,
    }
}

pub(crate) fn config() -> PlatformConfig {
    PlatformConfig {
        io: IoConfig {
            device: vec![
                card(0, 1, DeviceKind::Nic, 1),
                card(1, 0, DeviceKind::Disk, 5),
                card(3, 2, DeviceKind::Nic, 13),
            ],
            ..IoConfig::default()
        },
        ..PlatformConfig::default()
    }
}

pub(crate) fn booted() -> (Platform, PlatformProbe) {
    let mut p = Platform::new(&config()).unwrap();
    let mut probe =
        PlatformProbe::with_checkers(Trace::new(TraceLevel::Info, 10_000), p.machine(), true);
    let cpus: Vec<CpuId> = p.machine().cpus().iter().map(|c| c.id).collect();
    for c in cpus {
        p.cpu_event(SimTime::ZERO, c, CpuEvent::Start, &mut probe)
            .unwrap();
    }
    (p, probe)
}

pub(crate) fn t(n: u64) -> SimTime {
    SimTime::from_nanos(n)
}
