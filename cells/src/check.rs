//! The hardware checkers.
//!
//! * [`AccessChecker`] — **CHK-1**, hardware side: every access issued by a CPU that is not
//!   running, every access to memory whose home cell is not powered (a dirty line's write-back
//!   included), every access to an address that decodes to no memory at all, and every
//!   coherence request sent to a CPU that is halted or absent is a violation naming both ends.
//! * [`CoherenceChecker`] — **CHK-2**: every coherent read returns the last value written (a
//!   golden shadow memory, independent of the caches); after every miss or upgrade, no other
//!   cache holds the line in a conflicting state (single writer / multiple readers, in *deep*
//!   mode); CPUs never halt or lose power holding dirty data; and, at each audit, every directory
//!   entry agrees with the caches it names and every cached line is recorded by its home
//!   directory, with clean copies equal to memory (or to the owner's copy). DMA reads are
//!   checked against the shadow too, and DMA writes update it. A cache that gives up a dirty
//!   line whose data memory does not take (its home offline, or a defect) is reported at once.
//!   Each audit also compares memory itself with the shadow, [`SWEEP_PAGES`] written pages at
//!   a time in a rotating sweep: a line no cache holds must read in memory what was last
//!   written there.
//! * [`InterruptChecker`] — **CHK-6**, hardware side: no interrupt message reaches a halted or
//!   absent CPU (or no CPU), and no CPU stops with interrupts pending in its local SAPIC.
//!
//! Both are proven by injectable defects (see [`crate::defect`]) in this crate's tests.

use sim_core::{CheckerId, CpuId, Delivery, Entity, PhysAddr, SimTime, Violation, Violations};

use crate::cache::LineState;
use crate::cell::CellState;
use crate::cpu::CpuState;
use crate::event::{AccessKind, HwEvent, Outcome, Served};
use crate::machine::Machine;
use crate::memory::PageStore;

/// CHK-1 (hardware side).
pub const CHK_ACCESS: CheckerId = CheckerId {
    code: "CHK-1",
    name: "no-access-after-remove",
};
/// CHK-2.
pub const CHK_COHERENCE: CheckerId = CheckerId {
    code: "CHK-2",
    name: "coherence",
};
/// CHK-6 (hardware side).
pub const CHK_INTERRUPTS: CheckerId = CheckerId {
    code: "CHK-6",
    name: "interrupts",
};
/// Mismatches found by the random tester's own read-back checks.
pub const TESTER: CheckerId = CheckerId {
    code: "TESTER",
    name: "random-tester",
};

/// CHK-1, hardware side (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessChecker;

impl AccessChecker {
    fn report(now: SimTime, agent: Entity, target: Entity, message: String, out: &mut Violations) {
        out.push(Violation {
            time: now,
            checker: CHK_ACCESS,
            agent,
            target,
            message,
        });
    }

    /// The memory at `addr` must be on a powered cell.
    fn home_powered(
        now: SimTime,
        hw: &Machine,
        agent: &Entity,
        what: &str,
        addr: PhysAddr,
        out: &mut Violations,
    ) {
        let Some(home) = hw.home_of(addr) else { return };
        let Some(cell) = hw.cell(home) else { return };
        if !cell.memory_online() {
            let why = if cell.state.is_powered() {
                "has its memory disabled".to_owned()
            } else {
                format!("is {}", cell.state)
            };
            let message = format!("{what} of {addr} by {agent}: its home {home} {why}");
            Self::report(now, *agent, Entity::Memory(addr), message, out);
        }
    }
}

impl sim_core::Checker<HwEvent, Machine> for AccessChecker {
    fn id(&self) -> CheckerId {
        CHK_ACCESS
    }

