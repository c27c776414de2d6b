//! The DSDT in real AML, built with the `acpi_tables` crate from the namespace and the
//! hardware's current state.
//!
//! Every node becomes a `Device` (the root `\_SB_` a `Scope`). Values (`_HID`, `_UID`, `_CRS`,
//! `_PRT`, `_MAT`, …) are `Name` objects holding what [`Platform::object`] returns now; `_STA`
//! is a method returning the current status; `_EJ0`, `_PS0`, `_PS3` and `_OST` are methods that
//! write the firmware mailbox (the `FWMB` operation region and its fields under `\_SB_`), which
//! is exactly what the native evaluation does. The export is a snapshot: export again after a
//! hot-plug event to see the new state.

use acpi_tables::aml::{
    self, Arg, BufferData, FieldAccessType, FieldEntry, FieldLockRule, FieldUpdateRule,
    OpRegionSpace,
};
use acpi_tables::sdt::Sdt;
use acpi_tables::{Aml, AmlSink};

use crate::firmware::mailbox;
use crate::namespace::{Node, NodeKind};
use crate::platform::Platform;
use crate::tables::{OEM_ID, OEM_TABLE_ID};
use crate::value::AcpiValue;

/// Already-encoded AML.
struct Raw(Vec<u8>);

impl Aml for Raw {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(&self.0);
    }
}

fn bytes(a: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    a.to_aml_bytes(&mut v);
    v
}

/// The AML data object for a value.
fn value_aml(v: &AcpiValue) -> Vec<u8> {
    match v {
        AcpiValue::Integer(i) => bytes(i),
        AcpiValue::String(s) => bytes(s),
        AcpiValue::Buffer(b) => bytes(&BufferData::new(b.clone())),
        AcpiValue::Package(items) => {
            let raws: Vec<Raw> = items.iter().map(|x| Raw(value_aml(x))).collect();
            let refs: Vec<&dyn Aml> = raws.iter().map(|r| r as &dyn Aml).collect();
            bytes(&aml::Package::new(refs))
        }
        AcpiValue::None => bytes(&aml::ZERO),
    }
}

fn field(name: &str) -> aml::Path {
    aml::Path::new(&format!("\\_SB_.{name}"))
}

/// A method writing `(register, value)` pairs to the mailbox.
fn mailbox_method(name: &str, args: u8, stores: &[(&str, &dyn Aml)]) -> Vec<u8> {
    let paths: Vec<aml::Path> = stores.iter().map(|(f, _)| field(f)).collect();
    let st: Vec<aml::Store<'_>> = stores
        .iter()
        .zip(&paths)
        .map(|((_, v), p)| aml::Store::new(p, *v))
        .collect();
    let refs: Vec<&dyn Aml> = st.iter().map(|s| s as &dyn Aml).collect();
    bytes(&aml::Method::new(name.into(), args, true, refs))
}

fn object_aml(p: &Platform, node: &Node, name: &str) -> Vec<u8> {
    let code = crate::platform::device_code_of(node.kind).unwrap_or(0);
    match name {
        "_STA" => {
            let v = p
                .object(node.kind, "_STA")
                .and_then(|v| v.as_integer())
                .unwrap_or(0);
            let ret = aml::Return::new(&v);
            bytes(&aml::Method::new("_STA".into(), 0, false, vec![&ret]))
        }
        "_EJ0" => mailbox_method("_EJ0", 1, &[("EJDV", &code)]),
        "_PS0" => mailbox_method("_PS0", 0, &[("PSDV", &code), ("PSST", &aml::ONE)]),
        "_PS3" => mailbox_method("_PS3", 0, &[("PSDV", &code), ("PSST", &aml::ZERO)]),
        "_OST" => mailbox_method(
            "_OST",
            3,
            &[("OSDV", &code), ("OSEV", &Arg(0)), ("OSST", &Arg(1))],
        ),
        _ => {
            let v = p.object(node.kind, name).unwrap_or(AcpiValue::None);
            let raw = Raw(value_aml(&v));
            bytes(&aml::Name::new(name.into(), &raw))
        }
    }
}

fn node_aml(p: &Platform, i: usize) -> Vec<u8> {
    let ns = p.namespace();
    let node = &ns.nodes()[i];
    let mut children: Vec<Raw> = node
        .kind
        .objects()
        .iter()
        .map(|o| Raw(object_aml(p, node, o)))
        .collect();
    if node.kind == NodeKind::SystemBus {
        let base = p.mailbox_base().raw();
        let region = aml::OpRegion::new(
            "FWMB".into(),
            OpRegionSpace::SystemMemory,
            &base,
            &mailbox::BYTES,
        );
        let fields = aml::Field::new(
            "FWMB".into(),
            FieldAccessType::DWord,
            FieldLockRule::NoLock,
            FieldUpdateRule::Preserve,
            ["EJDV", "PSDV", "PSST", "OSDV", "OSEV", "OSST"]
                .iter()
                .map(|n| {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(n.as_bytes());
                    FieldEntry::Named(b, 32)
                })
                .collect(),
        );
        children.push(Raw(bytes(&region)));
        children.push(Raw(bytes(&fields)));
    }
    children.extend(ns.children(i).map(|(c, _)| Raw(node_aml(p, c))));
    let refs: Vec<&dyn Aml> = children.iter().map(|r| r as &dyn Aml).collect();
    match node.kind {
        NodeKind::SystemBus => bytes(&aml::Scope::new("\\_SB_".into(), refs)),
        NodeKind::Cell(_)
        | NodeKind::Processor(_)
        | NodeKind::Memory(_)
        | NodeKind::InterleavedMemory
        | NodeKind::ChipsetBridge(_)
        | NodeKind::ChipsetFn(_)
        | NodeKind::IoModule(_)
        | NodeKind::HostBridge(..)
        | NodeKind::Slot(_)
        | NodeKind::IoSapic(_) => bytes(&aml::Device::new(node.name.as_str().into(), refs)),
    }
}

/// The DSDT (revision 2: 64-bit integers) as the platform stands now.
pub fn dsdt(p: &Platform) -> Vec<u8> {
    let mut t = Sdt::new(*b"DSDT", 36, 2, OEM_ID, OEM_TABLE_ID, 1);
    t.append_slice(&node_aml(p, 0));
    t.as_slice().to_vec()
}
