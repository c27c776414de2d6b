//! PCI configuration space of one function (type 0 header), with BAR sizing semantics.

use serde::Serialize;

pub use sim_core::abi::pci::{cmd, reg};

/// What a BAR maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BarKind {
    /// 64-bit memory (uses two BAR registers).
    Mem64,
    /// I/O ports.
    Io,
}

/// The shape of one implemented BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BarDef {
    /// BAR register index (0–5).
    pub index: u8,
    /// Memory or I/O.
    pub kind: BarKind,
    /// Size in bytes (a power of two).
    pub size: u64,
}

/// 256 bytes of configuration space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSpace {
    regs: [u32; 64],
    writable: [u32; 64],
    bars: Vec<BarDef>,
}

impl ConfigSpace {
    /// A type-0 function in its reset state: ids and class set, BARs zero, decode off.
    pub fn new(vendor: u16, device: u16, class: u32, pin: u8, bars: Vec<BarDef>) -> Self {
        let mut regs = [0u32; 64];
        let mut writable = [0u32; 64];
        regs[usize::from(reg::ID / 4)] = u32::from(vendor) | u32::from(device) << 16;
        regs[usize::from(reg::CLASS / 4)] = (class << 8) | 0x01;
        regs[usize::from(reg::SUBSYSTEM / 4)] = u32::from(vendor) | 0x1 << 16;
        regs[usize::from(reg::INTERRUPT / 4)] = u32::from(pin) << 8;
        writable[usize::from(reg::COMMAND / 4)] =
            cmd::IO | cmd::MEMORY | cmd::BUS_MASTER | cmd::INTX_DISABLE;
        writable[usize::from(reg::INTERRUPT / 4)] = 0xFF;
        for b in &bars {
            let i = usize::from(reg::BAR0 / 4) + usize::from(b.index);
            match b.kind {
                BarKind::Mem64 => {
                    regs[i] = 0b0100; // 64-bit, non-prefetchable memory
                    writable[i] = !(b.size.saturating_sub(1) as u32) & 0xFFFF_FFF0;
                    writable[i + 1] = !((b.size.saturating_sub(1) >> 32) as u32);
                }
                BarKind::Io => {
                    regs[i] = 0b01;
                    writable[i] = !(b.size.saturating_sub(1) as u32) & 0xFFFF_FFFC;
                }
            }
        }
        ConfigSpace {
            regs,
            writable,
            bars,
        }
    }

    /// Sets a read-only register (device-specific registers of chipset functions).
    pub(crate) fn set_fixed(&mut self, offset: u16, value: u32) {
        if let Some(r) = self.regs.get_mut(usize::from(offset / 4)) {
            *r = value;
        }
    }

    /// Makes bits of a register writable.
    pub(crate) fn set_writable(&mut self, offset: u16, mask: u32) {
        if let Some(w) = self.writable.get_mut(usize::from(offset / 4)) {
            *w = mask;
        }
    }

    /// Reads the aligned dword at `offset`.
    pub fn read(&self, offset: u16) -> u32 {
        self.regs
            .get(usize::from(offset / 4))
            .copied()
            .unwrap_or(u32::MAX)
    }

    /// Writes the aligned dword at `offset` (read-only bits keep their value).
    pub fn write(&mut self, offset: u16, value: u32) {
        let i = usize::from(offset / 4);
        if let (Some(r), Some(&w)) = (self.regs.get_mut(i), self.writable.get(i)) {
            *r = (*r & !w) | (value & w);
        }
    }

    /// The implemented BARs.
    pub fn bar_defs(&self) -> &[BarDef] {
        &self.bars
    }

    /// The address a BAR currently holds.
    pub fn bar_address(&self, def: &BarDef) -> u64 {
        let i = usize::from(reg::BAR0 / 4) + usize::from(def.index);
        match def.kind {
            BarKind::Mem64 => {
                u64::from(self.regs[i] & 0xFFFF_FFF0) | u64::from(self.regs[i + 1]) << 32
            }
            BarKind::Io => u64::from(self.regs[i] & 0xFFFF_FFFC),
        }
    }

    /// The command register.
    pub fn command(&self) -> u32 {
        self.regs[usize::from(reg::COMMAND / 4)] & 0xFFFF
    }

    /// The ranges this function decodes now: `(kind, base, size)` for each BAR whose space is
    /// enabled in the command register.
    pub fn decoded(&self) -> Vec<(BarKind, u64, u64)> {
        let c = self.command();
        self.bars
            .iter()
            .filter(|b| match b.kind {
                BarKind::Mem64 => c & cmd::MEMORY != 0,
                BarKind::Io => c & cmd::IO != 0,
            })
            .map(|b| (b.kind, self.bar_address(b), b.size))
            .collect()
    }

    /// Whether `offset` is one of the BAR registers or the command register.
    pub fn is_decode_register(offset: u16) -> bool {
        offset == reg::COMMAND || (reg::BAR0..reg::BAR0 + 24).contains(&offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> ConfigSpace {
        ConfigSpace::new(
            0x8086,
            0x1010,
            0x020000,
            1,
            vec![
                BarDef {
                    index: 0,
                    kind: BarKind::Mem64,
                    size: 128 << 10,
                },
                BarDef {
                    index: 2,
                    kind: BarKind::Io,
                    size: 64,
                },
            ],
        )
    }

    #[test]
    fn ids_are_read_only_and_bars_size_themselves() {
        let mut c = dev();
        c.write(reg::ID, 0);
        assert_eq!(c.read(reg::ID), 0x1010_8086);
        c.write(reg::BAR0, u32::MAX);
        c.write(reg::BAR0 + 4, u32::MAX);
        assert_eq!(c.read(reg::BAR0), 0xFFFE_0004, "size 128KiB, 64-bit memory");
        assert_eq!(c.read(reg::BAR0 + 4), u32::MAX);
        c.write(reg::BAR0 + 8, u32::MAX);
        assert_eq!(c.read(reg::BAR0 + 8), 0xFFFF_FFC1, "64 ports");
        assert_eq!(c.read(reg::BAR0 + 12), 0, "unimplemented BAR reads zero");
    }

    #[test]
    fn decode_follows_the_command_register() {
        let mut c = dev();
        c.write(reg::BAR0, 0x2000_0000);
        c.write(reg::BAR0 + 4, 0x80);
        c.write(reg::BAR0 + 8, 0x1040);
        assert!(c.decoded().is_empty());
        c.write(reg::COMMAND, cmd::MEMORY | cmd::BUS_MASTER);
        assert_eq!(
            c.decoded(),
            vec![(BarKind::Mem64, 0x80_2000_0000, 128 << 10)]
        );
        c.write(reg::COMMAND, cmd::MEMORY | cmd::IO);
        assert_eq!(c.decoded().len(), 2);
        assert_eq!(c.read(reg::INTERRUPT) >> 8 & 0xFF, 1, "INTA");
    }
}
