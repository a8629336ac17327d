//! The GEMM on AVX-512 with VNNI int8 dot products (`vpdpbusd`).
//!
//! A tile is `R` activation rows × one panel of 32 columns, held in two 16-lane vectors
//! per row. Per block of 32 values the kernel keeps integer sums (eight dot products per
//! vector), folds them into a per-group float sum with the block's weight scales, and once
//! per group of eight blocks applies the activation scale and removes the +128 offset.
//! Every weight load serves `R` rows and every broadcast activation word two vectors.
//!
//! The slice loop, the row and attention entry points and CPU detection are shared with
//! the AVX2 kernels in [`avx2`], which compute the same bits on eight-lane vectors.
#![allow(unsafe_code)]

use core::arch::x86_64::*;
use std::ops::Range;

use crate::attention::QUERY_BLOCK;
use crate::out::SharedOut;
use crate::pack::{PackedFormat, PackedMatrix, PANEL_BLOCK_BYTES};
use crate::rows::{QuantizedRows, RowOps, Source, EXP_TAYLOR, LN2_HI, LN2_LO};
use crate::{KernelKind, BLOCK, GROUP, PANEL, SLICE_GROUPS};

mod avx2;

/// Activation rows per tile: six rows keep twelve independent dot-product chains in
/// flight, enough to cover the instruction's latency on both vector ports.
const TILE_ROWS: usize = 6;

/// Whether this CPU has AVX-512 with VNNI.
pub(crate) fn avx512_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && avx2_supported()
    })
}

/// Whether this CPU has AVX2 with FMA.
pub(crate) fn avx2_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Whether this CPU has AVX-VNNI, the 256-bit int8 dot products of recent desktops.
pub(crate) fn avx_vnni_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| avx2_supported() && is_x86_feature_detected!("avxvnni"))
}

/// The row arithmetic on AVX-512: sixteen values per instruction for the SwiGLU
/// activation, the norm, the group maxima and the conversion to bytes. Only built by
/// [`Avx512Ops::new`], which checks the CPU.
pub(crate) struct Avx512Ops(());

impl Avx512Ops {
    pub(crate) fn new() -> Option<Self> {
        avx512_supported().then_some(Avx512Ops(()))
    }
}

/// [`crate::rows::process_row`] on a vector kernel `kind` this CPU supports.
pub(crate) fn process_row(
    kind: KernelKind,
    source: Source<'_>,
    r: usize,
    k: usize,
    scratch: &mut Vec<f32>,
    q: &mut [u8],
    d: &mut [f32],
) -> bool {
    match (kind, Avx512Ops::new()) {
        // Each of `ops`'s methods enters AVX-512 code itself.
        (KernelKind::Avx512Vnni, Some(ops)) => {
            crate::rows::process_row(&ops, source, r, k, scratch, q, d)
        }
        _ => {
            assert!(avx2_supported(), "the AVX2 path needs a CPU that has it");
            // SAFETY: the CPU has the features (asserted above); the body is safe Rust.
            unsafe { avx2::process_row(source, r, k, scratch, q, d) }
        }
    }
}

impl RowOps for Avx512Ops {
    fn swiglu(&self, gate: &[f32], up: &[f32], out: &mut [f32]) {
        assert!(gate.len() == out.len() && up.len() == out.len() && out.len().is_multiple_of(16));
        // SAFETY: the CPU has the features (checked when `self` was built); all three
        // slices hold the same number of values, a multiple of 16.
        unsafe { swiglu(gate, up, out) }
    }

    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        // SAFETY: as above; the body is safe Rust, vectorized for AVX-512.
        unsafe { rms_norm(x, weight, eps, out) }
    }

    fn quantize(&self, x: &[f32], q: &mut [u8], d: &mut [f32]) -> bool {
        assert!(
            x.len().is_multiple_of(16) && q.len() == x.len() && d.len() == x.len().div_ceil(GROUP)
        );
        // SAFETY: as above; `x` and `q` hold the same multiple of 16 values and `d` one
        // scale per group.
        unsafe { quantize(x, q, d) }
    }
}

#[target_feature(enable = "avx512f")]
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    crate::rows::rms_norm_row(x, weight, eps, out)
}

