//! Coherent accesses per second: a ≥ 70 %-hit mix and an all-miss stream, 8 CPUs over 8 cells
//! of the default machine, on the bare model and with the trace hash + CHK-1 + CHK-2 observing
//! every access.

#![allow(missing_docs)]

use benches::{machine, miss_stream, mix_stream, run};
use cells::{
    Probe,
    check::{AccessChecker, CoherenceChecker},
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sim_core::{Trace, TraceLevel};

const N: usize = 200_000;

fn checked(m: &cells::Machine) -> Probe {
    let mut p = Probe::new(Trace::new(TraceLevel::Off, 0));
    p.checkers.add(Box::new(AccessChecker));
    p.checkers.add(Box::new(CoherenceChecker::new(m, false)));
    p
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("coherent_access");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);

    for hot_lines in [256u64, 1024] {
        // Warm the mix once so that each iteration measures the steady state.
        let (mut mm, cpus) = machine();
        let warm = mix_stream(&mm, &cpus, 400_000, 0.75, hot_lines, 1);
        run(&mut mm, &warm, &mut ());
        let mix = mix_stream(&mm, &cpus, N, 0.75, hot_lines, 2);
        let before = mm.stats().hits;
        run(&mut mm, &mix, &mut ());
        eprintln!(
            "mix (hot set {hot_lines} lines per CPU) hit rate: {:.1}%",
            100.0 * (mm.stats().hits - before) as f64 / N as f64
        );
        g.bench_function(format!("mix75_hot{hot_lines}_bare"), |b| {
            b.iter(|| run(&mut mm, &mix, &mut ()));
        });
        let mut probe = checked(&mm);
        g.bench_function(format!("mix75_hot{hot_lines}_checked"), |b| {
            b.iter(|| run(&mut mm, &mix, &mut probe));
        });
    }

    let (miss_m, cpus) = machine();
    let misses = miss_stream(&miss_m, &cpus, N);
    drop(miss_m);
    g.bench_function("all_miss_bare", |b| {
        b.iter_batched_ref(
            || machine().0,
            |m| run(m, &misses, &mut ()),
            BatchSize::LargeInput,
        );
    });
    g.bench_function("all_miss_checked", |b| {
        b.iter_batched_ref(
            || {
                let m = machine().0;
                let p = checked(&m);
                (m, p)
            },
            |(m, p)| run(m, &misses, p),
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
