//! The int8 GEMM against candle's quantized matmul (the engine's previous path) on the
//! projections of the 380M test model (`agora model init --size medium`), for the rows of
//! one scored request (a 13-token prompt and 64 generated tokens) and for one decode row,
//! with `Q8_0`, `Q4_K` and `Q6_K` weights. Both run on candle's thread pool.
//!
//! `cargo bench -p agora-kernels --bench gemm`

use agora_kernels::{KernelKind, PackedMatrix, Parallel, QuantizedRows};
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::borrow::Cow;

struct CandlePool;

impl Parallel for CandlePool {
    fn run(&self, items: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
        candle_core::utils::barrier_pool().execute_chunked(items, f)
    }
}

/// GGUF bytes of an `n × k` weight in `dtype` (`Q8_0`, `Q4_K` or `Q6_K`): fixed f16
/// scales, pseudo-random values and factors.
fn weight_bytes(dtype: GgmlDType, n: usize, k: usize) -> Vec<u8> {
    let mut s = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s as u8
    };
    // Values per block, f16 scales before the body, body bytes, f16 scales after it.
    let (values, leading, body, trailing) = match dtype {
        GgmlDType::Q8_0 => (32, 1, 32, 0),
        GgmlDType::Q4K => (256, 2, 12 + 128, 0),
        _ => (256, 0, 128 + 64 + 16, 1),
    };
    let scale = half::f16::from_f32(0.01).to_le_bytes();
    let mut bytes = Vec::new();
    for _ in 0..n * k / values {
        (0..leading).for_each(|_| bytes.extend_from_slice(&scale));
        bytes.extend((0..body).map(|_| next() / 2));
        (0..trailing).for_each(|_| bytes.extend_from_slice(&scale));
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let shapes = [
        ("qkv", 1536, 1024),
        ("gate_up", 8192, 1024),
        ("down", 1024, 4096),
    ];
    for (dtype, m) in [
        (GgmlDType::Q8_0, 77usize),
        (GgmlDType::Q8_0, 1),
        (GgmlDType::Q4K, 77),
        (GgmlDType::Q4K, 1),
        (GgmlDType::Q6K, 77),
        (GgmlDType::Q6K, 1),
    ] {
        let mut group = c.benchmark_group(format!("{dtype:?}_matmul_m{m}"));
        for (name, n, k) in shapes {
            let bytes = weight_bytes(dtype, n, k);
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919 % 2003) as f32 / 1000.0) - 1.0)
                .collect();
            group.throughput(Throughput::Elements((2 * m * n * k) as u64));
            let ours = match dtype {
                GgmlDType::Q8_0 => PackedMatrix::from_q8_0(&bytes, n, k),
                GgmlDType::Q4K => PackedMatrix::from_q4_k(&bytes, n, k),
                _ => PackedMatrix::from_q6_k(&bytes, n, k),
            }
            .unwrap();
            let mut out = vec![0f32; m * n];
            let mut rows = QuantizedRows::default();
            group.bench_function(BenchmarkId::new("agora_int8_gemm", name), |b| {
                b.iter(|| {
                    rows.requantize_parallel(&x, m, k, &CandlePool).unwrap();
                    ours.matmul(&rows, &mut out, KernelKind::detect(), &CandlePool)
                        .unwrap();
                })
            });
            let storage = QStorage::from_data(Cow::Borrowed(&bytes), &Device::Cpu, dtype).unwrap();
            let theirs = QMatMul::from_qtensor(QTensor::new(storage, (n, k)).unwrap()).unwrap();
            let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
            group.bench_function(BenchmarkId::new("candle_qmatmul", name), |b| {
                b.iter(|| theirs.forward(&xt).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