    fn observe(&mut self, now: SimTime, ev: &HwEvent, hw: &Machine, out: &mut Violations) {
        match ev {
            HwEvent::Access {
                kind, cpu, addr, ..
            } => {
                let agent = Entity::Cpu(*cpu);
                if let Some(c) = hw.cpu(*cpu).filter(|c| !c.state.is_running()) {
                    let message = format!("{kind} of {addr} issued by {cpu}, which is {}", c.state);
                    Self::report(now, agent, Entity::Memory(*addr), message, out);
                }
                Self::home_powered(now, hw, &agent, kind.as_str(), *addr, out);
            }
            HwEvent::NcRead { agent, addr, .. } => {
                Self::home_powered(now, hw, agent, "uncached read", *addr, out);
            }
            HwEvent::NcWrite { agent, addr, .. } => {
                Self::home_powered(now, hw, agent, "uncached write", *addr, out);
            }
            HwEvent::Snoop {
                home,
                to,
                line,
                kind,
                requester,
                ..
            } => {
                if let Some(c) = hw.cpu(*to).filter(|c| !c.state.is_running()) {
                    let message = format!(
                        "{kind} request for line {line} (home {home}, caused by {requester}) \
                         sent to {to}, which is {}",
                        c.state
                    );
                    Self::report(now, *requester, Entity::Cpu(*to), message, out);
                }
            }
            HwEvent::Dma {
                agent, addr, write, ..
            } => {
                let what = if *write { "DMA write" } else { "DMA read" };
                Self::home_powered(now, hw, agent, what, *addr, out);
            }
            HwEvent::Copy { cpu, src, dst, .. } => {
                let agent = Entity::Cpu(*cpu);
                if let Some(c) = hw.cpu(*cpu).filter(|c| !c.state.is_running()) {
                    let message = format!(
                        "page copy {src} -> {dst} issued by {cpu}, which is {}",
                        c.state
                    );
                    Self::report(now, agent, Entity::Memory(*src), message, out);
                    return;
                }
                Self::home_powered(now, hw, &agent, "page copy read", *src, out);
                Self::home_powered(now, hw, &agent, "page copy write", *dst, out);
            }
            HwEvent::Uncached {
                cpu,
                space,
                target,
                write,
                ..
            } => {
                if let Some(c) = hw.cpu(*cpu).filter(|c| !c.state.is_running()) {
                    let rw = if *write { "write" } else { "read" };
                    let message = format!(
                        "{space} {rw} of {target:#x} issued by {cpu}, which is {}",
                        c.state
                    );
                    Self::report(
                        now,
                        Entity::Cpu(*cpu),
                        Entity::Unclaimed(*target),
                        message,
                        out,
                    );
                }
            }
            HwEvent::Unmapped {
                agent,
                addr,
                write,
                coherent,
            } => {
                let what = crate::event::access_name(*coherent, *write);
                let end = PhysAddr::new(hw.address_map().total_bytes());
                let message = format!(
                    "{what} of {addr} by {agent} decodes to no memory (memory ends at {end}): \
                     nothing answers it"
                );
                Self::report(now, *agent, Entity::Unclaimed(addr.raw()), message, out);
            }
            HwEvent::WriteBack {
                cpu,
                line,
                cause,
                dirty: true,
                ..
            } => {
                let what = format!("write-back ({cause})");
                Self::home_powered(now, hw, &Entity::Cpu(*cpu), &what, *line, out);
            }
            HwEvent::WriteBack { dirty: false, .. }
            | HwEvent::Flush { .. }
            | HwEvent::CpuTransition { .. }
            | HwEvent::CellTransition { .. }
            | HwEvent::CorrectedError { .. }
            | HwEvent::UncorrectedError { .. }
            | HwEvent::MachineCheck { .. }
            | HwEvent::Interrupt { .. }
            | HwEvent::InterruptTaken { .. }
            | HwEvent::MemoryEnable { .. } => {}
        }
    }
}

/// CHK-6, hardware side: no interrupt message reaches a CPU that is not running (or no CPU at
/// all), and no CPU stops with interrupts still pending in its local SAPIC.
#[derive(Clone, Copy, Debug, Default)]
pub struct InterruptChecker;

impl sim_core::Checker<HwEvent, Machine> for InterruptChecker {
    fn id(&self) -> CheckerId {
        CHK_INTERRUPTS
    }

