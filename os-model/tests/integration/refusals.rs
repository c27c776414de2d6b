//! Every refusal of a hot-plug request names the real reason — kernel memory on the node,
//! interleaved memory, the last CPU, a bound task, boot not finished, an operation in
//! progress — and changes nothing (`Os::request_state`, part by part). And a job that finds
//! no memory gives back every page it took.

use acpi_model::NotifyCode;
use acpi_model::hw::MachineConfig;
use acpi_model::hw::MemoryMode;
use os_model::config::MemConfig;
use os_model::memhotplug::MemError;
use os_model::pcihp::{PciError, PciOpKind};
use os_model::{BoundTask, HotplugError, OpKind, OsConfig, Trigger};
use sim_core::{ByteSize, SimDuration};

use crate::common::{Sim, ms, some_cards};

fn sim(machine: MachineConfig, cfg: &OsConfig) -> Sim {
    Sim::new(machine, some_cards(2), cfg, &[], 3)
}

/// The parts of the request state a refusal must leave alone, compared at once.
fn unchanged(before: &[(&'static str, u64)], s: &Sim) {
    let after = s.os.request_state();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "a refusal changed {}", b.0);
    }
}

/// Runs until firmware's pending notifications were taken (by the SCI's handler).
fn take_notifications(s: &mut Sim) {
    let limit = s.now + SimDuration::from_millis(1);
    while s.p.firmware().pending().next().is_some() && s.now < limit {
        let next = s.now + SimDuration::from_micros(20);
        s.run_to(next);
    }
}

/// The only parts of the state a refusal at notification time is checked on: the CPU and
/// memory hot-plug machinery (the workload goes on changing memory meanwhile).
fn hotplug_parts(s: &Sim) -> Vec<(&'static str, u64)> {
    s.os.request_state()
        .into_iter()
        .filter(|(n, _)| n.contains("hot-plug") || *n == "CPU maps")
        .collect()
}

#[test]
fn before_boot_is_over_requests_are_refused_and_notifications_wait() {
    let mut s = sim(MachineConfig::default(), &OsConfig::default());
    assert!(
        s.os.booted_at().is_none(),
        "boot brings 31 CPUs up one by one"
    );
    let now = s.now;
    let before = s.os.request_state();
    let e =
        s.os.request(now, OpKind::Down, 5, Trigger::User)
            .unwrap_err();
    assert_eq!(e, HotplugError::Booting { cpu: 5 });
    assert_eq!(e.errno(), "EBUSY");
    assert!(e.to_string().contains("boot has not finished"), "{e}");
    let e = s.os.mem_request(now, 12, false).unwrap_err();
    assert_eq!(e, MemError::Booting);
    let e =
        s.os.pci_request(now, 1, PciOpKind::Disable, Trigger::User)
            .unwrap_err();
    assert_eq!(e, PciError::Booting { slot: 1 });
    unchanged(&before, &s);
    assert_eq!(s.os.refusals().len(), 3);
    // An eject request raised now waits in firmware until boot is over, then is taken.
    let path = "\\_SB_.CL02";
    s.p.notify(now, path, NotifyCode::EjectRequest, &mut s.probe)
        .unwrap();
    s.run_to(ms(1));
    assert!(s.os.booted_at().is_none());
    assert!(s.p.firmware().pending().next().is_some(), "still pending");
    assert!(s.os.mem_hotplug().is_idle());
    s.run_to(ms(14));
    assert!(s.os.booted_at().is_some());
    let op = &s.os.mem_hotplug().done()[0];
    assert!(op.requested > ms(1), "taken once boot was over: {op:?}");
    assert!(matches!(op.result, Some(Ok(()))), "{op:?}");
    assert_eq!(
        op.steps[0].note, "4 CPUs",
        "the cell's CPUs went down with it"
    );
}

