//! `Q8_0` weights repacked into panels for the int8 GEMM, and the product itself.
//!
//! A weight `W` has `n` rows (output features) of `k` values, stored by GGUF as blocks of
//! 32 signed bytes with one f16 scale each. The product of activation row `a` and weight row
//! `c` is
//!
//! ```text
//! Σ_g d_a[g] · Σ_{b ∈ g} d_w[b, c] · Σ_{i ∈ b} q_a[i] · q_w[c, i]
//! ```
//!
//! where `g` runs over the activation groups of eight blocks. The kernels hold `q_a + 128`
//! (unsigned), so each block's integer sum carries an extra `128 · Σ_i q_w[c, i]`; weighted
//! by `d_w` and summed over a group, that is a constant per (group, column), computed here
//! once and subtracted once per group.
//!
//! Layout, per panel of [`PANEL`] columns and per block: the scales `d_w[b, 0..32]` as f32,
//! and the 32×32 bytes ordered `[i / 4][column][i % 4]`, so one 64-byte load gives sixteen
//! columns × four consecutive values, the operand shape of the int8 dot-product instruction.
//! Columns past `n` in the last panel are zero.

use half::f16;

use crate::rows::QuantizedRows;
use crate::{KernelError, KernelKind, Parallel, BLOCK, GROUP, PANEL, Q8_0_BLOCK_BYTES};

/// Bytes of one panel's block: 32 columns × 32 values.
pub(crate) const PANEL_BLOCK_BYTES: usize = PANEL * BLOCK;

/// A `Q8_0` weight matrix repacked for [`Q8Matrix::matmul`].
#[derive(Clone)]
pub struct Q8Matrix {
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) blocks: usize,
    pub(crate) panels: usize,
    /// `[panel][block][i / 4][column][i % 4]`, signed bytes.
    pub(crate) qs: Vec<i8>,
    /// `[panel][block][column]`.
    pub(crate) scales: Vec<f32>,
    /// `[panel][group][column]`: `128 · Σ_{b ∈ group} d_w[b, c] · Σ_i q_w[c, i]`.
    pub(crate) offsets: Vec<f32>,
}

impl std::fmt::Debug for Q8Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Q8Matrix")
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

impl Q8Matrix {
    /// Repacks `n` rows of `k` values given as GGUF `Q8_0` bytes (row-major blocks).
    pub fn from_q8_0(bytes: &[u8], n: usize, k: usize) -> Result<Self, KernelError> {
        if n == 0 || k == 0 || !k.is_multiple_of(BLOCK) {
            return Err(KernelError::Shape(format!(
                "a Q8_0 matrix needs n > 0 rows and a positive multiple of {BLOCK} columns, not {n}×{k}"
            )));
        }
        let blocks = k / BLOCK;
        let expected = n
            .checked_mul(blocks)
            .and_then(|b| b.checked_mul(Q8_0_BLOCK_BYTES))
            .ok_or_else(|| KernelError::Shape(format!("{n}×{k} is too large")))?;
        if bytes.len() != expected {
            return Err(KernelError::Data(format!(
                "{} bytes, but {n}×{k} Q8_0 takes {expected}",
                bytes.len()
            )));
        }
        let panels = n.div_ceil(PANEL);
        let groups = k.div_ceil(GROUP);
        let mut qs = vec![0i8; panels * blocks * PANEL_BLOCK_BYTES];
        let mut scales = vec![0f32; panels * blocks * PANEL];
        let mut offsets = vec![0f32; panels * groups * PANEL];
        for c in 0..n {
            let (p, col) = (c / PANEL, c % PANEL);
            let row = &bytes[c * blocks * Q8_0_BLOCK_BYTES..(c + 1) * blocks * Q8_0_BLOCK_BYTES];
            for (b, block) in row.chunks_exact(Q8_0_BLOCK_BYTES).enumerate() {
                let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
                if !d.is_finite() {
                    return Err(KernelError::Data(format!(
                        "row {c}, block {b}: the scale is not finite"
                    )));
                }
                let base = (p * blocks + b) * PANEL_BLOCK_BYTES;
                let mut sum = 0i32;
                for (i, &byte) in block[2..].iter().enumerate() {
                    let q = byte as i8;
                    sum += q as i32;
                    qs[base + (i / 4) * PANEL * 4 + col * 4 + i % 4] = q;
                }
                scales[(p * blocks + b) * PANEL + col] = d;
                offsets[(p * groups + b * BLOCK / GROUP) * PANEL + col] += 128.0 * d * sum as f32;
            }
        }
        Ok(Q8Matrix {
            n,
            k,
            blocks,
            panels,
            qs,
            scales,
            offsets,
        })
    }

    /// Output features (rows of the weight).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Input features (columns of the weight).
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes this matrix holds.
    pub fn size_bytes(&self) -> usize {
        self.qs.len() + 4 * (self.scales.len() + self.offsets.len())
    }

    pub(crate) fn groups(&self) -> usize {
        self.k.div_ceil(GROUP)
    }

    /// `out = x Wᵀ` for quantized rows `x` (`m × k`) into `out` (`m × n`, row-major),
    /// on `kernel`, splitting the output panels over `parallel`.
    pub fn matmul(
        &self,
        x: &QuantizedRows,
        out: &mut [f32],
        kernel: KernelKind,
        parallel: &dyn Parallel,
    ) -> Result<(), KernelError> {
        if x.k != self.k {
            return Err(KernelError::Shape(format!(
                "rows of {} values against a weight of {} columns",
                x.k, self.k
            )));
        }
        if out.len() != x.m * self.n {
            return Err(KernelError::Shape(format!(
                "output of {} values for {}×{}",
                out.len(),
                x.m,
                self.n
            )));
        }
        if x.m == 0 {
            return Ok(());
        }
        let kernel = if kernel == KernelKind::Avx512Vnni && KernelKind::detect() != kernel {
            KernelKind::Portable
        } else {
            kernel
        };
        let out = crate::out::SharedOut::new(out, self.n);
        parallel.run(self.panels, &|panels| match kernel {
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx512Vnni => crate::x86::panels(self, x, panels, &out),
            _ => crate::portable::panels(self, x, panels, &out),
        });
        Ok(())
    }

    /// Quantizes `x` (`m × k`) and multiplies, on the fastest kernel: a convenience for
    /// callers that do not reuse quantized rows.
    pub fn matmul_f32(
        &self,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        parallel: &dyn Parallel,
    ) -> Result<(), KernelError> {
        let rows = QuantizedRows::quantize(x, m, self.k)?;
        self.matmul(&rows, out, KernelKind::detect(), parallel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_malformed_weights() {
        assert!(matches!(
            Q8Matrix::from_q8_0(&[0; 34], 1, 33),
            Err(KernelError::Shape(_))
        ));
        assert!(matches!(
            Q8Matrix::from_q8_0(&[0; 33], 1, 32),
            Err(KernelError::Data(_))
        ));
        let mut inf = vec![0u8; 34];
        inf[..2].copy_from_slice(&f16::INFINITY.to_le_bytes());
        assert!(matches!(
            Q8Matrix::from_q8_0(&inf, 1, 32),
            Err(KernelError::Data(_))
        ));
    }
}
