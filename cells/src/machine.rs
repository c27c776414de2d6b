//! The machine: cells, CPUs, caches, directories and memory, and every access path into them.
//!
//! All OS-visible hardware activity goes through a method of [`Machine`] that takes the current
//! simulated time and an [`HwObserver`]; the machine performs the operation atomically, then
//! reports what happened as [`HwEvent`]s. The machine never refuses an access because of the
//! *state* of the hardware (a halted issuer, a powered-off home): it does what real hardware
//! would do (nothing, or all-ones) and lets the checkers report it. It refuses only requests
//! that name hardware that cannot exist (an unknown CPU, an unaligned or unbacked address) or
//! state transitions the hardware cannot make.

use serde::Serialize;
use sim_core::{
    CellId, CpuId, Delivery, DmaError, DmaPort, Entity, InterruptPort, LsapicId, MsgTag, PhysAddr,
    SimDuration, SimTime,
};
use thiserror::Error;

use crate::cache::{Cache, LineState};
use crate::cell::{Cell, CellError, CellEvent, CellState};
use crate::config::{ConfigError, Geometry, MachineConfig, MemoryMode, Protocol};
use crate::cpu::{Cpu, CpuError, CpuEvent, CpuState, Taken};
use crate::defect::{CacheDefect, Defects};
use crate::directory::{CpuMask, DirEntry, Directory};
use crate::event::{
    AccessKind, HwEvent, HwObserver, McaTarget, Outcome, Served, SnoopKind, UncachedSpace,
    WriteBackCause,
};
use crate::memory::Memory;
use crate::topology::{AddressMap, Latency};

pub use sim_core::abi::ALL_ONES;

/// Base of the processor interrupt block (writes there send IPIs).
pub const PIB_BASE: u64 = 0xFEE0_0000;

/// The vector firmware's boot rendezvous waits for (SAL_SET_VECTORS).
pub const WAKEUP_VECTOR: u8 = 0xF0;

/// Address in the processor interrupt block that sends an IPI to `dest`.
pub fn pib_address(dest: LsapicId) -> u64 {
    PIB_BASE | u64::from(dest.id) << 12 | u64::from(dest.eid) << 4
}

/// The result of a coherent access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Value read (or written, for a store).
    pub value: u64,
    /// Simulated time the access took.
    pub latency: SimDuration,
    /// Where the line came from.
    pub served: Served,
    /// Whether it took effect.
    pub outcome: Outcome,
}

impl Access {
    /// Whether it hit in the requester's cache.
    pub fn is_hit(&self) -> bool {
        self.served == Served::Hit
    }
}

/// A request naming hardware that cannot exist.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AccessError {
    /// No such CPU.
    #[error("{cpu} does not exist (the machine has {count} CPUs)")]
    NoSuchCpu {
        /// The id asked for.
        cpu: CpuId,
        /// How many CPUs exist.
        count: usize,
    },
    /// Word accesses must be 8-byte aligned.
    #[error("address {addr} is not 8-byte aligned")]
    Misaligned {
        /// The address.
        addr: PhysAddr,
    },
    /// No cell slot backs the address.
    #[error("address {addr} is beyond physical memory (which ends at {end})")]
    NoSuchMemory {
        /// The address.
        addr: PhysAddr,
        /// First address past the end of memory.
        end: PhysAddr,
    },
}

/// What a cache flush did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushReport {
    /// Lines dropped.
    pub lines: u32,
    /// Of which dirty, written back.
    pub dirty: u32,
    /// Time the flush took.
    pub latency: SimDuration,
}

/// Counters of everything the memory system did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MachineStats {
    /// Coherent loads issued.
    pub loads: u64,
    /// Coherent stores issued.
    pub stores: u64,
    /// Accesses served by the requester's own cache.
    pub hits: u64,
    /// Load misses.
    pub read_misses: u64,
    /// Store misses.
    pub write_misses: u64,
    /// Stores to lines held shared or owned (invalidating the others).
    pub upgrades: u64,
    /// Misses served by memory on the requester's cell.
    pub served_local_memory: u64,
    /// Misses served by memory on another cell.
    pub served_remote_memory: u64,
    /// Misses served by another CPU's cache.
    pub served_cache_to_cache: u64,
    /// Accesses that took no effect (issuer not running, home not powered).
    pub not_performed: u64,
    /// Dirty lines written back (evictions, flushes, MESI downgrades).
    pub writebacks: u64,
    /// Of which the data never reached memory (its home was not online, or a defect).
    pub writebacks_lost: u64,
    /// Clean lines dropped with a notice to the directory.
    pub clean_evictions: u64,
    /// Downgrade requests sent to owners.
    pub downgrades: u64,
    /// Fetch-invalidate requests sent to owners.
    pub fetch_invalidates: u64,
    /// Invalidations sent to sharers.
    pub invalidations: u64,
    /// Coherence requests that found their destination halted or absent.
    pub unanswered_snoops: u64,
    /// Coherence messages of every kind (requests, forwards, data, acks, write-backs).
    pub messages: u64,
    /// Of which crossed the crossbar between cells.
    pub remote_messages: u64,
    /// Reads bypassing the caches.
    pub uncached_reads: u64,
    /// Of which returned stale data (a cache held a newer dirty copy).
    pub uncached_stale_reads: u64,
    /// Writes bypassing the caches.
    pub uncached_writes: u64,
    /// Fetch requests sent to owners by DMA reads.
    pub dma_fetches: u64,
    /// Words read by DMA.
    pub dma_read_words: u64,
    /// Pages copied by [`Machine::copy_page`].
    pub copied_pages: u64,
    /// Words written by DMA.
    pub dma_written_words: u64,
    /// Interrupt messages delivered to running CPUs.
    pub interrupts_delivered: u64,
    /// Interrupt messages that found no running CPU.
    pub interrupts_lost: u64,
    /// Inter-processor interrupts sent.
    pub ipis: u64,
    /// Cache flushes.
    pub flushes: u64,
    /// Lines dropped by flushes.
    pub flushed_lines: u64,
    /// Poisoned data consumed.
    pub machine_checks: u64,
    /// Accesses to addresses that decode to no memory.
    pub unmapped: u64,
}

impl MachineStats {
    /// Coherent accesses issued.
    pub fn accesses(&self) -> u64 {
        self.loads + self.stores
    }
    /// Fraction of coherent accesses that hit.
    pub fn hit_rate(&self) -> f64 {
        if self.accesses() == 0 {
            0.0
        } else {
            self.hits as f64 / self.accesses() as f64
        }
    }
}

/// The whole hardware model of cells, CPUs, caches, directories and memory.
pub struct Machine {
    config: MachineConfig,
    geo: Geometry,
    map: AddressMap,
    lat: Latency,
    cells: Vec<Cell>,
    cpus: Vec<Cpu>,
    caches: Vec<Cache>,
    dirs: Vec<Directory>,
    mem: Memory,
    stats: MachineStats,
    defects: Defects,
    line_buf: Vec<u64>,
}

