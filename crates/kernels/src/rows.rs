//! Activation rows quantized to int8 for the GEMM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::{KernelError, Parallel, BLOCK, GROUP};

/// What a row's values are computed from before they are quantized.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// The values themselves, `m × k`.
    Plain(&'a [f32]),
    /// A SwiGLU MLP's stacked gate and up projections, `m × 2k`: row `r` becomes
    /// `silu(gate) · up`, the input of the down projection.
    SwiGlu(&'a [f32]),
    /// Rows of `m × k` values, RMS-normalised and scaled by `weight` (`k` values):
    /// `x / sqrt(mean(x²) + eps) · weight`, the input of a block's first projections.
    RmsNorm {
        x: &'a [f32],
        weight: &'a [f32],
        eps: f32,
    },
}

/// Writes row `r` of an RMS-normalised source into `out` (`k` values). Inlined so that
/// each CPU's entry point vectorizes it for its own instruction set.
#[inline(always)]
pub(crate) fn rms_norm_row(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    // Sixteen partial sums, so the reduction vectorizes (see `quantize_row`).
    let mut lanes = [0f32; 16];
    for chunk in x.chunks_exact(16) {
        for j in 0..16 {
            lanes[j] += chunk[j] * chunk[j];
        }
    }
    let mean = lanes.iter().sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * inv * w;
    }
}

/// The per-CPU arithmetic that turns a [`Source`] row into quantized bytes.
pub(crate) trait RowOps {
    /// `out = silu(gate) · up`.
    fn swiglu(&self, gate: &[f32], up: &[f32], out: &mut [f32]);
    /// `out = x / sqrt(mean(x²) + eps) · weight`.
    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]);
    /// Quantizes `x`; returns whether every value was finite.
    fn quantize(&self, x: &[f32], q: &mut [u8], d: &mut [f32]) -> bool;
}

/// Plain Rust, any CPU.
pub(crate) struct PortableOps;

impl RowOps for PortableOps {
    #[inline(always)]
    fn swiglu(&self, gate: &[f32], up: &[f32], out: &mut [f32]) {
        for ((out, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            *out = g / (1.0 + exp(-g)) * u;
        }
    }

    #[inline(always)]
    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        rms_norm_row(x, weight, eps, out)
    }

    #[inline(always)]
    fn quantize(&self, x: &[f32], q: &mut [u8], d: &mut [f32]) -> bool {
        quantize_row(x, q, d)
    }
}

/// Computes and quantizes row `r` with `ops`: per group, the scale maps the largest
/// magnitude to 127. Returns whether every value was finite. Inlined into each CPU's
/// entry point so that it vectorizes there.
#[inline(always)]
pub(crate) fn process_row(
    ops: &impl RowOps,
    source: Source<'_>,
    r: usize,
    k: usize,
    scratch: &mut Vec<f32>,
    q: &mut [u8],
    d: &mut [f32],
) -> bool {
    let x: &[f32] = match source {
        Source::Plain(x) => &x[r * k..(r + 1) * k],
        Source::SwiGlu(gate_up) => {
            let (gate, up) = gate_up[r * 2 * k..(r + 1) * 2 * k].split_at(k);
            scratch.resize(k, 0.0);
            ops.swiglu(gate, up, scratch);
            scratch
        }
        Source::RmsNorm { x, weight, eps } => {
            scratch.resize(k, 0.0);
            ops.rms_norm(&x[r * k..(r + 1) * k], weight, eps, scratch);
            scratch
        }
    };
    ops.quantize(x, q, d)
}