#[test]
fn the_last_cpu_and_a_bound_task_are_refused_with_nothing_changed() {
    let cfg = OsConfig {
        bound: vec![BoundTask { cpu: 3 }],
        ..OsConfig::default()
    };
    let machine = MachineConfig {
        cells: 1,
        ..MachineConfig::default()
    };
    let mut s = sim(machine, &cfg);
    s.run_to(ms(2));
    let now = s.now;
    let before = s.os.request_state();
    let e =
        s.os.request(now, OpKind::Down, 3, Trigger::User)
            .unwrap_err();
    assert!(matches!(e, HotplugError::BoundTask { cpu: 3, .. }), "{e}");
    assert_eq!(e.errno(), "EBUSY");
    assert!(e.to_string().contains("hard-bound"), "{e}");
    unchanged(&before, &s);
    // Every other CPU goes: cpu3 is then the last online CPU.
    for c in [1, 2, 0] {
        s.os.request(now, OpKind::Down, c, Trigger::User).unwrap();
    }
    s.run_to(ms(8));
    assert_eq!(s.os.maps().online.weight(), 1);
    let now = s.now;
    let before = s.os.request_state();
    let e =
        s.os.request(now, OpKind::Down, 3, Trigger::User)
            .unwrap_err();
    assert!(matches!(e, HotplugError::LastOnline { cpu: 3 }), "{e}");
    assert!(e.to_string().contains("last online CPU"), "{e}");
    unchanged(&before, &s);
}

#[test]
fn a_cell_with_kernel_memory_is_refused_at_once_with_its_cpus_left_alone() {
    let mut s = sim(MachineConfig::default(), &OsConfig::default());
    s.run_to(ms(5));
    let before = hotplug_parts(&s);
    let now = s.now;
    let id =
        s.p.notify(now, "\\_SB_.CL00", NotifyCode::EjectRequest, &mut s.probe)
            .unwrap();
    take_notifications(&mut s);
    let r = s.os.refusals().last().unwrap().clone();
    assert_eq!(r.target, "\\_SB_.CL00");
    assert_eq!(
        r.cause,
        Some(id),
        "the refusal names the notification it refuses"
    );
    assert_eq!(r.errno, "EBUSY");
    assert!(r.error.contains("holds unmovable pages"), "{}", r.error);
    assert!(s.os.mem_hotplug().is_idle() && s.os.mem_hotplug().done().is_empty());
    assert_eq!(hotplug_parts(&s), before, "no CPU of cell 0 was taken down");
    // Firmware heard why: _OST(eject request, "in use").
    let ost = s.p.ost_log().last().unwrap();
    assert_eq!((ost.event, ost.status), (3, 0x81));
}

#[test]
fn an_interleaved_machine_refuses_every_cell_eject_with_that_reason() {
    let machine = MachineConfig {
        memory_mode: MemoryMode::Interleaved,
        ..MachineConfig::default()
    };
    let mut s = sim(machine, &OsConfig::default());
    s.run_to(ms(5));
    let scan = s.os.scan();
    assert_eq!(scan.memory.len(), 1, "one memory device for all of it");
    assert_eq!(scan.interleaved_memory().unwrap().path, "\\_SB_.MEMI");
    let before = hotplug_parts(&s);
    let now = s.now;
    s.p.notify(now, "\\_SB_.CL03", NotifyCode::EjectRequest, &mut s.probe)
        .unwrap();
    take_notifications(&mut s);
    let r = s.os.refusals().last().unwrap().clone();
    assert_eq!((r.target.as_str(), r.errno), ("\\_SB_.CL03", "EBUSY"));
    assert!(r.error.contains("interleaved"), "{}", r.error);
    assert_eq!(hotplug_parts(&s), before, "nothing was taken down");
    assert_eq!(s.p.ost_log().last().unwrap().status, 0x80);
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}

