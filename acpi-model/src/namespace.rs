//! The ACPI namespace: one module device (ACPI0004) per cell slot holding its processors, its
//! memory device and its chipset host bridge, and one per I/O subsystem slot holding its PCI
//! host bridges (with their hot-plug slots) and its IO SAPIC.
//!
//! ```text
//! \_SB_
//!   CL00 (ACPI0004, cell 0)           _HID _UID _STA _EJ0 _PXM _OST
//!     CP00..CPnn (ACPI0007)           _HID _UID _STA _EJ0 _MAT _PXM _OST
//!     MEM0 (PNP0C80)                  _HID _UID _STA _EJ0 _CRS _PXM _OST
//!     CSB_ (PNP0A03, chipset bus)     _HID _UID _STA _BBN _SEG _CRS _PXM
//!       CCS_ (Cell Configuration Space, device 0)   _ADR _STA
//!   MEMI (PNP0C80, interleaved mode)  _HID _UID _STA _CRS _PXM
//!   IO00 (ACPI0004, I/O subsystem 0)  _HID _UID _STA _EJ0 _PXM _OST
//!     PCI0..PCIn (PNP0A08)            _HID _CID _UID _STA _BBN _SEG _CRS _PRT _PXM
//!       SL01..SLnn (slots)            _ADR _SUN _STA _EJ0 _PS0 _PS3 _OST
//!     SAPC (ACPI0009)                 _HID _UID _STA _GSB _CRS _MAT _PXM
//! ```
//!
//! The namespace's shape is fixed by the configuration — every slot that could hold a cell, a
//! CPU, an I/O subsystem or a card has its node, as in a real DSDT that describes hot-pluggable
//! hardware — and every object is evaluated against the hardware's current state.
//!
//! With interleaved memory (consecutive lines on consecutive cells) no cell owns a range of
//! its own: the cells have no `MEM0`, and one memory device directly under `\_SB_`, `MEMI`,
//! describes all of it — in proximity domain 0, with no `_EJ0` (nothing can remove it: every
//! cell holds every page's lines).

use cells::config::{Geometry, MemoryMode};
use io_subsystem::IoFabric;
use sim_core::{CellId, CpuId, IoSubsystemId, SlotId};

/// What a namespace node stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// The `\_SB_` scope.
    SystemBus,
    /// A cell's module device.
    Cell(CellId),
    /// A processor.
    Processor(CpuId),
    /// A cell's memory device.
    Memory(CellId),
    /// The one memory device of interleaved memory (every cell's lines, not removable).
    InterleavedMemory,
    /// A cell's chipset host bridge.
    ChipsetBridge(CellId),
    /// A cell's chipset function (Cell Configuration Space).
    ChipsetFn(CellId),
    /// An I/O subsystem's module device.
    IoModule(IoSubsystemId),
    /// A PCI host bridge.
    HostBridge(IoSubsystemId, u8),
    /// A hot-plug slot.
    Slot(SlotId),
    /// An IO SAPIC.
    IoSapic(IoSubsystemId),
}

impl NodeKind {
    /// The objects the node has, in the order the DSDT lists them. Methods with side effects
    /// (`_EJ0`, `_PS0`, `_PS3`, `_OST`) are evaluated by firmware; the others are values.
    pub const fn objects(self) -> &'static [&'static str] {
        match self {
            NodeKind::SystemBus => &[],
            NodeKind::Cell(_) | NodeKind::IoModule(_) => {
                &["_HID", "_UID", "_STA", "_PXM", "_EJ0", "_OST"]
            }
            NodeKind::Processor(_) => &["_HID", "_UID", "_STA", "_MAT", "_PXM", "_EJ0", "_OST"],
            NodeKind::Memory(_) => &["_HID", "_UID", "_STA", "_CRS", "_PXM", "_EJ0", "_OST"],
            NodeKind::InterleavedMemory => &["_HID", "_UID", "_STA", "_CRS", "_PXM"],
            NodeKind::ChipsetBridge(_) => &["_HID", "_UID", "_STA", "_BBN", "_SEG", "_CRS", "_PXM"],
            NodeKind::ChipsetFn(_) => &["_ADR", "_STA"],
            NodeKind::HostBridge(..) => &[
                "_HID", "_CID", "_UID", "_STA", "_BBN", "_SEG", "_CRS", "_PRT", "_PXM",
            ],
            NodeKind::Slot(_) => &["_ADR", "_SUN", "_STA", "_EJ0", "_PS0", "_PS3", "_OST"],
            NodeKind::IoSapic(_) => &["_HID", "_UID", "_STA", "_GSB", "_CRS", "_MAT", "_PXM"],
        }
    }
}

/// One node: its absolute path and what it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Absolute path, e.g. `\_SB_.CL00.CP01`.
    pub path: String,
    /// Its last name segment.
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// Its parent's index.
    pub parent: Option<usize>,
}

/// The whole namespace, parents before children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    nodes: Vec<Node>,
}

