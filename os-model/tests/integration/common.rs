//! A small harness: platform + OS + checkers, run until a time or an event.

use acpi_model::hw::IoConfig;
use acpi_model::hw::MachineConfig;
use acpi_model::hw::{DeviceConfig, DeviceKind};
use acpi_model::{Platform, PlatformConfig, PlatformProbe};
use os_model::{DriverConfig, Os, OsCheckers, OsConfig, OsDefect, OsEvent};
use sim_core::{CpuId, RngStreams, SimDuration, SimTime, Trace, TraceLevel};

pub(crate) struct Sim {
    pub(crate) p: Platform,
    pub(crate) probe: PlatformProbe,
    pub(crate) os: Os,
    pub(crate) checks: OsCheckers,
    pub(crate) log: Vec<(SimTime, OsEvent)>,
    pub(crate) now: SimTime,
    wake: Vec<(SimTime, acpi_model::hw::DeviceId)>,
}

/// Three cells of two CPUs and 32 MiB: with 4 MiB blocks, 8 per cell, nodes 1 and 2 movable.
pub(crate) fn small_machine() -> MachineConfig {
    MachineConfig {
        cells: 3,
        cpus_per_cell: 2,
        memory_per_cell: sim_core::ByteSize(32 << 20),
        ..MachineConfig::default()
    }
}

pub(crate) fn ms(x: u64) -> SimTime {
    SimTime::from_nanos(x * 1_000_000)
}

pub(crate) fn us(x: u64) -> SimTime {
    SimTime::from_nanos(x * 1_000)
}

/// Cards in a few slots, so that device interrupts flow.
pub(crate) fn some_cards(subsystems: u16) -> IoConfig {
    let mut io = IoConfig::default();
    for s in 0..subsystems {
        io.device.push(DeviceConfig {
            subsystem: s,
            bridge: 0,
            slot: (s % 4) as u8,
            kind: if s % 2 == 0 {
                DeviceKind::Nic
            } else {
                DeviceKind::Disk
            },
            bar_size: None,
            irq_cpu: None,
            period_ns: Some(4000),
            capacity: None,
            latency_ns: None,
            bandwidth: None,
        });
    }
    io
}

/// `io` with the kernel's disk: a storage card in subsystem 0, slot 0 (replacing a card
/// declared there), taking `latency_ns` per command.
pub(crate) fn with_disk(mut io: IoConfig, latency_ns: u64) -> IoConfig {
    io.device.retain(|d| !(d.subsystem == 0 && d.slot == 0));
    io.device.insert(
        0,
        DeviceConfig {
            subsystem: 0,
            bridge: 0,
            slot: 0,
            kind: DeviceKind::Disk,
            bar_size: None,
            irq_cpu: None,
            period_ns: Some(1_000_000),
            capacity: None,
            latency_ns: Some(latency_ns),
            bandwidth: None,
        },
    );
    io
}

/// Runs until no memory operation is queued or running (or `limit`).
pub(crate) fn mem_settle(s: &mut Sim, limit: SimTime) {
    while !s.os.mem_hotplug().is_idle() && s.now < limit {
        let next = s.now + SimDuration::from_micros(200);
        s.run_to(next);
    }
}

/// Audits, then fails with the reports of any of CHK-1…7.
pub(crate) fn mem_clean(s: &mut Sim) -> Result<(), String> {
    s.audit();
    for code in [
        "CHK-1", "CHK-2", "CHK-3", "CHK-4", "CHK-5", "CHK-6", "CHK-7",
    ] {
        if s.count(code) != 0 {
            return Err(format!("{code}:{}", s.violations()));
        }
    }
    Ok(())
}

