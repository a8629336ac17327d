//! The GEMM in plain Rust, one output at a time: the arithmetic every kernel follows
//! (exact integer block sums, then per output the scales applied with fused multiply-adds
//! in a fixed order). It serves CPUs without a vector kernel and is the reference in tests.

use std::ops::Range;

use crate::out::SharedOut;
use crate::pack::{nibble_index, unpacked_index, PackedFormat, PackedMatrix, PANEL_BLOCK_BYTES};
use crate::rows::QuantizedRows;
use crate::{BLOCK, GROUP, PANEL, SLICE_GROUPS};

/// Computes the output columns of `panels` for every row of `x`; `sums` are the rows'
/// block sums for a `Q4_K` weight (see [`QuantizedRows::block_sums`]).
pub(crate) fn panels(
    w: &PackedMatrix,
    x: &QuantizedRows,
    sums: &[f32],
    panels: Range<usize>,
    out: &SharedOut,
) {
    let groups = w.groups();
    let blocks_per_group = GROUP / BLOCK;
    let mut values = [0f32; PANEL];
    let weight = |at: usize, col: usize, i: usize| -> i32 {
        let u = unpacked_index(col, i);
        match w.format {
            PackedFormat::Q8_0 | PackedFormat::Q6K => {
                i32::from(w.qs[at * PANEL_BLOCK_BYTES + u] as i8)
            }
            PackedFormat::Q4K => {
                let (byte, high) = nibble_index(u);
                let packed = w.qs[at * PANEL_BLOCK_BYTES / 2 + byte];
                i32::from(if high { packed >> 4 } else { packed & 0x0F })
            }
        }
    };
    for p in panels {
        let width = PANEL.min(w.n - p * PANEL);
        for r in 0..x.m {
            let a = &x.q[r * x.k..(r + 1) * x.k];
            for (col, value) in values.iter_mut().enumerate().take(width) {
                let mut total = 0f32;
                for first in (0..groups).step_by(SLICE_GROUPS) {
                    // Each slice's groups are summed from zero; the slices' sums are added
                    // in order (see `SLICE_GROUPS`).
                    let mut slice_sum = 0f32;
                    for g in first..(first + SLICE_GROUPS).min(groups) {
                        let mut group_sum = 0f32;
                        let from = g * blocks_per_group;
                        for b in from..(from + blocks_per_group).min(w.blocks) {
                            let at = p * w.blocks + b;
                            let half_sum = |half: Range<usize>| -> f32 {
                                let sum: i32 = half
                                    .map(|i| i32::from(a[b * BLOCK + i]) * weight(at, col, i))
                                    .sum();
                                sum as f32
                            };
                            match w.format {
                                PackedFormat::Q8_0 => {
                                    let scale = w.scales[at * PANEL + col];
                                    group_sum = half_sum(0..BLOCK).mul_add(scale, group_sum);
                                }
                                PackedFormat::Q6K => {
                                    let at = at * 2 * PANEL + col;
                                    let (first, second) = (w.scales[at], w.scales[at + PANEL]);
                                    group_sum = half_sum(0..BLOCK / 2).mul_add(first, group_sum);
                                    group_sum =
                                        half_sum(BLOCK / 2..BLOCK).mul_add(second, group_sum);
                                }
                                PackedFormat::Q4K => {
                                    let sup = (p * groups + g) * 2 * PANEL + col;
                                    let (d, dmin) =
                                        (w.super_scales[sup], w.super_scales[sup + PANEL]);
                                    let f = at * 2 * PANEL + col;
                                    let scale = f32::from(w.factors[f]) * d;
                                    let min = f32::from(w.factors[f + PANEL]) * dmin;
                                    group_sum = half_sum(0..BLOCK).mul_add(scale, group_sum);
                                    group_sum = (-sums[r * w.blocks + b]).mul_add(min, group_sum);
                                }
                            }
                        }
                        let offset = w.offsets[(p * groups + g) * PANEL + col];
                        slice_sum = (group_sum - offset).mul_add(x.d[r * groups + g], slice_sum);
                    }
                    total = if first == 0 {
                        slice_sum
                    } else {
                        slice_sum + total
                    };
                }
                *value = total;
            }
            out.write(r, p * PANEL, &values[..width]);
        }
    }
}
