//! The trace hash of each event: a fixed word layout per variant (the goldens depend on it).

use sim_core::{StableHash, StableHasher};

use super::OpTarget;
use super::OsEvent;
use crate::cpumask::CpuMask;

fn mask_hash(h: &mut StableHasher, m: &CpuMask) {
    h.str(&m.to_string());
}

impl StableHash for OsEvent {
    fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            OsEvent::Booted { online, tasks } => {
                h.word(1);
                mask_hash(h, online);
                h.word(u64::from(*tasks));
            }
            OsEvent::CpuMapped { cpu, hw, present } => {
                h.word(2 | u64::from(cpu.0) << 8 | u64::from(hw.0) << 32);
                h.word(u64::from(*present));
            }
            OsEvent::MapsPublished {
                version,
                addr,
                online,
                active,
                by,
            } => {
                h.word(3 | u64::from(by.0) << 8);
                h.word(*version);
                h.word(*addr);
                mask_hash(h, online);
                mask_hash(h, active);
            }
            OsEvent::MapsFreed { version, by } => {
                h.word(4 | u64::from(by.0) << 8);
                h.word(*version);
            }
            OsEvent::RcuLock {
                cpu,
                addr,
                loaded,
                purpose,
            } => {
                h.word(5 | u64::from(cpu.0) << 8);
                h.word(*addr);
                h.word(*loaded);
                h.str(purpose);
            }
            OsEvent::RcuUse {
                cpu,
                addr,
                about,
                bits,
            } => {
                h.word(6 | u64::from(cpu.0) << 8 | u64::from(about.0) << 32);
                h.word(*addr);
                h.word(*bits);
            }
            OsEvent::RcuUnlock { cpu } => h.word(7 | u64::from(cpu.0) << 8),
            OsEvent::QuiescentState { cpu, seq } => {
                h.word(8 | u64::from(cpu.0) << 8);
                h.word(*seq);
            }
            OsEvent::GpStart { seq, waiting } => {
                h.word(9);
                h.word(*seq);
                mask_hash(h, waiting);
            }
            OsEvent::GpEnd { seq, duration } => {
                h.word(10);
                h.word(*seq);
                h.word(duration.as_nanos());
            }
            OsEvent::RcuCpu { cpu, online } => {
                h.word(11 | u64::from(cpu.0) << 8 | u64::from(*online) << 40);
            }
            OsEvent::TaskCreated {
                task,
                name,
                kind,
                cpu,
            } => {
                h.word(34 | u64::from(cpu.0) << 8 | u64::from(task.0) << 32);
                h.str(name);
                h.str(kind);
            }
            OsEvent::MemObject { obj, pages, slots } => {
                h.word(40 | obj.word() << 8);
                h.word(u64::from(*pages) | u64::from(*slots) << 32);
            }
            OsEvent::PteWritten {
                mm,
                vpn,
                addr,
                table,
                word,
            } => {
                h.word(55 | u64::from(*mm) << 8 | u64::from(*vpn) << 32);
                h.word(*addr ^ u64::from(*table) << 48);
                h.word(*word);
            }
            OsEvent::PageDiscarded { obj, page } => {
                h.word(45 | obj.word() << 8);
                h.word(u64::from(*page));
            }
            OsEvent::PageAllocated { pfn, order } => {
                h.word(46 | u64::from(*order) << 8 | u64::from(*pfn) << 32);
            }
            OsEvent::PageblockIsolation { pfn, isolated } => {
                h.word(47 | u64::from(*isolated) << 8 | u64::from(*pfn) << 32);
            }
            // Not hashed: it follows from the block state changes before it (boot, and the
            // memory operations' online and offline steps).
            OsEvent::FramesManaged { .. } => {}
            OsEvent::PageFreed {
                pfn,
                order,
                mapped,
                busy,
                owner,
            } => {
                h.word(41 | u64::from(*order) << 8 | u64::from(*pfn) << 32);
                h.word(u64::from(*mapped));
                h.word(u64::from(*busy));
                h.word(owner.word());
            }
            OsEvent::Enqueue {
                task,
                cpu,
                why,
                kthread,
            } => {
                h.word(
                    12 | u64::from(cpu.0) << 8
                        | (*why as u64) << 28
                        | u64::from(*kthread) << 31
                        | u64::from(task.0) << 32,
                );
            }
            OsEvent::Migrate { task, from, to, by } => {
                h.word(13 | u64::from(from.0) << 8 | u64::from(to.0) << 32);
                h.word(u64::from(task.0) | u64::from(by.0) << 32);
            }
            OsEvent::Switch {
                cpu, task, kthread, ..
            } => {
                h.word(14 | u64::from(cpu.0) << 8 | u64::from(*kthread) << 31);
                h.word(task.map_or(u64::MAX, |t| u64::from(t.0)));
            }
            OsEvent::Sleep {
                task,
                cpu,
                timer_cpu,
                until,
            } => {
                h.word(15 | u64::from(cpu.0) << 8 | u64::from(timer_cpu.0) << 32);
                h.word(u64::from(task.0));
                h.word(until.as_nanos());
            }
            OsEvent::Block { task, cpu } => {
                h.word(16 | u64::from(cpu.0) << 8 | u64::from(task.0) << 32);
            }
            OsEvent::Park { task, cpu, parked } => {
                h.word(
                    17 | u64::from(cpu.0) << 8 | u64::from(*parked) << 31 | u64::from(task.0) << 32,
                );
            }
            OsEvent::TimersMoved { from, to, tasks } => {
                h.word(18 | u64::from(from.0) << 8 | u64::from(to.0) << 32);
                for t in tasks {
                    h.word(u64::from(t.0));
                }
            }
            OsEvent::TaskAccess {
                task,
                cpu,
                obj,
                page,
                slot,
                word,
                addr,
                value,
                store,
            } => {
                h.word((19 + u64::from(*store)) | u64::from(cpu.0) << 8 | u64::from(task.0) << 32);
                h.word(obj.word() ^ u64::from(*page) << 24 ^ u64::from(*slot) << 56);
                h.word(u64::from(*word));
                h.word(*addr);
                h.word(*value);
            }
            OsEvent::IpiSent { from, to, vector } => {
                h.word(
                    21 | u64::from(from.0) << 8 | u64::from(*vector) << 24 | u64::from(to.0) << 32,
                );
            }
            OsEvent::IpiHandled { cpu, vector } => {
                h.word(22 | u64::from(cpu.0) << 8 | u64::from(*vector) << 32);
            }
            OsEvent::CsdQueued { id, from, to } => {
                h.word(23 | u64::from(from.0) << 8 | u64::from(to.0) << 32);
                h.word(*id);
            }
            OsEvent::CsdDone { id, cpu } => {
                h.word(24 | u64::from(cpu.0) << 8);
                h.word(*id);
            }
            OsEvent::CsdTimeout {
                id,
                from,
                to,
                waited,
            } => {
                h.word(25 | u64::from(from.0) << 8 | u64::from(to.0) << 32);
                h.word(*id);
                h.word(waited.as_nanos());
            }
            OsEvent::IrqRouted {
                gsi,
                vector,
                cpu,
                from,
            } => {
                h.word(26 | u64::from(cpu.0) << 8 | u64::from(*vector) << 24);
                h.word(u64::from(*gsi));
                h.word(from.map_or(u64::MAX, |c| u64::from(c.0)));
            }
            OsEvent::IrqDisabled {
                gsi,
                vector,
                unhandled,
            } => {
                h.word(51 | u64::from(*vector) << 8 | u64::from(*gsi) << 32);
                h.word(u64::from(*unhandled));
            }
            OsEvent::IrqFreed { gsi, vector } => {
                h.word(53 | u64::from(*vector) << 8 | u64::from(*gsi) << 32);
            }
            // The tags are not hashed: the hardware's events before this one fix them.
            OsEvent::IrqHandled {
                gsi, vector, cpu, ..
            } => {
                h.word(27 | u64::from(cpu.0) << 8 | u64::from(*vector) << 24);
                h.word(u64::from(*gsi));
            }
            OsEvent::CpuHalted {
                cpu,
                flushed_lines,
                dirty_lines,
            } => {
                h.word(28 | u64::from(cpu.0) << 8);
                h.word(u64::from(*flushed_lines) << 32 | u64::from(*dirty_lines));
            }
            OsEvent::OpStart {
                flow,
                op,
                kind,
                target,
                trigger,
            } => {
                let (tag, _, _) = flow.tags();
                match target {
                    OpTarget::Cpu(cpu) => {
                        h.word(tag | u64::from(cpu.0) << 8 | u64::from(*op) << 32);
                        h.str(kind);
                        h.str(trigger);
                    }
                    OpTarget::Blocks(blocks) => {
                        h.word(tag | u64::from(*op) << 32);
                        h.str(kind);
                        h.str(trigger);
                        for b in blocks {
                            h.word(u64::from(*b));
                        }
                    }
                    OpTarget::Slot(slot) => {
                        // Hashed as its name, as when slots were named targets.
                        h.word(tag | u64::from(*op) << 32);
                        h.str(kind);
                        h.str(&format!("slot {}", slot.0));
                        h.str(trigger);
                    }
                    OpTarget::Named(target) => {
                        h.word(tag | u64::from(*op) << 32);
                        h.str(kind);
                        h.str(target);
                        h.str(trigger);
                    }
                }
            }
            OsEvent::OpStep {
                flow,
                op,
                step,
                start,
                duration,
                note,
                ..
            } => {
                let (_, tag, _) = flow.tags();
                h.word(tag | u64::from(*step) << 8 | u64::from(*op) << 32);
                h.word(start.as_nanos());
                h.word(duration.as_nanos());
                h.str(note);
            }
            OsEvent::OpQueued { flow, op } => {
                h.word(54 | (*flow as u64) << 8 | u64::from(*op) << 32);
            }
            OsEvent::OpEnd { flow, op, result } => {
                let (_, _, tag) = flow.tags();
                h.word(tag | u64::from(*op) << 32);
                match result {
                    Ok(()) => h.word(0),
                    Err(e) => h.str(e),
                }
            }
            OsEvent::HotplugRefused { cpu, kind, error } => {
                h.word(32 | u64::from(*cpu) << 32);
                h.str(kind);
                h.str(error);
            }
            OsEvent::AcpiNotify { path, code } => {
                h.word(33 | u64::from(*code) << 8);
                h.str(path);
            }
            OsEvent::RequestRefused {
                target,
                errno,
                error,
            } => {
                h.word(52);
                h.str(target);
                h.str(errno);
                h.str(error);
            }
        }
    }
}
