//! Static tables describing the NUMA layout and the interrupt controllers: MADT (local SAPICs,
//! IO SAPICs), SRAT (processor and memory affinity) and SLIT (distances). Built on
//! `acpi_tables`' SDT header; the IA-64 structures (MADT types 6 and 7, SRAT type 0 with the
//! SAPIC EID) are laid out here byte by byte from the ACPI specification.

use acpi_tables::sdt::Sdt;
use sim_core::LsapicId;

/// OEM id in every table.
pub const OEM_ID: [u8; 6] = *b"CELSIM";
/// OEM table id in every table.
pub const OEM_TABLE_ID: [u8; 8] = *b"CELLSIM ";

/// A processor as the tables describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuEntry {
    /// ACPI processor UID (the `_UID` of its processor device).
    pub uid: u32,
    /// Local SAPIC id and eid.
    pub lsapic: LsapicId,
    /// Usable now (present).
    pub enabled: bool,
    /// Proximity domain (its cell).
    pub proximity: u32,
}

/// An IO SAPIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoSapicEntry {
    /// IO SAPIC id.
    pub id: u8,
    /// First GSI.
    pub gsi_base: u32,
    /// Register block address.
    pub address: u64,
}

/// A memory range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEntry {
    /// Proximity domain (its cell).
    pub proximity: u32,
    /// First byte.
    pub base: u64,
    /// Length.
    pub len: u64,
    /// Present now.
    pub enabled: bool,
    /// May be hot-removed (and added).
    pub hotpluggable: bool,
}

/// MADT structure type 7 (Local SAPIC), also a processor's `_MAT`.
pub fn lsapic_structure(c: &CpuEntry) -> Vec<u8> {
    let mut v = vec![7, 17, c.uid as u8, c.lsapic.id, c.lsapic.eid, 0, 0, 0];
    v.extend_from_slice(&u32::from(c.enabled).to_le_bytes());
    v.extend_from_slice(&c.uid.to_le_bytes());
    v.push(0); // empty UID string
    v
}

/// MADT structure type 6 (IO SAPIC), also an IO SAPIC's `_MAT`.
pub fn iosapic_structure(s: &IoSapicEntry) -> Vec<u8> {
    let mut v = vec![6, 16, s.id, 0];
    v.extend_from_slice(&s.gsi_base.to_le_bytes());
    v.extend_from_slice(&s.address.to_le_bytes());
    v
}

fn table(signature: [u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Sdt::new(signature, 36, revision, OEM_ID, OEM_TABLE_ID, 1);
    t.append_slice(body);
    t.as_slice().to_vec()
}

/// The MADT ("APIC").
pub fn madt(cpus: &[CpuEntry], sapics: &[IoSapicEntry]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0xFEE0_0000u32.to_le_bytes()); // local interrupt controller address
    body.extend_from_slice(&0u32.to_le_bytes()); // flags: no 8259s
    for c in cpus {
        body.extend(lsapic_structure(c));
    }
    for s in sapics {
        body.extend(iosapic_structure(s));
    }
    table(*b"APIC", 3, &body)
}

