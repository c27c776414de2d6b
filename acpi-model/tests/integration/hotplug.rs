//! Bad platform configurations are refused with the item named; cell power keeps the chipset
//! functions in step.

use acpi_model::{Platform, PlatformConfig};
use cells::cell::CellEvent;
use io_subsystem::pci::reg;
use io_subsystem::{DeviceKind, IoConfig};
use sim_core::{Bdf, ByteSize, CellId, CpuId};

use crate::common::*;

fn error(cfg: PlatformConfig) -> String {
    Platform::new(&cfg).err().unwrap().to_string()
}

#[test]
fn bad_configurations_name_the_item() {
    let mut two = config();
    two.io.device.push(card(1, 0, DeviceKind::Nic, 0));
    assert!(
        error(two).starts_with(
            "io.device[3].slot: I/O subsystem 1 bridge 0 slot 0 already holds device[1]"
        )
    );

    let gsi = PlatformConfig {
        io: IoConfig {
            gsi_bases: Some(vec![0, 10, 48, 72, 96, 120, 144, 168]),
            ..IoConfig::default()
        },
        ..PlatformConfig::default()
    };
    assert!(error(gsi).starts_with("io.gsi_bases[1]: GSIs 10..34 of I/O subsystem 1 overlap"));

    let mut small = config();
    small.io.mmio = ByteSize(1 << 20);
    small.io.device[2].bar_size = Some(ByteSize(2 << 20));
    assert!(error(small).starts_with("io.device[2]: the nic card in I/O subsystem 3"));

    let mut nocpu = config();
    nocpu.io.device[0].irq_cpu = Some(40);
    assert!(error(nocpu).starts_with("io.device[0].irq_cpu: cpu40 is no CPU"));

    let mut absent = config();
    absent.machine.present_cells = Some(vec![0, 1, 2]);
    assert_eq!(
        error(absent),
        "io.device[2].irq_cpu: cpu13 is on cell 3, which is not present at start"
    );

    let mut machine = config();
    machine.machine.cells = 0;
    assert!(error(machine).starts_with("machine.cells:"));
}

#[test]
fn the_chipset_function_follows_its_cell() {
    let (mut p, mut probe) = booted();
    let ccs = Bdf {
        segment: 0,
        bus: 0xFF - 6,
        device: 0,
        function: 0,
    };
    assert_eq!(
        p.config_read(t(0), CpuId(0), ccs, 0x40, &mut probe)
            .unwrap(),
        6
    );
    for c in 24..28 {
        p.machine_mut()
            .flush_cache(t(1), CpuId(c), &mut probe)
            .unwrap();
        p.cpu_event(t(1), CpuId(c), cells::cpu::CpuEvent::Halt, &mut probe)
            .unwrap();
    }
    p.cell_event(t(2), CellId(6), CellEvent::PowerOff, &mut probe)
        .unwrap();
    assert_eq!(
        p.config_read(t(3), CpuId(0), ccs, reg::ID, &mut probe)
            .unwrap(),
        u32::MAX
    );
    assert!(
        probe.violations.is_empty(),
        "a vendor-id probe is legal: {:?}",
        probe.violations.kept()
    );
    p.cell_event(t(4), CellId(6), CellEvent::PowerOn, &mut probe)
        .unwrap();
    assert_eq!(
        p.config_read(t(5), CpuId(0), ccs, reg::ID, &mut probe)
            .unwrap(),
        0x0CC5_1033
    );
}