impl Namespace {
    /// The namespace of a machine of geometry `g` with I/O fabric `io`.
    pub fn new(g: &Geometry, io: &IoFabric) -> Namespace {
        let mut ns = Namespace { nodes: Vec::new() };
        let sb = ns.add(None, "_SB_", NodeKind::SystemBus);
        for c in 0..g.cells {
            let cell = CellId(c as u16);
            let cn = ns.add(Some(sb), &format!("CL{c:02X}"), NodeKind::Cell(cell));
            for p in 0..g.cpus_per_cell {
                let cpu = CpuId((c * g.cpus_per_cell + p) as u32);
                ns.add(Some(cn), &format!("CP{p:02X}"), NodeKind::Processor(cpu));
            }
            if g.memory_mode == MemoryMode::PerCell {
                ns.add(Some(cn), "MEM0", NodeKind::Memory(cell));
            }
            let csb = ns.add(Some(cn), "CSB_", NodeKind::ChipsetBridge(cell));
            ns.add(Some(csb), "CCS_", NodeKind::ChipsetFn(cell));
        }
        if g.memory_mode == MemoryMode::Interleaved {
            ns.add(Some(sb), "MEMI", NodeKind::InterleavedMemory);
        }
        for s in io.subsystems() {
            let m = ns.add(
                Some(sb),
                &format!("IO{:02X}", s.id.0),
                NodeKind::IoModule(s.id),
            );
            for b in &s.bridges {
                let hb = ns.add(
                    Some(m),
                    &format!("PCI{}", b.index),
                    NodeKind::HostBridge(s.id, b.index),
                );
                for sid in &b.slots {
                    if let Some(slot) = io.slot(*sid) {
                        ns.add(
                            Some(hb),
                            &format!("SL{:02X}", slot.device_number),
                            NodeKind::Slot(*sid),
                        );
                    }
                }
            }
            ns.add(Some(m), "SAPC", NodeKind::IoSapic(s.id));
        }
        // The system IO SAPIC (the SCI's), in no module: nothing ejects it.
        ns.add(Some(sb), "SAPC", NodeKind::IoSapic(io.system().id));
        ns
    }

    fn add(&mut self, parent: Option<usize>, name: &str, kind: NodeKind) -> usize {
        let path = match parent {
            Some(p) => format!("{}.{name}", self.nodes[p].path),
            None => format!("\\{name}"),
        };
        self.nodes.push(Node {
            path,
            name: name.to_owned(),
            kind,
            parent,
        });
        self.nodes.len() - 1
    }

    /// Every node, parents first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node at `path` (`\_SB_.CL00`; a leading `\` is optional, `\_SB` may omit the
    /// trailing underscore).
    pub fn find(&self, path: &str) -> Option<&Node> {
        let norm = normalise(path);
        self.nodes.iter().find(|n| n.path == norm)
    }

    /// The node standing for `kind`.
    pub fn node_of(&self, kind: NodeKind) -> Option<&Node> {
        self.nodes.iter().find(|n| n.kind == kind)
    }

    /// The children of node `i`.
    pub fn children(&self, i: usize) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.parent == Some(i))
    }
}

/// Pads every segment to four characters with `_` and adds the root prefix.
pub fn normalise(path: &str) -> String {
    let p = path.trim().trim_start_matches('\\');
    let segs: Vec<String> = p
        .split('.')
        .map(|s| {
            let mut s = s.to_ascii_uppercase();
            while s.len() < 4 {
                s.push('_');
            }
            s
        })
        .collect();
    format!("\\{}", segs.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cells::MachineConfig;
    use io_subsystem::{IoConfig, Surroundings};

    fn ns() -> Namespace {
        let g = MachineConfig::default().validate().unwrap();
        let around = Surroundings {
            cells: 8,
            cpus_per_cell: 4,
            memory_end: g.total_bytes,
        };
        let io = IoFabric::new(&IoConfig::default(), &around, &[true; 8]).unwrap();
        Namespace::new(&g, &io)
    }

    #[test]
    fn every_cell_subsystem_and_slot_has_its_node() {
        let n = ns();
        assert_eq!(
            n.find("\\_SB_.CL03.CP02").unwrap().kind,
            NodeKind::Processor(CpuId(14))
        );
        assert_eq!(
            n.find("_SB.CL07.MEM0").unwrap().kind,
            NodeKind::Memory(CellId(7))
        );
        assert_eq!(
            n.find("\\_SB_.IO02.PCI0.SL01").unwrap().kind,
            NodeKind::Slot(SlotId(9))
        );
        assert_eq!(
            n.find("\\_SB_.IO02.SAPC").unwrap().kind,
            NodeKind::IoSapic(IoSubsystemId(2))
        );
        assert!(n.find("\\_SB_.CL08").is_none());
        let cells = n
            .nodes()
            .iter()
            .filter(|x| matches!(x.kind, NodeKind::Cell(_)))
            .count();
        assert_eq!(cells, 8);
        assert!(
            n.nodes().iter().all(|x| x.name.len() == 4),
            "name segments are 4 characters"
        );
        assert!(n.find("\\_SB_.MEMI").is_none());
    }

    #[test]
    fn interleaved_memory_is_one_device_outside_every_cell() {
        let g = MachineConfig {
            memory_mode: MemoryMode::Interleaved,
            ..MachineConfig::default()
        }
        .validate()
        .unwrap();
        let around = Surroundings {
            cells: 8,
            cpus_per_cell: 4,
            memory_end: g.total_bytes,
        };
        let io = IoFabric::new(&IoConfig::default(), &around, &[true; 8]).unwrap();
        let n = Namespace::new(&g, &io);
        let mem: Vec<&Node> = n
            .nodes()
            .iter()
            .filter(|x| matches!(x.kind, NodeKind::Memory(_) | NodeKind::InterleavedMemory))
            .collect();
        assert_eq!(mem.len(), 1);
        assert_eq!(mem[0].path, "\\_SB_.MEMI");
        assert_eq!(mem[0].parent, Some(0));
        assert!(!NodeKind::InterleavedMemory.objects().contains(&"_EJ0"));
    }
}
