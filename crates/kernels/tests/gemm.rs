//! The kernels against a plain dequantize-and-multiply reference, and against each other.

use agora_kernels::{
    KernelKind, PackedMatrix, Parallel, QuantizedRows, Serial, BLOCK, GROUP, Q4_K_BLOCK_BYTES,
    Q4_K_SUPER_BLOCK, Q6_K_BLOCK_BYTES, Q6_K_SUPER_BLOCK,
};
use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType};
use half::f16;
use proptest::prelude::*;

/// A xorshift stream from a seed: the weights' random bytes.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// GGUF `Q8_0` bytes for `n × k` weights from a seed, with scales of varied size.
fn q8_0_bytes(n: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut next = xorshift(seed);
    let mut bytes = Vec::with_capacity(n * k / BLOCK * 34);
    for _ in 0..n * k / BLOCK {
        let d = f16::from_f32(((next() % 1000) as f32 + 1.0) * 1e-4);
        bytes.extend_from_slice(&d.to_le_bytes());
        for _ in 0..BLOCK {
            // The full signed range, -128 included.
            bytes.push(next() as u8);
        }
    }
    bytes
}

/// GGUF `Q4_K` bytes for `n × k` weights from a seed: random scales, minima, 6-bit factors
/// and nibbles, so every bit of the packed factors is exercised.
fn q4_k_bytes(n: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut next = xorshift(seed);
    let supers = n * k / Q4_K_SUPER_BLOCK;
    let mut bytes = Vec::with_capacity(supers * Q4_K_BLOCK_BYTES);
    for _ in 0..supers {
        let d = f16::from_f32(((next() % 1000) as f32 + 1.0) * 2e-5);
        let dmin = f16::from_f32(((next() % 1000) as f32 + 1.0) * 1e-5);
        bytes.extend_from_slice(&d.to_le_bytes());
        bytes.extend_from_slice(&dmin.to_le_bytes());
        for _ in 0..12 + Q4_K_SUPER_BLOCK / 2 {
            bytes.push(next() as u8);
        }
    }
    bytes
}

/// GGUF `Q6_K` bytes for `n × k` weights from a seed: random nibbles, high bit pairs and
/// signed scales (negative ones included), then a small positive `d`.
fn q6_k_bytes(n: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut next = xorshift(seed);
    let supers = n * k / Q6_K_SUPER_BLOCK;
    let mut bytes = Vec::with_capacity(supers * Q6_K_BLOCK_BYTES);
    for _ in 0..supers {
        for _ in 0..Q6_K_BLOCK_BYTES - 2 {
            bytes.push(next() as u8);
        }
        let d = f16::from_f32(((next() % 1000) as f32 + 1.0) * 2e-6);
        bytes.extend_from_slice(&d.to_le_bytes());
    }
    bytes
}