#[test]
fn a_request_on_something_an_operation_is_working_on_is_refused() {
    let cfg = OsConfig {
        memory: MemConfig {
            anon_pages: 32,
            ..MemConfig::default()
        },
        ..OsConfig::default()
    };
    let mut s = sim(MachineConfig::default(), &cfg);
    s.run_to(ms(5));
    let now = s.now;
    let id =
        s.p.notify(now, "\\_SB_.CL02", NotifyCode::EjectRequest, &mut s.probe)
            .unwrap();
    take_notifications(&mut s);
    let cur = s.os.mem_hotplug().current().unwrap();
    assert_eq!(
        cur.cause,
        Some(id),
        "the cell operation carries its notification"
    );
    let op = cur.id;
    let now = s.now;
    let before = s.os.request_state();
    // One of the cell's CPUs (logical 8 sits on cell 2), one of its blocks, the cell again.
    let e = s.os.request(now, OpKind::Up, 8, Trigger::User).unwrap_err();
    assert!(
        matches!(
            e,
            HotplugError::InProgress {
                cpu: 8,
                node: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains(&format!("memory operation {op}")),
        "{e}"
    );
    let e = s.os.mem_request(now, 16, false).unwrap_err();
    assert!(matches!(e, MemError::InProgress { .. }), "{e}");
    assert_eq!(e.errno(), "EBUSY");
    unchanged(&before, &s);
    let before = hotplug_parts(&s);
    s.p.notify(now, "\\_SB_.CL02", NotifyCode::EjectRequest, &mut s.probe)
        .unwrap();
    take_notifications(&mut s);
    let r = s.os.refusals().last().unwrap();
    assert_eq!(r.target, "\\_SB_.CL02");
    assert!(r.error.contains("in progress"), "{}", r.error);
    let queued_before = before.iter().find(|p| p.0 == "memory hot-plug operations");
    let queued_after = hotplug_parts(&s)
        .into_iter()
        .find(|p| p.0 == "memory hot-plug operations");
    assert_eq!(queued_before.copied(), queued_after, "nothing queued");
    // A second offline of a block whose offline is queued: refused, not queued twice.
    s.run_to(ms(20));
    let now = s.now;
    s.os.mem_request(now, 24, false).unwrap();
    let before = s.os.request_state();
    let e = s.os.mem_request(now, 24, false).unwrap_err();
    assert!(matches!(e, MemError::InProgress { .. }), "{e}");
    unchanged(&before, &s);
}

#[test]
fn a_job_that_finds_no_memory_gives_back_every_page_it_took() {
    // One small cell; every task takes a quarter of a block of anonymous memory.
    let machine = MachineConfig {
        cells: 1,
        cpus_per_cell: 2,
        memory_per_cell: ByteSize(32 << 20),
        ..MachineConfig::default()
    };
    let cfg = OsConfig {
        tasks_per_cpu: 1,
        memory: MemConfig {
            block_size: ByteSize(4 << 20),
            anon_pages: 200,
            ..MemConfig::default()
        },
        ..OsConfig::default()
    };
    let mut s = sim(machine, &cfg);
    s.run_to(ms(1));
    let mut tries = 0;
    loop {
        tries += 1;
        assert!(tries < 64, "memory never ran out");
        let before = s.os.vm().unwrap().digest();
        let tasks = s.os.tasks().len();
        if s.spawn(1) == 0 {
            assert_eq!(
                s.os.vm().unwrap().digest(),
                before,
                "a failed fork leaks nothing"
            );
            assert_eq!(s.os.tasks().len(), tasks);
            break;
        }
        let next = s.now + SimDuration::from_micros(50);
        s.run_to(next);
    }
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}

#[test]
fn a_notification_on_a_device_no_handler_takes_changes_nothing() {
    let mut s = sim(MachineConfig::default(), &OsConfig::default());
    s.run_to(ms(5));
    let before = s.os.request_state();
    let osts = s.p.ost_log().len();
    let now = s.now;
    // A PCI host bridge (PNP0A08): no scan handler of this OS takes it.
    s.p.notify(
        now,
        "\\_SB_.IO00.PCI0",
        NotifyCode::EjectRequest,
        &mut s.probe,
    )
    .unwrap();
    take_notifications(&mut s);
    // The hot-plug parts of the state (the workload goes on touching memory meanwhile).
    let parts = |st: [(&'static str, u64); 6]| [st[0], st[1], st[3], st[4]];
    assert_eq!(
        parts(s.os.request_state()),
        parts(before),
        "nothing changed"
    );
    assert!(s.os.mem_hotplug().is_idle() && s.os.pci_hotplug().is_idle());
    // The bridge has no _OST: the OS's "not supported" reaches no one.
    assert_eq!(s.p.ost_log().len(), osts);
}

/// The SCI is an interrupt: firmware's queue drives a level line on the system IO SAPIC (the
/// FADT's `SCI_INT`), the kernel routes it like any IRQ and takes the notifications in its
/// handler, on the CPU the entry names; a notification raised during boot waits in the masked
/// entry until the kernel routes the line at the end of boot.
#[test]
fn the_sci_is_a_level_interrupt_the_kernel_routes_and_handles() {
    use os_model::OsEvent;
    let mut s = sim(MachineConfig::default(), &OsConfig::default());
    let sci = s.p.io().sci_gsi();
    let fadt = s.p.fadt();
    let at = acpi_model::tables::FADT_SCI_INT;
    assert_eq!(
        u32::from(u16::from_le_bytes([fadt[at], fadt[at + 1]])),
        sci.0
    );
    // Raised while the CPUs are still being brought up: held, not lost.
    let id =
        s.p.notify(s.now, "\\_SB_.CL00", NotifyCode::EjectRequest, &mut s.probe)
            .unwrap();
    let (sid, e) = s.p.io().gsi_entry(sci).unwrap();
    let entry = |s: &Sim| s.p.io().subsystem(sid).unwrap().sapic.entries()[e];
    assert!(
        entry(&s).masked && entry(&s).asserted > 0,
        "held in the masked entry"
    );
    let gpe0 = |s: &Sim| s.p.firmware().register(acpi_model::firmware::mailbox::GPE0) & 1;
    assert_eq!(
        gpe0(&s),
        1,
        "firmware's event status, in the FADT's GPE0 block"
    );
    s.run_to(ms(5));
    assert!(s.os.booted_at().is_some());
    assert!(s.p.firmware().pending().next().is_none(), "taken");
    assert_eq!(gpe0(&s), 0);
    let r = entry(&s);
    assert!(!r.masked && r.level && r.asserted == 0 && !r.remote_irr);
    let desc = s.os.irqs().iter().find(|d| d.gsi == sci.0).unwrap().clone();
    assert_eq!(desc.vector, r.vector);
    let handled = s
        .log
        .iter()
        .position(|(_, ev)| matches!(ev, OsEvent::IrqHandled { gsi, .. } if *gsi == sci.0))
        .expect("the SCI's handler ran");
    let notified = s
        .log
        .iter()
        .position(|(_, ev)| matches!(ev, OsEvent::AcpiNotify { .. }))
        .unwrap();
    assert!(
        handled < notified,
        "the notification was taken in the handler"
    );
    assert_eq!(s.os.refusals().last().unwrap().cause, Some(id));
    // Later ones arrive the same way, each as one message of the line.
    let before = s.p.io().gsi_deliveries(sci);
    let now = s.now;
    s.p.notify(now, "\\_SB_.CL00", NotifyCode::EjectRequest, &mut s.probe)
        .unwrap();
    take_notifications(&mut s);
    assert!(s.p.firmware().pending().next().is_none());
    assert_eq!(s.p.io().gsi_deliveries(sci), before + 1);
    // The system IO SAPIC belongs to no I/O subsystem: nothing can remove it.
    assert!(s.p.io().subsystems().iter().all(|x| x.id != sid));
    s.audit();
    assert!(s.probe.violations.is_empty(), "{}", s.violations());
}