impl Machine {
    /// Builds the machine described by `config`. Cells listed as present are powered on and
    /// their CPUs wait, present-halted, for firmware to start them.
    pub fn new(config: &MachineConfig) -> Result<Machine, ConfigError> {
        let geo = config.validate()?;
        let cells = (0..geo.cells)
            .map(|c| Cell {
                id: CellId(c as u16),
                state: if geo.present[c] {
                    CellState::PoweredOn
                } else {
                    CellState::Absent
                },
                generation: 0,
                uncorrected_errors: 0,
                memory_enabled: true,
            })
            .collect();
        let cpus = (0..geo.cells)
            .flat_map(|c| {
                let per = geo.cpus_per_cell;
                let present = geo.present[c];
                (0..per).map(move |p| {
                    let mut cpu = Cpu::new(CellId(c as u16), p, per);
                    if present {
                        cpu.state = CpuState::PresentHalted;
                    }
                    cpu
                })
            })
            .collect();
        Ok(Machine {
            config: config.clone(),
            map: AddressMap::new(&geo),
            lat: Latency::new(geo.latency),
            cells,
            cpus,
            caches: (0..geo.cpus).map(|_| Cache::new(&geo)).collect(),
            dirs: (0..geo.cells).map(|_| Directory::default()).collect(),
            mem: Memory::new(geo.frames, geo.page_shift),
            stats: MachineStats::default(),
            defects: Defects::default(),
            line_buf: vec![0; geo.words_per_line],
            geo,
        })
    }

    // ----------------------------------------------------------------- inspection (read-only)

    /// The configuration the machine was built from.
    pub fn config(&self) -> &MachineConfig {
        &self.config
    }
    /// Derived geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }
    /// Address-to-home map.
    pub fn address_map(&self) -> &AddressMap {
        &self.map
    }
    /// Latency model.
    pub fn latency_model(&self) -> &Latency {
        &self.lat
    }
    /// Every CPU, by hardware id.
    pub fn cpus(&self) -> &[Cpu] {
        &self.cpus
    }
    /// One CPU.
    pub fn cpu(&self, id: CpuId) -> Option<&Cpu> {
        self.cpus.get(id.index())
    }
    /// The CPUs of a cell.
    pub fn cpus_of(&self, cell: CellId) -> impl Iterator<Item = &Cpu> {
        let per = self.geo.cpus_per_cell;
        let start = cell.index() * per;
        self.cpus.iter().skip(start).take(per)
    }
    /// Every cell slot.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }
    /// One cell slot.
    pub fn cell(&self, id: CellId) -> Option<&Cell> {
        self.cells.get(id.index())
    }
    /// A CPU's cache.
    pub fn cache(&self, cpu: CpuId) -> Option<&Cache> {
        self.caches.get(cpu.index())
    }
    /// A home cell's directory.
    pub fn directory(&self, cell: CellId) -> Option<&Directory> {
        self.dirs.get(cell.index())
    }
    /// Physical memory and its per-frame metadata.
    pub fn memory(&self) -> &Memory {
        &self.mem
    }
    /// Counters.
    pub fn stats(&self) -> &MachineStats {
        &self.stats
    }
    /// Defects switched on.
    pub fn defects(&self) -> Defects {
        self.defects
    }
    /// Home cell of an address.
    pub fn home_of(&self, addr: PhysAddr) -> Option<CellId> {
        self.map.home_of(addr)
    }
    /// The first byte of line number `line`.
    #[inline]
    pub fn line_addr(&self, line: u64) -> PhysAddr {
        PhysAddr::new(line << self.geo.line_shift)
    }
    /// Lines tracked by all directories together.
    pub fn directory_entries(&self) -> usize {
        self.dirs.iter().map(Directory::len).sum()
    }
    /// Total cache capacity in lines (the bound on directory entries).
    pub fn cache_capacity_lines(&self) -> usize {
        self.caches.iter().map(Cache::slots).sum()
    }

    /// The value a coherent read of `addr` would return now, without any side effect: the
    /// dirty copy of the owning cache if there is one, else memory (all-ones if unpowered).
    pub fn coherent_peek(&self, addr: PhysAddr) -> Result<u64, AccessError> {
        let (line, word, home) = self.decode(addr)?;
        if let Some(o) = self.dirs[home.index()].get(line).and_then(|e| e.owner) {
            if let Some((st, data)) = self.caches[o.index()].probe(line) {
                if st.is_dirty() {
                    return Ok(data[word]);
                }
            }
        }
        Ok(if self.cells[home.index()].memory_online() {
            self.mem.store().read(addr.raw())
        } else {
            ALL_ONES
        })
    }

    /// Switches on a cache-model defect (CHK-9).
    pub fn inject_defect(&mut self, d: CacheDefect) {
        self.defects.insert(d);
    }

    // ------------------------------------------------------------------------ helpers

    #[inline]
    fn cpu_index(&self, cpu: CpuId) -> Result<usize, AccessError> {
        if cpu.index() < self.cpus.len() {
            Ok(cpu.index())
        } else {
            Err(AccessError::NoSuchCpu {
                cpu,
                count: self.cpus.len(),
            })
        }
    }

    /// `(line number, word in line, home cell)` of a word address.
    #[inline]
    fn decode(&self, addr: PhysAddr) -> Result<(u64, usize, CellId), AccessError> {
        if !addr.is_aligned(8) {
            return Err(AccessError::Misaligned { addr });
        }
        let line = addr.raw() >> self.geo.line_shift;
        let home = self
            .map
            .home_of_line(line)
            .ok_or(AccessError::NoSuchMemory {
                addr,
                end: PhysAddr::new(self.map.total_bytes()),
            })?;
        let word = (addr.raw() >> 3) as usize & (self.geo.words_per_line - 1);
        Ok((line, word, home))
    }

