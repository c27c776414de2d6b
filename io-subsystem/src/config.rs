//! The `[io]` table: I/O subsystems, their host bridges and slots, the cards in the slots, and
//! how firmware lays out bus numbers, I/O ports, MMIO and interrupt lines.
//!
//! Defaults follow the seed machine: 8 I/O subsystems, each with one PCI host bridge and its
//! hot-plug slots, one IO SAPIC each. Validation ([`IoConfig::validate`]) runs before anything is
//! built and names the offending field (relative to `[io]`, e.g. `device[2].slot`).

use serde::{Deserialize, Serialize};
use sim_core::ByteSize;
use thiserror::Error;

/// Kinds of card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A network adapter: receive ring filled by DMA, one interrupt line.
    Nic,
    /// A storage adapter: the same DMA engine with another identity and BAR layout.
    Disk,
}

/// One card in one slot at power-on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// I/O subsystem.
    pub subsystem: u16,
    /// Host bridge within the subsystem.
    #[serde(default)]
    pub bridge: u8,
    /// Slot within the bridge.
    pub slot: u8,
    /// What card.
    pub kind: DeviceKind,
    /// Size of the register BAR (default: the kind's).
    #[serde(default)]
    pub bar_size: Option<ByteSize>,
    /// The CPU the boot setup routes the card's interrupt to (default: the first CPU of the
    /// subsystem's attached cell).
    #[serde(default)]
    pub irq_cpu: Option<u32>,
    /// Nanoseconds between two records the card writes by DMA once running.
    #[serde(default)]
    pub period_ns: Option<u64>,
    /// Size of a storage card's medium (default: the kind's; a whole number of 512-byte
    /// sectors; a network card has none).
    #[serde(default)]
    pub capacity: Option<ByteSize>,
    /// Nanoseconds from a block command's doorbell to its completion at the least (default:
    /// the kind's).
    #[serde(default)]
    pub latency_ns: Option<u64>,
    /// Bytes per second the medium moves (default: the kind's): commands overlap their
    /// latency, but their transfers follow one another.
    #[serde(default)]
    pub bandwidth: Option<ByteSize>,
}

/// The whole `[io]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IoConfig {
    /// I/O subsystem slots.
    pub subsystems: u16,
    /// Which are populated at start (default all).
    pub present: Option<Vec<u16>>,
    /// PCI host bridges per subsystem.
    pub bridges: u8,
    /// Hot-plug slots per bridge.
    pub slots: u8,
    /// Bus numbers firmware reserves per bridge (its root bus plus spare for hot-plug).
    pub bus_numbers: u16,
    /// I/O port window per bridge.
    pub io_ports: ByteSize,
    /// MMIO window per bridge.
    pub mmio: ByteSize,
    /// Redirection entries (interrupt inputs) per IO SAPIC.
    pub sapic_entries: u16,
    /// GSI base of each subsystem's IO SAPIC (default `i * sapic_entries`).
    pub gsi_bases: Option<Vec<u32>>,
    /// The cell each subsystem is attached to, for NUMA proximity (default `i % cells`).
    pub attached_cells: Option<Vec<u16>>,
    /// Start of the I/O address region (IO SAPIC registers and MMIO windows); must lie above
    /// memory.
    pub base: u64,
    /// The cards.
    pub device: Vec<DeviceConfig>,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            subsystems: 8,
            present: None,
            bridges: 1,
            slots: 4,
            bus_numbers: 16,
            io_ports: ByteSize(4 << 10),
            mmio: ByteSize(256 << 20),
            sapic_entries: 24,
            gsi_bases: None,
            attached_cells: None,
            base: 0x80_0000_0000,
            device: Vec::new(),
        }
    }
}

/// A configuration that cannot be built: the field (relative to `[io]`) and why.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct IoConfigError {
    /// Dotted path of the offending field.
    pub field: String,
    /// What is wrong, with the values.
    pub message: String,
}

pub(crate) fn err(field: impl Into<String>, message: String) -> IoConfigError {
    IoConfigError {
        field: field.into(),
        message,
    }
}

/// Redirection entries of the system IO SAPIC: the one in the chipset, outside every I/O
/// subsystem, which no hot-plug removes. Its input 0 is the SCI (the FADT's `SCI_INT`).
pub const SYSTEM_SAPIC_ENTRIES: u16 = 8;

/// Bus numbers from this one up belong to the cells' chipset functions (one bus per cell).
pub const CHIPSET_BUS_TOP: u16 = 0xFF;

