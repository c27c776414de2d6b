//! Typed identifiers for everything a checker can name.
//!
//! Each id is a newtype so that a CPU number can never be passed where a cell number is
//! expected. Ids are dense indices assigned by the machine configuration (hardware slot order);
//! the OS model keeps its own logical numbering on top of them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::addr::PhysAddr;

macro_rules! dense_id {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// The id as an index into dense per-entity arrays.
            #[inline]
            pub const fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

dense_id!(
    /// A cell board slot (CPUs + memory), `0..cells`.
    CellId(u16),
    "cell"
);
dense_id!(
    /// A CPU in hardware slot order: `cell * cpus_per_cell + position`. This is the number
    /// firmware uses; it is not the OS's logical CPU number.
    CpuId(u32),
    "cpu"
);
dense_id!(
    /// An I/O subsystem (PCI host bridges, slots, one IO SAPIC), `0..io_subsystems`.
    IoSubsystemId(u16),
    "iosub"
);
dense_id!(
    /// A PCI slot, numbered across the machine.
    SlotId(u16),
    "slot"
);
dense_id!(
    /// A global system interrupt number.
    Gsi(u32),
    "gsi"
);
dense_id!(
    /// An operating-system instance (a partition or one kernel of a multi-kernel setup).
    OsId(u16),
    "os"
);

/// The physical local-SAPIC identity of a CPU, as firmware reports it in `_MAT`/MADT:
/// an 8-bit `id` and an 8-bit `eid`. Linux on ia64 combines them as `(id << 8) | eid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LsapicId {
    /// The LSAPIC id field.
    pub id: u8,
    /// The LSAPIC extended id field.
    pub eid: u8,
}

impl LsapicId {
    /// The 16-bit physical id `(id << 8) | eid`.
    pub const fn physical(self) -> u16 {
        ((self.id as u16) << 8) | self.eid as u16
    }
}

impl fmt::Display for LsapicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lsapic {:#04x}:{:#04x}", self.id, self.eid)
    }
}

/// Anything that can issue an access or be its target: the two ends a violation names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Entity {
    /// A CPU (and its cache).
    Cpu(CpuId),
    /// A whole cell board.
    Cell(CellId),
    /// A physical memory word.
    Memory(PhysAddr),
    /// A cache line, named by its first byte.
    Line(PhysAddr),
    /// An I/O subsystem.
    IoSubsystem(IoSubsystemId),
    /// A PCI slot.
    Slot(SlotId),
    /// An interrupt line.
    Gsi(Gsi),
    /// A PCI function (a device in a slot, or a chipset device).
    Pci(crate::port::Bdf),
    /// The IO SAPIC of an I/O subsystem.
    IoSapic(IoSubsystemId),
    /// A PCI host bridge: I/O subsystem and bridge index within it.
    HostBridge(IoSubsystemId, u8),
    /// An address that no device decodes (MMIO or I/O port).
    Unclaimed(u64),
    /// An OS instance.
    Os(OsId),
    /// System firmware (SAL/PAL/ACPI).
    Firmware,
    /// The random tester or another test driver.
    Tester,
    /// The machine as a whole.
    Machine,
    /// An OS task (thread), by its task id.
    Task(u32),
    /// An OS object: its kind (`"cpu-maps"`, `"irq"`, `"csd"`, …) and its number.
    Object(&'static str, u64),
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entity::Cpu(c) => write!(f, "{c}"),
            Entity::Cell(c) => write!(f, "{c}"),
            Entity::Memory(a) => write!(f, "mem {a}"),
            Entity::Line(a) => write!(f, "line {a}"),
            Entity::IoSubsystem(i) => write!(f, "{i}"),
            Entity::Slot(s) => write!(f, "{s}"),
            Entity::Gsi(g) => write!(f, "{g}"),
            Entity::Pci(b) => write!(f, "pci {b}"),
            Entity::IoSapic(i) => write!(f, "{i} iosapic"),
            Entity::HostBridge(i, b) => write!(f, "{i} bridge{b}"),
            Entity::Unclaimed(a) => write!(f, "unclaimed {a:#x}"),
            Entity::Os(o) => write!(f, "{o}"),
            Entity::Firmware => write!(f, "firmware"),
            Entity::Tester => write!(f, "tester"),
            Entity::Machine => write!(f, "machine"),
            Entity::Task(t) => write!(f, "task {t}"),
            Entity::Object(kind, n) => write!(f, "{kind} {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_with_their_kind() {
        assert_eq!(CpuId(7).to_string(), "cpu7");
        assert_eq!(CellId(2).to_string(), "cell2");
        assert_eq!(Entity::Line(PhysAddr::new(0x80)).to_string(), "line 0x80");
    }

    #[test]
    fn lsapic_physical_id_combines_id_and_eid() {
        let l = LsapicId { id: 3, eid: 1 };
        assert_eq!(l.physical(), 0x0301);
        assert_eq!(l.to_string(), "lsapic 0x03:0x01");
    }
}
