//! The kernels on AVX2 with FMA: the vector unit of most x86 desktops and laptops (every
//! Intel core since 2013, every AMD Zen), which lack AVX-512.
//!
//! The results are the AVX-512 kernels' bits. Integer block sums are exact however they
//! are formed, and the float steps per output column (scale, fused multiply-add, the
//! slice sums) are the same operations in the same order, eight columns per instruction
//! instead of sixteen. Without VNNI the int8 products go through `vpmaddubsw`, whose
//! 16-bit pair sums must not saturate: `Q4_K` (0..15) and `Q6_K` (−32..31) weights times
//! the offset activations (1..255) fit, and `Q8_0` weights are multiplied by the signed
//! activations instead (the sign moved onto the activation, `|w| ≤ 128`), with the offset's
//! `128 · Σ w` added back per block. With AVX-VNNI (`vpdpbusd` on 256 bits) every format
//! takes the AVX-512 kernel's single instruction.
//!
//! The row and attention arithmetic is the portable code compiled for AVX2: written over
//! sixteen-lane arrays with fused multiply-adds, it vectorizes here to the same bits.

use core::arch::x86_64::*;

use super::{SliceWeights, TileArgs};
use crate::pack::{PackedFormat, PANEL_BLOCK_BYTES};
use crate::rows::{PortableOps, Source};
use crate::{BLOCK, GROUP};

/// Activation rows per tile: each row keeps two vectors of integer sums in flight, and
/// with the weights, their absolute values and the column sums that fills the sixteen
/// registers.
pub(super) const TILE_ROWS: usize = 4;

/// Columns per pass of a tile: half a panel, two 8-lane vectors.
const HALF: usize = 8 * 2;

/// [`crate::rows::process_row`] compiled for AVX2.
///
/// Safety: the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn process_row(
    source: Source<'_>,
    r: usize,
    k: usize,
    scratch: &mut Vec<f32>,
    q: &mut [u8],
    d: &mut [f32],
) -> bool {
    crate::rows::process_row(&PortableOps, source, r, k, scratch, q, d)
}

/// [`crate::attention::attend_head`] compiled for AVX2.
///
/// Safety: the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn attend_head(
    call: &crate::attention::Call<'_>,
    h: usize,
    space: &mut crate::attention::Workspace,
) {
    crate::attention::attend_head(&PortableOps, call, h, space)
}

/// [`crate::softmax::log_softmax_row`] compiled for AVX2.
///
/// Safety: the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn log_softmax(
    logits: &[f32],
    out: &mut [f32],
) -> Result<crate::Distribution, crate::KernelError> {
    crate::softmax::log_softmax_row(logits, out)
}

/// Unpacks a slice of `Q4_K` nibbles as `super::unpack_nibbles` does.
///
/// Safety: AVX2; `out` holds at least twice `packed.len()` bytes, and `packed.len()` is a
/// multiple of 64.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn unpack_nibbles(packed: &[u8], out: &mut [u8]) {
    assert!(packed.len().is_multiple_of(64) && out.len() >= 2 * packed.len());
    let low = _mm256_set1_epi8(0x0F);
    for (c, chunk) in packed.chunks_exact(64).enumerate() {
        let dst = out.as_mut_ptr().add(c * 128);
        for half in 0..2 {
            let v = _mm256_loadu_si256(chunk.as_ptr().add(32 * half) as *const __m256i);
            _mm256_storeu_si256(dst.add(32 * half) as *mut __m256i, _mm256_and_si256(v, low));
            _mm256_storeu_si256(
                dst.add(64 + 32 * half) as *mut __m256i,
                _mm256_and_si256(_mm256_srli_epi16::<4>(v), low),
            );
        }
    }
}

