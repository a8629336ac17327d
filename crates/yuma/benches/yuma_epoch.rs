//! `cargo bench -p agora-yuma`: one epoch on synthetic subnets with dense weight rows.
//!
//! Cases are `uids x validators`: every validator weights every uid and holds a bond to every
//! uid, so `256x64` has 16k weight entries and `4096x256` about 1M (plus as many bonds).
//! Groups: `yuma_epoch/classic`, `yuma_epoch/yuma3` and `yuma_epoch/yuma3_liquid_alpha` run
//! [`run_epoch`] (one thread); `yuma_epoch_2_threads/{classic,yuma3}` run the large case with
//! `Parallelism::Threads(2)`. Recorded numbers and where the time goes: the crate docs
//! (`src/lib.rs`).

#[path = "support/synthetic.rs"]
mod synthetic;

use agora_yuma::{run_epoch, run_epoch_with, Parallelism};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let sizes: [(u16, u16); 3] = [(256, 64), (1024, 128), (4096, 256)];
    let modes = [
        ("classic", false, false),
        ("yuma3", true, false),
        ("yuma3_liquid_alpha", true, true),
    ];
    for (mode, yuma3, liquid_alpha) in modes {
        let mut group = c.benchmark_group(format!("yuma_epoch/{mode}"));
        for (n, v) in sizes {
            let inputs = synthetic::subnet(n, v, 0x5eed ^ u64::from(n));
            let p = synthetic::params(yuma3, liquid_alpha, v);
            let entries = u64::from(n) * u64::from(v);
            group.throughput(Throughput::Elements(entries));
            group.sample_size(if n >= 4096 { 10 } else { 30 });
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("{n}x{v}")),
                &inputs,
                |b, i| b.iter(|| run_epoch(std::hint::black_box(i), &p).expect("valid inputs")),
            );
        }
        group.finish();
    }
    let mut group = c.benchmark_group("yuma_epoch_2_threads");
    for (mode, yuma3) in [("classic", false), ("yuma3", true)] {
        let (n, v) = (4096u16, 256u16);
        let inputs = synthetic::subnet(n, v, 0x5eed ^ u64::from(n));
        let p = synthetic::params(yuma3, false, v);
        group.throughput(Throughput::Elements(u64::from(n) * u64::from(v)));
        group.sample_size(10);
        group.bench_with_input(
            BenchmarkId::new(mode, format!("{n}x{v}")),
            &inputs,
            |b, i| {
                b.iter(|| {
                    run_epoch_with(std::hint::black_box(i), &p, Parallelism::Threads(2))
                        .expect("valid inputs")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
