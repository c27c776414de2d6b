//! CHK-7, `_OST` answers: firmware hears how every request it sent ended. Each notification
//! the kernel takes (an eject request, a device check, a bus check) on a device that has an
//! `_OST` method must be answered by an `_OST` on that device with that notification as its
//! source event — a refusal or "nothing to do" at once, a started operation when it ends.
//! A firmware that never hears back keeps its request outstanding: the service processor's
//! eject stays pending, its attention indicator blinks for ever.
//!
//! The answers are read from firmware's own log of the `_OST`s it was given (the mailbox
//! writes of the `_OST` method), never from the kernel's account of what it answered. Judged
//! at audits, whenever no hot-plug operation runs or waits in any flow: by then every
//! operation a notification started has ended and must have answered.

use acpi_model::Platform;
use sim_core::{CheckerId, Entity, SimTime, Violations};

use super::{OsChecker, by_kernel};
use crate::event::OsEvent;
use crate::kernel::Os;

/// CHK-7, `_OST` answers.
pub const CHK_OST: CheckerId = CheckerId {
    code: "CHK-7",
    name: "ost-answer",
};

/// One notification the kernel took.
#[derive(Clone, Debug)]
struct Taken {
    time: SimTime,
    path: String,
    code: u8,
    /// Answered, or reported as never answered.
    settled: bool,
}

/// CHK-7, `_OST` answers (see the module docs).
#[derive(Debug, Default)]
pub struct OstChecker {
    /// The notifications taken, in order.
    taken: Vec<Taken>,
    /// Which entries of firmware's `_OST` log already answer a notification.
    used: Vec<bool>,
}

impl OsChecker for OstChecker {
    fn id(&self) -> CheckerId {
        CHK_OST
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, _out: &mut Violations) {
        if let OsEvent::AcpiNotify { path, code } = ev {
            self.taken.push(Taken {
                time: now,
                path: acpi_model::namespace::normalise(path),
                code: *code,
                settled: false,
            });
        }
    }

    fn audit(&mut self, now: SimTime, os: &Os, p: &Platform, out: &mut Violations) {
        if !(os.hp.is_idle() && os.memhp.is_idle() && os.pcihp.is_idle()) {
            return;
        }
        let log = p.ost_log();
        self.used.resize(log.len(), false);
        for (i, n) in self
            .taken
            .iter_mut()
            .enumerate()
            .filter(|(_, n)| !n.settled)
        {
            n.settled = true;
            // A device without `_OST` (or no device at all) cannot be answered.
            let answerable = p
                .namespace()
                .find(&n.path)
                .is_some_and(|d| d.kind.objects().contains(&"_OST"));
            if !answerable {
                continue;
            }
            let answer = log.iter().enumerate().position(|(j, r)| {
                !self.used[j]
                    && r.time >= n.time
                    && r.event == u32::from(n.code)
                    && acpi_model::namespace::normalise(&r.path) == n.path
            });
            match answer {
                Some(j) => self.used[j] = true,
                None => out.push(by_kernel(
                    now,
                    CHK_OST,
                    Entity::Object("acpi-notify", i as u64),
                    format!(
                        "notification {:#04x} on {}, taken at {}, was never answered: no _OST for it, and no hot-plug operation runs",
                        n.code, n.path, n.time
                    ),
                )),
            }
        }
    }
}
