//! Resource descriptors, as `_CRS` returns them (ACPI 6.5 §6.4): the bytes of a resource
//! template without the Buffer wrapper, ending with an End Tag.

/// One resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A memory range (QWord Address Space descriptor, resource type 0).
    Memory {
        /// First byte.
        base: u64,
        /// Length.
        len: u64,
        /// A window the device decodes for its children (a bridge), rather than a range it
        /// consumes itself.
        producer: bool,
    },
    /// An I/O port range (Word Address Space descriptor, resource type 1).
    Io {
        /// First port.
        base: u16,
        /// Number of ports.
        len: u16,
    },
    /// A bus number range (Word Address Space descriptor, resource type 2).
    BusNumbers {
        /// First bus.
        first: u8,
        /// Last bus.
        last: u8,
    },
}

const WORD_ADDRESS: u8 = 0x88;
const QWORD_ADDRESS: u8 = 0x8A;
const END_TAG: u8 = 0x79;

/// The `_CRS` buffer for `resources`.
pub fn encode(resources: &[Resource]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in resources {
        match *r {
            Resource::Memory {
                base,
                len,
                producer,
            } => {
                out.push(QWORD_ADDRESS);
                out.extend_from_slice(&43u16.to_le_bytes());
                out.push(0); // resource type: memory
                // general flags: min and max fixed; bit 0 set for a consumer
                out.push(if producer { 0x0C } else { 0x0D });
                out.push(0x01); // type flags: read-write, non-cacheable
                for v in [0u64, base, base + len - 1, 0, len] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Resource::Io { base, len } => {
                word(&mut out, 1, 0x03, base, base + len - 1, len);
            }
            Resource::BusNumbers { first, last } => {
                let len = u16::from(last) - u16::from(first) + 1;
                word(&mut out, 2, 0x00, u16::from(first), u16::from(last), len);
            }
        }
    }
    out.push(END_TAG);
    out.push(0);
    let sum = out.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    if let Some(last) = out.last_mut() {
        *last = 0u8.wrapping_sub(sum);
    }
    out
}

fn word(out: &mut Vec<u8>, kind: u8, type_flags: u8, min: u16, max: u16, len: u16) {
    out.push(WORD_ADDRESS);
    out.extend_from_slice(&13u16.to_le_bytes());
    out.push(kind);
    out.push(0x0C);
    out.push(type_flags);
    for v in [0u16, min, max, 0, len] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Parses a `_CRS` buffer back (the kinds this crate produces); `None` if malformed.
pub fn decode(bytes: &[u8]) -> Option<Vec<Resource>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let tag = *bytes.get(i)?;
        if tag == END_TAG {
            return Some(out);
        }
        let len = usize::from(u16::from_le_bytes([*bytes.get(i + 1)?, *bytes.get(i + 2)?]));
        let body = bytes.get(i + 3..i + 3 + len)?;
        let u16_at = |k: usize| u16::from_le_bytes([body[k], body[k + 1]]);
        let u64_at = |k: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[k..k + 8]);
            u64::from_le_bytes(b)
        };
        match (tag, body.first()?) {
            (QWORD_ADDRESS, 0) if len >= 43 => out.push(Resource::Memory {
                base: u64_at(11),
                len: u64_at(35),
                producer: body[1] & 1 == 0,
            }),
            (WORD_ADDRESS, 1) if len >= 13 => out.push(Resource::Io {
                base: u16_at(5),
                len: u16_at(11),
            }),
            (WORD_ADDRESS, 2) if len >= 13 => out.push(Resource::BusNumbers {
                first: u16_at(5) as u8,
                last: u16_at(7) as u8,
            }),
            _ => return None,
        }
        i += 3 + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_round_trip_and_checksum_to_zero() {
        let rs = vec![
            Resource::BusNumbers {
                first: 0x10,
                last: 0x1f,
            },
            Resource::Io {
                base: 0x2000,
                len: 0x1000,
            },
            Resource::Memory {
                base: 0x80_1000_0000,
                len: 256 << 20,
                producer: true,
            },
            Resource::Memory {
                base: 1 << 30,
                len: 1 << 29,
                producer: false,
            },
        ];
        let b = encode(&rs);
        assert_eq!(b.len(), 16 + 16 + 46 + 46 + 2);
        assert_eq!(b.iter().fold(0u8, |a, &x| a.wrapping_add(x)), 0);
        assert_eq!(decode(&b), Some(rs));
        assert_eq!(decode(&b[..10]), None);
    }
}
