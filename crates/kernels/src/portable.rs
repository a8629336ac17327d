//! The GEMM in plain Rust: the same integer arithmetic as the vector kernel, one output
//! at a time. It serves CPUs without AVX-512 VNNI and is the reference in tests.

use std::ops::Range;

use crate::out::SharedOut;
use crate::pack::{nibble_index, unpacked_index, PackedFormat, PackedMatrix, PANEL_BLOCK_BYTES};
use crate::rows::QuantizedRows;
use crate::{BLOCK, GROUP, PANEL};

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
                for g in 0..groups {
                    let mut group_sum = 0f32;
                    let first = g * blocks_per_group;
                    for b in first..(first + blocks_per_group).min(w.blocks) {
                        let at = p * w.blocks + b;
                        let half_sum = |half: Range<usize>| -> i32 {
                            half.map(|i| i32::from(a[b * BLOCK + i]) * weight(at, col, i))
                                .sum()
                        };
                        match w.format {
                            PackedFormat::Q8_0 => {
                                let isum = half_sum(0..BLOCK);
                                group_sum += isum as f32 * w.scales[at * PANEL + col];
                            }
                            PackedFormat::Q6K => {
                                let at = at * 2 * PANEL + col;
                                group_sum += half_sum(0..BLOCK / 2) as f32 * w.scales[at];
                                group_sum +=
                                    half_sum(BLOCK / 2..BLOCK) as f32 * w.scales[at + PANEL];
                            }
                            PackedFormat::Q4K => {
                                let sup = (p * groups + g) * 2 * PANEL + col;
                                let (d, dmin) = (w.super_scales[sup], w.super_scales[sup + PANEL]);
                                let f = at * 2 * PANEL + col;
                                let scale = d * f32::from(w.factors[f]);
                                let min = dmin * f32::from(w.factors[f + PANEL]);
                                group_sum += half_sum(0..BLOCK) as f32 * scale;
                                group_sum -= sums[r * w.blocks + b] * min;
                            }
                        }
                    }
                    let offset = w.offsets[(p * groups + g) * PANEL + col];
                    total += (group_sum - offset) * x.d[r * groups + g];
                }
                *value = total;
            }
            out.write(r, p * PANEL, &values[..width]);
        }
    }
}
