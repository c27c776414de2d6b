//! The kernel's requests from outside: sysfs writes, policies, the harness — and the
//! histories of the operations they started.

use sim_core::SimTime;

use super::{CpuMaps, Os};
use crate::hotplug::{Accepted, CpuFlow, Hotplug, HotplugError, OpKind, Refusal, Trigger};
use crate::memhotplug::{MemError, MemFlow, MemHotplug};
use crate::pcihp::{PciError, PciFlow, PciHotplug, PciOpKind};

impl Os {
    /// The hot-plug history and state.
    pub fn hotplug(&self) -> &Hotplug {
        &self.hp
    }

    /// Asks for logical CPU `cpu` to go down or up (the equivalent of writing 0 or 1 to
    /// `/sys/devices/system/cpu/cpuN/online`, or an ACPI request). Refusals change nothing.
    pub fn request(
        &mut self,
        now: SimTime,
        kind: OpKind,
        cpu: u32,
        trigger: Trigger,
    ) -> Result<Accepted, HotplugError> {
        CpuFlow::request(self, now, kind, cpu, trigger, None)
    }

    /// Records a refusal (nothing else changes).
    pub(crate) fn record_refusal(&mut self, r: crate::ops::Refusal) {
        self.refusals.push(r);
    }

    /// One bring-up of boot has ended; whether it was the last.
    pub(crate) fn boot_op_done(&mut self) -> bool {
        self.boot_ops = self.boot_ops.saturating_sub(1);
        self.boot_ops == 0
    }

    /// Every request refused so far, in order.
    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }

    /// A summary of the CPU maps for messages.
    pub fn describe_maps(maps: &CpuMaps) -> String {
        format!("online {} active {}", maps.online, maps.active)
    }

    /// The memory hot-plug history and state.
    pub fn mem_hotplug(&self) -> &MemHotplug {
        &self.memhp
    }

    /// A user request: `memoryN/state` ← `offline` (or `online`) for `block`. Checked now;
    /// a refusal changes nothing.
    pub fn mem_request(&mut self, now: SimTime, block: u32, online: bool) -> Result<u32, MemError> {
        MemFlow::mem_request_by(self, now, block, online, Trigger::User)
    }

    /// The PCI hot-plug driver's state and history.
    pub fn pci_hotplug(&self) -> &PciHotplug {
        &self.pcihp
    }

    /// A request for slot `sun`: enable (`/sys/bus/pci/slots/N/power` ← 1, a device check),
    /// disable (← 0) or eject (an eject request). Checked against the state the queued
    /// operations will leave; a refusal changes nothing.
    pub fn pci_request(
        &mut self,
        now: SimTime,
        sun: u16,
        kind: PciOpKind,
        trigger: Trigger,
    ) -> Result<Accepted, PciError> {
        PciFlow::request(self, now, sun, kind, trigger, None)
    }

    /// A request for the I/O subsystem whose module device is `path`: add it (a device
    /// check) or eject it (an eject request: each enabled slot is disabled first, then the
    /// module is ejected). Refused, changing nothing, if `path` is no I/O subsystem.
    /// `present`: whether the module's `_STA` says it is there (a device check on a module
    /// that is gone means it was pulled out: its devices are cleaned up after).
    pub fn pci_subsystem_request(
        &mut self,
        now: SimTime,
        path: &str,
        add: bool,
        present: bool,
        trigger: Trigger,
    ) -> Result<Accepted, PciError> {
        PciFlow::subsystem_request(self, now, path, add, present, trigger, None)
    }
}
