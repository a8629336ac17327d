//! The GEMM in plain Rust: the same integer arithmetic as the vector kernel, one output
//! at a time. It serves CPUs without AVX-512 VNNI and is the reference in tests.

use std::ops::Range;

use crate::out::SharedOut;
use crate::pack::{Q8Matrix, PANEL_BLOCK_BYTES};
use crate::rows::QuantizedRows;
use crate::{BLOCK, GROUP, PANEL};

/// Computes the output columns of `panels` for every row of `x`.
pub(crate) fn panels(w: &Q8Matrix, x: &QuantizedRows, panels: Range<usize>, out: &SharedOut) {
    let groups = w.groups();
    let blocks_per_group = GROUP / BLOCK;
    let mut values = [0f32; PANEL];
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
                        let base = (p * w.blocks + b) * PANEL_BLOCK_BYTES;
                        let mut isum = 0i32;
                        for i in 0..BLOCK {
                            let q = w.qs[base + (i / 4) * PANEL * 4 + col * 4 + i % 4];
                            isum += a[b * BLOCK + i] as i32 * q as i32;
                        }
                        group_sum += isum as f32 * w.scales[(p * w.blocks + b) * PANEL + col];
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
