//! Firmware state: the SCI/Notify queue, the `_OST` log, and the mailbox through which AML
//! methods (and an OS that knows it) ask firmware to eject or power things.
//!
//! # Mailbox
//!
//! A 4 KiB register block just past the I/O region (its address is in the DSDT's `FWMB`
//! operation region). 32-bit registers:
//!
//! | offset | name | write |
//! |---|---|---|
//! | 0x00 | `EJDV` | a device code: eject it (`_EJ0`) |
//! | 0x04 | `PSDV` | a device code for the next `PSST` write |
//! | 0x08 | `PSST` | 1: power `PSDV` on (`_PS0`), 0: off (`_PS3`) |
//! | 0x0C | `OSDV` | a device code for the next `_OST` |
//! | 0x10 | `OSEV` | the `_OST` source event |
//! | 0x14 | `OSST` | the `_OST` status: records `(OSDV, OSEV, OSST)` |
//!
//! Device codes are `kind << 16 | index`: 1 cell, 2 processor (CPU id), 3 memory device
//! (cell), 4 I/O subsystem, 5 slot (`_SUN`).

use std::collections::VecDeque;
use std::fmt;

use serde::Serialize;
use sim_core::trace::{ArgValue, Phase, Track};
use sim_core::{SimTime, StableHash, StableHasher, TraceEvent, TraceLevel, TraceRecord};

/// Mailbox register offsets.
pub mod mailbox {
    /// Eject a device.
    pub const EJDV: u64 = 0x00;
    /// Device for power control.
    pub const PSDV: u64 = 0x04;
    /// Power state to set.
    pub const PSST: u64 = 0x08;
    /// Device of an `_OST`.
    pub const OSDV: u64 = 0x0C;
    /// Source event of an `_OST`.
    pub const OSEV: u64 = 0x10;
    /// Status of an `_OST` (records it).
    pub const OSST: u64 = 0x14;
    /// The PM1a event block the FADT describes (status and enable, 2 bytes each): no fixed
    /// event is modelled, it reads 0.
    pub const PM1A_EVT: u64 = 0x40;
    /// The PM1a control block (2 bytes): no sleep state is modelled, it reads 0.
    pub const PM1A_CNT: u64 = 0x44;
    /// The GPE0 block (status byte, enable byte): GPE 0 is firmware's hot-plug event, its
    /// status bit set while a notification waits for the OS (what drives the SCI), enabled.
    pub const GPE0: u64 = 0x48;
    /// Bytes of the block.
    pub const BYTES: u64 = 0x1000;
}

/// Notify codes firmware sends with an SCI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyCode {
    /// 0x00: re-enumerate below this device.
    BusCheck,
    /// 0x01: this device appeared (or changed).
    DeviceCheck,
    /// 0x03: someone asks for this device to be ejected.
    EjectRequest,
}

impl NotifyCode {
    /// The numeric code.
    pub const fn code(self) -> u8 {
        match self {
            NotifyCode::BusCheck => 0x00,
            NotifyCode::DeviceCheck => 0x01,
            NotifyCode::EjectRequest => 0x03,
        }
    }
}

impl fmt::Display for NotifyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotifyCode::BusCheck => "bus-check (0x00)",
            NotifyCode::DeviceCheck => "device-check (0x01)",
            NotifyCode::EjectRequest => "eject-request (0x03)",
        })
    }
}

/// One Notify queued for the OS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Its number (1, 2, … in the order firmware raised them): what [`crate::Platform::notify`]
    /// returns, and what the OS's operation or refusal for it carries.
    pub id: NotifyId,
    /// When the SCI was raised.
    pub time: SimTime,
    /// The device notified.
    pub path: String,
    /// Why.
    pub code: NotifyCode,
}

/// The number of a notification firmware raised.
pub type NotifyId = u64;

/// One `_OST` the OS reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OstRecord {
    /// When.
    pub time: SimTime,
    /// The device.
    pub path: String,
    /// Source event (e.g. 0x03 for an eject request).
    pub event: u32,
    /// Status (0 success, 0x80 ejecting, 0x81 cannot eject, …).
    pub status: u32,
}