/// [`crate::attention::attend_head`] on a vector kernel `kind` this CPU supports.
pub(crate) fn attend_head(
    kind: KernelKind,
    call: &crate::attention::Call<'_>,
    h: usize,
    space: &mut crate::attention::Workspace,
) {
    match (kind, Avx512Ops::new()) {
        // SAFETY: the CPU has the features (`ops` exists); the body is safe Rust.
        (KernelKind::Avx512Vnni, Some(ops)) => unsafe { attend_head_avx512(&ops, call, h, space) },
        _ => {
            assert!(avx2_supported(), "the AVX2 path needs a CPU that has it");
            // SAFETY: as above, for AVX2.
            unsafe { avx2::attend_head(call, h, space) }
        }
    }
}

#[target_feature(enable = "avx512f")]
fn attend_head_avx512(
    ops: &Avx512Ops,
    call: &crate::attention::Call<'_>,
    h: usize,
    space: &mut crate::attention::Workspace,
) {
    crate::attention::attend_head(ops, call, h, space)
}

impl crate::attention::AttentionOps for Avx512Ops {
    fn scores(
        &self,
        rows: usize,
        queries: &[f32],
        keys_t: &[f32],
        d: usize,
        chunks: usize,
        scores: &mut [f32],
    ) {
        assert!(rows == 1 || rows == QUERY_BLOCK, "{rows} rows at once");
        let (key_stride, stride) = (keys_t.len() / d, scores.len() / rows);
        assert!(d > 0 && queries.len() >= rows * d && chunks * 16 <= key_stride.min(stride));
        // SAFETY: the CPU has the features (checked when `self` was built); every load
        // and store below is within the lengths asserted above.
        unsafe {
            match rows {
                1 => scores_rows::<1>(queries, keys_t, d, chunks, scores, stride),
                _ => scores_rows::<QUERY_BLOCK>(queries, keys_t, d, chunks, scores, stride),
            }
        }
    }

    fn values(
        &self,
        rows: usize,
        probs: &[f32],
        values: &[f32],
        d: usize,
        visible: usize,
        out: &mut [f32],
    ) {
        assert!(rows == 1 || rows == QUERY_BLOCK, "{rows} rows at once");
        let stride = probs.len() / rows;
        assert!(visible <= stride && values.len() >= visible * d && out.len() >= rows * d);
        // SAFETY: as above.
        unsafe {
            match rows {
                1 => values_rows::<1>(probs, stride, values, d, visible, out),
                _ => values_rows::<QUERY_BLOCK>(probs, stride, values, d, visible, out),
            }
        }
    }
}

/// Sixteen keys' scores for each of `ROWS` rows per pass over the features. In a block
/// one load of transposed keys serves [`QUERY_BLOCK`] multiply-adds; a single row takes
/// up to eight chunks per pass instead, so that enough independent sums are in flight.
/// Each lane's sum runs over the features in order from zero either way.
///
/// Safety: AVX-512 F; `queries` holds `ROWS · d` values; `keys_t` is `d` rows of at least
/// `16 · chunks` keys, `keys_t.len() / d` apart; `scores` holds `16 · chunks` values for
/// each row, `stride` apart.
#[target_feature(enable = "avx512f")]
unsafe fn scores_rows<const ROWS: usize>(
    queries: &[f32],
    keys_t: &[f32],
    d: usize,
    chunks: usize,
    scores: &mut [f32],
    stride: usize,
) {
    let key_stride = keys_t.len() / d;
    let pass = |c: usize, n: usize, scores: &mut [f32]| {
        let args = (queries, keys_t, d, key_stride, c, scores, stride);
        match n {
            8 => scores_pass::<8, ROWS>(args),
            4 => scores_pass::<4, ROWS>(args),
            2 => scores_pass::<2, ROWS>(args),
            _ => scores_pass::<1, ROWS>(args),
        }
    };
    // Eight chunks per pass would need 64 sums for a block: it takes two.
    let widest = if ROWS == 1 { 8 } else { 2 };
    in_runs(chunks, widest, |c, n| pass(c, n, scores));
}

/// Calls `pass(first, n)` over `units` in order, in runs of `n ∈ {8, 4, 2, 1}` no wider
/// than `widest`, the widest that fit first.
#[inline(always)]
fn in_runs(units: usize, widest: usize, mut pass: impl FnMut(usize, usize)) {
    let mut u = 0;
    while u < units {
        let n = [8, 4, 2, 1]
            .into_iter()
            .find(|&n| n <= widest && u + n <= units)
            .unwrap_or(1);
        pass(u, n);
        u += n;
    }
}

