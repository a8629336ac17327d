//! Splitting a projection's stacked query, key and value rows into heads, with the
//! rotary position embedding applied on the way.

use crate::KernelError;

/// Which features of a head rotate together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopePairs {
    /// Adjacent features `(2i, 2i + 1)` (Llama weights as GGUF stores them).
    Interleaved,
    /// Feature `i` with `i + d/2` (Hugging Face checkpoints, Qwen GGUFs).
    Halves,
}

/// The shapes of [`split_heads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadSplit {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Values per head (even).
    pub head_dim: usize,
    /// Rows (positions) to split.
    pub rows: usize,
    /// The position of the first row.
    pub start: usize,
    /// Which features rotate together.
    pub pairs: RopePairs,
}

/// Splits `rows` rows of `[q | k | v]` (widths `heads·d`, `kv_heads·d`, `kv_heads·d`) into
/// head-major `q` (`heads × rows × d`), `k` and `v` (`kv_heads × rows × d`), rotating
/// queries and keys by their positions: row `i` sits at `start + i`, and `cos`/`sin` hold
/// `d/2` angles per position from position 0.
#[allow(clippy::too_many_arguments)]
pub fn split_heads(
    qkv: &[f32],
    shape: HeadSplit,
    cos: &[f32],
    sin: &[f32],
    q: &mut [f32],
    k: &mut [f32],
    v: &mut [f32],
) -> Result<(), KernelError> {
    let HeadSplit {
        heads,
        kv_heads,
        head_dim: d,
        rows,
        start,
        pairs,
    } = shape;
    let half = d / 2;
    if d == 0 || d % 2 != 0 {
        return Err(KernelError::Shape(format!("head size {d} is not even")));
    }
    let width = (heads + 2 * kv_heads) * d;
    let positions = start + rows;
    let lengths = [
        (qkv.len(), rows * width, "stacked rows"),
        (q.len(), heads * rows * d, "queries"),
        (k.len(), kv_heads * rows * d, "keys"),
        (v.len(), kv_heads * rows * d, "values"),
    ];
    for (got, want, what) in lengths {
        if got != want {
            return Err(KernelError::Shape(format!(
                "{got} {what} where the shape takes {want}"
            )));
        }
    }
    if cos.len() < positions * half || sin.len() < positions * half {
        return Err(KernelError::Shape(format!(
            "rotation tables cover {} positions, {positions} needed",
            cos.len().min(sin.len()) / half
        )));
    }
    for (i, row) in qkv.chunks_exact(width).enumerate() {
        let angles = (start + i) * half..(start + i + 1) * half;
        let (c, s) = (&cos[angles.clone()], &sin[angles]);
        let (q_row, rest) = row.split_at(heads * d);
        let (k_row, v_row) = rest.split_at(kv_heads * d);
        for (h, src) in q_row.chunks_exact(d).enumerate() {
            rotate(
                src,
                c,
                s,
                pairs,
                &mut q[(h * rows + i) * d..(h * rows + i + 1) * d],
            );
        }
        for (h, src) in k_row.chunks_exact(d).enumerate() {
            rotate(
                src,
                c,
                s,
                pairs,
                &mut k[(h * rows + i) * d..(h * rows + i + 1) * d],
            );
        }
        for (h, src) in v_row.chunks_exact(d).enumerate() {
            v[(h * rows + i) * d..(h * rows + i + 1) * d].copy_from_slice(src);
        }
    }
    Ok(())
}

fn rotate(src: &[f32], cos: &[f32], sin: &[f32], pairs: RopePairs, dst: &mut [f32]) {
    let half = src.len() / 2;
    match pairs {
        RopePairs::Interleaved => {
            for j in 0..half {
                let (a, b) = (src[2 * j], src[2 * j + 1]);
                dst[2 * j] = a * cos[j] - b * sin[j];
                dst[2 * j + 1] = a * sin[j] + b * cos[j];
            }
        }
        RopePairs::Halves => {
            for j in 0..half {
                let (a, b) = (src[j], src[j + half]);
                dst[j] = a * cos[j] - b * sin[j];
                dst[j + half] = a * sin[j] + b * cos[j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_rotated_heads() {
        let (heads, kv_heads, d, rows, start) = (2, 1, 4, 2, 3);
        let width = (heads + 2 * kv_heads) * d;
        let qkv: Vec<f32> = (0..rows * width).map(|i| i as f32).collect();
        let positions = start + rows;
        let angle = |p: usize, j: usize| p as f32 * 0.1 * (j + 1) as f32;
        let cos: Vec<f32> = (0..positions * 2)
            .map(|x| angle(x / 2, x % 2).cos())
            .collect();
        let sin: Vec<f32> = (0..positions * 2)
            .map(|x| angle(x / 2, x % 2).sin())
            .collect();
        for pairs in [RopePairs::Interleaved, RopePairs::Halves] {
            let shape = HeadSplit {
                heads,
                kv_heads,
                head_dim: d,
                rows,
                start,
                pairs,
            };
            let (mut q, mut k, mut v) = (vec![0.0; 16], vec![0.0; 8], vec![0.0; 8]);
            split_heads(&qkv, shape, &cos, &sin, &mut q, &mut k, &mut v).unwrap();
            // Query head 1 of row 1: features 4..8 of that row, rotated at position 4.
            let src: Vec<f32> = (0..4).map(|f| (width + 4 + f) as f32).collect();
            let got = &q[(rows + 1) * d..(rows + 2) * d];
            let (c0, s0, c1, s1) = (
                angle(4, 0).cos(),
                angle(4, 0).sin(),
                angle(4, 1).cos(),
                angle(4, 1).sin(),
            );
            let want = match pairs {
                RopePairs::Interleaved => [
                    src[0] * c0 - src[1] * s0,
                    src[0] * s0 + src[1] * c0,
                    src[2] * c1 - src[3] * s1,
                    src[2] * s1 + src[3] * c1,
                ],
                RopePairs::Halves => [
                    src[0] * c0 - src[2] * s0,
                    src[1] * c1 - src[3] * s1,
                    src[0] * s0 + src[2] * c0,
                    src[1] * s1 + src[3] * c1,
                ],
            };
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-4, "{pairs:?}: {got:?} vs {want:?}");
            }
            // Values are copied unrotated: row 0's value head is features 12..16.
            assert_eq!(&v[..4], &[12.0, 13.0, 14.0, 15.0]);
        }
        let shape = HeadSplit {
            heads,
            kv_heads,
            head_dim: d,
            rows,
            start: 4,
            pairs: RopePairs::Halves,
        };
        let (mut q, mut k, mut v) = (vec![0.0; 16], vec![0.0; 8], vec![0.0; 8]);
        assert!(split_heads(&qkv, shape, &cos, &sin, &mut q, &mut k, &mut v).is_err());
    }
}
