//! The OS's state as the Linux sysfs ABI shows it (SPEC OS-IF-1), laid out as a system root
//! so that existing tools (`lsmem --sysroot`, `lscpu --sysroot`) read the simulated machine.
//!
//! ```text
//!   Os ──► Sysfs (path → file contents or symlink target, sorted)
//!          sys/devices/system/cpu/{possible,present,online,offline,kernel_max}
//!                                cpuN/{online,nodeK→,topology/…}
//!          sys/devices/system/memory/{block_size_bytes,auto_online_blocks}
//!                                   memoryN/{state,online,phys_index,phys_device,
//!                                            removable,valid_zones,nodeK→}
//!          sys/devices/system/node/{possible,online,has_cpu,has_memory,has_normal_memory}
//!                                 nodeN/{cpulist,cpumap,meminfo,distance,memoryK→,cpuK→}
//!          sys/bus/pci/slots/N/{address,power}
//!          proc/cpuinfo
//! ```
//!
//! Pure: the tree is built from the kernel's own data structures only (what Linux would
//! print), never from the hardware or the firmware; writing it to disk is the caller's job.
//! The formats follow `Documentation/ABI/testing/sysfs-devices-memory`,
//! `sysfs-devices-system-cpu` and `sysfs-devices-node` and the kernel's printers: cpulists
//! as `0-3,8-11`, cpumaps as `%*pb` (hex, 32-bit groups separated by commas, `nr_cpu_ids`
//! bits wide), `block_size_bytes` and `phys_index` in hex without `0x`, zones as Linux
//! spells them. `removable` says whether the block could be offlined now (no unmovable
//! page in it), as kernels before 5.8 computed it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cpumask::{CpuMask, LogicalCpu};
use crate::kernel::Os;
use crate::mm::{BlockState, ZoneKind};

/// One entry of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SysfsEntry {
    /// A regular file and its contents.
    File(String),
    /// A symbolic link and its target (relative to the link's directory).
    Link(String),
}

/// The whole view: relative path (`sys/devices/system/cpu/online`) → entry, in path order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sysfs {
    /// The entries.
    pub entries: BTreeMap<String, SysfsEntry>,
}

impl Sysfs {
    pub(crate) fn file(&mut self, path: impl Into<String>, contents: impl Into<String>) {
        self.entries
            .insert(path.into(), SysfsEntry::File(contents.into()));
    }

    fn link(&mut self, path: impl Into<String>, target: impl Into<String>) {
        self.entries
            .insert(path.into(), SysfsEntry::Link(target.into()));
    }

    /// The contents of a file, if the tree has it.
    pub fn read(&self, path: &str) -> Option<&str> {
        match self.entries.get(path)? {
            SysfsEntry::File(s) => Some(s),
            SysfsEntry::Link(_) => None,
        }
    }
}

const CPU: &str = "sys/devices/system/cpu";
const MEMORY: &str = "sys/devices/system/memory";
const NODE: &str = "sys/devices/system/node";
const SLOTS: &str = "sys/bus/pci/slots";

/// A list of numbers in the cpulist / nodelist format (`0-3,8-11`), with a newline.
pub fn list<I: IntoIterator<Item = u32>>(items: I) -> String {
    let mut out = String::new();
    let mut run: Option<(u32, u32)> = None;
    let flush = |out: &mut String, (a, b): (u32, u32)| {
        if !out.is_empty() {
            out.push(',');
        }
        let _ = if a == b {
            write!(out, "{a}")
        } else {
            write!(out, "{a}-{b}")
        };
    };
    for c in items {
        run = match run {
            Some((a, b)) if c == b + 1 => Some((a, c)),
            Some(r) => {
                flush(&mut out, r);
                Some((c, c))
            }
            None => Some((c, c)),
        };
    }
    if let Some(r) = run {
        flush(&mut out, r);
    }
    out.push('\n');
    out
}

