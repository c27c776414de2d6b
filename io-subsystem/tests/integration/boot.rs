//! Firmware power-on: layout, BAR placement, identities, chipset functions.

use io_subsystem::pci::{BarKind, reg};
use io_subsystem::{DeviceId, IoConfig, IoFabric, IoOutcome};
use sim_core::{Bdf, Gsi, SlotId};

use crate::common::*;

#[test]
fn firmware_places_every_card_inside_its_bridge_windows() {
    let io = fabric();
    assert_eq!(io.slots().len(), 32);
    let nic = io.device(DeviceId(0)).unwrap();
    assert_eq!(nic.slot, SlotId(2));
    assert_eq!(
        nic.bdf,
        Bdf {
            segment: 0,
            bus: 0,
            device: 2,
            function: 0
        }
    );
    assert_eq!(nic.gsi, Gsi(1));
    let disk = io.device(DeviceId(1)).unwrap();
    assert_eq!(disk.slot, SlotId(9));
    assert_eq!(disk.bdf.bus, 32);
    assert_eq!(disk.gsi, Gsi(48));
    for d in [nic, disk] {
        assert!(d.is_live());
        let bridge = &io.subsystem(d.subsystem).unwrap().bridges[0];
        let decoded = d.decoded();
        assert_eq!(decoded.len(), 2, "memory and I/O decode on");
        for (kind, base, size) in decoded {
            let (wb, wl) = match kind {
                BarKind::Mem64 => bridge.mmio_window,
                BarKind::Io => bridge.io_window,
            };
            assert!(base >= wb && base + size <= wb + wl, "{kind:?} {base:#x}");
            assert_eq!(base % size, 0, "naturally aligned");
        }
        assert_eq!(d.config().read(reg::INTERRUPT) & 0xFF, d.gsi.0 & 0xFF);
    }
}

#[test]
fn config_space_identifies_cards_and_chipset_functions() {
    let mut io = fabric();
    let mut env = Env::new();
    let nic = io.device(DeviceId(0)).unwrap().bdf;
    assert_eq!(
        io.config_read(t(0), CPU, nic, reg::ID, &mut env),
        0x1010_8086
    );
    let empty = Bdf { device: 1, ..nic };
    assert_eq!(
        io.config_read(t(0), CPU, empty, reg::ID, &mut env),
        u32::MAX
    );
    let cell3 = Bdf {
        segment: 0,
        bus: 0xFC,
        device: 0,
        function: 0,
    };
    assert_eq!(
        io.config_read(t(0), CPU, cell3, reg::ID, &mut env),
        0x0CC5_1033
    );
    assert_eq!(io.config_read(t(0), CPU, cell3, 0x40, &mut env), 3);
    io.config_write(t(0), CPU, cell3, 0x44, 0xabcd, &mut env);
    assert_eq!(io.config_read(t(0), CPU, cell3, 0x44, &mut env), 0xabcd);
    assert!(
        env.violations.is_empty(),
        "probing an empty slot's id is legal: {:?}",
        env.violations.kept()
    );
    io.set_chipset_present(t(1), 3, false, &mut env);
    assert_eq!(io.config_read(t(2), CPU, cell3, 0x40, &mut env), u32::MAX);
    assert_eq!(env.violations.count("CHK-1"), 1);
    assert!(
        env.violations.kept()[0]
            .message
            .contains("chipset function of cell3")
    );
}

#[test]
fn a_window_too_small_for_the_cards_at_boot_is_a_config_error() {
    let mut big = card(1, 0, io_subsystem::DeviceKind::Nic);
    big.bar_size = Some(sim_core::ByteSize(512 << 20));
    let cfg = IoConfig {
        device: vec![big],
        ..IoConfig::default()
    };
    let e = IoFabric::new(&cfg, &AROUND, &[true; 8]).unwrap_err();
    assert_eq!(e.field, "device[0]");
    assert!(e.message.contains("needs 0x20000000 bytes of MMIO"), "{e}");
}

#[test]
fn empty_subsystem_slots_are_absent() {
    let cfg = IoConfig {
        present: Some(vec![0, 1]),
        ..IoConfig::default()
    };
    let mut io = IoFabric::new(&cfg, &AROUND, &[true; 8]).unwrap();
    let mut env = Env::new();
    let bdf = Bdf {
        segment: 0,
        bus: 16 * 5,
        device: 1,
        function: 0,
    };
    assert_eq!(io.config_read(t(0), CPU, bdf, 8, &mut env), u32::MAX);
    assert!(matches!(
        env.events.last(),
        Some(io_subsystem::IoEvent::Access {
            outcome: IoOutcome::SubsystemDown,
            ..
        })
    ));
}