/// Quantizes one row of values; see [`process_row`].
#[inline(always)]
pub(crate) fn quantize_row(x: &[f32], q: &mut [u8], d: &mut [f32]) -> bool {
    // `v · 0` is 0 for finite `v` and NaN otherwise, so one sum checks the whole row
    // without a branch per value. Both reductions keep sixteen lanes so that they
    // vectorize: float sums may not be reordered, so the compiler will not do it alone.
    const LANES: usize = 16;
    let mut poison = [0f32; LANES];
    for ((xs, qs), d) in x.chunks(GROUP).zip(q.chunks_mut(GROUP)).zip(d) {
        let mut lane_max = [0f32; LANES];
        for chunk in xs.chunks_exact(LANES) {
            for j in 0..LANES {
                let v = chunk[j].abs();
                lane_max[j] = if v > lane_max[j] { v } else { lane_max[j] };
                poison[j] += chunk[j] * 0.0;
            }
        }
        let amax = lane_max
            .iter()
            .fold(0f32, |a, &v| if v > a { v } else { a });
        *d = amax / 127.0;
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        for (q, v) in qs.iter_mut().zip(xs) {
            // Ties to even, as the vector kernel's conversion rounds. |v · inv| ≤ 127 up to
            // rounding; the clamp guards the last ulp.
            let rounded = ((v * inv + ROUNDER) - ROUNDER).clamp(-127.0, 127.0);
            *q = (rounded as i32 + 128) as u8;
        }
    }
    poison.iter().sum::<f32>() == 0.0
}

/// Adding and removing 1.5 · 2^23 rounds an f32 to the nearest integer (ties to even)
/// for |v| < 2^22, in two additions that vectorize where `round` is a library call.
const ROUNDER: f32 = 12_582_912.0;