/// A bitmap as the kernel's `%*pb` prints it, `bits` wide: hex digits in 32-bit groups,
/// most significant first, separated by commas, the first group only as wide as its bits
/// need (`ff` for 8 bits, `f,ffffffff` for 36), with a newline.
pub fn hex_mask<I: IntoIterator<Item = u32>>(set: I, bits: u32) -> String {
    let bits = bits.max(1);
    let groups = bits.div_ceil(32) as usize;
    let mut words = vec![0u32; groups];
    for b in set {
        if b < bits {
            words[(b / 32) as usize] |= 1 << (b % 32);
        }
    }
    let mut out = String::new();
    for (k, w) in words.iter().enumerate().rev() {
        let width = if k == groups - 1 {
            let top = bits - 32 * k as u32;
            top.div_ceil(4) as usize
        } else {
            8
        };
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{w:0width$x}");
    }
    out.push('\n');
    out
}

fn cpus(mask: &CpuMask) -> impl Iterator<Item = u32> + '_ {
    mask.iter().map(|c| c.0)
}

/// Builds the sysfs view from the kernel's state.
pub(crate) enum SysfsView {}

impl SysfsView {
    /// `nr_cpu_ids`: one more than the highest possible CPU.
    pub(crate) fn nr_cpu_ids(os: &Os) -> u32 {
        os.possible.iter().last().map_or(1, |c| c.0 + 1)
    }

    pub(crate) fn online_mask(os: &Os) -> &CpuMask {
        &os.maps().online
    }

    pub(crate) fn sysfs_cpus(os: &Os, t: &mut Sysfs) {
        let online = SysfsView::online_mask(os);
        t.file(format!("{CPU}/possible"), list(cpus(&os.possible)));
        t.file(format!("{CPU}/present"), list(cpus(&os.present)));
        t.file(format!("{CPU}/online"), list(cpus(online)));
        t.file(
            format!("{CPU}/offline"),
            list(
                os.possible
                    .iter()
                    .filter(|c| !online.contains(*c))
                    .map(|c| c.0),
            ),
        );
        t.file(
            format!("{CPU}/kernel_max"),
            format!("{}\n", os.nr_cpus().saturating_sub(1)),
        );
        let bits = SysfsView::nr_cpu_ids(os);
        for c in os.present.iter() {
            let pc = &os.pcpu[c.index()];
            let dir = format!("{CPU}/cpu{}", c.0);
            let up = online.contains(c);
            t.file(format!("{dir}/online"), if up { "1\n" } else { "0\n" });
            t.link(
                format!("{dir}/node{}", pc.node),
                format!("../../node/node{}", pc.node),
            );
            if !up {
                // As in Linux, an offline CPU has no topology.
                continue;
            }
            // Each Itanium 2 is a package of one core and one thread; its package number is
            // its hardware CPU number (cell × CPUs per cell + position).
            let package = pc.hw.map_or(c.0, |h| h.0);
            let topo = format!("{dir}/topology");
            let me = [c.0];
            t.file(
                format!("{topo}/physical_package_id"),
                format!("{package}\n"),
            );
            t.file(format!("{topo}/core_id"), "0\n");
            for sib in [
                "thread_siblings",
                "core_siblings",
                "core_cpus",
                "package_cpus",
            ] {
                t.file(format!("{topo}/{sib}"), hex_mask(me, bits));
                t.file(format!("{topo}/{sib}_list"), list(me));
            }
        }
    }