/// The weights as the GGUF reference dequantizes them, through candle's implementation:
/// a reference that shares no code with the packing.
fn dequantize_ggml(dtype: GgmlDType, bytes: &[u8], n: usize, k: usize) -> Vec<f32> {
    let cpu = candle_core::Device::Cpu;
    qtensor_from_ggml(dtype, bytes, vec![n, k], &cpu)
        .unwrap()
        .dequantize(&cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// A weight format under test: its bytes, the packed matrix, the reference weights.
#[derive(Clone, Copy, Debug)]
enum Format {
    Q8_0,
    Q4K,
    Q6K,
}

impl Format {
    fn weights(self, n: usize, k: usize, seed: u64) -> (PackedMatrix, Vec<f32>) {
        match self {
            Format::Q8_0 => {
                let bytes = q8_0_bytes(n, k, seed);
                (
                    PackedMatrix::from_q8_0(&bytes, n, k).unwrap(),
                    dequantize(&bytes, n, k),
                )
            }
            Format::Q4K => {
                let bytes = q4_k_bytes(n, k, seed);
                (
                    PackedMatrix::from_q4_k(&bytes, n, k).unwrap(),
                    dequantize_ggml(GgmlDType::Q4K, &bytes, n, k),
                )
            }
            Format::Q6K => {
                let bytes = q6_k_bytes(n, k, seed);
                (
                    PackedMatrix::from_q6_k(&bytes, n, k).unwrap(),
                    dequantize_ggml(GgmlDType::Q6K, &bytes, n, k),
                )
            }
        }
    }
}

fn dequantize(bytes: &[u8], n: usize, k: usize) -> Vec<f32> {
    let mut w = Vec::with_capacity(n * k);
    for block in bytes.chunks_exact(34) {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        w.extend(block[2..].iter().map(|&q| q as i8 as f32 * d));
    }
    w
}

fn activations(m: usize, k: usize, seed: u64) -> Vec<f32> {
    (0..m * k)
        .map(|i| {
            let h = (i as u64 ^ seed).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            (h % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// `x Wᵀ` in f64 from the dequantized weight and the exact (unquantized) activations.
fn reference(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0f64; m * n];
    for r in 0..m {
        for c in 0..n {
            out[r * n + c] = (0..k)
                .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                .sum();
        }
    }
    out
}

/// Two threads over `std::thread::scope`, so the split across work ranges is exercised.
struct TwoThreads;

impl Parallel for TwoThreads {
    fn run(&self, items: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
        let mid = items / 2;
        std::thread::scope(|s| {
            s.spawn(|| f(0..mid));
            f(mid..items);
        });
    }
}

fn check(m: usize, n: usize, k: usize, seed: u64) {
    check_format(Format::Q8_0, m, n, k, seed)
}

fn check_format(format: Format, m: usize, n: usize, k: usize, seed: u64) {
    let (w, dense) = format.weights(n, k, seed);
    let x = activations(m, k, seed);
    let rows = QuantizedRows::quantize(&x, m, k).unwrap();
    let exact = reference(&x, &dense, m, n, k);
    let w_abs: Vec<f64> = dense.iter().map(|v| v.abs() as f64).collect();
    // Activation quantization moves each output by at most half a step per value.
    let bounds: Vec<f64> = (0..m * n)
        .map(|i| {
            let (r, c) = (i / n, i % n);
            let amax = x[r * k..(r + 1) * k]
                .iter()
                .fold(0f32, |a, v| a.max(v.abs())) as f64;
            (0..k).map(|j| w_abs[c * k + j]).sum::<f64>() * amax / 127.0 * 0.5 * 1.01 + 1e-4
        })
        .collect();
    let within = |got: &[f32], what: &str| {
        for (i, g) in got.iter().enumerate() {
            let (g, want) = (*g as f64, exact[i]);
            assert!(
                (g - want).abs() <= bounds[i],
                "{format:?} {what} {m}×{n}×{k} at {i}: {g} vs {want} (bound {})",
                bounds[i]
            );
        }
    };
    // Each row alone (a decode step) gets the bits it gets among the others (a prefill).
    let alone = |kind: KernelKind, all: &[f32]| {
        for r in 0..m {
            let row = QuantizedRows::quantize(&x[r * k..(r + 1) * k], 1, k).unwrap();
            let mut got = vec![f32::NAN; n];
            w.matmul(&row, &mut got, kind, &Serial).unwrap();
            let want = &all[r * n..(r + 1) * n];
            assert!(
                got.iter()
                    .zip(want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{format:?} {kind:?} {m}×{n}×{k}: row {r} alone {got:?} vs {want:?}"
            );
        }
    };
    let mut portable = vec![f32::NAN; m * n];
    w.matmul(&rows, &mut portable, KernelKind::Portable, &TwoThreads)
        .unwrap();
    within(&portable, "portable");
    alone(KernelKind::Portable, &portable);
    // Every vector kernel is a faster spelling of the portable arithmetic: the same bits.
    for kind in KernelKind::ALL {
        if kind == KernelKind::Portable || !kind.supported() {
            eprintln!("{kind:?} not checked: this CPU lacks it");
            continue;
        }
        for parallel in [&Serial as &dyn Parallel, &TwoThreads] {
            let mut fast = vec![f32::NAN; m * n];
            w.matmul(&rows, &mut fast, kind, parallel).unwrap();
            alone(kind, &fast);
            for (i, (a, b)) in fast.iter().zip(&portable).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits(),
                    "{format:?} {m}×{n}×{k} at {i}: {kind:?} {a} vs portable {b}"
                );
            }
        }
    }
}

#[test]
fn shapes_of_a_real_model_layer() {
    // A full panel set, whole groups; then ragged rows, a partial last group and a
    // partial last panel.
    check(13, 64, 512, 1);
    check(7, 40, 320, 2);
    check(1, 96, 32, 3);
    // Long rows: several passes over each panel, the last one ragged.
    check(9, 70, 2336, 4);
}

#[test]
fn q4_k_shapes_of_a_real_model_layer() {
    // Whole panels; ragged rows and a partial last panel; several passes over a panel
    // (k = 2,304 is nine super-blocks, more than two slices of four groups).
    check_format(Format::Q4K, 13, 64, 512, 11);
    check_format(Format::Q4K, 7, 40, 256, 12);
    check_format(Format::Q4K, 1, 96, 2304, 13);
}

#[test]
fn q6_k_shapes_of_a_real_model_layer() {
    // As for `Q4_K`: whole panels, ragged rows and panels, several slices; one row takes
    // the decode path.
    check_format(Format::Q6K, 13, 64, 512, 21);
    check_format(Format::Q6K, 7, 40, 256, 22);
    check_format(Format::Q6K, 1, 96, 2304, 23);
}

#[test]
fn malformed_q6_k_is_refused() {
    assert!(PackedMatrix::from_q6_k(&[0; Q6_K_BLOCK_BYTES], 1, 128).is_err());
    assert!(PackedMatrix::from_q6_k(&[0; Q6_K_BLOCK_BYTES + 1], 1, 256).is_err());
    let mut inf = q6_k_bytes(1, 256, 5);
    inf[Q6_K_BLOCK_BYTES - 2..].copy_from_slice(&f16::INFINITY.to_le_bytes());
    assert!(PackedMatrix::from_q6_k(&inf, 1, 256).is_err());
}

#[test]
fn malformed_q4_k_is_refused() {
    assert!(PackedMatrix::from_q4_k(&[0; Q4_K_BLOCK_BYTES], 1, 128).is_err());
    assert!(PackedMatrix::from_q4_k(&[0; Q4_K_BLOCK_BYTES - 1], 1, 256).is_err());
    let mut inf = q4_k_bytes(1, 256, 5);
    inf[2..4].copy_from_slice(&f16::NAN.to_le_bytes());
    assert!(PackedMatrix::from_q4_k(&inf, 1, 256).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_shape_matches_the_reference(
        m in 1usize..14,
        n in 1usize..70,
        blocks in 1usize..(2 * GROUP / BLOCK + 3),
        seed in any::<u64>(),
    ) {
        check(m, n, blocks * BLOCK, seed);
    }

    #[test]
    fn any_q4_k_shape_matches_the_reference(
        m in 1usize..14,
        n in 1usize..70,
        supers in 1usize..6,
        seed in any::<u64>(),
    ) {
        check_format(Format::Q4K, m, n, supers * Q4_K_SUPER_BLOCK, seed);
    }

    #[test]
    fn any_q6_k_shape_matches_the_reference(
        m in 1usize..14,
        n in 1usize..70,
        supers in 1usize..6,
        seed in any::<u64>(),
    ) {
        check_format(Format::Q6K, m, n, supers * Q6_K_SUPER_BLOCK, seed);
    }
}

#[test]
fn mismatched_shapes_are_refused_and_leave_the_output_alone() {
    let w = PackedMatrix::from_q8_0(&q8_0_bytes(32, 64, 9), 32, 64).unwrap();
    let rows = QuantizedRows::quantize(&activations(2, 32, 1), 2, 32).unwrap();
    let mut out = vec![7.0; 64];
    assert!(w
        .matmul(&rows, &mut out, KernelKind::detect(), &Serial)
        .is_err());
    let rows = QuantizedRows::quantize(&activations(2, 64, 1), 2, 64).unwrap();
    let mut short = vec![7.0; 63];
    assert!(w
        .matmul(&rows, &mut short, KernelKind::detect(), &Serial)
        .is_err());
    assert!(out.iter().chain(&short).all(|&v| v == 7.0));
}