/// The SRAT.
pub fn srat(cpus: &[CpuEntry], memory: &[MemoryEntry]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&1u32.to_le_bytes()); // reserved, 1 for compatibility
    body.extend_from_slice(&0u64.to_le_bytes());
    for c in cpus {
        let d = c.proximity.to_le_bytes();
        body.extend_from_slice(&[0, 16, d[0], c.lsapic.id]);
        body.extend_from_slice(&u32::from(c.enabled).to_le_bytes());
        body.extend_from_slice(&[c.lsapic.eid, d[1], d[2], d[3]]);
        body.extend_from_slice(&0u32.to_le_bytes()); // clock domain
    }
    for m in memory {
        body.extend_from_slice(&[1, 40]);
        body.extend_from_slice(&m.proximity.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(m.base as u32).to_le_bytes());
        body.extend_from_slice(&((m.base >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(m.len as u32).to_le_bytes());
        body.extend_from_slice(&((m.len >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        let flags = u32::from(m.enabled) | u32::from(m.hotpluggable) << 1;
        body.extend_from_slice(&flags.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes());
    }
    table(*b"SRAT", 3, &body)
}

/// The FADT ("FACP"): `SCI_INT`, the GSI the SCI is wired to (the system IO SAPIC's input 0),
/// and the fixed-hardware blocks in firmware's mailbox at `mailbox` (64-bit addresses only:
/// PM1a event and control, which no modelled event uses, and GPE0, whose status bit is
/// firmware's "a notification waits").
pub fn fadt(sci_int: u16, mailbox: u64) -> Vec<u8> {
    use crate::firmware::mailbox::{GPE0, PM1A_CNT, PM1A_EVT};
    use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
    let block = |off: u64, bits: u8, size: AccessSize| {
        GAS::new(AddressSpace::SystemMemory, bits, 0, size, mailbox + off)
    };
    let mut b = acpi_tables::fadt::FADTBuilder::new(OEM_ID, OEM_TABLE_ID, 1);
    b.sci_int = sci_int.into();
    b.x_pm1a_evt_blk = block(PM1A_EVT, 32, AccessSize::WordAccess);
    b.pm1_evt_len = 4;
    b.x_pm1a_cnt_blk = block(PM1A_CNT, 16, AccessSize::WordAccess);
    b.pm1_cnt_len = 2;
    b.x_gpe0_blk = block(GPE0, 16, AccessSize::ByteAccess);
    b.gpe0_blk_len = 2;
    let mut v = Vec::new();
    acpi_tables::Aml::to_aml_bytes(&b.finalize(), &mut v);
    v
}

/// Offset of `SCI_INT` (two bytes, little-endian) in the FADT (ACPI 6.5 §5.2.9).
pub const FADT_SCI_INT: usize = 46;

/// The SLIT: `distances[a][b]` between proximity domains.
pub fn slit(distances: &[Vec<u8>]) -> Vec<u8> {
    let mut body = (distances.len() as u64).to_le_bytes().to_vec();
    for row in distances {
        body.extend_from_slice(row);
    }
    table(*b"SLIT", 1, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_ok(t: &[u8]) -> bool {
        t.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
    }

    #[test]
    fn tables_have_their_lengths_and_checksums() {
        let cpu = CpuEntry {
            uid: 5,
            lsapic: LsapicId { id: 1, eid: 1 },
            enabled: true,
            proximity: 1,
        };
        let m = madt(
            &[cpu],
            &[IoSapicEntry {
                id: 0,
                gsi_base: 0,
                address: 0x80_0000_0000,
            }],
        );
        assert_eq!(&m[..4], b"APIC");
        assert_eq!(
            u32::from_le_bytes([m[4], m[5], m[6], m[7]]) as usize,
            m.len()
        );
        assert_eq!(m.len(), 36 + 8 + 17 + 16);
        assert!(checksum_ok(&m));
        let f = fadt(200, 0x7000_0000);
        assert_eq!(&f[..4], b"FACP");
        assert_eq!(
            u32::from_le_bytes([f[4], f[5], f[6], f[7]]) as usize,
            f.len()
        );
        assert_eq!(f.len(), 276, "an ACPI 6 FADT");
        assert_eq!(
            u16::from_le_bytes([f[FADT_SCI_INT], f[FADT_SCI_INT + 1]]),
            200
        );
        assert!(checksum_ok(&f));
        let s = srat(
            &[cpu],
            &[MemoryEntry {
                proximity: 1,
                base: 1 << 29,
                len: 1 << 29,
                enabled: true,
                hotpluggable: true,
            }],
        );
        assert_eq!(s.len(), 36 + 12 + 16 + 40);
        assert!(checksum_ok(&s));
        let l = slit(&[vec![10, 17], vec![17, 10]]);
        assert_eq!(l.len(), 36 + 8 + 4);
        assert!(checksum_ok(&l));
    }
}