    pub(crate) fn sysfs_memory(os: &Os, t: &mut Sysfs) {
        let Some(vm) = os.vm() else {
            return;
        };
        let phys = &vm.phys;
        let block_bytes = u64::from(phys.block_pages) << phys.page_shift;
        t.file(
            format!("{MEMORY}/block_size_bytes"),
            format!("{block_bytes:x}\n"),
        );
        t.file(format!("{MEMORY}/auto_online_blocks"), "offline\n");
        for b in &phys.blocks {
            let node = &phys.nodes[b.node as usize];
            if !node.present {
                // Memory that is not there has no memory block device.
                continue;
            }
            let dir = format!("{MEMORY}/memory{}", b.index);
            t.file(format!("{dir}/state"), format!("{}\n", b.state.name()));
            let online = b.state != BlockState::Offline;
            t.file(format!("{dir}/online"), if online { "1\n" } else { "0\n" });
            t.file(format!("{dir}/phys_index"), format!("{:08x}\n", b.index));
            t.file(format!("{dir}/phys_device"), "0\n");
            let removable = online && phys.unmovable_summary(b.index).is_none();
            t.file(
                format!("{dir}/removable"),
                if removable { "1\n" } else { "0\n" },
            );
            // Online: the zone it is in. Offline: the zones it may be onlined to (the OS
            // puts a block in its node's zone, movable nodes' in ZONE_MOVABLE).
            let zone = if online {
                b.zone
            } else if node.movable {
                ZoneKind::Movable
            } else {
                ZoneKind::Normal
            };
            t.file(format!("{dir}/valid_zones"), format!("{}\n", zone.name()));
            t.link(
                format!("{dir}/node{}", b.node),
                format!("../../node/node{}", b.node),
            );
        }
    }

    pub(crate) fn sysfs_nodes(os: &Os, t: &mut Sysfs) {
        let online = SysfsView::online_mask(os);
        let bits = SysfsView::nr_cpu_ids(os);
        let nodes: Vec<u32> = match os.vm() {
            Some(vm) => (0..vm.phys.nodes.len() as u32).collect(),
            None => Vec::new(),
        };
        let cpus_of = |n: u32| -> Vec<u32> {
            online
                .iter()
                .filter(|c| os.pcpu[c.index()].node == n)
                .map(|c| c.0)
                .collect()
        };
        let Some(vm) = os.vm() else {
            return;
        };
        let phys = &vm.phys;
        // N_MEMORY: online memory; N_ONLINE: memory added (online or not) or CPUs.
        let has_memory = |n: u32| phys.nodes[n as usize].online;
        let has_cpu = |n: u32| !cpus_of(n).is_empty();
        let node_online = |n: u32| phys.nodes[n as usize].present || has_cpu(n);
        t.file(format!("{NODE}/possible"), list(nodes.iter().copied()));
        t.file(
            format!("{NODE}/online"),
            list(nodes.iter().copied().filter(|&n| node_online(n))),
        );
        t.file(
            format!("{NODE}/has_cpu"),
            list(nodes.iter().copied().filter(|&n| has_cpu(n))),
        );
        t.file(
            format!("{NODE}/has_memory"),
            list(nodes.iter().copied().filter(|&n| has_memory(n))),
        );
        t.file(
            format!("{NODE}/has_normal_memory"),
            list(nodes.iter().copied().filter(|&n| {
                has_memory(n)
                    && phys.zones[crate::mm::PhysMem::zone_index(n, ZoneKind::Normal) as usize]
                        .present
                        > 0
            })),
        );
        let zones = phys.zone_summary();
        let page_kib = (1u64 << phys.page_shift) >> 10;
        let live: Vec<u32> = nodes.iter().copied().filter(|&n| node_online(n)).collect();
        for &n in &live {
            let dir = format!("{NODE}/node{n}");
            let mine = cpus_of(n);
            t.file(format!("{dir}/cpulist"), list(mine.iter().copied()));
            t.file(
                format!("{dir}/cpumap"),
                hex_mask(mine.iter().copied(), bits),
            );
            for c in &mine {
                t.link(format!("{dir}/cpu{c}"), format!("../../cpu/cpu{c}"));
            }
            let (mut total, mut free) = (0u64, 0u64);
            for kind in [ZoneKind::Normal, ZoneKind::Movable] {
                if let Some(&(p, f)) = zones.get(&(n, kind)) {
                    total += p;
                    free += f;
                }
            }
            let kib = |pages: u64| pages * page_kib;
            let mut meminfo = String::new();
            for (what, v) in [
                ("MemTotal", kib(total)),
                ("MemFree", kib(free)),
                ("MemUsed", kib(total - free)),
            ] {
                let _ = writeln!(meminfo, "Node {n} {:<16}{:>8} kB", format!("{what}:"), v);
            }
            t.file(format!("{dir}/meminfo"), meminfo);
            let row: Vec<String> = live
                .iter()
                .map(|&m| {
                    phys.distance
                        .get(n as usize)
                        .and_then(|r| r.get(m as usize))
                        .map_or("20".to_owned(), ToString::to_string)
                })
                .collect();
            t.file(format!("{dir}/distance"), format!("{}\n", row.join(" ")));
            for b in phys.blocks.iter().filter(|b| b.node == n) {
                if phys.nodes[n as usize].present {
                    t.link(
                        format!("{dir}/memory{}", b.index),
                        format!("../../memory/memory{}", b.index),
                    );
                }
            }
        }
    }

