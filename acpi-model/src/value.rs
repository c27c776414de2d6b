//! ACPI data objects as methods return them.

use std::fmt;

/// The value of an ACPI object or method result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcpiValue {
    /// An integer (64-bit: the DSDT is revision 2).
    Integer(u64),
    /// A string.
    String(String),
    /// A buffer (resource templates, MADT structures).
    Buffer(Vec<u8>),
    /// A package.
    Package(Vec<AcpiValue>),
    /// Nothing (a method that returns no value).
    None,
}

impl AcpiValue {
    /// The integer, if it is one.
    pub fn as_integer(&self) -> Option<u64> {
        match self {
            AcpiValue::Integer(v) => Some(*v),
            AcpiValue::String(_)
            | AcpiValue::Buffer(_)
            | AcpiValue::Package(_)
            | AcpiValue::None => None,
        }
    }
    /// The buffer, if it is one.
    pub fn as_buffer(&self) -> Option<&[u8]> {
        match self {
            AcpiValue::Buffer(b) => Some(b),
            AcpiValue::Integer(_)
            | AcpiValue::String(_)
            | AcpiValue::Package(_)
            | AcpiValue::None => None,
        }
    }
    /// The package, if it is one.
    pub fn as_package(&self) -> Option<&[AcpiValue]> {
        match self {
            AcpiValue::Package(p) => Some(p),
            AcpiValue::Integer(_)
            | AcpiValue::String(_)
            | AcpiValue::Buffer(_)
            | AcpiValue::None => None,
        }
    }
}

impl fmt::Display for AcpiValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcpiValue::Integer(v) => write!(f, "{v:#x}"),
            AcpiValue::String(s) => write!(f, "\"{s}\""),
            AcpiValue::Buffer(b) => {
                write!(f, "Buffer(")?;
                for (i, x) in b.iter().enumerate() {
                    if i > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{x:02x}")?;
                }
                write!(f, ")")
            }
            AcpiValue::Package(p) => {
                write!(f, "Package {{")?;
                for (i, x) in p.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    write!(f, " {x}")?;
                }
                write!(f, " }}")
            }
            AcpiValue::None => write!(f, "(none)"),
        }
    }
}

/// The 32-bit compressed EISA id of `"PNP0A08"`-style names (as `EisaId()` in ASL).
/// Returns `None` for anything that is not three upper-case letters and four hex digits.
pub fn eisa_id(name: &str) -> Option<u32> {
    let b = name.as_bytes();
    if b.len() != 7 || !b[..3].iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    let letter = |c: u8| u32::from(c - b'@');
    let mut v = letter(b[0]) << 26 | letter(b[1]) << 21 | letter(b[2]) << 16;
    for (i, c) in name[3..].chars().enumerate() {
        v |= c.to_digit(16)? << (12 - 4 * i);
    }
    Some(v.swap_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eisa_ids_match_the_aml_encoding() {
        // EisaId("PNP0A03") is 0x030AD041 in every DSDT.
        assert_eq!(eisa_id("PNP0A03"), Some(0x030A_D041));
        assert_eq!(eisa_id("PNP0C80"), Some(0x800C_D041));
        assert_eq!(eisa_id("ACPI0004"), None);
    }

    #[test]
    fn values_print_readably() {
        let v = AcpiValue::Package(vec![
            AcpiValue::Integer(15),
            AcpiValue::Buffer(vec![1, 0xab]),
        ]);
        assert_eq!(v.to_string(), "Package { 0xf, Buffer(01 ab) }");
    }
}