/// Scores of `N` chunks of sixteen keys, from chunk `c`, for each of `ROWS` rows.
///
/// Safety: as [`scores_rows`], with `c + N <= chunks`.
#[inline(always)]
unsafe fn scores_pass<const N: usize, const ROWS: usize>(
    (queries, keys_t, d, key_stride, c, scores, stride): (
        &[f32],
        &[f32],
        usize,
        usize,
        usize,
        &mut [f32],
        usize,
    ),
) {
    let mut s = [[_mm512_setzero_ps(); N]; ROWS];
    let keys = keys_t.as_ptr().add(c * 16);
    for f in 0..d {
        let k: [__m512; N] =
            std::array::from_fn(|i| _mm512_loadu_ps(keys.add(f * key_stride + 16 * i)));
        for (r, acc) in s.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*queries.get_unchecked(r * d + f));
            for i in 0..N {
                acc[i] = _mm512_fmadd_ps(x, k[i], acc[i]);
            }
        }
    }
    for (r, acc) in s.iter().enumerate() {
        for (i, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(scores.as_mut_ptr().add(r * stride + (c + i) * 16), *a);
        }
    }
}

/// Sixteen output features of each of `ROWS` rows per pass over the positions: in a block
/// one load of a value row serves [`QUERY_BLOCK`] multiply-adds. Each lane's sum runs
/// over the positions in order from zero.
///
/// Safety: AVX-512 F; `probs` holds `visible` values for each row, `stride` apart;
/// `values` holds `visible` rows of `d`; `out` holds `ROWS · d` values.
#[target_feature(enable = "avx512f")]
unsafe fn values_rows<const ROWS: usize>(
    probs: &[f32],
    stride: usize,
    values: &[f32],
    d: usize,
    visible: usize,
    out: &mut [f32],
) {
    // Thirty-two features per pass in a block (each broadcast probability then feeds two
    // multiply-adds), up to sixty-four for a single row.
    let widest = if ROWS == 1 { 4 } else { 2 };
    in_runs(d.div_ceil(16), widest, |u, n| {
        let args = (probs, stride, values, d, visible, 16 * u, &mut *out);
        match n {
            4 => values_pass::<4, ROWS>(args),
            2 => values_pass::<2, ROWS>(args),
            _ => values_pass::<1, ROWS>(args),
        }
    });
}

/// Features `f0..f0 + 16·N` (masked past `d`) of each of `ROWS` rows.
///
/// Safety: as [`values_rows`], with `f0 < d`.
#[inline(always)]
unsafe fn values_pass<const N: usize, const ROWS: usize>(
    (probs, stride, values, d, visible, f0, out): (
        &[f32],
        usize,
        &[f32],
        usize,
        usize,
        usize,
        &mut [f32],
    ),
) {
    let masks: [__mmask16; N] =
        std::array::from_fn(|i| ((1u32 << d.saturating_sub(f0 + 16 * i).min(16)) - 1) as __mmask16);
    let mut acc = [[_mm512_setzero_ps(); N]; ROWS];
    for j in 0..visible {
        let v: [__m512; N] = std::array::from_fn(|i| {
            _mm512_maskz_loadu_ps(masks[i], values.as_ptr().add(j * d + f0 + 16 * i))
        });
        for (r, a) in acc.iter_mut().enumerate() {
            let p = _mm512_set1_ps(*probs.get_unchecked(r * stride + j));
            for i in 0..N {
                a[i] = _mm512_fmadd_ps(p, v[i], a[i]);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        for i in 0..N {
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(r * d + f0 + 16 * i), masks[i], a[i]);
        }
    }
}

/// [`crate::softmax::log_softmax_row`] on a vector kernel `kind` this CPU supports.
pub(crate) fn log_softmax(
    kind: KernelKind,
    logits: &[f32],
    out: &mut [f32],
) -> Result<crate::Distribution, crate::KernelError> {
    if kind == KernelKind::Avx512Vnni && avx512_supported() {
        // SAFETY: the CPU has the features (checked above); the body is safe Rust.
        return unsafe { log_softmax_avx512(logits, out) };
    }
    assert!(avx2_supported(), "the AVX2 path needs a CPU that has it");
    // SAFETY: as above, for AVX2.
    unsafe { avx2::log_softmax(logits, out) }
}

#[target_feature(enable = "avx512f")]
fn log_softmax_avx512(
    logits: &[f32],
    out: &mut [f32],
) -> Result<crate::Distribution, crate::KernelError> {
    crate::softmax::log_softmax_row(logits, out)
}

/// `out = silu(gate) · up`, sixteen lanes at a time; the exponential is
/// [`crate::rows::exp`]'s, with fused multiply-adds.
///
/// Safety: AVX-512 F; the three slices have one length, a multiple of 16.
#[target_feature(enable = "avx512f")]
unsafe fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let one = _mm512_set1_ps(1.0);
    for i in (0..out.len()).step_by(16) {
        let g = _mm512_loadu_ps(gate.as_ptr().add(i));
        let u = _mm512_loadu_ps(up.as_ptr().add(i));
        let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        let silu = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_mul_ps(silu, u));
    }
}