/// Runs the tile for `format` on `rows` rows (at most [`TILE_ROWS`]).
///
/// Safety: the CPU has AVX2 and FMA, and AVX-VNNI when `vnni`; `args` as `super::tile`
/// requires, with `rows` rows from its first.
pub(super) unsafe fn tile_for(
    format: PackedFormat,
    nibbles: bool,
    vnni: bool,
    rows: usize,
    args: TileArgs<'_>,
) {
    macro_rules! by_rows {
        ($entry:ident, $mins:literal, $nibbles:literal, $halves:literal, $signed:literal) => {
            match rows {
                4 => $entry::<4, $mins, $nibbles, $halves, $signed>(args),
                3 => $entry::<3, $mins, $nibbles, $halves, $signed>(args),
                2 => $entry::<2, $mins, $nibbles, $halves, $signed>(args),
                _ => $entry::<1, $mins, $nibbles, $halves, $signed>(args),
            }
        };
    }
    macro_rules! by_format {
        ($entry:ident, $signed:literal) => {
            match (format, nibbles) {
                (PackedFormat::Q8_0, _) => by_rows!($entry, false, false, false, $signed),
                (PackedFormat::Q6K, _) => by_rows!($entry, false, false, true, false),
                (PackedFormat::Q4K, false) => by_rows!($entry, true, false, false, false),
                (PackedFormat::Q4K, true) => by_rows!($entry, true, true, false, false),
            }
        };
    }
    if vnni {
        by_format!(tile_vnni, false)
    } else {
        by_format!(tile_plain, true)
    }
}

/// [`tile`] with `vpmaddubsw` products. `SIGNED` is for `Q8_0` weights (see the module
/// documentation).
///
/// Safety: as [`tile`], on a CPU with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_plain<
    const R: usize,
    const MINS: bool,
    const NIBBLES: bool,
    const HALVES: bool,
    const SIGNED: bool,
>(
    args: TileArgs<'_>,
) {
    tile::<R, MINS, NIBBLES, HALVES, SIGNED, false>(args)
}

/// [`tile`] with AVX-VNNI products, which multiply the offset bytes of every format
/// directly (`SIGNED` is there for [`tile_for`]'s uniform calls, and ignored).
///
/// Safety: as [`tile`], on a CPU with AVX2, FMA and AVX-VNNI.
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn tile_vnni<
    const R: usize,
    const MINS: bool,
    const NIBBLES: bool,
    const HALVES: bool,
    const SIGNED: bool,
>(
    args: TileArgs<'_>,
) {
    tile::<R, MINS, NIBBLES, HALVES, false, true>(args)
}

/// Adds the products of one broadcast activation word (four offset bytes) with eight
/// columns' four weights each to `acc`, as `vpdpbusd` does.
///
/// Safety: AVX2 (and AVX-VNNI when `VNNI`); for `SIGNED`, `w_abs` is `|w|` and the
/// activation bytes are in 1..=255.
#[inline(always)]
unsafe fn dot<const SIGNED: bool, const VNNI: bool>(
    acc: __m256i,
    word: i32,
    w: __m256i,
    w_abs: __m256i,
) -> __m256i {
    if VNNI {
        return _mm256_dpbusd_avx_epi32(acc, _mm256_set1_epi32(word), w);
    }
    let ones = _mm256_set1_epi16(1);
    let pairs = if SIGNED {
        // The activation without its offset (a byte's top bit flipped), given the weight's
        // sign: |w| · ±a, at most 128 · 127 per product.
        let a = _mm256_set1_epi32(word ^ 0x8080_8080_u32 as i32);
        _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(a, w))
    } else {
        _mm256_maddubs_epi16(_mm256_set1_epi32(word), w)
    };
    _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones))
}

/// Eight 6-bit `Q4_K` factors (bytes) as f32.
///
/// Safety: AVX2; `at` points to eight readable bytes.
#[inline(always)]
unsafe fn factors8(at: *const u8) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(at as *const __m128i)))
}

/// `super::tile` on eight-lane vectors: rows `r0..r0 + R` against panel `p` over the
/// slice's groups. Each block is taken half a panel (sixteen columns) at a time: a half's
/// sums fill the registers, and both halves read the block while it is in L1.
///
/// Safety: as `super::tile`, on a CPU with AVX2 and FMA (and AVX-VNNI when `VNNI`).
#[inline(always)]
unsafe fn tile<
    const R: usize,
    const MINS: bool,
    const NIBBLES: bool,
    const HALVES: bool,
    const SIGNED: bool,
    const VNNI: bool,
