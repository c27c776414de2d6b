//! Page migration throughput (SPEC OS-MEM-5/6): a memory block full of 16 KiB anonymous
//! pages taken offline by the OS — isolation, per batch: unmap through the reverse map with
//! migration entries, TLB shootdown cross-calls, coherent batch copy, rmap/PTE update, free —
//! with 1 and 2 host threads copying; and, in the same run, a raw memcpy of the same number
//! of 16 KiB pages between scattered places. Prints pages/s, bytes/s and the ratios.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use benches::migration::{Rig, copy_scattered, scattered};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const PAGES_PER_TASK: u32 = 256;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Mean host time of one offline over `runs` fresh rigs.
fn time_offline(threads: usize, runs: usize) -> (Duration, u32) {
    let pool = pool(threads);
    let mut total = Duration::ZERO;
    let mut pages = 0;
    for _ in 0..runs {
        let mut rig = Rig::new(PAGES_PER_TASK);
        let t0 = Instant::now();
        pages = pool.install(|| rig.offline());
        total += t0.elapsed();
    }
    (total / runs as u32, pages)
}

fn bench(c: &mut Criterion) {
    let probe_rig = Rig::new(PAGES_PER_TASK);
    let pages = probe_rig.frames().len();
    let words = probe_rig.p.machine.geometry().words_per_page;
    drop(probe_rig);
    let bytes = (pages * words * 8) as u64;

    let mut g = c.benchmark_group("migration");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    for threads in [1usize, 2] {
        let pool = pool(threads);
        g.bench_function(format!("offline_{pages}_pages_{threads}_thread"), |b| {
            b.iter_batched_ref(
                || Rig::new(PAGES_PER_TASK),
                |rig| pool.install(|| rig.offline()),
                BatchSize::LargeInput,
            );
        });
    }
    let (mut arena, pairs) = scattered(pages, words, 7);
    g.bench_function(format!("raw_scattered_memcpy_{pages}_pages"), |b| {
        b.iter(|| copy_scattered(&mut arena, &pairs, words));
    });
    g.finish();

    // The figures, measured side by side in this run.
    let runs = 5;
    let (one, moved) = time_offline(1, runs);
    let (two, _) = time_offline(2, runs);
    let t0 = Instant::now();
    for _ in 0..runs {
        copy_scattered(&mut arena, &pairs, words);
    }
    let raw = t0.elapsed() / runs as u32;
    let rate = |d: Duration| pages as f64 / d.as_secs_f64();
    let mib = |d: Duration| bytes as f64 / d.as_secs_f64() / (1 << 20) as f64;
    eprintln!(
        "migration of {moved} pages of 16 KiB ({} MiB): 1 thread {:.0} pages/s ({:.0} MiB/s), \
         2 threads {:.0} pages/s ({:.0} MiB/s); raw scattered memcpy {:.0} pages/s ({:.0} MiB/s)",
        bytes >> 20,
        rate(one),
        mib(one),
        rate(two),
        mib(two),
        rate(raw),
        mib(raw)
    );
    eprintln!(
        "ratio to raw memcpy: 1 thread {:.2}, 2 threads {:.2}; 2 threads / 1 thread {:.2}",
        raw.as_secs_f64() / one.as_secs_f64(),
        raw.as_secs_f64() / two.as_secs_f64(),
        one.as_secs_f64() / two.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
