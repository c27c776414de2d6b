//! Physical addresses, page frame numbers and byte sizes, with explicit checked arithmetic.
//!
//! Every operation that can overflow has a `checked_*` form returning `None`; errors built
//! from them carry the offending address (see `vm-memory`'s `GuestAddress` for the model).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A physical byte address.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct PhysAddr(u64);

impl PhysAddr {
    /// The address `raw`.
    #[inline]
    pub const fn new(raw: u64) -> Self {
        PhysAddr(raw)
    }
    /// The raw address.
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }
    /// `self + off`, or `None` on overflow.
    #[inline]
    pub const fn checked_add(self, off: u64) -> Option<PhysAddr> {
        match self.0.checked_add(off) {
            Some(v) => Some(PhysAddr(v)),
            None => None,
        }
    }
    /// `self - off`, or `None` on underflow.
    #[inline]
    pub const fn checked_sub(self, off: u64) -> Option<PhysAddr> {
        match self.0.checked_sub(off) {
            Some(v) => Some(PhysAddr(v)),
            None => None,
        }
    }
    /// Bytes from `base` up to `self`, or `None` if `base` is above `self`.
    #[inline]
    pub const fn offset_from(self, base: PhysAddr) -> Option<u64> {
        self.0.checked_sub(base.0)
    }
    /// Rounds down to a multiple of `align`, which must be a power of two.
    #[inline]
    pub const fn align_down(self, align: u64) -> PhysAddr {
        debug_assert!(align.is_power_of_two());
        PhysAddr(self.0 & !(align - 1))
    }
    /// Whether the address is a multiple of `align` (a power of two).
    #[inline]
    pub const fn is_aligned(self, align: u64) -> bool {
        debug_assert!(align.is_power_of_two());
        self.0 & (align - 1) == 0
    }
    /// The frame holding this address for pages of `1 << page_shift` bytes.
    #[inline]
    pub const fn pfn(self, page_shift: u32) -> Pfn {
        Pfn(self.0 >> page_shift)
    }
}

impl fmt::Display for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// A page frame number: physical address divided by the page size.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The first byte of the frame, or `None` if it does not fit in 64 bits.
    #[inline]
    pub const fn base(self, page_shift: u32) -> Option<PhysAddr> {
        if page_shift >= 64 || self.0 > (u64::MAX >> page_shift) {
            None
        } else {
            Some(PhysAddr(self.0 << page_shift))
        }
    }
    /// `self + n`, or `None` on overflow.
    #[inline]
    pub const fn checked_add(self, n: u64) -> Option<Pfn> {
        match self.0.checked_add(n) {
            Some(v) => Some(Pfn(v)),
            None => None,
        }
    }
    /// The frame number as an index into dense per-frame arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfn {:#x}", self.0)
    }
}

/// A size in bytes, written in scenario files either as an integer or as a string with a
/// binary unit: `"16KiB"`, `"512MiB"`, `"3MiB"`, `"2GiB"` (decimal `KB`/`MB`/`GB` are
/// accepted and mean the same powers of 1024, as firmware tables do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Parses `"512MiB"`, `"16 KiB"`, `"4096"`.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '_'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: String = num.chars().filter(|&c| c != '_').collect();
        let shift = match unit.trim() {
            "" | "B" => 0,
            "KiB" | "KB" | "K" => 10,
            "MiB" | "MB" | "M" => 20,
            "GiB" | "GB" | "G" => 30,
            "TiB" | "TB" | "T" => 40,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{text}` (use B, KiB, MiB, GiB or TiB)"
                ));
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{text}` is not a size (expected e.g. `512MiB`)"))?;
        n.checked_mul(1u64 << shift)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{text}` does not fit in 64 bits"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if b >= (1 << shift) && b % (1 << shift) == 0 {
                return write!(f, "{}{unit}", b >> shift);
            }
        }
        write!(f, "{b}B")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes: an integer or a string such as \"512MiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_arithmetic_reports_overflow() {
        assert_eq!(PhysAddr::new(u64::MAX).checked_add(1), None);
        assert_eq!(PhysAddr::new(5).checked_sub(6), None);
        assert_eq!(
            PhysAddr::new(0x4010).offset_from(PhysAddr::new(0x4000)),
            Some(0x10)
        );
        assert_eq!(
            PhysAddr::new(0x4000).offset_from(PhysAddr::new(0x4010)),
            None
        );
        assert_eq!(Pfn(u64::MAX).base(14), None);
        assert_eq!(Pfn(3).base(14), Some(PhysAddr::new(3 << 14)));
    }

    #[test]
    fn alignment_and_frames() {
        let a = PhysAddr::new(0x1_2345);
        assert_eq!(a.align_down(128), PhysAddr::new(0x1_2300));
        assert!(!a.is_aligned(8));
        assert_eq!(a.pfn(14), Pfn(4));
    }

    #[test]
    fn byte_sizes_parse_and_print() {
        assert_eq!(ByteSize::parse("16KiB"), Ok(ByteSize(16384)));
        assert_eq!(ByteSize::parse("512 MiB"), Ok(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("4096"), Ok(ByteSize(4096)));
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("99999999999TiB").is_err());
        assert_eq!(ByteSize(3 << 20).to_string(), "3MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }
}
