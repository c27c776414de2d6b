//! The OS's ACPI scan: what a kernel learns from the namespace, and nothing else.
//!
//! The scan walks `\_SB_` child by child ([`Platform::children`], as `AcpiGetNextObject`
//! does) and identifies every device by its `_HID`: module devices (ACPI0004), processors
//! (ACPI0007: `_UID`, `_STA`, `_MAT` for the local SAPIC id/eid, `_PXM`), memory devices
//! (PNP0C80: `_CRS` for the range), PCI host bridges (PNP0A08: `_CRS` windows, `_PRT`
//! routing), hot-plug slots (objects with `_SUN`) and IO SAPICs (ACPI0009: `_GSB`, `_CRS`).
//! It never looks at the hardware model or the configuration.

use acpi_model::resources::{self, Resource};
use acpi_model::{AcpiValue, Platform};
use sim_core::{LsapicId, SlotId};

/// The `_STA` bits that mean present, enabled and functioning.
pub(crate) const STA_PRESENT: u64 = 0x01;

/// A processor object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessorInfo {
    /// The ACPI device path (`\_SB_.CL03`).
    pub path: String,
    /// `_UID` (the ACPI processor id).
    pub uid: u32,
    /// `_STA` says present.
    pub present: bool,
    /// The local SAPIC id/eid from `_MAT`.
    pub lsapic: LsapicId,
    /// `_MAT`'s enabled flag.
    pub enabled: bool,
    /// `_PXM`: the NUMA node.
    pub node: u32,
}

/// A memory device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryInfo {
    /// The ACPI device path (`\_SB_.CL03`).
    pub path: String,
    /// `_STA` says present.
    pub present: bool,
    /// First byte (`_CRS`).
    pub base: u64,
    /// Length in bytes (`_CRS`).
    pub len: u64,
    /// `_PXM`.
    pub node: u32,
    /// The module device it sits in, whose eject takes it away; `None` for a memory device
    /// directly under `\_SB_` — interleaved memory, spread over every cell's lines, which no
    /// module can take away and which keeps every cell in place.
    pub module: Option<String>,
}

/// An IO SAPIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SapicInfo {
    /// The ACPI device path (`\_SB_.CL03`).
    pub path: String,
    /// `_STA` says present.
    pub present: bool,
    /// `_GSB`: its first GSI.
    pub gsi_base: u32,
    /// Register block (`_CRS`).
    pub base: u64,
    /// `_PXM`.
    pub node: u32,
}

/// A PCI host bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeInfo {
    /// The ACPI device path (`\_SB_.CL03`).
    pub path: String,
    /// `_STA` says present.
    pub present: bool,
    /// MMIO window `(base, len)`.
    pub mmio: (u64, u64),
    /// I/O port window `(base, len)`.
    pub io: (u64, u64),
    /// `_BBN`: its bus number.
    pub bus: u8,
    /// `_PRT`: `(device, pin, gsi)`.
    pub prt: Vec<(u8, u8, u32)>,
    /// `_PXM` of the bridge.
    pub node: u32,
}

/// A hot-plug slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// The ACPI device path (`\_SB_.CL03`).
    pub path: String,
    /// `_SUN`.
    pub sun: SlotId,
    /// Index of its bridge in [`AcpiScan::bridges`].
    pub bridge: usize,
    /// PCI device number (`_ADR >> 16`).
    pub device: u8,
}

/// A slotless chipset function (a cell's Cell Configuration Space) under its chipset
/// bridge: configuration space, no slot, no power control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipsetInfo {
    /// The ACPI device path (`\_SB_.CL03`).
    pub path: String,
    /// `_STA` says present.
    pub present: bool,
    /// Its bridge's `_BBN`.
    pub bus: u8,
    /// Its device number (`_ADR >> 16`).
    pub device: u8,
    /// `_PXM` of the bridge (the cell).
    pub node: u32,
}

/// Everything the scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcpiScan {
    /// Processor objects, in namespace order.
    pub processors: Vec<ProcessorInfo>,
    /// Memory devices.
    pub memory: Vec<MemoryInfo>,
    /// IO SAPICs.
    pub sapics: Vec<SapicInfo>,
    /// PCI host bridges.
    pub bridges: Vec<BridgeInfo>,
    /// Hot-plug slots.
    pub slots: Vec<SlotInfo>,
    /// The cells' chipset functions.
    pub chipset: Vec<ChipsetInfo>,
}