/// `ln 2` split so that `n · LN2_HI` is exact for the `n` that `exp` meets.
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// `1/k!` for k = 7 down to 0: the Taylor coefficients of `e^r`, highest power first.
pub(crate) const EXP_TAYLOR: [f32; 8] = [
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// `e^x` for f32 in plain arithmetic that vectorizes: `x = n·ln 2 + r` with
/// `|r| ≤ ln 2 / 2`, `e^r` by its Taylor series to the 7th power (truncation error below
/// 6e-9, under an f32 ulp), and `2^n` built in the exponent bits. Inputs are clamped to
/// the range where the result is a normal float. The reduction and the series use fused
/// multiply-adds, as every vector kernel does: on a CPU with FMA they are one instruction
/// each, and every kernel gets the same bits.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = (-n).mul_add(LN2_HI, x);
    let r = (-n).mul_add(LN2_LO, r);
    let mut p = EXP_TAYLOR[0];
    for &c in &EXP_TAYLOR[1..] {
        p = p.mul_add(r, c);
    }
    // `shifted` lies in `ROUNDER`'s binade, so its bits minus `ROUNDER`'s are `n` as an
    // integer: no float-to-int conversion, whose saturating semantics would keep the
    // loops that call this from vectorizing.
    let n_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// `m` rows of `k` activations as int8 with one f32 scale per [`GROUP`] values.
///
/// Values are stored offset by +128 as unsigned bytes: the int8 dot-product instruction
/// multiplies unsigned by signed bytes, and the offset's contribution is a per-column
/// constant of the weight that [`crate::PackedMatrix`] removes (see `pack.rs`).
#[derive(Debug, Clone, Default)]
pub struct QuantizedRows {
    pub(crate) m: usize,
    pub(crate) k: usize,
    /// `m × k` offset values, row-major.
    pub(crate) q: Vec<u8>,
    /// `m × groups` scales, row-major.
    pub(crate) d: Vec<f32>,
}

impl QuantizedRows {
    /// Quantizes `m` rows of `k` values (`x.len() == m * k`, `k` a multiple of [`BLOCK`]).
    /// Non-finite inputs are refused: they would poison every output of the product. On
    /// error the rows' contents are unspecified.
    pub fn quantize(x: &[f32], m: usize, k: usize) -> Result<Self, KernelError> {
        let mut rows = QuantizedRows::default();
        rows.requantize(x, m, k)?;
        Ok(rows)
    }

    /// Like [`QuantizedRows::quantize`], reusing this value's buffers.
    pub fn requantize(&mut self, x: &[f32], m: usize, k: usize) -> Result<(), KernelError> {
        self.requantize_parallel(x, m, k, &crate::Serial)
    }

    /// Per row and block of [`BLOCK`] values, the sum of the signed quantized values: what
    /// a weight's per-block minimum multiplies (`m × k / BLOCK`, row-major).
    pub(crate) fn block_sums(&self) -> Vec<f32> {
        self.q
            .chunks_exact(BLOCK)
            .map(|block| {
                let offset_sum: i32 = block.iter().map(|&u| i32::from(u)).sum();
                (offset_sum - 128 * BLOCK as i32) as f32
            })
            .collect()
    }

    /// Checks that `len` values are `m` rows of `per_row · k`.
    fn check(&self, len: usize, m: usize, k: usize, per_row: usize) -> Result<(), KernelError> {
        if k == 0 || !k.is_multiple_of(BLOCK) {
            return Err(KernelError::Shape(format!(
                "row length {k} is not a positive multiple of {BLOCK}"
            )));
        }
        if m.checked_mul(k * per_row) != Some(len) {
            return Err(KernelError::Shape(format!(
                "{len} values are not {m} rows of {}",
                k * per_row
            )));
        }
        Ok(())
    }

    fn resize(&mut self, m: usize, k: usize) {
        self.m = m;
        self.k = k;
        self.q.resize(m * k, 0);
        self.d.resize(m * k.div_ceil(GROUP), 0.0);
    }

    /// Like [`QuantizedRows::requantize`], quantizing rows in parallel.
    pub fn requantize_parallel(
        &mut self,
        x: &[f32],
        m: usize,
        k: usize,
        parallel: &dyn Parallel,
    ) -> Result<(), KernelError> {
        self.check(x.len(), m, k, 1)?;
        self.fill(Source::Plain(x), m, k, parallel)
    }

    /// Quantizes the input of a SwiGLU MLP's down projection: `gate_up` holds `m` rows of
    /// the stacked gate and up projections (`2k` values, gate first), and row `r` becomes
    /// `silu(gate) · up`. Fusing the activation into the quantization saves a pass over
    /// the widest activations of the model.
    pub fn requantize_swiglu(
        &mut self,
        gate_up: &[f32],
        m: usize,
        k: usize,
        parallel: &dyn Parallel,
    ) -> Result<(), KernelError> {
        self.check(gate_up.len(), m, k, 2)?;
        self.fill(Source::SwiGlu(gate_up), m, k, parallel)
    }

    /// Quantizes `m` RMS-normalised rows of `x` (`m × k`): row `r` becomes
    /// `x_r / sqrt(mean(x_r²) + eps) · weight`. Fusing the norm into the quantization
    /// saves a pass and a tensor per projection.
    pub fn requantize_rms_norm(
        &mut self,
        x: &[f32],
        weight: &[f32],
        eps: f32,
        m: usize,
        k: usize,
        parallel: &dyn Parallel,
    ) -> Result<(), KernelError> {
        self.check(x.len(), m, k, 1)?;
        if weight.len() != k {
            return Err(KernelError::Shape(format!(
                "a norm weight of {} values for rows of {k}",
                weight.len()
            )));
        }
        self.fill(Source::RmsNorm { x, weight, eps }, m, k, parallel)
    }

    fn fill(
        &mut self,
        source: Source<'_>,
        m: usize,
        k: usize,
        parallel: &dyn Parallel,
    ) -> Result<(), KernelError> {
        self.resize(m, k);
        let groups = k.div_ceil(GROUP);
        let all_finite = AtomicBool::new(true);
        if m == 1 {
            let finite = crate::process_rows(source, 0..1, k, &mut self.q, &mut self.d);
            all_finite.store(finite, Ordering::Relaxed);
        } else {
            // One uncontended lock per row hands each row's buffers to whichever thread
            // takes it, without unsafe code.
            let rows: Vec<Mutex<(&mut [u8], &mut [f32])>> = self
                .q
                .chunks_exact_mut(k)
                .zip(self.d.chunks_exact_mut(groups))
                .map(Mutex::new)
                .collect();
            parallel.run(m, &|range| {
                for r in range {
                    let mut row = rows[r].lock().unwrap_or_else(|e| e.into_inner());
                    let (q, d) = &mut *row;
                    if !crate::process_rows(source, r..r + 1, k, q, d) {
                        all_finite.store(false, Ordering::Relaxed);
                    }
                }
            });
        }
        if all_finite.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(KernelError::Data(
                "an activation is not finite (NaN or infinite)".into(),
            ))
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.m
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_within_half_a_step() {
        let x: Vec<f32> = (0..2 * 320)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let q = QuantizedRows::quantize(&x, 2, 320).unwrap();
        assert_eq!(q.d.len(), 4);
        for r in 0..2 {
            for i in 0..320 {
                let d = q.d[r * 2 + i / GROUP];
                let back = (q.q[r * 320 + i] as f32 - 128.0) * d;
                assert!((back - x[r * 320 + i]).abs() <= d * 0.5 + 1e-6);
            }
        }
    }

    #[test]
    fn refuses_bad_shapes_and_values() {
        assert!(QuantizedRows::quantize(&[0.0; 31], 1, 31).is_err());
        assert!(QuantizedRows::quantize(&[0.0; 64], 3, 32).is_err());
        let mut x = vec![0.0; 32];
        x[5] = f32::NAN;
        assert!(matches!(
            QuantizedRows::quantize(&x, 1, 32),
            Err(KernelError::Data(_))
        ));
    }

    #[test]
    fn exp_is_within_two_ulps_over_the_range_that_matters() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            assert!(
                ((got - want) / want).abs() < 2.5e-7,
                "exp({x}) = {got}, not {want}"
            );
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1e9) > 0.0 && exp(1e9).is_finite());
    }

    #[test]
    fn swiglu_rows_are_silu_of_gate_times_up() {
        let (m, k) = (3, 288);
        let gate_up: Vec<f32> = (0..m * 2 * k)
            .map(|i| ((i * 31 % 97) as f32 - 48.0) / 9.0)
            .collect();
        let got = {
            let mut rows = QuantizedRows::default();
            rows.requantize_swiglu(&gate_up, m, k, &crate::Serial)
                .unwrap();
            rows
        };
        let mut want = Vec::with_capacity(m * k);
        for r in 0..m {
            let (g, u) = gate_up[r * 2 * k..(r + 1) * 2 * k].split_at(k);
            want.extend(g.iter().zip(u).map(|(&g, &u)| {
                let g = g as f64;
                (g / (1.0 + (-g).exp()) * u as f64) as f32
            }));
        }
        let want = QuantizedRows::quantize(&want, m, k).unwrap();
        assert_eq!(got.d.len(), want.d.len());
        for (a, b) in got.d.iter().zip(&want.d) {
            assert!((a - b).abs() <= 1e-6 * b.abs());
        }
        // A value may land on the other side of a rounding boundary, never further.
        assert!(got.q.iter().zip(&want.q).all(|(a, b)| a.abs_diff(*b) <= 1));
    }

    #[test]
    fn rms_norm_rows_are_normalised_then_quantized() {
        let (m, k) = (2, 64);
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let weight: Vec<f32> = (0..k).map(|i| 0.5 + i as f32 / 64.0).collect();
        let mut got = QuantizedRows::default();
        got.requantize_rms_norm(&x, &weight, 1e-5, m, k, &crate::Serial)
            .unwrap();
        let mut want = Vec::new();
        for row in x.chunks(k) {
            let mean = row.iter().map(|v| (v * v) as f64).sum::<f64>() / k as f64;
            let inv = 1.0 / (mean + 1e-5).sqrt();
            want.extend(
                row.iter()
                    .zip(&weight)
                    .map(|(&v, &w)| (v as f64 * inv * w as f64) as f32),
            );
        }
        let want = QuantizedRows::quantize(&want, m, k).unwrap();
        for (a, b) in got.d.iter().zip(&want.d) {
            assert!((a - b).abs() <= 1e-5 * b.abs());
        }
        assert!(got.q.iter().zip(&want.q).all(|(a, b)| a.abs_diff(*b) <= 1));
        assert!(got
            .requantize_rms_norm(&x, &weight[1..], 1e-5, m, k, &crate::Serial)
            .is_err());
    }

    #[test]
    fn non_finite_swiglu_inputs_are_refused() {
        let mut gate_up = vec![0.5f32; 2 * 64];
        gate_up[70] = f32::INFINITY;
        let mut rows = QuantizedRows::default();
        assert!(rows
            .requantize_swiglu(&gate_up, 1, 64, &crate::Serial)
            .is_err());
        let two_rows: Vec<f32> = [vec![0.5; 128], gate_up].concat();
        assert!(rows
            .requantize_swiglu(&two_rows, 2, 64, &crate::Serial)
            .is_err());
    }

    #[test]
    fn zero_rows_quantize_to_zero() {
        let q = QuantizedRows::quantize(&[0.0; 64], 1, 64).unwrap();
        assert!(q.q.iter().all(|&b| b == 128));
        assert_eq!(q.d, vec![0.0]);
    }
}
