//! Golden tests of the sysfs view (SPEC OS-IF-1): every file format as Linux prints it, on a
//! small machine with one CPU and one memory block offline.

use acpi_model::hw::MachineConfig;
use os_model::config::MemConfig;
use os_model::sysfs::SysfsEntry;
use os_model::{OpKind, OsConfig, Trigger};
use sim_core::ByteSize;

use crate::common::{Sim, ms, some_cards};

fn view() -> os_model::sysfs::Sysfs {
    let machine = MachineConfig {
        cells: 2,
        memory_per_cell: ByteSize(32 << 20),
        ..MachineConfig::default()
    };
    let cfg = OsConfig {
        tasks_per_cpu: 1,
        memory: MemConfig {
            block_size: ByteSize(4 << 20),
            ..MemConfig::default()
        },
        ..OsConfig::default()
    };
    let mut s = Sim::new(machine, some_cards(1), &cfg, &[], 2);
    s.run_to(ms(3));
    s.os.request(s.now, OpKind::Down, 6, Trigger::User).unwrap();
    s.os.mem_request(s.now, 9, false).unwrap();
    s.run_to(ms(6));
    s.os.sysfs()
}

fn file<'a>(v: &'a os_model::sysfs::Sysfs, path: &str) -> &'a str {
    v.read(path).unwrap_or_else(|| panic!("{path} missing"))
}

#[test]
fn every_file_reads_as_linux_prints_it() {
    let v = view();
    let cpu = "sys/devices/system/cpu";
    for (f, want) in [
        ("possible", "0-7\n"),
        ("present", "0-7\n"),
        ("online", "0-5,7\n"),
        ("offline", "6\n"),
        ("kernel_max", "255\n"),
        ("cpu6/online", "0\n"),
        ("cpu7/online", "1\n"),
        // nr_cpu_ids = 8: masks are two hex digits wide.
        ("cpu5/topology/thread_siblings", "20\n"),
        ("cpu5/topology/thread_siblings_list", "5\n"),
        ("cpu5/topology/core_siblings", "20\n"),
        ("cpu5/topology/core_siblings_list", "5\n"),
        ("cpu5/topology/physical_package_id", "5\n"),
        ("cpu5/topology/core_id", "0\n"),
    ] {
        assert_eq!(file(&v, &format!("{cpu}/{f}")), want, "{f}");
    }
    assert!(
        !v.entries
            .contains_key(&format!("{cpu}/cpu6/topology/core_id")),
        "an offline CPU has no topology"
    );
    assert_eq!(
        v.entries.get(&format!("{cpu}/cpu5/node1")),
        Some(&SysfsEntry::Link("../../node/node1".into()))
    );

    let mem = "sys/devices/system/memory";
    for (f, want) in [
        ("block_size_bytes", "400000\n"),
        ("memory9/state", "offline\n"),
        ("memory9/online", "0\n"),
        ("memory9/phys_index", "00000009\n"),
        ("memory9/phys_device", "0\n"),
        ("memory9/removable", "0\n"),
        ("memory9/valid_zones", "Movable\n"),
        ("memory10/state", "online\n"),
        ("memory10/online", "1\n"),
        ("memory10/phys_index", "0000000a\n"),
        ("memory10/removable", "1\n"),
        ("memory10/valid_zones", "Movable\n"),
        // The first block holds the firmware's pages and kernel objects.
        ("memory0/removable", "0\n"),
        ("memory0/valid_zones", "Normal\n"),
    ] {
        assert_eq!(file(&v, &format!("{mem}/{f}")), want, "{f}");
    }
    assert_eq!(
        v.entries.get(&format!("{mem}/memory9/node1")),
        Some(&SysfsEntry::Link("../../node/node1".into()))
    );

    let node = "sys/devices/system/node";
    for (f, want) in [
        ("possible", "0-1\n"),
        ("online", "0-1\n"),
        ("has_cpu", "0-1\n"),
        ("has_memory", "0-1\n"),
        ("has_normal_memory", "0\n"),
        ("node1/cpulist", "4-5,7\n"),
        ("node1/cpumap", "b0\n"),
        ("node0/cpumap", "0f\n"),
        ("node1/distance", "17 10\n"),
        ("node0/distance", "10 17\n"),
    ] {
        assert_eq!(file(&v, &format!("{node}/{f}")), want, "{f}");
    }
    assert_eq!(
        v.entries.get(&format!("{node}/node1/memory9")),
        Some(&SysfsEntry::Link("../../memory/memory9".into()))
    );
    assert_eq!(
        v.entries.get(&format!("{node}/node1/cpu7")),
        Some(&SysfsEntry::Link("../../cpu/cpu7".into()))
    );
    // Node 1 has 8 blocks of 4 MiB, one offline: 28 MiB present.
    let meminfo = file(&v, &format!("{node}/node1/meminfo"));
    let lines: Vec<&str> = meminfo.lines().collect();
    assert_eq!(lines.len(), 3, "{meminfo}");
    assert_eq!(lines[0], "Node 1 MemTotal:          28672 kB");
    let free: u64 = lines[1]
        .strip_prefix("Node 1 MemFree:        ")
        .and_then(|r| r.strip_suffix(" kB"))
        .map(|r| r.trim().parse().unwrap())
        .unwrap();
    let used: u64 = lines[2]
        .strip_prefix("Node 1 MemUsed:        ")
        .and_then(|r| r.strip_suffix(" kB"))
        .map(|r| r.trim().parse().unwrap())
        .unwrap();
    assert_eq!(free + used, 28672);
    assert!(used > 0);

    // The card in subsystem 0's first slot is driven; the next slot is empty.
    let slots = "sys/bus/pci/slots";
    assert_eq!(file(&v, &format!("{slots}/1/address")), "0000:00:01\n");
    assert_eq!(file(&v, &format!("{slots}/1/power")), "1\n");
    assert_eq!(file(&v, &format!("{slots}/2/address")), "0000:00:02\n");
    assert_eq!(file(&v, &format!("{slots}/2/power")), "0\n");

    let cpuinfo = file(&v, "proc/cpuinfo");
    assert!(cpuinfo.starts_with(
        "processor  : 0\nvendor     : GenuineIntel\narch       : IA-64\nfamily     : 31\n"
    ));
    assert_eq!(cpuinfo.matches("processor  : ").count(), 7);
    assert!(!cpuinfo.contains("processor  : 6\n"));
    assert!(cpuinfo.contains("physical id: 7\n\n"));
}