>(
    (w, x, sums, r0, p, n, out, prefetch): TileArgs<'_>,
) {
    let w: &SliceWeights = w;
    let groups = x.d.len() / x.m;
    let blocks_per_group = GROUP / BLOCK;
    let b0 = w.groups.start * blocks_per_group;
    let block_bytes = if NIBBLES {
        PANEL_BLOCK_BYTES / 2
    } else {
        PANEL_BLOCK_BYTES
    };
    let low_nibbles = _mm256_set1_epi8(0x0F);
    let one_bytes = _mm256_set1_epi8(1);
    let ones = _mm256_set1_epi16(1);
    let rows: [*const u8; R] = std::array::from_fn(|r| x.q.as_ptr().add((r0 + r) * x.k));
    let accumulate = w.groups.start > 0;
    // Columns past `n` in the last panel are zero weights: a half that holds none of the
    // output's columns is skipped.
    let halves = if p * crate::PANEL + HALF < n { 2 } else { 1 };
    let mut acc = [[[_mm256_setzero_ps(); 2]; R]; 2];
    for g in w.groups.clone() {
        let mut group_sum = [[[_mm256_setzero_ps(); 2]; R]; 2];
        let first = g * blocks_per_group;
        for b in first..(first + blocks_per_group).min(w.blocks) {
            let rel = b - b0;
            let wb = w.qs.add(rel * block_bytes);
            if prefetch {
                w.prefetch_ahead(rel, MINS, if HALVES { 2 } else { 1 });
            }
            for (half, group_sum) in group_sum.iter_mut().enumerate().take(halves) {
                // This half's columns within the panel's per-block vectors.
                let c = HALF * half;
                let mut isum = [[_mm256_setzero_si256(); 2]; R];
                // `SIGNED`: the block's weight sums per column, as 16-bit pair sums (at
                // most 8 · 2 · 128 in magnitude); 128 times their total is the offset's
                // share of each row's sum.
                let mut weight_sum = [_mm256_setzero_si256(); 2];
                for s in 0..BLOCK / 4 {
                    let (w0, w1) = if NIBBLES {
                        let at = wb.add(s * 64);
                        let v0 = _mm256_loadu_si256(at as *const __m256i);
                        let v1 = _mm256_loadu_si256(at.add(32) as *const __m256i);
                        if half == 0 {
                            (
                                _mm256_and_si256(v0, low_nibbles),
                                _mm256_and_si256(v1, low_nibbles),
                            )
                        } else {
                            (
                                _mm256_and_si256(_mm256_srli_epi16::<4>(v0), low_nibbles),
                                _mm256_and_si256(_mm256_srli_epi16::<4>(v1), low_nibbles),
                            )
                        }
                    } else {
                        let at = wb.add(s * crate::PANEL * 4 + 4 * c);
                        (
                            _mm256_loadu_si256(at as *const __m256i),
                            _mm256_loadu_si256(at.add(32) as *const __m256i),
                        )
                    };
                    let (a0, a1) = if SIGNED {
                        for (sum, w) in weight_sum.iter_mut().zip([w0, w1]) {
                            *sum = _mm256_add_epi16(*sum, _mm256_maddubs_epi16(one_bytes, w));
                        }
                        (_mm256_sign_epi8(w0, w0), _mm256_sign_epi8(w1, w1))
                    } else {
                        (w0, w1)
                    };
                    for r in 0..R {
                        let word = (rows[r].add(b * BLOCK + s * 4) as *const i32).read_unaligned();
                        isum[r][0] = dot::<SIGNED, VNNI>(isum[r][0], word, w0, a0);
                        isum[r][1] = dot::<SIGNED, VNNI>(isum[r][1], word, w1, a1);
                    }
                    if HALVES && s == BLOCK / 8 - 1 {
                        let at = w.scales.add(rel * 2 * crate::PANEL + c);
                        let d = [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))];
                        for r in 0..R {
                            for v in 0..2 {
                                group_sum[r][v] = _mm256_fmadd_ps(
                                    _mm256_cvtepi32_ps(isum[r][v]),
                                    d[v],
                                    group_sum[r][v],
                                );
                            }
                            isum[r] = [_mm256_setzero_si256(); 2];
                        }
                    }
                }
                if SIGNED {
                    let offset =
                        weight_sum.map(|sum| _mm256_slli_epi32::<7>(_mm256_madd_epi16(sum, ones)));
                    for sum in isum.iter_mut() {
                        sum[0] = _mm256_add_epi32(sum[0], offset[0]);
                        sum[1] = _mm256_add_epi32(sum[1], offset[1]);
                    }
                }
                let d = if MINS {
                    let f = w.factors.add(rel * 2 * crate::PANEL + c);
                    let sup = w
                        .super_scales
                        .add((g - w.groups.start) * 2 * crate::PANEL + c);
                    [
                        _mm256_mul_ps(factors8(f), _mm256_loadu_ps(sup)),
                        _mm256_mul_ps(factors8(f.add(8)), _mm256_loadu_ps(sup.add(8))),
                    ]
                } else {
                    let per_block = if HALVES { 2 } else { 1 };
                    let at = w
                        .scales
                        .add((rel * per_block + per_block - 1) * crate::PANEL + c);
                    [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))]
                };
                for r in 0..R {
                    for v in 0..2 {
                        group_sum[r][v] =
                            _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][v]), d[v], group_sum[r][v]);
                    }
                }
                if MINS {
                    let f = w.factors.add(rel * 2 * crate::PANEL + crate::PANEL + c);
                    let sup = w
                        .super_scales
                        .add((g - w.groups.start) * 2 * crate::PANEL + crate::PANEL + c);
                    let m = [
                        _mm256_mul_ps(factors8(f), _mm256_loadu_ps(sup)),
                        _mm256_mul_ps(factors8(f.add(8)), _mm256_loadu_ps(sup.add(8))),
                    ];
                    for (r, sum) in group_sum.iter_mut().enumerate() {
                        let s = _mm256_set1_ps(*sums.get_unchecked((r0 + r) * w.blocks + b));
                        for v in 0..2 {
                            sum[v] = _mm256_fnmadd_ps(s, m[v], sum[v]);
                        }
                    }
                }
            }
        }
        for (half, (acc, group_sum)) in acc.iter_mut().zip(&group_sum).enumerate().take(halves) {
            let at = w
                .offsets
                .add((g - w.groups.start) * crate::PANEL + HALF * half);
            let o = [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))];
            for r in 0..R {
                let da = _mm256_set1_ps(x.d[(r0 + r) * groups + g]);
                for v in 0..2 {
                    acc[r][v] =
                        _mm256_fmadd_ps(_mm256_sub_ps(group_sum[r][v], o[v]), da, acc[r][v]);
                }
            }
        }
    }
    for (half, acc) in acc.iter().enumerate().take(halves) {
        let col = p * crate::PANEL + HALF * half;
        let width = HALF.min(n - col);
        for (r, row) in acc.iter().enumerate() {
            // SAFETY: `width` columns from `col` lie inside row `r0 + r` of the output, and
            // this thread owns them (the panel is its own).
            let dst = out.at(r0 + r, col);
            if width == HALF {
                let (mut v0, mut v1) = (row[0], row[1]);
                if accumulate {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(dst));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(dst.add(8)));
                }
                _mm256_storeu_ps(dst, v0);
                _mm256_storeu_ps(dst.add(8), v1);
            } else {
                let mut values = [0f32; HALF];
                _mm256_storeu_ps(values.as_mut_ptr(), row[0]);
                _mm256_storeu_ps(values.as_mut_ptr().add(8), row[1]);
                for (j, &v) in values.iter().enumerate().take(width) {
                    let at = dst.add(j);
                    *at = if accumulate { v + *at } else { v };
                }
            }
        }
    }
}