impl Sim {
    pub(crate) fn new(
        machine: MachineConfig,
        io: IoConfig,
        os: &OsConfig,
        defects: &[OsDefect],
        seed: u64,
    ) -> Sim {
        // A kernel with files gets its disk, unless the test gave it one.
        let io = if os.memory.files > 0 && !io.device.iter().any(|d| d.kind == DeviceKind::Disk) {
            with_disk(io, 40_000)
        } else {
            io
        };
        let cfg = PlatformConfig { machine, io };
        let mut p = Platform::new(&cfg).unwrap();
        let mut probe =
            PlatformProbe::with_checkers(Trace::new(TraceLevel::Off, 0), p.machine(), false);
        let mut os = os.clone();
        os.memory.disk_slot = os_model::install_disk(&os, &mut p).unwrap().map(|s| s.0);
        let bsp = p.start_boot_cpu(SimTime::ZERO, &mut probe).unwrap();
        let os = Os::boot(
            &os,
            &DriverConfig::default(),
            defects,
            SimTime::ZERO,
            bsp.1,
            &RngStreams::new(seed),
            &mut p,
            &mut probe,
        )
        .unwrap();
        let mut s = Sim {
            p,
            probe,
            os,
            checks: OsCheckers::default(),
            log: Vec::new(),
            now: SimTime::ZERO,
            wake: Vec::new(),
        };
        s.drain();
        s
    }

    fn drain(&mut self) {
        for (t, ev) in self.os.take_events() {
            self.probe.trace.emit(t, &ev);
            self.checks.observe(t, &ev, &mut self.probe.violations);
            self.log.push((t, ev));
        }
        for v in self.os.take_violations() {
            self.probe.violations.push(v);
        }
    }

    /// Runs the OS (and the cards) until `end`, or until an event for which `stop` holds
    /// (returns its time).
    pub(crate) fn run(
        &mut self,
        end: SimTime,
        mut stop: impl FnMut(&OsEvent) -> bool,
    ) -> Option<SimTime> {
        let mut wake = std::mem::take(&mut self.wake);
        loop {
            wake.extend(self.p.take_wakeups().into_iter().map(|(d, t)| (t, d)));
            wake.sort_by_key(|w| (w.0, w.1));
            let dev = wake.first().map(|w| w.0);
            let os = self.os.next_time();
            let t = match (dev, os) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => {
                    self.wake = wake;
                    return None;
                }
            };
            if t > end {
                self.now = end;
                self.wake = wake;
                return None;
            }
            self.now = t;
            let mark = self.log.len();
            if dev == Some(t) {
                let (_, d) = wake.remove(0);
                if let Some(next) = self.p.device_tick(t, d, &mut self.probe) {
                    wake.push((next, d));
                }
                self.os.interrupts_raised(t, &self.p);
            } else {
                self.os.step(&mut self.p, &mut self.probe);
                self.os.interrupts_raised(t, &self.p);
            }
            self.drain();
            if let Some((at, _)) = self.log[mark..].iter().find(|(_, e)| stop(e)) {
                self.wake = wake;
                return Some(*at);
            }
        }
    }

    /// A job of `n` tasks starts now; returns how many got memory.
    pub(crate) fn spawn(&mut self, n: u32) -> u32 {
        let made = self
            .os
            .spawn_tasks(self.now, n, &mut self.p, &mut self.probe);
        self.drain();
        made
    }

    pub(crate) fn run_to(&mut self, end: SimTime) {
        self.run(end, |_| false);
    }

    pub(crate) fn audit(&mut self) {
        let now = self.now;
        self.probe.audit(now, &self.p);
        self.checks
            .audit(now, &self.os, &self.p, &mut self.probe.violations);
    }

    pub(crate) fn count(&self, code: &str) -> u64 {
        self.probe.violations.count(code)
    }

    pub(crate) fn violations(&self) -> String {
        self.probe
            .violations
            .kept()
            .iter()
            .take(8)
            .map(|v| format!("\n  {v}"))
            .collect()
    }

    pub(crate) fn cpu_state(&self, c: u32) -> acpi_model::hw::CpuState {
        self.p.machine().cpu(CpuId(c)).unwrap().state
    }
}