/// What firmware did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FwEvent {
    /// An SCI with a Notify was raised.
    Notify {
        /// Device.
        path: String,
        /// Code.
        code: NotifyCode,
    },
    /// An eject was carried out.
    Eject {
        /// Device.
        path: String,
        /// What it did and what was still in use.
        note: String,
    },
    /// A device's power was set.
    Power {
        /// Device.
        path: String,
        /// On or off.
        on: bool,
    },
    /// The OS reported a status.
    Ost {
        /// Device.
        path: String,
        /// Source event.
        event: u32,
        /// Status.
        status: u32,
    },
    /// A mailbox write firmware could not act on.
    Refused {
        /// Register written.
        register: u64,
        /// Value written.
        value: u32,
        /// Why.
        reason: String,
    },
}

impl StableHash for FwEvent {
    fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            FwEvent::Notify { path, code } => {
                h.word(0x200 | u64::from(code.code()) << 8);
                h.str(path);
            }
            FwEvent::Eject { path, note } => {
                h.word(0x201);
                h.str(path);
                h.str(note);
            }
            FwEvent::Power { path, on } => {
                h.word(0x202 | u64::from(*on) << 8);
                h.str(path);
            }
            FwEvent::Ost {
                path,
                event,
                status,
            } => {
                h.word(0x203 | u64::from(*event) << 8 | u64::from(*status) << 32);
                h.str(path);
            }
            FwEvent::Refused {
                register,
                value,
                reason,
            } => {
                h.word(0x204 | register << 8 | u64::from(*value) << 32);
                h.str(reason);
            }
        }
    }
}

impl TraceEvent for FwEvent {
    fn level(&self) -> TraceLevel {
        TraceLevel::Info
    }

    fn to_record(&self, time: SimTime) -> TraceRecord {
        let (name, args): (String, Vec<(&'static str, ArgValue)>) = match self {
            FwEvent::Notify { path, code } => (
                format!("Notify {code}"),
                vec![("device", path.as_str().into())],
            ),
            FwEvent::Eject { path, note } => (
                "_EJ0".into(),
                vec![
                    ("device", path.as_str().into()),
                    ("note", note.as_str().into()),
                ],
            ),
            FwEvent::Power { path, on } => (
                if *on { "_PS0" } else { "_PS3" }.into(),
                vec![("device", path.as_str().into())],
            ),
            FwEvent::Ost {
                path,
                event,
                status,
            } => (
                "_OST".into(),
                vec![
                    ("device", path.as_str().into()),
                    ("event", u64::from(*event).into()),
                    ("status", u64::from(*status).into()),
                ],
            ),
            FwEvent::Refused {
                register, reason, ..
            } => (
                "mailbox refused".into(),
                vec![
                    ("register", format!("{register:#x}").into()),
                    ("reason", reason.as_str().into()),
                ],
            ),
        };
        TraceRecord {
            time,
            track: Track {
                group: "firmware",
                index: 0,
            },
            category: "acpi",
            name: name.into(),
            phase: Phase::Instant,
            args,
        }
    }
}

/// Firmware's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Firmware {
    pub(crate) regs: [u32; 6],
    pub(crate) pending: VecDeque<Notification>,
    pub(crate) notified: u64,
    /// Whether firmware drives the SCI line now.
    pub(crate) sci_asserted: bool,
    pub(crate) ost: Vec<OstRecord>,
    /// Corrected errors already handed to the OS (SAL_CLEAR_STATE_INFO), per processor
    /// (by hardware CPU number) and per memory frame.
    pub(crate) cleared_cpu: Vec<u64>,
    pub(crate) cleared_mem: std::collections::BTreeMap<usize, u32>,
}

/// The corrected errors firmware's log held since the OS last cleared it (SAL
/// `GET_STATE_INFO` for `CMC` — processors — and `CPE` — platform memory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorrectedLog {
    /// `(processor, new corrected errors)`.
    pub cpus: Vec<(sim_core::CpuId, u64)>,
    /// `(address of the memory page, new corrected errors)`.
    pub memory: Vec<(sim_core::PhysAddr, u64)>,
}

impl Firmware {
    /// Notifications raised and not yet taken by the OS.
    pub fn pending(&self) -> impl Iterator<Item = &Notification> {
        self.pending.iter()
    }
    /// Notifications raised in all.
    pub fn notified(&self) -> u64 {
        self.notified
    }
    /// Every `_OST` reported, in order.
    pub fn ost_log(&self) -> &[OstRecord] {
        &self.ost
    }
    /// A mailbox register's last written value; the GPE0 block's status and enable.
    pub fn register(&self, offset: u64) -> u32 {
        if offset == mailbox::GPE0 {
            return u32::from(self.sci_asserted) | 1 << 8;
        }
        self.regs.get((offset / 4) as usize).copied().unwrap_or(0)
    }
}
