//! Causal attention for a block of new rows of one sequence, in one pass per head.
//!
//! Per query row the scores against every visible key, a softmax and the weighted sum of
//! values are computed in place: no score matrix, mask or transposed copy is built, which
//! for the few dozen rows of a scored request costs more than the arithmetic.

use crate::out::SharedOut;
use crate::{KernelError, Parallel};

/// The shapes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; query head `h` reads key head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// New rows (query positions).
    pub rows: usize,
    /// Positions already in the cache before the new rows.
    pub start: usize,
}

impl AttentionShape {
    fn total(&self) -> usize {
        self.start + self.rows
    }
}

/// `out[i, h·d..(h+1)·d] = softmax(scale · q_{h,i} · K_hᵀ over positions ≤ start + i) · V_h`.
///
/// Layouts: `q` is `(heads, rows, head_dim)`; `k` and `v` are
/// `(kv_heads, start + rows, head_dim)`; `out` is `(rows, heads · head_dim)`. Heads are
/// split over `parallel`.
pub fn causal_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    scale: f32,
    out: &mut [f32],
    parallel: &dyn Parallel,
) -> Result<(), KernelError> {
    let AttentionShape {
        heads,
        kv_heads,
        head_dim,
        rows,
        ..
    } = shape;
    let total = shape.total();
    if heads == 0 || kv_heads == 0 || head_dim == 0 || heads % kv_heads != 0 {
        return Err(KernelError::Shape(format!(
            "{heads} query heads over {kv_heads} key heads of {head_dim} values"
        )));
    }
    let lengths = [
        (q.len(), heads * rows * head_dim, "queries"),
        (k.len(), kv_heads * total * head_dim, "keys"),
        (v.len(), kv_heads * total * head_dim, "values"),
        (out.len(), rows * heads * head_dim, "output"),
    ];
    for (got, want, what) in lengths {
        if got != want {
            return Err(KernelError::Shape(format!(
                "{got} {what} where the shape takes {want}"
            )));
        }
    }
    let out = SharedOut::new(out, heads * head_dim);
    parallel.run(heads, &|range| {
        for h in range {
            crate::attend_head(q, k, v, shape, scale, h, &out);
        }
    });
    Ok(())
}

/// One head's rows. Inlined into each CPU's entry point so that it vectorizes there.
#[inline(always)]
pub(crate) fn attend_head(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    scale: f32,
    h: usize,
    out: &SharedOut,
) {
    let (d, total) = (shape.head_dim, shape.total());
    let kv = h / (shape.heads / shape.kv_heads);
    let keys = &k[kv * total * d..(kv + 1) * total * d];
    let values = &v[kv * total * d..(kv + 1) * total * d];
    let mut scores = vec![0f32; total];
    let mut acc = vec![0f32; d];
    for i in 0..shape.rows {
        let query = &q[(h * shape.rows + i) * d..(h * shape.rows + i + 1) * d];
        let visible = shape.start + i + 1;
        let mut max = f32::NEG_INFINITY;
        for (s, key) in scores[..visible].iter_mut().zip(keys.chunks_exact(d)) {
            *s = dot(query, key) * scale;
            max = max.max(*s);
        }
        let mut sum = 0f32;
        for s in &mut scores[..visible] {
            *s = crate::rows::exp(*s - max);
            sum += *s;
        }
        acc.fill(0.0);
        for (&p, value) in scores[..visible].iter().zip(values.chunks_exact(d)) {
            for (a, &x) in acc.iter_mut().zip(value) {
                *a += p * x;
            }
        }
        let inv = 1.0 / sum;
        for a in &mut acc {
            *a *= inv;
        }
        out.write(i, h * d, &acc);
    }
}

/// A dot product with sixteen partial sums, so that it vectorizes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks_a = a.chunks_exact(16);
    let mut chunks_b = b.chunks_exact(16);
    for (x, y) in (&mut chunks_a).zip(&mut chunks_b) {
        for j in 0..16 {
            lanes[j] += x[j] * y[j];
        }
    }
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Serial;

    /// The textbook computation in f64, with an explicit mask.
    fn reference(q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, scale: f32) -> Vec<f64> {
        let (d, total) = (s.head_dim, s.total());
        let mut out = vec![0f64; s.rows * s.heads * d];
        for h in 0..s.heads {
            let kv = h / (s.heads / s.kv_heads);
            for i in 0..s.rows {
                let scores: Vec<f64> = (0..total)
                    .map(|j| {
                        if j > s.start + i {
                            return f64::NEG_INFINITY;
                        }
                        (0..d)
                            .map(|x| {
                                q[(h * s.rows + i) * d + x] as f64
                                    * k[(kv * total + j) * d + x] as f64
                            })
                            .sum::<f64>()
                            * scale as f64
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for x in 0..d {
                    out[i * s.heads * d + h * d + x] = (0..total)
                        .map(|j| e[j] / sum * v[(kv * total + j) * d + x] as f64)
                        .sum();
                }
            }
        }
        out
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 250.0 - 2.0)
            .collect()
    }

    #[test]
    fn matches_the_masked_reference() {
        for (heads, kv_heads, head_dim, rows, start) in [
            (4, 2, 32, 5, 0),
            (6, 3, 20, 3, 4),
            (2, 2, 64, 1, 9),
            (8, 2, 16, 7, 2),
        ] {
            let s = AttentionShape {
                heads,
                kv_heads,
                head_dim,
                rows,
                start,
            };
            let q = data(heads * rows * head_dim, 1);
            let k = data(kv_heads * s.total() * head_dim, 2);
            let v = data(kv_heads * s.total() * head_dim, 3);
            let scale = 1.0 / (head_dim as f32).sqrt();
            let want = reference(&q, &k, &v, s, scale);
            for parallel in [&Serial as &dyn Parallel, &crate::tests::TwoThreads] {
                let mut got = vec![f32::NAN; want.len()];
                causal_attention(&q, &k, &v, s, scale, &mut got, parallel).unwrap();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!((*g as f64 - w).abs() < 1e-5, "{s:?} at {i}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        let s = AttentionShape {
            heads: 3,
            kv_heads: 2,
            head_dim: 4,
            rows: 1,
            start: 0,
        };
        let mut out = vec![0.0; 12];
        assert!(
            causal_attention(&[0.0; 12], &[0.0; 8], &[0.0; 8], s, 1.0, &mut out, &Serial).is_err()
        );
        let s = AttentionShape {
            heads: 2,
            kv_heads: 1,
            head_dim: 4,
            rows: 2,
            start: 1,
        };
        let mut out = vec![0.0; 16];
        assert!(
            causal_attention(&[0.0; 16], &[0.0; 11], &[0.0; 12], s, 1.0, &mut out, &Serial)
                .is_err()
        );
    }
}