    fn observe(&mut self, now: SimTime, ev: &HwEvent, hw: &Machine, out: &mut Violations) {
        let mut report = |agent: Entity, target: Entity, message: String| {
            out.push(Violation {
                time: now,
                checker: CHK_INTERRUPTS,
                agent,
                target,
                message,
            });
        };
        match ev {
            HwEvent::Interrupt {
                source,
                dest,
                vector,
                delivery,
                ..
            } => match delivery {
                Delivery::Accepted(_) => {}
                Delivery::NotRunning(c) => {
                    let state = hw.cpu(*c).map_or(CpuState::Absent, |x| x.state);
                    report(
                        *source,
                        Entity::Cpu(*c),
                        format!(
                            "interrupt vector {vector:#04x} from {source} sent to {c} ({dest}), \
                         which is {state}: it is lost"
                        ),
                    );
                }
                Delivery::NoSuchCpu => {
                    report(
                        *source,
                        Entity::Machine,
                        format!(
                            "interrupt vector {vector:#04x} from {source} sent to {dest}, which is \
                         no CPU: it is lost"
                        ),
                    );
                }
            },
            HwEvent::CpuTransition {
                cpu,
                event,
                from,
                to,
                pending_interrupts,
                ..
            } => {
                let stops =
                    *from == CpuState::Running && matches!(to, CpuState::Halted | CpuState::Absent);
                if stops && *pending_interrupts > 0 {
                    report(
                        Entity::Cpu(*cpu),
                        Entity::Cpu(*cpu),
                        format!(
                            "{cpu} was {to} ({event}) with {pending_interrupts} interrupt vectors \
                         pending: they are never handled"
                        ),
                    );
                }
            }
            HwEvent::Access { .. }
            | HwEvent::NcRead { .. }
            | HwEvent::NcWrite { .. }
            | HwEvent::Snoop { .. }
            | HwEvent::Flush { .. }
            | HwEvent::CellTransition { .. }
            | HwEvent::CorrectedError { .. }
            | HwEvent::UncorrectedError { .. }
            | HwEvent::MachineCheck { .. }
            | HwEvent::Dma { .. }
            | HwEvent::Copy { .. }
            | HwEvent::InterruptTaken { .. }
            | HwEvent::MemoryEnable { .. }
            | HwEvent::Unmapped { .. }
            | HwEvent::WriteBack { .. }
            | HwEvent::Uncached { .. } => {}
        }
    }
}

/// CHK-2 (see the module docs).
pub struct CoherenceChecker {
    shadow: PageStore,
    deep: bool,
    line_shift: u32,
    page_shift: u32,
    words_per_line: usize,
    max_per_audit: usize,
    audits: u64,
    /// Next frame of the rotating memory sweep.
    sweep: usize,
}

/// Written pages the memory sweep of one audit compares with the shadow.
pub const SWEEP_PAGES: usize = 1024;

impl CoherenceChecker {
    /// A checker whose golden shadow starts as the machine's current coherent contents.
    /// `deep` adds the per-miss single-writer probe of every other cache.
    pub fn new(hw: &Machine, deep: bool) -> Self {
        let g = hw.geometry();
        let mut shadow = hw.memory().store().clone();
        for cpu in hw.cpus() {
            if let Some(cache) = hw.cache(cpu.id) {
                for (slot, line, st) in cache.lines() {
                    if st.is_dirty() {
                        shadow.write_words(line << g.line_shift, cache.line_data(slot));
                    }
                }
            }
        }
        CoherenceChecker {
            shadow,
            deep,
            line_shift: g.line_shift,
            page_shift: g.page_shift,
            words_per_line: g.words_per_line,
            max_per_audit: 16,
            audits: 0,
            sweep: 0,
        }
    }

    /// Full audits run so far.
    pub fn audits(&self) -> u64 {
        self.audits
    }

    fn violation(now: SimTime, agent: Entity, target: Entity, message: String) -> Violation {
        Violation {
            time: now,
            checker: CHK_COHERENCE,
            agent,
            target,
            message,
        }
    }

