//! The kernel's requests from outside: sysfs writes, policies, the harness — and the
//! histories of the operations they started.

use sim_core::{SimTime, SlotId};

use super::{CpuMaps, Os};
use crate::cpumask::LogicalCpu;
use crate::event::OsEvent;
use crate::hotplug::{Accepted, CpuFlow, Hotplug, HotplugError, OpKind, Refusal, Request, Trigger};
use crate::memhotplug::{MemError, MemFlow, MemHotplug};
use crate::ops;
use crate::pcihp::{PciError, PciFlow, PciHotplug, PciOpKind, PciTarget};

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
        let eject = trigger == Trigger::AcpiEject;
        let r = CpuFlow::check_outside(self, cpu, trigger)
            .and_then(|()| CpuFlow::check_request(self, kind, cpu, eject));
        match &r {
            Err(e) => {
                self.refusals.push(Refusal {
                    time: now,
                    target: format!("cpu{cpu}"),
                    errno: e.errno(),
                    error: e.to_string(),
                });
                self.emit(
                    now,
                    OsEvent::HotplugRefused {
                        cpu,
                        kind: kind.name(),
                        error: e.to_string(),
                    },
                );
            }
            Ok(false) => {}
            Ok(true) => {
                let req = Request {
                    kind,
                    cpu: LogicalCpu(cpu),
                    trigger,
                    eject,
                    requested: now,
                };
                let op = ops::enqueue::<CpuFlow>(self, now, req);
                return Ok(Accepted::Queued { op });
            }
        }
        r.map(|_| Accepted::NoChange)
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
        let r = PciFlow::pci_slot_request(self, now, sun, kind, trigger);
        if let Err(e) = &r {
            CpuFlow::refuse(self, now, format!("slot {sun}"), e.errno(), e.to_string());
        }
        r
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
        let bridges = PciFlow::subsystem_bridges(self, path);
        if bridges.is_empty() {
            return Err(PciError::NoSuchSubsystem { path: path.into() });
        }
        let target = PciTarget::Subsystem(path.to_owned());
        // A device check on a module that is not there any more: it was pulled out.
        let add = add && present;
        // Gone, yet the OS never had it (nor is adding it): nothing to clean up.
        let adding = self
            .pcihp
            .ops
            .pending()
            .any(|(_, r)| r.kind == PciOpKind::AddSubsystem && r.target == target);
        if !add && !adding && !bridges.iter().any(|&b| PciFlow::subsystem_known(self, b)) {
            return Ok(Accepted::NoChange);
        }
        if add {
            return Ok(Accepted::Queued {
                op: PciFlow::pci_enqueue(self, now, PciOpKind::AddSubsystem, target, trigger),
            });
        }
        // Each device stops before the subsystem goes.
        let slots: Vec<u16> = (0..self.pcihp.slots.len())
            .filter(|&i| {
                bridges.contains(&self.pcihp.slots[i].bridge) && self.pcihp.will_be_enabled(i)
            })
            .map(|i| self.pcihp.slots[i].sun.0)
            .collect();
        for sun in slots {
            PciFlow::pci_enqueue(
                self,
                now,
                PciOpKind::Disable,
                PciTarget::Slot(SlotId(sun)),
                Trigger::Subsystem,
            );
        }
        Ok(Accepted::Queued {
            op: PciFlow::pci_enqueue(self, now, PciOpKind::EjectSubsystem, target, trigger),
        })
    }
}
