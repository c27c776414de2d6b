//! The steps of memory and cell operations: one arm per step, each returning what comes
//! next.

use super::{MemError, MemFlow, MemStep, MemWait};
use crate::config::{MemmapOn, OsDefect};
use crate::cpumask::LogicalCpu;
use crate::hotplug::{Accepted, OpKind, Trigger};
use crate::hw::Cx;
use crate::ids::BlockId;
use crate::kernel::Os;
use crate::mm::kernel::Mm;
use crate::mm::{BlockState, Gfp, Owner, PAGEBLOCK_PAGES, ZoneKind};
use crate::ops::{FlowKind, Next};
use crate::pcihp::PciFlow;
use sim_core::SimTime;

impl MemFlow {
    pub(crate) fn mem_act(
        os: &mut Os,
        now: SimTime,
        step: MemStep,
        cx: &mut Cx<'_>,
    ) -> Next<MemFlow> {
        let Some(cur) = os.memhp.running() else {
            return Next::Done(now, String::new());
        };
        let ctl = cur.report.controller;
        let node = cur.req.node.map(|n| n.0);
        let mut t = now;
        match step {
            MemStep::CpusDown => {
                let Some(n) = node else {
                    return Next::Done(now, "no CPUs".into());
                };
                let cpus: Vec<LogicalCpu> = os
                    .cur_maps()
                    .online
                    .iter()
                    .filter(|c| os.pcpu[c.index()].node == n)
                    .collect();
                let mut ids = Vec::new();
                for c in &cpus {
                    match os.request(now, OpKind::Down, c.0, Trigger::Cell) {
                        Ok(Accepted::Queued { op }) => ids.push(op),
                        // Already on its way down (asked before the cell): the cell waits for
                        // that operation too, or it would power the CPU off under it.
                        Ok(Accepted::NoChange) => {
                            ids.extend(crate::hotplug::CpuFlow::op_taking_down(os, *c));
                        }
                        Err(e) => {
                            return Next::Fail(
                                now,
                                MemError::Cpu {
                                    cpu: c.0,
                                    error: e.to_string(),
                                },
                            );
                        }
                    }
                }
                if let Some(cur) = os.memhp.running_mut() {
                    cur.state.cpus_down = cpus.clone();
                }
                for op in ids {
                    crate::ops::adopt::<MemFlow>(os, FlowKind::Cpu, op);
                }
                let note = format!("{} CPUs of node{n} queued for hot-remove", cpus.len());
                Next::Poll(MemWait::Children, now + os.config().step_cost, note)
            }
            MemStep::CpusUp => {
                let Some(n) = node else {
                    return Next::Done(now, "no CPUs".into());
                };
                let cpus: Vec<LogicalCpu> = os
                    .possible
                    .iter()
                    .filter(|c| os.pcpu[c.index()].node == n && os.present.contains(*c))
                    .collect();
                let mut ids = Vec::new();
                for c in &cpus {
                    if let Ok(Accepted::Queued { op }) =
                        os.request(now, OpKind::Up, c.0, Trigger::Cell)
                    {
                        ids.push(op);
                    }
                }
                let note = format!("{} CPUs of node{n} queued for hot-add", ids.len());
                for op in ids {
                    crate::ops::adopt::<MemFlow>(os, FlowKind::Cpu, op);
                }
                Next::Poll(MemWait::Children, now + os.config().step_cost, note)
            }
            MemStep::Isolate => {
                // As start_isolate_page_range: block by block, each checked for unmovable
                // pages first; on a refusal the blocks isolated so far are put back.
                let blocks = MemFlow::cur_blocks(os);
                let check = !os.has_defect(OsDefect::SkipUnmovableCheck);
                let digest = os.vm.as_ref().map(crate::mm::manager::Vm::digest);
                if let Some(cur) = os.memhp.running_mut() {
                    cur.state.digest = digest.map(|d| (now, d));
                }
                let mut isolated: Vec<u32> = Vec::new();
                let mut used = 0;
                let mut refusal = None;
                for &b in &blocks {
                    let vm = os.vmm();
                    let blk = &vm.phys.blocks[b as usize];
                    match blk.state {
                        BlockState::Online => {}
                        BlockState::Offline if node.is_some() => continue,
                        BlockState::Offline | BlockState::GoingOffline => {
                            refusal = Some(MemError::WrongState {
                                block: BlockId(b),
                                state: blk.state.name(),
                            });
                            break;
                        }
                    }
                    if check {
                        if let Some((pfn, owner)) = vm.phys.unmovable_summary(b) {
                            refusal = Some(MemError::Unmovable {
                                block: BlockId(b),
                                pfn,
                                owner,
                            });
                            break;
                        }
                    }
                    vm.phys.isolate_block(b);
                    used += vm.phys.used_in(b).len();
                    isolated.push(b);
                }
                let n = isolated.len() as u64;
                let names = isolated
                    .iter()
                    .map(|b| format!("memory{b}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                if let Some(cur) = os.memhp.running_mut() {
                    cur.state.isolated = isolated;
                }
                if let Some(e) = refusal {
                    // mem_undo puts the isolated blocks back.
                    return Next::Fail(now, e);
                }
                let note = format!(
                    "{n} blocks isolated ({names}), {used} pages in use{}",
                    if check {
                        ""
                    } else {
                        "; unmovable check skipped (defect skip_unmovable_check)"
                    }
                );
                Next::Done(now + os.config().memory.page_cost.saturating_mul(n), note)
            }
            MemStep::Migrate => MemFlow::mem_migrate_pass(os, &mut t, ctl, cx),
            MemStep::OfflineBlocks => {
                let blocks = MemFlow::isolated_blocks(os);
                let force = os.has_defect(OsDefect::SkipUnmovableCheck);
                let mut freed = Vec::new();
                let mut left = 0usize;
                for &b in &blocks {
                    let vm = os.vmm();
                    if force {
                        // The defect: whatever is left (kernel pages) is dropped with the block.
                        let used = vm.phys.used_in(b);
                        left += used.len();
                        for pfn in used {
                            vm.phys.map.set_owner(pfn, Owner::Free);
                            vm.phys.map.clear_rmap(pfn);
                            vm.phys.map.set_flags(pfn, 0);
                            vm.phys.free(pfn, 0);
                        }
                    }
                    match os.vmm().phys.offline_block(b) {
                        Ok(v) => freed.extend(v),
                        Err((pfn, owner)) => {
                            return Next::Fail(
                                now,
                                MemError::Unmovable {
                                    block: BlockId(b),
                                    pfn,
                                    owner: owner.to_string(),
                                },
                            );
                        }
                    }
                }
                let n_memmap = freed.len();
                if os.has_defect(crate::config::OsDefect::LeakMemmapOnOffline) {
                    // The defect: the descriptors on the other node are forgotten.
                    freed.clear();
                }
                for pfn in freed {
                    os.vmm().phys.map.set_owner(pfn, Owner::Free);
                    Mm::free_frame(os, t, pfn, 0);
                }
                if let Some(cur) = os.memhp.running_mut() {
                    cur.state.isolated.clear();
                }
                let mut note = format!("{} blocks offline; mem_map released", blocks.len());
                if n_memmap > 0 {
                    note.push_str(&format!(" ({n_memmap} pages on another node freed)"));
                }
                if force && left > 0 {
                    note.push_str(&format!("; {left} unmovable pages dropped with the blocks"));
                }
                Next::Done(
                    t + os
                        .config()
                        .memory
                        .page_cost
                        .saturating_mul(blocks.len() as u64),
                    note,
                )
            }
            MemStep::Teardown => {
                let vm = os.vmm();
                let mut notes = Vec::new();
                for n in 0..vm.phys.nodes.len() as u32 {
                    if vm.phys.nodes[n as usize].online && vm.phys.node_blocks(n).is_empty() {
                        vm.phys.nodes[n as usize].online = false;
                        if let Some(pg) = vm.phys.nodes[n as usize].pgdat.take() {
                            vm.phys.map.set_owner(pg, Owner::Free);
                            notes.push((n, pg));
                        }
                    }
                }
                let freed: Vec<String> = notes.iter().map(|(n, _)| format!("node{n}")).collect();
                for (_, pg) in notes {
                    Mm::free_frame(os, t, pg, 0);
                }
                let vm = os.vmm();
                vm.phys.rebuild_zonelists();
                let note = if freed.is_empty() {
                    "zonelists rebuilt".to_owned()
                } else {
                    format!("pg_data of {} freed; zonelists rebuilt", freed.join(" "))
                };
                Next::Done(t, note)
            }
            MemStep::FlushCaches => {
                // Every CPU writes back and drops what it caches of the removed range (a
                // cross-call that runs PAL_CACHE_FLUSH), and flushes its TLB: every CPU running
                // the kernel, in the online map or on its way in or out of it (one that left
                // the map but has not flushed and halted yet still holds dirty lines, which
                // its own flush would write back to memory that is gone by then). One not yet
                // started refuses the call and holds nothing.
                let cpus: Vec<LogicalCpu> = os
                    .possible
                    .iter()
                    .filter(|c| {
                        matches!(
                            os.pcpu[c.index()].life,
                            crate::sched::CpuLife::Up | crate::sched::CpuLife::Coming
                        )
                    })
                    .collect();
                let mut lines = 0u64;
                let mut end = t;
                for c in cpus {
                    let hw = os.hw(c);
                    if let Ok(r) = cx.p.pal_cache_flush(t, hw, cx.probe) {
                        lines += r.lines as u64;
                        end = end.max(t + r.latency);
                    }
                    os.vmm().tlbs[c.index()].flush();
                }
                Next::Done(
                    end,
                    format!("caches and TLBs of every running CPU flushed ({lines} lines)"),
                )
            }
            MemStep::Eject => {
                let Some(path) = os.memhp.running().and_then(|c| c.req.acpi_path.clone()) else {
                    return Next::Done(now, "nothing to eject".into());
                };
                let (gone, note) = os.eject(&mut t, ctl, &path, &path, cx);
                if gone {
                    if let Some(n) = node {
                        // Its memory block devices go with it.
                        if let Some(nd) = os.vmm().phys.nodes.get_mut(n as usize) {
                            nd.present = false;
                        }
                        for c in os.possible.iter().collect::<Vec<_>>() {
                            let path = os.pcpu[c.index()].path.clone();
                            if os.pcpu[c.index()].node == n
                                && !os.sta_present(&mut t, ctl, &path, cx)
                            {
                                os.present.clear(c);
                                os.pcpu[c.index()].life = crate::sched::CpuLife::NotPresent;
                            }
                        }
                    }
                }
                Next::Done(t, note)
            }
            MemStep::RemoveChipset => match node {
                Some(n) => Next::Done(t, PciFlow::chipset_remove(os, n)),
                None => Next::Done(t, "no cell".into()),
            },
            MemStep::AddChipset => match node {
                Some(n) => {
                    let note = PciFlow::chipset_add(os, &mut t, ctl, Some(n), cx);
                    Next::Done(t, note)
                }
                None => Next::Done(t, "no cell".into()),
            },
            MemStep::OnlineBlocks => MemFlow::mem_online_blocks(os, now, ctl, cx),
            MemStep::Zonelists => {
                let vm = os.vmm();
                vm.phys.rebuild_zonelists();
                let n = vm.phys.stats.zonelist_rebuilds;
                Next::Done(now, format!("zonelists rebuilt (rebuild {n})"))
            }
        }
    }

    pub(crate) fn mem_online_blocks(
        os: &mut Os,
        now: SimTime,
        ctl: LogicalCpu,
        cx: &mut Cx<'_>,
    ) -> Next<MemFlow> {
        let blocks = MemFlow::cur_blocks(os);
        let policy = os.config().memory.memmap_on;
        let node_req = os.memhp.running().and_then(|c| c.req.node).map(|n| n.0);
        let mut onlined = Vec::new();
        let mut t = now;
        for b in blocks {
            let vm = os.vmm();
            let blk = vm.phys.blocks[b as usize].clone();
            if blk.state != BlockState::Offline {
                if node_req.is_some() {
                    continue;
                }
                return Next::Fail(
                    now,
                    MemError::WrongState {
                        block: BlockId(b),
                        state: blk.state.name(),
                    },
                );
            }
            // The memory must be there: its memory device's _STA says present.
            let device = os
                .scan()
                .memory
                .iter()
                .find(|m| m.node == blk.node)
                .map(|m| m.path.clone());
            if !device.is_some_and(|d| os.sta_present(&mut t, ctl, &d, cx)) {
                return Next::Fail(now, MemError::NotPresent { block: BlockId(b) });
            }
            let vm = os.vmm();
            let movable = vm.phys.nodes[blk.node as usize].movable;
            let zone = if movable {
                ZoneKind::Movable
            } else {
                ZoneKind::Normal
            };
            let memmap = match policy {
                MemmapOn::NewMemory => None,
                MemmapOn::Node(n) => {
                    let k = vm.phys.memmap_pages();
                    let mut frames = Vec::new();
                    for _ in 0..k {
                        match vm.phys.alloc(n, 0, Gfp::Kernel, Owner::MemMap { block: b }) {
                            Ok(f) => frames.push(f),
                            Err(_) => break,
                        }
                    }
                    if frames.len() < k as usize {
                        for f in frames {
                            os.vmm().phys.map.set_owner(f, Owner::Free);
                            Mm::free_frame(os, t, f, 0);
                        }
                        return Next::Fail(now, MemError::NoMemory { pfn: blk.start });
                    }
                    Some(frames)
                }
            };
            vm.phys.online_block(b, zone, memmap, 0);
            vm.phys.nodes[blk.node as usize].present = true;
            if !vm.phys.nodes[blk.node as usize].online {
                // A new node: its pg_data (on memory that stays).
                let n = blk.node;
                vm.phys.nodes[n as usize].online = true;
                vm.phys.rebuild_zonelists();
                let near = vm.phys.zonelists[n as usize]
                    .iter()
                    .map(|&z| vm.phys.zones[z as usize].node)
                    .find(|&m| !vm.phys.nodes[m as usize].movable)
                    .unwrap_or(0);
                if let Ok(pg) = vm
                    .phys
                    .alloc(near, 0, Gfp::Kernel, Owner::NodeData { node: n })
                {
                    vm.phys.nodes[n as usize].pgdat = Some(pg);
                }
            }
            t += os
                .config()
                .memory
                .page_cost
                .saturating_mul(u64::from(blk.pages / PAGEBLOCK_PAGES));
            onlined.push(format!("memory{b}"));
        }
        let place = match policy {
            MemmapOn::NewMemory => "mem_map on the new memory".to_owned(),
            MemmapOn::Node(n) => format!("mem_map on node{n}"),
        };
        Next::Done(t, format!("{} online ({place})", onlined.join(" ")))
    }
}