/// What the machine around the I/O looks like, as far as validation needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Surroundings {
    /// Cell slots.
    pub cells: u16,
    /// CPUs per cell.
    pub cpus_per_cell: u16,
    /// End of physical memory.
    pub memory_end: u64,
}

impl DeviceKind {
    /// PCI vendor and device ids.
    pub const fn ids(self) -> (u16, u16) {
        match self {
            DeviceKind::Nic => (0x8086, 0x1010),
            DeviceKind::Disk => (0x1000, 0x0030),
        }
    }
    /// Class code (24 bits).
    pub const fn class(self) -> u32 {
        match self {
            DeviceKind::Nic => 0x02_00_00,
            DeviceKind::Disk => 0x01_00_00,
        }
    }
    /// Default size of the 64-bit register BAR.
    pub const fn default_bar(self) -> u64 {
        match self {
            DeviceKind::Nic => 128 << 10,
            DeviceKind::Disk => 64 << 10,
        }
    }
    /// Size of the I/O port BAR.
    pub const fn io_bar(self) -> u64 {
        match self {
            DeviceKind::Nic => 64,
            DeviceKind::Disk => 256,
        }
    }
    /// Default record period.
    pub const fn default_period_ns(self) -> u64 {
        match self {
            DeviceKind::Nic => 5_000,
            DeviceKind::Disk => 12_000,
        }
    }
    /// Default size of its medium in bytes (0: it has none).
    pub const fn default_capacity(self) -> u64 {
        match self {
            DeviceKind::Nic => 0,
            DeviceKind::Disk => 1 << 30,
        }
    }
    /// Default time from a block command's doorbell to its completion, at the least.
    pub const fn default_latency_ns(self) -> u64 {
        match self {
            DeviceKind::Nic => 0,
            DeviceKind::Disk => 40_000,
        }
    }
    /// Default bytes per second its medium moves (a page of 16 KiB in 2 µs).
    pub const fn default_bandwidth(self) -> u64 {
        match self {
            DeviceKind::Nic => 0,
            DeviceKind::Disk => 8 << 30,
        }
    }
    /// Name used in files.
    pub const fn name(self) -> &'static str {
        match self {
            DeviceKind::Nic => "nic",
            DeviceKind::Disk => "disk",
        }
    }
}

impl IoConfig {
    /// GSI base of subsystem `i`.
    pub fn gsi_base(&self, i: usize) -> u32 {
        self.gsi_bases
            .as_ref()
            .and_then(|v| v.get(i).copied())
            .unwrap_or(i as u32 * u32::from(self.sapic_entries))
    }

    /// GSI base of the system IO SAPIC: above every subsystem's range (so the SCI keeps its
    /// number whatever I/O is plugged in).
    pub fn system_gsi_base(&self) -> u32 {
        (0..usize::from(self.subsystems))
            .map(|i| self.gsi_base(i) + u32::from(self.sapic_entries))
            .max()
            .unwrap_or(0)
    }

    /// Cell subsystem `i` is attached to.
    pub fn attached_cell(&self, i: usize, cells: u16) -> u16 {
        self.attached_cells
            .as_ref()
            .and_then(|v| v.get(i).copied())
            .unwrap_or((i % usize::from(cells.max(1))) as u16)
    }

    /// Whether subsystem `i` is populated at start.
    pub fn is_present(&self, i: usize) -> bool {
        self.present
            .as_ref()
            .is_none_or(|v| v.iter().any(|&p| usize::from(p) == i))
    }

    /// Bytes between two subsystems' regions: the IO SAPIC page plus the bridges' MMIO
    /// windows, rounded up to a power of two.
    pub fn stride(&self) -> u64 {
        (SAPIC_REGION + u64::from(self.bridges) * self.mmio.bytes()).next_power_of_two()
    }