#[target_feature(enable = "avx512f")]
fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-87.0)),
        _mm512_set1_ps(88.0),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_TAYLOR[0]);
    for c in &EXP_TAYLOR[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
    }
    let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    _mm512_mul_ps(p, _mm512_castsi512_ps(bits))
}

/// Quantizes a row as [`crate::rows::quantize_row`] does, to the same bytes.
///
/// Safety: AVX-512 F and BW; `x` and `q` hold the same number of values, a multiple of
/// 16, and `d` one scale per group of them.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize(x: &[f32], q: &mut [u8], d: &mut [f32]) -> bool {
    let zero = _mm512_setzero_ps();
    let mut bad: __mmask16 = 0;
    for (g, scale) in d.iter_mut().enumerate() {
        let range = g * GROUP..((g + 1) * GROUP).min(x.len());
        let mut vmax = zero;
        for i in range.clone().step_by(16) {
            let v = _mm512_loadu_ps(x.as_ptr().add(i));
            vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
            // `v · 0 == 0` fails exactly for NaN and infinities.
            bad |= !_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_mul_ps(v, zero), zero);
        }
        let amax = _mm512_reduce_max_ps(vmax);
        *scale = amax / 127.0;
        let inv = _mm512_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
        for i in range.step_by(16) {
            let v = _mm512_mul_ps(_mm512_loadu_ps(x.as_ptr().add(i)), inv);
            let n =
                _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            let n = _mm512_min_epi32(
                _mm512_max_epi32(n, _mm512_set1_epi32(-127)),
                _mm512_set1_epi32(127),
            );
            let bytes = _mm512_cvtepi32_epi8(_mm512_add_epi32(n, _mm512_set1_epi32(128)));
            _mm_storeu_si128(q.as_mut_ptr().add(i) as *mut __m128i, bytes);
        }
    }
    bad == 0
}

/// One panel's weights over one slice of activation groups, as a tile reads them.
struct SliceWeights {
    /// The slice's first block: [`PANEL_BLOCK_BYTES`] signed bytes per block.
    qs: *const u8,
    /// `Q8_0` and `Q6_K`: the slice's first block, [`PANEL`] scales per block (`Q8_0`) or
    /// per half block (`Q6_K`); null for `Q4_K`.
    scales: *const f32,
    /// `Q4_K`: the slice's first block, [`PANEL`] scale factors then [`PANEL`] minimum
    /// factors per block (null for `Q8_0`).
    factors: *const u8,
    /// `Q4_K`: the slice's first group, [`PANEL`] `d` then [`PANEL`] `dmin` per group.
    super_scales: *const f32,
    /// The slice's first group: [`PANEL`] offsets per group.
    offsets: *const f32,
    /// The slice's groups.
    groups: Range<usize>,
    /// Blocks in a whole row (the last group may be partial).
    blocks: usize,
    /// The slice's first block as it lies in the packed matrix (for an unpacked `Q4_K`
    /// slice, its nibbles, not `qs`), and its bytes per block there.
    stored_qs: *const u8,
    stored_block_bytes: usize,
    /// Bytes ahead of `stored_qs` and of the scales to ask the caches for while the first
    /// row tile runs; zero for none.
    prefetch_qs: usize,
    prefetch_scales: usize,
}