    /// After `me`'s miss or upgrade on `line`: no other cache may hold it in a state that
    /// conflicts with `me`'s.
    fn single_writer(
        &self,
        now: SimTime,
        hw: &Machine,
        me: CpuId,
        line: u64,
        kind: AccessKind,
        out: &mut Violations,
    ) {
        let Some(mine) = hw.cache(me).and_then(|c| c.probe(line)).map(|(s, _)| s) else {
            out.push(Self::violation(
                now,
                Entity::Cpu(me),
                Entity::Line(hw.line_addr(line)),
                format!(
                    "{me} completed a {kind} of line {} but does not hold it",
                    hw.line_addr(line)
                ),
            ));
            return;
        };
        for cpu in hw.cpus() {
            if cpu.id == me {
                continue;
            }
            let Some((st, _)) = hw.cache(cpu.id).and_then(|c| c.probe(line)) else {
                continue;
            };
            let conflict = match kind {
                AccessKind::Store => true,
                AccessKind::Load => {
                    matches!(st, LineState::Modified | LineState::Exclusive)
                        || (mine == LineState::Exclusive)
                        || (st == LineState::Owned && mine != LineState::Shared)
                }
            };
            if conflict {
                out.push(Self::violation(
                    now,
                    Entity::Cpu(me),
                    Entity::Cpu(cpu.id),
                    format!(
                        "single writer violated: after {me}'s {kind} of line {} ({mine}), {} \
                         still holds it in {st}",
                        hw.line_addr(line),
                        cpu.id
                    ),
                ));
            }
        }
    }

    fn zero_cell(&mut self, hw: &Machine, cell: sim_core::CellId) {
        let shift = self.line_shift;
        let wpl = self.words_per_line;
        let shadow = &mut self.shadow;
        hw.address_map().for_each_line_run(cell, |first, n| {
            let page_lines = 1u64 << (hw.geometry().page_shift - shift);
            let mut l = first;
            let end = first + n;
            while l < end {
                // Whole pages at once where possible.
                if l % page_lines == 0 && end - l >= page_lines {
                    shadow.zero_words(l << shift, wpl * page_lines as usize);
                    l += page_lines;
                } else {
                    shadow.zero_words(l << shift, wpl);
                    l += 1;
                }
            }
        });
    }
}

fn memory_line<'a>(hw: &'a Machine, addr: u64, wpl: usize, zeros: &'a [u64]) -> &'a [u64] {
    hw.memory().store().words(addr, wpl).unwrap_or(zeros)
}