    /// Checks every field against itself and the machine around it.
    pub fn validate(&self, around: &Surroundings) -> Result<(), IoConfigError> {
        let n = usize::from(self.subsystems);
        if self.subsystems > 64 {
            return Err(err("subsystems", format!("{} exceeds 64", self.subsystems)));
        }
        if let Some(list) = &self.present {
            let mut seen = vec![false; n];
            for (i, &p) in list.iter().enumerate() {
                let slot = seen.get_mut(usize::from(p)).ok_or_else(|| {
                    err(
                        format!("present[{i}]"),
                        format!("I/O subsystem {p} does not exist (subsystems = {n})"),
                    )
                })?;
                if std::mem::replace(slot, true) {
                    return Err(err(format!("present[{i}]"), format!("{p} is listed twice")));
                }
            }
        }
        if self.bridges == 0 || self.bridges > 8 {
            return Err(err(
                "bridges",
                format!("{} must be between 1 and 8", self.bridges),
            ));
        }
        if self.slots > 31 {
            return Err(err(
                "slots",
                format!("{} exceeds the 31 device numbers of a PCI bus", self.slots),
            ));
        }
        let bridges_total = n as u64 * u64::from(self.bridges);
        if self.bus_numbers == 0 {
            return Err(err(
                "bus_numbers",
                "must be at least 1 (the root bus)".into(),
            ));
        }
        let chipset_floor = u64::from(CHIPSET_BUS_TOP + 1) - u64::from(around.cells);
        let buses = bridges_total * u64::from(self.bus_numbers);
        if buses > chipset_floor {
            return Err(err(
                "bus_numbers",
                format!(
                    "{bridges_total} bridges x {} bus numbers = {buses} do not fit below the \
                     {} buses kept for the cells' chipset functions (bus {chipset_floor:#x} up)",
                    self.bus_numbers, around.cells
                ),
            ));
        }
        let ports = self.io_ports.bytes();
        if ports == 0 || !ports.is_power_of_two() || ports < 256 {
            return Err(err(
                "io_ports",
                format!("{} must be a power of two of at least 256", self.io_ports),
            ));
        }
        if IO_PORT_FLOOR + bridges_total * ports > 0x1_0000 {
            return Err(err(
                "io_ports",
                format!(
                    "{bridges_total} bridges x {} do not fit in the 64KiB I/O port space above \
                     {IO_PORT_FLOOR:#x}",
                    self.io_ports
                ),
            ));
        }
        let mmio = self.mmio.bytes();
        if !mmio.is_power_of_two() || mmio < (1 << 20) {
            return Err(err(
                "mmio",
                format!("{} must be a power of two of at least 1MiB", self.mmio),
            ));
        }
        if self.base < around.memory_end {
            return Err(err(
                "base",
                format!(
                    "{:#x} lies inside memory, which ends at {:#x}",
                    self.base, around.memory_end
                ),
            ));
        }
        if self.base % self.stride() != 0 {
            return Err(err(
                "base",
                format!(
                    "{:#x} is not aligned to the per-subsystem stride {:#x}",
                    self.base,
                    self.stride()
                ),
            ));
        }
        // The subsystems, the system IO SAPIC's stride after them, and the firmware mailbox.
        if self
            .stride()
            .checked_mul(n as u64 + 2)
            .and_then(|s| s.checked_add(self.base))
            .is_none()
        {
            return Err(err(
                "base",
                "the I/O region runs past the 64-bit address space".into(),
            ));
        }
        let lines = u64::from(self.bridges) * u64::from(self.slots);
        if self.sapic_entries == 0
            || u64::from(self.sapic_entries) < lines
            || self.sapic_entries > 240
        {
            return Err(err(
                "sapic_entries",
                format!(
                    "{} must be between {lines} (one line per slot) and 240",
                    self.sapic_entries
                ),
            ));
        }
        if let Some(bases) = &self.gsi_bases {
            if bases.len() != n {
                return Err(err(
                    "gsi_bases",
                    format!("lists {} bases for {n} I/O subsystems", bases.len()),
                ));
            }
            // The system IO SAPIC's GSIs come after every subsystem's, and the SCI's number
            // must fit the FADT's 16-bit SCI_INT.
            let room = 0x1_0000 - u64::from(SYSTEM_SAPIC_ENTRIES);
            if let Some((i, b)) = bases
                .iter()
                .enumerate()
                .find(|(_, b)| u64::from(**b) + u64::from(self.sapic_entries) > room)
            {
                return Err(err(
                    format!("gsi_bases[{i}]"),
                    format!(
                        "GSIs {b}.. of I/O subsystem {i} end above {room}: the system IO SAPIC's {SYSTEM_SAPIC_ENTRIES} GSIs (the SCI's, a 16-bit FADT field) must follow below 65536"
                    ),
                ));
            }
        }
        // Two subsystems present at start may not share a GSI. One inserted later may come
        // with a board whose firmware claims GSIs already in use: the OS must refuse it then.
        let entries = u32::from(self.sapic_entries);
        for i in 0..n {
            let (a, a_end) = (self.gsi_base(i), self.gsi_base(i) + entries);
            for j in 0..i {
                let (b, b_end) = (self.gsi_base(j), self.gsi_base(j) + entries);
                if a < b_end && b < a_end && self.is_present(i) && self.is_present(j) {
                    return Err(err(
                        format!("gsi_bases[{i}]"),
                        format!(
                            "GSIs {a}..{a_end} of I/O subsystem {i} overlap GSIs {b}..{b_end} \
                             of I/O subsystem {j}"
                        ),
                    ));
                }
            }
        }
        if let Some(cells) = &self.attached_cells {
            if cells.len() != n {
                return Err(err(
                    "attached_cells",
                    format!("lists {} cells for {n} I/O subsystems", cells.len()),
                ));
            }
            if let Some((i, c)) = cells.iter().enumerate().find(|(_, c)| **c >= around.cells) {
                return Err(err(
                    format!("attached_cells[{i}]"),
                    format!("cell {c} does not exist (cells = {})", around.cells),
                ));
            }
        }
        let mut occupied: Vec<Option<usize>> =
            vec![None; n * usize::from(self.bridges) * usize::from(self.slots)];
        let cpus = u32::from(around.cells) * u32::from(around.cpus_per_cell);
        for (k, d) in self.device.iter().enumerate() {
            let f = |name: &str| format!("device[{k}].{name}");
            if usize::from(d.subsystem) >= n {
                return Err(err(
                    f("subsystem"),
                    format!(
                        "I/O subsystem {} does not exist (subsystems = {n})",
                        d.subsystem
                    ),
                ));
            }
            if !self.is_present(usize::from(d.subsystem)) {
                return Err(err(
                    f("subsystem"),
                    format!("I/O subsystem {} is not present at start", d.subsystem),
                ));
            }
            if d.bridge >= self.bridges {
                return Err(err(
                    f("bridge"),
                    format!(
                        "bridge {} does not exist (bridges = {})",
                        d.bridge, self.bridges
                    ),
                ));
            }
            if d.slot >= self.slots {
                return Err(err(
                    f("slot"),
                    format!("slot {} does not exist (slots = {})", d.slot, self.slots),
                ));
            }
            let idx = (usize::from(d.subsystem) * usize::from(self.bridges)
                + usize::from(d.bridge))
                * usize::from(self.slots)
                + usize::from(d.slot);
            if let Some(other) = occupied[idx].replace(k) {
                return Err(err(
                    f("slot"),
                    format!(
                        "I/O subsystem {} bridge {} slot {} already holds device[{other}]: one \
                         card per slot",
                        d.subsystem, d.bridge, d.slot
                    ),
                ));
            }
            if let Some(b) = d.bar_size {
                if !b.bytes().is_power_of_two() || b.bytes() < 4096 {
                    return Err(err(
                        f("bar_size"),
                        format!("{b} must be a power of two of at least 4KiB"),
                    ));
                }
            }
            if let Some(c) = d.irq_cpu {
                if c >= cpus {
                    return Err(err(
                        f("irq_cpu"),
                        format!(
                            "cpu{c} is no CPU: the IO SAPIC destination must be one of the \
                                 machine's {cpus} CPUs"
                        ),
                    ));
                }
            }
            if d.period_ns == Some(0) {
                return Err(err(f("period_ns"), "must be at least 1".into()));
            }
            if d.latency_ns == Some(0) {
                return Err(err(f("latency_ns"), "must be at least 1".into()));
            }
            if d.bandwidth.is_some_and(|b| b.bytes() < 1 << 20) {
                return Err(err(
                    f("bandwidth"),
                    format!(
                        "{} per second is below 1MiB per second",
                        d.bandwidth.unwrap_or_default()
                    ),
                ));
            }
            for (name, set) in [
                ("capacity", d.capacity.is_some()),
                ("latency_ns", d.latency_ns.is_some()),
                ("bandwidth", d.bandwidth.is_some()),
            ] {
                if set && d.kind.default_capacity() == 0 {
                    return Err(err(
                        f(name),
                        format!("a {} card has no medium", d.kind.name()),
                    ));
                }
            }
            if let Some(c) = d.capacity {
                if c.bytes() == 0 || c.bytes() % crate::device::SECTOR_BYTES != 0 {
                    return Err(err(
                        f("capacity"),
                        format!("{c} must be a positive whole number of 512-byte sectors"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Bytes of each subsystem region taken by the IO SAPIC registers (the MMIO windows follow).
pub const SAPIC_REGION: u64 = 0x10_0000;
/// First I/O port given to bridges (below it: legacy ports).
pub const IO_PORT_FLOOR: u64 = 0x1000;

#[cfg(test)]
mod tests {
    use super::*;

    const AROUND: Surroundings = Surroundings {
        cells: 8,
        cpus_per_cell: 4,
        memory_end: 4 << 30,
    };

    fn nic(subsystem: u16, slot: u8) -> DeviceConfig {
        DeviceConfig {
            subsystem,
            bridge: 0,
            slot,
            kind: DeviceKind::Nic,
            bar_size: None,
            irq_cpu: None,
            period_ns: None,
            capacity: None,
            latency_ns: None,
            bandwidth: None,
        }
    }

    fn field(c: &IoConfig) -> String {
        c.validate(&AROUND).unwrap_err().field
    }

    #[test]
    fn the_default_is_valid() {
        IoConfig::default().validate(&AROUND).unwrap();
        assert_eq!(IoConfig::default().gsi_base(3), 72);
    }

    #[test]
    fn two_cards_in_one_slot_are_refused() {
        let c = IoConfig {
            device: vec![nic(0, 1), nic(0, 2), nic(0, 1)],
            ..IoConfig::default()
        };
        let e = c.validate(&AROUND).unwrap_err();
        assert_eq!(e.field, "device[2].slot");
        assert!(e.message.contains("already holds device[0]"), "{e}");
    }

    #[test]
    fn overlapping_gsi_ranges_are_refused() {
        let mut c = IoConfig {
            gsi_bases: Some(vec![0, 24, 48, 60, 96, 120, 144, 168]),
            ..IoConfig::default()
        };
        assert_eq!(field(&c), "gsi_bases[3]");
        c.gsi_bases = Some(vec![0, 24]);
        assert_eq!(field(&c), "gsi_bases");
        c.gsi_bases = Some(vec![0, 24, 48, 72, 96, 120, 144, 65_520]);
        assert_eq!(field(&c), "gsi_bases[7]", "no room left for the SCI's GSIs");
    }

    #[test]
    fn only_a_storage_card_has_a_medium_of_whole_sectors() {
        let mut d = nic(1, 0);
        d.capacity = Some(ByteSize(1 << 20));
        let mut c = IoConfig {
            device: vec![d],
            ..IoConfig::default()
        };
        let e = c.validate(&AROUND).unwrap_err();
        assert_eq!(e.field, "device[0].capacity");
        assert!(e.message.contains("a nic card has no medium"), "{e}");
        c.device[0].kind = DeviceKind::Disk;
        c.validate(&AROUND).unwrap();
        c.device[0].capacity = Some(ByteSize(1000));
        assert_eq!(field(&c), "device[0].capacity");
        c.device[0].capacity = None;
        c.device[0].latency_ns = Some(0);
        assert_eq!(field(&c), "device[0].latency_ns");
    }

    #[test]
    fn an_interrupt_destination_must_be_a_cpu() {
        let mut d = nic(1, 0);
        d.irq_cpu = Some(32);
        let c = IoConfig {
            device: vec![d],
            ..IoConfig::default()
        };
        assert_eq!(field(&c), "device[0].irq_cpu");
    }

    #[test]
    fn layout_limits_name_their_field() {
        let d = IoConfig::default;
        assert_eq!(
            field(&IoConfig {
                bus_numbers: 40,
                ..d()
            }),
            "bus_numbers"
        );
        assert_eq!(
            field(&IoConfig {
                io_ports: ByteSize(16 << 10),
                ..d()
            }),
            "io_ports"
        );
        assert_eq!(
            field(&IoConfig {
                mmio: ByteSize(3 << 20),
                ..d()
            }),
            "mmio"
        );
        assert_eq!(
            field(&IoConfig {
                base: 1 << 20,
                ..d()
            }),
            "base"
        );
        assert_eq!(
            field(&IoConfig {
                sapic_entries: 2,
                ..d()
            }),
            "sapic_entries"
        );
        assert_eq!(field(&IoConfig { slots: 40, ..d() }), "slots");
        assert_eq!(
            field(&IoConfig {
                present: Some(vec![0, 9]),
                ..d()
            }),
            "present[1]"
        );
        let c = IoConfig {
            present: Some(vec![0]),
            device: vec![nic(1, 0)],
            ..d()
        };
        assert_eq!(field(&c), "device[0].subsystem");
    }
}
