//! Two kernels on one machine: each boots on its own cells (the hook for partitions and
//! multi-kernel), runs its own workload on its own CPUs and memory, and the hardware
//! checkers see nothing of one touch the other.

use acpi_model::hw::{IoConfig, MachineConfig};
use acpi_model::{Platform, PlatformConfig, PlatformProbe};
use os_model::{DriverConfig, Os, OsCheckers, OsConfig};
use sim_core::{CpuId, LsapicId, RngStreams, SimTime, Trace, TraceLevel};

use crate::common::ms;

/// The hardware CPUs a kernel has online.
fn online_hw(os: &Os) -> Vec<CpuId> {
    os.maps()
        .online
        .iter()
        .filter_map(|c| os.per_cpu()[c.index()].hw)
        .collect()
}

fn cells_of(p: &Platform, cpus: &[CpuId]) -> Vec<u16> {
    let mut v: Vec<u16> = cpus
        .iter()
        .map(|&c| p.machine().cpu(c).unwrap().cell.0)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The default machine, every hardware checker attached.
fn machine() -> (Platform, PlatformProbe) {
    let cfg = PlatformConfig {
        machine: MachineConfig::default(),
        io: IoConfig::default(),
    };
    let p = Platform::new(&cfg).unwrap();
    let probe = PlatformProbe::with_checkers(Trace::new(TraceLevel::Off, 0), p.machine(), false);
    (p, probe)
}

/// Boots a kernel with `cfg` on the CPU whose local SAPIC is `bsp`.
fn boot(
    cfg: &OsConfig,
    bsp: LsapicId,
    seed: u64,
    p: &mut Platform,
    probe: &mut PlatformProbe,
) -> Result<Os, os_model::OsError> {
    Os::boot(
        cfg,
        &DriverConfig::default(),
        &[],
        SimTime::ZERO,
        bsp,
        &RngStreams::new(seed),
        p,
        probe,
    )
}

#[test]
fn two_kernels_boot_on_their_own_cells_of_one_platform() {
    let (mut p, mut probe) = machine();
    let (a_hw, a_bsp) = p.start_boot_cpu(SimTime::ZERO, &mut probe).unwrap();
    let part = |cells: &[u32]| OsConfig {
        nr_cpus: 32,
        tasks_per_cpu: 2,
        cells: Some(cells.to_vec()),
        ..OsConfig::default()
    };
    let mut a = boot(&part(&[0, 1, 2, 3]), a_bsp, 5, &mut p, &mut probe).unwrap();
    // The first kernel hands the first CPU of cell 4 to the second through firmware (the
    // wakeup a multi-kernel's loader sends), and the second boots on it.
    let b_bsp = p
        .machine()
        .cpus()
        .iter()
        .find(|c| c.cell.0 == 4)
        .map(|c| c.lsapic)
        .unwrap();
    p.wake_cpu(SimTime::ZERO, a_hw, b_bsp, &mut probe).unwrap();
    let mut b = boot(&part(&[4, 5, 6, 7]), b_bsp, 6, &mut p, &mut probe).unwrap();
    let mut checks = [OsCheckers::default(), OsCheckers::default()];
    // One timeline: the earlier kernel event goes first, the first kernel on a tie.
    let end = ms(4);
    loop {
        let (ta, tb) = (a.next_time(), b.next_time());
        let first = match (ta, tb) {
            (Some(x), Some(y)) => x <= y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let t = if first { ta } else { tb }.unwrap();
        if t > end {
            break;
        }
        let (os, k) = if first { (&mut a, 0) } else { (&mut b, 1) };
        os.step(&mut p, &mut probe);
        os.interrupts_raised(t, &p);
        for (t, ev) in os.take_events() {
            checks[k].observe(t, &ev, &mut probe.violations);
        }
    }
    probe.audit(end, &p);
    checks[0].audit(end, &a, &p, &mut probe.violations);
    checks[1].audit(end, &b, &p, &mut probe.violations);
    assert_eq!(
        probe.violations.total(),
        0,
        "{:?}",
        probe.violations.kept().iter().take(5).collect::<Vec<_>>()
    );

    for (os, cells) in [(&a, [0u16, 1, 2, 3]), (&b, [4, 5, 6, 7])] {
        assert!(os.booted_at().is_some(), "each kernel finished booting");
        let online = online_hw(os);
        assert_eq!(online.len(), 16, "every CPU of its four cells came up");
        assert_eq!(cells_of(&p, &online), cells, "and only those");
        let nodes: Vec<u32> = os
            .vm()
            .unwrap()
            .phys
            .nodes
            .iter()
            .filter(|n| n.present && n.online)
            .map(|n| n.id)
            .collect();
        assert_eq!(
            nodes,
            cells.iter().map(|&c| u32::from(c)).collect::<Vec<_>>(),
            "its memory is that of its own cells"
        );
        assert!(
            os.stats().task_loads + os.stats().task_stores > 0,
            "its tasks ran"
        );
    }
    // The SCI's GSI is on the system IO SAPIC, which only the kernel of cells 0-3 sees: the
    // other one hears no ACPI notification, and says so.
    assert!(a.boot_errors().is_empty(), "{:?}", a.boot_errors());
    assert!(
        matches!(b.boot_errors(), [os_model::OsError::NoSci { .. }]),
        "{:?}",
        b.boot_errors()
    );
    let (ha, hb) = (online_hw(&a), online_hw(&b));
    assert!(ha.iter().all(|c| !hb.contains(c)), "no CPU is in both");
    // What the hardware says: exactly the CPUs the two kernels hold are running, and every
    // frame holding a kernel's task or file data is homed, by the machine's address map, in
    // one of that kernel's cells.
    let running: Vec<CpuId> = p
        .machine()
        .cpus()
        .iter()
        .filter(|c| c.state.is_running())
        .map(|c| c.id)
        .collect();
    let mut both = [ha, hb].concat();
    both.sort_unstable();
    assert_eq!(
        running, both,
        "the machine runs exactly the two kernels' CPUs"
    );
    for (os, cells) in [(&a, 0..4u16), (&b, 4..8)] {
        let vm = os.vm().unwrap();
        let mut frames = 0;
        for (pfn, o) in vm.phys.map.owners().iter().enumerate() {
            if !matches!(
                o,
                os_model::mm::Owner::Anon { .. } | os_model::mm::Owner::File { .. }
            ) {
                continue;
            }
            let home = p
                .machine()
                .home_of(sim_core::PhysAddr::new(vm.phys.addr(pfn as u32)))
                .unwrap();
            assert!(cells.contains(&home.0), "pfn {pfn:#x} is homed in {home}");
            frames += 1;
        }
        assert!(frames > 100, "{frames} data frames");
    }
}

#[test]
fn a_kernel_cannot_boot_on_a_cpu_outside_its_cells() {
    let (mut p, mut probe) = machine();
    let (_, bsp) = p.start_boot_cpu(SimTime::ZERO, &mut probe).unwrap();
    let cfg = OsConfig {
        cells: Some(vec![4]),
        ..OsConfig::default()
    };
    let r = boot(&cfg, bsp, 1, &mut p, &mut probe);
    assert!(
        matches!(r, Err(os_model::OsError::NoBootCpu { .. })),
        "{:?}",
        r.err()
    );
}