    /// [`Machine::decode`] for an access by `agent`; an address that decodes to no memory is
    /// reported ([`HwEvent::Unmapped`]) before the error is returned.
    #[inline]
    fn decode_for<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        agent: Entity,
        addr: PhysAddr,
        write: bool,
        coherent: bool,
        obs: &mut O,
    ) -> Result<(u64, usize, CellId), AccessError> {
        let d = self.decode(addr);
        if let Err(AccessError::NoSuchMemory { .. }) = d {
            self.stats.unmapped += 1;
            obs.on_event(
                now,
                &HwEvent::Unmapped {
                    agent,
                    addr,
                    write,
                    coherent,
                },
                self,
            );
        }
        d
    }

    #[inline]
    fn pfn_of_line(&self, line: u64) -> usize {
        (line >> (self.geo.page_shift - self.geo.line_shift)) as usize
    }

    #[inline]
    fn msg(&mut self, from: CellId, to: CellId) {
        self.stats.messages += 1;
        if from != to {
            self.stats.remote_messages += 1;
        }
    }

    // -------------------------------------------------------------------- coherent path

    /// A coherent 64-bit load by `cpu`.
    #[inline]
    pub fn load<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        addr: PhysAddr,
        obs: &mut O,
    ) -> Result<Access, AccessError> {
        let ci = self.cpu_index(cpu)?;
        let (line, word, home) = self.decode_for(now, Entity::Cpu(cpu), addr, false, true, obs)?;
        let a = self.access(now, ci, line, word, home, None, obs);
        obs.on_event(
            now,
            &HwEvent::Access {
                kind: AccessKind::Load,
                cpu,
                addr,
                value: a.value,
                served: a.served,
                outcome: a.outcome,
                latency: a.latency,
            },
            self,
        );
        Ok(a)
    }

    /// A coherent 64-bit store by `cpu`.
    #[inline]
    pub fn store<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        addr: PhysAddr,
        value: u64,
        obs: &mut O,
    ) -> Result<Access, AccessError> {
        let ci = self.cpu_index(cpu)?;
        let (line, word, home) = self.decode_for(now, Entity::Cpu(cpu), addr, true, true, obs)?;
        let a = self.access(now, ci, line, word, home, Some(value), obs);
        obs.on_event(
            now,
            &HwEvent::Access {
                kind: AccessKind::Store,
                cpu,
                addr,
                value: a.value,
                served: a.served,
                outcome: a.outcome,
                latency: a.latency,
            },
            self,
        );
        Ok(a)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn access<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        ci: usize,
        line: u64,
        word: usize,
        home: CellId,
        store: Option<u64>,
        obs: &mut O,
    ) -> Access {
        if store.is_some() {
            self.stats.stores += 1;
        } else {
            self.stats.loads += 1;
        }
        if !self.cpus[ci].state.is_running() {
            self.stats.not_performed += 1;
            return Access {
                value: store.unwrap_or(ALL_ONES),
                latency: SimDuration::ZERO,
                served: Served::Nothing,
                outcome: Outcome::IssuerNotRunning,
            };
        }
        let powered = self.cells[home.index()].memory_online();
        let done = if powered {
            Outcome::Performed
        } else {
            Outcome::HomeNotPowered
        };
        let hit = SimDuration::from_nanos(self.lat.hit());
        if let Some(slot) = self.caches[ci].lookup(line) {
            let st = self.caches[ci].state(slot);
            match store {
                None => {
                    let c = &mut self.caches[ci];
                    c.touch(slot);
                    self.stats.hits += 1;
                    return Access {
                        value: c.word(slot, word),
                        latency: hit,
                        served: Served::Hit,
                        outcome: done,
                    };
                }
                Some(v) if st.is_writable() => {
                    let c = &mut self.caches[ci];
                    if st == LineState::Exclusive {
                        c.set_state(slot, LineState::Modified);
                    }
                    c.set_word(slot, word, v);
                    c.touch(slot);
                    self.stats.hits += 1;
                    return Access {
                        value: v,
                        latency: hit,
                        served: Served::Hit,
                        outcome: done,
                    };
                }
                Some(v) => {
                    if !powered {
                        self.stats.not_performed += 1;
                        return Access {
                            value: v,
                            latency: hit,
                            served: Served::Nothing,
                            outcome: Outcome::HomeNotPowered,
                        };
                    }
                    self.stats.upgrades += 1;
                    let lat = self.upgrade(now, ci, slot, line, home, obs);
                    let c = &mut self.caches[ci];
                    c.set_word(slot, word, v);
                    c.touch(slot);
                    return Access {
                        value: v,
                        latency: SimDuration::from_nanos(lat),
                        served: Served::Upgrade,
                        outcome: Outcome::Performed,
                    };
                }
            }
        }
        if !powered {
            self.stats.not_performed += 1;
            return Access {
                value: store.unwrap_or(ALL_ONES),
                latency: SimDuration::from_nanos(self.lat.from_memory(self.cpus[ci].cell, home)),
                served: Served::Nothing,
                outcome: Outcome::HomeNotPowered,
            };
        }
        if store.is_some() {
            self.stats.write_misses += 1;
        } else {
            self.stats.read_misses += 1;
        }
        let (slot, lat, served) = self.miss(now, ci, line, home, store.is_some(), obs);
        let c = &mut self.caches[ci];
        let value = match store {
            Some(v) => {
                c.set_word(slot, word, v);
                v
            }
            None => c.word(slot, word),
        };
        Access {
            value,
            latency: SimDuration::from_nanos(lat),
            served,
            outcome: Outcome::Performed,
        }
    }

    /// Sends a coherence request to `to`'s cache and reports it. Returns the slot and state of
    /// the line there if the CPU answered and holds it. A CPU that is not running does not
    /// answer; whatever copy a halted CPU held is lost.
    #[allow(clippy::too_many_arguments)]
    fn snoop<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        obs: &mut O,
        home: CellId,
        to: CpuId,
        line: u64,
        kind: SnoopKind,
        requester: Entity,
    ) -> Option<(usize, LineState)> {
        let ti = to.index();
        match kind {
            SnoopKind::Downgrade => self.stats.downgrades += 1,
            SnoopKind::FetchInvalidate => self.stats.fetch_invalidates += 1,
            SnoopKind::Invalidate => self.stats.invalidations += 1,
            SnoopKind::Fetch => self.stats.dma_fetches += 1,
        }
        self.msg(home, self.cpus[ti].cell);
        let answered = self.cpus[ti].state.is_running();
        let slot = self.caches[ti].lookup(line);
        if !answered {
            self.stats.unanswered_snoops += 1;
            if let Some(s) = slot {
                self.caches[ti].invalidate(s);
            }
        }
        obs.on_event(
            now,
            &HwEvent::Snoop {
                home,
                to,
                line: self.line_addr(line),
                kind,
                requester,
                answered,
            },
            self,
        );
        if answered {
            slot.map(|s| (s, self.caches[ti].state(s)))
        } else {
            None
        }
    }

    /// Invalidates every holder of the line recorded in `e` other than `me` (unless the
    /// `store_skips_invalidate` defect is on); returns the slowest acknowledgement latency.
    #[allow(clippy::too_many_arguments)]
    fn invalidate_others<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        obs: &mut O,
        home: CellId,
        line: u64,
        holders: CpuMask,
        me: CpuId,
    ) -> u64 {
        if self.defects.has(CacheDefect::StoreSkipsInvalidate) {
            return 0;
        }
        let req_cell = self.cpus[me.index()].cell;
        let mut slowest = 0;
        for s in holders.iter().filter(|&s| s != me) {
            let sc = self.cpus[s.index()].cell;
            if let Some((slot, _)) = self.snoop(
                now,
                obs,
                home,
                s,
                line,
                SnoopKind::Invalidate,
                Entity::Cpu(me),
            ) {
                self.caches[s.index()].invalidate(slot);
            }
            self.msg(sc, req_cell);
            slowest = slowest.max(self.lat.invalidation(req_cell, home, sc));
        }
        slowest
    }

    /// A store to a line held S or O: invalidate every other copy, become M.
    fn upgrade<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        ci: usize,
        slot: usize,
        line: u64,
        home: CellId,
        obs: &mut O,
    ) -> u64 {
        let me = CpuId(ci as u32);
        let req_cell = self.cpus[ci].cell;
        let h = home.index();
        self.msg(req_cell, home);
        let e = self.dirs[h].get(line).copied().unwrap_or_default();
        let mut holders = e.sharers;
        if let Some(o) = e.owner {
            holders.insert(o);
        }
        let slowest = self.invalidate_others(now, obs, home, line, holders, me);
        let new = self.dirs[h].put(
            line,
            DirEntry {
                owner: Some(me),
                sharers: CpuMask::EMPTY,
            },
        );
        if new {
            let pfn = self.pfn_of_line(line);
            self.mem.cached_inc(pfn);
        }
        self.msg(home, req_cell);
        self.caches[ci].set_state(slot, LineState::Modified);
        // Request to the home and grant back, or the slowest acknowledgement if later.
        let grant = self.lat.invalidation(req_cell, home, req_cell);
        self.lat.hit() + grant.max(slowest)
    }

    /// Makes room in `ci`'s cache for `line`, runs the home directory transaction, fills the
    /// line. Returns `(slot, latency ns, where the data came from)`.
    fn miss<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        ci: usize,
        line: u64,
        home: CellId,
        exclusive: bool,
        obs: &mut O,
    ) -> (usize, u64, Served) {
        let me = CpuId(ci as u32);
        let req_cell = self.cpus[ci].cell;
        let slot = self.caches[ci].victim(line);
        if self.caches[ci].state(slot).is_valid() {
            self.evict(now, ci, slot, WriteBackCause::Evict, obs);
        }
        let h = home.index();
        self.msg(req_cell, home);
        let mut buf = std::mem::take(&mut self.line_buf);
        let mut e = self.dirs[h].get(line).copied().unwrap_or_default();
        // The requester missed, so any record of it holding the line is stale.
        e.forget(me);
        let mut from_cache: Option<CpuId> = None;
        let mut slowest_inv = 0;
        let new_state;
        if exclusive {
            if let Some(o) = e.owner {
                if let Some((os, ost)) = self.snoop(
                    now,
                    obs,
                    home,
                    o,
                    line,
                    SnoopKind::FetchInvalidate,
                    Entity::Cpu(me),
                ) {
                    if ost.is_dirty() {
                        buf.copy_from_slice(self.caches[o.index()].line_data(os));
                        from_cache = Some(o);
                    }
                    self.caches[o.index()].invalidate(os);
                }
            }
            slowest_inv = self.invalidate_others(now, obs, home, line, e.sharers, me);
            e = DirEntry {
                owner: Some(me),
                sharers: CpuMask::EMPTY,
            };
            new_state = LineState::Modified;
        } else {
            let mut owner_kept = false;
            if let Some(o) = e.owner {
                if self.defects.has(CacheDefect::ReadSkipsOwner) {
                    // The defect: the owner is never asked; memory (maybe stale) answers.
                    owner_kept = true;
                } else if let Some((os, ost)) = self.snoop(
                    now,
                    obs,
                    home,
                    o,
                    line,
                    SnoopKind::Downgrade,
                    Entity::Cpu(me),
                ) {
                    let oi = o.index();
                    match ost {
                        LineState::Modified => {
                            buf.copy_from_slice(self.caches[oi].line_data(os));
                            from_cache = Some(o);
                            match self.geo.protocol {
                                Protocol::Moesi => {
                                    self.caches[oi].set_state(os, LineState::Owned);
                                    owner_kept = true;
                                }
                                Protocol::Mesi => {
                                    let oc = self.cpus[oi].cell;
                                    self.msg(oc, home);
                                    self.write_back(
                                        now,
                                        oi,
                                        os,
                                        home,
                                        WriteBackCause::Downgrade,
                                        true,
                                        obs,
                                    );
                                    self.caches[oi].set_state(os, LineState::Shared);
                                    e.sharers.insert(o);
                                }
                            }
                        }
                        LineState::Owned => {
                            buf.copy_from_slice(self.caches[oi].line_data(os));
                            from_cache = Some(o);
                            owner_kept = true;
                        }
                        LineState::Exclusive | LineState::Shared => {
                            // Clean: memory is current; the old owner keeps a shared copy.
                            self.caches[oi].set_state(os, LineState::Shared);
                            e.sharers.insert(o);
                        }
                        LineState::Invalid => {}
                    }
                }
            }
            if !owner_kept {
                e.owner = None;
            }
            if e.owner.is_none() && e.sharers.is_empty() {
                e.owner = Some(me);
                new_state = LineState::Exclusive;
            } else {
                e.sharers.insert(me);
                new_state = LineState::Shared;
            }
        }
        let lat = match from_cache {
            Some(o) => {
                let oc = self.cpus[o.index()].cell;
                self.msg(oc, req_cell);
                self.stats.served_cache_to_cache += 1;
                self.lat.from_cache(req_cell, home, oc)
            }
            None => {
                self.msg(home, req_cell);
                if home == req_cell {
                    self.stats.served_local_memory += 1;
                } else {
                    self.stats.served_remote_memory += 1;
                }
                let base = line << self.geo.line_shift;
                self.mem.store().read_words(base, &mut buf);
                self.lat.from_memory(req_cell, home)
            }
        };
        if self.dirs[h].put(line, e) {
            let pfn = self.pfn_of_line(line);
            self.mem.cached_inc(pfn);
        }
        self.caches[ci].fill(slot, line, new_state, &buf);
        self.line_buf = buf;
        if from_cache.is_none() && self.mem.is_poisoned(self.pfn_of_line(line)) {
            self.stats.machine_checks += 1;
            obs.on_event(
                now,
                &HwEvent::MachineCheck {
                    cpu: me,
                    addr: self.line_addr(line),
                },
                self,
            );
        }
        let served = match from_cache {
            Some(o) => Served::Cache(o),
            None => Served::Memory,
        };
        (slot, lat.max(self.lat.hit() + slowest_inv), served)
    }

    /// Drops the line in `slot` of `ci`'s cache: write back if dirty, tell the home directory,
    /// report the line ([`HwEvent::WriteBack`]: whether its data reached memory).
    fn evict<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        ci: usize,
        slot: usize,
        cause: WriteBackCause,
        obs: &mut O,
    ) {
        let me = CpuId(ci as u32);
        let line = self.caches[ci].tag(slot);
        let st = self.caches[ci].state(slot);
        let Some(home) = self.map.home_of_line(line) else {
            self.caches[ci].invalidate(slot);
            return;
        };
        let h = home.index();
        self.write_back(now, ci, slot, home, cause, st.is_dirty(), obs);
        self.msg(self.cpus[ci].cell, home);
        if let Some(e) = self.dirs[h].get_mut(line) {
            e.forget(me);
            if e.is_empty() {
                self.dirs[h].remove(line);
                let pfn = self.pfn_of_line(line);
                self.mem.cached_dec(pfn);
            }
        }
        self.caches[ci].invalidate(slot);
    }

    /// The one write-back path: the line in `slot` of `ci`'s cache (homed at `home`) gives
    /// up its data — if `dirty`, to memory, which takes it only when online (and, for an
    /// eviction or flush, unless the `eviction_drops_dirty` defect drops it). Counts it and
    /// reports it ([`HwEvent::WriteBack`]); the cache line itself is the caller's.
    #[allow(clippy::too_many_arguments)]
    fn write_back<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        ci: usize,
        slot: usize,
        home: CellId,
        cause: WriteBackCause,
        dirty: bool,
        obs: &mut O,
    ) {
        let line = self.caches[ci].tag(slot);
        let drops = matches!(cause, WriteBackCause::Evict | WriteBackCause::Flush)
            && self.defects.has(CacheDefect::EvictionDropsDirty);
        let written = dirty && self.cells[home.index()].memory_online() && !drops;
        if !dirty {
            self.stats.clean_evictions += 1;
        } else {
            self.stats.writebacks += 1;
            if written {
                self.mem
                    .store_mut()
                    .write_words(line << self.geo.line_shift, self.caches[ci].line_data(slot));
            } else {
                self.stats.writebacks_lost += 1;
            }
        }
        obs.on_event(
            now,
            &HwEvent::WriteBack {
                cpu: CpuId(ci as u32),
                line: self.line_addr(line),
                home,
                cause,
                dirty,
                written,
            },
            self,
        );
    }

    // ------------------------------------------------------------------ non-coherent path

    /// A read that bypasses every cache (an uncached access, or a copy engine without
    /// coherence). May return stale data; the event says so.
    pub fn read_uncached<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        agent: Entity,
        addr: PhysAddr,
        obs: &mut O,
    ) -> Result<u64, AccessError> {
        let (line, word, home) = self.decode_for(now, agent, addr, false, false, obs)?;
        let value = if self.cells[home.index()].memory_online() {
            self.mem.store().read(addr.raw())
        } else {
            ALL_ONES
        };
        let stale = self.dirs[home.index()]
            .get(line)
            .and_then(|e| e.owner)
            .and_then(|o| self.caches[o.index()].probe(line))
            .is_some_and(|(st, data)| st.is_dirty() && data[word] != value);
        self.stats.uncached_reads += 1;
        if stale {
            self.stats.uncached_stale_reads += 1;
        }
        obs.on_event(
            now,
            &HwEvent::NcRead {
                agent,
                addr,
                value,
                stale,
            },
            self,
        );
        Ok(value)
    }

    /// A write that bypasses every cache and does not invalidate cached copies.
    pub fn write_uncached<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        agent: Entity,
        addr: PhysAddr,
        value: u64,
        obs: &mut O,
    ) -> Result<(), AccessError> {
        let (_, _, home) = self.decode_for(now, agent, addr, true, false, obs)?;
        if self.cells[home.index()].memory_online() {
            self.mem.store_mut().write(addr.raw(), value);
        }
        self.stats.uncached_writes += 1;
        obs.on_event(now, &HwEvent::NcWrite { agent, addr, value }, self);
        Ok(())
    }

    // ------------------------------------------------------------------------- CPUs

    fn cpu_checked(&self, cpu: CpuId) -> Result<usize, CpuError> {
        if cpu.index() < self.cpus.len() {
            Ok(cpu.index())
        } else {
            Err(CpuError::NoSuchCpu {
                cpu,
                count: self.cpus.len(),
            })
        }
    }

    /// PAL_CACHE_FLUSH on `cpu`: write back every dirty line and invalidate everything. The CPU
    /// must be running (the flush executes on it).
    pub fn flush_cache<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        obs: &mut O,
    ) -> Result<FlushReport, CpuError> {
        let ci = self.cpu_checked(cpu)?;
        if !self.cpus[ci].state.is_running() {
            return Err(CpuError::NotRunning {
                cpu,
                state: self.cpus[ci].state,
                operation: "flush the cache of",
            });
        }
        let mut lines = 0u32;
        let mut dirty = 0u32;
        for slot in 0..self.caches[ci].slots() {
            let st = self.caches[ci].state(slot);
            if st.is_valid() {
                lines += 1;
                if st.is_dirty() {
                    dirty += 1;
                }
                self.evict(now, ci, slot, WriteBackCause::Flush, obs);
            }
        }
        self.stats.flushes += 1;
        self.stats.flushed_lines += u64::from(lines);
        let latency = SimDuration::from_nanos(self.lat.hit() * u64::from(lines + dirty));
        obs.on_event(
            now,
            &HwEvent::Flush {
                cpu,
                lines,
                dirty,
                latency,
            },
            self,
        );
        Ok(FlushReport {
            lines,
            dirty,
            latency,
        })
    }

    /// Applies a CPU event: `PowerOn` (absent → present-halted; its cell must be powered),
    /// `Start` (firmware wakes a present-halted or halted CPU; a halted CPU's cache is
    /// re-initialised), `Halt` (PAL_HALT: the cache keeps its lines but answers no request),
    /// `PowerOff` (the cache's contents are lost). Disallowed pairs are refused with the state.
    pub fn cpu_event<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        event: CpuEvent,
        obs: &mut O,
    ) -> Result<(), CpuError> {
        let ci = self.cpu_checked(cpu)?;
        let from = self.cpus[ci].state;
        let cell = self.cpus[ci].cell;
        if event == CpuEvent::PowerOn && !self.cells[cell.index()].state.is_powered() {
            return Err(CpuError::CellNotPowered { cpu, cell, event });
        }
        let to = from.on(event).ok_or(CpuError::Transition {
            cpu,
            state: from,
            event,
        })?;
        // Caches lose their contents on power-off and are re-initialised when a halted CPU is
        // restarted; neither tells the directories (real hardware cannot).
        let loses_cache = match event {
            CpuEvent::PowerOff => true,
            CpuEvent::Start => from == CpuState::Halted,
            CpuEvent::Halt | CpuEvent::PowerOn => false,
        };
        let (lines, dirty, first) = if loses_cache {
            self.caches[ci].clear()
        } else {
            self.caches[ci].census()
        };
        let pending_interrupts = self.cpus[ci].pending_interrupts();
        if loses_cache {
            // Power-off and INIT also clear the local SAPIC.
            self.cpus[ci].clear_irr();
        }
        self.cpus[ci].state = to;
        obs.on_event(
            now,
            &HwEvent::CpuTransition {
                cpu,
                event,
                from,
                to,
                cache_lines: lines,
                dirty_lines: dirty,
                first_dirty: first.map(|l| self.line_addr(l)),
                pending_interrupts,
            },
            self,
        );
        Ok(())
    }

    // ------------------------------------------------------------------------ cells

    fn cell_checked(&self, cell: CellId) -> Result<usize, CellError> {
        if cell.index() < self.cells.len() {
            Ok(cell.index())
        } else {
            Err(CellError::NoSuchCell {
                cell,
                count: self.cells.len(),
            })
        }
    }

    /// Loses everything a cell's power kept: its CPUs' caches, its directory, its memory.
    fn cell_power_loss<O: HwObserver + ?Sized>(&mut self, now: SimTime, cell: CellId, obs: &mut O) {
        let per = self.geo.cpus_per_cell;
        for ci in cell.index() * per..(cell.index() + 1) * per {
            if self.cpus[ci].state != CpuState::Absent {
                // Cannot fail: every non-absent state accepts PowerOff.
                let _ = self.cpu_event(now, CpuId(ci as u32), CpuEvent::PowerOff, obs);
            }
        }
        let h = cell.index();
        let entries: Vec<u64> = self.dirs[h]
            .sorted_entries()
            .iter()
            .map(|&(l, _)| l)
            .collect();
        for l in entries {
            let pfn = self.pfn_of_line(l);
            self.mem.cached_dec(pfn);
        }
        self.dirs[h].clear();
        self.forget_cell_memory(cell);
    }

    fn forget_cell_memory(&mut self, cell: CellId) {
        match self.map.mode() {
            MemoryMode::PerCell => {
                let frames = (self.geo.cell_bytes >> self.geo.page_shift) as usize;
                self.mem.reset_frames(cell.index() * frames, frames);
            }
            MemoryMode::Interleaved => {
                let shift = self.geo.line_shift;
                let wpl = self.geo.words_per_line;
                let store = self.mem.store_mut();
                self.map.for_each_line_run(cell, |first, n| {
                    for l in first..first + n {
                        store.zero_words(l << shift, wpl);
                    }
                });
            }
        }
    }

    /// Applies a cell event: `Insert` (a board into an empty slot, powered off), `PowerOn`
    /// (memory reads zero, CPUs become present-halted), `PowerOff` (memory, directory and CPU
    /// caches are lost), `Remove` (the board is pulled out; a surprise removal if powered).
    pub fn cell_event<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cell: CellId,
        event: CellEvent,
        obs: &mut O,
    ) -> Result<(), CellError> {
        let i = self.cell_checked(cell)?;
        let from = self.cells[i].state;
        let to = from.on(event).ok_or(CellError::Transition {
            cell,
            state: from,
            event,
        })?;
        match event {
            CellEvent::Insert => self.cells[i].generation += 1,
            CellEvent::PowerOn => {}
            CellEvent::PowerOff => self.cell_power_loss(now, cell, obs),
            CellEvent::Remove => {
                if from == CellState::PoweredOn {
                    self.cell_power_loss(now, cell, obs);
                }
            }
        }
        self.cells[i].state = to;
        obs.on_event(
            now,
            &HwEvent::CellTransition {
                cell,
                event,
                from,
                to,
            },
            self,
        );
        if event == CellEvent::PowerOn {
            self.cells[i].memory_enabled = true;
            self.forget_cell_memory(cell);
            let per = self.geo.cpus_per_cell;
            for ci in i * per..(i + 1) * per {
                // Cannot fail: the cell is powered and its CPUs are absent.
                let _ = self.cpu_event(now, CpuId(ci as u32), CpuEvent::PowerOn, obs);
            }
        }
        Ok(())
    }

    /// Firmware enables or disables the memory controller of a powered cell. While disabled,
    /// the cell's range behaves like unpowered memory (reads all-ones, writes dropped, every
    /// access reported); contents are kept.
    pub fn set_memory_enabled<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cell: CellId,
        enabled: bool,
        obs: &mut O,
    ) -> Result<(), CellError> {
        let i = self.cell_checked(cell)?;
        let state = self.cells[i].state;
        if !state.is_powered() {
            return Err(CellError::NotPowered {
                cell,
                state,
                operation: if enabled {
                    "enable the memory of"
                } else {
                    "disable the memory of"
                },
            });
        }
        self.cells[i].memory_enabled = enabled;
        obs.on_event(now, &HwEvent::MemoryEnable { cell, enabled }, self);
        Ok(())
    }

    // ------------------------------------------------------------------------- DMA

    /// Checks a DMA range: aligned, inside memory.
    fn dma_range(&self, addr: PhysAddr, words: usize) -> Result<(), AccessError> {
        if !addr.is_aligned(8) {
            return Err(AccessError::Misaligned { addr });
        }
        let end = PhysAddr::new(self.map.total_bytes());
        match addr.checked_add(8 * words as u64) {
            Some(e) if e <= end => Ok(()),
            Some(_) | None => Err(AccessError::NoSuchMemory { addr, end }),
        }
    }

    /// Words from `addr` that stay with one home cell and within one line run, at most `max`.
    fn dma_segment(&self, addr: u64, max: usize) -> usize {
        let run_end = match self.map.mode() {
            MemoryMode::PerCell => (addr / self.geo.cell_bytes + 1) * self.geo.cell_bytes,
            MemoryMode::Interleaved => {
                let line = 1u64 << self.geo.line_shift;
                (addr / line + 1) * line
            }
        };
        (((run_end - addr) / 8) as usize).min(max)
    }

    /// DMA latency: a remote memory access for the first line, then one line per hit time
    /// (transfers are pipelined).
    fn dma_latency(&self, words: usize) -> SimDuration {
        let lines = words.div_ceil(self.geo.words_per_line) as u64;
        SimDuration::from_nanos(
            self.geo.latency.remote_memory_ns + lines.saturating_sub(1) * self.lat.hit(),
        )
    }

    /// A coherent DMA read by a device: each line comes from the cache that holds it dirty,
    /// else from memory. Memory that is not online reads as all-ones (and is reported).
    pub fn dma_read<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        agent: &Entity,
        addr: PhysAddr,
        buf: &mut [u64],
        obs: &mut O,
    ) -> Result<SimDuration, AccessError> {
        self.dma_range(addr, buf.len())?;
        let wpl = self.geo.words_per_line;
        let shift = self.geo.line_shift;
        let mut done = 0;
        while done < buf.len() {
            let a = addr.raw() + 8 * done as u64;
            let n = self.dma_segment(a, buf.len() - done);
            let seg = done..done + n;
            let home = self.map.home_of(PhysAddr::new(a)).unwrap_or(CellId(0));
            let online = self.cells[home.index()].memory_online();
            if online {
                let mut k = 0;
                while k < n {
                    let wa = a + 8 * k as u64;
                    let line = wa >> shift;
                    let in_line = ((wa >> 3) as usize) & (wpl - 1);
                    let take = (wpl - in_line).min(n - k);
                    let out = &mut buf[done + k..done + k + take];
                    let pfn = self.pfn_of_line(line);
                    let owner = if self.mem.cached_lines(pfn) == 0 {
                        None
                    } else {
                        self.dirs[home.index()].get(line).and_then(|e| e.owner)
                    };
                    let mut from_cache = false;
                    if let Some(o) = owner {
                        if let Some((slot, st)) =
                            self.snoop(now, obs, home, o, line, SnoopKind::Fetch, *agent)
                        {
                            if st.is_dirty() {
                                out.copy_from_slice(
                                    &self.caches[o.index()].line_data(slot)
                                        [in_line..in_line + take],
                                );
                                from_cache = true;
                            }
                        }
                    }
                    if !from_cache {
                        self.mem.store().read_words(wa, out);
                    }
                    k += take;
                }
            } else {
                buf[seg.clone()].fill(ALL_ONES);
            }
            self.stats.dma_read_words += n as u64;
            obs.on_event(
                now,
                &HwEvent::Dma {
                    agent: *agent,
                    addr: PhysAddr::new(a),
                    write: false,
                    outcome: if online {
                        Outcome::Performed
                    } else {
                        Outcome::HomeNotPowered
                    },
                    data: buf[seg].into(),
                },
                self,
            );
            done += n;
        }
        Ok(self.dma_latency(buf.len()))
    }

    /// A coherent DMA write by a device: every cached copy of the lines written is invalidated
    /// (a dirty copy of a partly written line is merged first), then memory is written. Memory
    /// that is not online drops the write (and is reported).
    pub fn dma_write<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        agent: &Entity,
        addr: PhysAddr,
        data: &[u64],
        obs: &mut O,
    ) -> Result<SimDuration, AccessError> {
        self.dma_range(addr, data.len())?;
        let wpl = self.geo.words_per_line;
        let shift = self.geo.line_shift;
        let mut done = 0;
        while done < data.len() {
            let a = addr.raw() + 8 * done as u64;
            let n = self.dma_segment(a, data.len() - done);
            let home = self.map.home_of(PhysAddr::new(a)).unwrap_or(CellId(0));
            let h = home.index();
            let online = self.cells[h].memory_online();
            if online {
                let mut k = 0;
                while k < n {
                    let wa = a + 8 * k as u64;
                    let line = wa >> shift;
                    let in_line = ((wa >> 3) as usize) & (wpl - 1);
                    let take = (wpl - in_line).min(n - k);
                    let pfn = self.pfn_of_line(line);
                    let entry = if self.mem.cached_lines(pfn) == 0 {
                        None
                    } else {
                        self.dirs[h].get(line).copied()
                    };
                    if let Some(e) = entry {
                        let partial = take < wpl;
                        if let Some(o) = e.owner {
                            let kind = if partial {
                                SnoopKind::FetchInvalidate
                            } else {
                                SnoopKind::Invalidate
                            };
                            if let Some((slot, st)) =
                                self.snoop(now, obs, home, o, line, kind, *agent)
                            {
                                if partial && st.is_dirty() {
                                    // Merge: the rest of the line is the owner's newer data.
                                    self.write_back(
                                        now,
                                        o.index(),
                                        slot,
                                        home,
                                        WriteBackCause::DmaMerge,
                                        true,
                                        obs,
                                    );
                                }
                                self.caches[o.index()].invalidate(slot);
                            }
                        }
                        for s in e.sharers.iter() {
                            if let Some((slot, _)) =
                                self.snoop(now, obs, home, s, line, SnoopKind::Invalidate, *agent)
                            {
                                self.caches[s.index()].invalidate(slot);
                            }
                        }
                        self.dirs[h].remove(line);
                        self.mem.cached_dec(pfn);
                    }
                    self.mem
                        .store_mut()
                        .write_words(wa, &data[done + k..done + k + take]);
                    k += take;
                }
            }
            self.stats.dma_written_words += n as u64;
            obs.on_event(
                now,
                &HwEvent::Dma {
                    agent: *agent,
                    addr: PhysAddr::new(a),
                    write: true,
                    outcome: if online {
                        Outcome::Performed
                    } else {
                        Outcome::HomeNotPowered
                    },
                    data: data[done..done + n].into(),
                },
                self,
            );
            done += n;
        }
        Ok(self.dma_latency(data.len()))
    }

    // ------------------------------------------------------------------ page copy

    /// Whether the memory of every line of the page at `page` is online: its cell's, or,
    /// interleaved, that of every cell holding one of its lines.
    fn page_memory_online(&self, page: PhysAddr) -> bool {
        match self.map.mode() {
            MemoryMode::PerCell => self
                .map
                .home_of(page)
                .is_some_and(|h| self.cells[h.index()].memory_online()),
            MemoryMode::Interleaved => {
                let first = page.raw() >> self.geo.line_shift;
                let lines = (self.geo.lines_per_page as u64).min(self.cells.len() as u64);
                (first..first + lines).all(|l| {
                    self.map
                        .home_of_line(l)
                        .is_some_and(|h| self.cells[h.index()].memory_online())
                })
            }
        }
    }

    /// `cpu` copies the whole page at `src` over the page at `dst` (both page-aligned) with
    /// non-temporal loads and stores, as the kernel's `copy_page` for page migration does.
    ///
    /// A *coherent* copy reads each source line from the cache holding it dirty (memory
    /// otherwise) and invalidates every cached copy of the destination first. A copy that is
    /// not coherent reads memory only: a dirty line still in some cache is lost (the defect
    /// `copy_noncoherent` of the OS model). A CPU that is not running copies nothing; source
    /// memory that is not online reads as all-ones; destination memory that is not online
    /// drops the writes. One [`HwEvent::Copy`] reports what happened. Returns the latency (a
    /// pipelined read stream, then a write stream).
    #[allow(clippy::too_many_arguments)]
    pub fn copy_page<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        src: PhysAddr,
        dst: PhysAddr,
        coherent: bool,
        obs: &mut O,
    ) -> Result<SimDuration, AccessError> {
        self.copy_pages(now, cpu, &[(src, dst)], coherent, false, obs)
    }

    /// `cpu` copies a batch of whole pages (`(src, dst)` pairs, page-aligned; destinations
    /// distinct and never a source), as [`Machine::copy_page`] does one by one: coherence
    /// work (snooping the sources' dirty lines, invalidating the destinations' cached copies)
    /// first, in order, then the bulk of the data — in parallel when `parallel` — then one
    /// [`HwEvent::Copy`] per page, in order. Contents, statistics and events do not depend on
    /// the number of threads. Returns the latency of the whole batch (one CPU streaming it).
    #[allow(clippy::too_many_arguments)]
    pub fn copy_pages<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        pairs: &[(PhysAddr, PhysAddr)],
        coherent: bool,
        parallel: bool,
        obs: &mut O,
    ) -> Result<SimDuration, AccessError> {
        let ci = self.cpu_index(cpu)?;
        let page = 1u64 << self.geo.page_shift;
        for &(src, dst) in pairs {
            for a in [src, dst] {
                if !a.is_aligned(page) {
                    return Err(AccessError::Misaligned { addr: a });
                }
                self.dma_range(a, self.geo.words_per_page)?;
            }
        }
        let report = |m: &Machine, obs: &mut O, src, dst, read: Outcome, write: Outcome| {
            obs.on_event(
                now,
                &HwEvent::Copy {
                    cpu,
                    src,
                    dst,
                    bytes: page,
                    coherent,
                    read,
                    write,
                },
                m,
            );
        };
        if !self.cpus[ci].state.is_running() {
            for &(src, dst) in pairs {
                let o = Outcome::IssuerNotRunning;
                report(self, obs, src, dst, o, o);
            }
            return Ok(SimDuration::ZERO);
        }
        let agent = Entity::Cpu(cpu);
        let shift = self.geo.line_shift;
        let lpp = self.geo.lines_per_page as u64;
        let pshift = self.geo.page_shift;
        let mut bulk: Vec<(usize, usize)> = Vec::with_capacity(pairs.len());
        let mut overlays: Vec<(u64, Vec<u64>)> = Vec::new();
        let mut ones: Vec<u64> = Vec::new();
        let mut outcomes = Vec::with_capacity(pairs.len());
        for &(src, dst) in pairs {
            let (sp, dp) = (
                (src.raw() >> pshift) as usize,
                (dst.raw() >> pshift) as usize,
            );
            let src_ok = self.page_memory_online(src);
            let dst_ok = self.page_memory_online(dst);
            outcomes.push((
                if src_ok {
                    Outcome::Performed
                } else {
                    Outcome::HomeNotPowered
                },
                if dst_ok {
                    Outcome::Performed
                } else {
                    Outcome::HomeNotPowered
                },
            ));
            if !dst_ok {
                continue;
            }
            if self.mem.cached_lines(dp) > 0 {
                let first = dst.raw() >> shift;
                for line in first..first + lpp {
                    // Each line's own home: interleaved, a page's lines live on every cell.
                    let dst_home = self.map.home_of_line(line).unwrap_or(CellId(0));
                    let Some(e) = self.dirs[dst_home.index()].get(line).copied() else {
                        continue;
                    };
                    for c in e.owner.into_iter().chain(e.sharers.iter()) {
                        if let Some((slot, _)) =
                            self.snoop(now, obs, dst_home, c, line, SnoopKind::Invalidate, agent)
                        {
                            self.caches[c.index()].invalidate(slot);
                        }
                    }
                    self.dirs[dst_home.index()].remove(line);
                    self.mem.cached_dec(dp);
                }
            }
            if !src_ok {
                if ones.is_empty() {
                    ones = vec![ALL_ONES; self.geo.words_per_page];
                }
                self.mem.store_mut().write_words(dst.raw(), &ones);
                continue;
            }
            bulk.push((sp, dp));
            if coherent && self.mem.cached_lines(sp) > 0 {
                let first = src.raw() >> shift;
                for line in first..first + lpp {
                    let src_home = self.map.home_of_line(line).unwrap_or(CellId(0));
                    let owner = self.dirs[src_home.index()].get(line).and_then(|e| e.owner);
                    let Some(o) = owner else { continue };
                    if let Some((slot, st)) =
                        self.snoop(now, obs, src_home, o, line, SnoopKind::Fetch, agent)
                    {
                        if st.is_dirty() {
                            let off = (line - first) << shift;
                            overlays.push((
                                dst.raw() + off,
                                self.caches[o.index()].line_data(slot).to_vec(),
                            ));
                        }
                    }
                }
            }
        }
        self.mem.store_mut().copy_pages(&bulk, parallel);
        for (addr, data) in overlays {
            self.mem.store_mut().write_words(addr, &data);
        }
        self.stats.copied_pages += pairs.len() as u64;
        for (&(src, dst), (r, w)) in pairs.iter().zip(outcomes) {
            report(self, obs, src, dst, r, w);
        }
        let stream = self.dma_latency(self.geo.words_per_page * pairs.len());
        Ok(stream + stream)
    }

    // ------------------------------------------------------------------ interrupts

    /// The CPU whose local SAPIC has physical id `lsapic`, if any.
    pub fn cpu_by_lsapic(&self, lsapic: LsapicId) -> Option<CpuId> {
        let per = self.geo.cpus_per_cell;
        let (cell, pos) = (usize::from(lsapic.id), usize::from(lsapic.eid));
        (cell < self.geo.cells && pos < per).then(|| CpuId((cell * per + pos) as u32))
    }

    /// An interrupt message for the local SAPIC `dest`. A running CPU latches the vector in
    /// its IRR; a halted or absent one loses it. Either way the message is reported.
    pub fn deliver_interrupt<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        source: &Entity,
        dest: LsapicId,
        vector: u8,
        tag: MsgTag,
        obs: &mut O,
    ) -> Delivery {
        let delivery = match self.cpu_by_lsapic(dest) {
            None => Delivery::NoSuchCpu,
            Some(c) if self.cpus[c.index()].state.is_running() => {
                self.cpus[c.index()].latch(vector, tag);
                Delivery::Accepted(c)
            }
            Some(c) => Delivery::NotRunning(c),
        };
        match delivery {
            Delivery::Accepted(_) => self.stats.interrupts_delivered += 1,
            Delivery::NotRunning(_) | Delivery::NoSuchCpu => self.stats.interrupts_lost += 1,
        }
        obs.on_event(
            now,
            &HwEvent::Interrupt {
                source: *source,
                dest,
                vector,
                tag,
                delivery,
            },
            self,
        );
        delivery
    }

    /// `from` sends an inter-processor interrupt with `vector` to the local SAPIC `dest`: a
    /// write to the processor interrupt block (which a CPU that is not running cannot issue;
    /// that is reported), then an interrupt message like any other.
    pub fn send_ipi<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        from: CpuId,
        dest: LsapicId,
        vector: u8,
        obs: &mut O,
    ) -> Result<Option<Delivery>, AccessError> {
        if !self.issue_uncached(now, from, UncachedSpace::Pib, pib_address(dest), true, obs)? {
            return Ok(None);
        }
        self.stats.ipis += 1;
        Ok(Some(self.deliver_interrupt(
            now,
            &Entity::Cpu(from),
            dest,
            vector,
            MsgTag::Ipi,
            obs,
        )))
    }

    /// `from` wakes the CPU at local SAPIC `dest`, which waits in the firmware's boot
    /// rendezvous (present-halted, or halted after the OS took it offline): the wakeup IPI
    /// starts it. A wakeup for a CPU that is not waiting there is an ordinary interrupt
    /// message (lost if the CPU is not running, and reported) and fails.
    pub fn wake_cpu<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        from: CpuId,
        dest: LsapicId,
        obs: &mut O,
    ) -> Result<CpuId, CpuError> {
        let target = self.cpu_by_lsapic(dest);
        let performed = self
            .issue_uncached(now, from, UncachedSpace::Pib, pib_address(dest), true, obs)
            .map_err(|_| CpuError::NoSuchCpu {
                cpu: from,
                count: self.cpus.len(),
            })?;
        let Some(cpu) = target else {
            return Err(CpuError::NoSuchCpu {
                cpu: CpuId(u32::from(dest.physical())),
                count: self.cpus.len(),
            });
        };
        if !performed {
            return Err(CpuError::NotRunning {
                cpu: from,
                state: self.cpus[from.index()].state,
                operation: "send a wakeup from",
            });
        }
        let state = self.cpus[cpu.index()].state;
        match state {
            CpuState::PresentHalted | CpuState::Halted => {
                self.cpu_event(now, cpu, CpuEvent::Start, obs)?;
                Ok(cpu)
            }
            CpuState::Absent | CpuState::Running => {
                self.deliver_interrupt(
                    now,
                    &Entity::Cpu(from),
                    dest,
                    WAKEUP_VECTOR,
                    MsgTag::Ipi,
                    obs,
                );
                Err(CpuError::Transition {
                    cpu,
                    state,
                    event: CpuEvent::Start,
                })
            }
        }
    }

    /// The running CPU `cpu` takes its highest pending interrupt, if any.
    pub fn take_interrupt<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        obs: &mut O,
    ) -> Result<Option<Taken>, CpuError> {
        let ci = self.cpu_checked(cpu)?;
        let state = self.cpus[ci].state;
        if !state.is_running() {
            return Err(CpuError::NotRunning {
                cpu,
                state,
                operation: "take an interrupt on",
            });
        }
        let taken = self.cpus[ci].take_highest();
        if let Some(t) = &taken {
            obs.on_event(
                now,
                &HwEvent::InterruptTaken {
                    cpu,
                    vector: t.vector,
                },
                self,
            );
        }
        Ok(taken)
    }

    /// A CPU issues an uncached access outside memory. Returns whether it goes out: a CPU that
    /// is not running issues nothing (and that is reported).
    pub fn issue_uncached<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        cpu: CpuId,
        space: UncachedSpace,
        target: u64,
        write: bool,
        obs: &mut O,
    ) -> Result<bool, AccessError> {
        let ci = self.cpu_index(cpu)?;
        let performed = self.cpus[ci].state.is_running();
        if !performed {
            self.stats.not_performed += 1;
        }
        obs.on_event(
            now,
            &HwEvent::Uncached {
                cpu,
                space,
                target,
                write,
                performed,
            },
            self,
        );
        Ok(performed)
    }

    // ------------------------------------------------------------------------- MCA

    /// Reports `count` corrected errors against a CPU or a memory word; returns the new total
    /// for the target (the CPU, or the word's frame).
    pub fn inject_corrected_error<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        target: McaTarget,
        count: u32,
        obs: &mut O,
    ) -> Result<u64, AccessError> {
        let total = match target {
            McaTarget::Cpu(cpu) => {
                let ci = self.cpu_index(cpu)?;
                let c = &mut self.cpus[ci].corrected_errors;
                *c = c.saturating_add(u64::from(count));
                *c
            }
            McaTarget::Memory(addr) => {
                self.decode(addr)?;
                let pfn = addr.pfn(self.geo.page_shift).index();
                u64::from(self.mem.add_corrected(pfn, count))
            }
        };
        obs.on_event(now, &HwEvent::CorrectedError { target, total }, self);
        Ok(total)
    }

    /// Poisons the frame holding `addr`: a CPU that later reads it from memory takes a
    /// machine check.
    pub fn inject_uncorrected_error<O: HwObserver + ?Sized>(
        &mut self,
        now: SimTime,
        addr: PhysAddr,
        obs: &mut O,
    ) -> Result<(), AccessError> {
        let (_, _, home) = self.decode(addr)?;
        self.mem
            .set_poison(addr.pfn(self.geo.page_shift).index(), true);
        self.cells[home.index()].uncorrected_errors += 1;
        obs.on_event(now, &HwEvent::UncorrectedError { addr }, self);
        Ok(())
    }

    /// Corrected errors counted on the frames of a cell's memory (per-cell mode), or on the
    /// frames of `[addr, addr + len)`.
    pub fn corrected_errors_in(&self, addr: PhysAddr, len: u64) -> u64 {
        let shift = self.geo.page_shift;
        let first = addr.pfn(shift).index();
        let count = len.div_ceil(1 << shift) as usize;
        self.mem.corrected_errors_in(first, count)
    }
}