    /// `bus/pci/slots/N`: each slot of the ACPI PCI hot-plug driver, `power` its
    /// `SLOT_ENABLED` (a device configured and its driver bound).
    pub(crate) fn sysfs_slots(os: &Os, t: &mut Sysfs) {
        for s in &os.pci_hotplug().slots {
            let dir = format!("{SLOTS}/{}", s.sun.0);
            t.file(
                format!("{dir}/address"),
                format!(
                    "{:04x}:{:02x}:{:02x}\n",
                    s.bdf.segment, s.bdf.bus, s.bdf.device
                ),
            );
            t.file(
                format!("{dir}/power"),
                if s.enabled { "1\n" } else { "0\n" },
            );
        }
    }

    /// `/proc/cpuinfo` of every online CPU, in the IA-64 kernel's layout (`show_cpuinfo`:
    /// single-core packages print no core and thread ids).
    pub(crate) fn cpuinfo(os: &Os) -> String {
        let mut out = String::new();
        for c in SysfsView::online_mask(os).iter() {
            let pc = &os.pcpu[c.index()];
            let package = pc.hw.map_or(c.0, |h| h.0);
            let LogicalCpu(n) = c;
            let _ = write!(
                out,
                "processor  : {n}\n\
                 vendor     : GenuineIntel\n\
                 arch       : IA-64\n\
                 family     : 31\n\
                 model      : 2\n\
                 model name : Madison\n\
                 revision   : 1\n\
                 archrev    : 0\n\
                 features   : branchlong\n\
                 cpu number : 0\n\
                 cpu regs   : 4\n\
                 cpu MHz    : 1500.000\n\
                 itc MHz    : 1500.000000\n\
                 BogoMIPS   : 2244.60\n\
                 siblings   : 1\n\
                 physical id: {package}\n\n"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_print_like_the_kernel() {
        assert_eq!(list([0, 1, 2, 3, 8, 9, 10, 11]), "0-3,8-11\n");
        assert_eq!(list([5]), "5\n");
        assert_eq!(list([0, 2, 4, 5]), "0,2,4-5\n");
        assert_eq!(list([]), "\n");
    }

    #[test]
    fn masks_print_like_percent_star_pb() {
        assert_eq!(hex_mask([0, 1, 2, 3], 32), "0000000f\n");
        assert_eq!(hex_mask([4, 5, 6, 7], 8), "f0\n");
        assert_eq!(hex_mask([0], 4), "1\n");
        assert_eq!(hex_mask([32, 0], 36), "1,00000001\n");
        assert_eq!(hex_mask([63], 64), "80000000,00000000\n");
        assert_eq!(hex_mask([], 32), "00000000\n");
        // Beyond the width is not printed.
        assert_eq!(hex_mask([40], 32), "00000000\n");
    }
}
