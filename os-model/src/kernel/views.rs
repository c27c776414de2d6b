//! What the kernel shows of itself: its memory manager, kernel objects, the sysfs view and
//! the policies' decisions; and jobs the harness starts.

use crate::hw::Cx;
use acpi_model::{Platform, PlatformProbe};
use sim_core::SimTime;

use super::Os;
use crate::config::OsDefect;
use crate::cpumask::LogicalCpu;
use crate::mm::manager::Vm;
use crate::policy::Policies;
use crate::sysfs::{Sysfs, SysfsView};

impl Os {
    /// The memory manager (after boot).
    pub fn vm(&self) -> Option<&Vm> {
        self.vm.as_ref()
    }

    pub(crate) fn vmm(&mut self) -> &mut Vm {
        self.vm
            .as_mut()
            .expect("the memory manager exists from boot on")
    }

    /// Every kernel object the OS holds in memory, with its address: boot slab objects,
    /// the live versions of the CPU maps, page-table pages, node descriptors.
    pub fn kernel_objects(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .slab_objs
            .iter()
            .enumerate()
            .map(|(k, &a)| (format!("slab object {k}"), a))
            .collect();
        v.extend(
            self.maps
                .iter()
                .map(|(ver, o)| (format!("cpu maps v{ver}"), o.addr)),
        );
        if self.maps_ptr != 0 {
            v.push(("the cpu maps pointer".to_owned(), self.maps_ptr));
        }
        if let Some(vm) = &self.vm {
            for sp in &vm.spaces {
                for (k, &pt) in sp.pt_pages.iter().enumerate() {
                    v.push((format!("page table {k} of mm{}", sp.id), vm.phys.addr(pt)));
                }
            }
            for n in &vm.phys.nodes {
                if let Some(pg) = n.pgdat {
                    v.push((format!("pg_data of node{}", n.id), vm.phys.addr(pg)));
                }
            }
        }
        v
    }

    /// Whether defect `d` is injected.
    pub(crate) fn has_defect(&self, d: OsDefect) -> bool {
        self.defects.has(d)
    }

    /// The sysfs view of the kernel's current state (see the module docs).
    pub fn sysfs(&self) -> Sysfs {
        let mut t = Sysfs::default();
        SysfsView::sysfs_cpus(self, &mut t);
        SysfsView::sysfs_memory(self, &mut t);
        SysfsView::sysfs_nodes(self, &mut t);
        SysfsView::sysfs_slots(self, &mut t);
        t.file("proc/cpuinfo", SysfsView::cpuinfo(self));
        t
    }

    /// The policies' state and decisions.
    pub fn policies(&self) -> &Policies {
        &self.policy
    }

    /// A job starts: `n` more worker tasks, spread over the active CPUs (each populates its
    /// memory on its CPU, as a fork and its page faults do). Returns how many were created.
    pub fn spawn_tasks(
        &mut self,
        now: SimTime,
        n: u32,
        p: &mut Platform,
        probe: &mut PlatformProbe,
    ) -> u32 {
        let cx = &mut Cx { p, probe };
        let active: Vec<LogicalCpu> = self.cur_maps().active.iter().collect();
        if active.is_empty() || self.booted_at.is_none() {
            return 0;
        }
        let mut created = 0;
        for k in 0..n as usize {
            let c = active[k % active.len()];
            let mut tc = now.max(self.busy_until[c.index()]);
            match self.spawn_user(&mut tc, c, None, cx) {
                Ok(_) => created += 1,
                Err(_) => self.stats.spawn_failures += 1,
            }
            self.busy_until[c.index()] = tc;
            self.kick(c, tc);
        }
        created
    }
}