fn mask_list(m: &crate::directory::CpuMask) -> String {
    let v: Vec<String> = m.iter().map(|c| c.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

impl sim_core::Checker<HwEvent, Machine> for CoherenceChecker {
    fn id(&self) -> CheckerId {
        CHK_COHERENCE
    }

    fn observe(&mut self, now: SimTime, ev: &HwEvent, hw: &Machine, out: &mut Violations) {
        match ev {
            HwEvent::Access {
                kind,
                cpu,
                addr,
                value,
                served,
                outcome,
                ..
            } => {
                match outcome {
                    Outcome::Performed => {}
                    Outcome::IssuerNotRunning | Outcome::HomeNotPowered => return,
                }
                match kind {
                    AccessKind::Load => {
                        let expected = self.shadow.read(addr.raw());
                        if expected != *value {
                            out.push(Self::violation(
                                now,
                                Entity::Cpu(*cpu),
                                Entity::Memory(*addr),
                                format!(
                                    "{cpu} read {value:#x} from {addr} (served by {served:?}) \
                                     but the last value written there is {expected:#x}"
                                ),
                            ));
                        }
                    }
                    AccessKind::Store => self.shadow.write(addr.raw(), *value),
                }
                if self.deep && *served != Served::Hit {
                    self.single_writer(now, hw, *cpu, addr.raw() >> self.line_shift, *kind, out);
                }
            }
            HwEvent::NcWrite { addr, value, .. } => {
                let online = hw
                    .home_of(*addr)
                    .and_then(|h| hw.cell(h))
                    .is_some_and(|c| c.memory_online());
                if online {
                    self.shadow.write(addr.raw(), *value);
                }
            }
            HwEvent::Dma {
                agent,
                addr,
                write,
                outcome,
                data,
            } => match (outcome, write) {
                (Outcome::Performed, true) => {
                    for (i, &w) in data.iter().enumerate() {
                        self.shadow.write(addr.raw() + 8 * i as u64, w);
                    }
                }
                (Outcome::Performed, false) => {
                    let bad = data.iter().enumerate().find_map(|(i, &w)| {
                        let a = addr.raw() + 8 * i as u64;
                        let expected = self.shadow.read(a);
                        (expected != w).then_some((a, w, expected))
                    });
                    if let Some((a, got, expected)) = bad {
                        out.push(Self::violation(
                            now,
                            *agent,
                            Entity::Memory(PhysAddr::new(a)),
                            format!(
                                "DMA read by {agent} got {got:#x} at {} but the last value \
                                 written there is {expected:#x}",
                                PhysAddr::new(a)
                            ),
                        ));
                    }
                }
                (Outcome::IssuerNotRunning | Outcome::HomeNotPowered, _) => {}
            },
            HwEvent::CellTransition { cell, to, .. } => match to {
                CellState::PoweredOn => self.zero_cell(hw, *cell),
                CellState::Absent | CellState::PoweredOff => {}
            },
            HwEvent::CpuTransition {
                cpu,
                event,
                from,
                to,
                dirty_lines,
                first_dirty,
                ..
            } => {
                let leaves = match to {
                    CpuState::Halted | CpuState::Absent => *from == CpuState::Running,
                    CpuState::PresentHalted | CpuState::Running => false,
                };
                if leaves && *dirty_lines > 0 {
                    let first = first_dirty.unwrap_or_default();
                    out.push(Self::violation(
                        now,
                        Entity::Cpu(*cpu),
                        Entity::Line(first),
                        format!(
                            "{cpu} was {} ({event}) holding {dirty_lines} dirty lines (first \
                             {first}) that were never written back: their data is lost",
                            to
                        ),
                    ));
                }
            }
            HwEvent::Copy {
                src,
                dst,
                bytes,
                read,
                write: Outcome::Performed,
                ..
            } => {
                // The destination now holds what was last written at the source: a copy
                // that did not get it (not coherent) is caught by the next read.
                let dp = (dst.raw() >> self.page_shift) as usize;
                if *read == Outcome::Performed {
                    self.shadow
                        .copy_page((src.raw() >> self.page_shift) as usize, dp);
                } else {
                    let ones = vec![u64::MAX; (*bytes / 8) as usize];
                    self.shadow.write_words(dst.raw(), &ones);
                }
            }
            HwEvent::WriteBack {
                cpu,
                line,
                home,
                cause,
                dirty: true,
                written: false,
            } => {
                let why = match hw.cell(*home) {
                    Some(c) if !c.memory_online() => {
                        format!("its home {home} is offline ({})", c.state)
                    }
                    Some(_) | None => "memory did not take it".to_owned(),
                };
                out.push(Self::violation(
                    now,
                    Entity::Cpu(*cpu),
                    Entity::Line(*line),
                    format!(
                        "{cpu} gave up dirty line {line} ({cause}) and its data never reached \
                         memory: {why}; the last values written there are lost"
                    ),
                ));
            }
            HwEvent::WriteBack { .. }
            | HwEvent::Unmapped { .. }
            | HwEvent::Copy { .. }
            | HwEvent::NcRead { .. }
            | HwEvent::Snoop { .. }
            | HwEvent::Flush { .. }
            | HwEvent::CorrectedError { .. }
            | HwEvent::UncorrectedError { .. }
            | HwEvent::MachineCheck { .. }
            | HwEvent::Interrupt { .. }
            | HwEvent::InterruptTaken { .. }
            | HwEvent::MemoryEnable { .. }
            | HwEvent::Uncached { .. } => {}
        }
    }

    fn audit(&mut self, now: SimTime, hw: &Machine, out: &mut Violations) {
        self.audits += 1;
        let wpl = self.words_per_line;
        let shift = self.line_shift;
        let zeros = vec![0u64; wpl];
        let mem_line = |line: u64| memory_line(hw, line << shift, wpl, &zeros);
        let mut found: Vec<(u64, Violation)> = Vec::new();
        let mut report = |line: u64, agent: Entity, target: Entity, msg: String| {
            found.push((line, Self::violation(now, agent, target, msg)));
        };

        // Directories -> caches.
        for cell in hw.cells() {
            let Some(dir) = hw.directory(cell.id) else {
                continue;
            };
            for (line, e) in dir.sorted_entries() {
                let la = hw.line_addr(line);
                let here = Entity::Cell(cell.id);
                if hw.address_map().home_of_line(line) != Some(cell.id) {
                    report(
                        line,
                        here,
                        Entity::Line(la),
                        format!(
                            "directory at {} tracks line {la}, which is not homed there",
                            cell.id
                        ),
                    );
                }
                let mut owner_data: Option<&[u64]> = None;
                if let Some(o) = e.owner {
                    let state = hw.cpu(o).map_or(CpuState::Absent, |c| c.state);
                    match hw.cache(o).and_then(|c| c.probe(line)) {
                        None => report(
                            line,
                            here,
                            Entity::Cpu(o),
                            format!(
                                "directory at {} records {o} ({state}) as owner of line {la}, but its \
                             cache does not hold it",
                                cell.id
                            ),
                        ),
                        Some((st, data)) => {
                            // Alone, an owner may hold the line E, M, or O (its sharers
                            // have all evicted their copies); with sharers, only O.
                            let ok = if e.sharers.is_empty() {
                                matches!(
                                    st,
                                    LineState::Exclusive | LineState::Modified | LineState::Owned
                                )
                            } else {
                                st == LineState::Owned
                            };
                            if !ok {
                                report(
                                    line,
                                    here,
                                    Entity::Cpu(o),
                                    format!(
                                        "directory at {} records {o} as owner of line {la} with \
                                     sharers [{}], but {o} holds it in {st}",
                                        cell.id,
                                        mask_list(&e.sharers)
                                    ),
                                );
                            }
                            if st.is_dirty() {
                                owner_data = Some(data);
                            }
                        }
                    }
                }
                for s in e.sharers.iter() {
                    match hw.cache(s).and_then(|c| c.probe(line)) {
                        None => report(
                            line,
                            here,
                            Entity::Cpu(s),
                            format!(
                                "directory at {} records {s} as sharer of line {la}, but its cache \
                             does not hold it",
                                cell.id
                            ),
                        ),
                        Some((st, data)) => {
                            if st != LineState::Shared {
                                report(
                                    line,
                                    here,
                                    Entity::Cpu(s),
                                    format!(
                                        "directory at {} records {s} as sharer of line {la}, but it \
                                     holds it in {st}",
                                        cell.id
                                    ),
                                );
                            }
                            let reference = owner_data.unwrap_or_else(|| mem_line(line));
                            if st == LineState::Shared && data != reference {
                                report(
                                    line,
                                    Entity::Cpu(s),
                                    Entity::Line(la),
                                    format!(
                                        "{s}'s shared copy of line {la} differs from the {}",
                                        if owner_data.is_some() {
                                            "owner's copy"
                                        } else {
                                            "memory"
                                        }
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }

        // Caches -> directories.
        for cpu in hw.cpus() {
            let Some(cache) = hw.cache(cpu.id) else {
                continue;
            };
            for (slot, line, st) in cache.lines() {
                let la = hw.line_addr(line);
                let Some(home) = hw.address_map().home_of_line(line) else {
                    continue;
                };
                let home_cell = hw.cell(home);
                let home_state = home_cell.map_or(CellState::Absent, |c| c.state);
                if !home_cell.is_some_and(|c| c.memory_online()) {
                    let why = if home_state.is_powered() {
                        "has its memory disabled".to_owned()
                    } else {
                        format!("is {home_state}")
                    };
                    report(
                        line,
                        Entity::Cpu(cpu.id),
                        Entity::Line(la),
                        format!(
                            "{} holds line {la} in {st}, but its home {home} {why}",
                            cpu.id
                        ),
                    );
                    continue;
                }
                let entry = hw.directory(home).and_then(|d| d.get(line));
                let consistent = entry.is_some_and(|e| match st {
                    LineState::Shared => e.sharers.contains(cpu.id),
                    LineState::Exclusive | LineState::Modified => {
                        e.owner == Some(cpu.id) && e.sharers.is_empty()
                    }
                    LineState::Owned => e.owner == Some(cpu.id),
                    LineState::Invalid => true,
                });
                if !consistent {
                    let recorded = entry.map_or("no record".to_owned(), |e| {
                        format!(
                            "owner {}, sharers [{}]",
                            e.owner.map_or("none".to_owned(), |o| o.to_string()),
                            mask_list(&e.sharers)
                        )
                    });
                    report(
                        line,
                        Entity::Cpu(cpu.id),
                        Entity::Line(la),
                        format!(
                            "{} holds line {la} in {st}, but the directory at {home} has {recorded}",
                            cpu.id
                        ),
                    );
                }
                if st == LineState::Exclusive && cache.line_data(slot) != mem_line(line) {
                    report(
                        line,
                        Entity::Cpu(cpu.id),
                        Entity::Line(la),
                        format!(
                            "{}'s exclusive clean copy of line {la} differs from memory",
                            cpu.id
                        ),
                    );
                }
            }
        }

        // Memory -> the golden shadow, a rotating sweep of written pages: a line no cache
        // holds must read in memory what was last written there.
        let store = hw.memory().store();
        let frames = store.frames();
        let lines_per_page = 1usize << (self.page_shift - shift);
        let zero_page = vec![0u64; wpl * lines_per_page];
        let (mut budget, mut visited) = (SWEEP_PAGES, 0);
        while budget > 0 && visited < frames {
            let pfn = self.sweep % frames;
            self.sweep = (pfn + 1) % frames;
            visited += 1;
            let (mem, gold) = (store.page(pfn), self.shadow.page(pfn));
            if mem.is_none() && gold.is_none() {
                continue;
            }
            budget -= 1;
            let mem = mem.unwrap_or(&zero_page);
            let gold = gold.unwrap_or(&zero_page);
            if mem == gold {
                continue;
            }
            for i in 0..lines_per_page {
                let words = i * wpl..(i + 1) * wpl;
                if mem[words.clone()] == gold[words.clone()] {
                    continue;
                }
                let line = ((pfn as u64) << (self.page_shift - shift)) + i as u64;
                let Some(home) = hw.address_map().home_of_line(line) else {
                    continue;
                };
                let online = hw.cell(home).is_some_and(|c| c.memory_online());
                let cached = hw.directory(home).is_some_and(|d| d.get(line).is_some());
                if !online || cached {
                    continue;
                }
                let w = words
                    .clone()
                    .find(|&w| mem[w] != gold[w])
                    .unwrap_or(words.start);
                let addr = PhysAddr::new(((pfn as u64) << self.page_shift) + 8 * w as u64);
                report(
                    line,
                    Entity::Cell(home),
                    Entity::Memory(addr),
                    format!(
                        "memory at {addr} holds {:#x} but the last value written there is {:#x}, and no cache holds the line",
                        mem[w], gold[w]
                    ),
                );
            }
        }

        let entries = hw.directory_entries();
        let bound = hw.cache_capacity_lines();
        if entries > bound {
            report(
                0,
                Entity::Machine,
                Entity::Machine,
                format!(
                    "directories track {entries} lines, more than the {bound} the caches can hold"
                ),
            );
        }

        found.sort_by(|a, b| (a.0, &a.1.message).cmp(&(b.0, &b.1.message)));
        let extra = found.len().saturating_sub(self.max_per_audit);
        for (_, v) in found.into_iter().take(self.max_per_audit) {
            out.push(v);
        }
        if extra > 0 {
            out.push(Self::violation(
                now,
                Entity::Machine,
                Entity::Machine,
                format!("audit found {extra} more inconsistencies than shown"),
            ));
        }
    }
}