impl SliceWeights {
    /// Asks for block `rel` of the next slice (the same panel's next groups, or the next
    /// panel's first) and its scales to come into L2. The first row tile of a slice calls
    /// this while the other row tiles work from L1: otherwise every slice starts with a
    /// stall on memory. `mins` and `scales_per_block` say which scales the format has.
    ///
    /// A prefetch never faults, so an address past the end of the weights is harmless;
    /// `wrapping_add` keeps it defined.
    #[inline(always)]
    fn prefetch_ahead(&self, rel: usize, mins: bool, scales_per_block: usize) {
        if self.prefetch_qs == 0 {
            return;
        }
        let ahead = self
            .stored_qs
            .wrapping_add(rel * self.stored_block_bytes + self.prefetch_qs);
        // SAFETY: a prefetch reads nothing and never faults (SSE, on every x86-64 CPU).
        unsafe {
            for line in (0..self.stored_block_bytes).step_by(64) {
                _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(line) as *const i8);
            }
        }
        let (scales_here, scale_bytes) = if mins {
            (
                self.factors.wrapping_add(rel * 2 * PANEL) as *const i8,
                2 * PANEL,
            )
        } else {
            let per_block = scales_per_block * PANEL;
            (
                self.scales.wrapping_add(rel * per_block) as *const i8,
                4 * per_block,
            )
        };
        let scales_ahead = scales_here.wrapping_add(self.prefetch_scales);
        // SAFETY: as above.
        unsafe {
            for line in (0..scale_bytes).step_by(64) {
                _mm_prefetch::<_MM_HINT_T1>(scales_ahead.wrapping_add(line));
            }
        }
    }
}

/// Computes the output columns of `panels` for every row of `x` on `kind`, a vector kernel
/// this CPU supports; `sums` are the rows' block sums for a `Q4_K` weight (see
/// [`QuantizedRows::block_sums`]).
pub(crate) fn panels(
    kind: KernelKind,
    w: &PackedMatrix,
    x: &QuantizedRows,
    sums: &[f32],
    panels: Range<usize>,
    out: &SharedOut,
) {
    let wide = kind == KernelKind::Avx512Vnni;
    assert!(
        kind != KernelKind::Portable && kind.supported(),
        "the {kind:?} kernel needs a CPU that has it"
    );
    let vnni = kind == KernelKind::AvxVnni;
    let tile_rows = if wide { TILE_ROWS } else { avx2::TILE_ROWS };
    assert!(x.k == w.k && panels.end <= w.panels);
    assert!(x.q.len() == x.m * x.k && x.d.len() == x.m * w.groups());
    let q4k = w.format == PackedFormat::Q4K;
    let scales_per_block = w.format.scales_per_block();
    assert!(
        !q4k || (sums.len() == x.m * w.blocks
            && w.factors.len() == w.panels * w.blocks * 2 * PANEL
            && w.super_scales.len() == w.panels * w.groups() * 2 * PANEL)
    );
    let groups = w.groups();
    let blocks_per_group = GROUP / BLOCK;
    // `Q4_K` nibbles are unpacked a slice at a time into bytes that every row tile reads.
    // A single row tile per slice (a decode step) unpacks in registers instead: nothing
    // would share the unpacked bytes.
    let in_register = q4k && x.m <= tile_rows;
    let mut unpacked = if q4k && !in_register {
        vec![0u8; SLICE_GROUPS * blocks_per_group * PANEL_BLOCK_BYTES]
    } else {
        Vec::new()
    };
    for p in panels {
        // The panel's weights for a slice of groups stay in L1 while every row tile
        // passes over them; the first slice stores, later ones add.
        for first in (0..groups).step_by(SLICE_GROUPS) {
            let slice = first..(first + SLICE_GROUPS).min(groups);
            let b0 = first * blocks_per_group;
            let slice_blocks = (slice.end * blocks_per_group).min(w.blocks) - b0;
            let at = p * w.blocks + b0;
            let slice_weights = if q4k {
                let bytes = PANEL_BLOCK_BYTES / 2;
                let packed = &w.qs[at * bytes..(at + slice_blocks) * bytes];
                let qs = if in_register {
                    packed.as_ptr()
                } else {
                    // SAFETY: the CPU has the features (asserted above); `unpacked` holds a
                    // whole slice's bytes, twice the packed slice's.
                    unsafe {
                        if wide {
                            unpack_nibbles(packed, &mut unpacked)
                        } else {
                            avx2::unpack_nibbles(packed, &mut unpacked)
                        }
                    };
                    unpacked.as_ptr()
                };
                SliceWeights {
                    qs,
                    stored_qs: packed.as_ptr(),
                    stored_block_bytes: bytes,
                    scales: std::ptr::null(),
                    factors: w.factors[at * 2 * PANEL..].as_ptr(),
                    super_scales: w.super_scales[(p * groups + first) * 2 * PANEL..].as_ptr(),
                    offsets: w.offsets[(p * groups + first) * PANEL..].as_ptr(),
                    groups: slice.clone(),
                    blocks: w.blocks,
                    prefetch_qs: slice_blocks * bytes,
                    prefetch_scales: slice_blocks * 2 * PANEL,
                }
            } else {
                SliceWeights {
                    qs: w.qs[at * PANEL_BLOCK_BYTES..].as_ptr(),
                    stored_qs: w.qs[at * PANEL_BLOCK_BYTES..].as_ptr(),
                    stored_block_bytes: PANEL_BLOCK_BYTES,
                    scales: w.scales[at * scales_per_block * PANEL..].as_ptr(),
                    factors: std::ptr::null(),
                    super_scales: std::ptr::null(),
                    offsets: w.offsets[(p * groups + first) * PANEL..].as_ptr(),
                    groups: slice.clone(),
                    blocks: w.blocks,
                    prefetch_qs: slice_blocks * PANEL_BLOCK_BYTES,
                    prefetch_scales: slice_blocks * scales_per_block * PANEL * 4,
                }
            };
            let mut r0 = 0;
            while r0 < x.m {
                let rows = (x.m - r0).min(tile_rows);
                let args = (&slice_weights, x, sums, r0, p, w.n, out, r0 == 0);
                // SAFETY: the CPU has the features (asserted above); the shapes of `w`, `x`,
                // `sums` and `out` were checked against each other, so every pointer the
                // tile forms is in bounds (see `tile`).
                macro_rules! by_rows {
                    ($mins:literal, $nibbles:literal, $halves:literal) => {
                        match rows {
                            6 => tile::<6, $mins, $nibbles, $halves>(args),
                            5 => tile::<5, $mins, $nibbles, $halves>(args),
                            4 => tile::<4, $mins, $nibbles, $halves>(args),
                            3 => tile::<3, $mins, $nibbles, $halves>(args),
                            2 => tile::<2, $mins, $nibbles, $halves>(args),
                            _ => tile::<1, $mins, $nibbles, $halves>(args),
                        }
                    };
                }
                unsafe {
                    match (wide, w.format, in_register) {
                        (true, PackedFormat::Q8_0, _) => by_rows!(false, false, false),
                        (true, PackedFormat::Q6K, _) => by_rows!(false, false, true),
                        (true, PackedFormat::Q4K, false) => by_rows!(true, false, false),
                        (true, PackedFormat::Q4K, true) => by_rows!(true, true, false),
                        (false, format, _) => avx2::tile_for(format, in_register, vnni, rows, args),
                    }
                }
                r0 += rows;
            }
        }
    }
}

