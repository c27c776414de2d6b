//! CHK-7: BARs never overlap and stay inside their bridge windows.

use io_subsystem::pci::reg;
use io_subsystem::{DeviceId, IoConfig, IoFabric};
use sim_core::Entity;

use crate::common::*;

fn two_nics() -> IoFabric {
    let cfg = IoConfig {
        device: vec![
            card(0, 0, io_subsystem::DeviceKind::Nic),
            card(0, 3, io_subsystem::DeviceKind::Nic),
        ],
        ..IoConfig::default()
    };
    IoFabric::new(&cfg, &AROUND, &[true; 8]).unwrap()
}

#[test]
fn an_overlapping_bar_is_reported_naming_both_devices() {
    let mut io = two_nics();
    let mut env = Env::new();
    let first = bar0(&io, DeviceId(0)).raw();
    let (a, b) = (
        io.device(DeviceId(0)).unwrap().bdf,
        io.device(DeviceId(1)).unwrap().bdf,
    );
    io.config_write(t(0), CPU, b, reg::BAR0, (first + 0x1000) as u32, &mut env);
    io.config_write(t(0), CPU, b, reg::BAR0 + 4, (first >> 32) as u32, &mut env);
    let v = env
        .violations
        .kept()
        .iter()
        .find(|v| v.checker.code == "CHK-7")
        .unwrap();
    assert_eq!((v.agent, v.target), (Entity::Pci(a), Entity::Pci(b)));
    assert!(v.message.contains("overlaps"), "{}", v.message);
}

#[test]
fn a_bar_outside_its_bridge_window_is_reported() {
    let mut io = two_nics();
    let mut env = Env::new();
    let b = io.device(DeviceId(1)).unwrap().bdf;
    io.config_write(t(0), CPU, b, reg::BAR0, 0x1000_0000, &mut env);
    io.config_write(t(0), CPU, b, reg::BAR0 + 4, 0, &mut env);
    assert!(
        env.violations
            .kept()
            .iter()
            .any(|v| v.message.contains("outside its bridge's window"))
    );
}

#[test]
fn disabling_decode_before_moving_a_bar_is_clean() {
    let mut io = two_nics();
    let mut env = Env::new();
    let b = io.device(DeviceId(1)).unwrap().bdf;
    io.config_write(t(0), CPU, b, reg::COMMAND, 0, &mut env);
    let first = bar0(&io, DeviceId(0)).raw();
    io.config_write(t(0), CPU, b, reg::BAR0, first as u32, &mut env);
    io.config_write(t(0), CPU, b, reg::BAR0 + 4, (first >> 32) as u32, &mut env);
    io.config_write(
        t(0),
        CPU,
        b,
        reg::BAR0,
        (first + (1 << 20)) as u32,
        &mut env,
    );
    io.config_write(t(0), CPU, b, reg::COMMAND, 3, &mut env);
    env.audit(&io);
    assert!(env.violations.is_empty(), "{:?}", env.violations.kept());
}