impl AcpiScan {
    /// Keeps only what belongs to `cells` (by `_PXM`): a partition's view of the machine.
    /// Slots follow their host bridge.
    pub fn restrict(&mut self, cells: &[u32]) {
        let mine = |n: u32| cells.contains(&n);
        self.processors.retain(|c| mine(c.node));
        self.memory.retain(|m| mine(m.node));
        self.sapics.retain(|s| mine(s.node));
        self.chipset.retain(|c| mine(c.node));
        let kept: Vec<Option<usize>> = {
            let mut next = 0;
            self.bridges
                .iter()
                .map(|b| {
                    mine(b.node).then(|| {
                        next += 1;
                        next - 1
                    })
                })
                .collect()
        };
        self.bridges.retain(|b| mine(b.node));
        self.slots.retain(|s| kept[s.bridge].is_some());
        for s in &mut self.slots {
            s.bridge = kept[s.bridge].unwrap_or(s.bridge);
        }
    }
}

fn int(p: &Platform, path: &str, name: &str) -> Option<u64> {
    p.read(&format!("{path}.{name}"))
        .as_ref()
        .and_then(AcpiValue::as_integer)
}

fn present(p: &Platform, path: &str) -> bool {
    int(p, path, "_STA").is_some_and(|s| s & STA_PRESENT != 0)
}

pub(crate) fn hid(p: &Platform, path: &str) -> Option<String> {
    match p.read(&format!("{path}._HID"))? {
        AcpiValue::String(s) => Some(s),
        AcpiValue::Integer(v) => Some(decode_eisa(v as u32)),
        AcpiValue::Buffer(_) | AcpiValue::Package(_) | AcpiValue::None => None,
    }
}

/// The text form (`PNP0C80`) of a compressed EISA id.
pub fn decode_eisa(v: u32) -> String {
    let v = v.swap_bytes();
    let letter = |shift: u32| char::from(b'@' + ((v >> shift) & 0x1F) as u8);
    format!(
        "{}{}{}{:04X}",
        letter(26),
        letter(21),
        letter(16),
        v & 0xFFFF
    )
}

fn crs(p: &Platform, path: &str) -> Vec<Resource> {
    p.read(&format!("{path}._CRS"))
        .as_ref()
        .and_then(AcpiValue::as_buffer)
        .and_then(resources::decode)
        .unwrap_or_default()
}

/// The processor object at `path`, if it is one and its `_MAT` is readable.
fn processor(p: &Platform, path: &str) -> Option<ProcessorInfo> {
    let mat = p.read(&format!("{path}._MAT"))?;
    let b = mat.as_buffer()?;
    Some(ProcessorInfo {
        path: path.to_owned(),
        uid: int(p, path, "_UID")? as u32,
        present: false,
        lsapic: LsapicId {
            id: *b.get(3)?,
            eid: *b.get(4)?,
        },
        enabled: b.get(8).is_some_and(|f| f & 1 != 0),
        node: int(p, path, "_PXM").unwrap_or(0) as u32,
    })
}

/// The IO SAPIC object at `path` (`_GSB`, `_CRS`), in proximity domain `node`.
fn sapic(p: &Platform, path: &str, node: u32) -> Option<SapicInfo> {
    let gsb = int(p, path, "_GSB")?;
    let Some(Resource::Memory { base, .. }) = crs(p, path).first().copied() else {
        return None;
    };
    Some(SapicInfo {
        path: path.to_owned(),
        present: false,
        gsi_base: gsb as u32,
        base,
        node,
    })
}

/// Walks the whole namespace, reading `_STA` out of band (no CPU, no time): for a harness
/// that is not the kernel. The kernel uses [`scan_static`] and evaluates each `_STA` itself.
pub fn scan(p: &Platform) -> AcpiScan {
    let mut out = scan_static(p);
    out.refresh_presence(|path| present(p, path));
    out
}