/// Unpacks a slice of `Q4_K` nibbles: 64 packed bytes become two 64-byte chunks (the low
/// nibbles, then the high ones), the layout `pack.rs` describes. The previous slice's
/// first row tile has already asked for these bytes (see `tile`).
///
/// Safety: AVX-512 F and BW; `out` holds at least twice `packed.len()` bytes, and
/// `packed.len()` is a multiple of 64.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn unpack_nibbles(packed: &[u8], out: &mut [u8]) {
    assert!(packed.len().is_multiple_of(64) && out.len() >= 2 * packed.len());
    let low = _mm512_set1_epi8(0x0F);
    for (c, chunk) in packed.chunks_exact(64).enumerate() {
        let v = _mm512_loadu_si512(chunk.as_ptr() as *const __m512i);
        let dst = out.as_mut_ptr().add(c * 128);
        _mm512_storeu_si512(dst as *mut __m512i, _mm512_and_si512(v, low));
        _mm512_storeu_si512(
            dst.add(64) as *mut __m512i,
            _mm512_and_si512(_mm512_srli_epi16::<4>(v), low),
        );
    }
}

/// Sixteen 6-bit `Q4_K` factors (bytes) as f32.
///
/// Safety: AVX-512 F; `at` points to sixteen readable bytes.
#[target_feature(enable = "avx512f")]
unsafe fn factors16(at: *const u8) -> __m512 {
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(at as *const __m128i)))
}

/// A tile's work: the slice's weights, the rows, their block sums (`Q4_K`), the first row,
/// the panel, the weight's row count, the output, and whether to prefetch.
type TileArgs<'a> = (
    &'a SliceWeights,
    &'a QuantizedRows,
    &'a [f32],
    usize,
    usize,
    usize,
    &'a SharedOut,
    bool,
);

