//! Page migration throughput (SPEC OS-MEM-5/6): a memory block full of 16 KiB anonymous
//! pages taken offline by the OS — isolation, per batch: unmap through the reverse map with
//! migration entries, TLB shootdown cross-calls, coherent batch copy, rmap/PTE update, free —
//! with 1 and 2 host threads copying; and, in the same run, a raw memcpy of the same number
//! of 16 KiB pages, scattered (random places of an arena four times their size, the guide's
//! reference) and in order, each with 1 and 2 threads. Prints pages/s, bytes/s and the ratios.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use benches::migration::{RawCopy, Rig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const PAGES_PER_TASK: u32 = 256;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let probe_rig = Rig::new(PAGES_PER_TASK);
    let pages = probe_rig.frames().len();
    let words = probe_rig.p.machine().geometry().words_per_page;
    drop(probe_rig);
    let bytes = (pages * words * 8) as u64;
    let pools = [pool(1), pool(2)];
    let mut scattered = RawCopy::new(pages, words, true, 7);
    let mut in_order = RawCopy::new(pages, words, false, 7);
    assert_eq!(scattered.bytes(), bytes);

    let mut g = c.benchmark_group("migration");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    for (k, pool) in pools.iter().enumerate() {
        let threads = k + 1;
        g.bench_function(format!("offline_{pages}_pages_{threads}_thread"), |b| {
            b.iter_batched_ref(
                || Rig::new(PAGES_PER_TASK),
                |rig| pool.install(|| rig.offline()),
                BatchSize::LargeInput,
            );
        });
        g.bench_function(
            format!("raw_scattered_memcpy_{pages}_pages_{threads}_thread"),
            |b| {
                b.iter(|| pool.install(|| scattered.copy_parallel()));
            },
        );
    }
    g.bench_function(format!("raw_scattered_memcpy_{pages}_pages_serial"), |b| {
        b.iter(|| scattered.copy());
    });
    g.bench_function(format!("raw_in_order_memcpy_{pages}_pages_serial"), |b| {
        b.iter(|| in_order.copy());
    });
    g.finish();

    // The figures, measured side by side, interleaved, in this run: medians of `runs`.
    let runs = 9;
    let mut t: [Vec<Duration>; 6] = Default::default();
    let mut moved = 0;
    for _ in 0..runs {
        for (k, pool) in pools.iter().enumerate() {
            let mut rig = Rig::new(PAGES_PER_TASK);
            let t0 = Instant::now();
            moved = pool.install(|| rig.offline());
            t[k].push(t0.elapsed());
            let t0 = Instant::now();
            pool.install(|| scattered.copy_parallel());
            t[2 + k].push(t0.elapsed());
            let t0 = Instant::now();
            pool.install(|| in_order.copy_parallel());
            t[4 + k].push(t0.elapsed());
        }
    }
    let [one, two, raw1, raw2, seq1, seq2] = t.map(median);
    let rate = |d: Duration| pages as f64 / d.as_secs_f64();
    let mib = |d: Duration| bytes as f64 / d.as_secs_f64() / (1 << 20) as f64;
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    eprintln!(
        "migration of {moved} pages of 16 KiB ({} MiB), medians of {runs} interleaved runs:",
        bytes >> 20
    );
    for (what, d) in [
        ("offline, 1 thread", one),
        ("offline, 2 threads", two),
        ("raw scattered memcpy, 1 thread", raw1),
        ("raw scattered memcpy, 2 threads", raw2),
        ("raw in-order memcpy, 1 thread", seq1),
        ("raw in-order memcpy, 2 threads", seq2),
    ] {
        eprintln!(
            "  {what:<32} {:>8.3} ms  {:>9.0} pages/s  {:>6.0} MiB/s",
            d.as_secs_f64() * 1e3,
            rate(d),
            mib(d)
        );
    }
    eprintln!(
        "ratio to the raw scattered memcpy: 1 thread {:.2}, 2 threads {:.2}; to the in-order memcpy: {:.2}, {:.2}",
        ratio(one, raw1),
        ratio(two, raw2),
        ratio(one, seq1),
        ratio(two, seq2)
    );
    eprintln!(
        "2 threads / 1 thread: offline {:.2}, raw scattered memcpy {:.2}, raw in-order memcpy {:.2}",
        ratio(two, one),
        ratio(raw2, raw1),
        ratio(seq2, seq1)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