/// Walks the whole namespace for what its static objects say (`_HID`, `_UID`, `_CRS`,
/// `_PXM`, `_PRT`, `_ADR`, …); every `present` is `false` until
/// [`AcpiScan::refresh_presence`] evaluates the `_STA`s.
pub fn scan_static(p: &Platform) -> AcpiScan {
    let mut out = AcpiScan::default();
    for module in p.children("\\_SB_") {
        match hid(p, &module).as_deref() {
            Some("ACPI0004") => {}
            Some("PNP0C80") => {
                out.memory.extend(memory_device(p, &module, 0, None));
                continue;
            }
            // The system IO SAPIC, in no module (the SCI's): its node from its own `_PXM`.
            Some("ACPI0009") => {
                let node = int(p, &module, "_PXM").unwrap_or(0) as u32;
                out.sapics.extend(sapic(p, &module, node));
                continue;
            }
            Some(_) | None => continue,
        }
        let mnode = int(p, &module, "_PXM").unwrap_or(0) as u32;
        for dev in p.children(&module) {
            match hid(p, &dev).as_deref() {
                Some("ACPI0007") => out.processors.extend(processor(p, &dev)),
                Some("PNP0C80") => {
                    out.memory
                        .extend(memory_device(p, &dev, mnode, Some(module.clone())));
                }
                Some("ACPI0009") => out.sapics.extend(sapic(p, &dev, mnode)),
                Some("PNP0A08") => scan_bridge(p, &dev, mnode, &mut out),
                // A root bridge that is no host bridge with slots: the chipset's.
                Some("PNP0A03") => {
                    let bus = int(p, &dev, "_BBN").unwrap_or(0) as u8;
                    for f in p.children(&dev) {
                        if let Some(adr) = int(p, &f, "_ADR") {
                            out.chipset.push(ChipsetInfo {
                                path: f.clone(),
                                present: false,
                                bus,
                                device: (adr >> 16) as u8,
                                node: int(p, &dev, "_PXM").unwrap_or(u64::from(mnode)) as u32,
                            });
                        }
                    }
                }
                Some(_) | None => {}
            }
        }
    }
    out
}

/// The memory device at `path` (its range from `_CRS`), in `module` if it sits in one;
/// `_PXM` defaults to `node`.
fn memory_device(
    p: &Platform,
    path: &str,
    node: u32,
    module: Option<String>,
) -> Option<MemoryInfo> {
    let Some(Resource::Memory { base, len, .. }) = crs(p, path).first().copied() else {
        return None;
    };
    Some(MemoryInfo {
        path: path.to_owned(),
        present: false,
        base,
        len,
        node: int(p, path, "_PXM").unwrap_or(u64::from(node)) as u32,
        module,
    })
}

fn scan_bridge(p: &Platform, path: &str, node: u32, out: &mut AcpiScan) {
    let (mut mmio, mut io) = ((0, 0), (0, 0));
    for r in crs(p, path) {
        match r {
            Resource::Memory { base, len, .. } => mmio = (base, len),
            Resource::Io { base, len } => io = (u64::from(base), u64::from(len)),
            Resource::BusNumbers { .. } => {}
        }
    }
    let prt = p
        .read(&format!("{path}._PRT"))
        .as_ref()
        .and_then(AcpiValue::as_package)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    let e = e.as_package()?;
                    let addr = e.first()?.as_integer()?;
                    let pin = e.get(1)?.as_integer()?;
                    let gsi = e.get(3)?.as_integer()?;
                    Some(((addr >> 16) as u8, pin as u8, gsi as u32))
                })
                .collect()
        })
        .unwrap_or_default();
    let bridge = out.bridges.len();
    out.bridges.push(BridgeInfo {
        path: path.to_owned(),
        present: false,
        mmio,
        io,
        bus: int(p, path, "_BBN").unwrap_or(0) as u8,
        prt,
        node,
    });
    for slot in p.children(path) {
        if let (Some(sun), Some(adr)) = (int(p, &slot, "_SUN"), int(p, &slot, "_ADR")) {
            out.slots.push(SlotInfo {
                path: slot.clone(),
                sun: SlotId(sun as u16),
                bridge,
                device: (adr >> 16) as u8,
            });
        }
    }
}

