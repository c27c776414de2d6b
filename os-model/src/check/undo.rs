//! CHK-7, PCI side: a slot operation that fails leaves the slot as it found it — its power,
//! the card's configuration (BARs and command register) and the masking of its interrupt
//! entry — read from the hardware when the operation starts and again when it has ended
//! (after its undo), never from the kernel's own account of what it undid.

use std::collections::BTreeMap;

use acpi_model::Platform;
use sim_core::abi::pci::reg;
use sim_core::{CheckerId, Entity, Gsi, SimTime, SlotId, Violations};

use super::{OsChecker, by_kernel};
use crate::event::{FlowKind, OpTarget, OsEvent};
use crate::kernel::Os;

/// CHK-7, slot undo.
pub const CHK_SLOT_UNDO: CheckerId = CheckerId {
    code: "CHK-7",
    name: "slot-undo",
};

/// What the hardware shows of one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlotView {
    powered: bool,
    /// The live card's command register and BAR registers (configuration space).
    config: Option<Vec<(u16, u32)>>,
    /// Whether the slot's IO SAPIC entry is masked (`None`: no entry, or its IO SAPIC is
    /// gone).
    masked: Option<bool>,
}

impl SlotView {
    fn read(p: &Platform, sun: SlotId) -> Option<SlotView> {
        let io = p.io();
        let slot = io.slot(sun)?;
        let config = slot
            .card
            .and_then(|d| io.device(d))
            .filter(|d| d.is_live())
            .map(|d| {
                // The command register and the six BAR registers.
                std::iter::once(reg::COMMAND)
                    .chain((0..6).map(|k| reg::BAR0 + 4 * k))
                    .map(|o| (o, d.config().read(o)))
                    .collect()
            });
        let masked = io.gsi_entry(Gsi(slot.gsi.0)).and_then(|(sid, e)| {
            io.subsystem(sid)
                .filter(|s| s.state.is_powered())
                .and_then(|s| s.sapic.entries().get(e))
                .map(|r| r.masked)
        });
        Some(SlotView {
            powered: slot.powered,
            config,
            masked,
        })
    }

    /// The differences from `before`, in words.
    fn changes_since(&self, before: &SlotView) -> Vec<String> {
        let mut v = Vec::new();
        let onoff = |b: bool| if b { "on" } else { "off" };
        if self.powered != before.powered {
            v.push(format!(
                "power {} -> {}",
                onoff(before.powered),
                onoff(self.powered)
            ));
        }
        match (&before.config, &self.config) {
            (Some(a), Some(b)) => {
                for ((o, x), (_, y)) in a.iter().zip(b) {
                    if x != y {
                        v.push(format!("config {o:#04x} {x:#x} -> {y:#x}"));
                    }
                }
            }
            (None, Some(_)) => v.push("a card that was not running is running".into()),
            (Some(_), None) => v.push("the running card stopped".into()),
            (None, None) => {}
        }
        if let (Some(a), Some(b)) = (before.masked, self.masked) {
            if a != b {
                let m = |x: bool| if x { "masked" } else { "unmasked" };
                v.push(format!("its interrupt entry {} -> {}", m(a), m(b)));
            }
        }
        v
    }
}

/// CHK-7, slot undo (see the module docs).
#[derive(Debug, Default)]
pub struct SlotUndoChecker {
    /// Every slot as the hardware showed it at the last quiet point of the PCI flow (a
    /// request queued, an operation ended): how an operation found its slot. (An operation's
    /// first step runs in the same kernel step as its start, so the start is too late.)
    last: BTreeMap<SlotId, SlotView>,
    /// PCI operations running on a slot: the slot and how the hardware showed it at the start.
    started: BTreeMap<u32, (SlotId, SlotView)>,
    /// Found when an operation ended failed: (op, slot, changes), reported by `observe`.
    found: Option<(u32, SlotId, Vec<String>)>,
}

impl SlotUndoChecker {
    /// Reads every slot.
    fn look(&mut self, p: &Platform) {
        for s in p.io().slots() {
            if let Some(v) = SlotView::read(p, s.id) {
                self.last.insert(s.id, v);
            }
        }
    }
}

impl OsChecker for SlotUndoChecker {
    fn id(&self) -> CheckerId {
        CHK_SLOT_UNDO
    }

    fn sample(&mut self, _now: SimTime, ev: &OsEvent, p: &Platform) {
        if let OsEvent::OpQueued {
            flow: FlowKind::Pci,
            ..
        } = ev
        {
            self.look(p);
        } else if let OsEvent::OpStart {
            flow: FlowKind::Pci,
            op,
            target: OpTarget::Slot(sun),
            ..
        } = ev
        {
            // Every operation was queued (and the slots read) before it starts.
            if let Some(view) = self.last.get(sun) {
                self.started.insert(*op, (*sun, view.clone()));
            }
        } else if let OsEvent::OpEnd {
            flow: FlowKind::Pci,
            op,
            result,
        } = ev
        {
            let started = self.started.remove(op);
            self.look(p);
            let Some((sun, before)) = started else {
                return;
            };
            if result.is_ok() {
                return;
            }
            if let Some(after) = SlotView::read(p, sun) {
                let changes = after.changes_since(&before);
                if !changes.is_empty() {
                    self.found = Some((*op, sun, changes));
                }
            }
        }
    }

    fn observe(&mut self, now: SimTime, ev: &OsEvent, out: &mut Violations) {
        if let OsEvent::OpEnd {
            flow: FlowKind::Pci,
            result: Err(e),
            ..
        } = ev
        {
            if let Some((op, sun, changes)) = self.found.take() {
                out.push(by_kernel(
 now,
 CHK_SLOT_UNDO,
 Entity::Slot(sun),
                    format!(
                        "pci op {op} on slot {} failed ({e}) but did not leave the slot as it found it: {}",
                        sun.0,
                        changes.join(", ")
                    ),
                ));
            }
        }
    }

    fn audit(&mut self, _now: SimTime, _os: &Os, _p: &Platform, _out: &mut Violations) {}
}