/// One tile: rows `r0..r0 + R` of `x` against panel `p`, over the slice's groups; the
/// output is stored when the slice starts at group 0, else added to. `MINS` subtracts the
/// `Q4_K` minima's term; `NIBBLES` reads the weights packed (half a block's bytes) and
/// unpacks them in registers; `HALVES` scales each half block on its own (`Q6_K`).
///
/// Safety: the CPU has AVX-512 F, BW and VNNI; the slice's pointers cover its groups'
/// blocks (scales for `Q8_0`, two a block when `HALVES`, factors and super-block scales when
/// `MINS`); `r0 + R <= x.m`; `x` has `blocks · BLOCK` values and
/// one scale per group per row; `sums` has `blocks` values per row when `MINS`; `p` is a
/// panel of an `n`-row weight and `out` has `n` columns.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile<const R: usize, const MINS: bool, const NIBBLES: bool, const HALVES: bool>(
    (w, x, sums, r0, p, n, out, prefetch): TileArgs<'_>,
) {
    let groups = x.d.len() / x.m;
    let blocks_per_group = GROUP / BLOCK;
    let b0 = w.groups.start * blocks_per_group;
    let block_bytes = if NIBBLES {
        PANEL_BLOCK_BYTES / 2
    } else {
        PANEL_BLOCK_BYTES
    };
    // `Q8_0` and `Q6_K` scales of one block: one or two vectors' worth per column pair.
    let scales_per_block = if HALVES { 2 } else { 1 };
    let low_nibbles = _mm512_set1_epi8(0x0F);
    // SAFETY (all pointer arithmetic below): the slice's blocks, scales, minima and
    // offsets lie at these offsets (see `panels`); row `r0 + r` of `x` has `x.k` bytes and
    // every block read stays below `blocks · BLOCK = x.k`.
    let rows: [*const u8; R] = std::array::from_fn(|r| x.q.as_ptr().add((r0 + r) * x.k));
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let accumulate = w.groups.start > 0;
    for g in w.groups.clone() {
        let mut group_sum = [[_mm512_setzero_ps(); 2]; R];
        let first = g * blocks_per_group;
        // `Q4_K`: the group's d (two vectors), then its dmin (two vectors).
        let sup: [__m512; 4] = if MINS {
            let at = w.super_scales.add((g - w.groups.start) * 2 * PANEL);
            std::array::from_fn(|i| _mm512_loadu_ps(at.add(16 * i)))
        } else {
            [_mm512_setzero_ps(); 4]
        };
        for b in first..(first + blocks_per_group).min(w.blocks) {
            let rel = b - b0;
            let mut isum = [[_mm512_setzero_si512(); 2]; R];
            let wb = w.qs.add(rel * block_bytes);
            if prefetch {
                w.prefetch_ahead(rel, MINS, scales_per_block);
            }
            for s in 0..BLOCK / 4 {
                let (w0, w1) = if NIBBLES {
                    let v = _mm512_loadu_si512(wb.add(s * 64) as *const __m512i);
                    (
                        _mm512_and_si512(v, low_nibbles),
                        _mm512_and_si512(_mm512_srli_epi16::<4>(v), low_nibbles),
                    )
                } else {
                    (
                        _mm512_loadu_si512(wb.add(s * PANEL * 4) as *const __m512i),
                        _mm512_loadu_si512(wb.add(s * PANEL * 4 + 64) as *const __m512i),
                    )
                };
                for r in 0..R {
                    let word = (rows[r].add(b * BLOCK + s * 4) as *const i32).read_unaligned();
                    let a = _mm512_set1_epi32(word);
                    isum[r][0] = _mm512_dpbusd_epi32(isum[r][0], a, w0);
                    isum[r][1] = _mm512_dpbusd_epi32(isum[r][1], a, w1);
                }
                if HALVES && s == BLOCK / 8 - 1 {
                    // The first half block's own scales, then a fresh sum for the second.
                    let at = w.scales.add(rel * 2 * PANEL);
                    let (d0, d1) = (_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16)));
                    for r in 0..R {
                        group_sum[r][0] =
                            _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][0]), d0, group_sum[r][0]);
                        group_sum[r][1] =
                            _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][1]), d1, group_sum[r][1]);
                        isum[r] = [_mm512_setzero_si512(); 2];
                    }
                }
            }
            let (d0, d1) = if MINS {
                let f = w.factors.add(rel * 2 * PANEL);
                (
                    _mm512_mul_ps(factors16(f), sup[0]),
                    _mm512_mul_ps(factors16(f.add(16)), sup[1]),
                )
            } else {
                // `Q6_K`: the second half block's scales follow the first's.
                let at = w
                    .scales
                    .add((rel * scales_per_block + scales_per_block - 1) * PANEL);
                (_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16)))
            };
            for r in 0..R {
                group_sum[r][0] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][0]), d0, group_sum[r][0]);
                group_sum[r][1] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][1]), d1, group_sum[r][1]);
            }
            if MINS {
                let f = w.factors.add(rel * 2 * PANEL + PANEL);
                let m0 = _mm512_mul_ps(factors16(f), sup[2]);
                let m1 = _mm512_mul_ps(factors16(f.add(16)), sup[3]);
                for (r, sum) in group_sum.iter_mut().enumerate() {
                    let s = _mm512_set1_ps(*sums.get_unchecked((r0 + r) * w.blocks + b));
                    sum[0] = _mm512_fnmadd_ps(s, m0, sum[0]);
                    sum[1] = _mm512_fnmadd_ps(s, m1, sum[1]);
                }
            }
        }
        let o0 = _mm512_loadu_ps(w.offsets.add((g - w.groups.start) * PANEL));
        let o1 = _mm512_loadu_ps(w.offsets.add((g - w.groups.start) * PANEL + 16));
        for r in 0..R {
            let da = _mm512_set1_ps(x.d[(r0 + r) * groups + g]);
            acc[r][0] = _mm512_fmadd_ps(_mm512_sub_ps(group_sum[r][0], o0), da, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(_mm512_sub_ps(group_sum[r][1], o1), da, acc[r][1]);
        }
    }
    let col = p * PANEL;
    let width = PANEL.min(n - col);
    let mask = |lanes: usize| -> __mmask16 { ((1u32 << lanes.min(16)) - 1) as __mmask16 };
    for (r, row) in acc.iter().enumerate() {
        let dst = out.at(r0 + r, col);
        // SAFETY: `width` columns from `col` lie inside row `r0 + r` of the output, and
        // this thread owns them (the panel is its own).
        let (m0, m1) = (mask(width), mask(width.saturating_sub(16)));
        let (mut v0, mut v1) = (row[0], row[1]);
        if accumulate {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, dst));
            if width > 16 {
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, dst.add(16)));
            }
        }
        _mm512_mask_storeu_ps(dst, m0, v0);
        if width > 16 {
            _mm512_mask_storeu_ps(dst.add(16), m1, v1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 - 1001.0) / 97.0)
            .collect()
    }

    /// Every row kernel this CPU has gives the portable bytes and scales, for plain,
    /// SwiGLU and RMS-normalised rows.
    #[test]
    fn vector_rows_match_the_portable_ones() {
        let k = 608; // two full groups and a partial one
        let weight = values(k, 9);
        for (source, len) in [(0, k), (1, 2 * k), (2, k)] {
            let x = values(2 * len, source);
            let src = || match source {
                0 => Source::Plain(&x),
                1 => Source::SwiGlu(&x),
                _ => Source::RmsNorm {
                    x: &x,
                    weight: &weight,
                    eps: 1e-5,
                },
            };
            let (mut want_q, mut want_d) = (vec![0u8; 2 * k], vec![0f32; 6]);
            assert!(crate::process_rows_on(
                KernelKind::Portable,
                src(),
                0..2,
                k,
                &mut want_q,
                &mut want_d
            ));
            for kind in KernelKind::ALL.into_iter().filter(|k| k.supported()) {
                let (mut q, mut d) = (vec![0u8; 2 * k], vec![0f32; 6]);
                assert!(crate::process_rows_on(kind, src(), 0..2, k, &mut q, &mut d));
                assert_eq!(q, want_q, "{kind:?}, source {source}");
                assert!(
                    d.iter()
                        .zip(&want_d)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{kind:?}, source {source}: {d:?} vs {want_d:?}"
                );
            }
        }
        let mut x = values(k, 3);
        x[400] = f32::NAN;
        for kind in KernelKind::ALL.into_iter().filter(|k| k.supported()) {
            let (mut q, mut d) = (vec![0u8; k], vec![0f32; 3]);
            assert!(
                !crate::process_rows_on(kind, Source::Plain(&x), 0..1, k, &mut q, &mut d),
                "{kind:?}"
            );
        }
    }
}