impl AcpiScan {
    /// Sets every device's `present` from `sta(path)` (its `_STA` says present), in
    /// namespace order by kind: processors, memory, IO SAPICs, host bridges, chipset
    /// functions.
    pub fn refresh_presence(&mut self, mut sta: impl FnMut(&str) -> bool) {
        for x in &mut self.processors {
            x.present = sta(&x.path);
        }
        for x in &mut self.memory {
            x.present = sta(&x.path);
        }
        for x in &mut self.sapics {
            x.present = sta(&x.path);
        }
        for x in &mut self.bridges {
            x.present = sta(&x.path);
        }
        for x in &mut self.chipset {
            x.present = sta(&x.path);
        }
    }

    /// Whether the device at `path` was present when this scan evaluated its `_STA` (`false`
    /// for a path it does not hold).
    pub fn present_of(&self, path: &str) -> bool {
        let p = |x: &str, present: bool| (x == path).then_some(present);
        self.processors
            .iter()
            .find_map(|x| p(&x.path, x.present))
            .or_else(|| self.memory.iter().find_map(|x| p(&x.path, x.present)))
            .or_else(|| self.sapics.iter().find_map(|x| p(&x.path, x.present)))
            .or_else(|| self.bridges.iter().find_map(|x| p(&x.path, x.present)))
            .or_else(|| self.chipset.iter().find_map(|x| p(&x.path, x.present)))
            .unwrap_or(false)
    }

    /// The memory device no module holds (interleaved memory), if there is one: then no
    /// cell can leave, for each holds a share of every page.
    pub fn interleaved_memory(&self) -> Option<&MemoryInfo> {
        self.memory.iter().find(|m| m.module.is_none())
    }

    /// The slot with `_SUN` `sun`.
    pub fn slot(&self, sun: SlotId) -> Option<&SlotInfo> {
        self.slots.iter().find(|s| s.sun == sun)
    }

    /// The GSI of INTA of the device in slot `sun`, from its bridge's `_PRT`.
    pub fn gsi_of(&self, sun: SlotId) -> Option<u32> {
        let s = self.slot(sun)?;
        self.bridges
            .get(s.bridge)?
            .prt
            .iter()
            .find(|(dev, pin, _)| *dev == s.device && *pin == 0)
            .map(|e| e.2)
    }

    /// The IO SAPIC serving `gsi` (`_GSB` ≤ gsi < `_GSB` + its entry count, which only the
    /// SAPIC's version register tells; `entries` gives it per SAPIC base).
    pub fn sapic_of(&self, gsi: u32, entries: impl Fn(u64) -> u32) -> Option<(&SapicInfo, u32)> {
        self.sapics.iter().find_map(|s| {
            let n = entries(s.base);
            (s.gsi_base..s.gsi_base + n)
                .contains(&gsi)
                .then(|| (s, gsi - s.gsi_base))
        })
    }

    /// The processor with `_UID` `uid`.
    pub fn processor_by_uid(&self, uid: u32) -> Option<&ProcessorInfo> {
        self.processors.iter().find(|c| c.uid == uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acpi_model::PlatformConfig;
    use acpi_model::value::eisa_id;

    #[test]
    fn eisa_ids_round_trip() {
        for s in ["PNP0C80", "PNP0A08", "PNP0A03"] {
            assert_eq!(decode_eisa(eisa_id(s).unwrap()), s);
        }
    }

    #[test]
    fn scan_finds_the_default_machine() {
        let p = Platform::new(&PlatformConfig::default()).unwrap();
        let s = scan(&p);
        assert_eq!(s.processors.len(), 32);
        assert!(s.processors.iter().all(|c| c.present && c.enabled));
        assert_eq!(s.processors[5].uid, 5);
        assert_eq!(s.processors[5].lsapic, LsapicId { id: 1, eid: 1 });
        assert_eq!(s.processors[5].node, 1);
        assert_eq!(s.memory.len(), 8);
        assert!(
            s.memory
                .windows(2)
                .all(|w| w[0].base + w[0].len <= w[1].base)
        );
        assert_eq!(
            s.sapics.len(),
            9,
            "one per I/O subsystem, and the system one"
        );
        assert_eq!(s.bridges.len(), 8);
        assert_eq!(s.slots.len(), 32);
        let gsi = s.gsi_of(SlotId(9)).unwrap();
        let (sapic, entry) = s.sapic_of(gsi, |_| 24).unwrap();
        assert_eq!(sapic.gsi_base + entry, gsi);
    }
}