/// The machine seen as the memory and interrupt side of the platform: DMA and interrupt
/// delivery for devices, each reported to `obs`.
pub struct Port<'a, O: HwObserver + ?Sized> {
    /// The machine.
    pub machine: &'a mut Machine,
    /// Who hears about it.
    pub obs: &'a mut O,
}

fn dma_error(e: AccessError, words: usize) -> DmaError {
    match e {
        AccessError::Misaligned { addr } => DmaError::Misaligned { addr },
        AccessError::NoSuchMemory { addr, end } => DmaError::OutOfRange { addr, words, end },
        AccessError::NoSuchCpu { .. } => DmaError::OutOfRange {
            addr: PhysAddr::new(0),
            words,
            end: PhysAddr::new(0),
        },
    }
}

impl<O: HwObserver + ?Sized> DmaPort for Port<'_, O> {
    fn dma_read(
        &mut self,
        now: SimTime,
        agent: &Entity,
        addr: PhysAddr,
        buf: &mut [u64],
    ) -> Result<SimDuration, DmaError> {
        let words = buf.len();
        self.machine
            .dma_read(now, agent, addr, buf, self.obs)
            .map_err(|e| dma_error(e, words))
    }

    fn dma_write(
        &mut self,
        now: SimTime,
        agent: &Entity,
        addr: PhysAddr,
        data: &[u64],
    ) -> Result<SimDuration, DmaError> {
        self.machine
            .dma_write(now, agent, addr, data, self.obs)
            .map_err(|e| dma_error(e, data.len()))
    }
}

impl<O: HwObserver + ?Sized> InterruptPort for Port<'_, O> {
    fn deliver(
        &mut self,
        now: SimTime,
        source: &Entity,
        dest: LsapicId,
        vector: u8,
        tag: MsgTag,
    ) -> Delivery {
        self.machine
            .deliver_interrupt(now, source, dest, vector, tag, self.obs)
    }
}
